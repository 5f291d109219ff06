/*
 * The router's half of the conductor protocol (docs/protocol-conductor.md):
 * authenticate with the pre-shared secret, keep one outbound HTTPS
 * connection (through the management proxy) long-polling for commands, run
 * each command and acknowledge it, and migrate to the production conductor
 * with a revert window.
 *
 * What it trusts: a conductor only through the root CA it was given for it
 * (host name or address checked, by lib/http_client); commands only from
 * that authenticated connection. It keeps:
 *   STATE_DIR/conductor.json        which conductor is current, their addresses,
 *                                   a migration under way, a report not yet delivered
 *   STATE_DIR/conductor-cert.pem    the certificate issued to the router (its key is
 *                                   the certkey: in the TPM when there is one)
 *   STATE_DIR/conductor-ca.pem      the CA that issued it
 *   STATE_DIR/peering.json          the peering configuration, exactly as sent
 *   vault: conductor-staging-psk, conductor-production-psk (secrets) and
 *          conductor-staging-ca, conductor-production-ca (trust anchors)
 * Every file is replaced atomically; a command done twice does no harm.
 */
#ifndef ONRAMP_CONDUCTOR_CLIENT_H
#define ONRAMP_CONDUCTOR_CLIENT_H

#include "core/secret.h"
#include "net/http_client.h"

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct certkey;
struct conductor_conn;
struct vault;

#define CONDUCTOR_MAX_TARGET_ADDRESSES 4
#define CONDUCTOR_DEFAULT_REVERT_WINDOW_S 300

/* Reports each step (for the agent's progress): "connect", "certificate",
 * "configuration", "production-info", "migrate". reason is NULL on success. */
typedef void (*conductor_report_fn)(void *arg, const char *step, bool ok, const char *reason);

struct conductor_client_opts {
	const char *state_dir;
	const char *asset_id;
	const struct http_proxy *proxy; /* NULL: direct */
	struct certkey *certkey;	/* the device key: proves the device, signs CSRs */
	struct vault *vault;
	long connect_timeout_ms; /* 0: 10000 */
	unsigned poll_wait_s;	 /* 0: the conductor's poll timeout */
	conductor_report_fn report;
	void *report_arg;
	/*
	 * Optional, with report_arg: called on conductor_run's thread before each
	 * long poll (c: the open connection, e.g. for conductor_report_events) and
	 * before each attempt to connect or to reach the production conductor
	 * (c: NULL). The agent sends its progress reports from here.
	 */
	void (*tick)(void *arg, struct conductor_conn *c);
	/*
	 * Optional, with report_arg: called on conductor_run's thread with the
	 * open connection when a migrate command arrives, before it is acted on:
	 * the router leaves this conductor next, so the caller delivers what it
	 * still owes it here (the agent: its reports of the steps done there,
	 * which a tick would only send before the next poll, on production).
	 * conductor_migrate calls it too, on a session it opens to the current
	 * conductor for it, each request there bounded by a few seconds (not
	 * called when that conductor does not answer in time).
	 */
	void (*leaving)(void *arg, struct conductor_conn *c);
	/* Optional: once *cancel is non-zero, a request in progress (a held poll too) ends. */
	volatile sig_atomic_t *cancel;
};

/* One conductor as the router knows it. */
struct conductor_target {
	char *addresses[CONDUCTOR_MAX_TARGET_ADDRESSES]; /* "host:port", tried in order */
	size_t n_addresses;
	char *ca_pem;	    /* the root CA it is trusted through */
	struct secret psk;  /* "orpsk-..." */
	char *assertion;    /* the cloud's onboarding assertion for it, until used; NULL: none */
	char asset_id[129]; /* the asset ID to present: the cloud's, else opts->asset_id */
};
void conductor_target_free(struct conductor_target *t);

/*
 * Stores a conductor's addresses, secret and root CA ("staging" from the
 * cloud's onboarding information, "production" from the conductor's
 * set-production-conductor command). The first one stored becomes current.
 */
int conductor_set_target(const struct conductor_client_opts *opts, const char *which,
			 const char *const *addresses, size_t n, const char *psk, size_t psk_len,
			 const char *ca_pem);
int conductor_get_target(const struct conductor_client_opts *opts, const char *which,
			 struct conductor_target *out);

/*
 * Stores the cloud's onboarding assertion for a stored conductor ("staging"),
 * with its expiry, and the asset ID the cloud knows the device by (NULL or
 * "": opts->asset_id stays). The assertion is sent with the next
 * authentication there and dropped once one succeeds (the conductor has then
 * bound the asset ID to the device key). Call after conductor_set_target.
 */
int conductor_set_assertion(const struct conductor_client_opts *opts, const char *which,
			    const char *asset_id, const char *assertion, time_t expires);

/* True when an unused assertion is stored for `which` and expires within margin_s. */
bool conductor_assertion_stale(const struct conductor_client_opts *opts, const char *which,
			       time_t margin_s);

/* The current conductor: "staging" or "production", or "" when none is stored. */
int conductor_current(const struct conductor_client_opts *opts, char which[16]);

/* 1 with its deadline when a migration is recorded (under way), 0 when none. */
int conductor_migration_pending(const struct conductor_client_opts *opts, time_t *deadline);

struct conductor_conn; /* an authenticated session with one conductor */

/* Connects to the first of the target's addresses that answers and authenticates. */
int conductor_connect(const struct conductor_client_opts *opts, const struct conductor_target *t,
		      struct conductor_conn **out);
const char *conductor_conn_router(const struct conductor_conn *c); /* name given by the conductor */
const char *conductor_conn_address(const struct conductor_conn *c);
void conductor_close(struct conductor_conn *c);

/*
 * One long poll: *commands is the array of commands (possibly empty). Returns 1 instead of 0
 * when the conductor asked the router to reconnect at once ("reconnect": true: the instance
 * is draining; do the commands, then connect again, through a balancer to another instance).
 */
int conductor_poll(struct conductor_conn *c, json_t **commands);

/*
 * Runs one command other than migrate and acknowledges it (ok or error). -1
 * when the acknowledgement failed or the certificate request met a failure
 * time fixes (not acknowledged then: the conductor sends it again); an
 * acknowledgement whose answer was lost is kept on the connection, and
 * conductor_run sends it again on the next one before reporting its step.
 */
int conductor_execute(struct conductor_conn *c, json_t *command);

/* Sends progress reports: [{"step","outcome","reason","time"}]. */
int conductor_report_events(struct conductor_conn *c, json_t *events);

/*
 * Migrates from the current conductor to the production one at addresses
 * (NULL: the stored production addresses), with its stored secret and CA:
 * keeps trying for window_s seconds; on success the production conductor
 * becomes current and both conductors are told; otherwise the router stays
 * with (returns to) the old one, which is told why. migration_id is the
 * conductor's (0 when the router decided, e.g. onrampctl on the router).
 * The migration is recorded first (a stop from then on leaves it to resume at
 * the next start); then, when opts->leaving is set, the current conductor gets
 * what the caller owes it (see leaving), before the revert window opens; one
 * that does not answer within a few seconds does not hold the migration up.
 * Returns 0 when migrated; -1 with the reason in or_errmsg() otherwise.
 * The agent's `onrampctl migrate conductor ADDR [ADDR]` calls this.
 */
int conductor_migrate(const struct conductor_client_opts *opts, const char *const *addresses,
		      size_t n, unsigned window_s, long long migration_id);

/*
 * The whole router side: keeps a channel to the current conductor, runs
 * its commands, migrates when told, reconnects with backoff, until *stop.
 */
int conductor_run(const struct conductor_client_opts *opts, volatile sig_atomic_t *stop);

/*
 * What this thread's last conductor request got: the HTTP status (0 when no
 * answer came, then http_err says why), the server's error code ("" when
 * none) and its Retry-After (-1 when none). Thread-local, like or_error():
 * read it right after a call failed, e.g. to back off or to count failures
 * by kind. conductor_run and the migrate's retries honour its Retry-After.
 */
struct conductor_answer {
	long status;
	enum http_err http_err;
	char code[32];
	long retry_after_s;
	/*
	 * Set by conductor_connect when its last address answered its
	 * authentication with an error (code): that address and the asset ID
	 * presented there, e.g. for the agent's duplicate/unknown asset alarms.
	 */
	char address[300];
	char asset_id[129];
};
void conductor_last_answer(struct conductor_answer *out);

/* ---- lower level, shared with the conductor's own peer queries ---------- */

/* Opens an HTTPS session to "host:port" trusting ca_pem only. */
int conductor_session_open(const char *address, const char *ca_pem, const struct http_proxy *proxy,
			   long connect_timeout_ms, long total_timeout_ms,
			   struct http_session **out);

/*
 * One JSON request. 0 on a 2xx answer (*answer: its object, or NULL when
 * empty); -1 otherwise with or_error() saying what the server or the network
 * said, and *status (0 when no answer came). answer may be NULL.
 */
int conductor_call(struct http_session *s, const char *method, const char *path, const char *bearer,
		   const json_t *body, long *status, json_t **answer);

/*
 * POST /v1/hello with {hello_key: hello_value}, then fills body with psk_id,
 * nonce and the proof over subject bound to this session's TLS exporter.
 * nonce_hex gets the nonce (for binding a device CSR to it).
 */
int conductor_prove(struct http_session *s, const char *hello_key, const char *hello_value,
		    const char *subject, const struct secret *psk, json_t *body,
		    char nonce_hex[65]);

#endif
