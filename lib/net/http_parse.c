/*
 * The syntax the HTTPS client takes and meets: proxies ("host:port"), https
 * URLs (through curl's URL parser), proxy authentication names, Retry-After
 * values, and text from the network reduced to something safe to print.
 * Nothing here trusts its input: every function refuses what it cannot parse
 * exactly, with a message naming what was wrong.
 */
#include "net/http_parse.h"

#include "core/error.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies untrusted network text, trimmed, with anything but printable ASCII as '?'. */
void
http_printable(char *dst, size_t dstsize, const char *src, size_t len)
{
	size_t n = 0;

	while (len > 0 && isspace((unsigned char)*src))
		src++, len--;
	while (len > 0 && isspace((unsigned char)src[len - 1]))
		len--;
	for (size_t i = 0; i < len && n + 1 < dstsize; i++)
		dst[n++] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[n] = '\0';
}

/* "any", "basic" or "digest". */
int
proxy_auth_parse(const char *text, enum proxy_auth *auth)
{
	if (strcmp(text, "any") == 0)
		*auth = PROXY_AUTH_ANY;
	else if (strcmp(text, "basic") == 0)
		*auth = PROXY_AUTH_BASIC;
	else if (strcmp(text, "digest") == 0)
		*auth = PROXY_AUTH_DIGEST;
	else
		return or_error("unknown proxy authentication '%s' (expected any, basic or digest)",
				text);
	return 0;
}

/* A host name or address of letters, digits, '.', '-' and ':' that fits struct http_proxy. */
bool
http_valid_host(const char *host)
{
	size_t len = strlen(host);

	if (len == 0 || len >= sizeof(((struct http_proxy *)0)->host))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)host[i]) && strchr(".-:", host[i]) == NULL)
			return false;
	return true;
}

/* "host:port" or "[v6]:port" with a port from 1 to 65535. */
int
http_proxy_parse(const char *text, struct http_proxy *proxy)
{
	const char *colon, *host = text, *host_end;
	unsigned long port;
	char *end;

	if (text[0] == '[') {
		host = text + 1;
		host_end = strchr(host, ']');
		if (host_end == NULL || host_end[1] != ':')
			return or_error("proxy '%s' is not [IPv6]:port", text);
		colon = host_end + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
			return or_error("proxy '%s' is not host:port", text);
		host_end = colon;
	}
	if ((size_t)(host_end - host) >= sizeof(proxy->host))
		return or_error("proxy host in '%s' is longer than %zu characters", text,
				sizeof(proxy->host) - 1);
	memcpy(proxy->host, host, (size_t)(host_end - host));
	proxy->host[host_end - host] = '\0';
	if (!http_valid_host(proxy->host))
		return or_error("proxy host in '%s' is not a valid name or address", text);
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || *end != '\0' || errno != 0 || port == 0 ||
	    port > 65535)
		return or_error("proxy port in '%s' must be from 1 to 65535", text);
	proxy->port = (unsigned)port;
	return 0;
}

/* Delta-seconds or an HTTP-date from a server, relative to now, clamped to a day. */
int
http_parse_retry_after(const char *value, time_t now, long *seconds)
{
	char buf[64];
	size_t len = strlen(value);
	long long s = 0;
	time_t when;

	http_printable(buf, sizeof(buf), value, len);
	if (buf[0] == '\0' || len >= sizeof(buf))
		return or_error("Retry-After value is empty or too long");
	if (isdigit((unsigned char)buf[0])) {
		for (const char *p = buf; *p != '\0'; p++) {
			if (!isdigit((unsigned char)*p))
				return or_error("Retry-After '%s' is not a number of seconds", buf);
			if (s <= HTTP_RETRY_AFTER_MAX_S)
				s = s * 10 + (*p - '0');
		}
	} else {
		/* An HTTP-date always starts with a day name; curl_getdate parses all three forms.
		 */
		if (!isalpha((unsigned char)buf[0]) || (when = curl_getdate(buf, NULL)) == -1)
			return or_error("Retry-After '%s' is neither seconds nor an HTTP date",
					buf);
		s = when > now ? (long long)(when - now) : 0;
	}
	*seconds = s > HTTP_RETRY_AFTER_MAX_S ? HTTP_RETRY_AFTER_MAX_S : (long)s;
	return 0;
}

/* An https:// URL through curl's parser, refusing credentials and fragments. */
int
http_url_host_port_target(const char *url, char **host, char **port, char **target)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *path = NULL, *query = NULL, *other = NULL;
	int rc = -1;

	*host = *port = *target = NULL;
	if (u == NULL)
		return or_error("out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcmp(scheme, "https") != 0 || curl_url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		or_error("'%s' is not a valid https:// URL", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &other, 0) != CURLUE_NO_USER ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &other, 0) != CURLUE_NO_FRAGMENT) {
		or_error("'%s' must not hold a user name or a fragment", url);
		goto out;
	}
	(void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
	if (asprintf(target, "%s%s%s", path[0] ? path : "/", query ? "?" : "", query ? query : "") <
	    0) {
		*target = NULL;
		or_error("out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc == -1) {
		curl_free(*host);
		curl_free(*port);
		*host = *port = NULL;
	}
	curl_free(scheme);
	curl_free(path);
	curl_free(query);
	curl_free(other);
	curl_url_cleanup(u);
	return rc;
}

/* An https:// URL split into the session base and the request path. */
int
http_url_origin_and_path(const char *url, char **base, char **path)
{
	char *host, *port;
	int rc;

	*base = NULL;
	if (http_url_host_port_target(url, &host, &port, path) == -1)
		return -1;
	rc = asprintf(base, "https://%s:%s", host, port);
	curl_free(host);
	curl_free(port);
	if (rc < 0) {
		free(*path);
		*base = *path = NULL;
		return or_error("out of memory");
	}
	return 0;
}
