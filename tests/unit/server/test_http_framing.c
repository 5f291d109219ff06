/*
 * Unit tests for lib/server/http_framing.c: a request's body length must be
 * said one way only (one Content-Length of digits, or Transfer-Encoding:
 * chunked alone).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/http_framing.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>
#include <sys/queue.h>

/* Checks the headers given as name, value, ..., NULL; returns why or NULL. */
static const char *
check(const char *name, ...)
{
	struct evkeyvalq headers;
	const char *why = NULL;
	va_list ap;
	int rc;

	TAILQ_INIT(&headers);
	va_start(ap, name);
	for (const char *n = name; n != NULL; n = va_arg(ap, const char *))
		assert_int_equal(evhttp_add_header(&headers, n, va_arg(ap, const char *)), 0);
	va_end(ap);
	rc = http_framing_check(&headers, &why);
	evhttp_clear_headers(&headers);
	assert_int_equal(rc, why == NULL ? 0 : -1);
	return why;
}

static void
one_way_is_fine(void **state)
{
	(void)state;
	assert_null(check("Host", "x", NULL));
	assert_null(check("Content-Length", "13", NULL));
	assert_null(check("content-length", "0", "Host", "x", NULL));
	assert_null(check("Transfer-Encoding", "chunked", NULL));
	assert_null(check("TRANSFER-ENCODING", "Chunked", NULL));
}

static void
two_lengths_are_refused(void **state)
{
	(void)state;
	assert_string_equal(check("Content-Length", "13", "Content-Length", "2", NULL),
			    "more than one Content-Length header");
	/* equal values too: a list is not a length */
	assert_string_equal(check("Content-Length", "5", "content-length", "5", NULL),
			    "more than one Content-Length header");
}

static void
a_length_must_be_digits(void **state)
{
	(void)state;
	assert_string_equal(check("Content-Length", "+13", NULL), "Content-Length is not a number");
	assert_string_equal(check("Content-Length", "13, 13", NULL),
			    "Content-Length is not a number");
	assert_string_equal(check("Content-Length", "-1", NULL), "Content-Length is not a number");
	assert_string_equal(check("Content-Length", "", NULL), "Content-Length is not a number");
	assert_string_equal(check("Content-Length", "0x10", NULL),
			    "Content-Length is not a number");
}

static void
length_with_coding_is_refused(void **state)
{
	(void)state;
	assert_string_equal(check("Content-Length", "13", "Transfer-Encoding", "chunked", NULL),
			    "both Content-Length and Transfer-Encoding");
	assert_string_equal(check("Transfer-Encoding", "chunked", "Content-Length", "13", NULL),
			    "both Content-Length and Transfer-Encoding");
}

static void
codings_other_than_chunked_are_refused(void **state)
{
	(void)state;
	assert_string_equal(check("Transfer-Encoding", "gzip", NULL),
			    "Transfer-Encoding other than chunked");
	assert_string_equal(check("Transfer-Encoding", "gzip, chunked", NULL),
			    "Transfer-Encoding other than chunked");
	assert_string_equal(
		check("Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked", NULL),
		"more than one Transfer-Encoding header");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_way_is_fine),
		cmocka_unit_test(two_lengths_are_refused),
		cmocka_unit_test(a_length_must_be_digits),
		cmocka_unit_test(length_with_coding_is_refused),
		cmocka_unit_test(codings_other_than_chunked_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
