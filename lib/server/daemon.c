/*
 * Server configuration, per-thread database connections and signals for the
 * onramp daemons. Configuration values are checked for type and range here;
 * files are checked by whoever opens them.
 */
#include "server/daemon.h"

#include "core/error.h"
#include "core/file.h"
#include "core/notify.h"
#include "core/secret.h"
#include "server/admin_tokens.h"
#include "server/http_server.h"
#include "server/store.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* See daemon.h: types and ranges here, FILE:LINE in every error. */
int
daemon_config_read(struct config *cfg, const char *section, const char *default_db,
		   struct daemon_config *out)
{
	unsigned long port, threads, max_body, drain, request_timeout;
	const char *level, *db;

	memset(out, 0, sizeof(*out));
	if (config_get_string(cfg, section, "address", "127.0.0.1", &out->address) == -1 ||
	    config_get_uint(cfg, section, "port", 8443, 0, 65535, &port) == -1 ||
	    config_get_string(cfg, section, "cert-file", NULL, &out->cert_file) == -1 ||
	    config_get_string(cfg, section, "key-file", NULL, &out->key_file) == -1 ||
	    config_get_uint(cfg, section, "threads", 0, 0, 256, &threads) == -1 ||
	    config_get_uint(cfg, section, "max-body", 131072, 1024, 16 * 1024 * 1024, &max_body) ==
		    -1 ||
	    config_get_uint(cfg, section, "request-timeout", 30, 1, 3600, &request_timeout) == -1 ||
	    config_get_string(cfg, section, "state-dir", NULL, &out->state_dir) == -1 ||
	    config_get_string(cfg, section, "database", NULL, &db) == -1 ||
	    config_get_string(cfg, section, "log-level", "info", &level) == -1 ||
	    config_get_uint(cfg, section, "drain-timeout", 10, 0, 3600, &drain) == -1)
		return -1;
	if (log_level_parse(level, &out->log_level) == -1) {
		or_error_prefix("log-level");
		return config_error_at(cfg, section, "log-level");
	}
	if (out->state_dir == NULL) {
		or_error("[%s] state-dir is required", section);
		return config_error_at(cfg, section, "state-dir");
	}
	if (out->cert_file == NULL || out->key_file == NULL) {
		or_error("[%s] cert-file and key-file are required", section);
		return config_error_at(cfg, section, out->cert_file ? "key-file" : "cert-file");
	}
	if (db != NULL && snprintf(out->database, sizeof(out->database), "%s", db) >=
				  (int)sizeof(out->database)) {
		or_error("database is too long");
		return config_error_at(cfg, section, "database");
	}
	if (db == NULL && snprintf(out->database, sizeof(out->database), "sqlite:%s/%s",
				   out->state_dir, default_db) >= (int)sizeof(out->database)) {
		or_error("state-dir is too long");
		return config_error_at(cfg, section, "state-dir");
	}
	out->port = (unsigned)port;
	out->threads = (unsigned)threads;
	out->max_body = max_body;
	out->drain_timeout_s = (unsigned)drain;
	out->request_timeout = (unsigned)request_timeout;
	return 0;
}

/* See daemon.h. */
int
daemon_state_path(struct config *cfg, const char *section, const char *key,
		  const struct daemon_config *dc, const char *name, char *out, size_t cap)
{
	const char *value;
	int n;

	if (config_get_string(cfg, section, key, NULL, &value) == -1)
		return -1;
	n = value != NULL ? snprintf(out, cap, "%s", value)
			  : snprintf(out, cap, "%s/%s", dc->state_dir, name);
	if (n < 0 || (size_t)n >= cap) {
		or_error("%s is too long", key);
		return config_error_at(cfg, section, value != NULL ? key : "state-dir");
	}
	return 0;
}

/* See daemon.h. */
int
daemon_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return or_error("cannot block signals");
	return 0;
}

/* See daemon.h. */
int
daemon_wait_signal(void)
{
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	while (sigwait(&set, &sig) != 0)
		;
	return sig;
}

/* See daemon.h. */
int
daemon_thread_store_open(void *arg, void **thread_state)
{
	struct store *st;

	if (store_open(arg, &st) == -1)
		return -1;
	*thread_state = st;
	return 0;
}

/* See daemon.h. */
void
daemon_thread_store_close(void *thread_state)
{
	store_close(thread_state);
}

/* See daemon.h: "SELECT 1" is enough to know the connection and the server answer. */
void
daemon_reply_health(struct http_ctx *ctx, struct store *st)
{
	if (st == NULL || store_exec(st, "SELECT 1", NULL, 0, NULL) == -1) {
		log_warn("healthz: the database does not answer: %s",
			 st ? or_errmsg() : "no connection");
		http_reply_json(ctx, 503, json_pack("{s:s}", "status", "unavailable"));
		return;
	}
	http_reply_json(ctx, 200, json_pack("{s:s}", "status", "ok"));
}

/* GET /healthz of the redirector and the cloud: their loop state is the store. */
static void
handle_healthz(struct http_ctx *ctx, void *arg)
{
	(void)arg;
	daemon_reply_health(ctx, http_ctx_thread_state(ctx));
}

/* The program's routes behind GET /healthz, in one new table (freed by the caller). */
static struct http_route *
routes_with_health(const struct http_route *routes, size_t n)
{
	struct http_route *all = calloc(n + 1, sizeof(*all));

	if (all == NULL)
		return NULL;
	all[0] = (struct http_route){"GET", "/healthz", handle_healthz, NULL};
	memcpy(all + 1, routes, n * sizeof(*routes));
	return all;
}

/*
 * SIGTERM's graceful drain: stop accepting, let what is in flight finish for at most
 * timeout_s, then stop (what is left is cut, and logged).
 */
static void
drain(struct http_server *srv, unsigned timeout_s)
{
	unsigned left;

	http_server_stop_accepting(srv);
	left = http_server_wait_idle(srv, timeout_s * 1000);
	if (left > 0)
		log_warn("drain: %u requests still in flight after %u s, cut", left, timeout_s);
}

/* Opens the database once to bring its schema up to date. */
static int
migrate(const struct daemon_program *prog, const struct daemon_config *dc)
{
	struct store *st;
	int rc;

	if (store_open(dc->database, &st) == -1)
		return or_error_prefix("database");
	rc = store_migrate(st, prog->component, prog->migrations, prog->n_migrations);
	store_close(st);
	return rc == -1 ? or_error_prefix("database schema") : 0;
}

/*
 * init: the state directory, the schema, the program's keys, the first admin
 * token. A database with the 'admin' token is initialised: nothing is
 * touched. Otherwise every step may run again, so an init that failed half
 * way (a key file it could not write, say) can be run again once fixed.
 */
static int
initialise(const struct daemon_program *prog, const struct daemon_config *dc, void *app,
	   const char *token_file)
{
	static const char already[] =
		"already initialised: the database has an 'admin' token (make more with the "
		"admin API)";
	char token[CLOUD_TOKEN_HEX + 1] = "";
	const char *params[1] = {"admin"};
	struct store_result *res = NULL;
	struct store *st = NULL;
	bool exists;
	int rc = -1;

	if (file_ensure_dir(dc->state_dir, 0700) == -1 || migrate(prog, dc) == -1)
		return -1;
	if (store_open(dc->database, &st) == -1)
		return or_error_prefix("database");
	if (store_exec(st, "SELECT 1 FROM admin_tokens WHERE name = $1", params, 1, &res) == -1)
		goto out;
	if (store_rows(res) > 0) {
		or_error("%s", already);
		goto out;
	}
	if (prog->initialise != NULL && prog->initialise(app) == -1)
		goto out;
	if (admin_token_create(st, "admin", "admin", token, &exists) == -1) {
		if (exists)
			or_error("%s", already);
		goto out;
	}
	if (token_file != NULL) {
		/* The token exists in the database now: a failed write must say so. */
		token[CLOUD_TOKEN_HEX] = '\n';
		if (file_write_atomic(token_file, token, sizeof(token), 0600) == -1) {
			or_error_prefix("initialised %s, but the first admin token could not be "
					"written (delete the database and run init again)",
					dc->state_dir);
			goto out;
		}
		fprintf(stderr, "%s: initialised %s; the first admin token is in %s\n", prog->name,
			dc->state_dir, token_file);
	} else {
		fprintf(stderr,
			"%s: initialised %s; the first admin token follows, shown this once\n",
			prog->name, dc->state_dir);
		printf("%s\n", token);
		fflush(stdout);
	}
	rc = 0;
out:
	OPENSSL_cleanse(token, sizeof(token));
	store_result_free(res);
	store_close(st);
	return rc;
}

/* Serves until SIGTERM or SIGINT. */
static int
serve(const struct daemon_program *prog, const struct daemon_config *dc, void *app)
{
	struct http_server_opts opts = {0};
	struct http_server *srv = NULL;
	char status[128];
	const struct http_route *routes;
	struct http_route *all;
	size_t n;
	int sig;

	if (migrate(prog, dc) == -1 || daemon_block_signals() == -1)
		return -1;
	n = prog->routes(app, &routes);
	if ((all = routes_with_health(routes, n)) == NULL)
		return or_error("out of memory");
	opts.address = dc->address;
	opts.port = dc->port;
	opts.cert_file = dc->cert_file;
	opts.key_file = dc->key_file;
	opts.threads = dc->threads;
	opts.max_body = dc->max_body;
	opts.request_timeout_s = dc->request_timeout;
	opts.routes = all;
	opts.n_routes = n + 1;
	opts.thread_init = daemon_thread_store_open;
	opts.thread_fini = daemon_thread_store_close;
	opts.arg = (void *)dc->database;
	if (http_server_start(&opts, &srv) == -1) {
		free(all);
		return or_error_prefix("cannot serve on %s:%u", dc->address, dc->port);
	}
	snprintf(status, sizeof(status), "serving on %s port %u", dc->address,
		 http_server_port(srv));
	notify_ready(status);
	sig = daemon_wait_signal();
	log_info("signal %d: draining (at most %u s), then stopping", sig, dc->drain_timeout_s);
	notify_stopping();
	drain(srv, dc->drain_timeout_s);
	http_server_stop(srv);
	free(all);
	return 0;
}

/* Bad usage: the reason and the usage on stderr; exit status 2. */
static int
usage_error(const struct daemon_program *prog, const char *msg)
{
	fprintf(stderr, "%s: %s\n%s", prog->name, msg, prog->usage);
	return 2;
}

/* See daemon.h. Core dumps are off before anything secret is read. */
int
daemon_main(int argc, char **argv, const struct daemon_program *prog)
{
	const char *config_path = NULL, *token_file = NULL;
	struct daemon_config dc;
	struct config cfg = {0};
	bool init = false, check = false, loaded = false;
	void *app = NULL;
	int rc = 1;

	/* Before any key, token or secret is read: a crash must not write them to disk. */
	if (secret_disable_core_dumps() == -1) {
		fprintf(stderr, "%s: %s\n", prog->name, or_errmsg());
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(prog->usage, stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("%s %s\n", prog->name, prog->version);
			return 0;
		} else if (strcmp(argv[i], "init") == 0 && i == 1) {
			init = true;
		} else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc) {
			token_file = argv[++i];
		} else if (strcmp(argv[i], "--check-config") == 0) {
			check = true;
		} else {
			return usage_error(prog, "unexpected argument");
		}
	}
	if (config_path == NULL)
		return usage_error(prog, "--config FILE is required");
	if (token_file != NULL && !init)
		return usage_error(prog, "--token-file is for init");
	if (check && init)
		return usage_error(prog, "--check-config does not go with init");
	log_init(prog->name, LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	if (config_load(config_path, &cfg) == -1) {
		rc = 2;
		goto out;
	}
	loaded = true;
	/* A check reads what init would: keys that init makes need not exist yet. */
	if (daemon_config_read(&cfg, prog->section, prog->default_db, &dc) == -1 ||
	    prog->configure(&cfg, &dc, init || check, &app) == -1 ||
	    config_check_unused(&cfg) == -1) {
		rc = 2;
		goto out;
	}
	if (check) {
		printf("%s: configuration OK\n", config_path);
		rc = 0;
		goto out;
	}
	log_init(prog->name, LOG_TARGET_STDERR, dc.log_level);
	if ((init ? initialise(prog, &dc, app, token_file) : serve(prog, &dc, app)) == 0)
		rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", prog->name, or_errmsg());
	if (app != NULL)
		prog->release(app);
	if (loaded)
		config_free(&cfg);
	return rc;
}
