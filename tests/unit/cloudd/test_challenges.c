/*
 * Unit tests for cloudd/challenges.c: one-time use, the connection binding,
 * expiry, eviction of the oldest of a device's open challenges, unclaim.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../cloudd/challenges.h"

#include <stdio.h>
#include <string.h>

#define NOW 1000000

static const uint8_t conn_a[CHALLENGES_BINDING_LEN] = {1};
static const uint8_t conn_b[CHALLENGES_BINDING_LEN] = {2};

static int
setup(void **state)
{
	struct challenges *t;

	if (challenges_new(CHALLENGES_KEEP_S, &t) == -1)
		return -1;
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	challenges_free(*state);
	return 0;
}

/* Takes id of serial on conn at now: the refusal code, or "ok" with the questions checked. */
static const char *
take(struct challenges *t, const char *serial, const char *id, const uint8_t *conn, time_t now)
{
	char qc[OCRA_QUESTION_FIELD + 1], qs[OCRA_QUESTION_FIELD + 1];
	const char *code = NULL, *reason = NULL;

	if (challenges_take(t, serial, id, conn, now, qc, qs, &code, &reason) == -1) {
		assert_non_null(reason);
		return code;
	}
	assert_string_equal(qc, "QC-OF-TEST");
	assert_string_equal(qs, "QS-OF-TEST");
	return "ok";
}

static void
put(struct challenges *t, const char *serial, const char *id, const uint8_t *conn, time_t now)
{
	assert_int_equal(
		challenges_put(t, serial, id, "QC-OF-TEST", "QS-OF-TEST", now + 60, conn, now), 0);
}

static void
test_answered_once_on_its_own_connection(void **state)
{
	struct challenges *t = *state;

	put(t, "SN-1", "0001", conn_a, NOW);
	/* Another connection, another serial, another id: unknown, and not spent. */
	assert_string_equal(take(t, "SN-1", "0001", conn_b, NOW), "unknown-challenge");
	assert_string_equal(take(t, "SN-2", "0001", conn_a, NOW), "unknown-challenge");
	assert_string_equal(take(t, "SN-1", "0002", conn_a, NOW), "unknown-challenge");
	assert_string_equal(take(t, "SN-1", "0001", conn_a, NOW), "ok");
	assert_string_equal(take(t, "SN-1", "0001", conn_a, NOW), "challenge-used");
}

static void
test_expired_is_refused_and_used_up(void **state)
{
	struct challenges *t = *state;

	put(t, "SN-1", "0001", conn_a, NOW);
	assert_string_equal(take(t, "SN-1", "0001", conn_a, NOW + 60), "challenge-expired");
	assert_string_equal(take(t, "SN-1", "0001", conn_a, NOW + 61), "challenge-used");
	/* Long past the keeping time a new start drops it: then it is simply unknown. */
	put(t, "SN-1", "0002", conn_a, NOW + 60 + CHALLENGES_KEEP_S + 1);
	assert_string_equal(take(t, "SN-1", "0001", conn_a, NOW + 60 + CHALLENGES_KEEP_S + 1),
			    "unknown-challenge");
}

static void
test_flood_evicts_the_oldest_never_the_newest(void **state)
{
	struct challenges *t = *state;
	char id[16];
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "%04d", i);
		put(t, "SN-1", id, conn_b, NOW);
	}
	put(t, "SN-1", "genuine", conn_a, NOW);
	assert_string_equal(take(t, "SN-1", "genuine", conn_a, NOW), "ok");
	/* The 15 newest of the flood are still open, older ones were evicted. */
	for (i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "%04d", i);
		assert_string_equal(take(t, "SN-1", id, conn_b, NOW),
				    i >= 50 - (CHALLENGES_OPEN_MAX - 1) ? "ok"
									: "unknown-challenge");
	}
	/* Another device's challenges are not touched by this one's flood. */
	put(t, "SN-2", "other", conn_a, NOW);
	for (i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "x%04d", i);
		put(t, "SN-1", id, conn_b, NOW);
	}
	assert_string_equal(take(t, "SN-2", "other", conn_a, NOW), "ok");
}

static void
test_forget_drops_a_device(void **state)
{
	struct challenges *t = *state;

	put(t, "SN-1", "0001", conn_a, NOW);
	put(t, "SN-2", "0001", conn_a, NOW);
	challenges_forget(t, "SN-1");
	challenges_forget(t, "SN-3");
	assert_string_equal(take(t, "SN-1", "0001", conn_a, NOW), "unknown-challenge");
	assert_string_equal(take(t, "SN-2", "0001", conn_a, NOW), "ok");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_answered_once_on_its_own_connection, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_expired_is_refused_and_used_up, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flood_evicts_the_oldest_never_the_newest,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget_drops_a_device, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
