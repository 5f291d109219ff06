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
#include <stdlib.h>
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

static void
the_alarms_outlive_a_restart(void **state)
{
	struct alarms a, b;
	json_t *saved;
	char *text;

	(void)state;
	alarms_init(&a);
	alarm_raise(&a, ALARM_CRITICAL, "Management Proxy is unreachable", "10.0.0.1:3128", 50);
	asset_alarm_refused(&a, "unknown-asset", CONDUCTOR, "SSR-OOO1", 100); /* id 2 */
	alarm_mark_reported(&a, 2);
	asset_alarm_refused(&a, "unknown-asset", CONDUCTOR, "SSR-0002", 150); /* id 3, clears 2 */
	alarm_mark_reported(&a, 3);
	asset_alarm_refused(&a, "unknown-asset", CONDUCTOR, "SSR-0001", 200); /* id 4, clears 3 */
	alarm_mark_reported(&a, 3);
	/* Kept: 2's clearing was not reported, 4 is active; not 3 (cleared and reported), not 1. */
	saved = asset_alarm_state_json(&a);
	text = json_dumps(saved, JSON_COMPACT);
	assert_string_equal(text,
			    "[{\"id\":2,\"severity\":\"major\",\"message\":\"" ALARM_ASSET_UNKNOWN
			    "\",\"subject\":\"asset ID SSR-OOO1 at conductor " CONDUCTOR
			    "\",\"raised\":100,"
			    "\"cleared\":150,\"reported\":false},{\"id\":4,\"severity\":\"major\","
			    "\"message\":\"" ALARM_ASSET_UNKNOWN "\",\"subject\":\"" SUBJECT "\","
			    "\"raised\":200,\"cleared\":0,\"reported\":false}]");
	free(text);
	alarms_init(&b);
	assert_int_equal(asset_alarm_restore(&b, saved), 0);
	assert_int_equal(b.count, 2);
	assert_int_equal(b.next_id, 5);
	assert_int_equal(b.list[1].raised, 200);
	assert_true(alarm_is_active(&b, ALARM_ASSET_UNKNOWN, SUBJECT));
	assert_true(alarm_due(&b, &b.list[0], 300));
	/* Accepted after the restart: the alarm raised before it clears. */
	asset_alarm_accepted(&b, 300);
	assert_int_equal(b.list[1].cleared, 300);
	assert_int_equal(asset_alarm_restore(&b, NULL), 0);
	assert_int_equal(b.count, 2);
	json_decref(saved);
}

static void
a_bad_saved_list_changes_nothing(void **state)
{
	static const char *const bad[] = {
		"{}",
		"[1]",
		"[{\"id\":1,\"severity\":\"major\",\"message\":\"Management Proxy is "
		"unreachable\",\"subject\":\"x\",\"raised\":1,\"cleared\":0,\"reported\":false}]",
		"[{\"id\":1,\"severity\":\"grave\",\"message\":\"" ALARM_ASSET_DUPLICATE
		"\",\"subject\":\"x\",\"raised\":1,\"cleared\":0,\"reported\":false}]",
		"[{\"id\":0,\"severity\":\"major\",\"message\":\"" ALARM_ASSET_DUPLICATE
		"\",\"subject\":\"x\",\"raised\":1,\"cleared\":0,\"reported\":false}]",
		"[{\"id\":1,\"severity\":\"major\",\"message\":\"" ALARM_ASSET_DUPLICATE
		"\",\"subject\":\"x\",\"raised\":5,\"cleared\":4,\"reported\":false}]",
		"[{\"id\":1,\"severity\":\"major\",\"message\":\"" ALARM_ASSET_DUPLICATE
		"\",\"subject\":\"x\",\"raised\":5,\"cleared\":0}]",
		/* The first entry is good, the second repeats its id: neither is taken. */
		"[{\"id\":7,\"severity\":\"major\",\"message\":\"" ALARM_ASSET_DUPLICATE
		"\",\"subject\":\"x\",\"raised\":5,\"cleared\":0,\"reported\":true},"
		"{\"id\":7,\"severity\":\"major\",\"message\":\"" ALARM_ASSET_UNKNOWN
		"\",\"subject\":\"y\",\"raised\":5,\"cleared\":0,\"reported\":true}]",
	};
	struct alarms a;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *list = json_loads(bad[i], 0, NULL);

		assert_non_null(list);
		alarms_init(&a);
		assert_int_equal(asset_alarm_restore(&a, list), -1);
		assert_int_equal(a.count, 0);
		assert_int_equal(a.next_id, 1);
		json_decref(list);
	}
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
		cmocka_unit_test(the_alarms_outlive_a_restart),
		cmocka_unit_test(a_bad_saved_list_changes_nothing),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
