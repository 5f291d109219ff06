/*
 * The retry loop around http_session_request (see http_retry.h). It trusts
 * the session's classification of each failure and a server's Retry-After
 * only as far as backoff.c caps it.
 */
#include "net/http_retry.h"

#include "core/error.h"
#include "core/log.h"

#include <errno.h>
#include <time.h>

/*
 * Whether trying again may help: 5xx, 429, or a failure on the way (proxy,
 * DNS, connect, timeout).
 */
bool
http_retryable(int rc, const struct http_response *resp, enum http_err err)
{
	if (rc == 0)
		return resp->status >= 500 || resp->status == 429;
	switch (err) {
	case HTTP_ERR_PROXY_UNREACHABLE:
	case HTTP_ERR_PROXY_OTHER:
	case HTTP_ERR_DNS:
	case HTTP_ERR_CONNECT:
	case HTTP_ERR_TIMEOUT:
		return true;
	default:
		return false;
	}
}

/* Sleeps ms milliseconds, resuming after signals. */
static void
sleep_ms(void *arg, unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	(void)arg;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * http_session_request() up to max_attempts times, waiting by backoff
 * (Retry-After honoured) between retryable failures.
 */
int
http_session_request_retry(struct http_session *s, struct http_retry *r, const char *method,
			   const char *path, const char *bearer, const json_t *body,
			   struct http_response *resp, enum http_err *err)
{
	void (*wait)(void *, unsigned) = r->sleep_ms ? r->sleep_ms : sleep_ms;
	unsigned attempt = 1, delay;
	int rc;

	backoff_reset(&r->backoff);
	for (;;) {
		rc = http_session_request(s, method, path, bearer, body, resp, err);
		if (attempt >= r->max_attempts || !http_retryable(rc, resp, *err))
			return rc;
		delay = backoff_next_ms(&r->backoff, rc == 0 ? resp->retry_after_s : -1);
		log_info("%s %s: %s: %s; attempt %u of %u in %u ms", method, path,
			 http_err_name(*err),
			 rc == 0 && *err == HTTP_OK ? "status 429" : or_errmsg(), attempt + 1,
			 r->max_attempts, delay);
		if (rc == 0)
			http_response_free(resp);
		wait(r->sleep_arg, delay);
		attempt++;
	}
}
