/*
 * Unit tests for agent/asset_alarm.c: a conductor's duplicate-asset and
 * unknown-asset refusals raise the critical and major alarms about the asset
 * ID at that conductor, other refusals change nothing, a refusal about
 * another asset ID or of the other kind replaces them, and an accepted
 * router clears them (an unsettled raise is forgotten, as every alarm).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "alarm.h"
#include "asset_alarm.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

#define CONDUCTOR "127.0.0.1:4443"
#define SUBJECT "asset ID SSR-0001 at conductor " CONDUCTOR

static size_t
active(const struct alarms *a)
{
	size_t n = 0;

	for (size_t i = 0; i < a->count; i++)
		n += a->list[i].cleared == 0;
	return n;
}

static void
unknown_asset_raises_major_and_acceptance_clears_it(void **state)
{
	struct alarms a;

	(void)state;
	alarms_init(&a);
	asset_alarm_refused(&a, "unknown-asset", CONDUCTOR, "SSR-0001", 100);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.list[0].severity, ALARM_MAJOR);
	assert_string_equal(a.list[0].message, ALARM_ASSET_UNKNOWN);
	assert_string_equal(a.list[0].subject, SUBJECT);
	/* Refused again: still one alarm, not a new one. */
	asset_alarm_refused(&a, "unknown-asset", CONDUCTOR, "SSR-0001", 130);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.list[0].raised, 100);
	asset_alarm_accepted(&a, 200);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.list[0].cleared, 200);
	assert_false(a.list[0].reported);
	assert_true(alarm_due(&a, &a.list[0], 200));
	/* Nothing left to clear: no change. */
	asset_alarm_accepted(&a, 300);
	assert_int_equal(a.list[0].cleared, 200);
}

static void
duplicate_asset_raises_critical(void **state)
{
	struct alarms a;

	(void)state;
	alarms_init(&a);
	asset_alarm_refused(&a, "duplicate-asset", CONDUCTOR, "SSR-0001", 100);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.list[0].severity, ALARM_CRITICAL);
	assert_string_equal(a.list[0].message, ALARM_ASSET_DUPLICATE);
	assert_string_equal(a.list[0].subject, SUBJECT);
	assert_true(alarm_is_active(&a, ALARM_ASSET_DUPLICATE, SUBJECT));
}

static void
other_refusals_change_nothing(void **state)
{
	struct alarms a;

	(void)state;
	alarms_init(&a);
	asset_alarm_refused(&a, "bad-proof", CONDUCTOR, "SSR-0001", 100);
	asset_alarm_refused(&a, "", CONDUCTOR, "SSR-0001", 100);
	assert_int_equal(a.count, 0);
	asset_alarm_refused(&a, "unknown-asset", CONDUCTOR, "SSR-0001", 100);
	/* A wrong secret says nothing about the asset ID: the alarm stays. */
	asset_alarm_refused(&a, "bad-proof", CONDUCTOR, "SSR-0001", 150);
	assert_int_equal(active(&a), 1);
}

static void
a_new_refusal_replaces_the_old_one(void **state)
{
	struct alarms a;

	(void)state;
	alarms_init(&a);
	asset_alarm_refused(&a, "unknown-asset", CONDUCTOR, "SSR-OOO1", 100);
	/* The cloud set another asset ID; the conductor has it, bound to another device. */
	asset_alarm_refused(&a, "duplicate-asset", CONDUCTOR, "SSR-0001", 200);
	assert_int_equal(a.count, 2);
	assert_int_equal(active(&a), 1);
	assert_int_equal(a.list[0].cleared, 200);
	assert_true(alarm_is_active(&a, ALARM_ASSET_DUPLICATE, SUBJECT));
}

static void
an_unsettled_alarm_is_forgotten(void **state)
{
	struct alarms a;

	(void)state;
	alarms_init(&a);
	a.settle_s = 30;
	asset_alarm_refused(&a, "unknown-asset", CONDUCTOR, "SSR-0001", 100);
	assert_false(alarm_due(&a, &a.list[0], 110));
	asset_alarm_accepted(&a, 110);
	assert_int_equal(a.count, 0);
}

static void
the_longest_asset_id_and_address_fit(void **state)
{
	struct alarms a;
	char asset[129], address[300];

	(void)state;
	memset(asset, 'A', sizeof(asset) - 1);
	asset[sizeof(asset) - 1] = '\0';
	memset(address, 'h', sizeof(address) - 1);
	address[sizeof(address) - 1] = '\0';
	alarms_init(&a);
	asset_alarm_refused(&a, "unknown-asset", address, asset, 100);
	assert_int_equal(strlen(a.list[0].subject),
			 strlen("asset ID  at conductor ") + strlen(asset) + strlen(address));
	/* Refused again: the same alarm; then it clears. */
	asset_alarm_refused(&a, "unknown-asset", address, asset, 110);
	assert_int_equal(a.count, 1);
	asset_alarm_accepted(&a, 120);
	assert_int_equal(active(&a), 0);
}

static int
setup(void **state)
{
	(void)state;
	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_ERROR);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unknown_asset_raises_major_and_acceptance_clears_it),
		cmocka_unit_test(duplicate_asset_raises_critical),
		cmocka_unit_test(other_refusals_change_nothing),
		cmocka_unit_test(a_new_refusal_replaces_the_old_one),
		cmocka_unit_test(an_unsettled_alarm_is_forgotten),
		cmocka_unit_test(the_longest_asset_id_and_address_fit),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
