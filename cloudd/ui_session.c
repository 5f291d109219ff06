/*
 * The dashboard's sessions (docs/dashboard.md). An operator types an admin
 * token once; the cloud answers with a session cookie (HttpOnly, Secure,
 * SameSite=Strict) and a CSRF token that the page keeps in memory and sends
 * in X-CSRF-Token with every change. The token itself never appears in a
 * URL, a page or a cookie. Sessions are rows (the cookie's SHA-256, so a
 * database copy opens no session), shared by every instance of the cloud,
 * and end at logout, after an idle time, or at a fixed lifetime.
 */
#include "cloud.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/secret.h"
#include "server/admin_tokens.h"
#include "server/audit.h"
#include "server/http_server.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COOKIE_NAME "onramp_ui"
#define SESSION_IDLE_S 1800 /* an unused session ends after 30 minutes */

/*
 * The value of our cookie in the request's Cookie header, copied into out;
 * false when absent or not of our form (64 hex digits). The header is
 * untrusted: only our own name and exact form are taken from it.
 */
static bool
session_cookie(struct http_ctx *ctx, char out[CLOUD_TOKEN_HEX + 1])
{
	const char *header = http_ctx_header(ctx, "Cookie"), *p;
	size_t name_len = strlen(COOKIE_NAME);

	for (p = header; p != NULL && *p != '\0';) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, COOKIE_NAME "=", name_len + 1) == 0) {
			const char *v = p + name_len + 1;
			size_t n = strcspn(v, "; ");

			if (n != CLOUD_TOKEN_HEX)
				return false;
			memcpy(out, v, n);
			out[n] = '\0';
			return cloud_check_token(out) == 0;
		}
		p = strchr(p, ';');
	}
	return false;
}

/* Sets (value not NULL, for max_age seconds) or clears the session cookie. */
static void
set_cookie(struct http_ctx *ctx, const char *value, unsigned long max_age)
{
	char header[256];

	if (value != NULL)
		snprintf(header, sizeof(header),
			 COOKIE_NAME "=%s; Path=/; Max-Age=%lu; HttpOnly; Secure; SameSite=Strict",
			 value, max_age);
	else
		snprintf(header, sizeof(header),
			 COOKIE_NAME "=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
	http_reply_header(ctx, "Set-Cookie", header);
}

/* See cloud.h: the session's row, still valid, refreshed; CSRF checked for changes. */
int
cloud_ui_session(struct http_ctx *ctx, struct store *st, struct admin_who *who,
		 char csrf[CLOUD_TOKEN_HEX + 1])
{
	char cookie[CLOUD_TOKEN_HEX + 1], hash[65], now_text[CLOUD_NUM_LEN],
		idle_text[CLOUD_NUM_LEN];
	const char *method = http_ctx_method(ctx), *sent, *params[3];
	struct store_result *res = NULL;
	time_t now = time(NULL);
	int rc = -1;

	memset(who, 0, sizeof(*who));
	if (!session_cookie(ctx, cookie))
		return 0;
	if (cloud_token_hash(cookie, hash) == -1)
		goto fail;
	cloud_num((long long)now, now_text);
	cloud_num((long long)now - SESSION_IDLE_S, idle_text);
	params[0] = hash;
	params[1] = now_text;
	params[2] = idle_text;
	if (store_exec(st,
		       "UPDATE ui_sessions SET last_used = $2 WHERE hash = $1 AND expires > $2 "
		       "AND last_used > $3 RETURNING name, role, csrf",
		       params, 3, &res) == -1)
		goto fail;
	if (store_rows(res) != 1) {
		set_cookie(ctx, NULL, 0);
		http_reply_error(ctx, 401, "session-expired",
				 "the session has ended: log in again with an admin token");
		goto out;
	}
	snprintf(who->name, sizeof(who->name), "%s", store_value(res, 0, 0));
	snprintf(who->role, sizeof(who->role), "%s", store_value(res, 0, 1));
	if (csrf != NULL)
		snprintf(csrf, CLOUD_TOKEN_HEX + 1, "%s", store_value(res, 0, 2));
	/* A change needs the CSRF token too: a cookie alone is what a forged request has. */
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		sent = http_ctx_header(ctx, "X-CSRF-Token");
		if (sent == NULL || strlen(sent) != CLOUD_TOKEN_HEX ||
		    CRYPTO_memcmp(sent, store_value(res, 0, 2), CLOUD_TOKEN_HEX) != 0) {
			log_warn("dashboard change from %s refused: bad CSRF token (session of "
				 "'%s')",
				 http_ctx_peer(ctx), who->name);
			http_reply_error(ctx, 403, "csrf",
					 "the request lacks this session's CSRF token");
			goto out;
		}
	}
	rc = 1;
	goto out;
fail:
	cloud_internal(ctx, "checking a dashboard session");
out:
	OPENSSL_cleanse(cookie, sizeof(cookie));
	store_result_free(res);
	return rc;
}

/* POST /ui/api/login {"token"}: an admin token, checked, becomes a session. */
static void
login(struct http_ctx *ctx, struct cloud_app *app, struct store *st, struct admin_who *who_out)
{
	char cookie[CLOUD_TOKEN_HEX + 1] = "", csrf[CLOUD_TOKEN_HEX + 1], hash[65],
				      now_text[CLOUD_NUM_LEN], expires_text[CLOUD_NUM_LEN];
	struct store_result *res = NULL;
	const char *token = NULL, *params[7];
	struct admin_who who;
	json_t *body = NULL;
	time_t now = time(NULL);
	int found;

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "token", true, CLOUD_TOKEN_HEX, &token) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	found = admin_token_lookup(st, token, &who);
	if (found == -1) {
		cloud_internal(ctx, "checking an admin token");
		goto out;
	}
	if (found == 0 || strcmp(who.role, "admin") != 0) {
		log_warn("dashboard login from %s refused: not an admin token", http_ctx_peer(ctx));
		http_reply_error(ctx, 401, "unauthorized",
				 "that is not an admin token of this cloud");
		goto out;
	}
	if (cloud_random_hex(CLOUD_TOKEN_BYTES, cookie) == -1 ||
	    cloud_random_hex(CLOUD_TOKEN_BYTES, csrf) == -1 ||
	    cloud_token_hash(cookie, hash) == -1) {
		cloud_internal(ctx, "making a session");
		goto out;
	}
	cloud_num((long long)now, now_text);
	cloud_num((long long)now + (long long)app->ui_session_lifetime, expires_text);
	params[0] = hash;
	params[1] = who.name;
	params[2] = who.role;
	params[3] = csrf;
	params[4] = now_text;
	params[5] = now_text;
	params[6] = expires_text;
	/* Ended sessions go as new ones come: the table holds only live ones. */
	if (store_exec(st, "DELETE FROM ui_sessions WHERE expires <= $1", params + 4, 1, &res) ==
	    -1) {
		cloud_internal(ctx, "removing ended sessions");
		goto out;
	}
	store_result_free(res);
	res = NULL;
	if (store_exec(st,
		       "INSERT INTO ui_sessions (hash, name, role, csrf, created, last_used, "
		       "expires) VALUES ($1, $2, $3, $4, $5, $6, $7)",
		       params, 7, &res) == -1) {
		cloud_internal(ctx, "storing a session");
		goto out;
	}
	log_info("dashboard: '%s' logged in from %s", who.name, http_ctx_peer(ctx));
	*who_out = who;
	set_cookie(ctx, cookie, app->ui_session_lifetime);
	http_reply_json(ctx, 200,
			json_pack("{s:s,s:s,s:I}", "name", who.name, "csrf", csrf, "lifetime",
				  (json_int_t)app->ui_session_lifetime));
out:
	OPENSSL_cleanse(cookie, sizeof(cookie));
	store_result_free(res);
	json_decref(body);
}

/* POST /ui/api/logout: the session's row goes, and the cookie with it. */
static void
logout(struct http_ctx *ctx, struct store *st, struct admin_who *who_out)
{
	char cookie[CLOUD_TOKEN_HEX + 1], hash[65];
	struct store_result *res = NULL;
	const char *params[1] = {hash};
	struct admin_who who;
	int in;

	if ((in = cloud_ui_session(ctx, st, &who, NULL)) != 1) {
		if (in == 0)
			http_reply_error(ctx, 401, "unauthorized", "not logged in");
		return;
	}
	if (!session_cookie(ctx, cookie) || cloud_token_hash(cookie, hash) == -1 ||
	    store_exec(st, "DELETE FROM ui_sessions WHERE hash = $1", params, 1, &res) == -1) {
		cloud_internal(ctx, "ending a session");
		goto out;
	}
	log_info("dashboard: '%s' logged out", who.name);
	*who_out = who;
	set_cookie(ctx, NULL, 0);
	http_reply_json(ctx, 200, json_pack("{s:b}", "logged_out", 1));
out:
	OPENSSL_cleanse(cookie, sizeof(cookie));
	store_result_free(res);
}

/* GET /ui/api/session: who is logged in, and the CSRF token (for a reloaded page). */
static void
session(struct http_ctx *ctx, struct store *st)
{
	char csrf[CLOUD_TOKEN_HEX + 1];
	struct admin_who who;
	int in = cloud_ui_session(ctx, st, &who, csrf);

	if (in == 0)
		http_reply_error(ctx, 401, "unauthorized", "not logged in");
	else if (in == 1)
		http_reply_json(ctx, 200, json_pack("{s:s,s:s}", "name", who.name, "csrf", csrf));
}

/* See cloud.h: the session endpoints under /ui/api/. */
bool
cloud_ui_session_api(struct http_ctx *ctx, struct cloud_app *app, struct store *st,
		     const char *what)
{
	const char *method = http_ctx_method(ctx);
	struct admin_who who = {0};

	if (strcmp(what, "session") == 0 && strcmp(method, "GET") == 0) {
		session(ctx, st);
		return true;
	}
	if (strcmp(method, "POST") != 0 ||
	    (strcmp(what, "login") != 0 && strcmp(what, "logout") != 0))
		return false;
	/* Logging in and out are in the audit, refused logins too (never the token). */
	if (audit_request_begin(ctx, st) == -1)
		return true;
	if (strcmp(what, "login") == 0)
		login(ctx, app, st, &who);
	else
		logout(ctx, st, &who);
	audit_request_end(ctx, st, who.name[0] ? &who : NULL);
	return true;
}
