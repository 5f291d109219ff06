/*
 * Conductor-to-conductor: before a migrate, the old conductor asks the new
 * one whether it has the router provisioned. The old conductor trusts the
 * new one through the production root CA it holds for the router, and proves
 * itself with the production pre-shared secret it holds for the router, the
 * same way a router does (HMAC over nonce, "peer:" + router name, TLS
 * exporter). So a peer query needs no credential beyond what the operator
 * already gave the old conductor, and only someone holding a production
 * secret learns whether a router is provisioned. Only a production conductor
 * answers.
 */
#include "conductor.h"

#include "core/error.h"
#include "core/json.h"
#include "core/x509.h"
#include "proto/conductor_client.h"
#include "proto/conductor_psk.h"
#include "records.h"
#include "server/http_server.h"

#include <stdio.h>
#include <string.h>

#define PEER_CONNECT_MS 5000L
#define PEER_TOTAL_MS 15000L

/*
 * POST /v1/peer/router: answers a peer conductor that proved a production secret whether it has
 * the router.
 */
void
peer_handle_router(struct http_ctx *ctx, void *arg)
{
	const char *router = NULL, *asset_id = NULL;
	char subject[80];
	struct router_row r;
	json_t *body = NULL;
	struct worker *w;
	bool found, revoked;

	(void)arg;
	if ((w = worker_of(ctx)) == NULL || http_ctx_json_body(ctx, &body) == -1)
		return;
	if (json_get_string(body, "router", true, 63, &router) == -1 ||
	    json_get_string(body, "asset_id", true, CONDUCTOR_SUBJECT_MAX, &asset_id) == -1 ||
	    !pki_valid_router_name(router)) {
		http_reply_error(ctx, 400, "bad-request", "router and asset_id are required");
		goto out;
	}
	if (w->c->set.role != ROLE_PRODUCTION) {
		http_reply_error(ctx, 403, "not-production",
				 "this is a staging conductor; routers migrate to production ones");
		goto out;
	}
	snprintf(subject, sizeof(subject), "peer:%s", router);
	if (!check_psk_proof(ctx, w, body, subject)) {
		log_warn("peer query for router %s from %s: proof refused", router,
			 http_ctx_peer(ctx));
		goto out;
	}
	if (psk_is_revoked(w, json_string_value(json_object_get(body, "psk_id")), &revoked) == -1 ||
	    revoked) {
		http_reply_error(ctx, 401, "revoked-psk", "the pre-shared secret was revoked");
		goto out;
	}
	if (router_get(w, "name", router, &r, &found) == -1) {
		http_reply_error(ctx, 500, "internal", "%s", or_errmsg());
		goto out;
	}
	if (!found || strcmp(r.asset_id, asset_id) != 0) {
		http_reply_error(ctx, 404, "not-provisioned",
				 "router %s with asset ID %s is not provisioned here", router,
				 asset_id);
		goto out;
	}
	log_info("peer %s asked for router %s: provisioned", http_ctx_peer(ctx), router);
	http_reply_json(ctx, 200,
			json_pack("{s:s, s:s, s:b, s:s}", "router", r.name, "asset_id", r.asset_id,
				  "provisioned", 1, "state", asset_progress_name(r.progress)));
out:
	json_decref(body);
}

/* One address: hello as a peer, proof, question. */
static int
ask_one(const char *address, const char *ca_pem, const struct secret *psk, const char *router,
	const char *asset_id)
{
	struct http_session *s = NULL;
	json_t *body = json_pack("{s:s, s:s}", "router", router, "asset_id", asset_id);
	char subject[80], nonce[65];
	long status = 0;
	int rc = -1;

	snprintf(subject, sizeof(subject), "peer:%s", router);
	if (conductor_session_open(address, ca_pem, NULL, PEER_CONNECT_MS, PEER_TOTAL_MS, &s) ==
		    -1 ||
	    conductor_prove(s, "peer", router, subject, psk, body, nonce) == -1)
		goto out;
	rc = conductor_call(s, "POST", "/v1/peer/router", NULL, body, &status, NULL);
	if (rc == -1 && status == 404)
		or_error("router %s (asset ID %s) is not provisioned there", router, asset_id);
out:
	json_decref(body);
	http_session_close(s);
	return rc;
}

/*
 * Asks each address in turn; 0 as soon as one has the router, else -1 with the first address's
 * reason.
 */
int
peer_check_router(struct worker *w, const char *const *addresses, size_t n, const char *ca_pem,
		  const char *psk_text, const char *router, const char *asset_id)
{
	struct secret psk = {(uint8_t *)psk_text, strlen(psk_text)};
	char errors[CONDUCTOR_ERROR_MAX] = "";

	(void)w;
	for (size_t i = 0; i < n; i++) {
		if (ask_one(addresses[i], ca_pem, &psk, router, asset_id) == 0)
			return 0;
		log_warn("migrate check of %s at %s: %s", router, addresses[i], or_errmsg());
		if (errors[0] == '\0')
			snprintf(errors, sizeof(errors), "%s: %s", addresses[i], or_errmsg());
	}
	return or_error("%s", errors);
}
