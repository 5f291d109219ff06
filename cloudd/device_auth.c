/*
 * Mutual OCRA authentication of devices (docs/protocol.md section 2).
 *
 * Trusts nothing from the device: every field is checked, the challenge it
 * names must be unused, unexpired, its own and issued on this very TLS
 * connection, and its response must be computed over the TLS exporter of the
 * connection that carries it. A finish naming a challenge that does not exist
 * or was issued on another connection counts against nothing of the device's:
 * an outsider who knows a serial cannot lock it out. Only suites with a
 * truncated response (guessable) keep a lockout; a full-length response
 * (truncation 0) cannot be guessed. Open challenges are capped per device by
 * evicting the oldest, never by refusing the newest. Challenges are kept in
 * this process's memory (challenges.h): bound to their TLS connection, they
 * are of no use to another instance. Failures, lockouts and tokens are in
 * the database and changed by single statements, so any instance may serve
 * any connection.
 */
#include "challenges.h"
#include "cloud.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "device/ocra_mutual.h"
#include "server/http_server.h"
#include "server/masterkey.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exporter label binding a challenge to the connection it was issued on. */
#define CHALLENGE_SESSION_LABEL "EXPORTER-onramp-challenge-session"
#define SESSION_MAX 512

/* What authentication needs of a device row. */
struct auth_device {
	struct ocra_suite suite;
	struct secret key;
	bool lockable; /* a truncated response: guessable, so failures lock out */
};

/* Replies 429 locked-out with Retry-After: the seconds from now until `until`. */
static void
reply_locked(struct http_ctx *ctx, long long until, time_t now)
{
	char retry[CLOUD_NUM_LEN];

	cloud_num(until - (long long)now, retry);
	http_reply_header(ctx, "Retry-After", retry);
	http_reply_error(ctx, 429, "locked-out",
			 "too many failed authentications; try again in %s s", retry);
}

/*
 * Loads the device; replies and returns -1 when it may not authenticate now:
 * unknown or unclaimed (404), locked out (429 with Retry-After; only a
 * truncated suite is ever locked out), or its row unusable (500). The key is
 * opened only for a device that may go on.
 */
static int
load_device(struct http_ctx *ctx, struct cloud_app *app, struct store *st, const char *serial,
	    time_t now, struct auth_device *d)
{
	const char *params[1] = {serial};
	struct store_result *res = NULL;
	char context[32 + CLOUD_SERIAL_MAX];
	long long until;
	int rc = -1;

	memset(d, 0, sizeof(*d));
	if (store_exec(st,
		       "SELECT ocra_suite, ocra_key_sealed, org, locked_until FROM devices "
		       "WHERE serial = $1",
		       params, 1, &res) == -1) {
		cloud_internal(ctx, "loading a device");
		goto out;
	}
	if (store_rows(res) == 0 || store_value(res, 0, 2) == NULL) {
		log_info("authentication from %s for serial %s: not a claimed device of this cloud",
			 http_ctx_peer(ctx), serial);
		http_reply_error(ctx, 404, "unknown-device",
				 "serial %s is not a claimed device of this cloud", serial);
		goto out;
	}
	if (cloud_device_suite(store_value(res, 0, 0), &d->suite) == -1) {
		cloud_internal(ctx, "reading a device suite");
		goto out;
	}
	d->lockable = d->suite.digits != 0;
	until = strtoll(store_value(res, 0, 3), NULL, 10);
	if (d->lockable && until > (long long)now) {
		reply_locked(ctx, until, now);
		goto out;
	}
	snprintf(context, sizeof(context), "ocra-key:%s", serial);
	if (masterkey_open(app->mk, context, store_value(res, 0, 1), &d->key) == -1) {
		cloud_internal(ctx, "opening a device key");
		goto out;
	}
	rc = 0;
out:
	store_result_free(res);
	return rc;
}

/* The exporter of this request's TLS connection: the OCRA session information. */
static int
session_info(struct http_ctx *ctx, const struct ocra_suite *suite, uint8_t *s)
{
	if (suite->session_len > SESSION_MAX ||
	    http_ctx_exporter(ctx, CLOUD_EXPORTER_LABEL, s, suite->session_len) == -1) {
		cloud_internal(ctx, "taking the TLS exporter");
		return -1;
	}
	return 0;
}

/*
 * An exporter of this request's TLS connection under a label of its own:
 * kept with a challenge at start, required at finish, so only the
 * connection a challenge was issued on can use it (or spend it).
 */
static int
session_binding(struct http_ctx *ctx, uint8_t out[CHALLENGES_BINDING_LEN])
{
	if (http_ctx_exporter(ctx, CHALLENGE_SESSION_LABEL, out, CHALLENGES_BINDING_LEN) == -1) {
		cloud_internal(ctx, "taking the TLS exporter");
		return -1;
	}
	return 0;
}

/*
 * Counts this finish as a failure before its response is looked at, in one
 * statement that refuses a device locked out meanwhile and locks the device
 * as the count reaches the threshold. So of concurrent finishes (loops, or
 * instances on one PostgreSQL) no more than the threshold are ever checked,
 * and a longer lockout is never shortened by a slower request. A success
 * resets the count (accept_device). A full-length suite (not lockable) is
 * only counted, for the operator to see: its response cannot be guessed.
 * Returns 0 with *failures and *lock (the lockout now in force, 0 for none);
 * -1 after replying (429, 404 or 500).
 */
static int
count_attempt(struct http_ctx *ctx, struct cloud_app *app, struct store *st, const char *serial,
	      bool lockable, time_t now, unsigned long *failures, unsigned long *lock)
{
	char num[CLOUD_NUM_LEN], threshold[CLOUD_NUM_LEN], first[CLOUD_NUM_LEN];
	const char *params[4] = {serial, num, threshold, first};
	struct store_result *res = NULL;
	int rc = -1;

	*lock = 0;
	if (!lockable) {
		if (store_exec(st,
			       "UPDATE devices SET failures = failures + 1 "
			       "WHERE serial = $1 AND org IS NOT NULL RETURNING failures",
			       params, 1, &res) == -1)
			goto fail;
		if (store_rows(res) == 0) {
			http_reply_error(ctx, 404, "unknown-device",
					 "serial %s is not a claimed device of this cloud", serial);
			goto out;
		}
		*failures = strtoul(store_value(res, 0, 0), NULL, 10);
		rc = 0;
		goto out;
	}
	cloud_num((long long)now, num);
	cloud_num((long long)app->lockout.threshold, threshold);
	cloud_num((long long)now +
			  (long long)lockout_seconds(&app->lockout, app->lockout.threshold),
		  first);
	if (store_exec(st,
		       "UPDATE devices SET failures = failures + 1, locked_until = CASE WHEN "
		       "failures + 1 >= $3 THEN $4 ELSE locked_until END "
		       "WHERE serial = $1 AND org IS NOT NULL AND locked_until <= $2 "
		       "RETURNING failures",
		       params, 4, &res) == -1)
		goto fail;
	if (store_rows(res) == 0) {
		/* Locked out (or unclaimed) since load_device read the row. */
		store_result_free(res);
		res = NULL;
		if (store_exec(st, "SELECT locked_until FROM devices WHERE serial = $1", params, 1,
			       &res) == -1)
			goto fail;
		if (store_rows(res) == 1 &&
		    strtoll(store_value(res, 0, 0), NULL, 10) > (long long)now)
			reply_locked(ctx, strtoll(store_value(res, 0, 0), NULL, 10), now);
		else
			http_reply_error(ctx, 404, "unknown-device",
					 "serial %s is not a claimed device of this cloud", serial);
		goto out;
	}
	*failures = strtoul(store_value(res, 0, 0), NULL, 10);
	*lock = lockout_seconds(&app->lockout, *failures);
	if (*lock > 0) {
		/* Only ever lengthens: a concurrent, higher count may have locked longer. */
		cloud_num((long long)now + (long long)*lock, num);
		if (store_exec(st,
			       "UPDATE devices SET locked_until = $2 WHERE serial = $1 "
			       "AND locked_until < $2",
			       params, 2, NULL) == -1)
			goto fail;
	}
	rc = 0;
	goto out;
fail:
	cloud_internal(ctx, "counting an authentication attempt");
out:
	store_result_free(res);
	return rc;
}

/*
 * A refused finish (already counted by count_attempt): records and logs why
 * (never the response) with the lockout it brought, and replies 403 code.
 */
static void
refuse(struct http_ctx *ctx, struct store *st, const char *serial, time_t now,
       unsigned long failures, unsigned long lock, const char *code, const char *reason)
{
	if (cloud_event(st, serial, now, "cloud", "cloud-auth", "failed", reason, NULL) == -1)
		log_error("recording an event of %s failed: %s", serial, or_errmsg());
	if (lock > 0)
		log_warn("authentication of %s from %s refused: %s (consecutive failure %lu; "
			 "locked out for %lu s)",
			 serial, http_ctx_peer(ctx), reason, failures, lock);
	else
		log_warn("authentication of %s from %s refused: %s (consecutive failure %lu)",
			 serial, http_ctx_peer(ctx), reason, failures);
	http_reply_error(ctx, 403, code, "%s", reason);
}

/*
 * POST /v1/device/auth/start: a claimed, not locked-out device's QC gets a fresh QS, R_S over
 * this connection's exporter, and a challenge stored bound to this connection.
 */
void
cloud_auth_start(struct http_ctx *ctx, void *arg)
{
	struct cloud_app *app = arg;
	struct store *st = http_ctx_thread_state(ctx);
	const char *serial = NULL, *qc = NULL;
	char id[CLOUD_ID_HEX + 1], qs[OCRA_QUESTION_FIELD + 1], rs[OCRA_RESPONSE_MAX];
	uint8_t s[SESSION_MAX], binding[CHALLENGES_BINDING_LEN];
	struct auth_device d = {0};
	json_t *body = NULL;
	time_t now = time(NULL);

	if (rate_limit_request(ctx, app->limiter) == -1 || http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "serial", true, CLOUD_SERIAL_MAX, &serial) == -1 ||
	    cloud_check_serial(serial) == -1 ||
	    json_get_string(body, "client_challenge", true, OCRA_QUESTION_FIELD, &qc) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (load_device(ctx, app, st, serial, now, &d) == -1)
		goto out;
	if (cloud_check_challenge(&d.suite, qc) == -1) {
		http_reply_error(ctx, 400, "bad-request", "client_challenge: %s", or_errmsg());
		goto out;
	}
	if (cloud_random_hex(CLOUD_ID_HEX / 2, id) == -1 ||
	    ocra_random_question(&d.suite, qs, sizeof(qs)) == -1) {
		cloud_internal(ctx, "making a challenge");
		goto out;
	}
	if (session_info(ctx, &d.suite, s) == -1 || session_binding(ctx, binding) == -1)
		goto out;
	{
		struct ocra_hmac hmac = {ocra_hmac_software, &d.key};
		if (ocra_mutual_response(&d.suite, &hmac, OCRA_ROLE_SERVER, qc, qs, s,
					 d.suite.session_len, rs, sizeof(rs)) == -1) {
			cloud_internal(ctx, "computing the server response");
			goto out;
		}
	}
	if (challenges_put(app->challenges, serial, id, qc, qs,
			   now + (time_t)app->challenge_lifetime, binding, now) == -1) {
		cloud_internal(ctx, "keeping a challenge");
		goto out;
	}
	log_debug("challenge %s issued to %s at %s", id, serial, http_ctx_peer(ctx));
	http_reply_json(ctx, 200,
			json_pack("{s:s,s:s,s:s,s:s,s:I}", "challenge_id", id, "suite",
				  d.suite.text, "server_challenge", qs, "server_response", rs,
				  "expires_in", (json_int_t)app->challenge_lifetime));
out:
	OPENSSL_cleanse(rs, sizeof(rs));
	OPENSSL_cleanse(s, sizeof(s));
	OPENSSL_cleanse(binding, sizeof(binding));
	secret_free(&d.key);
	json_decref(body);
}

/* Success: the failure count reset, a device token made (its hash stored), the event kept. */
static void
accept_device(struct http_ctx *ctx, struct cloud_app *app, struct store *st, const char *serial,
	      time_t now)
{
	char token[CLOUD_TOKEN_HEX + 1], hash[65], num[CLOUD_NUM_LEN], exp[CLOUD_NUM_LEN];
	const char *params[3] = {serial, num, NULL};

	cloud_num((long long)now, num);
	cloud_num((long long)now + (long long)app->token_lifetime, exp);
	if (cloud_random_hex(CLOUD_TOKEN_BYTES, token) == -1 ||
	    cloud_token_hash(token, hash) == -1 ||
	    store_exec(st,
		       "UPDATE devices SET failures = 0, locked_until = 0, last_seen = $2, "
		       "stage = 'authenticated' WHERE serial = $1",
		       params, 2, NULL) == -1 ||
	    store_exec(st, "DELETE FROM device_tokens WHERE serial = $1 AND expires <= $2", params,
		       2, NULL) == -1) {
		cloud_internal(ctx, "accepting a device");
		goto out;
	}
	params[0] = hash;
	params[1] = serial;
	params[2] = exp;
	if (store_exec(st, "INSERT INTO device_tokens (hash, serial, expires) VALUES ($1, $2, $3)",
		       params, 3, NULL) == -1) {
		cloud_internal(ctx, "storing a device token");
		goto out;
	}
	if (cloud_event(st, serial, now, "cloud", "cloud-auth", "ok", NULL, NULL) == -1)
		log_error("recording an event of %s failed: %s", serial, or_errmsg());
	log_info("device %s authenticated from %s", serial, http_ctx_peer(ctx));
	http_reply_json(ctx, 200,
			json_pack("{s:s,s:I}", "token", token, "expires_in",
				  (json_int_t)app->token_lifetime));
out:
	OPENSSL_cleanse(token, sizeof(token));
}

/*
 * POST /v1/device/auth/finish: uses up this connection's challenge (an unknown
 * one counts against nothing), counts the attempt, checks R_C over this
 * connection's exporter, then a device token or a refusal.
 */
void
cloud_auth_finish(struct http_ctx *ctx, void *arg)
{
	struct cloud_app *app = arg;
	struct store *st = http_ctx_thread_state(ctx);
	const char *serial = NULL, *id = NULL, *response = NULL, *code = NULL, *reason = NULL;
	char qc[OCRA_QUESTION_FIELD + 1], qs[OCRA_QUESTION_FIELD + 1];
	uint8_t s[SESSION_MAX], binding[CHALLENGES_BINDING_LEN];
	struct auth_device d = {0};
	json_t *body = NULL;
	time_t now = time(NULL);
	unsigned long failures = 0, lock = 0;
	bool ok = false;

	if (rate_limit_request(ctx, app->limiter) == -1 || http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "challenge_id", true, CLOUD_ID_HEX, &id) == -1 ||
	    cloud_check_id(id) == -1 ||
	    json_get_string(body, "serial", true, CLOUD_SERIAL_MAX, &serial) == -1 ||
	    cloud_check_serial(serial) == -1 ||
	    json_get_string(body, "response", true, OCRA_RESPONSE_MAX - 1, &response) == -1 ||
	    cloud_check_text("response", response, 1, OCRA_RESPONSE_MAX - 1) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (load_device(ctx, app, st, serial, now, &d) == -1 || session_binding(ctx, binding) == -1)
		goto out;
	if (challenges_take(app->challenges, serial, id, binding, now, qc, qs, &code, &reason) ==
	    -1) {
		/* Not a guess at the device's key: nothing of the device's is counted. */
		log_info("authentication finish for %s from %s refused: %s", serial,
			 http_ctx_peer(ctx), reason);
		http_reply_error(ctx, 403, code, "%s", reason);
		goto out;
	}
	if (count_attempt(ctx, app, st, serial, d.lockable, now, &failures, &lock) == -1 ||
	    session_info(ctx, &d.suite, s) == -1)
		goto out;
	{
		struct ocra_hmac hmac = {ocra_hmac_software, &d.key};
		/* A malformed response is simply a wrong one: ok stays false. */
		if (ocra_mutual_check(&d.suite, &hmac, OCRA_ROLE_CLIENT, qc, qs, s,
				      d.suite.session_len, response, &ok) == -1)
			ok = false;
	}
	if (!ok)
		refuse(ctx, st, serial, now, failures, lock, "auth-failed",
		       "wrong response (or computed for another TLS connection)");
	else
		accept_device(ctx, app, st, serial, now);
out:
	OPENSSL_cleanse(s, sizeof(s));
	OPENSSL_cleanse(binding, sizeof(binding));
	secret_free(&d.key);
	json_decref(body);
}
