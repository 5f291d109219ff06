/*
 * Claims pushed from the cloud to the redirector's admin API
 * (docs/protocol.md section 5), over TLS verified against the redirector's
 * configured anchor, with this cloud's token. Runs inside an admin request:
 * bounded by short timeouts. Each loop thread keeps its connection to the
 * redirector alive between claims: a claim runs while the admin request holds
 * the store's write lock, so a TLS handshake per claim paced every other
 * change of the cloud (a large setup's claims one after the other).
 */
#include "cloud.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "net/http_client.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* The calling thread's session to the redirector (closed when the thread ends). */
static pthread_key_t session_key;
static bool session_key_made;
static pthread_once_t session_key_once = PTHREAD_ONCE_INIT;

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

/* Closes a thread's session as the thread ends. */
static void
session_free(void *s)
{
	http_session_close(s);
}

/* Makes the key of the threads' sessions, once per process. */
static void
session_key_make(void)
{
	if (pthread_key_create(&session_key, session_free) != 0)
		log_error("cloud: no per-thread redirector sessions; one connection per claim");
	else
		session_key_made = true;
}

/*
 * The calling thread's session to the redirector, opened on first use.
 * libcurl reconnects by itself when the redirector closed the idle
 * connection; a session whose request failed is dropped by the caller.
 */
static struct http_session *
thread_session(const struct cloud_app *app)
{
	struct http_client_opts opts = {0};
	struct http_session *s;

	pthread_once(&session_key_once, session_key_make);
	if (session_key_made && (s = pthread_getspecific(session_key)) != NULL)
		return s;
	opts.ca_pem = app->redirector_ca_pem;
	opts.connect_timeout_ms = 5000;
	opts.total_timeout_ms = 10000;
	if (http_session_open(app->redirector_url, &opts, &s) == -1)
		return NULL;
	if (session_key_made && pthread_setspecific(session_key, s) != 0) {
		http_session_close(s);
		or_error("cloud: cannot keep the redirector session");
		return NULL;
	}
	return s;
}

/*
 * Closes and forgets the calling thread's session after a failed request, and
 * every session when threads cannot keep one (failed: a failed request).
 */
static void
thread_session_done(struct http_session *s, bool failed)
{
	if (session_key_made && !failed)
		return;
	if (session_key_made && pthread_getspecific(session_key) == s)
		pthread_setspecific(session_key, NULL);
	http_session_close(s);
}

/*
 * See cloud.h. The redirector is trusted through its configured anchor only; its answer is
 * only described.
 */
int
cloud_redirector_claim(const struct cloud_app *app, const char *serial, bool claim,
		       const char *claim_secret, char *detail, size_t cap)
{
	struct http_response resp = {0};
	struct http_session *s;
	enum http_err err = HTTP_OK;
	char path[64 + CLOUD_SERIAL_MAX];
	json_t *body = NULL;
	int rc = -1;

	snprintf(path, sizeof(path), "/v1/admin/claims/%s", serial);
	if (claim)
		body = json_pack("{s:s,s:s,s:s?}", "cloud_url", app->public_url, "cloud_ca_pem",
				 app->public_ca_pem, "claim_secret", claim_secret);
	if ((s = thread_session(app)) == NULL) {
		snprintf(detail, cap, "%s: %s", http_err_name(err), or_errmsg());
		goto out;
	}
	if (http_session_request(s, claim ? "PUT" : "DELETE", path,
				 (const char *)app->redirector_token.data, body, &resp,
				 &err) == -1) {
		snprintf(detail, cap, "%s: %s", http_err_name(err), or_errmsg());
		thread_session_done(s, true);
		goto out;
	}
	thread_session_done(s, false);
	/* An unclaim of a claim the redirector no longer has is done already. */
	if (resp.status == 200 || resp.status == 201 || (!claim && resp.status == 404)) {
		rc = 0;
		goto out;
	}
	describe(&resp, detail, cap);
out:
	http_response_free(&resp);
	json_decref(body);
	return rc;
}
