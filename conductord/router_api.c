/*
 * The router API (/v1/...), described message by message in
 * docs/protocol-conductor.md. What it trusts:
 *   - a router is who its asset ID says only after the pre-shared secret's
 *     proof (bound to this TLS connection by the exporter) checks out and its
 *     device key (proved by a CSR over the nonce) is the one bound to that
 *     asset ID; the first device to authenticate binds it;
 *   - every later request carries the session token, and is served only on
 *     the TLS connection the session was made on (same exporter);
 *   - nothing in a body is trusted before its type and size are checked.
 */
#include "conductor.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "nonces.h"
#include "poll.h"
#include "proto/cloud_proto.h"
#include "proto/conductor_psk.h"
#include "proto/peering_config.h"
#include "records.h"
#include "server/ca.h"
#include "server/http_server.h"
#include "server/store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COMMANDS_PER_POLL 16
#define CSR_MAX 16384
#define NONCE_URI_PREFIX "urn:onramp:nonce:"

/* ---- helpers ------------------------------------------------------------ */

/* A required field of exactly bytes bytes in hex, decoded into out. */
static int
hex_field(json_t *body, const char *key, size_t bytes, uint8_t *out)
{
	const char *text = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (json_get_string(body, key, true, 2 * bytes, &text) == -1)
		return -1;
	if (strlen(text) != 2 * bytes || hex_decode(text, key, &buf, &len) == -1 || len != bytes) {
		OPENSSL_clear_free(buf, len);
		return or_error("field '%s' must be %zu hex digits", key, 2 * bytes);
	}
	memcpy(out, buf, bytes);
	OPENSSL_clear_free(buf, len);
	return 0;
}

/* The SHA-256 of a connection's exporter: what binds a nonce or a session to it. */
static int
exporter_binding(const uint8_t ex[CONDUCTOR_EXPORTER_LEN], uint8_t out[NONCES_BINDING_LEN])
{
	unsigned int len = 0;

	if (EVP_Digest(ex, CONDUCTOR_EXPORTER_LEN, out, &len, EVP_sha256(), NULL) != 1 ||
	    len != NONCES_BINDING_LEN)
		return or_error("SHA-256 failed");
	return 0;
}

/* exporter_binding of this request's connection. */
static int
connection_binding_raw(struct http_ctx *ctx, uint8_t out[NONCES_BINDING_LEN])
{
	uint8_t ex[CONDUCTOR_EXPORTER_LEN];
	int rc;

	if (http_ctx_exporter(ctx, CONDUCTOR_EXPORTER_LABEL, ex, sizeof(ex)) == -1)
		return -1;
	rc = exporter_binding(ex, out);
	secure_zero(ex, sizeof(ex));
	return rc;
}

/* The SHA-256 of this TLS connection's exporter: what a session is bound to. */
static int
connection_binding(struct http_ctx *ctx, char out[65])
{
	uint8_t binding[NONCES_BINDING_LEN];

	if (connection_binding_raw(ctx, binding) == -1)
		return -1;
	hex_encode(binding, sizeof(binding), out);
	return 0;
}

/*
 * The session's router, or false after replying 401: the bearer token must
 * name a live session made on this very TLS connection.
 */
static bool
session_router(struct http_ctx *ctx, struct worker *w, struct router_row *r)
{
	const char *token = http_ctx_bearer(ctx);
	char hash[65], binding[65], stored[65];
	bool session = false, router = false;

	if (token == NULL || strlen(token) != 64) {
		http_reply_error(ctx, 401, "no-session", "authenticate first (POST /v1/auth)");
		return false;
	}
	if (sha256_hex(token, strlen(token), hash) == -1 ||
	    connection_binding(ctx, binding) == -1 ||
	    router_of_session(w, hash, time(NULL), stored, r, &session, &router) == -1) {
		http_reply_error(ctx, 500, "internal", "%s", or_errmsg());
		return false;
	}
	if (!session || !ct_equal_str(stored, binding)) {
		http_reply_error(ctx, 401, "no-session",
				 "the session is unknown, expired or from another TLS connection");
		return false;
	}
	if (!router) {
		http_reply_error(ctx, 401, "no-session", "the session's router is gone");
		return false;
	}
	return true;
}

/* The body as JSON, or false after the server replied 400/413. */
static bool
body_of(struct http_ctx *ctx, json_t **body)
{
	return http_ctx_json_body(ctx, body) == 0;
}

/* Logs the failure and answers 500 with it (messages never hold secrets). */
static void
reply_internal(struct http_ctx *ctx)
{
	log_error("%s %s: %s", http_ctx_method(ctx), http_ctx_path(ctx), or_errmsg());
	http_reply_error(ctx, 500, "internal", "the conductor failed: %s", or_errmsg());
}

/* ---- POST /v1/hello ----------------------------------------------------- */

/*
 * POST /v1/hello: a fresh single-use nonce for an asset ID or a peer query, usable on this
 * TLS connection only (kept in memory: nonces.h); says nothing about whether the asset exists.
 * Anyone may say hello for any asset ID, and never is one refused for the nonces given before:
 * those of other connections can neither be used here nor evict this one's in its lifetime.
 */
static void
handle_hello(struct http_ctx *ctx, void *arg)
{
	const char *asset_id = NULL, *peer = NULL;
	char subject[CONDUCTOR_SUBJECT_MAX + 8], nonce[2 * CONDUCTOR_NONCE_LEN + 1];
	uint8_t raw[CONDUCTOR_NONCE_LEN], binding[NONCES_BINDING_LEN];
	json_t *body = NULL;
	struct worker *w;

	(void)arg;
	if ((w = worker_of(ctx)) == NULL || rate_limit_request(ctx, w->c->limiter) == -1 ||
	    !body_of(ctx, &body))
		return;
	if (json_get_string(body, "asset_id", false, CONDUCTOR_SUBJECT_MAX, &asset_id) == -1 ||
	    json_get_string(body, "peer", false, 63, &peer) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if ((asset_id == NULL) == (peer == NULL) ||
	    (asset_id != NULL && !valid_asset_id(asset_id)) ||
	    (peer != NULL && !pki_valid_router_name(peer))) {
		http_reply_error(ctx, 400, "bad-request",
				 "give either asset_id (1 to 128 printable characters) or peer "
				 "(a router name)");
		goto out;
	}
	snprintf(subject, sizeof(subject), "%s%s", peer ? "peer:" : "", peer ? peer : asset_id);
	if (RAND_bytes(raw, sizeof(raw)) != 1 || connection_binding_raw(ctx, binding) == -1 ||
	    nonces_put(w->c->nonces, raw, subject, binding, time(NULL) + CONDUCTOR_NONCE_TTL_S) ==
		    -1) {
		reply_internal(ctx);
		goto out;
	}
	hex_encode(raw, sizeof(raw), nonce);
	http_reply_json(
		ctx, 200,
		json_pack("{s:s, s:i}", "nonce", nonce, "expires_in", CONDUCTOR_NONCE_TTL_S));
out:
	json_decref(body);
}

/* ---- POST /v1/auth ------------------------------------------------------ */

/*
 * See conductor.h: nonce consumed first, then the secret looked up and the HMAC compared in
 * constant time.
 */
bool
check_psk_proof(struct http_ctx *ctx, struct worker *w, json_t *body, const char *subject)
{
	uint8_t nonce[CONDUCTOR_NONCE_LEN], proof[CONDUCTOR_PROOF_LEN], ex[CONDUCTOR_EXPORTER_LEN],
		binding[NONCES_BINDING_LEN];
	const char *psk_id = NULL, *nonce_hex = NULL;
	struct store_result *res = NULL;
	struct secret psk = {0};
	char context[32];
	bool ok = false;

	if (json_get_string(body, "psk_id", true, PSK_ID_LEN, &psk_id) == -1 ||
	    json_get_string(body, "nonce", true, 2 * CONDUCTOR_NONCE_LEN, &nonce_hex) == -1 ||
	    hex_field(body, "nonce", CONDUCTOR_NONCE_LEN, nonce) == -1 ||
	    hex_field(body, "proof", CONDUCTOR_PROOF_LEN, proof) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		return false;
	}
	if (strlen(psk_id) != PSK_ID_LEN || !is_hex_string(psk_id)) {
		http_reply_error(ctx, 400, "bad-request", "psk_id must be %d hex digits",
				 PSK_ID_LEN);
		return false;
	}
	if (http_ctx_exporter(ctx, CONDUCTOR_EXPORTER_LABEL, ex, sizeof(ex)) == -1 ||
	    exporter_binding(ex, binding) == -1 ||
	    store_exec(w->db, "SELECT sealed FROM psks WHERE id = $1", &psk_id, 1, &res) == -1) {
		reply_internal(ctx);
		goto out;
	}
	if (!nonces_take(w->c->nonces, nonce, subject, binding, time(NULL))) {
		http_reply_error(ctx, 401, "bad-nonce",
				 "the nonce is unknown, used or expired: start again with a hello");
		goto out;
	}
	snprintf(context, sizeof(context), "psk:%s", psk_id);
	if (store_rows(res) != 1 || unseal(w, context, store_value(res, 0, 0), &psk) == -1 ||
	    !psk_proof_check(&psk, nonce, subject, ex, proof)) {
		http_reply_error(ctx, 401, "bad-proof",
				 "the proof of the pre-shared secret is wrong");
		goto out;
	}
	ok = true;
out:
	secure_zero(ex, sizeof(ex));
	secret_free(&psk);
	store_result_free(res);
	return ok;
}

/* Binds the device key to the router on its first authentication; false: another device. */
static int
bind_device(struct worker *w, struct router_row *r, const char *key_id, bool *same)
{
	struct store_result *res = NULL;
	char name[sizeof(r->name)];
	bool found;

	*same = false;
	snprintf(name, sizeof(name), "%s", r->name);
	if (r->device_key[0] == '\0') {
		if (store_exec(
			    w->db,
			    "UPDATE routers SET device_key = $1 WHERE name = $2 AND device_key IS "
			    "NULL",
			    (const char *[]){key_id, r->name}, 2, &res) == -1)
			return -1;
		store_result_free(res);
		/* Read it back: a concurrent first authentication may have won. */
		if (router_get(w, "name", name, r, &found) == -1)
			return -1;
		if (!found)
			return or_error("router %s vanished while binding its device", name);
	}
	*same = strcmp(r->device_key, key_id) == 0;
	return 0;
}

/* A certificate that expires within renew-before-days (and none pending): queue a renewal. */
static int
renew_if_due(struct worker *w, const char *router)
{
	struct store_result *res = NULL;
	char due[24];
	int rc = -1;

	fmt_i64((long long)time(NULL) + (long long)w->c->set.renew_before_days * 86400, due);
	if (store_exec(w->db,
		       "SELECT (SELECT max(not_after) FROM certificates WHERE router = $1), "
		       "(SELECT count(*) FROM commands WHERE router = $1 AND kind = "
		       "'generate-certificate' AND state = 'queued')",
		       &router, 1, &res) == -1)
		return -1;
	rc = 0;
	if (store_value(res, 0, 0) != NULL && parse_i64(store_value(res, 0, 1)) == 0 &&
	    parse_i64(store_value(res, 0, 0)) < parse_i64(due)) {
		json_t *payload = json_pack("{s:s}", "reason", "renewal");

		log_info("router %s: certificate expires soon, renewing", router);
		rc = command_queue(w, router, "generate-certificate", payload, NULL);
		json_decref(payload);
	}
	store_result_free(res);
	return rc;
}

/* A new session token bound to this connection; the router's previous session ends. */
static int
new_session(struct http_ctx *ctx, struct worker *w, const char *router, char token[65])
{
	char hash[65], binding[65], expires[24];

	fmt_i64((long long)time(NULL) + CONDUCTOR_SESSION_TTL_S, expires);
	if (random_hex(32, token) == -1 || sha256_hex(token, strlen(token), hash) == -1 ||
	    connection_binding(ctx, binding) == -1)
		return -1;
	/* One session per router: a reconnection replaces the old one. */
	if (store_exec(w->db, "DELETE FROM sessions WHERE router = $1", &router, 1, NULL) == -1)
		return -1;
	return store_exec(w->db,
			  "INSERT INTO sessions (token_hash, router, binding, expires) VALUES ($1, "
			  "$2, $3, $4)",
			  (const char *[]){hash, router, binding, expires}, 4, NULL);
}

/*
 * The device was refused for holding another device's asset ID: record, alarm, reply. The
 * alarm names what the device claimed (asset ID, its key, the serial its assertion vouches
 * for), never its address: every router arrives through the same proxy.
 */
static void
deny_duplicate(struct http_ctx *ctx, struct worker *w, const struct router_row *r, json_t *body,
	       const char *key_id)
{
	char message[1536], serial[512];

	cloud_trust_claimed_serial(w, body, r->asset_id, key_id, serial, sizeof(serial));
	snprintf(message, sizeof(message),
		 "asset ID %s of router %s claimed by another device: key %s, %s; the bound "
		 "device (key %s) keeps working",
		 r->asset_id, r->name, key_id, serial, r->device_key);
	if (foreign_record(w, r->asset_id, key_id, "denied", r->name, http_ctx_peer(ctx),
			   "duplicate asset ID: another device already holds it") == -1 ||
	    alarm_raise(w, "critical", "duplicate-asset", r->asset_id, message) == -1)
		log_error("cannot record the duplicate asset %s: %s", r->asset_id, or_errmsg());
	http_reply_error(ctx, 403, "duplicate-asset",
			 "asset ID %s is already in use by another device", r->asset_id);
}

/*
 * POST /v1/auth: proof of the secret, device CSR over the nonce, asset ID, device binding, then
 * a session.
 */
static void
handle_auth(struct http_ctx *ctx, void *arg)
{
	const char *asset_id = NULL, *csr = NULL, *nonce_hex = NULL;
	char key_id[PKI_KEY_ID_LEN + 1], uri[sizeof(NONCE_URI_PREFIX) + 64], token[65],
		note[CONDUCTOR_ERROR_MAX], claimed[512];
	enum asset_progress to;
	struct router_row r;
	json_t *body = NULL;
	struct worker *w;
	bool found, same, revoked, began = false;

	(void)arg;
	if ((w = worker_of(ctx)) == NULL || rate_limit_request(ctx, w->c->limiter) == -1 ||
	    !body_of(ctx, &body))
		return;
	if (json_get_string(body, "asset_id", true, CONDUCTOR_SUBJECT_MAX, &asset_id) == -1 ||
	    json_get_string(body, "device_csr", true, CSR_MAX, &csr) == -1 ||
	    json_get_string(body, "nonce", true, 2 * CONDUCTOR_NONCE_LEN, &nonce_hex) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (!valid_asset_id(asset_id)) {
		http_reply_error(ctx, 400, "bad-request",
				 "asset_id must be 1 to 128 printable characters without spaces");
		goto out;
	}
	if (router_get(w, "asset_id", asset_id, &r, &found) == -1) {
		reply_internal(ctx);
		goto out;
	}
	if (!check_psk_proof(ctx, w, body, asset_id)) {
		log_warn("asset %s from %s: pre-shared secret proof refused", asset_id,
			 http_ctx_peer(ctx));
		if (found) {
			snprintf(note, sizeof(note),
				 "authentication refused from %s: wrong or stale secret proof",
				 http_ctx_peer(ctx));
			router_note_error(w, r.name, "authenticate", note);
		}
		goto out;
	}
	snprintf(uri, sizeof(uri), "%s%s", NONCE_URI_PREFIX, nonce_hex);
	if (pki_csr_check(csr, uri, key_id) == -1) {
		http_reply_error(ctx, 400, "bad-device-csr", "%s", or_errmsg());
		goto out;
	}
	/* A revoked secret binds no new device; one bound before proves its key again. */
	if (psk_is_revoked(w, json_string_value(json_object_get(body, "psk_id")), &revoked) == -1) {
		reply_internal(ctx);
		goto out;
	}
	if (revoked && !(found && strcmp(r.device_key, key_id) == 0)) {
		log_warn("asset %s from %s: revoked pre-shared secret refused", asset_id,
			 http_ctx_peer(ctx));
		if (found) {
			snprintf(
				note, sizeof(note),
				"authentication refused from %s: the pre-shared secret was revoked",
				http_ctx_peer(ctx));
			router_note_error(w, r.name, "authenticate", note);
		}
		http_reply_error(ctx, 401, "revoked-psk",
				 "the pre-shared secret was revoked: use the site's current one");
		goto out;
	}
	if (!found) {
		log_warn("asset %s from %s: unknown asset ID refused", asset_id,
			 http_ctx_peer(ctx));
		cloud_trust_claimed_serial(w, body, asset_id, key_id, claimed, sizeof(claimed));
		if (foreign_unknown(w, asset_id, key_id, claimed, http_ctx_peer(ctx)) == -1)
			log_error("cannot record unknown asset %s: %s", asset_id, or_errmsg());
		http_reply_error(ctx, 403, "unknown-asset", "asset ID %s is not known here",
				 asset_id);
		goto out;
	}
	if (!cloud_trust_admits(ctx, w, &r, body, key_id))
		goto out;
	/*
	 * The writes from here on in one transaction. The reads and checks above (the
	 * proof, the CSR's signature) ran before it, so that the other loop's writers
	 * never wait for them (docs/benchmarks.md, the conductor's setup); what they read
	 * is checked again where it matters (bind_device binds only an unbound asset).
	 */
	if (store_begin(w->db) == -1) {
		reply_internal(ctx);
		goto out;
	}
	began = true;
	if (bind_device(w, &r, key_id, &same) == -1) {
		reply_internal(ctx);
		goto out;
	}
	if (!same) {
		deny_duplicate(ctx, w, &r, body, key_id);
		goto out;
	}
	if (new_session(ctx, w, r.name, token) == -1 ||
	    router_event(w, r.name, AE_AUTHENTICATED, &to) == -1 ||
	    router_contact(w, r.name, false) == -1 ||
	    router_clear_error(w, r.name, "authenticate") == -1 ||
	    foreign_forget(w, asset_id, NULL) == -1 || renew_if_due(w, r.name) == -1) {
		reply_internal(ctx);
		goto out;
	}
	log_info("router %s (asset %s) authenticated from %s", r.name, asset_id,
		 http_ctx_peer(ctx));
	http_reply_json(ctx, 200,
			json_pack("{s:s, s:s, s:i, s:s, s:s}", "session", token, "router", r.name,
				  "poll_timeout", (int)w->c->set.poll_timeout_s, "role",
				  w->c->set.role == ROLE_PRODUCTION ? "production" : "staging",
				  "state", asset_progress_name(to)));
	secure_zero(token, sizeof(token));
out:
	/* A statement that failed has the commit roll everything back. */
	if (began && store_commit(w->db) == -1)
		log_error("committing the work of a router request failed: %s", or_errmsg());
	json_decref(body);
}

/* ---- GET /v1/commands (long poll) --------------------------------------- */

/* Adds what a command carries only at delivery: the production secret, unsealed. */
static int
complete_payload(struct worker *w, const char *router, const char *kind, json_t *payload)
{
	struct store_result *res = NULL;
	struct secret psk = {0};
	char context[80];
	int rc = -1;

	if (strcmp(kind, "set-production-conductor") != 0)
		return 0;
	if (store_exec(w->db, "SELECT prod_psk FROM routers WHERE name = $1", &router, 1, &res) ==
	    -1)
		return -1;
	snprintf(context, sizeof(context), "prod-psk:%s", router);
	if (store_rows(res) != 1 || unseal(w, context, store_value(res, 0, 0), &psk) == -1)
		goto out;
	json_object_set_new(payload, "psk", json_stringn((char *)psk.data, psk.len));
	rc = 0;
out:
	secret_free(&psk);
	store_result_free(res);
	return rc;
}

/* The router's queued commands, oldest first, at most 16, with delivery-time additions. */
static int
pending_commands(struct worker *w, const char *router, json_t **out)
{
	struct store_result *res = NULL;
	json_t *list = json_array();
	int rc = -1;

	*out = NULL;
	if (list == NULL)
		return or_error("out of memory");
	if (store_exec(w->db,
		       "SELECT id, kind, payload FROM commands WHERE router = $1 AND state = "
		       "'queued' ORDER BY id LIMIT 16",
		       &router, 1, &res) == -1)
		goto out;
	for (size_t i = 0; i < store_rows(res); i++) {
		const char *payload_text = store_value(res, i, 2);
		json_t *payload = NULL;

		if (json_parse_object(payload_text, strlen(payload_text), 1 << 20, &payload) ==
			    -1 ||
		    complete_payload(w, router, store_value(res, i, 1), payload) == -1) {
			json_decref(payload);
			goto out;
		}
		json_array_append_new(list, json_pack("{s:I, s:s, s:o}", "id",
						      (json_int_t)parse_i64(store_value(res, i, 0)),
						      "type", store_value(res, i, 1), "payload",
						      payload));
	}
	*out = list;
	list = NULL;
	rc = 0;
out:
	json_decref(list);
	store_result_free(res);
	return rc;
}

/*
 * Answers a poll with whatever is queued now (possibly nothing). While this instance drains,
 * nothing is delivered here (its acknowledgement could not come back on this connection):
 * "reconnect": true sends the router at once to another instance, which delivers it.
 */
static void
reply_commands(struct http_ctx *ctx, struct worker *w, const char *router)
{
	json_t *list;

	if (poll_releasing(w->c->polls)) {
		http_reply_json(ctx, 200, json_pack("{s:[], s:b}", "commands", "reconnect", 1));
		return;
	}
	if (pending_commands(w, router, &list) == -1) {
		reply_internal(ctx);
		return;
	}
	http_reply_json(ctx, 200, json_pack("{s:o}", "commands", list));
}

/* A held poll was woken or its wait ran out: answer it on its own loop. */
static void
poll_answer(struct http_ctx *ctx, const char *router, bool timed_out, void *arg)
{
	struct worker *w = arg;

	(void)timed_out;
	/* The router polls again at once, so its contact stays fresh without a write here. */
	reply_commands(ctx, w, router);
}

/* The router hung up during a held poll: it is no longer polling. */
static void
poll_gone(const char *router, void *arg)
{
	struct worker *w = arg;

	if (router_contact(w, router, false) == -1)
		log_warn("router %s: cannot record its disconnection: %s", router, or_errmsg());
}

/* GET /v1/commands: answers at once when something is queued, else holds the poll. */
static void
handle_commands(struct http_ctx *ctx, void *arg)
{
	const char *wait_text = http_ctx_query(ctx, "wait");
	unsigned wait = 0;
	struct router_row r;
	struct worker *w;
	json_t *list = NULL;

	(void)arg;
	if ((w = worker_of(ctx)) == NULL || !session_router(ctx, w, &r))
		return;
	wait = w->c->set.poll_timeout_s;
	if (wait_text != NULL) {
		char *end;
		unsigned long v = strtoul(wait_text, &end, 10);

		if (wait_text[0] < '0' || wait_text[0] > '9' || *end != '\0' || v > wait) {
			http_reply_error(ctx, 400, "bad-request", "wait must be 0 to %u seconds",
					 wait);
			return;
		}
		wait = (unsigned)v;
	}
	if (poll_releasing(w->c->polls)) {
		reply_commands(ctx, w, r.name);
		return;
	}
	if (pending_commands(w, r.name, &list) == -1) {
		reply_internal(ctx);
		return;
	}
	if (json_array_size(list) > 0 || wait == 0) {
		router_contact(w, r.name, false);
		http_reply_json(ctx, 200, json_pack("{s:o}", "commands", list));
		return;
	}
	json_decref(list);
	if (router_contact(w, r.name, true) == -1 ||
	    poll_hold(w->c->polls, ctx, r.name, wait, poll_answer, poll_gone, w) == -1)
		reply_internal(ctx);
}

/* ---- POST /v1/commands/ID/ack ------------------------------------------- */

struct command_row {
	long long id;
	char kind[32];
	char state[16];
	json_t *payload;
};

/* The command ID of path /v1/commands/ID/SUFFIX, or -1. */
static long long
command_id_of(const char *path, const char *suffix)
{
	const char *p = path + strlen("/v1/commands/");
	char *end;
	long long id;

	if (*p < '1' || *p > '9')
		return -1;
	id = strtoll(p, &end, 10);
	return strcmp(end, suffix) == 0 && id > 0 ? id : -1;
}

/* One of the router's commands by id; a command of another router is not found. */
static int
command_get(struct worker *w, const char *router, long long id, struct command_row *c, bool *found)
{
	struct store_result *res = NULL;
	char id_text[24];
	const char *payload;
	int rc = -1;

	*found = false;
	memset(c, 0, sizeof(*c));
	fmt_i64(id, id_text);
	if (store_exec(w->db,
		       "SELECT kind, state, payload FROM commands WHERE id = $1 AND router = $2",
		       (const char *[]){id_text, router}, 2, &res) == -1)
		return -1;
	if (store_rows(res) == 1) {
		c->id = id;
		snprintf(c->kind, sizeof(c->kind), "%s", store_value(res, 0, 0));
		snprintf(c->state, sizeof(c->state), "%s", store_value(res, 0, 1));
		payload = store_value(res, 0, 2);
		if (json_parse_object(payload, strlen(payload), 1 << 20, &c->payload) == -1)
			goto out;
		*found = true;
	}
	rc = 0;
out:
	store_result_free(res);
	return rc;
}

/*
 * Checks an "ok" acknowledgement against the command and applies its effect.
 * Returns 0 when applied, 1 after replying with a refusal, -1 on failure.
 */
static int
apply_ack(struct http_ctx *ctx, struct worker *w, const struct router_row *r,
	  const struct command_row *c, json_t *result)
{
	struct store_result *res = NULL;
	enum asset_progress to;
	const char *value = NULL, *expect;
	char id_text[24];
	bool issued;

	fmt_i64(c->id, id_text);
	if ((strcmp(c->kind, "generate-certificate") == 0 &&
	     asset_next(w->c->set.role, r->progress, r->resume, AE_CERT_ACKED, &to) == -1) ||
	    (strcmp(c->kind, "apply-config") == 0 &&
	     asset_next(w->c->set.role, r->progress, r->resume, AE_CONFIG_ACKED, &to) == -1)) {
		http_reply_error(ctx, 409, "wrong-state", "%s", or_errmsg());
		return 1;
	}
	if (strcmp(c->kind, "generate-certificate") == 0) {
		if (json_get_string(result, "serial", true, PKI_SERIAL_HEX_MAX, &value) == -1) {
			http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
			return 1;
		}
		if (store_exec(w->db,
			       "SELECT 1 FROM certificates WHERE serial = $1 AND command_id = $2 "
			       "AND router = $3",
			       (const char *[]){value, id_text, r->name}, 3, &res) == -1)
			return -1;
		issued = store_rows(res) == 1;
		store_result_free(res);
		if (!issued) {
			http_reply_error(ctx, 409, "wrong-certificate",
					 "no certificate with that serial was issued for command "
					 "%lld",
					 c->id);
			return 1;
		}
		return router_event(w, r->name, AE_CERT_ACKED, &to);
	}
	if (strcmp(c->kind, "apply-config") != 0)
		return 0;
	expect = json_string_value(json_object_get(c->payload, "sha256"));
	if (json_get_string(result, "sha256", true, 64, &value) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		return 1;
	}
	if (expect == NULL || strcmp(value, expect) != 0) {
		http_reply_error(ctx, 409, "config-mismatch",
				 "the acknowledged hash is not the configuration's (%s)",
				 expect ? expect : "none");
		return 1;
	}
	if (store_exec(w->db, "UPDATE routers SET config_acked = $1 WHERE name = $2",
		       (const char *[]){value, r->name}, 2, NULL) == -1)
		return -1;
	/* Only the current configuration makes the router configured. */
	if (strcmp(value, r->config_sha256) == 0)
		return router_event(w, r->name, AE_CONFIG_ACKED, &to);
	return 0;
}

/*
 * POST /v1/commands/ID/ack: checks the acknowledgement, applies its effect once; a repeat gets
 * the same answer.
 */
static void
handle_ack(struct http_ctx *ctx, void *arg)
{
	const char *status = NULL, *error = NULL;
	struct command_row c = {0};
	char id_text[24], now[24], note[CONDUCTOR_ERROR_MAX], *result_text = NULL;
	long long id = command_id_of(http_ctx_path(ctx), "/ack");
	json_t *body = NULL, *result;
	struct router_row r;
	struct worker *w;
	bool found, ok;
	int applied;

	(void)arg;
	if ((w = worker_of(ctx)) == NULL || !session_router(ctx, w, &r) || !body_of(ctx, &body))
		goto out;
	if (id < 0) {
		http_reply_error(ctx, 404, "not-found", "no such command path");
		goto out;
	}
	if (json_get_string(body, "status", true, 8, &status) == -1 ||
	    json_get_string(body, "error", false, CONDUCTOR_ERROR_MAX, &error) == -1 ||
	    (error != NULL && cloud_check_text("error", error, 0, CONDUCTOR_ERROR_MAX) == -1)) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (strcmp(status, "ok") != 0 && strcmp(status, "error") != 0) {
		http_reply_error(ctx, 400, "bad-request", "status must be ok or error");
		goto out;
	}
	ok = strcmp(status, "ok") == 0;
	result = json_object_get(body, "result");
	if (result != NULL && !json_is_object(result)) {
		http_reply_error(ctx, 400, "bad-request", "result must be an object");
		goto out;
	}
	if (command_get(w, r.name, id, &c, &found) == -1) {
		reply_internal(ctx);
		goto out;
	}
	if (!found) {
		http_reply_error(ctx, 404, "not-found", "no command %lld for router %s", id,
				 r.name);
		goto out;
	}
	if (strcmp(c.state, "queued") != 0) {
		/* Acknowledged before (the answer was lost): the same answer again. */
		http_reply_json(ctx, 200,
				json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", c.state));
		goto out;
	}
	/* The effect and the command's new state are kept together, or not at all. */
	if (store_begin(w->db) == -1) {
		reply_internal(ctx);
		goto out;
	}
	applied = ok ? apply_ack(ctx, w, &r, &c, result ? result : body) : 0;
	if (applied != 0) {
		if (applied == -1)
			reply_internal(ctx);
		store_rollback(w->db);
		goto out;
	}
	if (!ok) {
		snprintf(note, sizeof(note), "%s failed on the router: %s", c.kind,
			 error ? error : "no reason given");
		if (router_note_error(w, r.name, c.kind, note) == -1)
			goto fail;
		log_warn("router %s: %s", r.name, note);
	} else if (router_clear_error(w, r.name, c.kind) == -1) {
		goto fail;
	}
	/* What is kept: the result of an "ok", the whole report of an "error". */
	result_text = ok && result == NULL ? strdup("{}") : json_dump_compact(ok ? result : body);
	fmt_i64(id, id_text);
	fmt_i64((long long)time(NULL), now);
	if (store_exec(w->db,
		       "UPDATE commands SET state = $1, result = $2, acked = $3 WHERE id = $4 AND "
		       "state = 'queued'",
		       (const char *[]){ok ? "acked" : "failed", result_text, now, id_text}, 4,
		       NULL) == -1 ||
	    store_commit(w->db) == -1)
		goto fail;
	http_reply_json(
		ctx, 200,
		json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", ok ? "acked" : "failed"));
	goto out;
fail:
	reply_internal(ctx);
	store_rollback(w->db);
out:
	free(result_text);
	json_decref(c.payload);
	json_decref(body);
}

/* ---- POST /v1/certificate ----------------------------------------------- */

/* The answer to a certificate request: certificate, issuing CA, serial, expiry. */
static json_t *
certificate_answer(struct worker *w, const char *pem, const char *serial, time_t not_after)
{
	char when[RFC3339_LEN + 1];

	rfc3339_format(not_after, when);
	return json_pack("{s:s, s:s, s:s, s:s}", "certificate", pem, "ca",
			 pki_ca_cert_pem(w->c->ca), "serial", serial, "not_after", when);
}

/*
 * POST /v1/certificate: signs the CSR of the bound device key for a queued generate-certificate;
 * once per command.
 */
static void
handle_certificate(struct http_ctx *ctx, void *arg)
{
	const char *csr = NULL;
	char key_id[PKI_KEY_ID_LEN + 1], id_text[24], nb[24], na[24], now[24],
		until[RFC3339_LEN + 1];
	struct store_result *res = NULL;
	struct command_row c = {0};
	struct pki_issued out = {0};
	X509_REQ *req = NULL;
	json_int_t id = 0;
	json_t *body = NULL;
	struct router_row r;
	struct worker *w;
	bool found;

	(void)arg;
	if ((w = worker_of(ctx)) == NULL || !session_router(ctx, w, &r) || !body_of(ctx, &body))
		goto done;
	if (json_get_int(body, "command_id", true, 1, INT64_MAX, &id) == -1 ||
	    json_get_string(body, "csr", true, CSR_MAX, &csr) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto done;
	}
	if (command_get(w, r.name, id, &c, &found) == -1) {
		reply_internal(ctx);
		goto done;
	}
	if (!found || strcmp(c.kind, "generate-certificate") != 0) {
		http_reply_error(ctx, 404, "not-found",
				 "no generate-certificate command %lld for router %s",
				 (long long)id, r.name);
		goto done;
	}
	/* Parsed and checked once, for the key's identity and for the signing. */
	if (pki_csr_load(csr, NULL, &req, key_id) == -1) {
		http_reply_error(ctx, 400, "bad-csr", "%s", or_errmsg());
		goto done;
	}
	if (strcmp(key_id, r.device_key) != 0) {
		http_reply_error(ctx, 403, "wrong-key",
				 "the CSR's key is not the key this device authenticated with");
		goto done;
	}
	fmt_i64(id, id_text);
	if (store_exec(w->db,
		       "SELECT pem, serial, not_after FROM certificates WHERE command_id = $1 AND "
		       "router = $2 ORDER BY issued, serial LIMIT 1",
		       (const char *[]){id_text, r.name}, 2, &res) == -1) {
		reply_internal(ctx);
		goto done;
	}
	/* (Two requests racing for one command may both have signed: the first is the answer.) */
	if (store_rows(res) == 1) {
		/* Asked again for the same command: the same certificate, not a second one. */
		http_reply_json(ctx, 200,
				certificate_answer(w, store_value(res, 0, 0),
						   store_value(res, 0, 1),
						   (time_t)parse_i64(store_value(res, 0, 2))));
		goto done;
	}
	if (strcmp(c.state, "queued") != 0) {
		http_reply_error(ctx, 409, "command-done", "command %lld is already %s",
				 (long long)id, c.state);
		goto done;
	}
	if (pki_sign_router_req(w->c->ca, req, key_id, r.name, w->c->set.cert_days, &out) == -1) {
		http_reply_error(ctx, 400, "bad-csr", "%s", or_errmsg());
		goto done;
	}
	fmt_i64((long long)out.not_before, nb);
	fmt_i64((long long)out.not_after, na);
	fmt_i64((long long)time(NULL), now);
	rfc3339_format(out.not_after, until);
	/*
	 * Only the certificate's row is written in a transaction: the reads, the CSR's
	 * checks and the signing above ran before it, so that the other loop's writers
	 * never wait for them (docs/benchmarks.md, the conductor's setup).
	 */
	if (store_begin(w->db) == -1 ||
	    store_exec(w->db,
		       "INSERT INTO certificates (serial, router, command_id, key_id, sha256, "
		       "not_before, not_after, pem, issued) VALUES ($1, $2, $3, $4, $5, $6, $7, "
		       "$8, $9)",
		       (const char *[]){out.serial, r.name, id_text, out.key_id, out.sha256, nb, na,
					out.cert_pem, now},
		       9, NULL) == -1 ||
	    store_commit(w->db) == -1) {
		if (store_in_transaction(w->db))
			store_rollback(w->db);
		reply_internal(ctx);
		goto done;
	}
	log_info("router %s: certificate %s issued, valid until %s", r.name, out.serial, until);
	http_reply_json(ctx, 200, certificate_answer(w, out.cert_pem, out.serial, out.not_after));
done:
	pki_issued_free(&out);
	X509_REQ_free(req);
	store_result_free(res);
	json_decref(c.payload);
	json_decref(body);
}

/* ---- POST /v1/migration (report to the old conductor) -------------------- */

/* Records a migration's outcome reported by the router, and moves its state (once). */
static int
finish_migration(struct worker *w, const struct router_row *r, json_int_t id, bool succeeded,
		 const char *reason, const char *addresses, bool *known)
{
	struct store_result *res = NULL;
	char id_text[24], now[24], note[CONDUCTOR_ERROR_MAX];
	enum asset_progress to;
	long changed;

	*known = true;
	fmt_i64((long long)id, id_text);
	fmt_i64((long long)time(NULL), now);
	if (id == 0) {
		/* The router migrated on its own (onrampctl on the router): record it. */
		if (store_exec(w->db,
			       "INSERT INTO migrations (router, addresses, state, reason, started, "
			       "finished) VALUES ($1, $2, $3, $4, $5, $5)",
			       (const char *[]){r->name, addresses,
						succeeded ? "succeeded" : "failed", reason, now},
			       5, NULL) == -1)
			return -1;
		if (succeeded && (router_event(w, r->name, AE_MIGRATE_SENT, &to) == -1 ||
				  router_event(w, r->name, AE_MIGRATE_SUCCEEDED, &to) == -1))
			return -1;
	} else {
		if (store_exec(w->db,
			       "UPDATE migrations SET state = $1, reason = $2, finished = $3 WHERE "
			       "id = $4 AND router = $5 AND state = 'pending'",
			       (const char *[]){succeeded ? "succeeded" : "failed", reason, now,
						id_text, r->name},
			       5, &res) == -1)
			return -1;
		changed = store_changes(res);
		store_result_free(res);
		if (changed == 0) {
			/* Unknown, or reported before: repeating a report changes nothing. */
			if (store_exec(w->db,
				       "SELECT 1 FROM migrations WHERE id = $1 AND router = $2",
				       (const char *[]){id_text, r->name}, 2, &res) == -1)
				return -1;
			*known = store_rows(res) == 1;
			store_result_free(res);
			return 0;
		}
		if (router_event(w, r->name, succeeded ? AE_MIGRATE_SUCCEEDED : AE_MIGRATE_FAILED,
				 &to) == -1)
			return -1;
	}
	if (!succeeded) {
		snprintf(note, sizeof(note), "migrate to %s failed, back on this conductor: %s",
			 addresses, reason ? reason : "no reason given");
		log_warn("router %s: %s", r->name, note);
		return router_note_error(w, r->name, "migration", note);
	}
	log_info("router %s: migrated to %s", r->name, addresses);
	return router_clear_error(w, r->name, NULL);
}

/* POST /v1/migration: the router's report to the conductor it left (or came back to). */
static void
handle_migration(struct http_ctx *ctx, void *arg)
{
	const char *status = NULL, *reason = NULL, *addrs[CONDUCTOR_MAX_ADDRESSES];
	json_int_t id = 0;
	json_t *body = NULL;
	char *addresses = NULL;
	struct router_row r;
	struct worker *w;
	size_t n;
	bool known;

	(void)arg;
	if ((w = worker_of(ctx)) == NULL || !session_router(ctx, w, &r) || !body_of(ctx, &body))
		goto out;
	if (json_get_int(body, "migration_id", false, 1, INT64_MAX, &id) == -1 ||
	    json_get_string(body, "status", true, 16, &status) == -1 ||
	    json_get_string(body, "reason", false, CONDUCTOR_ERROR_MAX, &reason) == -1 ||
	    (reason != NULL && cloud_check_text("reason", reason, 0, CONDUCTOR_ERROR_MAX) == -1) ||
	    parse_addresses(json_object_get(body, "addresses"), "addresses", addrs,
			    CONDUCTOR_MAX_ADDRESSES, &n) == -1 ||
	    (strcmp(status, "succeeded") != 0 && strcmp(status, "failed") != 0)) {
		http_reply_error(ctx, 400, "bad-request", "%s",
				 status && strcmp(status, "succeeded") && strcmp(status, "failed")
					 ? "status must be succeeded or failed"
					 : or_errmsg());
		goto out;
	}
	addresses = json_dump_compact(json_object_get(body, "addresses"));
	if (addresses == NULL || finish_migration(w, &r, id, strcmp(status, "succeeded") == 0,
						  reason, addresses, &known) == -1) {
		reply_internal(ctx);
		goto out;
	}
	if (!known) {
		http_reply_error(ctx, 404, "not-found", "no migration %lld for router %s",
				 (long long)id, r.name);
		goto out;
	}
	http_reply_json(ctx, 200, json_pack("{s:s}", "recorded", status));
out:
	free(addresses);
	json_decref(body);
}

/* ---- POST /v1/migrated-in (report to the new conductor) ------------------ */

/* POST /v1/migrated-in: the router's report to the conductor it arrived at. */
static void
handle_migrated_in(struct http_ctx *ctx, void *arg)
{
	enum asset_progress to;
	struct router_row r;
	json_t *body = NULL;
	struct worker *w;

	(void)arg;
	if ((w = worker_of(ctx)) == NULL || !session_router(ctx, w, &r) || !body_of(ctx, &body))
		goto out;
	if (router_event(w, r.name, AE_MIGRATED_IN, &to) == -1) {
		/* A router that is not configured yet stays where it is; say so. */
		http_reply_error(ctx, 409, "not-ready", "%s", or_errmsg());
		goto out;
	}
	event_record(w, r.name, "migrate", "ok", "arrived by migration", time(NULL));
	log_info("router %s arrived by migration; now %s", r.name, asset_progress_name(to));
	http_reply_json(ctx, 200, json_pack("{s:s}", "state", asset_progress_name(to)));
out:
	json_decref(body);
}

/* ---- POST /v1/events (progress reports) --------------------------------- */

/* POST /v1/events: progress reports of the router's agent, checked in full before any is kept. */
static void
handle_events(struct http_ctx *ctx, void *arg)
{
	json_t *body = NULL, *events, *e;
	struct router_row r;
	struct worker *w;
	size_t i;

	(void)arg;
	if ((w = worker_of(ctx)) == NULL || !session_router(ctx, w, &r) || !body_of(ctx, &body))
		goto out;
	events = json_object_get(body, "events");
	if (!json_is_array(events) || json_array_size(events) > 64) {
		http_reply_error(ctx, 400, "bad-request", "events: an array of at most 64 reports");
		goto out;
	}
	json_array_foreach(events, i, e)
	{
		const char *step = NULL, *outcome = NULL, *reason = NULL;
		json_int_t at = 0;

		/* Printable text only: it is logged and shown to operators. */
		if (!json_is_object(e) || json_get_string(e, "step", true, 32, &step) == -1 ||
		    cloud_check_text("step", step, 1, 32) == -1 ||
		    json_get_string(e, "outcome", true, 16, &outcome) == -1 ||
		    cloud_check_text("outcome", outcome, 1, 16) == -1 ||
		    json_get_string(e, "reason", false, CONDUCTOR_ERROR_MAX, &reason) == -1 ||
		    (reason != NULL &&
		     cloud_check_text("reason", reason, 0, CONDUCTOR_ERROR_MAX) == -1) ||
		    json_get_int(e, "time", true, 0, INT64_MAX, &at) == -1) {
			http_reply_error(ctx, 400, "bad-request", "events[%zu]: %s", i,
					 json_is_object(e) ? or_errmsg() : "must be an object");
			goto out;
		}
	}
	json_array_foreach(events, i, e)
	{
		json_int_t at = json_integer_value(json_object_get(e, "time"));

		if (event_record(w, r.name, json_string_value(json_object_get(e, "step")),
				 json_string_value(json_object_get(e, "outcome")),
				 json_string_value(json_object_get(e, "reason")),
				 (time_t)at) == -1) {
			reply_internal(ctx);
			goto out;
		}
	}
	router_contact(w, r.name, false);
	http_reply_json(ctx, 200, json_pack("{s:I}", "recorded", (json_int_t)i));
out:
	json_decref(body);
}

/* ---- dispatch ------------------------------------------------------------ */

/*
 * Runs a router's request in one transaction of the loop's database
 * connection instead of an autocommit per statement (a setup runs dozens):
 * fewer WAL writes and locks (docs/benchmarks.md). The answer is queued by
 * the handler and written after it returns, so after the commit; a failed
 * commit rolls the request's work back and is logged, and the router's next
 * step fails and is retried. Only for requests that make no outbound call.
 */
static void
in_transaction(struct http_ctx *ctx, void *arg, http_handler handler)
{
	struct worker *w = http_ctx_thread_state(ctx);

	if (w == NULL || w->db == NULL || store_begin(w->db) == -1) {
		handler(ctx, arg); /* it answers for the missing connection itself */
		return;
	}
	handler(ctx, arg);
	if (store_commit(w->db) == -1)
		log_error("committing the work of a router request failed: %s", or_errmsg());
}

static void
commands_tx(struct http_ctx *ctx, void *arg)
{
	in_transaction(ctx, arg, handle_commands);
}

/* Dispatches /v1/commands/ID/ack (in one transaction). */
static void
handle_command_path(struct http_ctx *ctx, void *arg)
{
	const char *path = http_ctx_path(ctx);

	if (strlen(path) > 4 && strcmp(path + strlen(path) - 4, "/ack") == 0)
		in_transaction(ctx, arg, handle_ack);
	else
		http_reply_error(ctx, 404, "not-found", "no such path");
}

const struct http_route router_routes[] = {
	{"GET", "/healthz", handle_healthz, NULL},
	{"POST", "/v1/hello", handle_hello, NULL},
	{"POST", "/v1/auth", handle_auth, NULL},
	{"GET", "/v1/commands", commands_tx, NULL},
	{"POST", "/v1/commands/*", handle_command_path, NULL},
	{"POST", "/v1/certificate", handle_certificate, NULL},
	{"POST", "/v1/migration", handle_migration, NULL},
	{"POST", "/v1/migrated-in", handle_migrated_in, NULL},
	{"POST", "/v1/events", handle_events, NULL},
	{"POST", "/v1/peer/router", peer_handle_router, NULL},
};
const size_t n_router_routes = sizeof(router_routes) / sizeof(router_routes[0]);
