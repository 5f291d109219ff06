/*
 * Claims pushed from the cloud to the redirector's admin API
 * (docs/protocol.md section 5), over TLS verified against the redirector's
 * configured anchor, with this cloud's token. Runs inside an admin request:
 * bounded by short timeouts.
 */
#include "cloud.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "net/http_client.h"

#include <stdio.h>
#include <string.h>

/* "HTTP 409 claimed-elsewhere: message" from an error answer, whatever its shape. */
static void
describe(const struct http_response *resp, char *detail, size_t cap)
{
	json_t *doc = NULL, *err;
	const char *code = NULL, *msg = NULL;

	if (resp->body != NULL && json_parse_object(resp->body, resp->body_len, 65536, &doc) == 0 &&
	    json_is_object(err = json_object_get(doc, "error"))) {
		code = json_string_value(json_object_get(err, "code"));
		msg = json_string_value(json_object_get(err, "message"));
	}
	snprintf(detail, cap, "HTTP %ld%s%s%s%s", resp->status, code ? " " : "", code ? code : "",
		 msg ? ": " : "", msg ? msg : "");
	json_decref(doc);
}

/*
 * See cloud.h. The redirector is trusted through its configured anchor only; its answer is
 * only described.
 */
int
cloud_redirector_claim(const struct cloud_app *app, const char *serial, bool claim,
		       const char *claim_secret, char *detail, size_t cap)
{
	struct http_client_opts opts = {0};
	struct http_response resp = {0};
	struct http_session *s = NULL;
	enum http_err err = HTTP_OK;
	char path[64 + CLOUD_SERIAL_MAX];
	json_t *body = NULL;
	int rc = -1;

	opts.ca_pem = app->redirector_ca_pem;
	opts.connect_timeout_ms = 5000;
	opts.total_timeout_ms = 10000;
	snprintf(path, sizeof(path), "/v1/admin/claims/%s", serial);
	if (claim)
		body = json_pack("{s:s,s:s,s:s?}", "cloud_url", app->public_url, "cloud_ca_pem",
				 app->public_ca_pem, "claim_secret", claim_secret);
	if (http_session_open(app->redirector_url, &opts, &s) == -1 ||
	    http_session_request(s, claim ? "PUT" : "DELETE", path,
				 (const char *)app->redirector_token.data, body, &resp,
				 &err) == -1) {
		snprintf(detail, cap, "%s: %s", http_err_name(err), or_errmsg());
		goto out;
	}
	/* An unclaim of a claim the redirector no longer has is done already. */
	if (resp.status == 200 || resp.status == 201 || (!claim && resp.status == 404)) {
		rc = 0;
		goto out;
	}
	describe(&resp, detail, cap);
out:
	http_response_free(&resp);
	http_session_close(s);
	json_decref(body);
	return rc;
}
