/*
 * The alarms devices raised (docs/protocol.md section 4, "Alarms"): the
 * active list that the fleet (GET /v1/admin/fleet) and GET /v1/admin/alarms
 * show, and an operator's acknowledgement or clearing of one of them. A
 * device reports each alarm as an event of step "alarm" whose reason reads
 * "SEVERITY raised: TEXT" or "SEVERITY cleared: TEXT" (docs/protocol.md
 * section 3); the last one of a device's TEXT decides, and an alarm's id is
 * the id of the event that raised it. An operator's marks are kept apart
 * (alarm_marks), by that id: an acknowledged alarm stays listed, marked; a
 * cleared one leaves the list for the history; the device raising it again
 * (a new event) makes a new alarm. Changes run in the admin request's
 * audited transaction (admin_api.c).
 * What it trusts: the device's event text only as text; an id from the path
 * only once it is a plain decimal number that names an active alarm.
 */
#include "cloud.h"

#include "core/error.h"
#include "core/json.h"
#include "core/rfc3339.h"
#include "server/admin_tokens.h"
#include "server/alarm_mark.h"
#include "server/api_path.h"
#include "server/http_server.h"
#include "server/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALARM_ID_DIGITS 18
#define ALARM_HISTORY_SHOWN "1000"

/* See cloud.h. */
int
cloud_active_alarms(struct store *st, json_t **out)
{
	struct store_result *res = NULL;
	json_t *latest = json_object(), *list = json_array(), *v;
	char key[CLOUD_SERIAL_MAX + 600], when[RFC3339_LEN + 1];
	const char *k;

	*out = NULL;
	if (latest == NULL || list == NULL ||
	    store_exec(st,
		       "SELECT e.id, e.serial, e.reason, e.time, m.acked, m.acked_by, m.cleared "
		       "FROM events e LEFT JOIN alarm_marks m ON m.event_id = e.id "
		       "WHERE e.step = 'alarm' AND e.reason IS NOT NULL ORDER BY e.id",
		       NULL, 0, &res) == -1) {
		json_decref(latest);
		json_decref(list);
		return -1;
	}
	for (size_t i = 0; i < store_rows(res); i++) {
		const char *serial = store_value(res, i, 1), *reason = store_value(res, i, 2);
		const char *raised = strstr(reason, " raised: "),
			   *cleared = strstr(reason, " cleared: ");
		const char *mark = raised ? raised : cleared;
		char severity[16] = "warning";
		const char *text = reason;

		if (mark != NULL && (size_t)(mark - reason) < sizeof(severity)) {
			snprintf(severity, sizeof(severity), "%.*s", (int)(mark - reason), reason);
			text = mark + (raised ? strlen(" raised: ") : strlen(" cleared: "));
		}
		snprintf(key, sizeof(key), "%s\n%s", serial, text);
		rfc3339_format((time_t)strtoll(store_value(res, i, 3), NULL, 10), when);
		/* Raised, unless the device cleared it since or an operator cleared this raise. */
		if ((raised != NULL || mark == NULL) && store_value(res, i, 6) == NULL)
			json_object_set_new(
				latest, key,
				json_pack("{s:I,s:s,s:s,s:s,s:s,s:o}", "id",
					  (json_int_t)strtoll(store_value(res, i, 0), NULL, 10),
					  "serial", serial, "severity", severity, "alarm", text,
					  "since", when, "acknowledged",
					  alarm_mark_json(res, i, 4, 5)));
		else
			json_object_del(latest, key);
	}
	json_object_foreach(latest, k, v) json_array_append(list, v);
	json_decref(latest);
	store_result_free(res);
	*out = list;
	return 0;
}

/* The active alarm with this id (a new reference), or NULL when none is. */
static json_t *
active_alarm(const json_t *list, const char *id)
{
	json_int_t want = (json_int_t)strtoll(id, NULL, 10);
	json_t *a;
	size_t i;

	json_array_foreach(list, i, a) if (json_integer_value(json_object_get(a, "id")) ==
					   want) return json_incref(a);
	return NULL;
}

/* GET /v1/admin/alarms/history: the alarms operators cleared, latest first. */
static void
alarm_history(struct http_ctx *ctx, struct store *st)
{
	struct store_result *res = NULL;
	json_t *list = json_array();
	char since[RFC3339_LEN + 1];

	if (list == NULL ||
	    store_exec(st,
		       "SELECT event_id, serial, severity, alarm, since, acked, acked_by, cleared, "
		       "cleared_by FROM alarm_marks WHERE cleared IS NOT NULL ORDER BY cleared "
		       "DESC, event_id DESC LIMIT " ALARM_HISTORY_SHOWN,
		       NULL, 0, &res) == -1) {
		json_decref(list);
		cloud_internal(ctx, "reading the alarm history");
		return;
	}
	for (size_t i = 0; i < store_rows(res); i++) {
		rfc3339_format((time_t)strtoll(store_value(res, i, 4), NULL, 10), since);
		json_array_append_new(
			list,
			json_pack("{s:I,s:s,s:s,s:s,s:s,s:o,s:o}", "id",
				  (json_int_t)strtoll(store_value(res, i, 0), NULL, 10), "serial",
				  store_value(res, i, 1), "severity", store_value(res, i, 2),
				  "alarm", store_value(res, i, 3), "since", since, "acknowledged",
				  alarm_mark_json(res, i, 5, 6), "cleared",
				  alarm_mark_json(res, i, 7, 8)));
	}
	store_result_free(res);
	http_reply_json(ctx, 200, json_pack("{s:o}", "alarms", list));
}

/*
 * POST /v1/admin/alarms/ID/ack or /clear: marks the active alarm ID acknowledged (the first
 * acknowledgement stays) or cleared, by who; answers the alarm with its marks.
 */
static void
alarm_change(struct http_ctx *ctx, struct store *st, const struct admin_who *who, const char *id,
	     bool clear)
{
	struct store_result *res = NULL;
	json_t *list = NULL, *alarm = NULL;
	char now[CLOUD_NUM_LEN], since[CLOUD_NUM_LEN];
	time_t since_time = 0;

	if (strspn(id, "0123456789") != strlen(id) || strlen(id) > ALARM_ID_DIGITS) {
		http_reply_error(
			ctx, 400, "bad-request",
			"the alarm id is a number ('onrampctl cloud alarm list' lists them)");
		return;
	}
	if (cloud_active_alarms(st, &list) == -1)
		goto failed;
	if ((alarm = active_alarm(list, id)) == NULL) {
		http_reply_error(
			ctx, 404, "no-alarm",
			"no active alarm has id %s ('onrampctl cloud alarm list' lists them)", id);
		goto out;
	}
	rfc3339_parse(json_string_value(json_object_get(alarm, "since")), &since_time);
	cloud_num((long long)time(NULL), now);
	cloud_num((long long)since_time, since);
	if (store_exec(
		    st,
		    "INSERT INTO alarm_marks (event_id, serial, severity, alarm, since) VALUES "
		    "(CAST($1 AS BIGINT), $2, $3, $4, CAST($5 AS BIGINT)) ON CONFLICT (event_id) "
		    "DO NOTHING",
		    (const char *[]){id, json_string_value(json_object_get(alarm, "serial")),
				     json_string_value(json_object_get(alarm, "severity")),
				     json_string_value(json_object_get(alarm, "alarm")), since},
		    5, NULL) == -1 ||
	    store_exec(st,
		       clear ? "UPDATE alarm_marks SET cleared = $1, cleared_by = $2 WHERE "
			       "event_id = CAST($3 AS BIGINT)"
			     : "UPDATE alarm_marks SET acked = $1, acked_by = $2 WHERE event_id = "
			       "CAST($3 AS BIGINT) AND acked IS NULL",
		       (const char *[]){now, who->name, id}, 3, NULL) == -1 ||
	    store_exec(st,
		       "SELECT acked, acked_by, cleared, cleared_by FROM alarm_marks WHERE "
		       "event_id = CAST($1 AS BIGINT)",
		       &id, 1, &res) == -1)
		goto failed;
	if (store_rows(res) != 1) {
		or_error("alarm %s has no marks after marking it", id);
		goto failed;
	}
	json_object_set_new(alarm, "acknowledged", alarm_mark_json(res, 0, 0, 1));
	if (clear)
		json_object_set_new(alarm, "cleared", alarm_mark_json(res, 0, 2, 3));
	log_info("alarm %s (%s of %s) %s by %s", id,
		 json_string_value(json_object_get(alarm, "alarm")),
		 json_string_value(json_object_get(alarm, "serial")),
		 clear ? "cleared" : "acknowledged", who->name);
	http_reply_json(ctx, 200, json_incref(alarm));
	goto out;
failed:
	cloud_internal(ctx, "marking an alarm");
out:
	json_decref(alarm);
	json_decref(list);
	store_result_free(res);
}

/* See cloud.h. */
void
cloud_admin_alarms(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
		   const struct api_path *p)
{
	bool get = strcmp(http_ctx_method(ctx), "GET") == 0,
	     post = strcmp(http_ctx_method(ctx), "POST") == 0;
	json_t *list = NULL;

	if (api_path_is(p, "alarms") && get) {
		if (cloud_active_alarms(st, &list) == -1)
			cloud_internal(ctx, "reading the alarms");
		else
			http_reply_json(ctx, 200, json_pack("{s:o}", "alarms", list));
	} else if (api_path_is(p, "alarms/history") && get) {
		alarm_history(ctx, st);
	} else if (api_path_is(p, "alarms/*/ack") && post) {
		alarm_change(ctx, st, who, p->seg[1], false);
	} else if (api_path_is(p, "alarms/*/clear") && post) {
		alarm_change(ctx, st, who, p->seg[1], true);
	} else if (api_path_is(p, "alarms") || api_path_is(p, "alarms/history") ||
		   api_path_is(p, "alarms/*/ack") || api_path_is(p, "alarms/*/clear")) {
		http_reply_error(ctx, 405, "method-not-allowed", "%s is not allowed here",
				 http_ctx_method(ctx));
	} else {
		http_reply_error(ctx, 404, "not-found", "no such admin endpoint");
	}
}
