/*
 * Unit tests for lib/backoff.c: the exponential ceiling and its cap, full
 * jitter within [BACKOFF_MIN_MS, ceiling], Retry-After as a floor with its
 * own cap, and defaults for a zeroed or nonsensical configuration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/backoff.h"

#include <limits.h>

static void
ceiling_doubles_up_to_the_cap(void **state)
{
	struct backoff b = {.base_ms = 1000, .cap_ms = 8000};
	const unsigned expected[] = {1000, 2000, 4000, 8000, 8000, 8000};

	(void)state;
	for (unsigned i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		b.attempt = i;
		assert_int_equal(backoff_ceiling_ms(&b), expected[i]);
	}
	b.attempt = 64;
	assert_int_equal(backoff_ceiling_ms(&b), 8000);
}

static void
zero_means_defaults(void **state)
{
	struct backoff b = {0};

	(void)state;
	assert_int_equal(backoff_ceiling_ms(&b), BACKOFF_DEFAULT_BASE_MS);
	b.attempt = 40;
	assert_int_equal(backoff_ceiling_ms(&b), BACKOFF_DEFAULT_CAP_MS);
}

static void
never_below_the_minimum(void **state)
{
	struct backoff tiny = {.base_ms = 1, .cap_ms = 10};

	(void)state;
	assert_int_equal(backoff_ceiling_ms(&tiny), BACKOFF_MIN_MS);
	assert_int_equal(backoff_delay_ms(&tiny, -1, 0), BACKOFF_MIN_MS);
	tiny.attempt = 30;
	assert_int_equal(backoff_delay_ms(&tiny, -1, UINT64_MAX), BACKOFF_MIN_MS);
}

static void
huge_values_do_not_overflow(void **state)
{
	struct backoff b = {.base_ms = UINT_MAX, .cap_ms = UINT_MAX, .attempt = 63};

	(void)state;
	assert_int_equal(backoff_ceiling_ms(&b), UINT_MAX);
	assert_int_equal(backoff_delay_ms(&b, -1, UINT_MAX), UINT_MAX);
	b.base_ms = 3;
	assert_int_equal(backoff_ceiling_ms(&b), UINT_MAX);
}

static void
full_jitter_spans_zero_to_ceiling(void **state)
{
	struct backoff b = {.base_ms = 1000, .cap_ms = 60000, .attempt = 2}; /* ceiling 4000 */

	(void)state;
	assert_int_equal(backoff_delay_ms(&b, -1, 0), BACKOFF_MIN_MS);
	assert_int_equal(backoff_delay_ms(&b, -1, 2500), 2500);
	assert_int_equal(backoff_delay_ms(&b, -1, 4000), 4000);
	assert_int_equal(backoff_delay_ms(&b, -1, 4001), BACKOFF_MIN_MS); /* wraps to 0 */
	assert_int_equal(backoff_delay_ms(&b, -1, 4001 + 3999), 3999);
}

static void
retry_after_is_a_capped_floor(void **state)
{
	struct backoff b = {.base_ms = 1000, .cap_ms = 2000, .attempt = 1}; /* ceiling 2000 */

	(void)state;
	assert_int_equal(backoff_delay_ms(&b, 30, 0), 30000);  /* above our own cap */
	assert_int_equal(backoff_delay_ms(&b, 0, 1500), 1500); /* jitter wins */
	assert_int_equal(backoff_delay_ms(&b, 1, 1500), 1500);
	assert_int_equal(backoff_delay_ms(&b, 2, 1500), 2000);
	assert_int_equal(backoff_delay_ms(&b, 1000000000L, 0), BACKOFF_RETRY_AFTER_MAX_S * 1000);
	assert_int_equal(backoff_delay_ms(&b, -1, 0), BACKOFF_MIN_MS); /* -1: none */
}

static void
next_counts_attempts_and_reset_starts_over(void **state)
{
	struct backoff b = {.base_ms = 200, .cap_ms = 100000};

	(void)state;
	for (unsigned i = 0; i < 5; i++) {
		unsigned d = backoff_next_ms(&b, -1);
		assert_in_range(d, BACKOFF_MIN_MS, 200u << i);
		assert_int_equal(b.attempt, i + 1);
	}
	backoff_reset(&b);
	assert_int_equal(b.attempt, 0);
	assert_in_range(backoff_next_ms(&b, -1), BACKOFF_MIN_MS, 200);
	assert_in_range(backoff_next_ms(&b, 5), 5000, 5000);
}

static void
next_is_random_over_the_whole_range(void **state)
{
	struct backoff b = {.base_ms = 1000, .cap_ms = 1000};
	unsigned low = 0, high = 0;

	(void)state;
	/* 2000 draws: the chance that none falls in either tenth is below 1e-90. */
	for (int i = 0; i < 2000; i++) {
		unsigned d = backoff_next_ms(&b, -1);
		assert_in_range(d, BACKOFF_MIN_MS, 1000);
		low += d < 200;
		high += d > 900;
	}
	assert_true(low > 0 && high > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ceiling_doubles_up_to_the_cap),
		cmocka_unit_test(zero_means_defaults),
		cmocka_unit_test(never_below_the_minimum),
		cmocka_unit_test(huge_values_do_not_overflow),
		cmocka_unit_test(full_jitter_spans_zero_to_ceiling),
		cmocka_unit_test(retry_after_is_a_capped_floor),
		cmocka_unit_test(next_counts_attempts_and_reset_starts_over),
		cmocka_unit_test(next_is_random_over_the_whole_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
