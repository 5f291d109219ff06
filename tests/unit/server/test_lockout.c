/*
 * Unit tests for lib/lockout.c: the schedule below, at and past the
 * threshold, the cap, and counts far beyond it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/lockout.h"

#include <limits.h>

static void
schedule(void **state)
{
	const struct lockout_policy p = {5, 30, 3600};

	(void)state;
	for (unsigned long f = 0; f < 5; f++)
		assert_int_equal(lockout_seconds(&p, f), 0);
	assert_int_equal(lockout_seconds(&p, 5), 30);
	assert_int_equal(lockout_seconds(&p, 6), 60);
	assert_int_equal(lockout_seconds(&p, 7), 120);
	assert_int_equal(lockout_seconds(&p, 11), 1920);
	assert_int_equal(lockout_seconds(&p, 12), 3600);
	assert_int_equal(lockout_seconds(&p, 1000), 3600);
	assert_int_equal(lockout_seconds(&p, ULONG_MAX), 3600);
}

static void
odd_policies(void **state)
{
	const struct lockout_policy one = {1, 1, 5};
	const struct lockout_policy flat = {3, 100, 50};

	(void)state;
	assert_int_equal(lockout_seconds(&one, 0), 0);
	assert_int_equal(lockout_seconds(&one, 1), 1);
	assert_int_equal(lockout_seconds(&one, 3), 4);
	assert_int_equal(lockout_seconds(&one, 4), 5);
	/* A base above the cap is held to the cap. */
	assert_int_equal(lockout_seconds(&flat, 3), 50);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(schedule),
		cmocka_unit_test(odd_policies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
