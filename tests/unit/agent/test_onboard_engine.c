/*
 * Unit tests for agent/onboard_engine.c: the flow's order, backoff with
 * Retry-After, commands in any order, migrate with fallback, resumption from
 * the serialised state, and refusal of inconsistent state files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "onboard_engine.h"

#include <string.h>

static const struct ob_policy policy = {
	.base_s = 2, .cap_s = 300, .min_s = 1, .revert_window_s = 300};

/* Runs the linear steps up to and including `last`. */
static void
advance_to(struct ob_state *st, enum ob_step last, time_t now)
{
	for (int s = OB_FIND_PROXY; s <= (int)last; s++) {
		struct ob_action a = onboard_next(st, now);
		assert_int_equal(a.kind, OB_ACT_RUN);
		assert_int_equal(a.step, s);
		onboard_step_done(st, (enum ob_step)s, now);
	}
}

/* The cloud steps after find-proxy, each done at `now`. */
static void
cloud_steps_done(struct ob_state *st, time_t now)
{
	for (int s = OB_PHONE_HOME; s <= OB_ONBOARDING_INFO; s++)
		onboard_step_done(st, (enum ob_step)s, now);
}

static void
linear_flow_then_commands_then_migrate(void **state)
{
	struct ob_state st;
	struct ob_action a;

	(void)state;
	onboard_init(&st);
	advance_to(&st, OB_STAGING_CONNECT, 1000);

	a = onboard_next(&st, 1000);
	assert_int_equal(a.kind, OB_ACT_SERVE_STAGING);
	assert_int_equal(a.step, OB_CERTIFICATE);
	/* The conductor may send commands in its own order. */
	onboard_step_done(&st, OB_CONFIGURATION, 1001);
	assert_int_equal(onboard_next(&st, 1001).step, OB_CERTIFICATE);
	onboard_step_done(&st, OB_CERTIFICATE, 1002);
	onboard_step_done(&st, OB_PRODUCTION_INFO, 1003);
	a = onboard_next(&st, 1003);
	assert_int_equal(a.kind, OB_ACT_SERVE_STAGING);
	assert_int_equal(a.step, OB_MIGRATE);

	onboard_migrate_requested(&st, &policy, 1004);
	a = onboard_next(&st, 1004);
	assert_int_equal(a.kind, OB_ACT_RUN);
	assert_int_equal(a.step, OB_MIGRATE);
	onboard_step_done(&st, OB_MIGRATE, 1005);
	a = onboard_next(&st, 1005);
	assert_int_equal(a.kind, OB_ACT_RUN);
	assert_int_equal(a.step, OB_RUNNING);
	onboard_step_done(&st, OB_RUNNING, 1006);
	assert_int_equal(onboard_next(&st, 1006).kind, OB_ACT_IDLE);
}

static void
backoff_grows_with_cap_and_honours_retry_after(void **state)
{
	struct ob_state st;
	struct ob_action a;

	(void)state;
	onboard_init(&st);
	advance_to(&st, OB_FIND_PROXY, 100);
	/* Full jitter at its ceiling: 2, 4, 8, ... capped at 300. */
	onboard_step_failed(&st, &policy, OB_PHONE_HOME, "not claimed yet", -1, 1.0, 100);
	assert_int_equal(st.next_at, 102);
	onboard_step_failed(&st, &policy, OB_PHONE_HOME, "not claimed yet", -1, 1.0, 100);
	assert_int_equal(st.next_at, 104);
	for (int i = 0; i < 20; i++)
		onboard_step_failed(&st, &policy, OB_PHONE_HOME, "x", -1, 1.0, 100);
	assert_int_equal(st.next_at, 400);
	/* Never a tight loop, even with zero jitter. */
	onboard_step_failed(&st, &policy, OB_PHONE_HOME, "x", -1, 0.0, 100);
	assert_int_equal(st.next_at, 101);
	/* Retry-After wins when longer, and is capped at an hour. */
	onboard_step_failed(&st, &policy, OB_PHONE_HOME, "x", 120, 0.0, 100);
	assert_int_equal(st.next_at, 220);
	onboard_step_failed(&st, &policy, OB_PHONE_HOME, "x", 999999, 0.0, 100);
	assert_int_equal(st.next_at, 100 + 3600);

	a = onboard_next(&st, 200);
	assert_int_equal(a.kind, OB_ACT_WAIT);
	assert_int_equal(a.step, OB_PHONE_HOME);
	assert_int_equal(a.at, 3700);
	assert_string_equal(st.last_error, "x");
	assert_int_equal(st.last_error_step, OB_PHONE_HOME);

	onboard_step_done(&st, OB_PHONE_HOME, 3700);
	assert_int_equal(st.attempt, 0);
	assert_int_equal(onboard_next(&st, 3700).kind, OB_ACT_RUN);
}

static void
migrate_falls_back_to_staging_after_window(void **state)
{
	struct ob_state st;
	struct ob_action a;

	(void)state;
	onboard_init(&st);
	advance_to(&st, OB_STAGING_CONNECT, 1000);
	onboard_step_done(&st, OB_CERTIFICATE, 1000);
	onboard_step_done(&st, OB_CONFIGURATION, 1000);
	onboard_step_done(&st, OB_PRODUCTION_INFO, 1000);
	onboard_migrate_requested(&st, &policy, 1000);
	onboard_step_failed(&st, &policy, OB_MIGRATE, "production conductor: connection refused",
			    -1, 1.0, 1010);
	assert_int_equal(st.migrate_deadline, 1300);
	assert_false(onboard_migrate_check_deadline(&st, 1299));
	assert_true(onboard_migrate_check_deadline(&st, 1300));
	assert_string_equal(st.migrate_fallback_reason, "production conductor: connection refused");
	assert_int_equal(st.migrations_failed, 1);
	/* Back on staging: reconnect, then await the next migrate. */
	a = onboard_next(&st, 1300);
	assert_int_equal(a.kind, OB_ACT_RUN);
	assert_int_equal(a.step, OB_STAGING_CONNECT);
	onboard_step_done(&st, OB_STAGING_CONNECT, 1301);
	a = onboard_next(&st, 1301);
	assert_int_equal(a.kind, OB_ACT_SERVE_STAGING);
	assert_int_equal(a.step, OB_MIGRATE);
	/* A second migrate succeeds and clears the reason. */
	onboard_migrate_requested(&st, &policy, 2000);
	onboard_step_done(&st, OB_MIGRATE, 2001);
	assert_string_equal(st.migrate_fallback_reason, "");
	assert_int_equal(onboard_next(&st, 2001).step, OB_RUNNING);

	/* A failure at the deadline itself falls back at once. */
	onboard_migrate_requested(&st, &policy, 3000);
	onboard_step_failed(&st, &policy, OB_MIGRATE, "timeout", -1, 1.0, 3300);
	assert_int_equal(st.migrations_failed, 2);
	assert_int_equal(onboard_current(&st), OB_STAGING_CONNECT);
}

static void
lost_connections_and_failed_commands(void **state)
{
	struct ob_state st;

	(void)state;
	onboard_init(&st);
	advance_to(&st, OB_STAGING_CONNECT, 10);
	/* A failed command is reported, not backed off from. */
	onboard_step_failed(&st, &policy, OB_CERTIFICATE, "CSR refused", -1, 1.0, 11);
	assert_int_equal(onboard_next(&st, 11).kind, OB_ACT_SERVE_STAGING);
	assert_int_equal(st.attempt, 0);
	onboard_connection_lost(&st, "staging conductor closed the connection", 12);
	assert_int_equal(onboard_current(&st), OB_STAGING_CONNECT);

	onboard_step_done(&st, OB_STAGING_CONNECT, 13);
	onboard_step_done(&st, OB_CERTIFICATE, 13);
	onboard_step_done(&st, OB_CONFIGURATION, 13);
	onboard_step_done(&st, OB_PRODUCTION_INFO, 13);
	onboard_migrate_requested(&st, &policy, 14);
	onboard_step_done(&st, OB_MIGRATE, 15);
	onboard_step_done(&st, OB_RUNNING, 16);
	/* On production, a lost connection reconnects to production. */
	onboard_connection_lost(&st, "production conductor restarted", 17);
	assert_int_equal(onboard_current(&st), OB_RUNNING);
	assert_int_equal(onboard_next(&st, 17).kind, OB_ACT_RUN);
	assert_true(onboard_is_done(&st, OB_STAGING_CONNECT));
}

static void
state_round_trips_through_json(void **state)
{
	struct ob_state st, back;
	json_t *json;

	(void)state;
	onboard_init(&st);
	advance_to(&st, OB_STAGING_CONNECT, 500);
	onboard_step_done(&st, OB_CERTIFICATE, 501);
	onboard_migrate_requested(&st, &policy, 502);
	onboard_step_failed(&st, &policy, OB_MIGRATE, "refused \"quoted\"", 30, 0.5, 503);
	json = onboard_to_json(&st);
	assert_non_null(json);
	assert_int_equal(onboard_from_json(json, &back), 0);
	json_decref(json);
	assert_memory_equal(back.done_at, st.done_at, sizeof(st.done_at));
	assert_int_equal(back.next_at, st.next_at);
	assert_int_equal(back.attempt, st.attempt);
	assert_int_equal(back.migrate_deadline, st.migrate_deadline);
	assert_string_equal(back.last_error, st.last_error);
	assert_int_equal(back.last_error_step, OB_MIGRATE);
	/* Resuming after a restart continues exactly where it was. */
	assert_int_equal(onboard_next(&back, 600).step, onboard_next(&st, 600).step);
	assert_int_equal(onboard_next(&back, 600).kind, onboard_next(&st, 600).kind);
}

static void
refuses_inconsistent_state(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{}",
		"{\"version\":2}",
		"{\"version\":1,\"done\":[]}",
		"{\"version\":1,\"done\":{\"teleport\":5}}",
		"{\"version\":1,\"done\":{\"find-proxy\":0}}",
		"{\"version\":1,\"done\":{\"phone-home\":5}}",
		"{\"version\":1,\"done\":{\"find-proxy\":1,\"phone-home\":2,\"running\":3}}",
		"{\"version\":1,\"attempt\":-1}",
		"{\"version\":1,\"next_at\":\"soon\"}",
		"{\"version\":1,\"last_error\":{\"step\":\"nope\",\"reason\":\"x\",\"at\":1}}",
		"{\"version\":1,\"last_error\":{\"step\":\"migrate\",\"reason\":7,\"at\":1}}",
	};
	struct ob_state st;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);
		assert_non_null(j);
		if (onboard_from_json(j, &st) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(strstr(or_errmsg(), "onboarding state"));
		json_decref(j);
	}
}

static void
step_names(void **state)
{
	enum ob_step s;

	(void)state;
	for (int i = 0; i < OB_STEP_COUNT; i++) {
		assert_int_equal(onboard_step_from_name(onboard_step_name((enum ob_step)i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(onboard_step_from_name("x", &s), -1);
	assert_string_equal(onboard_step_name(OB_STEP_COUNT), "unknown");
}

/* A migration the conductor client runs: started (e.g. after a restart), then failed. */
static void
migrate_started_then_failed_keeps_the_reason(void **state)
{
	struct ob_state st;
	struct ob_action a;

	(void)state;
	onboard_init(&st);
	advance_to(&st, OB_STAGING_CONNECT, 2000);
	onboard_step_done(&st, OB_CERTIFICATE, 2001);
	onboard_step_done(&st, OB_CONFIGURATION, 2002);
	onboard_step_done(&st, OB_PRODUCTION_INFO, 2003);
	onboard_migrate_started(&st, 2300);
	assert_int_equal(st.migrate_deadline, 2300);
	a = onboard_next(&st, 2004);
	assert_int_equal(a.kind, OB_ACT_RUN);
	assert_int_equal(a.step, OB_MIGRATE);

	onboard_migrate_failed(&st, "could not reach the production conductor", 2300);
	assert_int_equal(st.migrate_deadline, 0);
	assert_int_equal(st.migrations_failed, 1);
	assert_string_equal(st.migrate_fallback_reason, "could not reach the production conductor");
	assert_int_equal(st.last_error_step, OB_MIGRATE);
	/* Back to staging: reconnect, then wait for the next migrate there. */
	a = onboard_next(&st, 2300);
	assert_int_equal(a.kind, OB_ACT_RUN);
	assert_int_equal(a.step, OB_STAGING_CONNECT);
	onboard_step_done(&st, OB_STAGING_CONNECT, 2301);
	a = onboard_next(&st, 2301);
	assert_int_equal(a.kind, OB_ACT_SERVE_STAGING);
	assert_int_equal(a.step, OB_MIGRATE);
	/* The certificate and configuration stay: a later migrate can succeed. */
	assert_true(onboard_is_done(&st, OB_CERTIFICATE));
	assert_true(onboard_is_done(&st, OB_PRODUCTION_INFO));

	onboard_migrate_started(&st, 2600);
	onboard_step_done(&st, OB_MIGRATE, 2400);
	onboard_step_done(&st, OB_RUNNING, 2401);
	assert_int_equal(onboard_next(&st, 2401).kind, OB_ACT_IDLE);
	assert_string_equal(st.migrate_fallback_reason, "");
	assert_int_equal(st.migrations_failed, 1);
}

/* The cloud the redirector named does not know the device: phone home again. */
static void
redo_from_phone_home(void **state)
{
	struct ob_state st;

	(void)state;
	onboard_init(&st);
	advance_to(&st, OB_PHONE_HOME, 3000);
	onboard_step_failed(&st, &policy, OB_AUTHENTICATE, "server-not-proven", -1, 1.0, 3001);
	onboard_redo_from(&st, OB_PHONE_HOME);
	assert_false(onboard_is_done(&st, OB_PHONE_HOME));
	assert_true(onboard_is_done(&st, OB_FIND_PROXY));
	assert_int_equal(onboard_next(&st, 3001).kind, OB_ACT_WAIT); /* the backoff stays */
	assert_int_equal(onboard_next(&st, 3001).step, OB_PHONE_HOME);
	/* Never once a conductor has the router, and never for other steps. */
	for (int s = OB_PHONE_HOME; s <= OB_STAGING_CONNECT; s++)
		onboard_step_done(&st, (enum ob_step)s, 4000);
	onboard_redo_from(&st, OB_PHONE_HOME);
	assert_true(onboard_is_done(&st, OB_PHONE_HOME));
	onboard_init(&st);
	advance_to(&st, OB_AUTHENTICATE, 5000);
	onboard_redo_from(&st, OB_FIND_PROXY);
	assert_true(onboard_is_done(&st, OB_FIND_PROXY));
}

static void
an_overdue_migration_is_seen(void **state)
{
	struct ob_state st;

	(void)state;
	onboard_init(&st);
	assert_false(onboard_migrate_overdue(&st, 100000));
	onboard_migrate_started(&st, 1000);
	assert_false(onboard_migrate_overdue(&st, 1000));
	assert_false(onboard_migrate_overdue(&st, 1000 + OB_REVERT_GRACE_S - 1));
	assert_true(onboard_migrate_overdue(&st, 1000 + OB_REVERT_GRACE_S));
	onboard_migrate_failed(&st, "overdue", 1000 + OB_REVERT_GRACE_S);
	assert_false(onboard_migrate_overdue(&st, 99999));
	assert_string_equal(st.migrate_fallback_reason, "overdue");
	/* A migration that succeeded is never overdue. */
	onboard_migrate_started(&st, 2000);
	onboard_step_done(&st, OB_MIGRATE, 2001);
	assert_false(onboard_migrate_overdue(&st, 99999));
}

static void
causes_from_reasons(void **state)
{
	(void)state;
	assert_int_equal(
		onboard_cause(OB_STAGING_CONNECT,
			      "conductor 127.0.0.1:1: POST /v1/auth: 401 bad-proof: wrong"),
		OB_CAUSE_SETTINGS);
	assert_int_equal(onboard_cause(OB_STAGING_CONNECT,
				       "conductor a:1: POST /v1/auth: 403 unknown-asset: not here"),
			 OB_CAUSE_SETTINGS);
	assert_int_equal(onboard_cause(OB_STAGING_CONNECT,
				       "conductor a:1: POST /v1/auth: 401 revoked-psk: revoked"),
			 OB_CAUSE_SETTINGS);
	assert_int_equal(onboard_cause(OB_STAGING_CONNECT,
				       "conductor a:1: POST /v1/hello: connect: proxy p could not"),
			 OB_CAUSE_SETTINGS);
	assert_int_equal(onboard_cause(OB_STAGING_CONNECT,
				       "conductor a:1: POST /v1/hello: tls-untrusted: not trusted"),
			 OB_CAUSE_SETTINGS);
	/* The proxy is no setting of the cloud's. */
	assert_int_equal(onboard_cause(OB_STAGING_CONNECT,
				       "conductor a:1: POST /v1/hello: proxy-auth: refused"),
			 OB_CAUSE_PROXY);
	assert_int_equal(onboard_cause(OB_PHONE_HOME, "proxy-auth: proxy p refused the user"),
			 OB_CAUSE_PROXY);
	assert_int_equal(onboard_cause(OB_FIND_PROXY, "no management proxy found yet (mode x)"),
			 OB_CAUSE_PROXY);
	assert_int_equal(onboard_cause(OB_PHONE_HOME, "not claimed yet: 404"), OB_CAUSE_CLAIM);
	assert_int_equal(onboard_cause(OB_AUTHENTICATE, "locked-out: too many failures"),
			 OB_CAUSE_OPERATOR);
	/* A cloud that cannot be reached is no setting a cloud could send. */
	assert_int_equal(onboard_cause(OB_PHONE_HOME, "connect: cannot connect to x"),
			 OB_CAUSE_TRANSIENT);
	assert_int_equal(onboard_cause(OB_STAGING_CONNECT, "the word connect in a sentence"),
			 OB_CAUSE_TRANSIENT);
	assert_int_equal(onboard_cause(OB_STAGING_CONNECT, "server: 500 error"),
			 OB_CAUSE_TRANSIENT);
	assert_int_equal(onboard_cause(OB_STAGING_CONNECT, NULL), OB_CAUSE_TRANSIENT);
}

static void
staging_connect_failing_on_settings_fetches_them_again(void **state)
{
	const char *bad = "conductor a:1: POST /v1/auth: 401 bad-proof: wrong";
	struct ob_state st;
	struct ob_action a;

	(void)state;
	onboard_init(&st);
	advance_to(&st, OB_ONBOARDING_INFO, 1000);
	/* Fetched just now: not again before the refresh interval. */
	onboard_step_failed(&st, &policy, OB_STAGING_CONNECT, bad, -1, 0.5, 1001);
	assert_true(onboard_is_done(&st, OB_ONBOARDING_INFO));
	onboard_step_failed(&st, &policy, OB_STAGING_CONNECT, bad, -1, 0.5,
			    1000 + OB_REFETCH_MAX_S - 1);
	assert_true(onboard_is_done(&st, OB_ONBOARDING_INFO));
	/* Older: the onboarding information is fetched again, at once. */
	onboard_step_failed(&st, &policy, OB_STAGING_CONNECT, bad, -1, 1.0,
			    1000 + OB_REFETCH_MAX_S);
	assert_false(onboard_is_done(&st, OB_ONBOARDING_INFO));
	assert_true(onboard_is_done(&st, OB_AUTHENTICATE));
	a = onboard_next(&st, 1000 + OB_REFETCH_MAX_S);
	assert_int_equal(a.kind, OB_ACT_RUN);
	assert_int_equal(a.step, OB_ONBOARDING_INFO);
	onboard_step_done(&st, OB_ONBOARDING_INFO, 1100);
	assert_int_equal(onboard_next(&st, 1100).step, OB_STAGING_CONNECT);

	/* A short retry-cap makes the interval shorter. */
	struct ob_policy quick = policy;
	quick.cap_s = 2;
	onboard_step_failed(&st, &quick, OB_STAGING_CONNECT, bad, -1, 1.0, 1102);
	assert_false(onboard_is_done(&st, OB_ONBOARDING_INFO));
	onboard_step_done(&st, OB_ONBOARDING_INFO, 1103);

	/* A reason no setting cures changes nothing. */
	onboard_step_failed(&st, &policy, OB_STAGING_CONNECT, "server: 503", -1, 1.0, 5000);
	assert_true(onboard_is_done(&st, OB_ONBOARDING_INFO));

	/* Once the router is on production, staging's settings are history. */
	onboard_step_done(&st, OB_STAGING_CONNECT, 5001);
	onboard_step_done(&st, OB_MIGRATE, 5002);
	onboard_step_failed(&st, &policy, OB_STAGING_CONNECT, bad, -1, 1.0, 9000);
	assert_true(onboard_is_done(&st, OB_ONBOARDING_INFO));
}

static void
waiting_for_says_who(void **state)
{
	struct ob_state st;
	struct ob_wait w;

	(void)state;
	onboard_init(&st);
	assert_int_equal(onboard_waiting_for(&st, 1000).kind, OB_WAITS_NOTHING);
	onboard_step_failed(&st, &policy, OB_FIND_PROXY, "no management proxy found yet", -1, 1.0,
			    1000);
	w = onboard_waiting_for(&st, 1000);
	assert_int_equal(w.kind, OB_WAITS_PROXY);
	assert_int_equal(w.until, st.next_at);
	onboard_step_done(&st, OB_FIND_PROXY, 1001);
	onboard_step_failed(&st, &policy, OB_PHONE_HOME, "not claimed yet: 404", 60, 1.0, 1001);
	w = onboard_waiting_for(&st, 1001);
	assert_int_equal(w.kind, OB_WAITS_CLAIM);
	assert_int_equal(w.until, 1061);
	onboard_step_failed(&st, &policy, OB_PHONE_HOME, "timeout: timed out", -1, 1.0, 1062);
	w = onboard_waiting_for(&st, 1062);
	assert_int_equal(w.kind, OB_WAITS_BACKOFF);
	assert_true(w.until > 1062);
	assert_string_equal(onboard_wait_name(w.kind), "backoff");
	/* Due now: nothing to wait for. */
	assert_int_equal(onboard_waiting_for(&st, w.until).kind, OB_WAITS_NOTHING);
	cloud_steps_done(&st, 2000);
	onboard_step_failed(&st, &policy, OB_STAGING_CONNECT,
			    "conductor a:1: POST /v1/auth: 401 bad-proof: wrong", -1, 1.0, 2001);
	w = onboard_waiting_for(&st, 2001);
	assert_int_equal(w.kind, OB_WAITS_OPERATOR);
	assert_int_equal(w.cause, OB_CAUSE_SETTINGS);
	onboard_step_done(&st, OB_STAGING_CONNECT, 2002);
	assert_int_equal(onboard_waiting_for(&st, 2002).kind, OB_WAITS_CONDUCTOR);
	onboard_step_done(&st, OB_CERTIFICATE, 2003);
	onboard_step_done(&st, OB_CONFIGURATION, 2003);
	onboard_step_done(&st, OB_PRODUCTION_INFO, 2003);
	assert_int_equal(onboard_waiting_for(&st, 2003).kind, OB_WAITS_CONDUCTOR);
	onboard_step_done(&st, OB_MIGRATE, 2004);
	onboard_step_done(&st, OB_RUNNING, 2005);
	assert_int_equal(onboard_waiting_for(&st, 2005).kind, OB_WAITS_DONE);
}

static void
retry_now_cuts_the_backoff(void **state)
{
	struct ob_state st;

	(void)state;
	onboard_init(&st);
	onboard_step_done(&st, OB_FIND_PROXY, 1000);
	onboard_step_failed(&st, &policy, OB_PHONE_HOME, "proxy-auth: refused", 200, 1.0, 1000);
	assert_int_equal(onboard_next(&st, 1001).kind, OB_ACT_WAIT);
	assert_int_equal(onboard_retry_now(&st, 1001), 1200);
	assert_int_equal(onboard_next(&st, 1001).kind, OB_ACT_RUN);
	assert_int_equal(onboard_next(&st, 1001).step, OB_PHONE_HOME);
	/* Nothing to cut: 0. */
	assert_int_equal(onboard_retry_now(&st, 1001), 0);
	/* At a staging-connect that fails on settings it fetches them now. */
	onboard_init(&st);
	advance_to(&st, OB_ONBOARDING_INFO, 2000);
	onboard_step_failed(&st, &policy, OB_STAGING_CONNECT,
			    "conductor a:1: POST /v1/hello: tls-untrusted: x", -1, 1.0, 2001);
	assert_true(onboard_is_done(&st, OB_ONBOARDING_INFO));
	onboard_retry_now(&st, 2002);
	assert_false(onboard_is_done(&st, OB_ONBOARDING_INFO));
	assert_int_equal(onboard_next(&st, 2002).step, OB_ONBOARDING_INFO);
	assert_int_equal(onboard_next(&st, 2002).kind, OB_ACT_RUN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(linear_flow_then_commands_then_migrate),
		cmocka_unit_test(backoff_grows_with_cap_and_honours_retry_after),
		cmocka_unit_test(migrate_falls_back_to_staging_after_window),
		cmocka_unit_test(lost_connections_and_failed_commands),
		cmocka_unit_test(state_round_trips_through_json),
		cmocka_unit_test(refuses_inconsistent_state),
		cmocka_unit_test(step_names),
		cmocka_unit_test(migrate_started_then_failed_keeps_the_reason),
		cmocka_unit_test(redo_from_phone_home),
		cmocka_unit_test(an_overdue_migration_is_seen),
		cmocka_unit_test(causes_from_reasons),
		cmocka_unit_test(staging_connect_failing_on_settings_fetches_them_again),
		cmocka_unit_test(waiting_for_says_who),
		cmocka_unit_test(retry_now_cuts_the_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
