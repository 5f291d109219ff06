/*
 * The conductor's trust in its organisation cloud's onboarding assertions
 * (issue 12; docs/protocol-conductor.md "Onboarding assertions"). Once the
 * operator has given the cloud's assertion certificate (`onrampctl conductor
 * trust-cloud --cert FILE`), the pre-shared secret alone no longer binds an
 * asset ID to a device: the first device to present an asset ID must also
 * show either
 *   - an onboarding assertion signed by the cloud's pinned assertion key for
 *     this asset ID, the very key that signed its CSR, and this conductor
 *     (named by the SHA-256 of its root CA's public key), unexpired; or
 *   - the proof of a secret made for that router by name (`psk create --name
 *     ROUTER`): the hand-over of a staging conductor, which gives a router its
 *     production secret only on that router's own session, itself bound to
 *     the device key the cloud's assertion proved.
 * An asset ID already bound to a device key needs neither: the binding is
 * the proof (and a different key stays `duplicate-asset`).
 * What it trusts: the certificate the operator set, nothing in a request
 * before its signature and fields check out.
 */
#include "conductor.h"

#include "core/error.h"
#include "core/json.h"
#include "core/x509.h"
#include "records.h"
#include "server/assertion.h"
#include "server/ca.h"
#include "server/http_server.h"
#include "server/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRUST_PEM_MAX 16384

/* The pinned certificate and whether assertions are required; pem NULL when none is set. */
static int
trust_get(struct worker *w, char **pem, bool *required)
{
	struct store_result *res = NULL;

	*pem = NULL;
	*required = false;
	if (store_exec(w->db, "SELECT cert_pem, required FROM cloud_trust WHERE id = 1", NULL, 0,
		       &res) == -1)
		return -1;
	if (store_rows(res) == 1) {
		if ((*pem = strdup(store_value(res, 0, 0))) == NULL) {
			store_result_free(res);
			return or_error("out of memory");
		}
		*required = parse_i64(store_value(res, 0, 1)) != 0;
	}
	store_result_free(res);
	return 0;
}

/* Whether the secret the router proved (psk_id of body) was made for router r by name. */
static int
router_secret(struct worker *w, json_t *body, const struct router_row *r, bool *own)
{
	const char *psk_id = json_string_value(json_object_get(body, "psk_id"));
	struct store_result *res = NULL;

	*own = false;
	if (psk_id == NULL)
		return 0;
	if (store_exec(w->db, "SELECT name FROM psks WHERE id = $1", &psk_id, 1, &res) == -1)
		return -1;
	*own = store_rows(res) == 1 && strcmp(store_value(res, 0, 0), r->name) == 0;
	store_result_free(res);
	return 0;
}

/* See conductor.h. */
void
cloud_trust_claimed_serial(struct worker *w, json_t *body, const char *asset_id, const char *key_id,
			   char *out, size_t len)
{
	struct assertion_claims claims;
	char conductor[PKI_KEY_ID_LEN + 1], *pem = NULL;
	const char *assertion = json_string_value(json_object_get(body, "assertion"));
	bool required;

	if (assertion == NULL || strlen(assertion) > ASSERTION_TEXT_MAX) {
		snprintf(out, len, "serial unknown (it showed no onboarding assertion)");
	} else if (trust_get(w, &pem, &required) == -1) {
		snprintf(out, len, "serial unknown (the cloud trust could not be read: %s)",
			 or_errmsg());
	} else if (pem == NULL) {
		snprintf(out, len,
			 "serial unknown (no cloud assertion certificate is trusted here to "
			 "vouch for its assertion)");
	} else if (pki_cert_key_id(pki_ca_cert_pem(w->c->ca), conductor) == -1 ||
		   assertion_verify(pem, assertion, time(NULL), &claims) == -1 ||
		   assertion_match(&claims, asset_id, key_id, conductor) == -1) {
		snprintf(out, len, "serial unknown (its onboarding assertion is refused: %s)",
			 or_errmsg());
	} else {
		snprintf(out, len, "serial %s (the cloud's onboarding assertion vouches for it)",
			 claims.serial);
	}
	free(pem);
}

/* Records and alarms a refused first claim of an asset ID, then replies 403 code. */
static void
refuse(struct http_ctx *ctx, struct worker *w, const struct router_row *r, json_t *body,
       const char *key_id, const char *code, const char *why)
{
	char message[1536], serial[512];

	/* Named by what the device claimed, not by its address: every router has the proxy's. */
	cloud_trust_claimed_serial(w, body, r->asset_id, key_id, serial, sizeof(serial));
	snprintf(message, sizeof(message),
		 "asset ID %s of router %s claimed without proof of identity by the device with "
		 "key %s, %s: %s",
		 r->asset_id, r->name, key_id, serial, why);
	log_warn("%s", message);
	if (foreign_record(w, r->asset_id, key_id, "denied", r->name, http_ctx_peer(ctx), why) ==
		    -1 ||
	    alarm_raise(w, "critical", "unproven-asset", r->asset_id, message) == -1)
		log_error("cannot record the refused asset %s: %s", r->asset_id, or_errmsg());
	http_reply_error(ctx, 403, code, "asset ID %s: %s", r->asset_id, why);
}

/* See conductor.h. */
bool
cloud_trust_admits(struct http_ctx *ctx, struct worker *w, const struct router_row *r, json_t *body,
		   const char *key_id)
{
	struct assertion_claims claims;
	char conductor[PKI_KEY_ID_LEN + 1], *pem = NULL;
	const char *assertion = NULL;
	bool required, own, ok = false;

	if (r->device_key[0] != '\0')
		return true; /* bound already: the binding decides */
	if (trust_get(w, &pem, &required) == -1 || router_secret(w, body, r, &own) == -1) {
		log_error("POST /v1/auth: %s", or_errmsg());
		http_reply_error(ctx, 500, "internal", "the conductor failed: %s", or_errmsg());
		goto out;
	}
	if (pem == NULL || own) {
		ok = true; /* no trust set, or the router's own secret (hand-over) */
		goto out;
	}
	if (json_get_string(body, "assertion", false, ASSERTION_TEXT_MAX, &assertion) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (assertion == NULL) {
		if (!required)
			ok = true;
		else
			refuse(ctx, w, r, body, key_id, "assertion-required",
			       "no onboarding assertion from the cloud, and the secret is not "
			       "this router's own");
		goto out;
	}
	if (pki_cert_key_id(pki_ca_cert_pem(w->c->ca), conductor) == -1 ||
	    assertion_verify(pem, assertion, time(NULL), &claims) == -1 ||
	    assertion_match(&claims, r->asset_id, key_id, conductor) == -1) {
		refuse(ctx, w, r, body, key_id, "bad-assertion", or_errmsg());
		goto out;
	}
	log_info("asset %s: onboarding assertion for device %s accepted", r->asset_id,
		 claims.serial);
	ok = true;
out:
	free(pem);
	return ok;
}

/*
 * PUT /admin/v1/trust-cloud {"certificate": PEM, "required": bool}: pins the cloud's
 * assertion certificate (replacing the one before); GET shows it.
 */
void
cloud_trust_handle(struct http_ctx *ctx, void *arg)
{
	const char *pem = NULL;
	char now[24], key_id[PKI_KEY_ID_LEN + 1], *current = NULL;
	bool required = true;
	json_t *body = NULL;
	struct worker *w;

	(void)arg;
	if ((w = admin_of(ctx)) == NULL)
		return;
	if (strcmp(http_ctx_method(ctx), "GET") == 0) {
		if (trust_get(w, &current, &required) == -1) {
			http_reply_error(ctx, 500, "internal", "the conductor failed: %s",
					 or_errmsg());
			return;
		}
		http_reply_json(ctx, 200,
				json_pack("{s:s?, s:b}", "certificate", current, "required",
					  current != NULL && required));
		free(current);
		return;
	}
	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "certificate", true, TRUST_PEM_MAX, &pem) == -1 ||
	    json_get_bool(body, "required", false, &required) == -1 ||
	    pki_check_certificates(pem, strlen(pem), 1, "certificate") == -1 ||
	    pki_cert_key_id(pem, key_id) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	fmt_i64((long long)time(NULL), now);
	if (store_exec(w->db, "DELETE FROM cloud_trust", NULL, 0, NULL) == -1 ||
	    store_exec(w->db,
		       "INSERT INTO cloud_trust (id, cert_pem, required, set_at) VALUES (1, $1, "
		       "$2, $3)",
		       (const char *[]){pem, required ? "1" : "0", now}, 3, NULL) == -1) {
		http_reply_error(ctx, 500, "internal", "the conductor failed: %s", or_errmsg());
		goto out;
	}
	log_info("admin: trusting the cloud's assertion key %.16s...; assertions %s", key_id,
		 required ? "required" : "optional");
	http_reply_json(ctx, 200,
			json_pack("{s:s, s:b}", "key_sha256", key_id, "required", required));
out:
	json_decref(body);
}
