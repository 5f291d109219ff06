/*
 * The onboarding flow's worker thread: everything that blocks (libcurl
 * requests through lib/cloud_client and lib/conductor_client, the TPM) runs
 * here, one job at a time, so that the agent's event loop (control socket,
 * DHCP, proxy health) never waits for the network.
 *
 * Decision: a thread rather than curl multi, because the protocol halves in
 * lib/ (cloud_client, conductor_client) are written as blocking calls and
 * the conductor's command channel is a long-poll loop (conductor_run) that
 * owns its connection. The worker owns the device's TPM context, identity,
 * vault and certificate key: an ESYS context is not thread-safe and swtpm
 * serves one client, so no other thread touches them.
 *
 * The main thread hands over one job (onboard_worker_submit) and reads the
 * worker's messages (results, the conductor's step reports, deliveries of
 * progress reports) when the wake-up descriptor is readable. What the worker
 * needs while a long job runs (the proxy to use, the cloud's address, the
 * progress reports waiting for delivery) is published by the main thread
 * under the worker's mutex.
 */
#ifndef ONRAMP_ONBOARD_WORKER_H
#define ONRAMP_ONBOARD_WORKER_H

#include "net/http_client.h"
#include "onboard_events.h"

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#define OB_REASON_LEN 256

enum ob_job_kind {
	OB_JOB_NONE = 0,
	OB_JOB_OPEN,		/* open the TPM, identity, vault, key; read what is stored */
	OB_JOB_PHONE_HOME,	/* the redirector names the cloud */
	OB_JOB_AUTHENTICATE,	/* mutual OCRA with the cloud */
	OB_JOB_ONBOARDING_INFO, /* the staging conductor's details, into the vault */
	OB_JOB_CONDUCTOR,	/* the conductor's command channel, until stopped */
	OB_JOB_MIGRATE,		/* the router-side migrate */
	OB_JOB_REPORT,		/* deliver progress reports to the cloud */
};

const char *ob_job_name(enum ob_job_kind kind);

struct ob_job {
	enum ob_job_kind kind;
	char addresses[4][300]; /* OB_JOB_MIGRATE: "host:port" */
	size_t n_addresses;
	unsigned window_s;
};

enum ob_msg_kind {
	OB_MSG_JOB_DONE,     /* job ended: ok, reason, retry_after_s, data */
	OB_MSG_STEP,	     /* the conductor client reported step (ok, reason), on `which`; seq */
	OB_MSG_CONNECTED,    /* connected to a conductor: data {"router","address","which"} */
	OB_MSG_DISCONNECTED, /* the conductor channel is down, reconnecting */
	OB_MSG_MIGRATING,    /* a migration is recorded, until deadline */
	OB_MSG_DELIVERED,    /* dest took every progress report up to seq */
};

struct ob_msg {
	enum ob_msg_kind kind;
	enum ob_job_kind job;
	bool ok;
	char step[32];
	char which[16]; /* "staging", "production" or "" */
	char reason[OB_REASON_LEN];
	/*
	 * A failed "connect" that a conductor answered with an error: its code
	 * ("unknown-asset", ...), its address and the asset ID presented there.
	 */
	char refused_code[32];
	char refused_address[300];
	char refused_asset_id[129];
	long retry_after_s;   /* -1: none */
	bool redo_phone_home; /* the cloud does not know or cannot prove this device's key */
	json_t *data;	      /* owned by the message */
	enum ob_dest dest;
	unsigned long seq;
	time_t deadline;
	struct ob_msg *next;
};

void ob_msg_free(struct ob_msg *m);

/* What the worker is configured with (copied at start). */
struct ob_worker_conf {
	char state_dir[4096];
	char tcti[256]; /* "": software identity */
	char asset_id[65];
	char redirector_url[256];
	char *redirector_ca_pem; /* owned by the worker */
	char software_version[32];
	long connect_timeout_ms;
	unsigned poll_wait_s;
	const char *proxy_user;		     /* NULL: none; lives as long as the worker */
	const struct secret *proxy_password; /* idem */
	enum proxy_auth proxy_auth;
};

/* The way out, as the main thread sees it now. */
enum ob_route { OB_ROUTE_NONE = 0, OB_ROUTE_DIRECT, OB_ROUTE_PROXY };

struct ob_worker;

/* Starts the thread; conf->redirector_ca_pem is taken over. */
int onboard_worker_start(struct ob_worker_conf *conf, struct ob_worker **out);

/* The descriptor that becomes readable when messages wait. */
int onboard_worker_fd(const struct ob_worker *w);

/* Hands over a job; -1 when one is running already. */
int onboard_worker_submit(struct ob_worker *w, const struct ob_job *job);

/* Asks the running conductor job to end at its next chance (between polls). */
void onboard_worker_stop_job(struct ob_worker *w);

/* The messages waiting, oldest first (the caller frees each with ob_msg_free). */
struct ob_msg *onboard_worker_take(struct ob_worker *w);

/* Publishes the way out; a change ends a running conductor job so it reconnects. */
void onboard_worker_set_route(struct ob_worker *w, enum ob_route route, const char *host,
			      unsigned port);

/* Publishes the cloud's URL and anchor (after phone home). */
void onboard_worker_set_cloud(struct ob_worker *w, const char *url, const char *ca_pem);

/* Publishes the reports waiting for dest (ob_events_pending_json; reference taken). */
void onboard_worker_set_pending(struct ob_worker *w, enum ob_dest dest, json_t *events);

/*
 * Says the reports published include the worker's step reports (OB_MSG_STEP,
 * numbered in seq from 1) up to step: before leaving a conductor on a
 * migrate, the worker waits for its own to be published, to deliver them there.
 */
void onboard_worker_set_steps_published(struct ob_worker *w, unsigned long step);

/*
 * Ends the thread, waiting at most wait_s seconds for the job in hand. false
 * when it did not end in time: the worker is then left running (and its
 * resources allocated) and the process should _exit soon.
 */
bool onboard_worker_stop(struct ob_worker *w, unsigned wait_s);

#endif
