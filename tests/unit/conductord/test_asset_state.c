/*
 * Unit tests for conductord/asset_state.c: every (role, progress, event)
 * combination against a table written from the specification.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../conductord/asset_state.h"
#include "core/error.h"

#include <string.h>

#define X -1 /* the event cannot happen in that state */
#define PE AP_PENDING
#define CO AP_CONNECTED
#define CE AP_CERTIFIED
#define CF AP_CONFIGURED
#define MG AP_MIGRATING
#define MD AP_MIGRATED
#define RU AP_RUNNING

/* expect[role][progress][event]; a failed migration resumes to CF here. */
static const int expect[2][AP_COUNT][AE_COUNT] = {
	/* staging:  auth cert config migrate ok  failed in */
	{
		/* PE */ {CO, X, X, X, X, X, X},
		/* CO */ {CO, CE, CF, MG, X, X, CO},
		/* CE */ {CE, CE, CF, MG, X, X, CE},
		/* CF */ {CF, CF, CF, MG, X, X, RU},
		/* MG */ {MG, MG, MG, X, MD, CF, X},
		/* MD */ {MD, X, X, MG, MD, X, X},
		/* RU */ {RU, RU, RU, MG, X, X, RU},
	},
	/* production */
	{
		/* PE */ {CO, X, X, X, X, X, X},
		/* CO */ {CO, CE, RU, MG, X, X, CO},
		/* CE */ {CE, CE, RU, MG, X, X, CE},
		/* CF */ {CF, CF, RU, MG, X, X, RU},
		/* MG */ {MG, MG, MG, X, MD, CF, X},
		/* MD */ {MD, X, X, MG, MD, X, X},
		/* RU */ {RU, RU, RU, MG, X, X, RU},
	},
};

static void
every_transition(void **state)
{
	(void)state;
	for (int role = 0; role < 2; role++)
		for (int p = 0; p < AP_COUNT; p++)
			for (int e = 0; e < AE_COUNT; e++) {
				enum asset_progress next = AP_COUNT;
				int rc = asset_next((enum asset_role)role, (enum asset_progress)p,
						    AP_CONFIGURED, (enum asset_event)e, &next);

				if (expect[role][p][e] == X) {
					if (rc != -1)
						fail_msg("role %d %s + %s: accepted", role,
							 asset_progress_name(p),
							 asset_event_name(e));
					assert_int_equal(next, AP_COUNT);
					assert_non_null(strstr(or_errmsg(), "cannot happen"));
				} else {
					if (rc != 0)
						fail_msg("role %d %s + %s: %s", role,
							 asset_progress_name(p),
							 asset_event_name(e), or_errmsg());
					assert_int_equal(next, expect[role][p][e]);
				}
			}
}

static void
failed_migration_resumes_where_it_was(void **state)
{
	enum asset_progress next;

	(void)state;
	assert_int_equal(
		asset_next(ROLE_STAGING, AP_MIGRATING, AP_RUNNING, AE_MIGRATE_FAILED, &next), 0);
	assert_int_equal(next, AP_RUNNING);
	assert_int_equal(
		asset_next(ROLE_STAGING, AP_MIGRATING, AP_CERTIFIED, AE_MIGRATE_FAILED, &next), 0);
	assert_int_equal(next, AP_CERTIFIED);
	/* A bogus resume state is refused, never stored. */
	assert_int_equal(
		asset_next(ROLE_STAGING, AP_MIGRATING, AP_MIGRATING, AE_MIGRATE_FAILED, &next), -1);
	assert_int_equal(asset_next(ROLE_STAGING, AP_MIGRATING, (enum asset_progress)99,
				    AE_MIGRATE_FAILED, &next),
			 -1);
	assert_int_equal(asset_next(ROLE_STAGING, (enum asset_progress)99, AP_PENDING,
				    AE_AUTHENTICATED, &next),
			 -1);
	assert_int_equal(
		asset_next(ROLE_STAGING, AP_PENDING, AP_PENDING, (enum asset_event)99, &next), -1);
}

static void
migrate_policy(void **state)
{
	(void)state;
	assert_int_equal(asset_may_migrate(AP_CONFIGURED, true, false), 0);
	assert_int_equal(asset_may_migrate(AP_RUNNING, true, false), 0);
	assert_int_equal(asset_may_migrate(AP_CONFIGURED, false, false), -1);
	assert_non_null(strstr(or_errmsg(), "not connected"));
	assert_int_equal(asset_may_migrate(AP_CERTIFIED, true, false), -1);
	assert_non_null(strstr(or_errmsg(), "is certified, not configured"));
	assert_int_equal(asset_may_migrate(AP_CERTIFIED, false, true), 0);
	assert_int_equal(asset_may_migrate(AP_MIGRATED, false, true), 0);
	assert_int_equal(asset_may_migrate(AP_MIGRATING, true, true), -1);
	assert_non_null(strstr(or_errmsg(), "already under way"));
	assert_int_equal(asset_may_migrate(AP_PENDING, true, true), -1);
	assert_non_null(strstr(or_errmsg(), "never connected"));
}

static void
reassign_and_delete_policy(void **state)
{
	(void)state;
	assert_int_equal(asset_may_reassign(AP_PENDING, false), 0);
	assert_int_equal(asset_may_reassign(AP_PENDING, true), -1);
	assert_non_null(strstr(or_errmsg(), "already authenticated"));
	for (int p = AP_CONNECTED; p < AP_COUNT; p++)
		assert_int_equal(asset_may_reassign((enum asset_progress)p, false), -1);
	assert_int_equal(asset_may_delete(false, false), 0);
	assert_int_equal(asset_may_delete(false, true), 0);
	assert_int_equal(asset_may_delete(true, true), 0);
	assert_int_equal(asset_may_delete(true, false), -1);
	assert_non_null(strstr(or_errmsg(), "--force"));
}

static void
liveness_and_display(void **state)
{
	(void)state;
	assert_true(asset_online(true, 0, 1000, 60));
	assert_true(asset_online(false, 950, 1000, 60));
	assert_true(asset_online(false, 940, 1000, 60));
	assert_false(asset_online(false, 939, 1000, 60));
	assert_false(asset_online(false, 0, 1000, 60));
	assert_false(
		asset_online(false, 2000, 1000, 60)); /* a contact in the future is not trusted */

	assert_int_equal(asset_display(AP_PENDING, false), AS_PENDING);
	assert_int_equal(asset_display(AP_CONNECTED, true), AS_CONNECTED);
	assert_int_equal(asset_display(AP_CERTIFIED, true), AS_CERTIFIED);
	assert_int_equal(asset_display(AP_CONFIGURED, true), AS_CONFIGURED);
	assert_int_equal(asset_display(AP_RUNNING, true), AS_RUNNING);
	for (int p = AP_CONNECTED; p <= AP_RUNNING; p++)
		if (p != AP_MIGRATING && p != AP_MIGRATED)
			assert_int_equal(asset_display((enum asset_progress)p, false),
					 AS_DISCONNECTED);
	assert_int_equal(asset_display(AP_MIGRATING, false), AS_MIGRATING);
	assert_int_equal(asset_display(AP_MIGRATED, false), AS_MIGRATED);
	assert_int_equal(asset_display((enum asset_progress)42, true), AS_UNKNOWN);
}

static void
names_round_trip(void **state)
{
	enum asset_progress p;

	(void)state;
	for (int i = 0; i < AP_COUNT; i++) {
		assert_int_equal(
			asset_progress_parse(asset_progress_name((enum asset_progress)i), &p), 0);
		assert_int_equal(p, i);
	}
	assert_int_equal(asset_progress_parse("disconnected", &p), -1);
	assert_string_equal(asset_state_name(AS_DENIED), "denied");
	assert_string_equal(asset_state_name(AS_UNKNOWN), "unknown");
	assert_string_equal(asset_state_name(AS_DISCONNECTED), "disconnected");
	assert_string_equal(asset_state_name((enum asset_state)99), "invalid");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_transition),
		cmocka_unit_test(failed_migration_resumes_where_it_was),
		cmocka_unit_test(migrate_policy),
		cmocka_unit_test(reassign_and_delete_policy),
		cmocka_unit_test(liveness_and_display),
		cmocka_unit_test(names_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
