/*
 * onramp-conductord: a staging or production conductor (docs/conductor.md).
 *   onramp-conductord init --config FILE [--token-file FILE]
 *   onramp-conductord run --config FILE
 * init makes the state directory (master key, root CA, server certificate,
 * database schema, first admin token); run serves the router API and the
 * admin API until SIGTERM or SIGINT.
 */
#include "conductor.h"
#include "nonces.h"

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/notify.h"
#include "core/secret.h"
#include "core/x509.h"
#include "poll.h"
#include "server/http_server.h"
#include "server/store.h"
#include "server/store_listen.h"

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ONRAMP_VERSION
#define ONRAMP_VERSION "dev"
#endif

static const char usage_text[] =
	"usage: onramp-conductord init --config FILE [--token-file FILE]\n"
	"       onramp-conductord run --config FILE\n"
	"       onramp-conductord --config FILE --check-config\n"
	"\n"
	"A conductor onboards routers (staging role) or runs them (production role).\n"
	"  init   create the state directory: master key, root CA (made or imported),\n"
	"         TLS server certificate, database schema and the first admin token,\n"
	"         printed once (or written to --token-file, mode 0600)\n"
	"  run    serve the router API and the admin API until SIGTERM, then drain:\n"
	"         stop accepting, answer held polls, finish requests (drain-timeout)\n"
	"  --check-config  check the configuration and exit (0, or 2 naming FILE:LINE)\n"
	"See docs/conductor.md for the configuration file.\n";

/* Gives each event loop its own database connection. */
static int
thread_init(void *arg, void **thread_state)
{
	struct conductor *c = arg;
	struct worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return or_error("out of memory");
	w->c = c;
	if (store_open(c->set.database, &w->db) == -1) {
		free(w);
		return or_error_prefix("conductor database");
	}
	*thread_state = w;
	return 0;
}

/* Closes a loop's database connection when the loop stops. */
static void
thread_fini(void *thread_state)
{
	struct worker *w = thread_state;

	if (w == NULL)
		return;
	store_close(w->db);
	free(w);
}

/*
 * The notification listener's callback: a command was queued for router on some instance (NULL:
 * notifications may have been lost, so every held poll looks again).
 */
static void
wake_from_database(const char *router, void *arg)
{
	struct conductor *c = arg;

	if (router == NULL)
		poll_wake_all(c->polls);
	else
		poll_wake(c->polls, router);
}

/*
 * SIGTERM's graceful drain: both listeners stop accepting, held polls are answered so that
 * their routers poll again at once (through a balancer, on another instance), and requests in
 * flight get drain-timeout seconds to finish (the admin API's get theirs after the routers'); what
 * is left is cut, and logged.
 */
static void
drain(struct conductor *c, struct http_server *routers, struct http_server *admin)
{
	unsigned left, budget_ms = c->set.drain_timeout_s * 1000;

	http_server_stop_accepting(routers);
	http_server_stop_accepting(admin);
	poll_release_all(c->polls);
	/* the admin API's requests are short; they had the routers' wait to finish already */
	left = http_server_wait_idle(routers, budget_ms);
	left += http_server_wait_idle(admin, left > 0 ? 0 : budget_ms);
	if (left > 0)
		log_warn("drain: %u requests still in flight after %u s, cut", left,
			 c->set.drain_timeout_s);
}

/* Writes the ports actually listened on (for port 0) atomically, for tests and scripts. */
static int
write_ports(const char *path, unsigned port, unsigned admin_port)
{
	char text[96];
	int len =
		snprintf(text, sizeof(text), "{\"port\":%u,\"admin_port\":%u}\n", port, admin_port);

	return file_write_atomic(path, text, (size_t)len, 0644);
}

/*
 * Runs both HTTPS servers until SIGTERM or SIGINT, then stops them (held polls see their clients
 * go).
 */
static int
serve(struct conductor *c)
{
	struct http_server_opts ropts = {0}, aopts = {0};
	struct http_server *routers = NULL, *admin = NULL;
	struct store *db = NULL;
	sigset_t sigs;
	char status[160];
	int sig, rc = -1;

	/* Block the stop signals here so that every server thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (conductor_db_open(&c->set, &db) == -1)
		return -1;
	store_close(db);
	if (store_listen(c->set.database, CONDUCTOR_WAKE_CHANNEL, wake_from_database, c,
			 &c->listener) == -1)
		return or_error_prefix("conductor database");
	ropts.address = c->set.listen;
	ropts.port = c->set.port;
	ropts.cert_file = c->server_cert_path;
	ropts.key_file = c->server_key_path;
	ropts.threads = c->set.threads;
	ropts.routes = router_routes;
	ropts.n_routes = n_router_routes;
	ropts.thread_init = thread_init;
	ropts.thread_fini = thread_fini;
	ropts.arg = c;
	ropts.timeout_s = c->set.poll_timeout_s + 30;
	ropts.request_timeout_s = c->set.request_timeout_s;
	aopts = ropts;
	aopts.address = c->set.admin_listen;
	aopts.port = c->set.admin_port;
	aopts.threads = 1;
	aopts.routes = admin_routes;
	aopts.n_routes = n_admin_routes;
	aopts.timeout_s = 0;
	if (http_server_start(&ropts, &routers) == -1 || http_server_start(&aopts, &admin) == -1)
		goto out;
	log_info("conductor %s (%s) serving routers on %s port %u, admin on %s port %u",
		 c->set.name, c->set.role == ROLE_PRODUCTION ? "production" : "staging",
		 c->set.listen, http_server_port(routers), c->set.admin_listen,
		 http_server_port(admin));
	if (c->set.admin_port_file != NULL &&
	    write_ports(c->set.admin_port_file, http_server_port(routers),
			http_server_port(admin)) == -1)
		goto out;
	snprintf(status, sizeof(status), "conductor %s serving routers on port %u", c->set.name,
		 http_server_port(routers));
	notify_ready(status);
	while (sigwait(&sigs, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
		;
	log_info("signal %d: draining (at most %u s), then stopping", sig, c->set.drain_timeout_s);
	notify_stopping();
	drain(c, routers, admin);
	rc = 0;
out:
	http_server_stop(admin);
	http_server_stop(routers);
	store_listen_stop(c->listener);
	c->listener = NULL;
	return rc;
}

/* Parses the command line and the configuration, then runs init or run. */
int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"token-file", required_argument, NULL, 't'},
		{"check-config", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL, *token_file = NULL, *command;
	struct conductor c;
	bool check = false;
	int opt, rc = 1;

	memset(&c, 0, sizeof(c));
	log_init("onramp-conductord", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	/* Before any key, token or secret is read: a crash must not write them to disk. */
	if (secret_disable_core_dumps() == -1) {
		log_error("%s", or_errmsg());
		return 1;
	}
	while ((opt = getopt_long(argc, argv, "c:t:hV", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("onramp-conductord %s\n", ONRAMP_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc - (check ? 0 : 1) || config == NULL) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (check) {
		if (settings_load(config, &c.set) == -1) {
			fprintf(stderr, "onramp-conductord: %s\n", or_errmsg());
			return 2;
		}
		printf("%s: configuration OK\n", config);
		settings_free(&c.set);
		return 0;
	}
	command = argv[optind];
	if (strcmp(command, "init") != 0 && strcmp(command, "run") != 0) {
		fprintf(stderr, "onramp-conductord: unknown command '%s'\n", command);
		return 2;
	}
	if (settings_load(config, &c.set) == -1) {
		fprintf(stderr, "onramp-conductord: %s\n", or_errmsg());
		return 2;
	}
	log_init("onramp-conductord", LOG_TARGET_STDERR, c.set.log_level);
	if (strcmp(command, "init") == 0) {
		rc = conductor_init(&c.set, token_file) == 0 ? 0 : 1;
	} else if (token_file != NULL) {
		fprintf(stderr, "onramp-conductord: --token-file is for init\n");
		rc = 2;
	} else if (conductor_load(&c) == 0 && poll_registry_new(&c.polls) == 0 &&
		   rate_limiter_new(&c.set.rate, &c.limiter) == 0 && nonces_new(&c.nonces) == 0) {
		rc = serve(&c) == 0 ? 0 : 1;
	}
	if (rc == 1)
		fprintf(stderr, "onramp-conductord: %s\n", or_errmsg());
	poll_registry_free(c.polls);
	rate_limiter_free(c.limiter);
	nonces_free(c.nonces);
	conductor_unload(&c);
	settings_free(&c.set);
	return rc;
}
