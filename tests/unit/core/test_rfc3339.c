/*
 * Unit tests for lib/core/rfc3339.c: the one time format, written and read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/rfc3339.h"

#include <time.h>

static void
times(void **state)
{
	char text[RFC3339_LEN + 1];
	time_t t;

	(void)state;
	rfc3339_format(1795910400, text);
	assert_string_equal(text, "2026-11-29T00:00:00Z");
	rfc3339_format(0, text);
	assert_string_equal(text, "");
	rfc3339_format(1795910400, text);
	assert_string_equal(text, "2026-11-29T00:00:00Z");
	assert_int_equal(rfc3339_parse("2026-11-29T16:00:05Z", &t), 0);
	assert_int_equal(t, 1795910400 + 16 * 3600 + 5);
	assert_int_equal(rfc3339_parse("2026-02-31T16:00:05Z", &t), -1);
	assert_int_equal(rfc3339_parse("2026-11-29 16:00:05Z", &t), -1);
	assert_int_equal(rfc3339_parse("2026-11-29T16:00:05+01:00", &t), -1);
	assert_int_equal(rfc3339_parse("2026-11-29T16:00:05", &t), -1);
	assert_int_equal(rfc3339_parse("", &t), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(times),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
