/*
 * The cloud's admin endpoints for devices (docs/protocol.md section 4):
 * inventory import from factory records, the device list with stage and last
 * error, a device's events, claims and unclaims (pushed to the redirector).
 * A record is trusted only once its OCRA key decrypts with this cloud's
 * inventory key; the key, and the claim secret that proves claims to the
 * redirector, are sealed under the master key before they are stored.
 */
#include "challenges.h"
#include "cloud.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "device/record.h"
#include "proto/conductor_psk.h"
#include "server/admin_tokens.h"
#include "server/api_path.h"
#include "server/http_server.h"
#include "server/masterkey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEVICE_COLUMNS                                                                             \
	"serial, model, ocra_suite, claim_code, org, site, stage, last_error, "                    \
	"last_error_time, last_seen, failures, locked_until, imported, COALESCE(asset_id, serial)"

/* A time column as RFC 3339, or JSON null for NULL (and for 0 when zero_is_null). */
static json_t *
time_json(const char *v, bool zero_is_null)
{
	char text[RFC3339_LEN + 1];
	long long t;

	if (v == NULL)
		return json_null();
	t = strtoll(v, NULL, 10);
	if (t == 0 && zero_is_null)
		return json_null();
	rfc3339_format((time_t)t, text);
	return json_string(text);
}

/* One device row (DEVICE_COLUMNS order) as the API shows it; never its key. */
static json_t *
device_json(const struct store_result *res, size_t r, time_t now)
{
	long long locked = strtoll(store_value(res, r, 11), NULL, 10);

	return json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s?,s:s,s:s?,s:o,s:o,s:I,s:o,s:o,s:s}", "serial",
			 store_value(res, r, 0), "model", store_value(res, r, 1), "ocra_suite",
			 store_value(res, r, 2), "claim_code", store_value(res, r, 3),
			 "organization", store_value(res, r, 4), "site", store_value(res, r, 5),
			 "stage", store_value(res, r, 6), "last_error", store_value(res, r, 7),
			 "last_error_time", time_json(store_value(res, r, 8), false), "last_seen",
			 time_json(store_value(res, r, 9), false), "failures",
			 (json_int_t)strtoll(store_value(res, r, 10), NULL, 10), "locked_until",
			 locked > (long long)now ? time_json(store_value(res, r, 11), true)
						 : json_null(),
			 "imported", time_json(store_value(res, r, 12), false), "asset_id",
			 store_value(res, r, 13));
}

/* Replies with the device (status), or 404. */
static void
reply_device(struct http_ctx *ctx, struct store *st, const char *serial, int status)
{
	const char *params[1] = {serial};
	struct store_result *res = NULL;

	if (store_exec(st, "SELECT " DEVICE_COLUMNS " FROM devices WHERE serial = $1", params, 1,
		       &res) == -1)
		cloud_internal(ctx, "reading a device");
	else if (store_rows(res) == 0)
		http_reply_error(ctx, 404, "not-found", "no device with serial %s", serial);
	else
		http_reply_json(ctx, status, device_json(res, 0, time(NULL)));
	store_result_free(res);
}

/*
 * PUT /v1/admin/devices/SERIAL {"asset_id": ID or null}: the asset ID the device's onboarding
 * assertions name (null: its serial again). Checked like a conductor checks it.
 */
static void
set_device(struct http_ctx *ctx, struct store *st, const struct admin_who *who, const char *serial)
{
	const char *asset_id = NULL;
	struct store_result *res = NULL;
	json_t *body = NULL;

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if (!json_is_null(json_object_get(body, "asset_id")) &&
	    (json_get_string(body, "asset_id", true, CONDUCTOR_SUBJECT_MAX, &asset_id) == -1 ||
	     !conductor_valid_subject(asset_id) || strncmp(asset_id, "peer:", 5) == 0)) {
		http_reply_error(ctx, 400, "bad-request",
				 "asset_id must be 1 to %d printable characters without spaces, "
				 "not starting with peer: (or null)",
				 CONDUCTOR_SUBJECT_MAX);
		goto out;
	}
	if (store_exec(st, "UPDATE devices SET asset_id = $1 WHERE serial = $2",
		       (const char *[]){asset_id, serial}, 2, &res) == -1) {
		cloud_internal(ctx, "setting a device's asset ID");
		goto out;
	}
	if (store_changes(res) == 0) {
		http_reply_error(ctx, 404, "not-found", "no device with serial %s", serial);
		goto out;
	}
	log_info("device %s: asset ID %s set by '%s'", serial, asset_id ? asset_id : "(its serial)",
		 who->name);
	reply_device(ctx, st, serial, 200);
out:
	store_result_free(res);
	json_decref(body);
}

/* GET /v1/admin/devices: every device, by serial. */
static void
list_devices(struct http_ctx *ctx, struct store *st)
{
	struct store_result *res = NULL;
	time_t now = time(NULL);
	json_t *list;

	if (store_exec(st, "SELECT " DEVICE_COLUMNS " FROM devices ORDER BY serial", NULL, 0,
		       &res) == -1) {
		cloud_internal(ctx, "listing devices");
		return;
	}
	list = json_array();
	for (size_t i = 0; i < store_rows(res); i++)
		json_array_append_new(list, device_json(res, i, now));
	http_reply_json(ctx, 200, json_pack("{s:o}", "devices", list));
	store_result_free(res);
}

/* GET /v1/admin/devices/SERIAL/events (serial checked by the caller), oldest first. */
static void
device_events(struct http_ctx *ctx, struct store *st, const char *serial)
{
	const char *params[1] = {serial};
	struct store_result *res = NULL;
	json_t *list;

	if (store_exec(st,
		       "SELECT time, received, source, step, outcome, reason FROM events "
		       "WHERE serial = $1 ORDER BY time, id",
		       params, 1, &res) == -1) {
		cloud_internal(ctx, "reading events");
		return;
	}
	if (store_rows(res) == 0) {
		/* No events: an unknown device is a 404, a known one an empty list. */
		reply_device(ctx, st, serial, 0);
		store_result_free(res);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < store_rows(res); i++)
		json_array_append_new(
			list,
			json_pack("{s:o,s:o,s:s,s:s,s:s,s:s?}", "time",
				  time_json(store_value(res, i, 0), false), "received",
				  time_json(store_value(res, i, 1), false), "source",
				  store_value(res, i, 2), "step", store_value(res, i, 3), "outcome",
				  store_value(res, i, 4), "reason", store_value(res, i, 5)));
	http_reply_json(ctx, 200, json_pack("{s:s,s:o}", "serial", serial, "events", list));
	store_result_free(res);
}

/* POST /v1/admin/inventory {"record":RECORD,"claim_code"?}. */
static void
import(struct http_ctx *ctx, struct cloud_app *app, struct store *st, const struct admin_who *who)
{
	const char *code = NULL, *params[7];
	char context[32 + CLOUD_SERIAL_MAX], now[CLOUD_NUM_LEN], *sealed = NULL,
								 *claim_sealed = NULL;
	struct store_result *res = NULL;
	struct record rec = {0};
	struct ocra_suite suite;
	struct secret key = {0}, claim_secret = {0};
	json_t *body = NULL, *r;

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	r = json_object_get(body, "record");
	if (!json_is_object(r)) {
		http_reply_error(ctx, 400, "bad-request",
				 "field 'record' must be a factory record");
		goto out;
	}
	if (record_from_json(r, &rec) == -1 || cloud_check_serial(rec.serial) == -1 ||
	    cloud_device_suite(rec.ocra_suite, &suite) == -1 ||
	    json_get_string(body, "claim_code", false, CLOUD_CLAIM_CODE_MAX, &code) == -1 ||
	    (code != NULL && cloud_check_claim_code(code) == -1)) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (record_decrypt_key(&rec, app->inventory_key_pem, &key) == -1 ||
	    (rec.claim_secret_cms != NULL &&
	     record_decrypt_claim_secret(&rec, app->inventory_key_pem, &claim_secret) == -1)) {
		log_warn("record of %s refused: %s", rec.serial, or_errmsg());
		http_reply_error(ctx, 400, "bad-request", "record of %s: %s", rec.serial,
				 or_errmsg());
		goto out;
	}
	snprintf(context, sizeof(context), "ocra-key:%s", rec.serial);
	if (masterkey_seal(app->mk, context, key.data, key.len, &sealed) == -1) {
		cloud_internal(ctx, "sealing a device key");
		goto out;
	}
	snprintf(context, sizeof(context), "claim-secret:%s", rec.serial);
	if (claim_secret.data != NULL && masterkey_seal(app->mk, context, claim_secret.data,
							claim_secret.len, &claim_sealed) == -1) {
		cloud_internal(ctx, "sealing a claim secret");
		goto out;
	}
	cloud_num((long long)time(NULL), now);
	params[0] = rec.serial;
	params[1] = rec.model;
	params[2] = suite.text;
	params[3] = sealed;
	params[4] = code;
	params[5] = now;
	params[6] = claim_sealed;
	if (store_exec(
		    st,
		    "INSERT INTO devices (serial, model, ocra_suite, ocra_key_sealed, claim_code, "
		    "stage, imported, claim_secret_sealed) "
		    "VALUES ($1, $2, $3, $4, $5, 'imported', $6, $7) ON CONFLICT DO NOTHING",
		    params, 7, &res) == -1) {
		cloud_internal(ctx, "importing a device");
		goto out;
	}
	if (store_changes(res) == 0) {
		http_reply_error(ctx, 409, "exists", "serial %s%s%s is in the inventory already",
				 rec.serial, code ? " or claim code " : "", code ? code : "");
		goto out;
	}
	if (cloud_event(st, rec.serial, time(NULL), "cloud", "import", "ok", NULL, NULL) == -1)
		log_error("recording an event of %s failed: %s", rec.serial, or_errmsg());
	log_info("device %s (%s) imported by '%s'", rec.serial, rec.model, who->name);
	reply_device(ctx, st, rec.serial, 201);
out:
	secret_free(&key);
	secret_free(&claim_secret);
	free(sealed);
	free(claim_sealed);
	record_free(&rec);
	store_result_free(res);
	json_decref(body);
}

/* DELETE /v1/admin/devices/SERIAL: only an unclaimed device leaves the inventory. */
static void
delete_device(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
	      const char *serial)
{
	const char *params[1] = {serial};
	struct store_result *res = NULL;

	if (store_begin(st) == -1 ||
	    store_exec(st, "DELETE FROM devices WHERE serial = $1 AND org IS NULL", params, 1,
		       &res) == -1 ||
	    store_exec(st, "DELETE FROM device_tokens WHERE serial = $1", params, 1, NULL) == -1 ||
	    store_exec(st, "DELETE FROM events WHERE serial = $1", params, 1, NULL) == -1)
		goto fail;
	if (store_changes(res) == 0) {
		store_rollback(st);
		store_result_free(res);
		res = NULL;
		if (store_exec(st, "SELECT 1 FROM devices WHERE serial = $1", params, 1, &res) ==
		    -1)
			goto fail;
		if (store_rows(res) == 0)
			http_reply_error(ctx, 404, "not-found", "no device with serial %s", serial);
		else
			http_reply_error(ctx, 409, "already-claimed",
					 "device %s is claimed; unclaim it first", serial);
		goto out;
	}
	if (store_commit(st) == -1)
		goto fail;
	log_info("device %s removed from the inventory by '%s'", serial, who->name);
	http_reply_json(ctx, 200, json_pack("{s:s}", "deleted", serial));
	goto out;
fail:
	store_rollback(st);
	cloud_internal(ctx, "deleting a device");
out:
	store_result_free(res);
}

/* The serial named by a claim body (serial or claim_code) into serial; replies on failure. */
static int
claim_target(struct http_ctx *ctx, struct store *st, json_t *body, char *serial)
{
	const char *s = NULL, *code = NULL, *params[1];
	struct store_result *res = NULL;
	int rc = -1;

	if (json_get_string(body, "serial", false, CLOUD_SERIAL_MAX, &s) == -1 ||
	    (s != NULL && cloud_check_serial(s) == -1) ||
	    json_get_string(body, "claim_code", false, CLOUD_CLAIM_CODE_MAX, &code) == -1 ||
	    (code != NULL && cloud_check_claim_code(code) == -1)) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		return -1;
	}
	if ((s == NULL) == (code == NULL)) {
		http_reply_error(ctx, 400, "bad-request",
				 "give exactly one of serial and claim_code");
		return -1;
	}
	params[0] = s ? s : code;
	if (store_exec(st,
		       s ? "SELECT serial FROM devices WHERE serial = $1"
			 : "SELECT serial FROM devices WHERE claim_code = $1",
		       params, 1, &res) == -1) {
		cloud_internal(ctx, "finding a device");
	} else if (store_rows(res) == 0) {
		http_reply_error(ctx, 404, "not-found", "no device with %s %s",
				 s ? "serial" : "claim code", params[0]);
	} else {
		snprintf(serial, CLOUD_SERIAL_MAX + 1, "%s", store_value(res, 0, 0));
		rc = 0;
	}
	store_result_free(res);
	return rc;
}

/*
 * The device's claim secret, opened from the master key's seal; an empty
 * secret for a device imported from a version 1 record (it has none).
 */
static int
claim_secret_of(struct cloud_app *app, struct store *st, const char *serial, struct secret *secret)
{
	const char *params[1] = {serial};
	struct store_result *res = NULL;
	char context[32 + CLOUD_SERIAL_MAX];
	struct secret raw = {0};
	int rc = -1;

	*secret = (struct secret){0};
	if (store_exec(st, "SELECT claim_secret_sealed FROM devices WHERE serial = $1", params, 1,
		       &res) == -1 ||
	    store_rows(res) != 1)
		goto out;
	if (store_value(res, 0, 0) == NULL) {
		rc = 0;
		goto out;
	}
	snprintf(context, sizeof(context), "claim-secret:%s", serial);
	if (masterkey_open(app->mk, context, store_value(res, 0, 0), &raw) == -1 ||
	    secret_alloc(secret, raw.len + 1) == -1)
		goto out;
	/* NUL-terminated: it goes into JSON as text. */
	memcpy(secret->data, raw.data, raw.len);
	secret->len = raw.len;
	rc = 0;
out:
	secret_free(&raw);
	store_result_free(res);
	return rc;
}

/* Pushes to the redirector when there is one; replies 502 and returns -1 when it refused. */
static int
push(struct http_ctx *ctx, struct cloud_app *app, struct store *st, const char *serial, bool claim)
{
	struct secret secret = {0};
	char detail[256];
	int rc;

	if (app->redirector_url == NULL)
		return 0;
	if (claim && claim_secret_of(app, st, serial, &secret) == -1) {
		secret_free(&secret);
		cloud_internal(ctx, "opening a claim secret");
		return -1;
	}
	rc = cloud_redirector_claim(app, serial, claim,
				    secret.data != NULL ? (const char *)secret.data : NULL, detail,
				    sizeof(detail));
	secret_free(&secret);
	if (rc == 0)
		return 0;
	log_warn("redirector refused %s of %s: %s", claim ? "the claim" : "the unclaim", serial,
		 detail);
	http_reply_error(ctx, 502, "redirector-failed", "the redirector did not take the %s: %s",
			 claim ? "claim" : "unclaim", detail);
	return -1;
}

/* POST /v1/admin/claims: checked, pushed to the redirector, then recorded. */
static void
claim(struct http_ctx *ctx, struct cloud_app *app, struct store *st, const struct admin_who *who)
{
	const char *org = NULL, *site = NULL, *params[3];
	char serial[CLOUD_SERIAL_MAX + 1], reason[2 * CLOUD_NAME_MAX + 2];
	struct store_result *res = NULL;
	json_t *body = NULL;
	int found;

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "organization", true, CLOUD_NAME_MAX, &org) == -1 ||
	    cloud_check_name("organisation", org) == -1 ||
	    json_get_string(body, "site", true, CLOUD_NAME_MAX, &site) == -1 ||
	    cloud_check_name("site", site) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (claim_target(ctx, st, body, serial) == -1)
		goto out;
	params[0] = org;
	params[1] = site;
	if ((found = cloud_exists(st, "SELECT 1 FROM sites WHERE org = $1 AND name = $2", params,
				  2)) != 1) {
		if (found == -1)
			cloud_internal(ctx, "claiming a device");
		else
			http_reply_error(ctx, 404, "not-found", "no site '%s' in organisation '%s'",
					 site, org);
		goto out;
	}
	params[0] = serial;
	params[1] = org;
	params[2] = site;
	if ((found = cloud_exists(st, "SELECT 1 FROM devices WHERE serial = $1 AND org IS NOT NULL",
				  params, 1)) != 0) {
		if (found == -1)
			cloud_internal(ctx, "claiming a device");
		else
			http_reply_error(ctx, 409, "already-claimed",
					 "device %s is claimed already; unclaim it first", serial);
		goto out;
	}
	if (push(ctx, app, st, serial, true) == -1)
		goto out;
	/*
	 * Should this fail, the redirector holds a claim that is ours either way
	 * (same cloud URL), and a retry of the claim puts it again.
	 */
	if (store_exec(st,
		       "UPDATE devices SET org = $2, site = $3, stage = 'claimed' "
		       "WHERE serial = $1 AND org IS NULL",
		       params, 3, &res) == -1) {
		cloud_internal(ctx, "claiming a device");
		goto out;
	}
	if (store_changes(res) != 1) {
		http_reply_error(ctx, 409, "already-claimed", "device %s was claimed meanwhile",
				 serial);
		goto out;
	}
	snprintf(reason, sizeof(reason), "%s/%s", org, site);
	if (cloud_event(st, serial, time(NULL), "cloud", "claim", "ok", reason, NULL) == -1)
		log_error("recording an event of %s failed: %s", serial, or_errmsg());
	log_info("device %s claimed for %s by '%s'", serial, reason, who->name);
	reply_device(ctx, st, serial, 201);
out:
	store_result_free(res);
	json_decref(body);
}

/* DELETE /v1/admin/claims/SERIAL: the redirector's claim first, then ours and the tokens. */
static void
unclaim(struct http_ctx *ctx, struct cloud_app *app, struct store *st, const struct admin_who *who,
	const char *serial)
{
	const char *params[1] = {serial};
	struct store_result *res = NULL;
	int found;

	if ((found = cloud_exists(st, "SELECT 1 FROM devices WHERE serial = $1 AND org IS NOT NULL",
				  params, 1)) != 1) {
		if (found == -1)
			cloud_internal(ctx, "unclaiming a device");
		else
			http_reply_error(ctx, 404, "not-found", "device %s is not claimed", serial);
		return;
	}
	if (push(ctx, app, st, serial, false) == -1)
		return;
	if (store_begin(st) == -1 ||
	    store_exec(st,
		       "UPDATE devices SET org = NULL, site = NULL, stage = 'imported' "
		       "WHERE serial = $1",
		       params, 1, &res) == -1 ||
	    store_exec(st, "DELETE FROM device_tokens WHERE serial = $1", params, 1, NULL) == -1 ||
	    store_commit(st) == -1) {
		store_rollback(st);
		cloud_internal(ctx, "unclaiming a device");
		goto out;
	}
	/* Its challenges here (another instance's die with their connections, unanswerable:
	 * an unclaimed device is refused at finish). */
	challenges_forget(app->challenges, serial);
	if (cloud_event(st, serial, time(NULL), "cloud", "unclaim", "ok", NULL, NULL) == -1)
		log_error("recording an event of %s failed: %s", serial, or_errmsg());
	log_info("device %s unclaimed by '%s'", serial, who->name);
	reply_device(ctx, st, serial, 200);
out:
	store_result_free(res);
}

/* Dispatches the inventory, device and claim endpoints; a serial in the path is checked first. */
void
cloud_admin_devices(struct http_ctx *ctx, struct cloud_app *app, struct store *st,
		    const struct admin_who *who, const struct api_path *p)
{
	const char *method = http_ctx_method(ctx);
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0,
	     del = strcmp(method, "DELETE") == 0, put = strcmp(method, "PUT") == 0;

	if (p->n >= 2 && cloud_check_serial(p->seg[1]) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
	} else if (api_path_is(p, "inventory") && post) {
		import(ctx, app, st, who);
	} else if (api_path_is(p, "devices") && get) {
		list_devices(ctx, st);
	} else if (api_path_is(p, "devices/*") && put) {
		set_device(ctx, st, who, p->seg[1]);
	} else if (api_path_is(p, "devices/*") && (get || del)) {
		if (get)
			reply_device(ctx, st, p->seg[1], 200);
		else
			delete_device(ctx, st, who, p->seg[1]);
	} else if (api_path_is(p, "devices/*/events") && get) {
		device_events(ctx, st, p->seg[1]);
	} else if (api_path_is(p, "claims") && post) {
		claim(ctx, app, st, who);
	} else if (api_path_is(p, "claims/*") && del) {
		unclaim(ctx, app, st, who, p->seg[1]);
	} else if (api_path_is(p, "inventory") || api_path_is(p, "devices") ||
		   api_path_is(p, "devices/*") || api_path_is(p, "devices/*/events") ||
		   api_path_is(p, "claims") || api_path_is(p, "claims/*")) {
		http_reply_error(ctx, 405, "method-not-allowed", "%s is not allowed here", method);
	} else {
		http_reply_error(ctx, 404, "not-found", "no such admin endpoint");
	}
}
