/*
 * What the onramp HTTPS daemons (redirector, cloud) share around their own
 * logic: the server part of their configuration, one database connection per
 * event-loop thread, and waiting for SIGTERM or SIGINT.
 */
#ifndef ONRAMP_DAEMON_H
#define ONRAMP_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/log.h"

#define DAEMON_PATH_MAX 4096

/* The [section] keys every daemon has (documented in each daemon's man page). */
struct daemon_config {
	const char *address;		/* address = 127.0.0.1 */
	unsigned port;			/* port = 8443 (0: any, logged) */
	const char *cert_file;		/* cert_file: PEM certificate chain */
	const char *key_file;		/* key_file: PEM private key */
	unsigned threads;		/* threads = 0: one event loop per core */
	size_t max_body;		/* max_body = 131072 */
	unsigned request_timeout;	/* request-timeout = 30 (seconds) */
	const char *state_dir;		/* state_dir: keys and the SQLite database */
	char database[DAEMON_PATH_MAX]; /* database: "sqlite:PATH" or a PostgreSQL conninfo */
	enum log_level log_level;	/* log_level = info */
	unsigned drain_timeout_s; /* drain_timeout = 10: SIGTERM waits this long for requests */
};

/*
 * Reads the server keys of `section`; default_db is the database file name
 * under state_dir when no database is configured. Paths are checked later, by
 * whoever opens them.
 */
int daemon_config_read(struct config *cfg, const char *section, const char *default_db,
		       struct daemon_config *out);

/* A path under state_dir, or the configured value of key when there is one. */
int daemon_state_path(struct config *cfg, const char *section, const char *key,
		      const struct daemon_config *dc, const char *name, char *out, size_t cap);

/* Blocks SIGTERM, SIGINT and SIGPIPE in this thread and the threads it starts. */
int daemon_block_signals(void);

/* Waits for SIGTERM or SIGINT (blocked beforehand); returns the signal number. */
int daemon_wait_signal(void);

struct http_ctx;
struct http_route;
struct store;
struct store_migration;

/*
 * A daemon's program description for daemon_main(), which does the rest:
 *   PROG init --config FILE [--token-file FILE]
 *                             state directory, database schema, the program's
 *                             own keys (initialise), a first admin token written
 *                             to FILE (0600) or else printed once on stdout;
 *   PROG --config FILE --check-config
 *                             checks the configuration as init reads it; exit 0
 *                             or 2 with FILE:LINE;
 *   PROG --config FILE        serves until SIGTERM or SIGINT.
 */
struct daemon_program {
	const char *name;	/* "onramp-cloudd" */
	const char *version;	/* --version */
	const char *section;	/* its configuration section, "cloudd" */
	const char *default_db; /* database file under state_dir, "cloud.db" */
	const char *usage;	/* --help text */
	const char *component;	/* migrations component name */
	const struct store_migration *migrations;
	size_t n_migrations;
	/* Reads the program's own keys into *app (passed to every route); runs at init too. */
	int (*configure)(struct config *cfg, const struct daemon_config *dc, bool init, void **app);
	/* At init, after migrations: makes the program's keys (may be NULL). */
	int (*initialise)(void *app);
	/* The routes to serve; their arg fields are filled by the program. */
	size_t (*routes)(void *app, const struct http_route **routes);
	void (*release)(void *app);
};

/* The whole main() of a daemon; returns the exit status (0, 1 failure, 2 bad usage). */
int daemon_main(int argc, char **argv, const struct daemon_program *prog);

/*
 * GET /healthz for load balancers: 200 {"status":"ok"} when st answers a trivial query, else
 * 503 {"status":"unavailable"}. No authentication; it tells nothing but that.
 */
void daemon_reply_health(struct http_ctx *ctx, struct store *st);

/* http_server thread_init / thread_fini: arg is the database string, the state a store. */
int daemon_thread_store_open(void *arg, void **thread_state);
void daemon_thread_store_close(void *thread_state);

#endif
