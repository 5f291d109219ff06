/*
 * Unit tests for lib/http_parse.c: Retry-After in both forms (seconds and
 * HTTP-date, the obsolete date forms included), proxies, https URLs, proxy
 * authentication names, and what is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "net/http_parse.h"

#include <stdlib.h>
#include <string.h>

/* 1994-11-06 08:49:37 UTC, the date in RFC 9110's examples. */
#define RFC_DATE 784111777

static void
retry_after_seconds(void **state)
{
	long s = -1;

	(void)state;
	assert_int_equal(http_parse_retry_after("120", 0, &s), 0);
	assert_int_equal(s, 120);
	assert_int_equal(http_parse_retry_after("0", 0, &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(http_parse_retry_after("  7 ", 0, &s), 0);
	assert_int_equal(s, 7);
	assert_int_equal(http_parse_retry_after("0000000000000000000000000000000000000042", 0, &s),
			 0);
	assert_int_equal(s, 42);
	assert_int_equal(http_parse_retry_after("99999999999999999999999999", 0, &s), 0);
	assert_int_equal(s, HTTP_RETRY_AFTER_MAX_S);
	assert_int_equal(http_parse_retry_after("86401", 0, &s), 0);
	assert_int_equal(s, HTTP_RETRY_AFTER_MAX_S);
}

static void
retry_after_http_dates(void **state)
{
	long s = -1;

	(void)state;
	assert_int_equal(
		http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE - 100, &s), 0);
	assert_int_equal(s, 100);
	/* The obsolete forms RFC 9110 still asks recipients to accept. */
	assert_int_equal(
		http_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", RFC_DATE - 100, &s), 0);
	assert_int_equal(s, 100);
	assert_int_equal(http_parse_retry_after("Sun Nov  6 08:49:37 1994", RFC_DATE - 100, &s), 0);
	assert_int_equal(s, 100);
	/* In the past: retry now. Far away: capped. */
	assert_int_equal(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE + 5, &s),
			 0);
	assert_int_equal(s, 0);
	assert_int_equal(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 0, &s), 0);
	assert_int_equal(s, HTTP_RETRY_AFTER_MAX_S);
}

static void
retry_after_garbage_is_refused(void **state)
{
	const char *bad[] = {
		"",
		"   ",
		"-5",
		"+5",
		"5s",
		"1.5",
		"0x10",
		"soon",
		"Sun, 99 Foo",
		"5 6",
		"Sun, 06 Nov 1994 08:49:37 GMT and a long tail beyond sixty-four bytes"};
	long s = 1234;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(http_parse_retry_after(bad[i], RFC_DATE, &s), -1);
		assert_int_equal(s, 1234);
		assert_non_null(strstr(or_errmsg(), "Retry-After"));
	}
}

static void
proxy_parsing(void **state)
{
	struct http_proxy p;
	const char *bad[] = {"",
			     "host",
			     ":3128",
			     "host:",
			     "host:0",
			     "host:65536",
			     "host:-1",
			     "host:3128x",
			     "a:b:3128",
			     "[::1]3128",
			     "[::1",
			     "bad/host:3128",
			     "host name:80",
			     "a234567890123456789012345678901234567890123456789012345678901234:1"};

	(void)state;
	assert_int_equal(http_proxy_parse("10.92.53.8:3128", &p), 0);
	assert_string_equal(p.host, "10.92.53.8");
	assert_int_equal(p.port, 3128);
	assert_int_equal(http_proxy_parse("proxy.example:65535", &p), 0);
	assert_string_equal(p.host, "proxy.example");
	assert_int_equal(http_proxy_parse("[fd00::1]:8080", &p), 0);
	assert_string_equal(p.host, "fd00::1");
	assert_int_equal(p.port, 8080);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(http_proxy_parse(bad[i], &p), -1);
}

static void
auth_names(void **state)
{
	enum proxy_auth a;

	(void)state;
	assert_int_equal(proxy_auth_parse("digest", &a), 0);
	assert_int_equal(a, PROXY_AUTH_DIGEST);
	assert_int_equal(proxy_auth_parse("basic", &a), 0);
	assert_int_equal(a, PROXY_AUTH_BASIC);
	assert_int_equal(proxy_auth_parse("any", &a), 0);
	assert_int_equal(a, PROXY_AUTH_ANY);
	assert_int_equal(proxy_auth_parse("Basic", &a), -1);
}

static void
url_split(void **state)
{
	char *base, *path;

	(void)state;
	assert_int_equal(
		http_url_origin_and_path("https://redirect.example/v1/x?a=b", &base, &path), 0);
	assert_string_equal(base, "https://redirect.example:443");
	assert_string_equal(path, "/v1/x?a=b");
	free(base);
	free(path);
	assert_int_equal(http_url_origin_and_path("https://[::1]:8443", &base, &path), 0);
	assert_string_equal(base, "https://[::1]:8443");
	assert_string_equal(path, "/");
	free(base);
	free(path);
	assert_int_equal(http_url_origin_and_path("http://redirect.example/", &base, &path), -1);
	assert_null(base);
	assert_int_equal(http_url_origin_and_path("no url at all", &base, &path), -1);
}

static void
printable_copies(void **state)
{
	char out[8];

	(void)state;
	http_printable(out, sizeof(out), "  ab\r\n", 6);
	assert_string_equal(out, "ab");
	http_printable(out, sizeof(out), "a\001b\377", 4);
	assert_string_equal(out, "a?b?");
	http_printable(out, sizeof(out), "0123456789", 10);
	assert_string_equal(out, "0123456");
	http_printable(out, sizeof(out), "", 0);
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(retry_after_seconds),
		cmocka_unit_test(retry_after_http_dates),
		cmocka_unit_test(retry_after_garbage_is_refused),
		cmocka_unit_test(proxy_parsing),
		cmocka_unit_test(auth_names),
		cmocka_unit_test(url_split),
		cmocka_unit_test(printable_copies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
