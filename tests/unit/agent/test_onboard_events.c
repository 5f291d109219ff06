/*
 * Unit tests for agent/onboard_events.c: order and sequence numbers, folding
 * of repeated failures, delivery marks per destination, alarms, the size
 * limit, printable reasons, and refusal of malformed state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "onboard_events.h"

#include <stdlib.h>
#include <string.h>

static struct ob_events ev, back;

static void
events_in_order_with_pending_per_destination(void **state)
{
	json_t *list;

	(void)state;
	ob_events_init(&ev);
	assert_int_equal(ob_events_add(&ev, "find-proxy", 100, "ok", "10.0.0.1:3128 (static)"), 1);
	assert_int_equal(ob_events_add(&ev, "phone-home", 101, "ok", NULL), 2);
	assert_int_equal(ob_events_pending(&ev, OB_DEST_CLOUD), 2);
	assert_int_equal(ob_events_pending(&ev, OB_DEST_CONDUCTOR), 2);

	list = ob_events_pending_json(&ev, OB_DEST_CLOUD, 1);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "step")),
			    "find-proxy");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "time")), 100);
	json_decref(list);

	ob_events_delivered(&ev, OB_DEST_CLOUD, 1, NULL, NULL);
	assert_int_equal(ob_events_pending(&ev, OB_DEST_CLOUD), 1);
	assert_int_equal(ob_events_pending(&ev, OB_DEST_CONDUCTOR), 2);
	list = ob_events_pending_json(&ev, OB_DEST_CLOUD, 64);
	assert_int_equal(json_array_size(list), 1);
	/* no reason: no "reason" key */
	assert_null(json_object_get(json_array_get(list, 0), "reason"));
	json_decref(list);
	/* a delivery mark never goes back, nor past what exists */
	ob_events_delivered(&ev, OB_DEST_CLOUD, 0, NULL, NULL);
	assert_int_equal(ev.sent[OB_DEST_CLOUD], 1);
	ob_events_delivered(&ev, OB_DEST_CONDUCTOR, 99, NULL, NULL);
	assert_int_equal(ev.sent[OB_DEST_CONDUCTOR], 2);
}

static void
repeated_failures_fold_until_delivered(void **state)
{
	json_t *list;
	const char *reason;

	(void)state;
	ob_events_init(&ev);
	for (int i = 0; i < 5; i++)
		ob_events_add(&ev, "phone-home", 200 + i, "failed", "not claimed yet");
	assert_int_equal(ev.count, 1);
	assert_int_equal(ev.list[0].count, 5);
	assert_int_equal(ev.list[0].time, 204);
	list = ob_events_pending_json(&ev, OB_DEST_CLOUD, 64);
	reason = json_string_value(json_object_get(json_array_get(list, 0), "reason"));
	assert_string_equal(reason, "not claimed yet (5 times)");
	json_decref(list);

	/* another reason is another entry */
	ob_events_add(&ev, "phone-home", 210, "failed", "proxy-auth: the proxy wants credentials");
	assert_int_equal(ev.count, 2);
	/* once a destination has it, the next equal failure is new */
	ob_events_delivered(&ev, OB_DEST_CLOUD, 2, NULL, NULL);
	ob_events_add(&ev, "phone-home", 211, "failed", "proxy-auth: the proxy wants credentials");
	assert_int_equal(ev.count, 3);
	assert_non_null(ob_events_last_failure(&ev, "phone-home"));
	assert_int_equal(ob_events_last_failure(&ev, "phone-home")->time, 211);
	assert_null(ob_events_last_failure(&ev, "authenticate"));
}

static unsigned long delivered_alarm[4];
static size_t n_delivered_alarm;

static void
on_alarm(void *arg, const struct ob_event *e)
{
	(void)arg;
	delivered_alarm[n_delivered_alarm++] = e->alarm_id;
}

static void
alarms_are_reported_once_to_the_cloud(void **state)
{
	(void)state;
	ob_events_init(&ev);
	n_delivered_alarm = 0;
	ob_events_add_alarm(&ev, 7, false, "critical raised: Management Proxy is unreachable", 300);
	ob_events_add(&ev, "phone-home", 301, "failed", "proxy-unreachable");
	ob_events_add_alarm(&ev, 7, true, "critical cleared: Management Proxy is unreachable", 302);
	assert_string_equal(ev.list[0].step, "alarm");
	assert_string_equal(ev.list[0].outcome, "failed");
	assert_string_equal(ev.list[2].outcome, "ok");
	/* conductor deliveries do not count for alarms */
	ob_events_delivered(&ev, OB_DEST_CONDUCTOR, 3, on_alarm, NULL);
	assert_int_equal(n_delivered_alarm, 0);
	ob_events_delivered(&ev, OB_DEST_CLOUD, 2, on_alarm, NULL);
	assert_int_equal(n_delivered_alarm, 1);
	ob_events_delivered(&ev, OB_DEST_CLOUD, 3, on_alarm, NULL);
	assert_int_equal(n_delivered_alarm, 2);
	ob_events_delivered(&ev, OB_DEST_CLOUD, 3, on_alarm, NULL);
	assert_int_equal(n_delivered_alarm, 2);
	assert_int_equal(delivered_alarm[0], 7);
}

static void
size_limit_drops_the_oldest_and_reasons_are_printable(void **state)
{
	char reason[600];

	(void)state;
	ob_events_init(&ev);
	for (int i = 0; i < OB_EVENTS_KEEP + 10; i++)
		ob_events_add(&ev, i % 2 ? "certificate" : "configuration", i, "ok", NULL);
	assert_int_equal(ev.count, OB_EVENTS_KEEP);
	assert_int_equal(ev.dropped, 10);
	assert_int_equal(ev.list[0].seq, 11);
	assert_int_equal(ob_events_pending(&ev, OB_DEST_CLOUD), OB_EVENTS_KEEP);

	memset(reason, 'x', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	reason[3] = '\n';
	reason[4] = (char)0xc3;
	ob_events_add(&ev, "phone-home", 999, "failed", reason);
	assert_int_equal(strlen(ev.list[ev.count - 1].reason), OB_EVENT_REASON_MAX - 1);
	assert_memory_equal(ev.list[ev.count - 1].reason, "xxx??x", 6);
}

static void
round_trip_and_malformed_state(void **state)
{
	json_t *j, *bad;

	(void)state;
	ob_events_init(&ev);
	ob_events_add(&ev, "phone-home", 10, "failed", "dns: cannot resolve");
	ob_events_add(&ev, "phone-home", 11, "failed", "dns: cannot resolve");
	ob_events_add_alarm(&ev, 3, false, "critical raised", 12);
	ob_events_add(&ev, "phone-home", 13, "ok", "cloud https://c");
	ob_events_delivered(&ev, OB_DEST_CLOUD, 2, NULL, NULL);
	j = ob_events_to_json(&ev);
	assert_non_null(j);
	assert_int_equal(ob_events_from_json(j, &back), 0);
	assert_int_equal(back.count, 3);
	assert_int_equal(back.list[0].count, 2);
	assert_int_equal(back.list[1].alarm_id, 3);
	assert_int_equal(back.next_seq, ev.next_seq);
	assert_int_equal(back.sent[OB_DEST_CLOUD], 2);
	assert_int_equal(back.sent[OB_DEST_CONDUCTOR], 0);

	/* each corruption is refused and leaves the target as it was */
	bad = json_deep_copy(j);
	json_object_set_new(bad, "sent_cloud", json_integer(100));
	assert_int_equal(ob_events_from_json(bad, &back), -1);
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(json_array_get(json_object_get(bad, "list"), 1), "seq",
			    json_integer(1));
	assert_int_equal(ob_events_from_json(bad, &back), -1);
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(json_array_get(json_object_get(bad, "list"), 0), "outcome",
			    json_string("maybe"));
	assert_int_equal(ob_events_from_json(bad, &back), -1);
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(json_array_get(json_object_get(bad, "list"), 0), "count",
			    json_integer(0));
	assert_int_equal(ob_events_from_json(bad, &back), -1);
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(bad, "list", json_string("no"));
	assert_int_equal(ob_events_from_json(bad, &back), -1);
	json_decref(bad);
	assert_int_equal(ob_events_from_json(json_null(), &back), -1);
	assert_int_equal(back.count, 3);
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(events_in_order_with_pending_per_destination),
		cmocka_unit_test(repeated_failures_fold_until_delivered),
		cmocka_unit_test(alarms_are_reported_once_to_the_cloud),
		cmocka_unit_test(size_limit_drops_the_oldest_and_reasons_are_printable),
		cmocka_unit_test(round_trip_and_malformed_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
