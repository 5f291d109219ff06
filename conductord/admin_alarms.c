/*
 * The conductor's alarms on the admin API (docs/protocol-conductor.md
 * "Alarms"): the active list, an operator's acknowledgement (the alarm stays
 * listed, marked with who and when), an operator's clearing (it leaves the
 * active list for the history, where it is kept with who cleared it and
 * when). Each change runs inside the admin request's audited transaction
 * (admin_api.c), so the change and its audit entry are one.
 * What it trusts: the admin token checked by admin_of; an alarm id from the
 * path only once it is a plain decimal number.
 */
#include "conductor.h"

#include "core/error.h"
#include "core/json.h"
#include "core/rfc3339.h"
#include "server/alarm_mark.h"
#include "server/http_server.h"
#include "server/store.h"

#include <stdio.h>
#include <string.h>

#define ALARMS_PREFIX "/admin/v1/alarms/"
#define ALARM_ID_DIGITS 18
#define ALARM_HISTORY_MAX "10000"  /* cleared alarms kept */
#define ALARM_HISTORY_SHOWN "1000" /* the latest shown: an answer stays well below 1 MiB */

/* The columns an alarm is answered with; the history adds cleared, cleared_by. */
#define ALARM_COLUMNS "id, severity, kind, subject, message, raised, last, count, acked, acked_by"

/* One alarm row (ALARM_COLUMNS, then cleared and cleared_by with history) as JSON. */
static json_t *
alarm_json(const struct store_result *res, size_t i, bool history)
{
	char raised[RFC3339_LEN + 1], last[RFC3339_LEN + 1];
	json_t *alarm;

	rfc3339_format((time_t)parse_i64(store_value(res, i, 5)), raised);
	rfc3339_format((time_t)parse_i64(store_value(res, i, 6)), last);
	alarm = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "id",
			  (json_int_t)parse_i64(store_value(res, i, 0)), "severity",
			  store_value(res, i, 1), "kind", store_value(res, i, 2), "subject",
			  store_value(res, i, 3), "message", store_value(res, i, 4), "raised",
			  raised, "last", last, "count",
			  (json_int_t)parse_i64(store_value(res, i, 7)), "acknowledged",
			  alarm_mark_json(res, i, 8, 9));
	if (alarm != NULL && history)
		json_object_set_new(alarm, "cleared", alarm_mark_json(res, i, 10, 11));
	return alarm;
}

/* Answers the rows of query as {"alarms": [...]}. */
static void
reply_alarms(struct http_ctx *ctx, struct worker *w, const char *query, bool history)
{
	struct store_result *res = NULL;
	json_t *list = json_array();

	if (list == NULL || store_exec(w->db, query, NULL, 0, &res) == -1) {
		json_decref(list);
		admin_reply_internal(ctx);
		return;
	}
	for (size_t i = 0; i < store_rows(res); i++)
		json_array_append_new(list, alarm_json(res, i, history));
	store_result_free(res);
	http_reply_json(ctx, 200, json_pack("{s:o}", "alarms", list));
}

/* GET /admin/v1/alarms: the active alarms, oldest first. */
void
handle_alarms(struct http_ctx *ctx, void *arg)
{
	struct worker *w;

	(void)arg;
	if ((w = admin_of(ctx)) != NULL)
		reply_alarms(ctx, w, "SELECT " ALARM_COLUMNS " FROM alarms ORDER BY id", false);
}

/* GET /admin/v1/alarms/history: the cleared alarms, latest cleared first (the last 1000). */
void
handle_alarm_history(struct http_ctx *ctx, void *arg)
{
	struct worker *w;

	(void)arg;
	if ((w = admin_of(ctx)) != NULL)
		reply_alarms(ctx, w,
			     "SELECT " ALARM_COLUMNS ", cleared, cleared_by FROM alarm_history "
			     "ORDER BY cleared DESC, id DESC LIMIT " ALARM_HISTORY_SHOWN,
			     true);
}

/* Splits "ID/ACTION" after the prefix; false when it is not that shape with a decimal id. */
static bool
alarm_path(const char *path, char id[ALARM_ID_DIGITS + 1], const char **action)
{
	size_t len;

	path += strlen(ALARMS_PREFIX);
	len = strspn(path, "0123456789");
	if (len == 0 || len > ALARM_ID_DIGITS || path[len] != '/')
		return false;
	memcpy(id, path, len);
	id[len] = '\0';
	*action = path + len + 1;
	return true;
}

/*
 * Acknowledges alarm id (the first acknowledgement stays), or clears it: moves it to the
 * history, marked cleared now, the history kept to its bound. Answers the alarm as it is now.
 */
static void
alarm_change(struct http_ctx *ctx, struct worker *w, const char *id, bool clear)
{
	static const char ack[] = "UPDATE alarms SET acked = $1, acked_by = $2 WHERE id = "
				  "CAST($3 AS BIGINT) AND acked IS NULL";
	static const char to_history[] =
		"INSERT INTO alarm_history (" ALARM_COLUMNS
		", cleared, cleared_by) SELECT " ALARM_COLUMNS
		", CAST($1 AS BIGINT), $2 FROM alarms WHERE id = CAST($3 AS BIGINT)";
	struct store_result *res = NULL;
	char now[24];
	bool active;

	fmt_i64((long long)time(NULL), now);
	if (store_exec(w->db, clear ? to_history : ack,
		       (const char *[]){now, CONDUCTOR_ADMIN_NAME, id}, 3, &res) == -1)
		goto failed;
	active = !clear || store_changes(res) == 1;
	store_result_free(res);
	res = NULL;
	if (active && clear &&
	    (store_exec(w->db, "DELETE FROM alarms WHERE id = CAST($1 AS BIGINT)", &id, 1, NULL) ==
		     -1 ||
	     store_exec(w->db,
			"DELETE FROM alarm_history WHERE id NOT IN (SELECT id FROM alarm_history "
			"ORDER BY cleared DESC, id DESC LIMIT " ALARM_HISTORY_MAX ")",
			NULL, 0, NULL) == -1))
		goto failed;
	if (active &&
	    store_exec(w->db,
		       clear ? "SELECT " ALARM_COLUMNS ", cleared, cleared_by FROM "
			       "alarm_history WHERE id = CAST($1 AS BIGINT)"
			     : "SELECT " ALARM_COLUMNS " FROM alarms WHERE id = CAST($1 AS BIGINT)",
		       &id, 1, &res) == -1)
		goto failed;
	if (!active || store_rows(res) != 1) {
		http_reply_error(ctx, 404, "no-alarm",
				 "no active alarm has id %s ('show alarms' lists them)", id);
		goto out;
	}
	log_info("alarm %s (%s [%s]) %s", id, store_value(res, 0, 2), store_value(res, 0, 3),
		 clear ? "cleared" : "acknowledged");
	http_reply_json(ctx, 200, alarm_json(res, 0, clear));
	goto out;
failed:
	admin_reply_internal(ctx);
out:
	store_result_free(res);
}

/* POST /admin/v1/alarms/ID/ack and POST /admin/v1/alarms/ID/clear. */
void
handle_alarm_action(struct http_ctx *ctx, void *arg)
{
	char id[ALARM_ID_DIGITS + 1];
	const char *action;
	struct worker *w;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL)
		return;
	if (!alarm_path(http_ctx_path(ctx), id, &action)) {
		http_reply_error(ctx, 400, "bad-request",
				 "the alarm id is a number ('show alarms' lists them)");
		return;
	}
	if (strcmp(action, "ack") == 0 || strcmp(action, "clear") == 0)
		alarm_change(ctx, w, id, strcmp(action, "clear") == 0);
	else
		http_reply_error(ctx, 404, "not-found", "no action '%s' on alarms (ack, clear)",
				 action);
}
