/*
 * The device half of the cloud protocols. Servers are untrusted until proven:
 * the redirector is believed for routing only (its answer must echo our serial
 * and nonce and be well formed), the cloud only after its OCRA response over
 * this very TLS connection checks out. Every field of every answer is checked
 * before it is used. Secrets (key, responses, token, pre-shared secret) are
 * never put in an error message.
 */
#include "proto/cloud_client.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "device/ocra_mutual.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX (256 * 1024)
#define SESSION_MAX 512

/* See cloud_client.h. */
const char *
cloud_status_name(enum cloud_status s)
{
	static const char *const names[] = {
		"ok",	   "transport",	       "not-claimed",  "locked-out", "not-ready",
		"refused", "cloud-not-proven", "server-error", "protocol",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

/* An outcome that says nothing yet (no status, no Retry-After). */
static void
outcome_reset(struct cloud_outcome *oc)
{
	memset(oc, 0, sizeof(*oc));
	oc->status = CLOUD_OK;
	oc->http_err = HTTP_OK;
	oc->retry_after_s = -1;
}

/* Sets the outcome's status and returns -1 (the message is already recorded). */
static int
fail(struct cloud_outcome *oc, enum cloud_status status)
{
	oc->status = status;
	return -1;
}

/* A server's message, shortened and stripped of control characters, for our errors. */
static void
printable(const char *in, char *out, size_t cap)
{
	size_t i;

	for (i = 0; in != NULL && in[i] != '\0' && i + 1 < cap; i++)
		out[i] = isprint((unsigned char)in[i]) ? in[i] : '?';
	out[i] = '\0';
}

/* Sorts an error answer into the outcome, by status and the server's error code. */
static int
refusal(const struct http_response *resp, const char *what, struct cloud_outcome *oc)
{
	json_t *doc = NULL, *err;
	const char *code = NULL, *msg = NULL;
	char text[200];
	enum cloud_status status;

	if (resp->body != NULL &&
	    json_parse_object(resp->body, resp->body_len, ANSWER_MAX, &doc) == 0 &&
	    json_is_object(err = json_object_get(doc, "error"))) {
		code = json_string_value(json_object_get(err, "code"));
		msg = json_string_value(json_object_get(err, "message"));
	}
	printable(code, oc->code, sizeof(oc->code));
	printable(msg, text, sizeof(text));
	if (resp->status >= 500)
		status = CLOUD_SERVER_ERROR;
	else if (strcmp(oc->code, "not-claimed") == 0)
		status = CLOUD_NOT_CLAIMED;
	else if (strcmp(oc->code, "locked-out") == 0)
		status = CLOUD_LOCKED_OUT;
	else if (strcmp(oc->code, "not-ready") == 0)
		status = CLOUD_NOT_READY;
	else
		status = CLOUD_REFUSED;
	or_error("%s: HTTP %ld%s%s%s%s", what, resp->status, oc->code[0] ? " " : "", oc->code,
		 text[0] ? ": " : "", text);
	json_decref(doc);
	return fail(oc, status);
}

/*
 * One request: 0 with *doc (the JSON object of a 2xx answer), or -1 with the
 * outcome filled. `what` names the step in messages.
 */
static int
exchange(struct http_session *s, const char *method, const char *path, const char *bearer,
	 const json_t *body, const char *what, json_t **doc, struct cloud_outcome *oc)
{
	struct http_response resp = {0};
	enum http_err err = HTTP_OK;
	int rc = -1;

	*doc = NULL;
	outcome_reset(oc);
	if (http_session_request(s, method, path, bearer, body, &resp, &err) == -1) {
		oc->http_err = err;
		or_error_prefix("%s", what);
		return fail(oc, CLOUD_TRANSPORT);
	}
	oc->http_status = resp.status;
	oc->retry_after_s = resp.retry_after_s;
	if (resp.status < 200 || resp.status > 299) {
		rc = refusal(&resp, what, oc);
	} else if (json_parse_object(resp.body ? resp.body : "", resp.body_len, ANSWER_MAX, doc) ==
		   -1) {
		or_error_prefix("%s: the answer", what);
		rc = fail(oc, CLOUD_PROTOCOL);
	} else {
		rc = 0;
	}
	http_response_free(&resp);
	return rc;
}

/* A required string field of an answer, checked by check (may be NULL) and bounded. */
static int
answer_string(json_t *doc, const char *key, size_t max, int (*check)(const char *),
	      const char **out)
{
	if (json_get_string(doc, key, true, max, out) == -1)
		return -1;
	if (check != NULL && check(*out) == -1)
		return or_error_prefix("field '%s'", key);
	return 0;
}

/*
 * See cloud_client.h. The answer is believed only when it echoes our serial and nonce and
 * every field checks out.
 */
int
cloud_phone_home(const char *redirector_url, const struct http_client_opts *opts,
		 const struct cloud_device *dev, struct cloud_redirect *out,
		 struct cloud_outcome *oc)
{
	char nonce[33];
	const char *serial, *echo, *url, *pem;
	struct http_session *s = NULL;
	json_t *body = NULL, *doc = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	outcome_reset(oc);
	if (cloud_random_hex(16, nonce) == -1)
		return fail(oc, CLOUD_TRANSPORT);
	body = json_pack("{s:s,s:s}", "serial", dev->serial, "nonce", nonce);
	if (body == NULL ||
	    (dev->model && json_object_set_new(body, "model", json_string(dev->model)) == -1) ||
	    (dev->software_version &&
	     json_object_set_new(body, "software_version", json_string(dev->software_version)) ==
		     -1)) {
		or_error("phone home: serial, model or version is not valid text");
		oc->http_err = HTTP_ERR_INTERNAL;
		fail(oc, CLOUD_TRANSPORT);
		goto out;
	}
	if (http_session_open(redirector_url, opts, &s) == -1) {
		or_error_prefix("phone home");
		oc->http_err = HTTP_ERR_INTERNAL;
		fail(oc, CLOUD_TRANSPORT);
		goto out;
	}
	if (exchange(s, "POST", "/v1/phone-home", NULL, body, "phone home", &doc, oc) == -1)
		goto out;
	if (answer_string(doc, "serial", CLOUD_SERIAL_MAX, NULL, &serial) == -1 ||
	    answer_string(doc, "nonce", CLOUD_NONCE_MAX, NULL, &echo) == -1 ||
	    json_get_string(doc, "cloud_url", true, CLOUD_URL_MAX, &url) == -1 ||
	    cloud_check_url("cloud_url", url) == -1 ||
	    json_get_string(doc, "cloud_ca_pem", true, CLOUD_PEM_MAX, &pem) == -1 ||
	    cloud_check_pem("cloud_ca_pem", pem) == -1) {
		or_error_prefix("phone home: the redirector's answer");
		fail(oc, CLOUD_PROTOCOL);
		goto out;
	}
	if (strcmp(serial, dev->serial) != 0 || strcmp(echo, nonce) != 0) {
		or_error("phone home: the redirector answered for another serial or request");
		fail(oc, CLOUD_PROTOCOL);
		goto out;
	}
	snprintf(out->cloud_url, sizeof(out->cloud_url), "%s", url);
	out->cloud_ca_pem = strdup(pem);
	if (out->cloud_ca_pem == NULL) {
		or_error("out of memory");
		fail(oc, CLOUD_TRANSPORT);
		goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	json_decref(body);
	http_session_close(s);
	return rc;
}

/* See cloud_client.h. */
void
cloud_redirect_free(struct cloud_redirect *r)
{
	free(r->cloud_ca_pem);
	memset(r, 0, sizeof(*r));
}

/* The exporter of the session's TLS connection: the OCRA session information. */
static int
session_info(struct http_session *s, const struct ocra_suite *suite, uint8_t *out)
{
	if (suite->session_len > SESSION_MAX)
		return or_error("suite's session information is too long");
	if (http_session_exporter(s, CLOUD_EXPORTER_LABEL, out, suite->session_len) == -1)
		return or_error_prefix("TLS exporter");
	return 0;
}

/* See cloud_client.h. Nothing in the cloud's answer is used before R_S checks out. */
int
cloud_auth_begin(struct http_session *session, const struct cloud_device *dev,
		 struct cloud_challenge *ch, struct cloud_outcome *oc)
{
	const char *id, *suite, *qs, *rs;
	uint8_t s[SESSION_MAX];
	json_t *body = NULL, *doc = NULL;
	bool ok = false;
	int rc = -1;

	memset(ch, 0, sizeof(*ch));
	outcome_reset(oc);
	if (cloud_device_suite(dev->suite, &ch->suite) == -1 ||
	    ocra_random_question(&ch->suite, ch->client_q, sizeof(ch->client_q)) == -1) {
		or_error_prefix("authentication: the device's suite");
		return fail(oc, CLOUD_PROTOCOL);
	}
	body = json_pack("{s:s,s:s}", "serial", dev->serial, "client_challenge", ch->client_q);
	if (exchange(session, "POST", "/v1/device/auth/start", NULL, body, "authentication start",
		     &doc, oc) == -1)
		goto out;
	if (answer_string(doc, "challenge_id", CLOUD_ID_HEX, cloud_check_id, &id) == -1 ||
	    answer_string(doc, "suite", OCRA_SUITE_MAX, NULL, &suite) == -1 ||
	    answer_string(doc, "server_challenge", OCRA_QUESTION_FIELD, NULL, &qs) == -1 ||
	    cloud_check_challenge(&ch->suite, qs) == -1 ||
	    answer_string(doc, "server_response", OCRA_RESPONSE_MAX - 1, NULL, &rs) == -1) {
		or_error_prefix("authentication start: the cloud's answer");
		fail(oc, CLOUD_PROTOCOL);
		goto out;
	}
	if (strcmp(suite, ch->suite.text) != 0) {
		or_error("authentication start: the cloud uses suite %.64s, the device %s", suite,
			 ch->suite.text);
		fail(oc, CLOUD_PROTOCOL);
		goto out;
	}
	if (session_info(session, &ch->suite, s) == -1) {
		fail(oc, CLOUD_TRANSPORT);
		goto out;
	}
	if (ocra_mutual_check(&ch->suite, &dev->hmac, OCRA_ROLE_SERVER, ch->client_q, qs, s,
			      ch->suite.session_len, rs, &ok) == -1 ||
	    !ok) {
		or_error("authentication start: the cloud's OCRA response is wrong: it does not "
			 "know this device's key, or the connection is not end to end");
		fail(oc, CLOUD_SERVER_NOT_PROVEN);
		goto out;
	}
	snprintf(ch->id, sizeof(ch->id), "%s", id);
	snprintf(ch->server_q, sizeof(ch->server_q), "%s", qs);
	rc = 0;
out:
	OPENSSL_cleanse(s, sizeof(s));
	json_decref(doc);
	json_decref(body);
	return rc;
}

/* See cloud_client.h. */
int
cloud_auth_response(struct http_session *binding, const struct cloud_device *dev,
		    const struct cloud_challenge *ch, char *response)
{
	uint8_t s[SESSION_MAX];
	int rc;

	if (session_info(binding, &ch->suite, s) == -1)
		return -1;
	rc = ocra_mutual_response(&ch->suite, &dev->hmac, OCRA_ROLE_CLIENT, ch->client_q,
				  ch->server_q, s, ch->suite.session_len, response,
				  OCRA_RESPONSE_MAX);
	OPENSSL_cleanse(s, sizeof(s));
	return rc;
}

/* See cloud_client.h. The token is checked for its form and kept as a secret. */
int
cloud_auth_finish(struct http_session *session, const struct cloud_device *dev,
		  const struct cloud_challenge *ch, const char *response, struct secret *token,
		  struct cloud_outcome *oc)
{
	json_t *body, *doc = NULL;
	const char *t;
	int rc = -1;

	token->data = NULL;
	token->len = 0;
	body = json_pack("{s:s,s:s,s:s}", "challenge_id", ch->id, "serial", dev->serial, "response",
			 response);
	if (exchange(session, "POST", "/v1/device/auth/finish", NULL, body, "authentication finish",
		     &doc, oc) == -1)
		goto out;
	if (answer_string(doc, "token", CLOUD_TOKEN_HEX, cloud_check_token, &t) == -1) {
		or_error_prefix("authentication finish: the cloud's answer");
		fail(oc, CLOUD_PROTOCOL);
		goto out;
	}
	if (secret_from(token, t, strlen(t) + 1) == -1) {
		fail(oc, CLOUD_TRANSPORT);
		goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	json_decref(body);
	return rc;
}

/* See cloud_client.h. */
int
cloud_authenticate(struct http_session *session, const struct cloud_device *dev,
		   struct secret *token, struct cloud_outcome *oc)
{
	struct cloud_challenge ch;
	char response[OCRA_RESPONSE_MAX];
	int rc;

	token->data = NULL;
	token->len = 0;
	if (cloud_auth_begin(session, dev, &ch, oc) == -1)
		return -1;
	if (cloud_auth_response(session, dev, &ch, response) == -1)
		return fail(oc, CLOUD_TRANSPORT);
	rc = cloud_auth_finish(session, dev, &ch, response, token, oc);
	OPENSSL_cleanse(response, sizeof(response));
	return rc;
}

/* The conductor object of the onboarding answer into out. */
static int
conductor(json_t *c, struct cloud_onboarding *out)
{
	json_t *addrs = json_object_get(c, "addresses"), *a;
	json_int_t port = 0;
	size_t i;

	if (!json_is_object(c))
		return or_error("field 'conductor' must be an object");
	if (!json_is_array(addrs) || json_array_size(addrs) == 0 ||
	    json_array_size(addrs) > CLOUD_CONDUCTORS_MAX)
		return or_error("conductor addresses must be 1 to %d hosts", CLOUD_CONDUCTORS_MAX);
	json_array_foreach(addrs, i, a)
	{
		const char *h = json_string_value(a);
		if (h == NULL || strlen(h) != json_string_length(a) || cloud_check_host(h) == -1)
			return or_error("conductor address %zu is not a host name or address",
					i + 1);
		snprintf(out->addresses[i], sizeof(out->addresses[i]), "%s", h);
	}
	out->n_addresses = json_array_size(addrs);
	if (json_get_int(c, "port", true, 1, 65535, &port) == -1)
		return or_error_prefix("conductor");
	out->port = (unsigned)port;
	return 0;
}

/* See cloud_client.h. Every field is checked; an answer for another serial is refused. */
int
cloud_get_onboarding(struct http_session *session, const struct cloud_device *dev,
		     const struct secret *token, struct cloud_onboarding *out,
		     struct cloud_outcome *oc)
{
	const char *serial, *org, *site, *psk = NULL, *pem = NULL, *assertion = NULL,
					 *asset_id = NULL, *expires = NULL;
	json_t *doc = NULL, *body = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (dev->cert_key_pem != NULL &&
	    (body = json_pack("{s:s}", "cert_key", dev->cert_key_pem)) == NULL) {
		or_error("out of memory");
		return fail(oc, CLOUD_TRANSPORT);
	}
	if (exchange(session, body ? "POST" : "GET", "/v1/device/onboarding",
		     (const char *)token->data, body, "onboarding information", &doc, oc) == -1)
		goto out;
	if (answer_string(doc, "serial", CLOUD_SERIAL_MAX, NULL, &serial) == -1 ||
	    answer_string(doc, "organization", CLOUD_NAME_MAX, NULL, &org) == -1 ||
	    answer_string(doc, "site", CLOUD_NAME_MAX, NULL, &site) == -1 ||
	    conductor(json_object_get(doc, "conductor"), out) == -1 ||
	    json_get_string(doc, "psk", true, CLOUD_PSK_MAX, &psk) == -1 ||
	    cloud_check_psk(psk) == -1 ||
	    json_get_string(doc, "conductor_ca_pem", false, CLOUD_PEM_MAX, &pem) == -1 ||
	    (pem != NULL && cloud_check_pem("conductor_ca_pem", pem) == -1) ||
	    json_get_string(doc, "assertion", false, CLOUD_ASSERTION_MAX, &assertion) == -1 ||
	    (assertion != NULL &&
	     cloud_check_text("assertion", assertion, 1, CLOUD_ASSERTION_MAX) == -1) ||
	    json_get_string(doc, "assertion_expires", assertion != NULL, RFC3339_LEN, &expires) ==
		    -1 ||
	    (expires != NULL && rfc3339_parse(expires, &out->assertion_expires) == -1) ||
	    json_get_string(doc, "asset_id", false, CLOUD_ASSET_ID_MAX, &asset_id) == -1 ||
	    (asset_id != NULL &&
	     cloud_check_text("asset_id", asset_id, 1, CLOUD_ASSET_ID_MAX) == -1)) {
		or_error_prefix("onboarding information: the cloud's answer");
		fail(oc, CLOUD_PROTOCOL);
		goto out;
	}
	if (strcmp(serial, dev->serial) != 0) {
		or_error("onboarding information: the cloud answered for another device");
		fail(oc, CLOUD_PROTOCOL);
		goto out;
	}
	snprintf(out->organization, sizeof(out->organization), "%s", org);
	snprintf(out->site, sizeof(out->site), "%s", site);
	if (asset_id != NULL)
		snprintf(out->asset_id, sizeof(out->asset_id), "%s", asset_id);
	if (secret_from(&out->psk, psk, strlen(psk) + 1) == -1 ||
	    (pem != NULL && (out->conductor_ca_pem = strdup(pem)) == NULL) ||
	    (assertion != NULL && (out->assertion = strdup(assertion)) == NULL)) {
		or_error("out of memory");
		fail(oc, CLOUD_TRANSPORT);
		goto out;
	}
	rc = 0;
out:
	if (rc == -1)
		cloud_onboarding_free(out);
	json_decref(body);
	json_decref(doc);
	return rc;
}

/* See cloud_client.h; the secret is zeroed. */
void
cloud_onboarding_free(struct cloud_onboarding *o)
{
	secret_free(&o->psk);
	free(o->conductor_ca_pem);
	free(o->assertion);
	memset(o, 0, sizeof(*o));
}

/* See cloud_client.h. Events are checked as the cloud checks them, before anything is sent. */
int
cloud_report(struct http_session *session, const struct secret *token,
	     const struct cloud_event *events, size_t n, struct cloud_outcome *oc)
{
	json_t *list = json_array(), *body = NULL, *doc = NULL;
	char when[RFC3339_LEN + 1];
	int rc = -1;

	outcome_reset(oc);
	if (n == 0 || n > CLOUD_EVENTS_MAX) {
		or_error("a report holds 1 to %d events", CLOUD_EVENTS_MAX);
		fail(oc, CLOUD_PROTOCOL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cloud_event *e = &events[i];
		if (cloud_check_step(e->step) == -1 || cloud_check_outcome(e->outcome) == -1 ||
		    (e->reason != NULL &&
		     cloud_check_text("reason", e->reason, 0, CLOUD_REASON_MAX) == -1)) {
			or_error_prefix("event %zu", i + 1);
			fail(oc, CLOUD_PROTOCOL);
			goto out;
		}
		rfc3339_format(e->time, when);
		json_array_append_new(list,
				      json_pack("{s:s,s:s,s:s,s:s?}", "step", e->step, "time", when,
						"outcome", e->outcome, "reason", e->reason));
	}
	body = json_pack("{s:O}", "events", list);
	if (exchange(session, "POST", "/v1/device/events", (const char *)token->data, body,
		     "progress report", &doc, oc) == -1)
		goto out;
	rc = 0;
out:
	json_decref(doc);
	json_decref(body);
	json_decref(list);
	return rc;
}
