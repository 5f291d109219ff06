/*
 * onramp-conductord: what its files share. One process serves two HTTPS
 * listeners: the router API (/v1/..., routers and peer conductors, reached
 * through proxies) and the admin API (/admin/v1/..., operators through
 * onrampctl, bearer tokens). Every request is served on the event loop that
 * accepted it, with that loop's own database connection (struct worker).
 * There is no per-router thread and no per-router state in memory except a
 * held command poll (poll.h).
 */
#ifndef ONRAMP_CONDUCTOR_H
#define ONRAMP_CONDUCTOR_H

#include "asset_state.h"
#include "core/log.h"
#include "server/http_server.h"
#include "server/rate_limit.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct masterkey;
struct pki_ca;
struct poll_registry;
struct store;
struct store_listener;

#define CONDUCTOR_MAX_NAMES 16	  /* server names / addresses in the TLS certificate */
#define CONDUCTOR_MAX_ADDRESSES 4 /* addresses of a migration target */
#define CONDUCTOR_ERROR_MAX 256	  /* longest last_error or reason kept */
#define CONDUCTOR_NONCE_TTL_S 60  /* a hello's nonce lives this long */
#define CONDUCTOR_SESSION_TTL_S (24 * 3600)
/* PostgreSQL notification channel: "a command was queued for the router named in the payload". */
#define CONDUCTOR_WAKE_CHANNEL "onramp_conductor_wake"

/* The configuration file (docs/conductor.md) with its defaults applied. */
struct conductor_settings {
	struct config *cfg; /* owns the strings below */
	enum asset_role role;
	const char *name;      /* CN of the server certificate, base of the CA's name */
	const char *state_dir; /* master.key, ca.pem, ca.key, server.pem, server.key */
	const char *database;  /* store URL; default sqlite:STATE_DIR/conductor.db */
	char *database_owned;
	const char *listen;
	unsigned port;
	const char *server_names[CONDUCTOR_MAX_NAMES];
	size_t n_server_names;
	unsigned threads;
	unsigned poll_timeout_s;
	unsigned drain_timeout_s; /* SIGTERM waits this long for requests in flight */
	unsigned request_timeout_s;
	unsigned revert_window_s;
	unsigned cert_days;
	unsigned renew_before_days;
	unsigned ca_days;
	const char *ca_import_cert, *ca_import_key;
	const char *admin_listen;
	unsigned admin_port;
	const char *admin_port_file; /* where `run` writes the ports it listens on (tests) */
	enum log_level log_level;
	struct rate_limit_policy rate; /* of the router API's hello and auth */
};

int settings_load(const char *path, struct conductor_settings *out);
void settings_free(struct conductor_settings *s);

/* The running conductor: settings plus what init made. */
struct conductor {
	struct conductor_settings set;
	struct pki_ca *ca;
	struct masterkey *mk;
	struct poll_registry *polls;
	struct store_listener *listener; /* PostgreSQL: wake-ups from the other instances */
	struct rate_limiter *limiter;	 /* the router API's unauthenticated endpoints */
	struct nonces *nonces;		 /* the hello nonces this instance issued */
	char server_cert_path[4096], server_key_path[4096];
};

/* One event loop's state: its database connection. */
#define DEFERRED_WAKES 16

struct worker {
	struct conductor *c;
	struct store *db;
	/*
	 * Polls to wake once the admin request's transaction is committed (in this
	 * process, without PostgreSQL's NOTIFY, which waits for the commit itself).
	 */
	char deferred[DEFERRED_WAKES][64]; /* router names: 1 to 63 characters */
	unsigned n_deferred;
	bool deferred_all;
};

/* Wakes the polls an admin request queued commands for, after its commit. */
void command_wake_deferred(struct worker *w);

/* Paths under the state directory. */
int state_path(const struct conductor_settings *s, const char *file, char *out, size_t len);

/* init.c */
int conductor_init(const struct conductor_settings *s, const char *token_file);
int conductor_load(struct conductor *c);
void conductor_unload(struct conductor *c);
int conductor_renew_server_cert(struct conductor *c, bool force);

/* schema.c */
int conductor_db_open(const struct conductor_settings *s, struct store **out);

/* Small helpers (util.c). */
void fmt_i64(long long v, char out[24]);
long long parse_i64(const char *text);	 /* 0 for NULL or junk */
int random_hex(size_t bytes, char *out); /* out has 2*bytes+1 chars */
bool valid_asset_id(const char *asset_id);
/* Checks a JSON array of 1..max "host:port" strings; copies pointers into out. */
int parse_addresses(json_t *array, const char *what, const char **out, size_t max, size_t *n);
/* The request's worker, or NULL after replying 500. */
struct worker *worker_of(struct http_ctx *ctx);
/* GET /healthz on both listeners: 200 when this loop's database connection answers. */
void handle_healthz(struct http_ctx *ctx, void *arg);

/* router_api.c, admin_api.c, peer.c: route tables. */
extern const struct http_route router_routes[];
extern const size_t n_router_routes;
extern const struct http_route admin_routes[];
extern const size_t n_admin_routes;

/*
 * router_api.c: checks the proof of a pre-shared secret in body (psk_id,
 * nonce, proof): the id names a secret of this conductor, the nonce was given
 * to subject and is consumed, and the HMAC over nonce, subject and this
 * connection's exporter matches. Replies on failure; true when it holds.
 */
bool check_psk_proof(struct http_ctx *ctx, struct worker *w, json_t *body, const char *subject);

/* admin_api.c: the worker of a request with a valid admin token, or NULL after replying. */
struct worker *admin_of(struct http_ctx *ctx);
/* admin_api.c: logs the failure of an admin request and answers 500 with it. */
void admin_reply_internal(struct http_ctx *ctx);
/* The name of the conductor's one admin token, in the audit and on acknowledged alarms. */
#define CONDUCTOR_ADMIN_NAME "admin"

/*
 * admin_alarms.c: GET /admin/v1/alarms (active), GET /admin/v1/alarms/history (cleared),
 * POST /admin/v1/alarms/ID/ack and /clear.
 */
void handle_alarms(struct http_ctx *ctx, void *arg);
void handle_alarm_history(struct http_ctx *ctx, void *arg);
void handle_alarm_action(struct http_ctx *ctx, void *arg);

/*
 * cloud_trust.c: whether the device (key_id, from its CSR) may claim router r's asset ID:
 * true when r is bound already, no cloud trust is set, the secret proved is r's own, or the
 * body's onboarding assertion checks out. Replies 403 (or 400/500) when not.
 */
struct router_row;
bool cloud_trust_admits(struct http_ctx *ctx, struct worker *w, const struct router_row *r,
			json_t *body, const char *key_id);
/*
 * cloud_trust.c: the serial the device (key_id) claimed for asset_id, as text for an alarm:
 * "serial S (...)" when the body's onboarding assertion verifies against the trusted cloud
 * certificate for this asset ID, key and conductor; otherwise "serial unknown (why)". A
 * conductor learns a serial from nothing else: the hello and auth carry none.
 */
void cloud_trust_claimed_serial(struct worker *w, json_t *body, const char *asset_id,
				const char *key_id, char *out, size_t len);
/* PUT or GET /admin/v1/trust-cloud. */
void cloud_trust_handle(struct http_ctx *ctx, void *arg);

/* peer.c: asks the conductor at one of addresses whether it has router provisioned. */
int peer_check_router(struct worker *w, const char *const *addresses, size_t n, const char *ca_pem,
		      const char *psk_text, const char *router, const char *asset_id);
void peer_handle_router(struct http_ctx *ctx, void *arg);

#endif
