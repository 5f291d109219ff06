/*
 * The router's half of the conductor protocol; see conductor_client.h. It
 * trusts a conductor only after TLS verifies against that conductor's own
 * root CA, and checks every command before acting: a configuration must
 * match its hash and the schema, a certificate must be for the device's own
 * key and chain to the conductor's CA.
 */
#include "proto/conductor_client.h"

#include "core/backoff.h"
#include "core/encoding.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/x509.h"
#include "device/certkey.h"
#include "device/vault.h"
#include "proto/conductor_psk.h"
#include "proto/peering_config.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STATE_FILE "conductor.json"
#define STATE_MAX (64 * 1024)
#define NONCE_URI_PREFIX "urn:onramp:nonce:"
#define DEVICE_CSR_CN "onramp-device"
#define DEFAULT_CONNECT_MS 10000L
#define DEFAULT_WAIT_S 25u
#define REQUEST_MARGIN_S 20u   /* a poll's answer may take this much longer than its wait */
#define LEAVE_TIMEOUT_MS 5000L /* a router-side migrate waits this long per request to leave */

/*
 * A command's acknowledgement whose answer was lost with the connection (an
 * instance killed between its commit and its answer): sent again on the next
 * connection (the conductor gives a repeat the same answer), and only then
 * is the step reported, since a committed command is not sent again.
 */
struct lost_ack {
	json_int_t id;
	json_t *body; /* NULL: none */
	const char *step;
	char reason[256];
};

struct conductor_conn {
	const struct conductor_client_opts *opts;
	struct http_session *s;
	char token[65];
	char router[64];
	char address[300];
	char *ca_pem;
	unsigned poll_timeout_s;
	struct lost_ack lost; /* set by conductor_execute, taken by conductor_run */
};

/* This thread's last answer (conductor_last_answer), set by every conductor_call. */
static _Thread_local struct conductor_answer last_answer = {.retry_after_s = -1};

/* ---- small helpers ------------------------------------------------------ */

/* Logs a step's outcome and hands it to the caller's report function. */
static void
report(const struct conductor_client_opts *o, const char *step, bool ok, const char *reason)
{
	if (ok)
		log_info("conductor: %s done", step);
	else
		log_warn("conductor: %s failed: %s", step, reason);
	if (o->report != NULL)
		o->report(o->report_arg, step, ok, reason);
}

/* STATE_DIR/file into out. */
static int
path_in(const struct conductor_client_opts *o, const char *file, char out[PATH_MAX])
{
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", o->state_dir, file) >= PATH_MAX)
		return or_error("%s: state directory path too long", o->state_dir);
	return 0;
}

/* The router's conductor state, or a new empty one when there is no file yet. */
static int
state_load_or_new(const struct conductor_client_opts *o, json_t **out)
{
	char path[PATH_MAX];
	FILE *f;

	*out = NULL;
	if (path_in(o, STATE_FILE, path) == -1)
		return -1;
	f = fopen(path, "r");
	if (f == NULL) {
		*out = json_pack("{s:i}", "version", 1);
		return *out ? 0 : or_error("out of memory");
	}
	fclose(f);
	return json_load_object_file(path, STATE_MAX, out);
}

/*
 * Loads the state with its entry key. 1: both set (the caller frees *st);
 * 0: no such entry; -1: the state did not load. *st is NULL unless 1.
 */
static int
state_entry(const struct conductor_client_opts *o, const char *key, json_t **st, json_t **entry)
{
	*entry = NULL;
	if (state_load_or_new(o, st) == -1) {
		*st = NULL;
		return -1;
	}
	*entry = json_object_get(*st, key);
	if (*entry == NULL) {
		json_decref(*st);
		*st = NULL;
		return 0;
	}
	return 1;
}

/* Replaces the state file atomically (mode 0600). */
static int
state_save(const struct conductor_client_opts *o, const json_t *st)
{
	char path[PATH_MAX], *text;
	int rc;

	if (path_in(o, STATE_FILE, path) == -1)
		return -1;
	if ((text = json_dump_compact(st)) == NULL)
		return or_error("out of memory");
	rc = file_write_atomic(path, text, strlen(text), 0600);
	free(text);
	return rc;
}

/* Copies a JSON array of 1..CONDUCTOR_MAX_TARGET_ADDRESSES address strings. */
static int
addresses_from_json(json_t *array, struct conductor_target *t)
{
	json_t *a;
	size_t i;

	if (!json_is_array(array) || json_array_size(array) == 0 ||
	    json_array_size(array) > CONDUCTOR_MAX_TARGET_ADDRESSES)
		return or_error("addresses: an array of 1 to %d host:port strings",
				CONDUCTOR_MAX_TARGET_ADDRESSES);
	json_array_foreach(array, i, a)
	{
		if (!json_is_string(a) ||
		    peering_check_address(json_string_value(a), "conductor address") == -1)
			return or_error_prefix("addresses[%zu]", i);
		if ((t->addresses[t->n_addresses] = strdup(json_string_value(a))) == NULL)
			return or_error("out of memory");
		t->n_addresses++;
	}
	return 0;
}

/* The addresses as a JSON array. */
static json_t *
addresses_to_json(const char *const *addresses, size_t n)
{
	json_t *array = json_array();

	for (size_t i = 0; array != NULL && i < n; i++)
		json_array_append_new(array, json_string(addresses[i]));
	return array;
}

/* Sleeps in slices of 100 ms, so that a stop request is seen soon. */
static void
sleep_ms(unsigned ms, volatile sig_atomic_t *stop)
{
	/* In slices, so that a stop request is seen within 100 ms. */
	while (ms > 0 && (stop == NULL || !*stop)) {
		unsigned slice = ms > 100 ? 100 : ms;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000L};

		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/* The string value of v, or def when v is not a string. */
static const char *
text_or(const json_t *v, const char *def)
{
	const char *text = json_string_value(v);

	return text ? text : def;
}

/* The vault names of a conductor's secret and root CA. */
static void
vault_names(const char *which, char psk_name[64], char ca_name[64])
{
	snprintf(psk_name, 64, "conductor-%s-psk", which);
	snprintf(ca_name, 64, "conductor-%s-ca", which);
}

/* Only two conductors are known: staging and production. */
static bool
valid_which(const char *which)
{
	return strcmp(which, "staging") == 0 || strcmp(which, "production") == 0;
}

/* ---- targets ------------------------------------------------------------- */

/* Frees a target; the secret is zeroed. */
void
conductor_target_free(struct conductor_target *t)
{
	for (size_t i = 0; i < t->n_addresses; i++)
		free(t->addresses[i]);
	free(t->ca_pem);
	free(t->assertion);
	secret_free(&t->psk);
	memset(t, 0, sizeof(*t));
}

/* Checks and stores a conductor: secret and CA in the vault, addresses in the state. */
int
conductor_set_target(const struct conductor_client_opts *o, const char *which,
		     const char *const *addresses, size_t n, const char *psk, size_t psk_len,
		     const char *ca_pem)
{
	char psk_name[64], ca_name[64], id[PSK_ID_LEN + 1], key_id[PKI_KEY_ID_LEN + 1];
	json_t *st = NULL;
	int rc = -1;

	if (!valid_which(which))
		return or_error("conductor target must be staging or production");
	if (n == 0 || n > CONDUCTOR_MAX_TARGET_ADDRESSES)
		return or_error("a conductor needs 1 to %d addresses",
				CONDUCTOR_MAX_TARGET_ADDRESSES);
	for (size_t i = 0; i < n; i++)
		if (peering_check_address(addresses[i], "conductor address") == -1)
			return -1;
	if (psk_parse_id(psk, psk_len, id) == -1 || pki_cert_key_id(ca_pem, key_id) == -1)
		return -1;
	vault_names(which, psk_name, ca_name);
	if (state_load_or_new(o, &st) == -1)
		return -1;
	json_object_set_new(st, which,
			    json_pack("{s:o}", "addresses", addresses_to_json(addresses, n)));
	if (json_string_value(json_object_get(st, "current")) == NULL)
		json_object_set_new(st, "current", json_string(which));
	if (vault_put(o->vault, psk_name, psk, psk_len) == -1 ||
	    vault_put_anchor(o->vault, ca_name, ca_pem) == -1 || state_save(o, st) == -1)
		goto out;
	log_info("conductor: %s conductor stored (%s%s)", which, addresses[0],
		 n > 1 ? ", ..." : "");
	rc = 0;
out:
	json_decref(st);
	return rc;
}

/* Reads a stored conductor back; a tampered vault entry is refused. */
int
conductor_get_target(const struct conductor_client_opts *o, const char *which,
		     struct conductor_target *out)
{
	char psk_name[64], ca_name[64];
	json_t *st = NULL, *t;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!valid_which(which))
		return or_error("conductor target must be staging or production");
	if (state_load_or_new(o, &st) == -1)
		return -1;
	t = json_object_get(st, which);
	if (t == NULL) {
		or_error("no %s conductor is stored", which);
		goto out;
	}
	vault_names(which, psk_name, ca_name);
	snprintf(out->asset_id, sizeof(out->asset_id), "%s",
		 text_or(json_object_get(st, "asset_id"), o->asset_id));
	if (json_string_value(json_object_get(t, "assertion")) != NULL &&
	    (out->assertion = strdup(json_string_value(json_object_get(t, "assertion")))) == NULL) {
		or_error("out of memory");
		goto out;
	}
	if (addresses_from_json(json_object_get(t, "addresses"), out) == -1 ||
	    vault_get(o->vault, psk_name, &out->psk) == -1 ||
	    vault_get_anchor(o->vault, ca_name, &out->ca_pem) == -1) {
		or_error_prefix("%s conductor", which);
		conductor_target_free(out);
		goto out;
	}
	rc = 0;
out:
	json_decref(st);
	return rc;
}

/* See conductor_client.h: kept in the state file (an assertion is not secret). */
int
conductor_set_assertion(const struct conductor_client_opts *o, const char *which,
			const char *asset_id, const char *assertion, time_t expires)
{
	json_t *st = NULL, *t;
	int rc = -1;

	if (!valid_which(which))
		return or_error("conductor target must be staging or production");
	if (asset_id != NULL && asset_id[0] != '\0' && !conductor_valid_subject(asset_id))
		return or_error("the cloud's asset ID is not 1 to 128 printable characters");
	if (state_load_or_new(o, &st) == -1)
		return -1;
	if ((t = json_object_get(st, which)) == NULL) {
		or_error("no %s conductor is stored", which);
		goto out;
	}
	if (asset_id != NULL && asset_id[0] != '\0')
		json_object_set_new(st, "asset_id", json_string(asset_id));
	json_object_set_new(t, "assertion", json_string(assertion));
	json_object_set_new(t, "assertion_expires", json_integer((json_int_t)expires));
	rc = state_save(o, st);
out:
	json_decref(st);
	return rc;
}

/* See conductor_client.h. */
bool
conductor_assertion_stale(const struct conductor_client_opts *o, const char *which, time_t margin_s)
{
	json_t *st = NULL, *t;
	bool stale = false;

	if (!valid_which(which) || state_load_or_new(o, &st) == -1)
		return false;
	t = json_object_get(st, which);
	if (t != NULL && json_string_value(json_object_get(t, "assertion")) != NULL)
		stale = json_integer_value(json_object_get(t, "assertion_expires")) <=
			(json_int_t)(time(NULL) + margin_s);
	json_decref(st);
	return stale;
}

/* Drops the assertion of the conductor whose CA is ca_pem: it was used. */
static void
assertion_used(const struct conductor_client_opts *o, const char *ca_pem)
{
	struct conductor_target t;
	json_t *st = NULL, *entry;
	const char *which = "staging";

	if (conductor_get_target(o, which, &t) == -1)
		return;
	if (t.assertion != NULL && strcmp(t.ca_pem, ca_pem) == 0 &&
	    state_load_or_new(o, &st) == 0 && (entry = json_object_get(st, which)) != NULL) {
		json_object_del(entry, "assertion");
		json_object_del(entry, "assertion_expires");
		if (state_save(o, st) == -1)
			log_warn("conductor: cannot drop the used assertion: %s", or_errmsg());
	}
	json_decref(st);
	conductor_target_free(&t);
}

/* Which conductor the router serves now. */
int
conductor_current(const struct conductor_client_opts *o, char which[16])
{
	json_t *st = NULL;
	const char *cur;

	which[0] = '\0';
	if (state_load_or_new(o, &st) == -1)
		return -1;
	cur = json_string_value(json_object_get(st, "current"));
	if (cur != NULL && valid_which(cur))
		snprintf(which, 16, "%s", cur);
	json_decref(st);
	return 0;
}

int
conductor_migration_pending(const struct conductor_client_opts *o, time_t *deadline)
{
	json_t *st = NULL, *mig;
	int found;

	*deadline = 0;
	if ((found = state_entry(o, "migration", &st, &mig)) <= 0)
		return found;
	*deadline = (time_t)json_integer_value(json_object_get(mig, "deadline"));
	json_decref(st);
	return 1;
}

/* Lets the caller run its own work on this thread (opts->tick). */
static void
tick(const struct conductor_client_opts *o, struct conductor_conn *c)
{
	if (o->tick != NULL)
		o->tick(o->report_arg, c);
}

/* Lets the caller deliver what it owes the conductor on c before leaving it (opts->leaving). */
static void
leaving(const struct conductor_client_opts *o, struct conductor_conn *c)
{
	if (o->leaving != NULL)
		o->leaving(o->report_arg, c);
}

/* ---- requests ------------------------------------------------------------- */

/* An HTTPS session to one conductor address, trusting only ca_pem, through the proxy if any. */
int
conductor_session_open(const char *address, const char *ca_pem, const struct http_proxy *proxy,
		       long connect_timeout_ms, long total_timeout_ms, struct http_session **out)
{
	struct http_client_opts hopts = {
		.proxy = proxy,
		.ca_pem = ca_pem,
		.connect_timeout_ms = connect_timeout_ms,
		.total_timeout_ms = total_timeout_ms,
	};
	char url[320];

	if ((size_t)snprintf(url, sizeof(url), "https://%s", address) >= sizeof(url))
		return or_error("conductor address too long");
	return http_session_open(url, &hopts, out);
}

/*
 * One request; turns a non-2xx answer into one sentence naming the path, status, code and
 * message.
 */
int
conductor_call(struct http_session *s, const char *method, const char *path, const char *bearer,
	       const json_t *body, long *status, json_t **answer)
{
	struct http_response resp = {0};
	enum http_err err = HTTP_OK;
	json_t *parsed = NULL, *e;
	const char *code, *message;
	int rc = -1;

	*status = 0;
	if (answer != NULL)
		*answer = NULL;
	memset(&last_answer, 0, sizeof(last_answer));
	last_answer.retry_after_s = -1;
	/* The class ("connect", "tls-untrusted", ...) leads, as in the cloud's reasons. */
	if (http_session_request(s, method, path, bearer, body, &resp, &err) == -1) {
		last_answer.http_err = err;
		return or_error_prefix("%s %s: %s", method, path, http_err_name(err));
	}
	*status = resp.status;
	last_answer.status = resp.status;
	last_answer.http_err = err;
	last_answer.retry_after_s = resp.retry_after_s;
	if (resp.body_len > 0 &&
	    json_parse_object(resp.body, resp.body_len, HTTP_BODY_MAX, &parsed) == -1) {
		or_error_prefix("%s %s: answer %ld", method, path, resp.status);
		goto out;
	}
	if (resp.status < 200 || resp.status > 299) {
		e = json_object_get(parsed, "error");
		code = json_string_value(json_object_get(e, "code"));
		message = json_string_value(json_object_get(e, "message"));
		snprintf(last_answer.code, sizeof(last_answer.code), "%s", code ? code : "");
		or_error("%s %s: %ld %s: %s", method, path, resp.status, code ? code : "error",
			 message ? message : "no message");
		goto out;
	}
	if (answer != NULL) {
		*answer = parsed;
		parsed = NULL;
	}
	rc = 0;
out:
	json_decref(parsed);
	http_response_free(&resp);
	return rc;
}

/*
 * Hello, then the proof over nonce, subject and this session's exporter; the session must not
 * reconnect after.
 */
int
conductor_prove(struct http_session *s, const char *hello_key, const char *hello_value,
		const char *subject, const struct secret *psk, json_t *body, char nonce_hex[65])
{
	uint8_t ex[CONDUCTOR_EXPORTER_LEN], proof[CONDUCTOR_PROOF_LEN], *nonce = NULL;
	char id[PSK_ID_LEN + 1], proof_hex[2 * CONDUCTOR_PROOF_LEN + 1];
	json_t *hello = json_pack("{s:s}", hello_key, hello_value), *answer = NULL;
	const char *text;
	size_t nonce_len = 0;
	long status;
	int rc = -1;

	if (psk_parse_id((const char *)psk->data, psk->len, id) == -1)
		goto out;
	if (conductor_call(s, "POST", "/v1/hello", NULL, hello, &status, &answer) == -1)
		goto out;
	text = json_string_value(json_object_get(answer, "nonce"));
	if (text == NULL || strlen(text) != 2 * CONDUCTOR_NONCE_LEN ||
	    hex_decode(text, "nonce", &nonce, &nonce_len) == -1 ||
	    nonce_len != CONDUCTOR_NONCE_LEN) {
		or_error("the conductor's hello answer has no valid nonce");
		goto out;
	}
	snprintf(nonce_hex, 65, "%s", text);
	if (http_session_exporter(s, CONDUCTOR_EXPORTER_LABEL, ex, sizeof(ex)) == -1 ||
	    psk_proof(psk, nonce, subject, ex, proof) == -1)
		goto out;
	hex_encode(proof, sizeof(proof), proof_hex);
	json_object_set_new(body, "psk_id", json_string(id));
	json_object_set_new(body, "nonce", json_string(nonce_hex));
	json_object_set_new(body, "proof", json_string(proof_hex));
	rc = 0;
out:
	secure_zero(ex, sizeof(ex));
	secure_zero(proof, sizeof(proof));
	OPENSSL_free(nonce);
	json_decref(hello);
	json_decref(answer);
	return rc;
}

/* A copy of this thread's last answer. */
void
conductor_last_answer(struct conductor_answer *out)
{
	*out = last_answer;
}

/* The wait before the next attempt: the backoff, or longer when the conductor said so. */
static unsigned
retry_wait_ms(struct backoff *b)
{
	return backoff_next_ms(b, last_answer.retry_after_s);
}

/* ---- connection ---------------------------------------------------------- */

/* The longest poll wait this router asks for. */
static unsigned
wait_cap(const struct conductor_client_opts *o)
{
	return o->poll_wait_s ? o->poll_wait_s : DEFAULT_WAIT_S * 2;
}

/* Authenticates on an open session: hello, proof, device CSR over the nonce. */
static int
authenticate(struct conductor_conn *c, const struct conductor_target *t)
{
	const struct conductor_client_opts *o = c->opts;
	char nonce[65], uri[sizeof(NONCE_URI_PREFIX) + 64], *csr = NULL;
	const char *uris[1] = {uri};
	json_t *body = json_object(), *answer = NULL;
	const char *token, *router;
	long status;
	json_int_t timeout;
	int rc = -1;

	json_object_set_new(body, "asset_id", json_string(t->asset_id));
	if (t->assertion != NULL)
		json_object_set_new(body, "assertion", json_string(t->assertion));
	if (conductor_prove(c->s, "asset_id", t->asset_id, t->asset_id, &t->psk, body, nonce) == -1)
		goto out;
	snprintf(uri, sizeof(uri), "%s%s", NONCE_URI_PREFIX, nonce);
	if (certkey_csr(o->certkey, DEVICE_CSR_CN, uris, 1, &csr) == -1)
		goto out;
	json_object_set_new(body, "device_csr", json_string(csr));
	if (conductor_call(c->s, "POST", "/v1/auth", NULL, body, &status, &answer) == -1)
		goto out;
	token = json_string_value(json_object_get(answer, "session"));
	router = json_string_value(json_object_get(answer, "router"));
	timeout = json_integer_value(json_object_get(answer, "poll_timeout"));
	if (token == NULL || strlen(token) != 64 || router == NULL ||
	    !pki_valid_router_name(router) || timeout < 1 || timeout > 300) {
		or_error("the conductor's auth answer lacks session, router or poll_timeout");
		goto out;
	}
	snprintf(c->token, sizeof(c->token), "%s", token);
	snprintf(c->router, sizeof(c->router), "%s", router);
	c->poll_timeout_s = (unsigned)timeout;
	if (t->assertion != NULL)
		assertion_used(o, t->ca_pem); /* the asset ID is bound to this device now */
	rc = 0;
out:
	free(csr);
	json_decref(body);
	json_decref(answer);
	return rc;
}

/*
 * Tries each address in order: TLS, hello, proof, device CSR, session; each
 * request on the session bounded by request_ms.
 */
static int
connect_within(const struct conductor_client_opts *o, const struct conductor_target *t,
	       long request_ms, struct conductor_conn **out)
{
	long connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
	struct conductor_conn *c;
	int opened;

	*out = NULL;
	if (t->n_addresses == 0)
		return or_error("the conductor has no address");
	for (size_t i = 0; i < t->n_addresses; i++) {
		if ((c = calloc(1, sizeof(*c))) == NULL ||
		    (c->ca_pem = strdup(t->ca_pem)) == NULL) {
			free(c);
			return or_error("out of memory");
		}
		c->opts = o;
		snprintf(c->address, sizeof(c->address), "%s", t->addresses[i]);
		/* An answer left from an earlier request must not pass for this address's. */
		memset(&last_answer, 0, sizeof(last_answer));
		last_answer.retry_after_s = -1;
		opened = conductor_session_open(c->address, t->ca_pem, o->proxy, connect_ms,
						request_ms, &c->s);
		if (opened == 0)
			http_session_set_cancel(c->s, o->cancel);
		if (opened == 0 && authenticate(c, t) == 0) {
			log_info("conductor: authenticated to %s as router %s", c->address,
				 c->router);
			*out = c;
			return 0;
		}
		if (last_answer.code[0] != '\0') {
			snprintf(last_answer.address, sizeof(last_answer.address), "%s",
				 c->address);
			snprintf(last_answer.asset_id, sizeof(last_answer.asset_id), "%s",
				 t->asset_id);
		}
		or_error_prefix("conductor %s", c->address);
		conductor_close(c);
		if (i + 1 < t->n_addresses)
			log_warn("%s; trying the next address", or_errmsg());
	}
	return -1;
}

/* Connects for the command channel: a request may be a poll held up to its wait. */
int
conductor_connect(const struct conductor_client_opts *o, const struct conductor_target *t,
		  struct conductor_conn **out)
{
	return connect_within(o, t, (long)(wait_cap(o) + REQUEST_MARGIN_S) * 1000, out);
}

/* The router name the conductor gave at authentication. */
const char *
conductor_conn_router(const struct conductor_conn *c)
{
	return c->router;
}

/* The address this connection reached. */
const char *
conductor_conn_address(const struct conductor_conn *c)
{
	return c->address;
}

/* Closes the session; the token is zeroed. */
void
conductor_close(struct conductor_conn *c)
{
	if (c == NULL)
		return;
	http_session_close(c->s);
	secure_zero(c->token, sizeof(c->token));
	json_decref(c->lost.body);
	free(c->ca_pem);
	free(c);
}

/* One long poll on the session. */
int
conductor_poll(struct conductor_conn *c, json_t **commands)
{
	unsigned wait = wait_cap(c->opts);
	json_t *answer = NULL, *list;
	char path[64];
	long status;
	bool reconnect;

	*commands = NULL;
	if (wait > c->poll_timeout_s)
		wait = c->poll_timeout_s;
	snprintf(path, sizeof(path), "/v1/commands?wait=%u", wait);
	if (conductor_call(c->s, "GET", path, c->token, NULL, &status, &answer) == -1)
		return -1;
	list = json_object_get(answer, "commands");
	if (!json_is_array(list)) {
		json_decref(answer);
		return or_error("the conductor's poll answer has no commands array");
	}
	*commands = json_incref(list);
	reconnect = json_is_true(json_object_get(answer, "reconnect"));
	json_decref(answer);
	return reconnect ? 1 : 0;
}

/* Sends progress reports on the session. */
int
conductor_report_events(struct conductor_conn *c, json_t *events)
{
	json_t *body = json_pack("{s:O}", "events", events);
	long status;
	int rc;

	rc = conductor_call(c->s, "POST", "/v1/events", c->token, body, &status, NULL);
	json_decref(body);
	return rc;
}

/* ---- commands ------------------------------------------------------------- */

/* Replaces a file of the state directory atomically. */
static int
write_state_file(const struct conductor_client_opts *o, const char *file, const char *text,
		 mode_t mode)
{
	char path[PATH_MAX];

	if (path_in(o, file, path) == -1)
		return -1;
	return file_write_atomic(path, text, strlen(text), mode);
}

/*
 * generate-certificate: CSR from the device key, certificate checked and kept.
 * *transient: the conductor's certificate request failed for a reason time
 * fixes (no answer, 5xx, 429): the command is then not acknowledged as failed.
 */
static int
do_certificate(struct conductor_conn *c, json_int_t id, json_t *result, bool *transient)
{
	const struct conductor_client_opts *o = c->opts;
	char uri[sizeof(PKI_PEERING_URI_PREFIX) + 64], csr_key[PKI_KEY_ID_LEN + 1],
		cert_key[PKI_KEY_ID_LEN + 1], *csr = NULL;
	const char *uris[1] = {uri}, *cert, *ca, *serial;
	json_t *body = NULL, *answer = NULL;
	long status;
	int rc = -1;

	snprintf(uri, sizeof(uri), "%s%s", PKI_PEERING_URI_PREFIX, c->router);
	/* The id from the device key, not by parsing and verifying the CSR it just made. */
	if (certkey_csr(o->certkey, c->router, uris, 1, &csr) == -1 ||
	    certkey_key_id(o->certkey, csr_key) == -1)
		goto out;
	body = json_pack("{s:I, s:s}", "command_id", id, "csr", csr);
	if (conductor_call(c->s, "POST", "/v1/certificate", c->token, body, &status, &answer) ==
	    -1) {
		*transient = status == 0 || status >= 500 || status == 429;
		goto out;
	}
	cert = json_string_value(json_object_get(answer, "certificate"));
	ca = json_string_value(json_object_get(answer, "ca"));
	serial = json_string_value(json_object_get(answer, "serial"));
	if (cert == NULL || ca == NULL || serial == NULL || strlen(serial) >= PKI_SERIAL_HEX_MAX) {
		or_error("the certificate answer lacks certificate, ca or serial");
		goto out;
	}
	/* The issuing CA must be the one this conductor is trusted through. */
	if (pki_verify_chain(cert, c->ca_pem, cert_key) == -1)
		goto out;
	if (strcmp(cert_key, csr_key) != 0) {
		or_error("the certificate is not for this device's key");
		goto out;
	}
	if (write_state_file(o, "conductor-cert.pem", cert, 0644) == -1 ||
	    write_state_file(o, "conductor-ca.pem", ca, 0644) == -1)
		goto out;
	json_object_set_new(result, "serial", json_string(serial));
	rc = 0;
out:
	free(csr);
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* apply-config: the text must match its hash and the schema; stored atomically. */
static int
do_config(struct conductor_conn *c, json_t *payload, json_t *result)
{
	const char *text = json_string_value(json_object_get(payload, "config"));
	const char *sha = json_string_value(json_object_get(payload, "sha256"));
	json_t *config = NULL;
	char actual[65];
	int rc = -1;

	if (text == NULL || sha == NULL || strlen(text) > PEERING_CONFIG_MAX)
		return or_error("apply-config needs config (at most %d bytes) and sha256",
				PEERING_CONFIG_MAX);
	if (sha256_hex(text, strlen(text), actual) == -1)
		return -1;
	if (strcmp(actual, sha) != 0)
		return or_error("the configuration does not match its SHA-256");
	if (json_parse_object(text, strlen(text), PEERING_CONFIG_MAX, &config) == -1 ||
	    peering_config_validate(config, c->router) == -1 ||
	    write_state_file(c->opts, "peering.json", text, 0644) == -1)
		goto out;
	json_object_set_new(result, "sha256", json_string(actual));
	rc = 0;
out:
	json_decref(config);
	return rc;
}

/* set-production-conductor: addresses, secret and root CA into the vault. */
static int
do_production(struct conductor_conn *c, json_t *payload)
{
	struct conductor_target t = {0};
	const char *psk = json_string_value(json_object_get(payload, "psk"));
	const char *ca = json_string_value(json_object_get(payload, "ca"));
	int rc = -1;

	if (psk == NULL || ca == NULL)
		return or_error("set-production-conductor needs addresses, psk and ca");
	if (addresses_from_json(json_object_get(payload, "addresses"), &t) == 0)
		rc = conductor_set_target(c->opts, "production", (const char *const *)t.addresses,
					  t.n_addresses, psk, strlen(psk), ca);
	conductor_target_free(&t);
	return rc;
}

/* POSTs an acknowledgement's body; *answered: the conductor answered (any status). */
static int
ack_send(struct conductor_conn *c, json_int_t id, const json_t *body, bool *answered)
{
	char path[64];
	long status;
	int rc;

	snprintf(path, sizeof(path), "/v1/commands/%lld/ack", (long long)id);
	rc = conductor_call(c->s, "POST", path, c->token, body, &status, NULL);
	*answered = status != 0;
	return rc;
}

/* An acknowledgement's body: ok with its result, or error with the reason. */
static json_t *
ack_body(bool ok, json_t *result, const char *error)
{
	return ok ? json_pack("{s:s, s:O}", "status", "ok", "result", result)
		  : json_pack("{s:s, s:s}", "status", "error", "error", error);
}

/* Acknowledges a command: ok with its result, or error with the reason. */
static int
ack(struct conductor_conn *c, json_int_t id, bool ok, json_t *result, const char *error)
{
	json_t *body = ack_body(ok, result, error);
	bool answered;
	int rc;

	rc = ack_send(c, id, body, &answered);
	json_decref(body);
	return rc;
}

/*
 * Runs a command other than migrate, then acknowledges it; -1 when the acknowledgement
 * failed or the certificate request failed for a reason time fixes (see the header).
 */
int
conductor_execute(struct conductor_conn *c, json_t *command)
{
	json_int_t id = json_integer_value(json_object_get(command, "id"));
	const char *type = json_string_value(json_object_get(command, "type"));
	json_t *payload = json_object_get(command, "payload"), *result = json_object(), *body;
	const char *step = "command";
	bool transient = false, answered;
	char reason[256];
	int rc, done;

	if (id <= 0 || type == NULL || !json_is_object(payload)) {
		json_decref(result);
		return or_error("the conductor sent a malformed command");
	}
	if (strcmp(type, "generate-certificate") == 0) {
		step = "certificate";
		done = do_certificate(c, id, result, &transient);
	} else if (strcmp(type, "apply-config") == 0) {
		step = "configuration";
		done = do_config(c, payload, result);
	} else if (strcmp(type, "set-production-conductor") == 0) {
		step = "production-info";
		done = do_production(c, payload);
	} else {
		done = or_error("unknown command type '%s'", type);
	}
	if (transient) {
		/* Not acknowledged: the conductor sends it again on the next connection. */
		json_decref(result);
		return -1;
	}
	snprintf(reason, sizeof(reason), "%s", done == 0 ? "" : or_errmsg());
	body = ack_body(done == 0, result, reason);
	json_decref(result);
	if (body == NULL)
		return or_error("out of memory");
	rc = ack_send(c, id, body, &answered);
	if (rc == -1 && !answered) {
		/* Perhaps committed: kept to be sent again (an answered error was not). */
		json_decref(c->lost.body);
		c->lost = (struct lost_ack){.id = id, .body = body, .step = step};
		snprintf(c->lost.reason, sizeof(c->lost.reason), "%s", reason);
		return -1;
	}
	json_decref(body);
	if (rc == -1)
		return -1;
	report(c->opts, step, done == 0, done == 0 ? NULL : reason);
	return 0;
}

/*
 * Sends a lost acknowledgement again on a new connection; reports its step
 * once the conductor answered it. 0 when nothing is left to send.
 */
static int
ack_resend(struct conductor_conn *c, struct lost_ack *lost)
{
	bool ok, answered;
	int rc;

	if (lost->body == NULL)
		return 0;
	ok = strcmp(json_string_value(json_object_get(lost->body, "status")), "ok") == 0;
	rc = ack_send(c, lost->id, lost->body, &answered);
	if (rc == -1 && !answered)
		return -1;
	/* Answered: 200 (applied now or before) reports the step; an error means the
	 * command was not acknowledged and the conductor sends it again. */
	if (rc == 0)
		report(c->opts, lost->step, ok, ok ? NULL : lost->reason);
	json_decref(lost->body);
	lost->body = NULL;
	return 0;
}

/* ---- migration ------------------------------------------------------------ */

/* Delivers the migration report kept in the state (to the old conductor); clears it. */
static int
deliver_report(const struct conductor_client_opts *o, struct conductor_conn *on)
{
	struct conductor_target t = {0};
	struct conductor_conn *c = on;
	json_t *st = NULL, *rep, *body = NULL;
	char to[16];
	long status;
	int rc = -1, found;

	if ((found = state_entry(o, "pending_report", &st, &rep)) <= 0)
		return found;
	snprintf(to, sizeof(to), "%s", text_or(json_object_get(rep, "to"), ""));
	body = json_deep_copy(rep);
	json_object_del(body, "to");
	if (json_integer_value(json_object_get(body, "migration_id")) == 0)
		json_object_del(body, "migration_id");
	if (c == NULL &&
	    (conductor_get_target(o, to, &t) == -1 || conductor_connect(o, &t, &c) == -1))
		goto out;
	if (conductor_call(c->s, "POST", "/v1/migration", c->token, body, &status, NULL) == -1 &&
	    status != 404)
		goto out;
	json_object_del(st, "pending_report");
	rc = state_save(o, st);
	log_info("conductor: migration report delivered to the %s conductor", to);
out:
	if (rc == -1)
		log_warn("conductor: migration report not delivered yet: %s", or_errmsg());
	if (c != on)
		conductor_close(c);
	conductor_target_free(&t);
	json_decref(body);
	json_decref(st);
	return rc;
}

/* Records the start of a migration: from the current conductor to addresses. */
static int
migration_begin(const struct conductor_client_opts *o, const char *const *addresses, size_t n,
		unsigned window_s, long long migration_id)
{
	char current[16];
	json_t *st = NULL;
	int rc = -1;

	if (conductor_current(o, current) == -1)
		return -1;
	if (current[0] == '\0')
		return or_error("no conductor to migrate from");
	if (state_load_or_new(o, &st) == -1)
		return -1;
	json_object_set_new(st, "migration",
			    json_pack("{s:I, s:s, s:o, s:I}", "id", (json_int_t)migration_id,
				      "from", current, "addresses", addresses_to_json(addresses, n),
				      "deadline", (json_int_t)(time(NULL) + window_s)));
	if (migration_id > 0)
		json_object_set_new(st, "last_migration_id", json_integer(migration_id));
	rc = state_save(o, st);
	json_decref(st);
	return rc;
}

/* Tries the production conductor until the deadline; *out is the new connection. */
static int
reach_production(const struct conductor_client_opts *o, struct conductor_target *prod,
		 time_t deadline, volatile sig_atomic_t *stop, struct conductor_conn **out)
{
	struct backoff b = {.base_ms = 500, .cap_ms = 5000, .attempt = 0};
	struct conductor_client_opts bounded = *o;
	char last[256] = "the revert window closed before a first attempt";

	for (;;) {
		time_t left = deadline - time(NULL);

		if (left <= 0 || (stop != NULL && *stop))
			break;
		tick(o, NULL);
		bounded.connect_timeout_ms =
			left * 1000 < DEFAULT_CONNECT_MS ? left * 1000 : DEFAULT_CONNECT_MS;
		if (o->connect_timeout_ms && o->connect_timeout_ms < bounded.connect_timeout_ms)
			bounded.connect_timeout_ms = o->connect_timeout_ms;
		if (conductor_connect(&bounded, prod, out) == 0) {
			(*out)->opts = o;
			return 0;
		}
		snprintf(last, sizeof(last), "%s", or_errmsg());
		log_warn("conductor: migrate: %s", last);
		left = deadline - time(NULL);
		if (left <= 0)
			break;
		unsigned wait = retry_wait_ms(&b);
		sleep_ms(wait > left * 1000 ? (unsigned)(left * 1000) : wait, stop);
	}
	return or_error("could not reach the production conductor within the revert window: %s",
			last);
}

/* Carries out the migration recorded in the state (after migration_begin or a restart). */
static int
migration_continue(const struct conductor_client_opts *o, volatile sig_atomic_t *stop)
{
	struct conductor_target prod = {0};
	struct conductor_conn *conn = NULL;
	json_t *st = NULL, *mig, *rep = NULL, *body = NULL;
	const char *from;
	char reason[256] = "";
	json_int_t id;
	bool ok = false;
	long status;
	int rc = -1, found;

	if ((found = state_entry(o, "migration", &st, &mig)) <= 0)
		return found;
	from = json_string_value(json_object_get(mig, "from"));
	id = json_integer_value(json_object_get(mig, "id"));
	if (conductor_get_target(o, "production", &prod) == -1) {
		snprintf(reason, sizeof(reason), "%s", or_errmsg());
	} else {
		/* The migrate command's addresses win over the stored ones. */
		for (size_t i = 0; i < prod.n_addresses; i++)
			free(prod.addresses[i]);
		prod.n_addresses = 0;
		if (addresses_from_json(json_object_get(mig, "addresses"), &prod) == -1 ||
		    reach_production(o, &prod,
				     (time_t)json_integer_value(json_object_get(mig, "deadline")),
				     stop, &conn) == -1)
			snprintf(reason, sizeof(reason), "%s", or_errmsg());
		else
			ok = true;
	}
	if (ok) {
		body = json_pack("{s:I, s:s?}", "migration_id", id, "from", from);
		if (conductor_call(conn->s, "POST", "/v1/migrated-in", conn->token, body, &status,
				   NULL) == -1)
			log_warn("conductor: the new conductor did not take the arrival report: %s",
				 or_errmsg());
		json_object_set_new(st, "current", json_string("production"));
		json_object_set_new(
			st, "production",
			json_pack("{s:O}", "addresses", json_object_get(mig, "addresses")));
	}
	rep = json_pack("{s:s?, s:I, s:s, s:O}", "to", from, "migration_id", id, "status",
			ok ? "succeeded" : "failed", "addresses",
			json_object_get(mig, "addresses"));
	if (!ok)
		json_object_set_new(rep, "reason", json_string(reason));
	json_object_set(st, "pending_report", rep);
	json_object_del(st, "migration");
	if (state_save(o, st) == -1)
		goto out;
	report(o, "migrate", ok, ok ? NULL : reason);
	deliver_report(o, NULL);
	rc = ok ? 0 : or_error("%s", reason);
out:
	conductor_close(conn);
	conductor_target_free(&prod);
	json_decref(body);
	json_decref(rep);
	json_decref(st);
	return rc;
}

/*
 * Before a router-side migrate, when opts->leaving is set: a session of its
 * own with the current conductor for it (the channel's held poll was
 * cancelled, and a session lives only on the TLS connection it was made on).
 * Each request is
 * bounded by LEAVE_TIMEOUT_MS: a conductor that does not answer does not hold
 * up the migration the operator asked for; the caller keeps what it owed.
 */
static void
leave_current(const struct conductor_client_opts *o)
{
	struct conductor_client_opts bounded = *o;
	struct conductor_target t = {0};
	struct conductor_conn *c = NULL;
	char current[16] = "";

	if (bounded.connect_timeout_ms == 0 || bounded.connect_timeout_ms > LEAVE_TIMEOUT_MS)
		bounded.connect_timeout_ms = LEAVE_TIMEOUT_MS;
	/* migration_begin checked that a conductor is current. */
	if (conductor_current(o, current) == -1 || conductor_get_target(o, current, &t) == -1 ||
	    connect_within(&bounded, &t, LEAVE_TIMEOUT_MS, &c) == -1) {
		log_warn("conductor: migrate: %s; what the %s conductor is owed was not delivered "
			 "to it before leaving",
			 or_errmsg(), current[0] ? current : "current");
		goto out;
	}
	leaving(o, c);
out:
	conductor_close(c);
	conductor_target_free(&t);
}

/* Records the migration, then carries it out (see the header). */
int
conductor_migrate(const struct conductor_client_opts *o, const char *const *addresses, size_t n,
		  unsigned window_s, long long migration_id)
{
	struct conductor_target prod = {0};
	int rc = -1;

	if (window_s == 0)
		window_s = CONDUCTOR_DEFAULT_REVERT_WINDOW_S;
	if (addresses == NULL) {
		if (conductor_get_target(o, "production", &prod) == -1)
			return -1;
		addresses = (const char *const *)prod.addresses;
		n = prod.n_addresses;
	}
	/*
	 * Recorded before the current conductor gets what it is owed, so that a
	 * stop meanwhile leaves a migration that resumes at the next start (the
	 * caller's tick learns it is under way and no longer cancels for a stop).
	 */
	if (migration_begin(o, addresses, n, window_s, migration_id) == -1)
		goto out;
	tick(o, NULL);
	if (o->cancel != NULL && *o->cancel) {
		rc = or_error("stopped; the migration resumes at the next start");
		goto out;
	}
	if (o->leaving != NULL) {
		leave_current(o);
		/* The revert window opens now: it is the production conductor's. */
		if (migration_begin(o, addresses, n, window_s, migration_id) == -1)
			goto out;
	}
	rc = migration_continue(o, NULL);
out:
	conductor_target_free(&prod);
	return rc;
}

/* A migrate command: recorded, acknowledged, then carried out by the run loop. */
static int
accept_migrate(struct conductor_conn *c, json_t *command)
{
	json_int_t id = json_integer_value(json_object_get(command, "id"));
	json_t *payload = json_object_get(command, "payload"), *result = json_object(), *st = NULL;
	json_int_t mid = json_integer_value(json_object_get(payload, "migration_id"));
	json_int_t window = json_integer_value(json_object_get(payload, "revert_window"));
	struct conductor_target t = {0};
	bool repeat = false;
	int rc = -1;

	if (state_load_or_new(c->opts, &st) == -1)
		goto out;
	repeat = mid > 0 && json_integer_value(json_object_get(st, "last_migration_id")) == mid;
	if (repeat) {
		/* Done before; the acknowledgement was lost. */
		rc = ack(c, id, true, result, NULL);
		goto out;
	}
	if (mid <= 0 || window < 1 || window > 86400 ||
	    addresses_from_json(json_object_get(payload, "addresses"), &t) == -1) {
		rc = ack(c, id, false, NULL, "malformed migrate command");
		goto out;
	}
	if (migration_begin(c->opts, (const char *const *)t.addresses, t.n_addresses,
			    (unsigned)window, mid) == -1) {
		rc = ack(c, id, false, NULL, or_errmsg());
		goto out;
	}
	json_object_set_new(result, "accepted", json_true());
	rc = ack(c, id, true, result, NULL);
	if (rc == 0)
		rc = 1; /* the caller leaves this conductor now */
out:
	conductor_target_free(&t);
	json_decref(result);
	json_decref(st);
	return rc;
}

/* ---- the run loop --------------------------------------------------------- */

/*
 * Serves one connection until it fails, a migrate starts, the conductor asks for a new
 * connection, or stop; 1: migrate, 2: reconnect at once.
 */
static int
serve(const struct conductor_client_opts *o, struct conductor_conn *c, volatile sig_atomic_t *stop)
{
	while (!*stop) {
		json_t *commands = NULL, *cmd;
		size_t i;
		int rc = 0, polled;

		tick(o, c);
		if (*stop)
			break;
		if ((polled = conductor_poll(c, &commands)) == -1)
			return -1;
		json_array_foreach(commands, i, cmd)
		{
			const char *type = json_string_value(json_object_get(cmd, "type"));

			if (type != NULL && strcmp(type, "migrate") == 0) {
				/* Reports of the steps done here (this answer's too) go here first.
				 */
				leaving(o, c);
				rc = accept_migrate(c, cmd);
			} else {
				rc = conductor_execute(c, cmd);
			}
			if (rc != 0)
				break;
		}
		json_decref(commands);
		if (rc != 0)
			return rc;
		if (polled == 1) {
			log_info("conductor: %s is draining; reconnecting",
				 conductor_conn_address(c));
			return 2;
		}
	}
	(void)o;
	return 0;
}

/*
 * Reconnects with backoff, resumes a recorded migration first, delivers pending reports, serves
 * commands.
 */
int
conductor_run(const struct conductor_client_opts *o, volatile sig_atomic_t *stop)
{
	struct backoff b = {.base_ms = 1000, .cap_ms = 30000, .attempt = 0};
	struct lost_ack lost = {0};
	char current[16];
	int failed = 0; /* -1: a failure that reconnecting does not fix */

	while (!*stop) {
		struct conductor_target t = {0};
		struct conductor_conn *c = NULL;
		json_t *st = NULL;
		char pending_to[16];
		bool migrating;
		int rc;

		if (state_load_or_new(o, &st) == -1) {
			failed = -1;
			break;
		}
		migrating = json_object_get(st, "migration") != NULL;
		snprintf(pending_to, sizeof(pending_to), "%s",
			 text_or(json_object_get(json_object_get(st, "pending_report"), "to"), ""));
		json_decref(st);
		if (migrating) {
			migration_continue(o, stop);
			continue;
		}
		if (conductor_current(o, current) == -1 || current[0] == '\0') {
			failed = or_error("no conductor is stored to connect to");
			break;
		}
		if (conductor_get_target(o, current, &t) == -1) {
			failed = -1;
			break;
		}
		tick(o, NULL);
		rc = conductor_connect(o, &t, &c);
		conductor_target_free(&t);
		if (rc == -1 && *stop)
			break; /* cancelled (o->cancel): nothing failed */
		if (rc == -1) {
			unsigned wait = retry_wait_ms(&b); /* before report: it may call out */

			report(o, "connect", false, or_errmsg());
			/* An assertion that expired unused: the caller fetches a new one. */
			if (conductor_assertion_stale(o, current, 0)) {
				char why[256];

				snprintf(why, sizeof(why), "%s", or_errmsg());
				failed = or_error(
					"%s; the cloud's onboarding assertion has expired", why);
				break;
			}
			sleep_ms(wait, stop);
			continue;
		}
		backoff_reset(&b);
		report(o, "connect", true, NULL);
		/* A report for the conductor just reached goes on this connection. */
		if (pending_to[0] != '\0')
			deliver_report(o, strcmp(pending_to, current) == 0 ? c : NULL);
		rc = ack_resend(c, &lost) == -1 ? -1 : serve(o, c, stop);
		if (rc == -1 && !*stop)
			log_warn("conductor: connection to %s lost: %s", conductor_conn_address(c),
				 or_errmsg());
		if (c->lost.body != NULL) {
			json_decref(lost.body);
			lost = c->lost;
			c->lost.body = NULL;
		}
		conductor_close(c);
		if (rc == -1)
			sleep_ms(backoff_next_ms(&b, -1), stop);
	}
	json_decref(lost.body);
	return failed;
}
