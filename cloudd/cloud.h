/*
 * onramp-cloudd, an organisation's cloud: inventory, organisations and sites,
 * claims pushed to the redirector, mutual OCRA authentication of devices,
 * onboarding information and progress (docs/protocol.md sections 2 to 4).
 *
 * Shared by the cloudd files: the loaded configuration and keys (read-only
 * once serving starts, so every event-loop thread may use them) and helpers
 * for device rows and events.
 */
#ifndef ONRAMP_CLOUD_H
#define ONRAMP_CLOUD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/secret.h"
#include "proto/cloud_proto.h"
#include "server/daemon.h"
#include "server/http_server.h"
#include "server/lockout.h"
#include "server/rate_limit.h"
#include "server/store.h"

struct http_ctx;
struct http_route;
struct masterkey;
struct assertion_signer;
struct challenges;

struct cloud_app {
	char master_key_path[DAEMON_PATH_MAX];
	char inventory_key_path[DAEMON_PATH_MAX]; /* RSA private key, PEM */
	char inventory_pub_path[DAEMON_PATH_MAX]; /* its public key, for the factory */
	struct masterkey *mk;			  /* loaded when serving */
	char *inventory_key_pem;		  /* loaded when serving; zeroed on free */
	const char *public_url;			  /* this cloud's origin, for claims */
	char *public_ca_pem;			  /* its trust anchor, for claims */
	unsigned long challenge_lifetime;	  /* seconds */
	unsigned long token_lifetime;		  /* seconds, device tokens */
	unsigned long retry_after;		  /* seconds, for not-ready */
	struct lockout_policy lockout;
	struct rate_limit_policy rate;	   /* of the device endpoints */
	struct rate_limiter *limiter;	   /* made when serving */
	struct challenges *challenges;	   /* made when serving (challenges.h) */
	unsigned long stuck_after;	   /* seconds without progress: a device is stuck */
	unsigned long ui_session_lifetime; /* seconds, dashboard sessions */
	/* The redirector claims are pushed to; url NULL when none. */
	const char *redirector_url;
	char *redirector_ca_pem;
	struct secret redirector_token;
	/* The assertion key (assertion_key.c): loaded on first use, then read-only. */
	struct assertion_signer *assertion_signer;
	char *assertion_cert_pem;
	unsigned long assertion_lifetime; /* seconds */
};

extern const struct store_migration cloud_migrations[];
extern const size_t cloud_n_migrations;

size_t cloud_routes(struct cloud_app *app, const struct http_route **routes);

/* Device endpoints (device_auth.c, device_api.c). */
void cloud_auth_start(struct http_ctx *ctx, void *arg);
void cloud_auth_finish(struct http_ctx *ctx, void *arg);
void cloud_device_onboarding(struct http_ctx *ctx, void *arg);
void cloud_device_events(struct http_ctx *ctx, void *arg);

/* The admin API (admin_api.c), and its device and claim endpoints (admin_devices.c). */
void cloud_admin(struct http_ctx *ctx, void *arg);
struct api_path;
struct admin_who;
void cloud_admin_devices(struct http_ctx *ctx, struct cloud_app *app, struct store *st,
			 const struct admin_who *who, const struct api_path *p);

/* GET /v1/admin/fleet: stages per site, stuck devices, active alarms (admin_fleet.c). */
void cloud_admin_fleet(struct http_ctx *ctx, struct cloud_app *app, struct store *st);

/*
 * admin_alarms.c: the alarms devices raised and neither they nor an operator cleared, oldest
 * raise first, each {"id","serial","severity","alarm","since","acknowledged"} (*out a new
 * array); and /v1/admin/alarms[/history|/ID/ack|/ID/clear].
 */
int cloud_active_alarms(struct store *st, json_t **out);
void cloud_admin_alarms(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
			const struct api_path *p);

/*
 * The dashboard (ui.c, ui_session.c): GET /ui/... pages, and its session
 * endpoints under /ui/api/.
 */
void cloud_ui(struct http_ctx *ctx, void *arg);
bool cloud_ui_session_api(struct http_ctx *ctx, struct cloud_app *app, struct store *st,
			  const char *what);

/*
 * The dashboard session of a request (its cookie), for the admin API: 1 with
 * *who filled (and the session's CSRF token in csrf when not NULL), a change
 * (not GET) only with the session's X-CSRF-Token; 0 when the request carries
 * no session cookie; -1 when refused or failed (answered).
 */
int cloud_ui_session(struct http_ctx *ctx, struct store *st, struct admin_who *who,
		     char csrf[CLOUD_TOKEN_HEX + 1]);

/*
 * Makes sure app holds the assertion key: loads it from the database, or makes
 * and stores it first (sealed under the master key). Safe from any thread.
 */
int cloud_assertion_key(struct cloud_app *app, struct store *st);

/* GET /v1/admin/assertion-cert: the assertion certificate, for conductors to trust. */
void cloud_admin_assertion_cert(struct http_ctx *ctx, struct cloud_app *app, struct store *st);

/*
 * Pushes a claim to the redirector (PUT, proven by the device's claim_secret;
 * NULL for a device that has none, which the redirector refuses) or removes
 * it (DELETE); *detail says why not.
 */
int cloud_redirector_claim(const struct cloud_app *app, const char *serial, bool claim,
			   const char *claim_secret, char *detail, size_t cap);

/*
 * Records an event of a device (source "device" or "cloud") and moves its
 * stage and last error: stage becomes `stage` when given, a failed outcome
 * becomes the last error "STEP: reason".
 */
int cloud_event(struct store *st, const char *serial, time_t when, const char *source,
		const char *step, const char *outcome, const char *reason, const char *stage);

/* Replies 500 "internal" and logs what failed (the or_errmsg() of the cause). */
void cloud_internal(struct http_ctx *ctx, const char *what);
/* Runs handler(ctx, arg) inside one transaction of the loop's store, committed after it. */
void cloud_transaction(struct http_ctx *ctx, void *arg, http_handler handler);

/* 1 when the query returns a row, 0 when none, -1 on a database error. */
int cloud_exists(struct store *st, const char *sql, const char *const *params, size_t n);

/* Decimal text of a time, for statement parameters. */
#define CLOUD_NUM_LEN 24
void cloud_num(long long v, char *out);

#endif
