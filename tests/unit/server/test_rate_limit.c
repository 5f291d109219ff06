/*
 * Unit tests for lib/server/rate_limit.c: a source's burst then its rate,
 * Retry-After, other sources unharmed by one flooding, the global bucket,
 * no limit at rate 0, and a clock that does not move or goes back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/rate_limit.h"

#include <stdio.h>

static struct rate_limiter *
make(unsigned long sr, unsigned long sb, unsigned long gr, unsigned long gb)
{
	const struct rate_limit_policy p = {sr, sb, gr, gb};
	struct rate_limiter *rl = NULL;

	assert_int_equal(rate_limiter_new(&p, &rl), 0);
	return rl;
}

static void
burst_then_rate(void **state)
{
	struct rate_limiter *rl = make(2, 5, 0, 1);
	unsigned long retry = 0;

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(rate_limit_take(rl, "10.0.0.1", 1000, &retry), 0);
	assert_int_equal(rate_limit_take(rl, "10.0.0.1", 1000, &retry), 1);
	assert_int_equal(retry, 1);
	/* Half a second at 2 per second: one more. */
	assert_int_equal(rate_limit_take(rl, "10.0.0.1", 1500, &retry), 0);
	assert_int_equal(rate_limit_take(rl, "10.0.0.1", 1500, &retry), 1);
	/* A clock going back refills nothing and breaks nothing. */
	assert_int_equal(rate_limit_take(rl, "10.0.0.1", 900, &retry), 1);
	/* Long after, a full burst again, never more. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(rate_limit_take(rl, "10.0.0.1", 100000, &retry), 0);
	assert_int_equal(rate_limit_take(rl, "10.0.0.1", 100000, &retry), 1);
	rate_limiter_free(rl);
}

static void
slow_rate_says_when(void **state)
{
	struct rate_limiter *rl = make(1, 1, 0, 1);
	unsigned long retry = 0;

	(void)state;
	assert_int_equal(rate_limit_take(rl, "::1", 0, &retry), 0);
	assert_int_equal(rate_limit_take(rl, "::1", 200, &retry), 1);
	assert_int_equal(retry, 1); /* 800 ms, rounded up */
	assert_int_equal(rate_limit_take(rl, "::1", 1000, &retry), 0);
	rate_limiter_free(rl);
}

static void
a_flood_harms_no_other_source(void **state)
{
	struct rate_limiter *rl = make(1, 3, 0, 1);
	unsigned long retry = 0;

	(void)state;
	for (int i = 0; i < 50; i++)
		rate_limit_take(rl, "192.0.2.66", 10, &retry);
	assert_int_equal(rate_limit_take(rl, "192.0.2.66", 10, &retry), 1);
	assert_int_equal(rate_limit_take(rl, "192.0.2.7", 10, &retry), 0);
	rate_limiter_free(rl);
}

static void
global_bucket_counts_everyone(void **state)
{
	struct rate_limiter *rl = make(100, 100, 1, 4);
	unsigned long retry = 0;
	char source[32];

	(void)state;
	for (int i = 0; i < 4; i++) {
		snprintf(source, sizeof(source), "10.1.0.%d", i);
		assert_int_equal(rate_limit_take(rl, source, 0, &retry), 0);
	}
	assert_int_equal(rate_limit_take(rl, "10.1.0.9", 0, &retry), 1);
	assert_true(retry >= 1);
	rate_limiter_free(rl);
}

static void
rate_zero_limits_nothing(void **state)
{
	struct rate_limiter *rl = make(0, 1, 0, 1);
	unsigned long retry = 0;

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(rate_limit_take(rl, "10.0.0.1", 0, &retry), 0);
	rate_limiter_free(rl);
	rate_limiter_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_then_rate),
		cmocka_unit_test(slow_rate_says_when),
		cmocka_unit_test(a_flood_harms_no_other_source),
		cmocka_unit_test(global_bucket_counts_everyone),
		cmocka_unit_test(rate_zero_limits_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
