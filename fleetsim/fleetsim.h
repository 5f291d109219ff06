/*
 * onramp-fleetsim: N virtual routers running the real device protocol end to
 * end (phone home, mutual OCRA, onboarding information, staging conductor,
 * certificate, configuration, production details, migrate, running) through
 * a real proxy, with libonramp's own device code (proto/cloud_client,
 * proto/conductor_client): the simulator only drives the steps, as the
 * agent's onboarding worker does. See docs/fleetsim.md.
 *
 * Each virtual router is a directory made by the factory (onrampctl factory
 * init-device --software: its OCRA key and certificate key in software,
 * explicitly) and keeps its conductor state there, as the agent does; in
 * memory only a struct fleet_router per router.
 */
#ifndef ONRAMP_FLEETSIM_H
#define ONRAMP_FLEETSIM_H

#include "net/http_client.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#define FLEET_REASON_MAX 96
#define FLEET_SERIAL_MAX 64

/* What every virtual router is run with (read-only while routers run). */
struct fleet_conf {
	const char *redirector_url;
	char *redirector_ca_pem;
	struct http_proxy proxy;   /* the management proxy (through which everything goes) */
	long connect_timeout_ms;   /* one connection: proxy, CONNECT, TLS */
	unsigned poll_wait_s;	   /* the longest command poll asked for */
	unsigned router_timeout_s; /* a router not running by then has failed */
	unsigned refusals_max;	   /* a refusal (4xx, untrusted TLS, ...) is tried this often */
	unsigned revert_window_s;  /* migrate: the time allowed to reach production */
	bool migrate_self;	   /* migrate on the router's initiative after production-info */
	unsigned backoff_base_ms, backoff_cap_ms;
	const char *software_version;
	bool hold; /* a router that runs stays connected (see fleet_hold_end) */
	volatile sig_atomic_t *hold_stop; /* with hold: set when the holding ends */
};

/* One virtual router: its directory's name (= its serial) and its outcome. */
struct fleet_router {
	char serial[FLEET_SERIAL_MAX + 1];
	double started, ended; /* seconds on the monotonic clock */
	bool done, running;
	char reason[FLEET_REASON_MAX]; /* failed: "STEP: KIND", e.g. "staging-connect: 403
					  unknown-asset" */
	bool held;		       /* its channel to production is kept by `holder` */
	pthread_t holder;
};

/*
 * Runs one router from its factory state to running (or to a failure, with
 * its reason) in state_dir/SERIAL, blocking; retries transient failures with
 * backoff (honouring Retry-After) until the router's deadline. *stop ends it
 * early (the router then fails as "interrupted").
 */
void fleet_router_run(const struct fleet_conf *conf, const char *state_dir, struct fleet_router *r,
		      volatile sig_atomic_t *stop);

/*
 * With conf->hold, a router that reached running keeps its command channel to
 * the production conductor on a thread of its own (so that a conductor's
 * memory per connected router can be measured) until *conf->hold_stop; this
 * waits for those threads to end (at most a poll wait after the stop).
 */
void fleet_hold_end(struct fleet_router *routers, size_t n);

/* A whole decimal number in [min, max] from the command line; what names it in the error. */
int fleet_parse_count(const char *text, const char *what, unsigned min, unsigned max,
		      unsigned *out);

/* Seconds on the monotonic clock. */
double fleet_now(void);

#endif
