/*
 * The admin API's audit trail: a hash chain in the daemon's database. What
 * it records comes from the request (method, path, peer, a body's naming
 * fields) and from the answer the handler gave; none of it is trusted for
 * anything but being written down, and no header or token is ever stored.
 */
#include "server/audit.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "server/admin_tokens.h"
#include "server/http_server.h"
#include "server/store.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds a client waits before asking again for a change the store could not start. */
#define CHANGE_RETRY_AFTER "5"

#define GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
#define AUDIT_LOCK_KEY "7263071" /* pg_advisory_xact_lock: one writer of the chain at a time */
#define AUDIT_LIST_MAX "1000"	 /* entries listed when no since is given */
#define OBJECT_MAX 256

/*
 * The hash of an entry: SHA-256 over the previous hash and the entry's
 * fields as compact JSON with sorted keys (one text for one entry, whatever
 * its strings hold), in hex.
 */
static int
entry_hash(const char *prev, long long time, const char *actor, const char *role, const char *peer,
	   const char *action, const char *object, long long status, const char *result,
	   char out[65])
{
	json_t *doc =
		json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "prev", prev, "time",
			  (json_int_t)time, "actor", actor, "role", role, "peer", peer, "action",
			  action, "object", object, "status", (json_int_t)status, "result", result);
	char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int rc = -1;

	if (text != NULL && EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL) == 1) {
		hex_encode(md, len, out);
		rc = 0;
	} else {
		or_error("audit: cannot hash an entry");
	}
	free(text);
	json_decref(doc);
	return rc;
}

/* See audit.h. */
int
audit_append(struct store *st, const struct audit_entry *e)
{
	char hash[65], prev[65] = GENESIS, when[24], status[16];
	struct store_result *res = NULL;
	const char *params[10];
	int rc = -1;

	if (strcmp(store_backend(st), "postgresql") == 0 &&
	    store_exec(st, "SELECT pg_advisory_xact_lock(" AUDIT_LOCK_KEY ")", NULL, 0, NULL) == -1)
		return -1;
	if (store_exec(st, "SELECT hash FROM audit ORDER BY id DESC LIMIT 1", NULL, 0, &res) == -1)
		return -1;
	if (store_rows(res) == 1)
		snprintf(prev, sizeof(prev), "%s", store_value(res, 0, 0));
	if (entry_hash(prev, (long long)e->time, e->actor, e->role, e->peer, e->action, e->object,
		       e->status, e->result, hash) == -1)
		goto out;
	snprintf(when, sizeof(when), "%lld", (long long)e->time);
	snprintf(status, sizeof(status), "%d", e->status);
	params[0] = when;
	params[1] = e->actor;
	params[2] = e->role;
	params[3] = e->peer;
	params[4] = e->action;
	params[5] = e->object;
	params[6] = status;
	params[7] = e->result;
	params[8] = prev;
	params[9] = hash;
	rc = store_exec(
		st,
		"INSERT INTO audit (time, actor, role, peer, action, object, status, result, "
		"prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		params, 10, NULL);
out:
	store_result_free(res);
	return rc;
}

/* See audit.h: every row's hash is computed again from its fields and its predecessor's. */
int
audit_verify(struct store *st, long long *entries, long long *broken_at)
{
	struct store_result *res = NULL;
	char prev[65] = GENESIS, hash[65];

	*entries = 0;
	*broken_at = 0;
	if (store_exec(st,
		       "SELECT id, time, actor, role, peer, action, object, status, result, "
		       "prev_hash, hash FROM audit ORDER BY id",
		       NULL, 0, &res) == -1)
		return -1;
	for (size_t i = 0; i < store_rows(res); i++) {
		(*entries)++;
		if (strcmp(store_value(res, i, 9), prev) != 0 ||
		    entry_hash(prev, strtoll(store_value(res, i, 1), NULL, 10),
			       store_value(res, i, 2), store_value(res, i, 3),
			       store_value(res, i, 4), store_value(res, i, 5),
			       store_value(res, i, 6), strtoll(store_value(res, i, 7), NULL, 10),
			       store_value(res, i, 8), hash) == -1 ||
		    strcmp(hash, store_value(res, i, 10)) != 0) {
			*broken_at = strtoll(store_value(res, i, 0), NULL, 10);
			break;
		}
		snprintf(prev, sizeof(prev), "%s", hash);
	}
	store_result_free(res);
	return 0;
}

/*
 * The object of a request: the path below /v1/admin/ (or the conductor's
 * /admin/v1/), and for a POST or PUT the naming fields of its body.
 */
static void
request_object(struct http_ctx *ctx, char out[OBJECT_MAX])
{
	static const char *const fields[] = {"serial", "name",	       "asset_id",
					     "router", "organization", "site"};
	const char *path = http_ctx_path(ctx), *method = http_ctx_method(ctx), *body;
	json_t *doc = NULL;
	size_t len, used;

	if (strncmp(path, "/v1/admin/", 10) == 0 || strncmp(path, "/admin/v1/", 10) == 0)
		path += 10;
	used = (size_t)snprintf(out, OBJECT_MAX, "%s", path);
	if ((strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) &&
	    (body = http_ctx_body(ctx, &len)) != NULL && len <= 65536)
		doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	for (size_t i = 0; json_is_object(doc) && i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *v = json_string_value(json_object_get(doc, fields[i]));

		if (v != NULL && used < OBJECT_MAX)
			used += (size_t)snprintf(out + used, OBJECT_MAX - used, " %s=%s", fields[i],
						 v);
	}
	json_decref(doc);
}

/* The result of the kept answer: "ok", or the error code it carries. */
static void
answer_result(struct http_ctx *ctx, int status, char *out, size_t cap)
{
	json_t *doc = NULL;
	const char *code = NULL;
	size_t len;
	const char *body;

	if (status < 400) {
		snprintf(out, cap, "ok");
		return;
	}
	body = http_ctx_reply_body(ctx, &len);
	if (body != NULL)
		doc = json_loadb(body, len, 0, NULL);
	code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
	snprintf(out, cap, "%s: %s", status == 401 || status == 403 ? "refused" : "failed",
		 code ? code : "error");
	json_decref(doc);
}

/* See audit.h. */
int
audit_request_begin(struct http_ctx *ctx, struct store *st)
{
	http_ctx_defer(ctx);
	if (strcmp(http_ctx_method(ctx), "GET") == 0 || store_begin(st) == 0)
		return 0;
	/*
	 * No transaction (another writer held the database past the busy
	 * timeout, or the store fails): the handler must not run, since each of
	 * its statements would then commit on its own while the answer says
	 * the change failed.
	 */
	log_error("audit: cannot open a transaction: %s", or_errmsg());
	http_reply_header(ctx, "Retry-After", CHANGE_RETRY_AFTER);
	http_reply_error(ctx, 503, "unavailable",
			 "the change could not be started (the database is busy); nothing was "
			 "changed, try again");
	http_ctx_flush(ctx);
	return -1;
}

/* Records e in a transaction of its own; logs (never answers) a failure. */
static void
record_alone(struct store *st, const struct audit_entry *e)
{
	if (store_begin(st) == -1 || audit_append(st, e) == -1 || store_commit(st) == -1) {
		log_error("audit: cannot record %s %s by %s: %s", e->action, e->object, e->actor,
			  or_errmsg());
		store_rollback(st);
	}
}

/* See audit.h. */
void
audit_request_end(struct http_ctx *ctx, struct store *st, const struct admin_who *who)
{
	bool change = strcmp(http_ctx_method(ctx), "GET") != 0;
	int status = http_ctx_reply_status(ctx);
	char object[OBJECT_MAX], action[300], result[80];
	struct audit_entry e;

	snprintf(action, sizeof(action), "%s %s", http_ctx_method(ctx), http_ctx_path(ctx));
	request_object(ctx, object);
	answer_result(ctx, status, result, sizeof(result));
	e.time = time(NULL);
	e.actor = who != NULL && who->name[0] ? who->name : "-";
	e.role = who != NULL && who->role[0] ? who->role : "-";
	e.peer = http_ctx_peer(ctx);
	e.action = action;
	e.object = object;
	e.status = status;
	e.result = result;
	if (change && status > 0 && status < 400) {
		/* The change and its entry: both, or neither. */
		if (audit_append(st, &e) == -1 || store_commit(st) == -1) {
			log_error("audit: %s %s not recorded, so not made: %s", e.action, e.object,
				  or_errmsg());
			store_rollback(st);
			http_ctx_replace_reply(
				ctx, 500, "internal",
				"the change could not be recorded; nothing was changed");
		}
	} else {
		if (change)
			store_rollback(st);
		if (status == 401 || status == 403 || change)
			record_alone(st, &e);
	}
	http_ctx_flush(ctx);
}

/* See audit.h. */
void
audit_serve(struct http_ctx *ctx, struct store *st)
{
	const char *since_text = http_ctx_query(ctx, "since"),
		   *verify = http_ctx_query(ctx, "verify");
	struct store_result *res = NULL;
	char since[24], when[RFC3339_LEN + 1];
	const char *params[1] = {since};
	long long entries, broken_at;
	json_t *list;
	time_t t = 0;

	if (verify != NULL && strcmp(verify, "1") == 0) {
		if (audit_verify(st, &entries, &broken_at) == -1) {
			log_error("audit: cannot verify: %s", or_errmsg());
			http_reply_error(ctx, 500, "internal", "the audit could not be read");
			return;
		}
		http_reply_json(ctx, 200,
				broken_at ? json_pack("{s:b,s:I,s:I}", "verified", 0, "entries",
						      (json_int_t)entries, "broken_at",
						      (json_int_t)broken_at)
					  : json_pack("{s:b,s:I}", "verified", 1, "entries",
						      (json_int_t)entries));
		return;
	}
	if (since_text != NULL && rfc3339_parse(since_text, &t) == -1) {
		http_reply_error(ctx, 400, "bad-request", "since: %s", or_errmsg());
		return;
	}
	snprintf(since, sizeof(since), "%lld", (long long)t);
	if (store_exec(
		    st,
		    since_text != NULL
			    ? "SELECT id, time, actor, role, peer, action, object, status, result, "
			      "hash FROM audit WHERE time >= $1 ORDER BY id"
			    : "SELECT id, time, actor, role, peer, action, object, status, result, "
			      "hash FROM (SELECT * FROM audit ORDER BY id DESC "
			      "LIMIT " AUDIT_LIST_MAX ") AS last "
			      "ORDER BY id",
		    params, since_text != NULL ? 1 : 0, &res) == -1) {
		log_error("audit: cannot list: %s", or_errmsg());
		http_reply_error(ctx, 500, "internal", "the audit could not be read");
		return;
	}
	list = json_array();
	for (size_t i = 0; i < store_rows(res); i++) {
		rfc3339_format((time_t)strtoll(store_value(res, i, 1), NULL, 10), when);
		json_array_append_new(
			list,
			json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "id",
				  (json_int_t)strtoll(store_value(res, i, 0), NULL, 10), "time",
				  when, "actor", store_value(res, i, 2), "role",
				  store_value(res, i, 3), "peer", store_value(res, i, 4), "action",
				  store_value(res, i, 5), "object", store_value(res, i, 6),
				  "status", (json_int_t)strtoll(store_value(res, i, 7), NULL, 10),
				  "result", store_value(res, i, 8), "hash",
				  store_value(res, i, 9)));
	}
	http_reply_json(ctx, 200, json_pack("{s:o}", "entries", list));
	store_result_free(res);
}
