/*
 * One virtual router's flow, from its factory state to running, on
 * libonramp's device code: cloud_client for phone home, mutual OCRA,
 * onboarding information and progress reports; conductor_client for the
 * conductors (PSK proof, command channel, commands, migrate). The order and
 * the retry rules are the agent's (agent/onboard_worker.c): a cloud step is
 * retried with backoff (full jitter, Retry-After honoured); an unknown device
 * or an unproven cloud goes back to phone home; the conductor client keeps
 * its own reconnect loop. What this file adds is an end: a router either
 * reaches running (the production conductor's certificate and configuration
 * done) or fails with one reason, "STEP: KIND", once its deadline passes or a
 * refusal repeated refusals_max times.
 *
 * Trusts: the servers only as far as the library checks them; its own
 * directory, which the factory made.
 */
#include "fleetsim.h"

#include "core/backoff.h"
#include "core/error.h"
#include "core/log.h"
#include "core/secret.h"
#include "device/certkey.h"
#include "device/device.h"
#include "device/identity.h"
#include "device/vault.h"
#include "net/http_retry.h"
#include "proto/cloud_client.h"
#include "proto/conductor_client.h"
#include "proto/staging_target.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The flow's steps, named as the agent reports them (docs/protocol.md). */
enum step {
	S_FIND_PROXY,
	S_PHONE_HOME,
	S_AUTHENTICATE,
	S_ONBOARDING_INFO,
	S_STAGING_CONNECT,
	S_CERTIFICATE,
	S_CONFIGURATION,
	S_PRODUCTION_INFO,
	S_MIGRATE,
	S_RUNNING,
	S_COUNT
};

static const char *const step_names[S_COUNT] = {
	"find-proxy",  "phone-home",	"authenticate",	   "onboarding-info", "staging-connect",
	"certificate", "configuration", "production-info", "migrate",	      "running",
};

struct flow {
	const struct fleet_conf *conf;
	struct fleet_router *r;
	volatile sig_atomic_t *stop_all;
	char dir[PATH_MAX];
	struct device_info info;
	struct identity *id;
	struct vault *vault;
	struct certkey *ck;
	struct cloud_device dev;
	char *cert_key_pem; /* the certificate key's public key: the cloud's assertion is for it */
	struct cloud_redirect redirect;
	struct secret token;
	struct backoff backoff;
	unsigned refusals;
	double deadline;
	time_t done_at[S_COUNT];
	size_t reported; /* steps reported to the cloud so far, in order */

	/* The conductor phase, from the conductor client's callbacks. */
	struct conductor_client_opts copts;
	volatile sig_atomic_t stop; /* ends conductor_run */
	bool failed;
	bool connected; /* to the current conductor, as last reported */
	bool holding;	/* running, and kept connected until conf->hold_stop */
	bool prod_cert, prod_config;
	char last_kind[64]; /* the last conductor failure's kind, "" after a success */
};

/* Seconds on the monotonic clock: a router's times, immune to clock changes. */
double
fleet_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The router failed at step for kind; the first failure's reason is kept. */
static int
fail(struct flow *f, const char *step, const char *kind)
{
	if (!f->failed) {
		if (snprintf(f->r->reason, sizeof(f->r->reason), "%s: %s", step, kind) >=
		    (int)sizeof(f->r->reason))
			log_debug("%s: reason shortened", f->r->serial);
		log_warn("%s: failed: %s: %s", f->r->serial, step, kind);
	}
	f->failed = true;
	f->stop = 1;
	return -1;
}

/* Sleeps ms in slices of 100 ms, so that a stop is seen soon. */
static void
nap(struct flow *f, unsigned ms)
{
	while (ms > 0 && !*f->stop_all && !f->stop) {
		unsigned slice = ms > 100 ? 100 : ms;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000L};

		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/*
 * After a failed attempt at step: 0 when it may be tried again (after the
 * backoff, or the server's Retry-After, has been slept), -1 when the router
 * has failed: stopped, a refusal repeated too often, or no time left.
 */
static int
again(struct flow *f, const char *step, const char *kind, bool refusal, long retry_after_s)
{
	unsigned wait = backoff_next_ms(&f->backoff, retry_after_s);

	log_info("%s: %s failed (%s); again in %u ms", f->r->serial, step, kind, wait);
	if (f->failed)
		return -1;
	if (*f->stop_all)
		return fail(f, step, "interrupted");
	if (refusal && ++f->refusals >= f->conf->refusals_max)
		return fail(f, step, kind);
	if (fleet_now() + wait / 1000.0 > f->deadline)
		return fail(f, step, kind);
	nap(f, wait);
	return *f->stop_all ? fail(f, step, "interrupted") : 0;
}

/* A step went through: the next one starts with a fresh backoff. */
static void
step_done(struct flow *f, enum step s)
{
	if (f->done_at[s] == 0)
		f->done_at[s] = time(NULL);
	backoff_reset(&f->backoff);
	f->refusals = 0;
}

/* ---- the cloud ------------------------------------------------------------ */

/* The kind of a failed cloud call, and whether waiting cannot fix it. */
static void
cloud_kind(const struct cloud_outcome *oc, char *kind, size_t cap, bool *refusal)
{
	switch (oc->status) {
	case CLOUD_TRANSPORT:
		snprintf(kind, cap, "%s", http_err_name(oc->http_err));
		*refusal = !http_retryable(-1, NULL, oc->http_err);
		break;
	case CLOUD_REFUSED:
		snprintf(kind, cap, "refused %ld %s", oc->http_status, oc->code[0] ? oc->code : "");
		*refusal = oc->http_status != 408 && oc->http_status != 429;
		break;
	case CLOUD_SERVER_NOT_PROVEN:
	case CLOUD_PROTOCOL:
		snprintf(kind, cap, "%s", cloud_status_name(oc->status));
		*refusal = true;
		break;
	default: /* not claimed yet, locked out, not ready, 5xx: time helps */
		snprintf(kind, cap, "%s", cloud_status_name(oc->status));
		*refusal = false;
		break;
	}
}

/* A failed cloud step: again (0) or failed (-1). */
static int
cloud_again(struct flow *f, enum step s, const struct cloud_outcome *oc)
{
	char kind[64];
	bool refusal;

	cloud_kind(oc, kind, sizeof(kind), &refusal);
	log_info("%s: %s: %s", f->r->serial, step_names[s], or_errmsg());
	return again(f, step_names[s], kind, refusal, oc->retry_after_s);
}

/* A session to the cloud the redirector named, through the proxy. */
static int
cloud_open(struct flow *f, struct http_session **s, struct cloud_outcome *oc)
{
	struct http_client_opts o = {
		.proxy = &f->conf->proxy,
		.ca_pem = f->redirect.cloud_ca_pem,
		.connect_timeout_ms = f->conf->connect_timeout_ms,
	};

	memset(oc, 0, sizeof(*oc));
	oc->status = CLOUD_TRANSPORT;
	oc->http_err = HTTP_ERR_INTERNAL;
	oc->retry_after_s = -1;
	return http_session_open(f->redirect.cloud_url, &o, s);
}

/* Phone home until the redirector names the cloud. */
static int
phone_home(struct flow *f)
{
	struct http_client_opts o = {
		.proxy = &f->conf->proxy,
		.ca_pem = f->conf->redirector_ca_pem,
		.connect_timeout_ms = f->conf->connect_timeout_ms,
	};
	struct cloud_outcome oc;

	cloud_redirect_free(&f->redirect);
	for (;;) {
		if (cloud_phone_home(f->conf->redirector_url, &o, &f->dev, &f->redirect, &oc) ==
		    0) {
			step_done(f, S_PHONE_HOME);
			return 0;
		}
		if (cloud_again(f, S_PHONE_HOME, &oc) == -1)
			return -1;
	}
}

/*
 * Mutual OCRA on a session of its own (as the agent): 0 with the token, 1
 * when phone home must be asked again (not our cloud, or it does not know
 * the device), -1 when the router failed.
 */
static int
authenticate(struct flow *f)
{
	struct http_session *s = NULL;
	struct cloud_outcome oc;
	int rc;

	for (;;) {
		secret_free(&f->token);
		rc = cloud_open(f, &s, &oc);
		if (rc == 0)
			rc = cloud_authenticate(s, &f->dev, &f->token, &oc);
		http_session_close(s);
		s = NULL;
		if (rc == 0) {
			step_done(f, S_AUTHENTICATE);
			return 0;
		}
		if (cloud_again(f, S_AUTHENTICATE, &oc) == -1)
			return -1;
		if (oc.status == CLOUD_SERVER_NOT_PROVEN ||
		    (oc.status == CLOUD_REFUSED && strcmp(oc.code, "unknown-device") == 0))
			return 1;
	}
}

/*
 * Sends the progress reports of the steps done since the last delivery, on s
 * (or a session of its own when s is NULL). Like the agent, a report that
 * does not get through does not stop the flow.
 */
static void
report_progress(struct flow *f, struct http_session *s)
{
	struct cloud_event evs[S_COUNT];
	struct http_session *own = NULL;
	struct cloud_outcome oc;
	size_t n = 0;

	for (size_t i = f->reported; i < S_COUNT && f->done_at[i] != 0; i++, n++)
		evs[n] = (struct cloud_event){
			.step = step_names[i], .time = f->done_at[i], .outcome = "ok"};
	if (n == 0 || f->token.len == 0)
		return;
	if (s == NULL && cloud_open(f, &own, &oc) == -1)
		goto out;
	if (cloud_report(s ? s : own, &f->token, evs, n, &oc) == 0)
		f->reported += n;
	else
		log_warn("%s: progress reports not delivered: %s", f->r->serial, or_errmsg());
out:
	http_session_close(own);
}

/*
 * Onboarding information with the token: 0 stored, 1 when the token must be
 * made again (refused as expired), -1 failed.
 */
static int
onboarding_info(struct flow *f)
{
	struct cloud_onboarding info;
	struct http_session *s = NULL;
	struct cloud_outcome oc;
	int rc;

	for (;;) {
		memset(&info, 0, sizeof(info));
		rc = cloud_open(f, &s, &oc);
		if (rc == 0)
			rc = cloud_get_onboarding(s, &f->dev, &f->token, &info, &oc);
		if (rc == 0 && staging_target_store(&f->copts, &info, NULL, NULL) == -1) {
			log_warn("%s: onboarding information unusable: %s", f->r->serial,
				 or_errmsg());
			cloud_onboarding_free(&info);
			http_session_close(s);
			return fail(f, step_names[S_ONBOARDING_INFO], "unusable");
		}
		cloud_onboarding_free(&info);
		if (rc == 0) {
			step_done(f, S_ONBOARDING_INFO);
			report_progress(f, s);
			http_session_close(s);
			return 0;
		}
		http_session_close(s);
		s = NULL;
		if (cloud_again(f, S_ONBOARDING_INFO, &oc) == -1)
			return -1;
		if (oc.status == CLOUD_REFUSED && oc.http_status == 401)
			return 1; /* the token expired: authenticate again */
	}
}

/* Phone home, authenticate, onboarding information, each retried as the agent does. */
static int
cloud_steps(struct flow *f)
{
	int rc;

	for (;;) {
		if (phone_home(f) == -1)
			return -1;
		do {
			if ((rc = authenticate(f)) != 0)
				break;
			rc = onboarding_info(f);
		} while (rc == 1);
		if (rc <= 0)
			return rc;
	}
}

/* ---- the conductors ------------------------------------------------------- */

/* The kind of the last conductor failure on this thread, and whether it is a refusal. */
static void
conductor_kind(char *kind, size_t cap, bool *refusal, long *retry_after_s)
{
	struct conductor_answer a;

	conductor_last_answer(&a);
	*retry_after_s = a.retry_after_s;
	if (a.status == 0) {
		snprintf(kind, cap, "%s", http_err_name(a.http_err));
		*refusal = !http_retryable(-1, NULL, a.http_err);
	} else {
		snprintf(kind, cap, "%ld %s", a.status, a.code[0] ? a.code : "error");
		*refusal = a.status >= 400 && a.status < 500 && a.status != 408 && a.status != 429;
	}
}

/* Which conductor the router serves now. */
static bool
on_production(struct flow *f)
{
	char which[16] = "";

	conductor_current(&f->copts, which);
	return strcmp(which, "production") == 0;
}

/*
 * Where a router that has to stop now is: the conductor step it waits for
 * (staging's commands in any order, so the first one not done), named as in
 * the summary's reasons.
 */
static const char *
waiting_for(struct flow *f, bool production)
{
	if (production)
		return f->connected ? "running" : "production-connect";
	if (!f->connected)
		return "staging-connect";
	for (int s = S_CERTIFICATE; s < S_RUNNING; s++)
		if (f->done_at[s] == 0)
			return step_names[s];
	return "migrate";
}

/* The conductor client's step reports: progress, the end of a phase, or a failure. */
static void
on_report(void *arg, const char *step, bool ok, const char *reason)
{
	struct flow *f = arg;
	bool production = on_production(f);
	bool refusal;
	long retry_after;

	if (f->holding) {
		/* Running already: reconnections and later commands change nothing of it. */
		log_info("%s: held: %s %s%s%s", f->r->serial, step, ok ? "done" : "failed",
			 ok ? "" : ": ", ok ? "" : reason);
		return;
	}
	if (ok) {
		f->last_kind[0] = '\0';
		if (strcmp(step, "connect") == 0) {
			f->connected = true;
			if (!production)
				step_done(f, S_STAGING_CONNECT);
		} else if (production && strcmp(step, "certificate") == 0) {
			f->prod_cert = true;
		} else if (production && strcmp(step, "configuration") == 0) {
			f->prod_config = true;
		} else {
			for (int s = S_CERTIFICATE; s <= S_MIGRATE; s++)
				if (strcmp(step, step_names[s]) == 0)
					step_done(f, (enum step)s);
		}
		if (production
			    ? f->prod_cert && f->prod_config
			    : f->conf->migrate_self && f->done_at[S_CERTIFICATE] &&
				      f->done_at[S_CONFIGURATION] && f->done_at[S_PRODUCTION_INFO])
			f->stop = 1; /* this conductor's part is done */
		return;
	}
	if (strcmp(step, "migrate") == 0) {
		/* Back on staging: migrate() tries again, or the conductor sends it again. */
		snprintf(f->last_kind, sizeof(f->last_kind), "migrate failed");
		log_info("%s: migrate failed: %s", f->r->serial, reason);
		return;
	}
	if (strcmp(step, "connect") != 0) {
		/* A command the conductor sent failed here: it is not sent again. */
		log_warn("%s: %s failed: %s", f->r->serial, step, reason);
		fail(f, step, "command failed");
		return;
	}
	f->connected = false;
	conductor_kind(f->last_kind, sizeof(f->last_kind), &refusal, &retry_after);
	log_info("%s: %s", f->r->serial, reason);
	if (refusal && ++f->refusals >= f->conf->refusals_max)
		fail(f, production ? "production-connect" : "staging-connect", f->last_kind);
}

/*
 * Before each poll and each connect: the stop of the whole fleet, and the
 * router's deadline (the reason is then its last failure, if any).
 */
static void
on_tick(void *arg, struct conductor_conn *c)
{
	struct flow *f = arg;

	(void)c;
	if (f->holding) {
		if (*f->conf->hold_stop || *f->stop_all)
			f->stop = 1;
		return;
	}
	if (*f->stop_all)
		fail(f, waiting_for(f, on_production(f)), "interrupted");
	else if (fleet_now() > f->deadline)
		fail(f, waiting_for(f, on_production(f)),
		     f->last_kind[0] ? f->last_kind : "deadline");
}

/* The router-side migrate to the stored production conductor, retried until the deadline. */
static int
migrate(struct flow *f)
{
	char kind[64];
	bool refusal;
	long retry_after;

	for (;;) {
		/* The revert window ends by the router's deadline: the library sees no stop. */
		double left = f->deadline - fleet_now();
		unsigned window = left < 1			    ? 1
				  : left < f->conf->revert_window_s ? (unsigned)left
								    : f->conf->revert_window_s;

		f->connected = false;
		if (conductor_migrate(&f->copts, NULL, 0, window, 0) == 0)
			return 0;
		log_info("%s: migrate: %s", f->r->serial, or_errmsg());
		conductor_kind(kind, sizeof(kind), &refusal, &retry_after);
		if (again(f, "migrate", kind, refusal, retry_after) == -1)
			return -1;
	}
}

/*
 * The conductors: staging's commands, migrate, production's commands. 1 when
 * the cloud's onboarding assertion expired before staging took it: the cloud
 * steps give a new one (as the agent's refresh_assertion).
 */
static int
conductor_steps(struct flow *f)
{
	f->stop = 0;
	if (conductor_run(&f->copts, &f->stop) == -1) {
		if (conductor_assertion_stale(&f->copts, "staging", 0)) {
			log_info("%s: %s", f->r->serial, or_errmsg());
			return 1;
		}
		return fail(f, "staging-connect", "no conductor stored");
	}
	if (f->failed)
		return -1;
	if (!f->prod_cert || !f->prod_config) {
		/* Staging's part done and the router migrates on its own. */
		f->stop = 0;
		if (migrate(f) == -1)
			return -1;
		f->stop = 0;
		if (conductor_run(&f->copts, &f->stop) == -1)
			return fail(f, "production-connect", "no conductor stored");
	}
	if (f->failed)
		return -1;
	return f->prod_cert && f->prod_config ? 0 : fail(f, "running", "not reached");
}

/* ---- the router ----------------------------------------------------------- */

/* The factory's directory: serial, suite, OCRA key, vault and certificate key (software). */
static int
device_open(struct flow *f)
{
	if (device_info_read(f->dir, &f->info) == -1 || identity_open(f->dir, NULL, &f->id) == -1 ||
	    vault_open(f->dir, NULL, &f->vault) == -1 ||
	    certkey_open_or_create(f->dir, NULL, &f->ck) == -1 ||
	    certkey_public_pem(f->ck, &f->cert_key_pem) == -1)
		return -1;
	f->dev = (struct cloud_device){
		.serial = f->info.serial,
		.model = f->info.model[0] ? f->info.model : NULL,
		.software_version = f->conf->software_version,
		.suite = f->info.ocra_suite,
		.hmac = identity_ocra_hmac(f->id),
		.cert_key_pem = f->cert_key_pem,
	};
	f->copts = (struct conductor_client_opts){
		.state_dir = f->dir,
		.asset_id = f->info.serial,
		.proxy = &f->conf->proxy,
		.certkey = f->ck,
		.vault = f->vault,
		.connect_timeout_ms = f->conf->connect_timeout_ms,
		.poll_wait_s = f->conf->poll_wait_s,
		.report = on_report,
		.report_arg = f,
		.tick = on_tick,
	};
	return 0;
}

/* What a router keeps open, closed; the flow itself is freed. */
static void
flow_free(struct flow *f)
{
	secret_free(&f->token);
	cloud_redirect_free(&f->redirect);
	free(f->cert_key_pem);
	certkey_close(f->ck);
	vault_close(f->vault);
	identity_close(f->id);
	free(f);
}

/* A held router's thread: the production conductor's channel until the hold ends. */
static void *
hold(void *arg)
{
	struct flow *f = arg;

	f->stop = 0;
	if (conductor_run(&f->copts, &f->stop) == -1)
		log_warn("%s: held: %s", f->r->serial, or_errmsg());
	flow_free(f);
	return NULL;
}

/* Hands a running router to a thread of its own; false when none could start. */
static bool
hold_start(struct flow *f)
{
	struct fleet_router *r = f->r; /* f belongs to the new thread once it runs */
	pthread_attr_t attr;
	bool started;

	f->holding = true;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024); /* thousands of them */
	started = pthread_create(&r->holder, &attr, hold, f) == 0;
	pthread_attr_destroy(&attr);
	if (!started)
		log_warn("%s: no thread to hold it connected; it leaves", r->serial);
	r->held = started;
	return started;
}

void
fleet_hold_end(struct fleet_router *routers, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (routers[i].held) {
			pthread_join(routers[i].holder, NULL);
			routers[i].held = false;
		}
}

void
fleet_router_run(const struct fleet_conf *conf, const char *state_dir, struct fleet_router *r,
		 volatile sig_atomic_t *stop)
{
	struct flow *f = calloc(1, sizeof(*f));
	int rc;

	r->started = fleet_now();
	if (f == NULL) {
		snprintf(r->reason, sizeof(r->reason), "open: out of memory");
		r->ended = r->started;
		r->done = true;
		return;
	}
	f->conf = conf;
	f->r = r;
	f->stop_all = stop;
	f->backoff.base_ms = conf->backoff_base_ms;
	f->backoff.cap_ms = conf->backoff_cap_ms;
	f->deadline = r->started + conf->router_timeout_s;
	if ((size_t)snprintf(f->dir, sizeof(f->dir), "%s/%s", state_dir, r->serial) >=
	    sizeof(f->dir)) {
		fail(f, "open", "state directory path too long");
		goto out;
	}
	if (device_open(f) == -1) {
		log_warn("%s: %s", r->serial, or_errmsg());
		fail(f, "open", "factory state unusable");
		goto out;
	}
	step_done(f, S_FIND_PROXY); /* the proxy is given */
	do {
		if (cloud_steps(f) == -1 || (rc = conductor_steps(f)) == -1)
			goto out;
	} while (rc == 1);
	step_done(f, S_RUNNING);
	r->running = true;
	r->ended = fleet_now();
	report_progress(f, NULL);
out:
	if (!r->running)
		r->ended = fleet_now();
	r->done = true;
	if (!(r->running && conf->hold && hold_start(f)))
		flow_free(f);
}
