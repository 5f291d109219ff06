/*
 * The admin API (/admin/v1/...), for `onrampctl conductor`. Every request
 * needs an admin bearer token; the database keeps only tokens' SHA-256.
 * Input is checked in full before anything is written; a refused request
 * changes nothing. The one secret this API hands out is a new pre-shared
 * secret, once, in the answer to its creation.
 */
#include "conductor.h"

#include "core/error.h"
#include "core/json.h"
#include "core/rfc3339.h"
#include "proto/conductor_psk.h"
#include "proto/peering_config.h"
#include "records.h"
#include "server/admin_tokens.h"
#include "server/audit.h"
#include "server/ca.h"
#include "server/http_server.h"
#include "server/masterkey.h"
#include "server/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTERS_PREFIX "/admin/v1/routers/"

/* See conductor.h. */
void
admin_reply_internal(struct http_ctx *ctx)
{
	log_error("admin %s %s: %s", http_ctx_method(ctx), http_ctx_path(ctx), or_errmsg());
	http_reply_error(ctx, 500, "internal", "the conductor failed: %s", or_errmsg());
}

/* The worker of an authorised request, or NULL after replying 401/500. */
struct worker *
admin_of(struct http_ctx *ctx)
{
	const char *token = http_ctx_bearer(ctx);
	struct store_result *res = NULL;
	struct worker *w = worker_of(ctx);
	char hash[65];
	bool ok;

	if (w == NULL)
		return NULL;
	if (token == NULL || strlen(token) > 128) {
		http_reply_error(ctx, 401, "unauthorized", "an admin bearer token is required");
		return NULL;
	}
	if (sha256_hex(token, strlen(token), hash) == -1 ||
	    store_exec(w->db, "SELECT 1 FROM admin_tokens WHERE hash = $1", (const char *[]){hash},
		       1, &res) == -1) {
		admin_reply_internal(ctx);
		return NULL;
	}
	ok = store_rows(res) == 1;
	store_result_free(res);
	if (!ok) {
		log_warn("admin: wrong token from %s", http_ctx_peer(ctx));
		http_reply_error(ctx, 401, "unauthorized", "the admin token is not valid");
		return NULL;
	}
	return w;
}

/* ---- GET /admin/v1/ca --------------------------------------------------- */

/* GET /admin/v1/ca: the root CA certificate. */
static void
handle_ca(struct http_ctx *ctx, void *arg)
{
	struct worker *w;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL)
		return;
	http_reply_json(ctx, 200, json_pack("{s:s}", "certificate", pki_ca_cert_pem(w->c->ca)));
}

/* ---- POST /admin/v1/psks ------------------------------------------------ */

/*
 * POST /admin/v1/psks: a new secret, sealed under the master key; its text is in this answer
 * only.
 */
static void
handle_psk_create(struct http_ctx *ctx, void *arg)
{
	const char *name = NULL;
	char id[PSK_ID_LEN + 1], context[32], now[24], default_name[32], *sealed = NULL;
	struct secret text = {0};
	json_t *body = NULL;
	struct worker *w;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL || http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "name", false, 63, &name) == -1 ||
	    (name != NULL && !pki_valid_router_name(name))) {
		http_reply_error(ctx, 400, "bad-request",
				 "name: 1 to 63 of A-Z a-z 0-9 . _ - starting with a letter or "
				 "digit");
		goto out;
	}
	if (psk_generate(id, &text) == -1) {
		admin_reply_internal(ctx);
		goto out;
	}
	if (name == NULL) {
		snprintf(default_name, sizeof(default_name), "psk-%s", id);
		name = default_name;
	}
	snprintf(context, sizeof(context), "psk:%s", id);
	fmt_i64((long long)time(NULL), now);
	if (masterkey_seal(w->c->mk, context, text.data, text.len, &sealed) == -1) {
		admin_reply_internal(ctx);
		goto out;
	}
	if (store_exec(w->db,
		       "INSERT INTO psks (id, name, sealed, created) VALUES ($1, $2, $3, $4)",
		       (const char *[]){id, name, sealed, now}, 4, NULL) == -1) {
		if (store_last_error(w->db) == STORE_ERR_CONSTRAINT)
			http_reply_error(ctx, 409, "exists", "a pre-shared secret named %s exists",
					 name);
		else
			admin_reply_internal(ctx);
		goto out;
	}
	log_info("pre-shared secret %s (%s) created", id, name);
	http_reply_json(ctx, 201,
			json_pack("{s:s, s:s, s:s%}", "id", id, "name", name, "secret",
				  (char *)text.data, text.len));
out:
	free(sealed);
	secret_free(&text);
	json_decref(body);
}

/* ---- GET /admin/v1/psks ------------------------------------------------- */

/* GET /admin/v1/psks: every secret's id, name, creation and revocation; never its text. */
static void
handle_psk_list(struct http_ctx *ctx, void *arg)
{
	char created[RFC3339_LEN + 1], revoked[RFC3339_LEN + 1];
	struct store_result *res = NULL;
	struct worker *w;
	json_t *list;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL)
		return;
	if (store_exec(w->db, "SELECT id, name, created, revoked FROM psks ORDER BY name", NULL, 0,
		       &res) == -1) {
		admin_reply_internal(ctx);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < store_rows(res); i++) {
		const char *when = store_value(res, i, 3);

		rfc3339_format((time_t)parse_i64(store_value(res, i, 2)), created);
		rfc3339_format((time_t)parse_i64(when), revoked);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s?}", "id",
						      store_value(res, i, 0), "name",
						      store_value(res, i, 1), "created", created,
						      "revoked", when ? revoked : NULL));
	}
	store_result_free(res);
	http_reply_json(ctx, 200, json_pack("{s:o}", "psks", list));
}

/* ---- POST /admin/v1/psks/NAME/revoke ------------------------------------ */

/*
 * POST /admin/v1/psks/NAME/revoke: the secret binds no new device from now on; sessions and
 * routers already bound keep working. Revoking again answers with the first revocation.
 */
static void
handle_psk_revoke(struct http_ctx *ctx, void *arg)
{
	const char *path = http_ctx_path(ctx) + strlen("/admin/v1/psks/"), *slash;
	char name[64], now[24], when[RFC3339_LEN + 1];
	struct store_result *res = NULL;
	struct worker *w;
	size_t len;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL)
		return;
	slash = strchr(path, '/');
	len = slash ? (size_t)(slash - path) : 0;
	if (slash == NULL || strcmp(slash, "/revoke") != 0 || len == 0 || len >= sizeof(name)) {
		http_reply_error(ctx, 404, "not-found",
				 "no such path (POST /admin/v1/psks/NAME/revoke)");
		return;
	}
	memcpy(name, path, len);
	name[len] = '\0';
	if (!pki_valid_router_name(name)) {
		http_reply_error(ctx, 404, "no-psk", "no pre-shared secret has that name");
		return;
	}
	fmt_i64((long long)time(NULL), now);
	/* Only the first revocation sets the time; a repeat finds it set. */
	if (store_exec(w->db, "UPDATE psks SET revoked = $1 WHERE name = $2 AND revoked IS NULL",
		       (const char *[]){now, name}, 2, NULL) == -1 ||
	    store_exec(w->db, "SELECT id, revoked FROM psks WHERE name = $1",
		       (const char *[]){name}, 1, &res) == -1) {
		admin_reply_internal(ctx);
		goto out;
	}
	if (store_rows(res) != 1) {
		http_reply_error(ctx, 404, "no-psk", "no pre-shared secret named %s", name);
		goto out;
	}
	rfc3339_format((time_t)parse_i64(store_value(res, 0, 1)), when);
	log_info("pre-shared secret %s (%s) revoked", store_value(res, 0, 0), name);
	http_reply_json(ctx, 200,
			json_pack("{s:s, s:s, s:s}", "id", store_value(res, 0, 0), "name", name,
				  "revoked", when));
out:
	store_result_free(res);
}

/* ---- POST /admin/v1/assets/forget --------------------------------------- */

/*
 * POST /admin/v1/assets/forget: drops an unknown asset ID's rows and alarm. A router's asset ID
 * is not forgotten this way (delete the router).
 */
static void
handle_asset_forget(struct http_ctx *ctx, void *arg)
{
	const char *asset_id = NULL;
	json_t *body = NULL;
	struct router_row r;
	struct worker *w;
	long removed = 0;
	bool found;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL || http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "asset_id", true, CONDUCTOR_SUBJECT_MAX, &asset_id) == -1 ||
	    !valid_asset_id(asset_id)) {
		http_reply_error(ctx, 400, "bad-request",
				 "asset_id: 1 to 128 printable characters without spaces");
		goto out;
	}
	if (router_get(w, "asset_id", asset_id, &r, &found) == -1) {
		admin_reply_internal(ctx);
		goto out;
	}
	if (found) {
		http_reply_error(ctx, 409, "router-asset",
				 "asset ID %s is router %s's; 'router delete %s' removes it",
				 asset_id, r.name, r.name);
		goto out;
	}
	/* Rows and alarm go together; a failed commit has rolled back by itself. */
	if (store_begin(w->db) == -1) {
		admin_reply_internal(ctx);
		goto out;
	}
	if (foreign_forget(w, asset_id, &removed) == -1) {
		store_rollback(w->db);
		admin_reply_internal(ctx);
		goto out;
	}
	if (removed == 0) {
		store_rollback(w->db);
		http_reply_error(ctx, 404, "no-asset", "no unknown asset ID %s is listed",
				 asset_id);
		goto out;
	}
	if (store_commit(w->db) == -1) {
		admin_reply_internal(ctx);
		goto out;
	}
	log_info("unknown asset %s forgotten (%ld device(s))", asset_id, removed);
	http_reply_json(
		ctx, 200,
		json_pack("{s:s, s:I}", "forgotten", asset_id, "devices", (json_int_t)removed));
out:
	json_decref(body);
}

/* ---- POST /admin/v1/routers --------------------------------------------- */

/*
 * POST /admin/v1/routers: checks name, asset ID and configuration, stores the router and its
 * first commands in one transaction.
 */
static void
handle_router_add(struct http_ctx *ctx, void *arg)
{
	const char *name = NULL, *asset_id = NULL;
	char sha[65], now[24], *text = NULL;
	json_t *body = NULL, *config, *empty = NULL, *apply = NULL;
	struct worker *w;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL || http_ctx_json_body(ctx, &body) == -1)
		return;
	config = json_object_get(body, "config");
	if (json_get_string(body, "name", true, 63, &name) == -1 ||
	    json_get_string(body, "asset_id", true, CONDUCTOR_SUBJECT_MAX, &asset_id) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (!pki_valid_router_name(name) || !valid_asset_id(asset_id)) {
		http_reply_error(ctx, 400, "bad-request",
				 "name: 1 to 63 of A-Z a-z 0-9 . _ -; asset ID: 1 to 128 "
				 "printable characters without spaces");
		goto out;
	}
	if (peering_config_validate(config, name) == -1) {
		http_reply_error(ctx, 400, "bad-config", "%s", or_errmsg());
		goto out;
	}
	if (peering_config_canonical(config, &text, sha) == -1) {
		http_reply_error(ctx, 400, "bad-config", "%s", or_errmsg());
		goto out;
	}
	fmt_i64((long long)time(NULL), now);
	empty = json_object();
	apply = json_pack("{s:s, s:s}", "config", text, "sha256", sha);
	if (store_begin(w->db) == -1) {
		admin_reply_internal(ctx);
		goto out;
	}
	if (store_exec(
		    w->db,
		    "INSERT INTO routers (name, asset_id, config, config_sha256, created) VALUES "
		    "($1, $2, $3, $4, $5)",
		    (const char *[]){name, asset_id, text, sha, now}, 5, NULL) == -1) {
		bool exists = store_last_error(w->db) == STORE_ERR_CONSTRAINT;

		store_rollback(w->db);
		if (exists)
			http_reply_error(ctx, 409, "exists",
					 "a router named %s or with asset ID %s already exists",
					 name, asset_id);
		else
			admin_reply_internal(ctx);
		goto out;
	}
	/* The first commands wait in the queue for the router's first poll. */
	if (foreign_forget(w, asset_id, NULL) == -1 ||
	    command_queue(w, name, "generate-certificate", empty, NULL) == -1 ||
	    command_queue(w, name, "apply-config", apply, NULL) == -1 ||
	    store_commit(w->db) == -1) {
		store_rollback(w->db);
		admin_reply_internal(ctx);
		goto out;
	}
	log_info("router %s (asset %s) added, configuration %s", name, asset_id, sha);
	http_reply_json(ctx, 201,
			json_pack("{s:s, s:s, s:s, s:s}", "name", name, "asset_id", asset_id,
				  "config_sha256", sha, "state", "pending"));
out:
	free(text);
	json_decref(empty);
	json_decref(apply);
	json_decref(body);
}

/* ---- GET /admin/v1/assets ----------------------------------------------- */

/* One row of show assets. */
static json_t *
asset_entry(const char *name, const char *asset_id, const char *state, time_t contact,
	    const char *error)
{
	char when[RFC3339_LEN + 1];

	rfc3339_format(contact, when);
	return json_pack("{s:s?, s:s, s:s, s:s?, s:s?}", "name", name, "asset_id", asset_id,
			 "state", state, "last_contact", contact ? when : NULL, "last_error",
			 error);
}

/* Every router with its shown state. */
static int
list_routers(struct worker *w, json_t *list)
{
	struct store_result *res = NULL;
	time_t now = time(NULL);

	if (store_exec(w->db, "SELECT name FROM routers ORDER BY name", NULL, 0, &res) == -1)
		return -1;
	for (size_t i = 0; i < store_rows(res); i++) {
		struct router_row r;
		bool found;

		if (router_get(w, "name", store_value(res, i, 0), &r, &found) == -1) {
			store_result_free(res);
			return -1;
		}
		if (!found)
			continue;
		json_array_append_new(
			list, asset_entry(r.name, r.asset_id,
					  asset_state_name(asset_display(
						  r.progress, router_online(w, &r, now))),
					  r.last_contact, r.last_error[0] ? r.last_error : NULL));
	}
	store_result_free(res);
	return 0;
}

/* Every refused device: unknown asset IDs and denied duplicates. */
static int
list_foreign(struct worker *w, json_t *list)
{
	struct store_result *res = NULL;

	if (store_exec(w->db,
		       "SELECT asset_id, state, last_seen, reason, router, device_key, attempts, "
		       "peer FROM foreign_assets ORDER BY asset_id, first_seen",
		       NULL, 0, &res) == -1)
		return -1;
	for (size_t i = 0; i < store_rows(res); i++) {
		json_t *e = asset_entry(NULL, store_value(res, i, 0), store_value(res, i, 1),
					(time_t)parse_i64(store_value(res, i, 2)),
					store_value(res, i, 3));

		json_object_set_new(e, "claimed_router", json_string(store_value(res, i, 4)));
		json_object_set_new(e, "device_key", json_string(store_value(res, i, 5)));
		json_object_set_new(e, "attempts", json_integer(parse_i64(store_value(res, i, 6))));
		json_object_set_new(e, "peer", json_string(store_value(res, i, 7)));
		json_array_append_new(list, e);
	}
	store_result_free(res);
	return 0;
}

/* GET /admin/v1/assets: routers, then refused devices. */
static void
handle_assets(struct http_ctx *ctx, void *arg)
{
	json_t *list = json_array();
	struct worker *w;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL) {
		json_decref(list);
		return;
	}
	if (list_routers(w, list) == -1 || list_foreign(w, list) == -1) {
		json_decref(list);
		admin_reply_internal(ctx);
		return;
	}
	http_reply_json(ctx, 200, json_pack("{s:o}", "assets", list));
}

/* ---- /admin/v1/routers/NAME[/ACTION] ------------------------------------ */

/* Splits the path into a router name and an action ("" for none). */
static bool
router_path(const char *path, char name[64], const char **action)
{
	const char *p = path + strlen(ROUTERS_PREFIX), *slash = strchr(p, '/');
	size_t len = slash ? (size_t)(slash - p) : strlen(p);

	if (len == 0 || len >= 64)
		return false;
	memcpy(name, p, len);
	name[len] = '\0';
	*action = slash ? slash + 1 : "";
	return pki_valid_router_name(name);
}

/*
 * POST .../production: stores the production conductor (secret sealed) and queues set-
 * production-conductor.
 */
static void
handle_production(struct http_ctx *ctx, struct worker *w, const struct router_row *r, json_t *body)
{
	const char *addrs[CONDUCTOR_MAX_ADDRESSES], *psk = NULL, *ca = NULL;
	char psk_id[PSK_ID_LEN + 1], context[80], key_id[PKI_KEY_ID_LEN + 1];
	char *sealed = NULL, *addresses = NULL;
	json_t *payload = NULL;
	long long id;
	size_t n;

	if (parse_addresses(json_object_get(body, "addresses"), "addresses", addrs,
			    CONDUCTOR_MAX_ADDRESSES, &n) == -1 ||
	    json_get_string(body, "psk", true, PSK_TEXT_LEN, &psk) == -1 ||
	    json_get_string(body, "ca", true, PKI_MAX_PEM, &ca) == -1 ||
	    psk_parse_id(psk, strlen(psk), psk_id) == -1 || pki_cert_key_id(ca, key_id) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	snprintf(context, sizeof(context), "prod-psk:%s", r->name);
	addresses = json_dump_compact(json_object_get(body, "addresses"));
	payload =
		json_pack("{s:O, s:s}", "addresses", json_object_get(body, "addresses"), "ca", ca);
	if (addresses == NULL || payload == NULL ||
	    masterkey_seal(w->c->mk, context, psk, strlen(psk), &sealed) == -1 ||
	    store_begin(w->db) == -1) {
		admin_reply_internal(ctx);
		goto out;
	}
	if (store_exec(w->db,
		       "UPDATE routers SET prod_addresses = $1, prod_psk = $2, prod_ca = $3 WHERE "
		       "name = $4",
		       (const char *[]){addresses, sealed, ca, r->name}, 4, NULL) == -1 ||
	    command_queue(w, r->name, "set-production-conductor", payload, &id) == -1 ||
	    store_commit(w->db) == -1) {
		store_rollback(w->db);
		admin_reply_internal(ctx);
		goto out;
	}
	command_wake(w, r->name);
	http_reply_json(ctx, 202, json_pack("{s:I}", "command_id", (json_int_t)id));
out:
	free(sealed);
	free(addresses);
	json_decref(payload);
}

/* POST .../renew: queues a new certificate for the router. */
static void
handle_renew(struct http_ctx *ctx, struct worker *w, const struct router_row *r)
{
	json_t *payload = json_pack("{s:s}", "reason", "renewal");
	long long id;

	if (command_queue(w, r->name, "generate-certificate", payload, &id) == -1)
		admin_reply_internal(ctx);
	else {
		command_wake(w, r->name);
		http_reply_json(ctx, 202, json_pack("{s:I}", "command_id", (json_int_t)id));
	}
	json_decref(payload);
}

/* The production secret and CA stored for the router (for validation). */
static int
production_of(struct worker *w, const char *router, struct secret *psk, char **ca)
{
	struct store_result *res = NULL;
	char context[80];
	int rc = -1;

	*ca = NULL;
	if (store_exec(w->db, "SELECT prod_psk, prod_ca FROM routers WHERE name = $1", &router, 1,
		       &res) == -1)
		return -1;
	snprintf(context, sizeof(context), "prod-psk:%s", router);
	if (store_rows(res) == 1 && store_value(res, 0, 1) != NULL &&
	    unseal(w, context, store_value(res, 0, 0), psk) == 0) {
		*ca = strdup(store_value(res, 0, 1));
		rc = *ca ? 0 : or_error("out of memory");
	}
	store_result_free(res);
	return rc;
}

/*
 * POST .../migrate: policy, then (unless skipped) the peer query, then the migration and its
 * command in one transaction.
 */
static void
handle_migrate(struct http_ctx *ctx, struct worker *w, const struct router_row *r, json_t *body)
{
	const char *addrs[CONDUCTOR_MAX_ADDRESSES];
	char *addresses = NULL, *ca = NULL, now[24], *psk_text = NULL;
	struct store_result *res = NULL;
	struct secret psk = {0};
	bool skip = false, force = false;
	json_int_t window = w->c->set.revert_window_s;
	enum asset_progress to;
	json_t *payload = NULL;
	long long id;
	size_t n;

	if (parse_addresses(json_object_get(body, "addresses"), "addresses", addrs,
			    CONDUCTOR_MAX_ADDRESSES, &n) == -1 ||
	    json_get_bool(body, "skip_validation", false, &skip) == -1 ||
	    json_get_bool(body, "force", false, &force) == -1 ||
	    json_get_int(body, "revert_window", false, 1, 86400, &window) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (!r->has_production) {
		http_reply_error(
			ctx, 409, "no-production",
			"router %s has no production conductor secret and CA yet (onrampctl "
			"conductor router production ...)",
			r->name);
		goto out;
	}
	if (asset_may_migrate(r->progress, router_online(w, r, time(NULL)), force) == -1) {
		http_reply_error(ctx, 409, "not-ready", "router %s: %s", r->name, or_errmsg());
		goto out;
	}
	if (!skip) {
		if (production_of(w, r->name, &psk, &ca) == -1 ||
		    (psk_text = strndup((char *)psk.data, psk.len)) == NULL) {
			admin_reply_internal(ctx);
			goto out;
		}
		if (peer_check_router(w, addrs, n, ca, psk_text, r->name, r->asset_id) == -1) {
			log_warn("router %s: migrate refused: %s", r->name, or_errmsg());
			http_reply_error(ctx, 409, "validation-failed",
					 "the new conductor cannot take router %s: %s", r->name,
					 or_errmsg());
			goto out;
		}
	}
	addresses = json_dump_compact(json_object_get(body, "addresses"));
	fmt_i64((long long)time(NULL), now);
	if (addresses == NULL || store_begin(w->db) == -1) {
		admin_reply_internal(ctx);
		goto out;
	}
	if (store_exec(w->db,
		       "INSERT INTO migrations (router, addresses, state, started) VALUES ($1, $2, "
		       "'pending', $3) RETURNING id",
		       (const char *[]){r->name, addresses, now}, 3, &res) == -1 ||
	    store_rows(res) != 1)
		goto fail;
	id = parse_i64(store_value(res, 0, 0));
	payload = json_pack("{s:I, s:O, s:I}", "migration_id", (json_int_t)id, "addresses",
			    json_object_get(body, "addresses"), "revert_window", window);
	if (command_queue(w, r->name, "migrate", payload, NULL) == -1 ||
	    router_event(w, r->name, AE_MIGRATE_SENT, &to) == -1 || store_commit(w->db) == -1)
		goto fail;
	command_wake(w, r->name);
	log_info("router %s: migrate %lld to %s sent%s", r->name, id, addresses,
		 skip ? " (validation skipped)" : "");
	http_reply_json(
		ctx, 202,
		json_pack("{s:I, s:b}", "migration_id", (json_int_t)id, "validated", !skip));
	goto out;
fail:
	store_rollback(w->db);
	admin_reply_internal(ctx);
out:
	if (psk_text != NULL) {
		secure_zero(psk_text, strlen(psk_text));
		free(psk_text);
	}
	secret_free(&psk);
	store_result_free(res);
	json_decref(payload);
	free(addresses);
	free(ca);
}

/*
 * POST .../set: a new asset ID (only while no device is bound to the router) and/or a new
 * configuration (queued as apply-config, replacing one not yet delivered). The name, commands,
 * reports and certificates stay.
 */
static void
handle_router_set(struct http_ctx *ctx, struct worker *w, const struct router_row *r, json_t *body)
{
	const char *asset_id = NULL;
	char sha[65], *text = NULL;
	struct store_result *res = NULL;
	json_t *config = json_object_get(body, "config"), *apply = NULL;
	bool new_asset, new_config;
	long long id = 0;

	if (json_get_string(body, "asset_id", false, CONDUCTOR_SUBJECT_MAX, &asset_id) == -1 ||
	    (asset_id != NULL && !valid_asset_id(asset_id))) {
		http_reply_error(ctx, 400, "bad-request",
				 "asset_id: 1 to 128 printable characters without spaces");
		goto out;
	}
	if (asset_id == NULL && config == NULL) {
		http_reply_error(ctx, 400, "bad-request", "give asset_id, config or both");
		goto out;
	}
	if (config != NULL && (peering_config_validate(config, r->name) == -1 ||
			       peering_config_canonical(config, &text, sha) == -1)) {
		http_reply_error(ctx, 400, "bad-config", "%s", or_errmsg());
		goto out;
	}
	new_asset = asset_id != NULL && strcmp(asset_id, r->asset_id) != 0;
	new_config = text != NULL && strcmp(sha, r->config_sha256) != 0;
	if (new_asset && asset_may_reassign(r->progress, r->device_key[0] != '\0') == -1) {
		http_reply_error(ctx, 409, "onboarded", "router %s: %s", r->name, or_errmsg());
		goto out;
	}
	if (store_begin(w->db) == -1)
		goto fail;
	if (new_asset) {
		/* Compare-and-set: a device binding meanwhile makes this change nothing. */
		if (store_exec(w->db,
			       "UPDATE routers SET asset_id = $1 WHERE name = $2 AND device_key IS "
			       "NULL AND progress = 'pending'",
			       (const char *[]){asset_id, r->name}, 2, &res) == -1) {
			bool exists = store_last_error(w->db) == STORE_ERR_CONSTRAINT;

			store_rollback(w->db);
			if (!exists)
				goto fail;
			http_reply_error(ctx, 409, "exists", "another router has asset ID %s",
					 asset_id);
			goto out;
		}
		if (store_changes(res) != 1) {
			store_rollback(w->db);
			http_reply_error(ctx, 409, "onboarded",
					 "router %s: a device has just authenticated as it",
					 r->name);
			goto out;
		}
		if (foreign_forget(w, asset_id, NULL) == -1)
			goto fail_rollback;
	}
	if (new_config) {
		apply = json_pack("{s:s, s:s}", "config", text, "sha256", sha);
		if (apply == NULL ||
		    store_exec(w->db,
			       "UPDATE routers SET config = $1, config_sha256 = $2 WHERE name = $3",
			       (const char *[]){text, sha, r->name}, 3, NULL) == -1 ||
		    store_exec(
			    w->db,
			    "UPDATE commands SET state = 'superseded' WHERE router = $1 AND kind "
			    "= 'apply-config' AND state = 'queued'",
			    (const char *[]){r->name}, 1, NULL) == -1 ||
		    command_queue(w, r->name, "apply-config", apply, &id) == -1)
			goto fail_rollback;
	}
	if (store_commit(w->db) == -1)
		goto fail; /* a failed commit has rolled back */
	if (new_config)
		command_wake(w, r->name);
	log_info("router %s: %s%s%s%s%s", r->name, new_asset ? "asset ID now " : "",
		 new_asset ? asset_id : "", new_asset && new_config ? ", " : "",
		 new_config ? "configuration now " : "", new_config ? sha : "");
	http_reply_json(ctx, 200,
			json_pack("{s:s, s:s, s:s, s:b, s:b, s:o}", "name", r->name, "asset_id",
				  new_asset ? asset_id : r->asset_id, "config_sha256",
				  new_config ? sha : r->config_sha256, "asset_id_changed",
				  new_asset, "config_changed", new_config, "command_id",
				  new_config ? json_integer(id) : json_null()));
	goto out;
fail_rollback:
	store_rollback(w->db);
fail:
	admin_reply_internal(ctx);
out:
	store_result_free(res);
	json_decref(apply);
	free(text);
}

/* DELETE /admin/v1/routers/NAME[?force=true]: refused while it is connected unless forced. */
static void
handle_router_delete(struct http_ctx *ctx, struct worker *w, const struct router_row *r)
{
	const char *force_text = http_ctx_query(ctx, "force");
	bool force = force_text != NULL && strcmp(force_text, "true") == 0;
	bool online = router_online(w, r, time(NULL));

	if (force_text != NULL && !force && strcmp(force_text, "false") != 0) {
		http_reply_error(ctx, 400, "bad-request", "force must be true or false");
		return;
	}
	if (asset_may_delete(online, force) == -1) {
		http_reply_error(ctx, 409, "connected", "router %s: %s", r->name, or_errmsg());
		return;
	}
	if (store_begin(w->db) == -1) {
		admin_reply_internal(ctx);
		return;
	}
	if (router_delete(w, r) == -1) {
		store_rollback(w->db);
		admin_reply_internal(ctx);
		return;
	}
	if (store_commit(w->db) == -1) {
		admin_reply_internal(ctx); /* a failed commit has rolled back */
		return;
	}
	/* A held poll answers now; the router's next request finds no session. */
	command_wake(w, r->name);
	log_info("router %s (asset %s) deleted%s", r->name, r->asset_id,
		 online ? " while connected: its session is ended" : "");
	http_reply_json(ctx, 200,
			json_pack("{s:s, s:s, s:b}", "deleted", r->name, "asset_id", r->asset_id,
				  "session_ended", online));
}

/* A column's text as JSON of its type (see handle_router_show); SQL NULL is null. */
static json_t *
typed(const char *v, char type)
{
	char when[RFC3339_LEN + 1];
	json_t *j;

	if (v == NULL)
		return json_null();
	switch (type) {
	case 'i':
		return json_integer((json_int_t)strtoll(v, NULL, 10));
	case 't':
		rfc3339_format((time_t)strtoll(v, NULL, 10), when);
		return when[0] ? json_string(when) : json_null();
	case 'j':
		j = json_loads(v, JSON_DECODE_ANY, NULL);
		return j ? j : json_string(v);
	default:
		return json_string(v);
	}
}

/* A router's record, certificates, commands, migrations and latest reports. */
static void
handle_router_show(struct http_ctx *ctx, struct worker *w, const struct router_row *r)
{
	static const char *const queries[][2] = {
		{"certificates", "SELECT serial, not_before, not_after, sha256, command_id FROM "
				 "certificates WHERE router = $1 ORDER BY issued"},
		{"commands", "SELECT id, kind, state, result, created, acked FROM commands WHERE "
			     "router = $1 ORDER BY id"},
		{"migrations", "SELECT id, addresses, state, reason, started, finished FROM "
			       "migrations WHERE router = $1 ORDER BY id"},
		{"events", "SELECT step, outcome, reason, at FROM events WHERE router = $1 ORDER "
			   "BY id"},
	};
	static const char *const cols[][6] = {
		{"serial", "not_before", "not_after", "sha256", "command_id", NULL},
		{"id", "type", "state", "result", "created", "acked"},
		{"id", "addresses", "state", "reason", "started", "finished"},
		{"step", "outcome", "reason", "time", NULL, NULL},
	};
	/* Each column's JSON type: s string, i number, t time (RFC 3339), j JSON text. */
	static const char types[][7] = {"sttsi", "isjjtt", "ijsstt", "ssst"};
	const char *name = r->name;
	json_t *out = asset_entry(
		r->name, r->asset_id,
		asset_state_name(asset_display(r->progress, router_online(w, r, time(NULL)))),
		r->last_contact, r->last_error[0] ? r->last_error : NULL);

	json_object_set_new(out, "progress", json_string(asset_progress_name(r->progress)));
	json_object_set_new(out, "device_key",
			    r->device_key[0] ? json_string(r->device_key) : json_null());
	json_object_set_new(out, "config_sha256", json_string(r->config_sha256));
	for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
		struct store_result *res = NULL;
		json_t *list = json_array();

		if (store_exec(w->db, queries[q][1], &name, 1, &res) == -1) {
			json_decref(list);
			json_decref(out);
			admin_reply_internal(ctx);
			return;
		}
		for (size_t i = 0; i < store_rows(res); i++) {
			json_t *row = json_object();

			for (size_t c = 0; c < 6 && cols[q][c] != NULL; c++)
				json_object_set_new(row, cols[q][c],
						    typed(store_value(res, i, c), types[q][c]));
			json_array_append_new(list, row);
		}
		store_result_free(res);
		json_object_set_new(out, queries[q][0], list);
	}
	http_reply_json(ctx, 200, out);
}

/* Dispatches /admin/v1/routers/NAME[/ACTION]. */
static void
handle_router_path(struct http_ctx *ctx, void *arg)
{
	const char *action = NULL, *method = http_ctx_method(ctx);
	char name[64];
	struct router_row r;
	json_t *body = NULL;
	struct worker *w;
	bool found;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL)
		return;
	if (!router_path(http_ctx_path(ctx), name, &action)) {
		http_reply_error(ctx, 404, "not-found", "no such router path");
		return;
	}
	if (router_get(w, "name", name, &r, &found) == -1) {
		admin_reply_internal(ctx);
		return;
	}
	if (!found) {
		http_reply_error(ctx, 404, "no-router", "no router named %s", name);
		return;
	}
	if (strcmp(method, "GET") == 0 && action[0] == '\0') {
		handle_router_show(ctx, w, &r);
		return;
	}
	if (strcmp(method, "DELETE") == 0 && action[0] == '\0') {
		handle_router_delete(ctx, w, &r);
		return;
	}
	if (strcmp(method, "POST") != 0 || http_ctx_json_body(ctx, &body) == -1) {
		if (strcmp(method, "POST") != 0)
			http_reply_error(ctx, 405, "method-not-allowed", "use POST");
		return;
	}
	if (strcmp(action, "production") == 0)
		handle_production(ctx, w, &r, body);
	else if (strcmp(action, "renew") == 0)
		handle_renew(ctx, w, &r);
	else if (strcmp(action, "migrate") == 0)
		handle_migrate(ctx, w, &r, body);
	else if (strcmp(action, "set") == 0)
		handle_router_set(ctx, w, &r, body);
	else
		http_reply_error(ctx, 404, "not-found", "no action '%s' on routers", action);
	json_decref(body);
}

/* GET /admin/v1/audit[?since=TIME][&verify=1]: the admin API's audit trail. */
static void
handle_audit(struct http_ctx *ctx, void *arg)
{
	struct worker *w;

	(void)arg;
	if ((w = admin_of(ctx)) != NULL)
		audit_serve(ctx, w->db);
}

/* An admin handler, run inside the audit by audited(). */
struct admin_handler {
	http_handler fn;
};

/*
 * Runs an admin request inside the audit (lib/server/audit.h): a change and
 * its entry in one transaction, refusals recorded too. The conductor has one
 * admin token, "admin"; a request it refused (401) is recorded as "-".
 */
static void
audited(struct http_ctx *ctx, void *arg)
{
	const struct admin_handler *h = arg;
	const struct admin_who admin = {CONDUCTOR_ADMIN_NAME, "admin"};
	struct worker *w = worker_of(ctx);

	if (w == NULL)
		return;
	if (audit_request_begin(ctx, w->db) == -1)
		return;
	h->fn(ctx, NULL);
	audit_request_end(ctx, w->db, http_ctx_reply_status(ctx) == 401 ? NULL : &admin);
	command_wake_deferred(w);
}

#define AUDITED(fn)                                                                                \
	audited, (void *)&(const struct admin_handler)                                             \
	{                                                                                          \
		fn                                                                                 \
	}

const struct http_route admin_routes[] = {
	{"GET", "/healthz", handle_healthz, NULL},
	{"GET", "/admin/v1/ca", AUDITED(handle_ca)},
	{"GET", "/admin/v1/trust-cloud", AUDITED(cloud_trust_handle)},
	{"PUT", "/admin/v1/trust-cloud", AUDITED(cloud_trust_handle)},
	{"POST", "/admin/v1/psks", AUDITED(handle_psk_create)},
	{"GET", "/admin/v1/psks", AUDITED(handle_psk_list)},
	{"POST", "/admin/v1/routers", AUDITED(handle_router_add)},
	{"GET", "/admin/v1/assets", AUDITED(handle_assets)},
	{"GET", "/admin/v1/alarms", AUDITED(handle_alarms)},
	{"GET", "/admin/v1/alarms/history", AUDITED(handle_alarm_history)},
	{"POST", "/admin/v1/alarms/*", AUDITED(handle_alarm_action)},
	{"GET", "/admin/v1/audit", AUDITED(handle_audit)},
	{"GET", ROUTERS_PREFIX "*", AUDITED(handle_router_path)},
	{"POST", ROUTERS_PREFIX "*", AUDITED(handle_router_path)},
	{"DELETE", ROUTERS_PREFIX "*", AUDITED(handle_router_path)},
	{"POST", "/admin/v1/psks/*", AUDITED(handle_psk_revoke)},
	{"POST", "/admin/v1/assets/forget", AUDITED(handle_asset_forget)},
};
const size_t n_admin_routes = sizeof(admin_routes) / sizeof(admin_routes[0]);
