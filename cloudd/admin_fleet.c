/*
 * The fleet at a glance (docs/protocol.md section 4): GET /v1/admin/fleet,
 * what the dashboard's fleet page and `onrampctl cloud fleet` show: devices
 * per stage and per site, the devices stuck (no progress for longer than
 * [cloudd] stuck-after), and the alarms devices raised and have not cleared.
 * Read-only; everything comes from the devices and events tables.
 */
#include "cloud.h"

#include "core/error.h"
#include "core/json.h"
#include "core/rfc3339.h"
#include "server/http_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds n to the count at obj[key]. */
static void
count_into(json_t *obj, const char *key, json_int_t n)
{
	json_t *v = json_object_get(obj, key);

	json_object_set_new(obj, key, json_integer((v ? json_integer_value(v) : 0) + n));
}

/* Stages over the whole fleet and per site, from one GROUP BY. */
static int
stage_counts(struct store *st, json_t *out)
{
	struct store_result *res = NULL;
	json_t *stages = json_object(), *sites = json_array(), *site = NULL;
	const char *org = NULL, *name = NULL;

	if (store_exec(st,
		       "SELECT COALESCE(org, ''), COALESCE(site, ''), stage, COUNT(*) FROM devices "
		       "GROUP BY org, site, stage ORDER BY 1, 2, 3",
		       NULL, 0, &res) == -1) {
		json_decref(stages);
		json_decref(sites);
		return -1;
	}
	for (size_t i = 0; i < store_rows(res); i++) {
		const char *o = store_value(res, i, 0), *s = store_value(res, i, 1);
		json_int_t n = strtoll(store_value(res, i, 3), NULL, 10);

		count_into(stages, store_value(res, i, 2), n);
		if (site == NULL || strcmp(o, org) != 0 || strcmp(s, name) != 0) {
			site = json_pack("{s:s?,s:s?,s:I,s:{}}", "organization", o[0] ? o : NULL,
					 "site", s[0] ? s : NULL, "devices", (json_int_t)0,
					 "stages");
			json_array_append_new(sites, site);
			org = o;
			name = s;
		}
		count_into(site, "devices", n);
		count_into(json_object_get(site, "stages"), store_value(res, i, 2), n);
	}
	json_object_set_new(out, "stages", stages);
	json_object_set_new(out, "sites", sites);
	store_result_free(res);
	return 0;
}

/* Claimed devices short of running whose last sign of life is older than stuck_after. */
static int
stuck_devices(struct store *st, unsigned long stuck_after, time_t now, json_t *out)
{
	char since[CLOUD_NUM_LEN], when[RFC3339_LEN + 1];
	struct store_result *res = NULL;
	const char *params[1] = {since};
	json_t *list = json_array();

	cloud_num((long long)now - (long long)stuck_after, since);
	if (store_exec(st,
		       "SELECT serial, stage, COALESCE(last_seen, imported) FROM devices "
		       "WHERE org IS NOT NULL AND stage <> 'running' "
		       "AND COALESCE(last_seen, imported) < $1 ORDER BY 3, serial",
		       params, 1, &res) == -1) {
		json_decref(list);
		return -1;
	}
	for (size_t i = 0; i < store_rows(res); i++) {
		rfc3339_format((time_t)strtoll(store_value(res, i, 2), NULL, 10), when);
		json_array_append_new(list,
				      json_pack("{s:s,s:s,s:s}", "serial", store_value(res, i, 0),
						"stage", store_value(res, i, 1), "since", when));
	}
	json_object_set_new(out, "stuck", list);
	json_object_set_new(out, "stuck_after", json_integer((json_int_t)stuck_after));
	store_result_free(res);
	return 0;
}

/* Adds the active alarms (admin_alarms.c) to out. */
static int
active_alarms(struct store *st, json_t *out)
{
	json_t *list;

	if (cloud_active_alarms(st, &list) == -1)
		return -1;
	json_object_set_new(out, "alarms", list);
	return 0;
}

/* See cloud.h: GET /v1/admin/fleet. */
void
cloud_admin_fleet(struct http_ctx *ctx, struct cloud_app *app, struct store *st)
{
	json_t *out = json_object();
	time_t now = time(NULL);
	char when[RFC3339_LEN + 1];

	if (strcmp(http_ctx_method(ctx), "GET") != 0) {
		json_decref(out);
		http_reply_error(ctx, 405, "method-not-allowed", "the fleet is read with GET");
		return;
	}
	rfc3339_format(now, when);
	json_object_set_new(out, "time", json_string(when));
	if (stage_counts(st, out) == -1 || stuck_devices(st, app->stuck_after, now, out) == -1 ||
	    active_alarms(st, out) == -1) {
		json_decref(out);
		cloud_internal(ctx, "summing up the fleet");
		return;
	}
	http_reply_json(ctx, 200, out);
}
