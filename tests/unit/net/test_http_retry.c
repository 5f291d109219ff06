/*
 * Unit tests for lib/http_retry.c: which results are retried, and the loop
 * itself against a local port that refuses connections (bound, never
 * listening), with a sleep callback that records the waits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/log.h"
#include "net/http_retry.h"
#include "test_anchor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct sleeps {
	unsigned count;
	unsigned ms[8];
};

static void
record_sleep(void *arg, unsigned ms)
{
	struct sleeps *z = arg;

	if (z->count < 8)
		z->ms[z->count] = ms;
	z->count++;
}

static int
refusing_port(unsigned *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
retry_loop_backs_off_on_transient_errors(void **state)
{
	struct http_client_opts opts = {.ca_pem = anchor};
	struct sleeps z = {0};
	struct http_retry retry = {.max_attempts = 4,
				   .backoff = {.base_ms = 200, .cap_ms = 1000, .attempt = 9},
				   .sleep_ms = record_sleep,
				   .sleep_arg = &z};
	struct http_session *s;
	struct http_response resp;
	enum http_err err;
	char url[64];
	unsigned port;
	int fd = refusing_port(&port);

	(void)state;
	snprintf(url, sizeof(url), "https://127.0.0.1:%u", port);
	assert_int_equal(http_session_open(url, &opts, &s), 0);
	assert_int_equal(http_session_request_retry(s, &retry, "GET", "/", NULL, NULL, &resp, &err),
			 -1);
	assert_int_equal(err, HTTP_ERR_CONNECT);
	assert_non_null(strstr(or_errmsg(), "cannot connect to 127.0.0.1:"));
	assert_int_equal(z.count, 3); /* four attempts, three waits */
	/* The backoff was reset at the start: ceilings 200, 400, 800. */
	assert_in_range(z.ms[0], 100, 200);
	assert_in_range(z.ms[1], 100, 400);
	assert_in_range(z.ms[2], 100, 800);
	assert_int_equal(retry.backoff.attempt, 3);

	/* Not retried: an error that waiting cannot fix. */
	z.count = 0;
	assert_int_equal(
		http_session_request_retry(s, &retry, "GET", "no-slash", NULL, NULL, &resp, &err),
		-1);
	assert_int_equal(err, HTTP_ERR_INTERNAL);
	assert_int_equal(z.count, 0);
	http_session_close(s);
	close(fd);
}

static void
retryable_classes(void **state)
{
	struct http_response r = {.status = 200};

	(void)state;
	assert_false(http_retryable(0, &r, HTTP_OK));
	r.status = 404;
	assert_false(http_retryable(0, &r, HTTP_OK));
	r.status = 429;
	assert_true(http_retryable(0, &r, HTTP_OK));
	r.status = 503;
	assert_true(http_retryable(0, &r, HTTP_ERR_SERVER));
	assert_true(http_retryable(-1, &r, HTTP_ERR_PROXY_UNREACHABLE));
	assert_true(http_retryable(-1, &r, HTTP_ERR_DNS));
	assert_true(http_retryable(-1, &r, HTTP_ERR_TIMEOUT));
	assert_true(http_retryable(-1, &r, HTTP_ERR_CONNECT));
	assert_false(http_retryable(-1, &r, HTTP_ERR_PROXY_AUTH));
	assert_false(http_retryable(-1, &r, HTTP_ERR_PROXY_FORBIDDEN));
	assert_false(http_retryable(-1, &r, HTTP_ERR_TLS_UNTRUSTED));
	assert_false(http_retryable(-1, &r, HTTP_ERR_TLS));
	assert_false(http_retryable(-1, &r, HTTP_ERR_PROTOCOL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(retry_loop_backs_off_on_transient_errors),
		cmocka_unit_test(retryable_classes),
	};

	log_init("test_http_retry", LOG_TARGET_STDERR, LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
