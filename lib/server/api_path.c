/*
 * Path splitting for the admin APIs. The path comes from the network: its
 * length and shape are checked before anything is copied.
 */
#include "server/api_path.h"

#include "core/error.h"

#include <string.h>

/* See api_path.h. */
int
api_path_split(const char *path, const char *prefix, struct api_path *out)
{
	size_t plen = strlen(prefix), len;
	char *s;

	memset(out, 0, sizeof(*out));
	if (strncmp(path, prefix, plen) != 0)
		return or_error("path is not under %s", prefix);
	path += plen;
	len = strcspn(path, "?#");
	if (len > API_PATH_MAX)
		return or_error("path is too long");
	memcpy(out->buf, path, len);
	out->buf[len] = '\0';
	if (len > 0 && out->buf[len - 1] == '/')
		out->buf[--len] = '\0';
	if (len == 0)
		return 0;
	for (s = out->buf;; s++) {
		char *slash = strchr(s, '/');
		if (out->n == API_PATH_SEGMENTS)
			return or_error("path has too many segments");
		if (slash == s || *s == '\0')
			return or_error("path has an empty segment");
		out->seg[out->n++] = s;
		if (slash == NULL)
			break;
		*slash = '\0';
		s = slash;
	}
	return 0;
}

/* See api_path.h. */
bool
api_path_is(const struct api_path *p, const char *pattern)
{
	size_t i = 0;

	while (*pattern != '\0') {
		size_t len = strcspn(pattern, "/");
		if (i >= p->n)
			return false;
		if (!(len == 1 && pattern[0] == '*') &&
		    (strlen(p->seg[i]) != len || strncmp(p->seg[i], pattern, len) != 0))
			return false;
		i++;
		pattern += len;
		if (*pattern == '/')
			pattern++;
	}
	return i == p->n;
}
