/*
 * Unit tests for lib/http_classify.c: every class a failed transfer can get,
 * including the answers of proxies the integration tests cannot provoke
 * (squid's ERR_DNS_FAIL, a 504, a 400), and the sentence for each. squid 5's
 * ERR_CANNOT_FORWARD and tinyproxy's 500 are also provoked for real in
 * tests/integration/test_http_client.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "net/http_classify.h"
#include "net/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/x509_vfy.h>
#include <string.h>

/* A failure through a proxy, before any answer: each test changes what it needs. */
static struct http_failure
base(void)
{
	return (struct http_failure){
		.curl_code = CURLE_RECV_ERROR,
		.has_proxy = true,
		.origin = "redirect.example:443",
		.host = "redirect.example",
		.proxy = "10.92.53.8:3128",
		.proxy_user = "router",
		.proxy_reason = "",
		.squid_error = "",
		.proxy_schemes = "",
		.detail = "curl said so",
		.body_max = HTTP_BODY_MAX,
	};
}

static void
expect(const struct http_failure *f, enum http_err want, const char *phrase)
{
	or_error_clear();
	assert_int_equal(http_classify(f), want);
	if (strstr(or_errmsg(), phrase) == NULL)
		fail_msg("'%s' not in '%s'", phrase, or_errmsg());
}

static void
proxy_answers_to_connect(void **state)
{
	struct http_failure f = base();

	(void)state;
	f.connect_code = 407;
	f.proxy_reason = "407 Proxy Authentication Required";
	f.proxy_schemes = "Basic";
	expect(&f, HTTP_ERR_PROXY_AUTH, "refused the credentials of user 'router' (407 Proxy");
	expect(&f, HTTP_ERR_PROXY_AUTH, "it offers Basic");
	f.proxy_user = NULL;
	expect(&f, HTTP_ERR_PROXY_AUTH, "no proxy user is configured");
	f.connect_code = 401;
	f.proxy_schemes = "";
	expect(&f, HTTP_ERR_PROXY_AUTH, "offers no scheme");
	f.connect_code = 403;
	f.proxy_reason = "403 Forbidden";
	expect(&f, HTTP_ERR_PROXY_FORBIDDEN, "refused to open a tunnel to redirect.example:443");
	/* squid: a dst rule on a name it cannot resolve refuses the same way */
	f.squid_error = "ERR_ACCESS_DENIED 0";
	expect(&f, HTTP_ERR_PROXY_FORBIDDEN,
	       "its rules do not allow CONNECT to this host or port, or it cannot resolve "
	       "'redirect.example' (squid refuses such a name when a rule is on destination "
	       "addresses)");
	f.host = "192.0.2.7";
	expect(&f, HTTP_ERR_PROXY_FORBIDDEN, "to this host or port");
	assert_null(strstr(or_errmsg(), "resolve"));
	f.host = "redirect.example";
	f.squid_error = "";
	f.connect_code = 503;
	f.proxy_reason = "503 Service Unavailable";
	f.squid_error = "ERR_DNS_FAIL 0";
	expect(&f, HTTP_ERR_DNS, "cannot resolve the server's name 'redirect.example'");
	f.squid_error = "ERR_CONNECT_FAIL 111";
	expect(&f, HTTP_ERR_CONNECT,
	       "could not connect to redirect.example:443 (503 Service "
	       "Unavailable, ERR_CONNECT_FAIL 111)");
	/* squid 5.7: a name its resolver refuses or does not know */
	f.connect_code = 500;
	f.proxy_reason = "500 Internal Server Error";
	f.squid_error = "ERR_CANNOT_FORWARD 0";
	expect(&f, HTTP_ERR_DNS,
	       "proxy 10.92.53.8:3128 cannot resolve the server's name 'redirect.example' (500 "
	       "Internal Server Error, ERR_CANNOT_FORWARD 0)");
	/* ... but an address needs no name: squid could not forward at all */
	f.host = "192.0.2.7";
	f.origin = "192.0.2.7:443";
	expect(&f, HTTP_ERR_CONNECT,
	       "could not connect to 192.0.2.7:443 (500 Internal Server "
	       "Error, ERR_CANNOT_FORWARD 0)");
	/* tinyproxy: the same 500 for a name it cannot resolve and a refused connection */
	f.squid_error = "";
	f.proxy_reason = "500 Unable to connect";
	expect(&f, HTTP_ERR_CONNECT, "could not connect to 192.0.2.7:443 (500 Unable to connect)");
	f.host = "redirect.example";
	f.origin = "redirect.example:443";
	expect(&f, HTTP_ERR_CONNECT,
	       "could not connect to redirect.example:443 (500 Unable to connect): the server "
	       "is down or unreachable from the proxy, or the proxy cannot resolve the name "
	       "'redirect.example'");
	f.proxy_reason = "503 Service Unavailable";
	f.connect_code = 504;
	f.squid_error = "";
	expect(&f, HTTP_ERR_TIMEOUT, "timed out reaching redirect.example:443");
	f.connect_code = 400;
	f.proxy_reason = "400 Bad Request";
	expect(&f, HTTP_ERR_PROXY_OTHER, "answered CONNECT to redirect.example:443 with 400");
	/* A 2xx CONNECT answer is not a refusal: what failed came later. */
	f.connect_code = 200;
	expect(&f, HTTP_ERR_PROXY_OTHER, "broke while opening the tunnel");
	f.tunnel_up = true;
	expect(&f, HTTP_ERR_CONNECT, "the connection to redirect.example:443 broke");
}

static void
no_connection(void **state)
{
	struct http_failure f = base();

	(void)state;
	f.curl_code = CURLE_COULDNT_CONNECT;
	f.os_errno = ECONNREFUSED;
	expect(&f, HTTP_ERR_PROXY_UNREACHABLE,
	       "cannot connect to proxy 10.92.53.8:3128: "
	       "Connection refused");
	f.has_proxy = false;
	f.os_errno = 0;
	expect(&f, HTTP_ERR_CONNECT, "cannot connect to redirect.example:443: curl said so");
	f.curl_code = CURLE_COULDNT_RESOLVE_HOST;
	expect(&f, HTTP_ERR_DNS, "cannot resolve the server's name 'redirect.example'");
	f.curl_code = CURLE_COULDNT_RESOLVE_PROXY;
	f.has_proxy = true;
	expect(&f, HTTP_ERR_DNS, "cannot resolve the proxy's name in 10.92.53.8:3128");
}

static void
timeouts_name_the_phase(void **state)
{
	struct http_failure f = base();

	(void)state;
	f.curl_code = CURLE_OPERATION_TIMEDOUT;
	f.elapsed_ms = 3000;
	expect(&f, HTTP_ERR_TIMEOUT, "timed out after 3000 ms connecting to proxy 10.92.53.8");
	f.tcp_connected = true;
	expect(&f, HTTP_ERR_TIMEOUT, "waiting for proxy 10.92.53.8:3128 to open the tunnel");
	f.connect_code = 200;
	expect(&f, HTTP_ERR_TIMEOUT,
	       "in the TLS handshake with redirect.example:443 through "
	       "proxy 10.92.53.8:3128");
	f.tunnel_up = true;
	expect(&f, HTTP_ERR_TIMEOUT, "waiting for redirect.example:443 to answer");
	f = base();
	f.curl_code = CURLE_OPERATION_TIMEDOUT;
	f.has_proxy = false;
	expect(&f, HTTP_ERR_TIMEOUT, "connecting to redirect.example:443");
	f.tcp_connected = true;
	expect(&f, HTTP_ERR_TIMEOUT, "in the TLS handshake with redirect.example:443");
}

static void
certificates(void **state)
{
	struct http_failure f = base();
	const long name_results[] = {X509_V_OK, X509_V_ERR_UNSPECIFIED,
				     X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH};

	(void)state;
	f.curl_code = CURLE_PEER_FAILED_VERIFICATION;
	f.connect_code = 200;
	f.verify_result = X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN;
	expect(&f, HTTP_ERR_TLS_UNTRUSTED, "is not trusted: self-signed certificate in");
	expect(&f, HTTP_ERR_TLS_UNTRUSTED, "TLS-intercepting proxy");
	f.verify_result = X509_V_ERR_CERT_HAS_EXPIRED;
	expect(&f, HTTP_ERR_TLS_UNTRUSTED, "certificate has expired");
	for (size_t i = 0; i < sizeof(name_results) / sizeof(name_results[0]); i++) {
		f.verify_result = name_results[i];
		expect(&f, HTTP_ERR_TLS, "not valid for the name 'redirect.example'");
	}
	f.curl_code = CURLE_SSL_CONNECT_ERROR;
	expect(&f, HTTP_ERR_TLS, "TLS with redirect.example:443 failed: curl said so");
}

static void
answers_and_the_rest(void **state)
{
	struct http_failure f = base();

	(void)state;
	f.connect_code = 200;
	f.tunnel_up = true;
	f.refused_new_conn = true;
	expect(&f, HTTP_ERR_PROTOCOL, "exporter was taken from is closed");
	f.refused_new_conn = false;
	f.not_openssl = true;
	expect(&f, HTTP_ERR_INTERNAL, "OpenSSL");
	f.not_openssl = false;
	f.curl_code = CURLE_FILESIZE_EXCEEDED;
	expect(&f, HTTP_ERR_PROTOCOL, "larger than 1048576 bytes");
	f.curl_code = CURLE_WRITE_ERROR;
	expect(&f, HTTP_ERR_INTERNAL, "out of memory");
	f.body_too_big = true;
	expect(&f, HTTP_ERR_PROTOCOL, "larger than 1048576 bytes");
	f.curl_code = CURLE_GOT_NOTHING;
	expect(&f, HTTP_ERR_PROTOCOL, "closed the connection without answering");
	f.curl_code = CURLE_WEIRD_SERVER_REPLY;
	expect(&f, HTTP_ERR_PROTOCOL, "not valid HTTP");
	f.curl_code = CURLE_OUT_OF_MEMORY;
	expect(&f, HTTP_ERR_INTERNAL, "out of memory");
	f.curl_code = CURLE_FAILED_INIT;
	expect(&f, HTTP_ERR_INTERNAL, "request to redirect.example:443 failed: curl said so");
}

static void
every_class_has_a_name(void **state)
{
	const char *names[] = {"ok",	      "proxy-unreachable",
			       "proxy-auth",  "proxy-forbidden",
			       "proxy-other", "dns",
			       "connect",     "tls-untrusted",
			       "tls",	      "timeout",
			       "server",      "protocol",
			       "internal"};

	(void)state;
	for (int e = HTTP_OK; e <= HTTP_ERR_INTERNAL; e++)
		assert_string_equal(http_err_name((enum http_err)e), names[e]);
	assert_string_equal(http_err_name((enum http_err)99), "unknown");
	assert_string_equal(http_err_name((enum http_err) - 1), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(proxy_answers_to_connect),
		cmocka_unit_test(no_connection),
		cmocka_unit_test(timeouts_name_the_phase),
		cmocka_unit_test(certificates),
		cmocka_unit_test(answers_and_the_rest),
		cmocka_unit_test(every_class_has_a_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
