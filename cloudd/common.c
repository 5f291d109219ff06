/*
 * Small helpers every cloudd file uses: internal-error replies, numbers as
 * statement parameters, and a device's events with its stage and last error.
 */
#include "cloud.h"

#include "core/error.h"
#include "core/log.h"
#include "server/http_server.h"

#include <stdio.h>
#include <string.h>

/* See cloud.h. The cause is logged; the answer names only what failed, never a value. */
void
cloud_internal(struct http_ctx *ctx, const char *what)
{
	log_error("%s failed: %s", what, or_errmsg());
	http_reply_error(ctx, 500, "internal", "%s failed; nothing was changed", what);
}

/* See cloud.h. */
void
cloud_num(long long v, char *out)
{
	snprintf(out, CLOUD_NUM_LEN, "%lld", v);
}

/*
 * See cloud.h. The caller has checked step, outcome and reason. The last error stays the
 * device's current one: a later success of the step that failed clears it (the step is the
 * text before ": ", and steps hold no ':').
 */
int
cloud_event(struct store *st, const char *serial, time_t when, const char *source, const char *step,
	    const char *outcome, const char *reason, const char *stage)
{
	char t[CLOUD_NUM_LEN], now[CLOUD_NUM_LEN], error[CLOUD_STEP_MAX + CLOUD_REASON_MAX + 3],
		cleared[CLOUD_STEP_MAX + 3];
	const char *params[7] = {serial, t, now, source, step, outcome, reason};
	bool failed = strcmp(outcome, "failed") == 0, ok = strcmp(outcome, "ok") == 0;

	cloud_num((long long)when, t);
	cloud_num((long long)time(NULL), now);
	if (store_exec(st,
		       "INSERT INTO events (serial, time, received, source, step, outcome, reason) "
		       "VALUES ($1, $2, $3, $4, $5, $6, $7)",
		       params, 7, NULL) == -1)
		return -1;
	/*
	 * An alarm is no step: it moves neither the stage nor the last error; it
	 * stays in the fleet's alarms until the device reports it cleared.
	 */
	if ((!failed && !ok && stage == NULL) || strcmp(step, "alarm") == 0)
		return 0;
	snprintf(error, sizeof(error), "%s: %s", step, reason ? reason : outcome);
	snprintf(cleared, sizeof(cleared), "%s: ", step);
	params[1] = stage;
	params[2] = failed ? error : NULL;
	params[3] = failed ? t : NULL;
	params[4] = ok ? cleared : NULL;
	/*
	 * Once running on its production conductor, a device's later successes
	 * (that conductor's own certificate and configuration) do not move its
	 * stage back; a failure still does, so trouble shows.
	 */
	return store_exec(
		st,
		"UPDATE devices SET stage = CASE WHEN CAST($3 AS TEXT) IS NULL AND "
		"stage = 'running' THEN stage ELSE COALESCE($2, stage) END, "
		"last_error = CASE WHEN substr(last_error, 1, length(CAST($5 AS TEXT))) = "
		"CAST($5 AS TEXT) THEN NULL ELSE COALESCE($3, last_error) END, "
		"last_error_time = CASE WHEN substr(last_error, 1, length(CAST($5 AS "
		"TEXT))) = CAST($5 AS TEXT) THEN NULL ELSE COALESCE(CAST($4 AS BIGINT), "
		"last_error_time) END WHERE serial = $1",
		params, 5, NULL);
}

/* See cloud.h. */
int
cloud_exists(struct store *st, const char *sql, const char *const *params, size_t n)
{
	struct store_result *res = NULL;
	int rc;

	if (store_exec(st, sql, params, n, &res) == -1)
		return -1;
	rc = store_rows(res) > 0;
	store_result_free(res);
	return rc;
}
