/*
 * Retrying one request of an http_session with backoff (backoff.h): transient
 * failures (the proxy or server unreachable, DNS, timeouts, 5xx and 429) are
 * retried; configuration problems (proxy credentials or rules, an untrusted
 * certificate, TLS, a refused new connection after the exporter) are not,
 * since waiting does not fix them. Only for requests that are safe to repeat.
 */
#ifndef ONRAMP_HTTP_RETRY_H
#define ONRAMP_HTTP_RETRY_H

#include "core/backoff.h"
#include "net/http_client.h"

#include <stdbool.h>

struct http_retry {
	unsigned max_attempts;			  /* attempts in all, 0 or 1: no retry */
	struct backoff backoff;			  /* reset at the start of each call */
	void (*sleep_ms)(void *arg, unsigned ms); /* NULL: nanosleep; tests pass their own */
	void *sleep_arg;
};

/* Whether a result of http_session_request is worth another attempt. */
bool http_retryable(int rc, const struct http_response *resp, enum http_err err);

/* http_session_request, repeated while http_retryable; returns the last attempt's result. */
int http_session_request_retry(struct http_session *, struct http_retry *, const char *method,
			       const char *path, const char *bearer, const json_t *body,
			       struct http_response *resp, enum http_err *err);

#endif
