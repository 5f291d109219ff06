/*
 * Admin tokens: made from OpenSSL's random generator, stored as SHA-256,
 * looked up by that hash. Nothing here logs or returns a token except the one
 * answer that makes it.
 */
#include "server/admin_tokens.h"

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "core/secret.h"
#include "server/http_server.h"
#include "server/store.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* See admin_tokens.h: the token is returned, only its SHA-256 stored. */
int
admin_token_create(struct store *st, const char *name, const char *role, char *token_out,
		   bool *exists)
{
	char hash[65], created[24];
	const char *params[4];
	struct store_result *res = NULL;
	int rc = -1;

	*exists = false;
	if (cloud_check_name("token name", name) == -1)
		return -1;
	if (cloud_random_hex(CLOUD_TOKEN_BYTES, token_out) == -1 ||
	    cloud_token_hash(token_out, hash) == -1)
		goto out;
	snprintf(created, sizeof(created), "%lld", (long long)time(NULL));
	params[0] = name;
	params[1] = hash;
	params[2] = role;
	params[3] = created;
	if (store_exec(st,
		       "INSERT INTO admin_tokens (name, hash, role, created) "
		       "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
		       params, 4, &res) == -1)
		goto out;
	if (store_changes(res) == 0) {
		*exists = true;
		or_error("a token named '%s' exists already", name);
		goto out;
	}
	rc = 0;
out:
	store_result_free(res);
	if (rc == -1)
		OPENSSL_cleanse(token_out, CLOUD_TOKEN_HEX + 1);
	return rc;
}

/* See admin_tokens.h: the file's text must be a token as issued. */
int
admin_token_read_file(const char *path, struct secret *out)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = -1;

	if (file_read_all(path, 256, &data, &len) == -1)
		return -1;
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
		data[--len] = '\0';
	if (cloud_check_token((const char *)data) == -1) {
		or_error_prefix("%s", path);
		goto out;
	}
	rc = secret_from(out, data, len + 1);
out:
	OPENSSL_cleanse(data, len);
	free(data);
	return rc;
}

/* See admin_tokens.h: the token is untrusted text, checked before it is hashed. */
int
admin_token_lookup(struct store *st, const char *token, struct admin_who *who)
{
	struct store_result *res = NULL;
	const char *params[1];
	char hash[65];
	int rc = -1;

	memset(who, 0, sizeof(*who));
	if (cloud_check_token(token) == -1 || cloud_token_hash(token, hash) == -1)
		return 0;
	params[0] = hash;
	if (store_exec(st, "SELECT name, role FROM admin_tokens WHERE hash = $1", params, 1,
		       &res) == -1)
		return or_error_prefix("admin token lookup");
	if (store_rows(res) == 1) {
		snprintf(who->name, sizeof(who->name), "%s", store_value(res, 0, 0));
		snprintf(who->role, sizeof(who->role), "%s", store_value(res, 0, 1));
		rc = 1;
	} else {
		rc = 0;
	}
	store_result_free(res);
	return rc;
}

/* See admin_tokens.h. The token is never logged, only why it was refused. */
int
admin_authenticate(struct http_ctx *ctx, struct store *st, struct admin_who *who)
{
	const char *token = http_ctx_bearer(ctx);
	int found;

	memset(who, 0, sizeof(*who));
	if (token == NULL) {
		http_reply_error(ctx, 401, "unauthorized", "an admin bearer token is required");
		return -1;
	}
	found = admin_token_lookup(st, token, who);
	if (found == -1) {
		log_error("%s", or_errmsg());
		http_reply_error(ctx, 500, "internal", "the token could not be checked");
		return -1;
	}
	if (found == 0) {
		log_warn("admin request from %s refused: unknown or malformed token",
			 http_ctx_peer(ctx));
		http_reply_error(ctx, 401, "unauthorized", "the bearer token is not valid");
		return -1;
	}
	return 0;
}

/* GET /v1/admin/tokens: names, roles and creation times; never hashes. */
static void
list_tokens(struct http_ctx *ctx, struct store *st)
{
	struct store_result *res = NULL;
	json_t *list = json_array();
	char when[RFC3339_LEN + 1];

	if (store_exec(st, "SELECT name, role, created FROM admin_tokens ORDER BY name", NULL, 0,
		       &res) == -1) {
		log_error("listing tokens failed: %s", or_errmsg());
		http_reply_error(ctx, 500, "internal", "the tokens could not be listed");
		goto out;
	}
	for (size_t i = 0; i < store_rows(res); i++) {
		rfc3339_format((time_t)strtoll(store_value(res, i, 2), NULL, 10), when);
		json_array_append_new(list,
				      json_pack("{s:s,s:s,s:s}", "name", store_value(res, i, 0),
						"role", store_value(res, i, 1), "created", when));
	}
	http_reply_json(ctx, 200, json_pack("{s:O}", "tokens", list));
out:
	json_decref(list);
	store_result_free(res);
}

/* POST /v1/admin/tokens {"name","role"?}: the token is in this answer and nowhere else. */
static void
add_token(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
	  const char *const *roles, size_t n_roles)
{
	const char *name = NULL, *role = roles[0];
	char token[CLOUD_TOKEN_HEX + 1];
	json_t *body = NULL;
	bool exists, known = false;

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "name", true, CLOUD_NAME_MAX, &name) == -1 ||
	    cloud_check_name("token name", name) == -1 ||
	    json_get_string(body, "role", false, ADMIN_ROLE_MAX, &role) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	for (size_t i = 0; i < n_roles; i++)
		known = known || strcmp(role, roles[i]) == 0;
	if (!known) {
		http_reply_error(ctx, 400, "bad-request",
				 "role '%.16s' is not one of this server's", role);
		goto out;
	}
	if (admin_token_create(st, name, role, token, &exists) == -1) {
		if (exists) {
			http_reply_error(ctx, 409, "exists", "%s", or_errmsg());
		} else {
			log_error("making token '%s' failed: %s", name, or_errmsg());
			http_reply_error(ctx, 500, "internal", "the token could not be made");
		}
		goto out;
	}
	log_info("token '%s' (%s) made by '%s'", name, role, who->name);
	http_reply_json(ctx, 201,
			json_pack("{s:s,s:s,s:s}", "name", name, "role", role, "token", token));
	OPENSSL_cleanse(token, sizeof(token));
out:
	json_decref(body);
}

/* DELETE /v1/admin/tokens/NAME: a token cannot remove itself (no lock-out by mistake). */
static void
delete_token(struct http_ctx *ctx, struct store *st, const struct admin_who *who, const char *name)
{
	struct store_result *res = NULL;
	const char *params[1] = {name};

	if (cloud_check_name("token name", name) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		return;
	}
	if (strcmp(name, who->name) == 0) {
		http_reply_error(ctx, 409, "in-use", "a token cannot delete itself");
		return;
	}
	if (store_exec(st, "DELETE FROM admin_tokens WHERE name = $1", params, 1, &res) == -1) {
		log_error("deleting token '%s' failed: %s", name, or_errmsg());
		http_reply_error(ctx, 500, "internal", "the token could not be deleted");
	} else if (store_changes(res) == 0) {
		http_reply_error(ctx, 404, "not-found", "no token named '%s'", name);
	} else {
		log_info("token '%s' deleted by '%s'", name, who->name);
		http_reply_json(ctx, 200, json_pack("{s:s}", "deleted", name));
	}
	store_result_free(res);
}

/* See admin_tokens.h. */
void
admin_tokens_serve(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
		   const char *name, const char *const *roles, size_t n_roles)
{
	const char *method = http_ctx_method(ctx);

	if (name == NULL && strcmp(method, "GET") == 0)
		list_tokens(ctx, st);
	else if (name == NULL && strcmp(method, "POST") == 0)
		add_token(ctx, st, who, roles, n_roles);
	else if (name != NULL && strcmp(method, "DELETE") == 0)
		delete_token(ctx, st, who, name);
	else
		http_reply_error(ctx, 405, "method-not-allowed", "%s is not allowed here", method);
}
