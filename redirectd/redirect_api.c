/*
 * The redirector's HTTP API (docs/protocol.md sections 1 and 5). Every
 * request body is untrusted: each field is checked for type, size and form
 * before anything is looked up or written. The phone-home path only reads.
 */
#include "redirect.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/log_limit.h"
#include "core/rfc3339.h"
#include "proto/cloud_proto.h"
#include "server/admin_tokens.h"
#include "server/api_path.h"
#include "server/audit.h"
#include "server/http_server.h"
#include "server/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const token_roles[] = {"cloud", "admin", "factory"};

/* What outsiders can cause at will is logged, but not without bound. */
static struct log_limit unclaimed_log = LOG_LIMIT_INIT("phone-homes of unclaimed serials", 10, 60);
static struct log_limit refused_claims_log = LOG_LIMIT_INIT("refused claims", 10, 60);

/*
 * POST /v1/phone-home: the claim of the serial, or 404 not-claimed with Retry-After. An unknown
 * serial and a registered, unclaimed one get the same answer: nobody learns which serials exist.
 */
static void
phone_home(struct http_ctx *ctx, void *arg)
{
	struct redirect_app *app = arg;
	struct store *st = http_ctx_thread_state(ctx);
	const char *serial = NULL, *nonce = NULL, *model = NULL, *version = NULL, *params[1];
	struct store_result *res = NULL;
	json_t *body = NULL;
	char retry[24];

	if (rate_limit_request(ctx, app->limiter) == -1 || http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "serial", true, CLOUD_SERIAL_MAX, &serial) == -1 ||
	    cloud_check_serial(serial) == -1 ||
	    json_get_string(body, "nonce", true, CLOUD_NONCE_MAX, &nonce) == -1 ||
	    cloud_check_nonce(nonce) == -1 ||
	    json_get_string(body, "model", false, CLOUD_NAME_MAX, &model) == -1 ||
	    (model != NULL && cloud_check_name("model", model) == -1) ||
	    json_get_string(body, "software_version", false, 64, &version) == -1 ||
	    (version != NULL && cloud_check_text("software_version", version, 1, 64) == -1)) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	params[0] = serial;
	if (store_exec(st, "SELECT cloud_url, cloud_ca_pem FROM claims WHERE serial = $1", params,
		       1, &res) == -1) {
		log_error("phone-home lookup failed: %s", or_errmsg());
		http_reply_error(ctx, 500, "internal", "the claim could not be looked up");
		goto out;
	}
	if (store_rows(res) == 0) {
		log_limited(&unclaimed_log, LOG_LEVEL_INFO,
			    "phone-home from %s: serial %s (model %s) is not claimed",
			    http_ctx_peer(ctx), serial, model ? model : "-");
		snprintf(retry, sizeof(retry), "%lu", app->retry_after);
		http_reply_header(ctx, "Retry-After", retry);
		http_reply_error(ctx, 404, "not-claimed",
				 "serial %s is not claimed by any organisation yet", serial);
		goto out;
	}
	log_debug("phone-home from %s: serial %s redirected to %s", http_ctx_peer(ctx), serial,
		  store_value(res, 0, 0));
	http_reply_json(ctx, 200,
			json_pack("{s:s,s:s,s:s,s:s}", "serial", serial, "nonce", nonce,
				  "cloud_url", store_value(res, 0, 0), "cloud_ca_pem",
				  store_value(res, 0, 1)));
out:
	store_result_free(res);
	json_decref(body);
}

/* One claim row (CLAIM_COLUMNS order) as the API shows it. */
static json_t *
claim_json(const struct store_result *res, size_t row)
{
	char when[RFC3339_LEN + 1];

	rfc3339_format((time_t)strtoll(store_value(res, row, 4), NULL, 10), when);
	return json_pack("{s:s,s:s,s:s,s:s,s:s}", "serial", store_value(res, row, 0), "cloud_url",
			 store_value(res, row, 1), "cloud_ca_pem", store_value(res, row, 2),
			 "owner", store_value(res, row, 3), "updated", when);
}

#define CLAIM_COLUMNS "serial, cloud_url, cloud_ca_pem, owner, updated"

/* GET /v1/admin/claims[/SERIAL]: an admin sees every claim, a cloud its own. */
static void
get_claims(struct http_ctx *ctx, struct store *st, const struct admin_who *who, const char *serial)
{
	bool admin = strcmp(who->role, "admin") == 0;
	const char *params[2];
	struct store_result *res = NULL;
	size_t n = 0;
	char sql[256];
	json_t *list;

	snprintf(sql, sizeof(sql),
		 "SELECT " CLAIM_COLUMNS " FROM claims WHERE %s%s%s ORDER BY serial",
		 admin ? "" : "owner = $1", !admin && serial ? " AND " : "",
		 serial == NULL ? (admin ? "1 = 1" : "")
		 : admin	? "serial = $1"
				: "serial = $2");
	if (!admin)
		params[n++] = who->name;
	if (serial != NULL)
		params[n++] = serial;
	if (store_exec(st, sql, params, n, &res) == -1) {
		log_error("listing claims failed: %s", or_errmsg());
		http_reply_error(ctx, 500, "internal", "the claims could not be read");
	} else if (serial != NULL && store_rows(res) == 0) {
		http_reply_error(ctx, 404, "not-found", "no claim of yours for serial %s", serial);
	} else if (serial != NULL) {
		http_reply_json(ctx, 200, claim_json(res, 0));
	} else {
		list = json_array();
		for (size_t i = 0; i < store_rows(res); i++)
			json_array_append_new(list, claim_json(res, i));
		http_reply_json(ctx, 200, json_pack("{s:o}", "claims", list));
	}
	store_result_free(res);
}

/* The owner of serial's claim into owner (or "" when unclaimed); -1 on a database error. */
static int
claim_owner(struct store *st, const char *serial, char *owner, size_t cap)
{
	struct store_result *res = NULL;
	const char *params[1] = {serial};

	owner[0] = '\0';
	if (store_exec(st, "SELECT owner FROM claims WHERE serial = $1", params, 1, &res) == -1)
		return -1;
	if (store_rows(res) == 1)
		snprintf(owner, cap, "%s", store_value(res, 0, 0));
	store_result_free(res);
	return 0;
}

/*
 * PUT /v1/admin/claims/SERIAL {"cloud_url","cloud_ca_pem","claim_secret"}: only with the claim
 * secret of a registered device (checked before anything else is said about the serial), and
 * only the owner may replace it.
 */
static void
put_claim(struct http_ctx *ctx, struct store *st, const struct admin_who *who, const char *serial)
{
	const char *url = NULL, *pem = NULL, *secret = NULL, *params[5];
	struct store_result *res = NULL;
	char owner[CLOUD_NAME_MAX + 1], now[24];
	json_t *body = NULL;
	bool proven = false;

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "cloud_url", true, CLOUD_URL_MAX, &url) == -1 ||
	    cloud_check_url("cloud_url", url) == -1 ||
	    json_get_string(body, "cloud_ca_pem", true, CLOUD_PEM_MAX, &pem) == -1 ||
	    cloud_check_pem("cloud_ca_pem", pem) == -1 ||
	    json_get_string(body, "claim_secret", true, CLOUD_CLAIM_SECRET_HEX, &secret) == -1 ||
	    cloud_check_claim_hex("claim_secret", secret) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (redirect_claim_proof(st, serial, secret, &proven) == -1)
		goto fail;
	if (!proven) {
		log_limited(&refused_claims_log, LOG_LEVEL_WARN,
			    "claim of serial %s by '%s' refused: no registered device matches its "
			    "claim secret",
			    serial, who->name);
		http_reply_error(ctx, 403, "claim-refused",
				 "the claim secret does not prove serial %s", serial);
		goto out;
	}
	if (claim_owner(st, serial, owner, sizeof(owner)) == -1)
		goto fail;
	if (owner[0] != '\0' && strcmp(owner, who->name) != 0)
		goto elsewhere;
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	params[0] = serial;
	params[1] = url;
	params[2] = pem;
	params[3] = who->name;
	params[4] = now;
	/* The WHERE keeps a claim made meanwhile by another cloud. */
	if (store_exec(st,
		       "INSERT INTO claims (" CLAIM_COLUMNS ") VALUES ($1, $2, $3, $4, $5) "
		       "ON CONFLICT (serial) DO UPDATE SET cloud_url = excluded.cloud_url, "
		       "cloud_ca_pem = excluded.cloud_ca_pem, updated = excluded.updated "
		       "WHERE claims.owner = excluded.owner",
		       params, 5, &res) == -1)
		goto fail;
	if (store_changes(res) == 0)
		goto elsewhere;
	store_result_free(res);
	res = NULL;
	log_info("serial %s claimed by '%s' for %s", serial, who->name, url);
	if (store_exec(st, "SELECT " CLAIM_COLUMNS " FROM claims WHERE serial = $1", params, 1,
		       &res) == -1 ||
	    store_rows(res) != 1)
		goto fail;
	http_reply_json(ctx, owner[0] == '\0' ? 201 : 200, claim_json(res, 0));
	goto out;
elsewhere:
	log_limited(&refused_claims_log, LOG_LEVEL_WARN,
		    "claim of serial %s by '%s' refused: it is claimed by another cloud", serial,
		    who->name);
	http_reply_error(ctx, 409, "claimed-elsewhere", "serial %s is claimed by another cloud",
			 serial);
	goto out;
fail:
	log_error("claiming serial %s failed: %s", serial, or_errmsg());
	http_reply_error(ctx, 500, "internal", "the claim could not be written");
out:
	store_result_free(res);
	json_decref(body);
}

/* DELETE /v1/admin/claims/SERIAL: by its owner, or by an admin. */
static void
delete_claim(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
	     const char *serial)
{
	bool admin = strcmp(who->role, "admin") == 0;
	const char *params[2] = {serial, who->name};
	struct store_result *res = NULL;
	char owner[CLOUD_NAME_MAX + 1];

	if (claim_owner(st, serial, owner, sizeof(owner)) == -1)
		goto fail;
	if (owner[0] == '\0') {
		http_reply_error(ctx, 404, "not-found", "serial %s is not claimed", serial);
		goto out;
	}
	if (!admin && strcmp(owner, who->name) != 0) {
		http_reply_error(ctx, 409, "claimed-elsewhere",
				 "serial %s is claimed by another cloud", serial);
		goto out;
	}
	/* The owner in the WHERE keeps a claim replaced meanwhile by its new owner. */
	params[1] = owner;
	if (store_exec(st, "DELETE FROM claims WHERE serial = $1 AND owner = $2", params, 2,
		       &res) == -1)
		goto fail;
	if (store_changes(res) == 0) {
		http_reply_error(ctx, 404, "not-found", "serial %s is not claimed", serial);
		goto out;
	}
	log_info("claim of serial %s deleted by '%s'", serial, who->name);
	http_reply_json(ctx, 200, json_pack("{s:s}", "deleted", serial));
	goto out;
fail:
	log_error("unclaiming serial %s failed: %s", serial, or_errmsg());
	http_reply_error(ctx, 500, "internal", "the claim could not be deleted");
out:
	store_result_free(res);
}

/* Serves an authenticated admin request by its path and method. */
static void
dispatch(struct http_ctx *ctx, struct store *st, const struct admin_who *who)
{
	const char *method = http_ctx_method(ctx);
	struct api_path p;

	if (api_path_split(http_ctx_path(ctx), "/v1/admin/", &p) == -1) {
		http_reply_error(ctx, 404, "not-found", "%s", or_errmsg());
		return;
	}
	if (api_path_is(&p, "tokens") || api_path_is(&p, "tokens/*")) {
		if (strcmp(who->role, "admin") != 0)
			http_reply_error(ctx, 403, "forbidden", "only admin tokens manage tokens");
		else
			admin_tokens_serve(ctx, st, who, p.n == 2 ? p.seg[1] : NULL, token_roles,
					   sizeof(token_roles) / sizeof(token_roles[0]));
	} else if (api_path_is(&p, "audit")) {
		if (strcmp(who->role, "admin") != 0)
			http_reply_error(ctx, 403, "forbidden", "only admin tokens read the audit");
		else if (strcmp(method, "GET") != 0)
			http_reply_error(ctx, 405, "method-not-allowed", "use GET");
		else
			audit_serve(ctx, st);
	} else if (api_path_is(&p, "devices/*")) {
		redirect_devices_serve(ctx, st, who, p.seg[1]);
	} else if (strcmp(who->role, "factory") == 0) {
		http_reply_error(ctx, 403, "forbidden", "factory tokens only register devices");
	} else if (api_path_is(&p, "claims")) {
		if (strcmp(method, "GET") == 0)
			get_claims(ctx, st, who, NULL);
		else
			http_reply_error(ctx, 405, "method-not-allowed", "use GET");
	} else if (api_path_is(&p, "claims/*")) {
		if (cloud_check_serial(p.seg[1]) == -1)
			http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		else if (strcmp(method, "GET") == 0)
			get_claims(ctx, st, who, p.seg[1]);
		else if (strcmp(method, "PUT") == 0)
			put_claim(ctx, st, who, p.seg[1]);
		else if (strcmp(method, "DELETE") == 0)
			delete_claim(ctx, st, who, p.seg[1]);
		else
			http_reply_error(ctx, 405, "method-not-allowed", "use GET, PUT or DELETE");
	} else {
		http_reply_error(ctx, 404, "not-found", "no such admin endpoint");
	}
}

/*
 * /v1/admin/...: authenticates, then dispatches, the whole inside the audit
 * (a change and its entry in one transaction, refusals recorded too).
 */
static void
admin(struct http_ctx *ctx, void *arg)
{
	struct store *st = http_ctx_thread_state(ctx);
	struct admin_who who;

	(void)arg;
	if (audit_request_begin(ctx, st) == -1)
		return;
	if (admin_authenticate(ctx, st, &who) == -1) {
		audit_request_end(ctx, st, NULL);
		return;
	}
	dispatch(ctx, st, &who);
	audit_request_end(ctx, st, &who);
}

/* The route table: phone home for routers, /v1/admin/ for tokens; app goes to phone home. */
size_t
redirect_routes(struct redirect_app *app, const struct http_route **routes)
{
	static struct http_route table[] = {
		{"POST", "/v1/phone-home", phone_home, NULL}, {"GET", "/v1/admin/*", admin, NULL},
		{"POST", "/v1/admin/*", admin, NULL},	      {"PUT", "/v1/admin/*", admin, NULL},
		{"DELETE", "/v1/admin/*", admin, NULL},
	};

	table[0].arg = app;
	*routes = table;
	return sizeof(table) / sizeof(table[0]);
}
