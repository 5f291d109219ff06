/*
 * The syntax the HTTPS client takes and meets (see http_parse.c).
 */
#ifndef ONRAMP_HTTP_PARSE_H
#define ONRAMP_HTTP_PARSE_H

#include "net/http_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Parses "host:port" or "[v6]:port" into proxy->host and proxy->port (user etc. untouched). */
int http_proxy_parse(const char *text, struct http_proxy *proxy);

/*
 * Splits a full https:// URL into the session base ("https://host:port") and
 * the request path (with its query), both malloc'd.
 */
int http_url_origin_and_path(const char *url, char **base, char **path);

/* Parses "any", "basic" or "digest". */
int proxy_auth_parse(const char *text, enum proxy_auth *auth);

/*
 * Parses a Retry-After value: delta-seconds or an HTTP-date (RFC 9110),
 * relative to now. The result is clamped to [0, HTTP_RETRY_AFTER_MAX_S].
 */
int http_parse_retry_after(const char *value, time_t now, long *seconds);

/*
 * Parses an https:// URL with curl's URL parser into host (IPv6 in brackets),
 * port (443 by default) and target (path and query, at least "/"), curl_free
 * for the first two, free for the last. Refuses other schemes, user
 * information (no credentials in URLs) and fragments.
 */
int http_url_host_port_target(const char *url, char **host, char **port, char **target);

/* A host name or address: letters, digits, '.', '-', ':'; at most 63 characters. */
bool http_valid_host(const char *host);

/* Copies at most len bytes of network text into dst, printable ASCII only, trimmed. */
void http_printable(char *dst, size_t dstsize, const char *src, size_t len);

#endif
