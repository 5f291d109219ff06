/*
 * Unit tests for lib/http_client.c that need no server: what
 * http_session_open and http_session_request refuse before anything is sent,
 * and the exporter without a connection. The behaviour on the network is
 * tested against real proxies and servers in tests/integration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "net/http_client.h"
#include "test_anchor.h"

#include <string.h>

static void
open_checks_its_input(void **state)
{
	struct secret pw = {.data = (uint8_t *)"pw\nx", .len = 4};
	struct http_proxy proxy = {.host = "127.0.0.1", .port = 3128};
	struct http_client_opts opts = {.ca_pem = anchor};
	struct http_session *s = (struct http_session *)&opts;
	const char *bad_urls[] = {"http://a.example",
				  "https://a.example/path",
				  "https://user@a.example",
				  "https://a.example/?q",
				  "https://",
				  "ftp://a.example",
				  "https://a.example#frag"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		assert_int_equal(http_session_open(bad_urls[i], &opts, &s), -1);
		assert_null(s);
	}
	assert_int_equal(http_session_open("https://a.example", NULL, &s), -1);
	opts.ca_pem = "not a certificate";
	assert_int_equal(http_session_open("https://a.example", &opts, &s), -1);
	assert_non_null(strstr(or_errmsg(), "no PEM certificate"));
	opts.ca_pem = anchor;
	opts.total_timeout_ms = -1;
	assert_int_equal(http_session_open("https://a.example", &opts, &s), -1);
	opts.total_timeout_ms = 0;
	opts.proxy = &proxy;
	proxy.port = 0;
	assert_int_equal(http_session_open("https://a.example", &opts, &s), -1);
	proxy.port = 3128;
	strcpy(proxy.host, "bad host");
	assert_int_equal(http_session_open("https://a.example", &opts, &s), -1);
	strcpy(proxy.host, "127.0.0.1");
	proxy.user = "user:x";
	proxy.password = &pw;
	assert_int_equal(http_session_open("https://a.example", &opts, &s), -1);
	proxy.user = "user";
	assert_int_equal(http_session_open("https://a.example", &opts, &s), -1);
	assert_non_null(strstr(or_errmsg(), "line-break"));
	proxy.password = NULL;
	assert_int_equal(http_session_open("https://a.example", &opts, &s), -1);
	pw.len = 2;
	proxy.password = &pw;
	assert_int_equal(http_session_open("https://a.example/", &opts, &s), 0);
	assert_non_null(s);
	http_session_close(s);
}

static void
request_checks_its_input(void **state)
{
	struct http_client_opts opts = {.ca_pem = anchor};
	struct http_session *s;
	struct http_response resp;
	enum http_err err;
	uint8_t km[32];
	json_t *body = json_pack("{s:s}", "a", "b");
	const char *bad[][3] = {
		{"HEAD", "/", NULL},	     {"get", "/", NULL},
		{"GET", "x", NULL},	     {"GET", "/a b", NULL},
		{"GET", "/a\r\nX: y", NULL}, {"GET", "/", "a b"},
		{"GET", "/", "tok\r\nX"},    {"GET", "/", ""},
	};

	(void)state;
	assert_int_equal(http_session_open("https://127.0.0.1:9", &opts, &s), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
			http_session_request(s, bad[i][0], bad[i][1], bad[i][2], NULL, &resp, &err),
			-1);
		assert_int_equal(err, HTTP_ERR_INTERNAL);
		assert_null(resp.body);
	}
	assert_int_equal(http_session_request(s, "GET", "/", NULL, body, &resp, &err), -1);
	assert_non_null(strstr(or_errmsg(), "GET request cannot carry a body"));
	assert_int_equal(http_session_connects(s), 0);
	assert_int_equal(http_session_exporter(s, "EXPORTER-x", km, sizeof(km)), -1);
	assert_non_null(strstr(or_errmsg(), "no open TLS connection"));
	assert_int_equal(http_session_exporter(s, "", km, sizeof(km)), -1);
	assert_int_equal(http_session_exporter(s, "EXPORTER-x", km, 0), -1);
	json_decref(body);
	http_session_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(open_checks_its_input),
		cmocka_unit_test(request_checks_its_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
