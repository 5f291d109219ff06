/*
 * Devices registered by the factory at the redirector (docs/protocol.md
 * section 5): a serial and the SHA-256 of its claim secret, nothing else.
 * A claim is accepted only with the secret that hashes to the registered
 * hash, so a cloud that merely knows a serial cannot claim it first; only the
 * inventory that can decrypt the factory record holds the secret.
 *
 * Trusts: the token's role (admin or factory register; admin deletes) and
 * nothing in a request body. A refused proof says the same whether the
 * serial is registered or not.
 */
#include "redirect.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "core/secret.h"
#include "proto/cloud_proto.h"
#include "server/admin_tokens.h"
#include "server/http_server.h"
#include "server/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* See redirect.h: the secret's hash against the registered one, in constant time. */
int
redirect_claim_proof(struct store *st, const char *serial, const char *claim_secret, bool *ok)
{
	const char *params[1] = {serial};
	struct store_result *res = NULL;
	char hash[65];

	*ok = false;
	if (cloud_token_hash(claim_secret, hash) == -1 ||
	    store_exec(st, "SELECT claim_hash FROM devices WHERE serial = $1", params, 1, &res) ==
		    -1)
		return -1;
	*ok = store_rows(res) == 1 && ct_equal_str(store_value(res, 0, 0), hash);
	store_result_free(res);
	return 0;
}

/* One device row (serial, claim_hash, registrar, registered) as the API shows it. */
static json_t *
device_json(const struct store_result *res)
{
	char when[RFC3339_LEN + 1];

	rfc3339_format((time_t)strtoll(store_value(res, 0, 3), NULL, 10), when);
	return json_pack("{s:s,s:s,s:s,s:s}", "serial", store_value(res, 0, 0), "claim_hash",
			 store_value(res, 0, 1), "registrar", store_value(res, 0, 2), "registered",
			 when);
}

/* Replies with the registration of serial (status), or 404. */
static void
reply_device(struct http_ctx *ctx, struct store *st, const char *serial, int status)
{
	const char *params[1] = {serial};
	struct store_result *res = NULL;

	if (store_exec(st,
		       "SELECT serial, claim_hash, registrar, registered FROM devices "
		       "WHERE serial = $1",
		       params, 1, &res) == -1) {
		log_error("reading a device registration failed: %s", or_errmsg());
		http_reply_error(ctx, 500, "internal", "the registration could not be read");
	} else if (store_rows(res) == 0) {
		http_reply_error(ctx, 404, "not-found", "serial %s is not registered", serial);
	} else {
		http_reply_json(ctx, status, device_json(res));
	}
	store_result_free(res);
}

/*
 * PUT /v1/admin/devices/SERIAL {"claim_hash"}: registers a device; the same
 * hash again is a no-op, another hash for a registered serial a 409 (an admin
 * deletes the registration first).
 */
static void
register_device(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
		const char *serial)
{
	const char *hash = NULL, *params[4];
	struct store_result *res = NULL;
	char now[24];
	json_t *body = NULL;

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "claim_hash", true, CLOUD_CLAIM_SECRET_HEX, &hash) == -1 ||
	    cloud_check_claim_hex("claim_hash", hash) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	params[0] = serial;
	params[1] = hash;
	params[2] = who->name;
	params[3] = now;
	if (store_exec(st,
		       "INSERT INTO devices (serial, claim_hash, registrar, registered) "
		       "VALUES ($1, $2, $3, $4) ON CONFLICT (serial) DO NOTHING",
		       params, 4, &res) == -1)
		goto fail;
	if (store_changes(res) == 1) {
		log_info("serial %s registered by '%s'", serial, who->name);
		reply_device(ctx, st, serial, 201);
		goto out;
	}
	store_result_free(res);
	res = NULL;
	if (store_exec(st, "SELECT 1 FROM devices WHERE serial = $1 AND claim_hash = $2", params, 2,
		       &res) == -1)
		goto fail;
	if (store_rows(res) == 1)
		reply_device(ctx, st, serial, 200);
	else
		http_reply_error(ctx, 409, "registered",
				 "serial %s is registered with another claim hash", serial);
	goto out;
fail:
	log_error("registering serial %s failed: %s", serial, or_errmsg());
	http_reply_error(ctx, 500, "internal", "the registration could not be written");
out:
	store_result_free(res);
	json_decref(body);
}

/* DELETE /v1/admin/devices/SERIAL (admin only): the registration goes; a claim stays. */
static void
delete_device(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
	      const char *serial)
{
	const char *params[1] = {serial};
	struct store_result *res = NULL;

	if (store_exec(st, "DELETE FROM devices WHERE serial = $1", params, 1, &res) == -1) {
		log_error("deleting the registration of %s failed: %s", serial, or_errmsg());
		http_reply_error(ctx, 500, "internal", "the registration could not be deleted");
	} else if (store_changes(res) == 0) {
		http_reply_error(ctx, 404, "not-found", "serial %s is not registered", serial);
	} else {
		log_info("registration of serial %s deleted by '%s'", serial, who->name);
		http_reply_json(ctx, 200, json_pack("{s:s}", "deleted", serial));
	}
	store_result_free(res);
}

/* See redirect.h. */
void
redirect_devices_serve(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
		       const char *serial)
{
	const char *method = http_ctx_method(ctx);
	bool admin = strcmp(who->role, "admin") == 0, factory = strcmp(who->role, "factory") == 0;

	if (cloud_check_serial(serial) == -1)
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
	else if (!admin && !factory)
		http_reply_error(ctx, 403, "forbidden",
				 "only admin and factory tokens register devices");
	else if (strcmp(method, "GET") == 0)
		reply_device(ctx, st, serial, 200);
	else if (strcmp(method, "PUT") == 0)
		register_device(ctx, st, who, serial);
	else if (strcmp(method, "DELETE") == 0 && admin)
		delete_device(ctx, st, who, serial);
	else if (strcmp(method, "DELETE") == 0)
		http_reply_error(ctx, 403, "forbidden", "only admin tokens delete registrations");
	else
		http_reply_error(ctx, 405, "method-not-allowed", "use GET, PUT or DELETE");
}
