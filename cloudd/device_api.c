/*
 * What an authenticated device may ask (docs/protocol.md section 3): its own
 * onboarding information, and to report its progress. A device is known here
 * only by its bearer token; nothing in a request can name another device.
 */
#include "cloud.h"

#include "core/error.h"
#include "core/json.h"
#include "core/key_id.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "core/x509.h"
#include "server/assertion.h"
#include "server/http_server.h"
#include "server/masterkey.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The serial of the request's unexpired device token, or -1 after replying 401 (or 500). */
static int
device_of(struct http_ctx *ctx, struct store *st, time_t now, char *serial)
{
	const char *token = http_ctx_bearer(ctx), *params[2];
	struct store_result *res = NULL;
	char hash[65], num[CLOUD_NUM_LEN];
	int rc = -1;

	if (token == NULL || cloud_check_token(token) == -1) {
		http_reply_error(ctx, 401, "unauthorized", "a device token is required");
		return -1;
	}
	if (cloud_token_hash(token, hash) == -1)
		goto fail;
	cloud_num((long long)now, num);
	params[0] = hash;
	params[1] = num;
	if (store_exec(st, "SELECT serial FROM device_tokens WHERE hash = $1 AND expires > $2",
		       params, 2, &res) == -1)
		goto fail;
	if (store_rows(res) != 1) {
		log_info("device request from %s refused: unknown or expired token",
			 http_ctx_peer(ctx));
		http_reply_error(ctx, 401, "unauthorized",
				 "the device token is unknown or expired; authenticate again");
		goto out;
	}
	snprintf(serial, CLOUD_SERIAL_MAX + 1, "%s", store_value(res, 0, 0));
	rc = 0;
	goto out;
fail:
	cloud_internal(ctx, "checking a device token");
out:
	store_result_free(res);
	return rc;
}

/* The stored address list (JSON text written by the admin API) as a JSON array. */
static json_t *
addresses(const char *text)
{
	json_t *a = text ? json_loads(text, 0, NULL) : NULL;

	if (a != NULL && !json_is_array(a)) {
		json_decref(a);
		a = NULL;
	}
	return a;
}

/*
 * The onboarding assertion for the device's certificate key (see server/assertion.h): serial,
 * asset ID, key hash, the conductor (by its root CA's key), an expiry; added to reply.
 */
static int
add_assertion(struct cloud_app *app, struct store *st, json_t *reply, const char *serial,
	      const char *asset_id, const char *key_pem, const char *conductor_ca_pem, time_t now)
{
	struct assertion_claims c = {.issued = now,
				     .expires = now + (time_t)app->assertion_lifetime};
	char when[RFC3339_LEN + 1], *text = NULL;

	/* No root CA: no conductor to bind it to, and the router cannot trust one anyway. */
	if (conductor_ca_pem == NULL)
		return 0;
	snprintf(c.serial, sizeof(c.serial), "%s", serial);
	snprintf(c.asset_id, sizeof(c.asset_id), "%s", asset_id);
	/* Both without OpenSSL 3.0's per-call decoder setup (core/key_id.h): the costliest
	 * part of this request otherwise. */
	if (pki_public_key_id(key_pem, "cert_key", c.key_sha256) == -1 ||
	    pki_cert_key_id_cached(conductor_ca_pem, c.conductor) == -1)
		return -1;
	if (cloud_assertion_key(app, st) == -1 ||
	    assertion_sign(app->assertion_signer, &c, &text) == -1)
		return -1;
	rfc3339_format(c.expires, when);
	json_object_set_new(reply, "assertion", json_string(text));
	json_object_set_new(reply, "assertion_expires", json_string(when));
	free(text);
	return 0;
}

/*
 * GET or POST /v1/device/onboarding: the token's own device's site settings, the secret unsealed
 * only for the answer; a POST names the device's certificate key and gets an onboarding
 * assertion for it too.
 */
void
cloud_device_onboarding(struct http_ctx *ctx, void *arg)
{
	struct cloud_app *app = arg;
	struct store *st = http_ctx_thread_state(ctx);
	char serial[CLOUD_SERIAL_MAX + 1], context[2 * CLOUD_NAME_MAX + 8], num[CLOUD_NUM_LEN];
	const char *params[1] = {serial}, *org, *site, *key_pem = NULL;
	struct store_result *res = NULL;
	struct secret psk = {0};
	json_t *addrs = NULL, *reply = NULL, *body = NULL;
	time_t now = time(NULL);

	if (device_of(ctx, st, now, serial) == -1)
		return;
	if (strcmp(http_ctx_method(ctx), "POST") == 0) {
		if (http_ctx_json_body(ctx, &body) == -1)
			return;
		if (json_get_string(body, "cert_key", true, CLOUD_PEM_MAX, &key_pem) == -1) {
			http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
			goto out;
		}
	}
	if (store_exec(st,
		       "SELECT d.org, d.site, s.conductor_addresses, s.conductor_port, "
		       "s.psk_sealed, s.conductor_ca_pem, COALESCE(d.asset_id, d.serial) "
		       "FROM devices d JOIN sites s "
		       "ON s.org = d.org AND s.name = d.site WHERE d.serial = $1",
		       params, 1, &res) == -1) {
		cloud_internal(ctx, "reading onboarding settings");
		goto out;
	}
	if (store_rows(res) != 1) {
		http_reply_error(ctx, 401, "unauthorized", "this device is no longer claimed");
		goto out;
	}
	org = store_value(res, 0, 0);
	site = store_value(res, 0, 1);
	addrs = addresses(store_value(res, 0, 2));
	if (addrs == NULL || store_value(res, 0, 3) == NULL || store_value(res, 0, 4) == NULL) {
		cloud_num((long long)app->retry_after, num);
		http_reply_header(ctx, "Retry-After", num);
		http_reply_error(ctx, 409, "not-ready",
				 "site %s/%s has no staging conductor or secret yet", org, site);
		goto out;
	}
	snprintf(context, sizeof(context), "psk:%s/%s", org, site);
	if (masterkey_open(app->mk, context, store_value(res, 0, 4), &psk) == -1) {
		cloud_internal(ctx, "opening a site secret");
		goto out;
	}
	reply = json_pack("{s:s,s:s,s:s,s:{s:O,s:I},s:s%,s:s?,s:s}", "serial", serial,
			  "organization", org, "site", site, "conductor", "addresses", addrs,
			  "port", (json_int_t)strtol(store_value(res, 0, 3), NULL, 10), "psk",
			  (const char *)psk.data, psk.len, "conductor_ca_pem",
			  store_value(res, 0, 5), "asset_id", store_value(res, 0, 6));
	if (reply == NULL) {
		or_error("out of memory");
		cloud_internal(ctx, "building onboarding information");
		goto out;
	}
	if (key_pem != NULL && add_assertion(app, st, reply, serial, store_value(res, 0, 6),
					     key_pem, store_value(res, 0, 5), now) == -1) {
		log_warn("no onboarding assertion for %s: %s", serial, or_errmsg());
		http_reply_error(ctx, 400, "bad-cert-key", "no onboarding assertion: %s",
				 or_errmsg());
		goto out;
	}
	if (cloud_event(st, serial, now, "cloud", "onboarding", "ok", NULL, "onboarding-sent") ==
	    -1)
		log_error("recording an event of %s failed: %s", serial, or_errmsg());
	log_info("onboarding information%s sent to %s (site %s/%s)",
		 key_pem ? " and assertion" : "", serial, org, site);
	http_reply_json(ctx, 200, reply);
	reply = NULL;
out:
	json_decref(reply);
	json_decref(body);
	secret_free(&psk);
	json_decref(addrs);
	store_result_free(res);
}

/* Checks one reported event; fills the parsed time. */
static int
check_event(json_t *ev, time_t *when)
{
	const char *step = NULL, *t = NULL, *outcome = NULL, *reason = NULL;

	if (!json_is_object(ev))
		return or_error("each event must be an object");
	if (json_get_string(ev, "step", true, CLOUD_STEP_MAX, &step) == -1 ||
	    cloud_check_step(step) == -1 ||
	    json_get_string(ev, "time", true, RFC3339_LEN, &t) == -1 ||
	    rfc3339_parse(t, when) == -1 ||
	    json_get_string(ev, "outcome", true, 16, &outcome) == -1 ||
	    cloud_check_outcome(outcome) == -1 ||
	    json_get_string(ev, "reason", false, CLOUD_REASON_MAX, &reason) == -1 ||
	    (reason != NULL && cloud_check_text("reason", reason, 0, CLOUD_REASON_MAX) == -1))
		return -1;
	return 0;
}

/*
 * POST /v1/device/events: the token's device's reports, every one checked before any is stored
 * (one transaction).
 */
void
cloud_device_events(struct http_ctx *ctx, void *arg)
{
	struct store *st = http_ctx_thread_state(ctx);
	char serial[CLOUD_SERIAL_MAX + 1], num[CLOUD_NUM_LEN];
	const char *params[2] = {serial, num};
	json_t *body = NULL, *events, *ev;
	time_t now = time(NULL), when[CLOUD_EVENTS_MAX];
	size_t i, n;

	(void)arg;
	if (device_of(ctx, st, now, serial) == -1)
		return;
	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	events = json_object_get(body, "events");
	n = json_array_size(events);
	if (!json_is_array(events) || n == 0 || n > CLOUD_EVENTS_MAX) {
		http_reply_error(ctx, 400, "bad-request",
				 "field 'events' must be an array of 1 to %d events",
				 CLOUD_EVENTS_MAX);
		goto out;
	}
	/* Every event is checked before any is stored: one bad event, none kept. */
	json_array_foreach(events, i, ev)
	{
		if (check_event(ev, &when[i]) == -1) {
			http_reply_error(ctx, 400, "bad-request", "event %zu: %s", i + 1,
					 or_errmsg());
			goto out;
		}
	}
	if (store_begin(st) == -1)
		goto fail;
	json_array_foreach(events, i, ev)
	{
		const char *step = json_string_value(json_object_get(ev, "step"));
		if (cloud_event(st, serial, when[i], "device", step,
				json_string_value(json_object_get(ev, "outcome")),
				json_string_value(json_object_get(ev, "reason")), step) == -1) {
			store_rollback(st);
			goto fail;
		}
	}
	cloud_num((long long)now, num);
	if (store_exec(st, "UPDATE devices SET last_seen = $2 WHERE serial = $1", params, 2,
		       NULL) == -1 ||
	    store_commit(st) == -1) {
		store_rollback(st);
		goto fail;
	}
	log_info("%zu progress event(s) from %s", n, serial);
	http_reply_json(ctx, 200, json_pack("{s:I}", "accepted", (json_int_t)n));
	goto out;
fail:
	cloud_internal(ctx, "storing progress events");
out:
	json_decref(body);
}
