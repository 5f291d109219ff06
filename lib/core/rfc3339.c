/*
 * RFC 3339 UTC times, written and read in one fixed form. Parsing trusts
 * nothing: the text must have the exact length and format, and must format
 * back to itself (strptime alone accepts Feb 31).
 */
#include "core/rfc3339.h"

#include "core/error.h"

#include <string.h>

#define RFC3339_FORMAT "%Y-%m-%dT%H:%M:%SZ"

/* See rfc3339.h. */
void
rfc3339_format(time_t t, char out[RFC3339_LEN + 1])
{
	struct tm tm;

	if (t <= 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(out, RFC3339_LEN + 1, RFC3339_FORMAT, &tm) == 0)
		out[0] = '\0';
}

/* See rfc3339.h. */
int
rfc3339_parse(const char *text, time_t *t)
{
	struct tm tm;
	const char *end;
	char back[RFC3339_LEN + 1];

	memset(&tm, 0, sizeof(tm));
	if (strnlen(text, RFC3339_LEN + 1) != RFC3339_LEN ||
	    (end = strptime(text, RFC3339_FORMAT, &tm)) == NULL || *end != '\0')
		return or_error("time must be RFC 3339 UTC, like 2026-11-29T16:00:00Z");
	*t = timegm(&tm);
	rfc3339_format(*t, back);
	if (strcmp(back, text) != 0)
		return or_error("time '%s' is not a valid date and time", text);
	return 0;
}
