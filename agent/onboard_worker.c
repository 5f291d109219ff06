/*
 * The onboarding worker thread; see onboard_worker.h. It trusts the main
 * thread for its jobs and for what it publishes (proxy, cloud, reports), and
 * the servers only as far as lib/cloud_client and lib/conductor_client check
 * them. Secrets (the cloud's device token, the staging secret on its way to
 * the vault) stay on this thread and are never put in a message or a log.
 */
#include "onboard_worker.h"

#include "core/backoff.h"
#include "core/error.h"
#include "core/log.h"
#include "device/certkey.h"
#include "device/device.h"
#include "device/identity.h"
#include "device/tpm.h"
#include "device/vault.h"
#include "proto/cloud_client.h"
#include "proto/conductor_client.h"
#include "proto/peering_config.h"
#include "proto/staging_target.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPORT_BACKOFF_BASE_MS 2000u
#define REPORT_BACKOFF_CAP_MS 120000u
#define CONDUCTOR_REPORT_MAX 64
#define LEAVING_WAIT_S 10 /* for the main thread to record the step reports before a migrate */

struct ob_worker {
	struct ob_worker_conf conf;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cond; /* to the worker: a job, a quit, its step reports published */
	int wake[2];

	/* Shared with the main thread, under mu. */
	struct ob_job job;
	bool has_job, busy, quit, finished;
	enum ob_route route;
	char route_host[64];
	unsigned route_port, route_gen;
	char *cloud_url, *cloud_ca;
	json_t *pending[OB_DEST_COUNT];
	unsigned long steps_published; /* pending includes the step reports up to this number */
	struct ob_msg *msgs, *msgs_tail;
	bool migrating; /* a migration is recorded: a stop would fail it */
	volatile sig_atomic_t stop;

	/* The worker thread's own. */
	struct tpm *tpm;
	struct identity *id;
	struct vault *vault;
	struct certkey *ck;
	struct device_info info;
	bool opened;
	struct secret token; /* the cloud's device token, NUL-terminated */
	struct backoff report_backoff;
	time_t report_not_before;
	const struct conductor_client_opts *copts; /* during a conductor job */
	unsigned job_route_gen;
	bool connected;
	char conn_router[64], conn_address[300];
	time_t posted_deadline;
	unsigned long steps_posted;   /* OB_MSG_STEP messages told, numbered from 1 */
	unsigned long conductor_sent; /* reports up to this seq went to a conductor */
};

static const char *const job_names[] = {
	"none",	     "open",	"phone-home", "authenticate", "onboarding-info",
	"conductor", "migrate", "report",
};

const char *
ob_job_name(enum ob_job_kind kind)
{
	return (unsigned)kind < sizeof(job_names) / sizeof(job_names[0]) ? job_names[kind] : "?";
}

void
ob_msg_free(struct ob_msg *m)
{
	if (m == NULL)
		return;
	json_decref(m->data);
	free(m);
}

/* ---- messages to the main thread ----------------------------------------- */

/* A new message of kind; NULL only when out of memory (the message is lost). */
static struct ob_msg *
msg_new(enum ob_msg_kind kind)
{
	struct ob_msg *m = calloc(1, sizeof(*m));

	if (m != NULL) {
		m->kind = kind;
		m->retry_after_s = -1;
	}
	return m;
}

/* Queues m for the main thread and wakes it. */
static void
post(struct ob_worker *w, struct ob_msg *m)
{
	if (m == NULL) {
		log_error("onboarding: out of memory, a worker message was lost");
		return;
	}
	pthread_mutex_lock(&w->mu);
	if (w->msgs_tail != NULL)
		w->msgs_tail->next = m;
	else
		w->msgs = m;
	w->msgs_tail = m;
	pthread_mutex_unlock(&w->mu);
	/* A full pipe already wakes the main thread: EAGAIN is fine. */
	if (write(w->wake[1], "m", 1) == -1 && errno != EAGAIN)
		log_warn("onboarding: cannot wake the main loop: %s", strerror(errno));
}

/* Sets the message's reason (printable is left to the events engine). */
static void
set_reason(struct ob_msg *m, const char *reason)
{
	snprintf(m->reason, sizeof(m->reason), "%s", reason);
}

/* ---- what the main thread publishes -------------------------------------- */

/* The proxy to use now; -1 when there is none (and no direct way either). */
static int
current_route(struct ob_worker *w, struct http_proxy *px, bool *direct, unsigned *gen)
{
	enum ob_route route;

	memset(px, 0, sizeof(*px));
	pthread_mutex_lock(&w->mu);
	route = w->route;
	snprintf(px->host, sizeof(px->host), "%s", w->route_host);
	px->port = w->route_port;
	if (gen != NULL)
		*gen = w->route_gen;
	pthread_mutex_unlock(&w->mu);
	*direct = route == OB_ROUTE_DIRECT;
	if (route == OB_ROUTE_NONE)
		return or_error("no management proxy is available (none configured, learned or "
				"left to try)");
	px->user = w->conf.proxy_user;
	px->password = w->conf.proxy_password;
	px->auth = w->conf.proxy_auth;
	return 0;
}

/* Copies of the cloud's URL and anchor; -1 when phone home has not named it yet. */
static int
current_cloud(struct ob_worker *w, char **url, char **ca)
{
	pthread_mutex_lock(&w->mu);
	*url = w->cloud_url ? strdup(w->cloud_url) : NULL;
	*ca = w->cloud_ca ? strdup(w->cloud_ca) : NULL;
	pthread_mutex_unlock(&w->mu);
	if (*url == NULL || *ca == NULL) {
		free(*url);
		free(*ca);
		*url = *ca = NULL;
		return or_error("the organisation's cloud is not known yet");
	}
	return 0;
}

/* A copy of the reports waiting for dest (NULL when none). */
static json_t *
current_pending(struct ob_worker *w, enum ob_dest dest)
{
	json_t *copy = NULL;

	pthread_mutex_lock(&w->mu);
	if (w->pending[dest] != NULL && json_array_size(w->pending[dest]) > 0)
		copy = json_deep_copy(w->pending[dest]);
	pthread_mutex_unlock(&w->mu);
	return copy;
}

/* ---- the device ---------------------------------------------------------- */

/* Who the device is, for the cloud protocol. */
static struct cloud_device
device_of(struct ob_worker *w)
{
	struct cloud_device dev = {
		.serial = w->info.serial,
		.model = w->info.model[0] ? w->info.model : NULL,
		.software_version = w->conf.software_version,
		.suite = w->info.ocra_suite,
		.hmac = identity_ocra_hmac(w->id),
	};
	return dev;
}

/* The conductor client's options for this device and route (px filled by the caller). */
static struct conductor_client_opts conductor_opts(struct ob_worker *w,
						   const struct http_proxy *px);

/* Opens what the device keeps (TPM, identity, vault, key), once. */
static int
device_open(struct ob_worker *w)
{
	if (w->opened)
		return 0;
	if (device_info_read(w->conf.state_dir, &w->info) == -1)
		return or_error_prefix("the device was not provisioned at the factory");
	if (w->conf.tcti[0] != '\0' && tpm_open(w->conf.tcti, &w->tpm) == -1)
		return -1;
	if (identity_open(w->conf.state_dir, w->tpm, &w->id) == -1 ||
	    vault_open(w->conf.state_dir, w->tpm, &w->vault) == -1 ||
	    certkey_open_or_create(w->conf.state_dir, w->tpm, &w->ck) == -1) {
		identity_close(w->id);
		vault_close(w->vault);
		tpm_close(w->tpm);
		w->id = NULL;
		w->vault = NULL;
		w->tpm = NULL;
		return -1;
	}
	if (w->conf.asset_id[0] == '\0')
		snprintf(w->conf.asset_id, sizeof(w->conf.asset_id), "%s", w->info.serial);
	w->opened = true;
	log_info("onboarding: device %s (%s), OCRA key %s, certificate key %s", w->info.serial,
		 w->info.model, identity_in_tpm(w->id) ? "in the TPM" : "in software",
		 certkey_in_tpm(w->ck) ? "in the TPM" : "in software");
	return 0;
}

/* Whether state_dir/name exists. */
static bool
state_file_exists(struct ob_worker *w, const char *name)
{
	char path[PATH_MAX + 64];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", w->conf.state_dir, name);
	return stat(path, &st) == 0;
}

/* OB_JOB_OPEN: the device, and what earlier runs left on disk (for resuming). */
static void
job_open(struct ob_worker *w, struct ob_msg *m)
{
	struct http_proxy px = {0};
	struct conductor_client_opts o;
	struct conductor_target t;
	char current[16];
	time_t deadline = 0;
	int pending;
	bool production;

	if (device_open(w) == -1) {
		set_reason(m, or_errmsg());
		return;
	}
	o = conductor_opts(w, &px);
	if (conductor_current(&o, current) == -1 ||
	    (pending = conductor_migration_pending(&o, &deadline)) == -1) {
		set_reason(m, or_errmsg());
		return;
	}
	production = conductor_get_target(&o, "production", &t) == 0;
	if (production)
		conductor_target_free(&t);
	m->data = json_pack(
		"{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:b, s:b}", "serial", w->info.serial, "model",
		w->info.model, "asset_id", w->conf.asset_id, "current", current,
		"migration_deadline", (json_int_t)(pending ? deadline : 0), "production",
		production, "certificate", state_file_exists(w, "conductor-cert.pem"),
		"configuration", state_file_exists(w, "peering.json"), "tpm", w->tpm != NULL);
	m->ok = m->data != NULL;
	if (!m->ok)
		set_reason(m, "out of memory");
}

/* ---- the cloud ----------------------------------------------------------- */

/* One sentence for a failed cloud call: what kind, then what happened. */
static void
cloud_reason(const struct cloud_outcome *oc, char *out, size_t cap)
{
	const char *msg = or_errmsg();

	if (oc->status == CLOUD_TRANSPORT)
		snprintf(out, cap, "%s: %s", http_err_name(oc->http_err), msg);
	else if (oc->status == CLOUD_NOT_CLAIMED)
		snprintf(out, cap, "not claimed yet: %s", msg);
	else
		snprintf(out, cap, "%s: %s", cloud_status_name(oc->status), msg);
}

/* Opens a session to the cloud through the current route. */
static int
cloud_open(struct ob_worker *w, struct http_session **s, struct cloud_outcome *oc)
{
	struct http_proxy px;
	struct http_client_opts o = {0};
	char *url = NULL, *ca = NULL;
	bool direct;
	int rc = -1;

	memset(oc, 0, sizeof(*oc));
	oc->retry_after_s = -1;
	oc->status = CLOUD_TRANSPORT;
	oc->http_err = HTTP_ERR_INTERNAL;
	if (current_route(w, &px, &direct, NULL) == -1 || current_cloud(w, &url, &ca) == -1)
		goto out;
	o.proxy = direct ? NULL : &px;
	o.ca_pem = ca;
	o.connect_timeout_ms = w->conf.connect_timeout_ms;
	o.cancel = &w->stop;
	rc = http_session_open(url, &o, s);
out:
	free(url);
	free(ca);
	return rc;
}

/* A device token from a fresh mutual OCRA exchange (on its own TLS session). */
static int
authenticate(struct ob_worker *w, struct cloud_outcome *oc)
{
	struct cloud_device dev = device_of(w);
	struct http_session *s = NULL;
	int rc;

	secret_free(&w->token);
	if (cloud_open(w, &s, oc) == -1)
		return -1;
	rc = cloud_authenticate(s, &dev, &w->token, oc);
	http_session_close(s);
	return rc;
}

/* Whether a cloud answer says the token is no longer good. */
static bool
token_refused(const struct cloud_outcome *oc)
{
	return oc->status == CLOUD_REFUSED && oc->http_status == 401;
}

/* The reports waiting for the cloud, as cloud_events pointing into list. */
static size_t
cloud_events_of(json_t *list, size_t from, struct cloud_event *out, size_t max,
		unsigned long *last_seq)
{
	size_t n = 0;

	for (size_t i = from; i < json_array_size(list) && n < max; i++, n++) {
		json_t *e = json_array_get(list, i);

		out[n].step = json_string_value(json_object_get(e, "step"));
		out[n].time = (time_t)json_integer_value(json_object_get(e, "time"));
		out[n].outcome = json_string_value(json_object_get(e, "outcome"));
		out[n].reason = json_string_value(json_object_get(e, "reason"));
		*last_seq = (unsigned long)json_integer_value(json_object_get(e, "seq"));
	}
	return n;
}

/*
 * Delivers the reports waiting for the cloud (authenticating first when the
 * worker has no token). Failures back off (full jitter) unless force.
 */
static int
flush_cloud(struct ob_worker *w, bool force)
{
	struct cloud_event evs[CLOUD_EVENTS_MAX];
	struct http_session *s = NULL;
	struct cloud_outcome oc;
	json_t *list;
	unsigned long done_seq = 0, seq = 0;
	size_t sent = 0, n;
	char reason[OB_REASON_LEN];
	int rc = -1;

	if (!force && time(NULL) < w->report_not_before)
		return 0;
	if ((list = current_pending(w, OB_DEST_CLOUD)) == NULL)
		return 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (w->token.len == 0 && authenticate(w, &oc) == -1)
			break;
		if (cloud_open(w, &s, &oc) == -1)
			break;
		while ((n = cloud_events_of(list, sent, evs, CLOUD_EVENTS_MAX, &seq)) > 0) {
			if (cloud_report(s, &w->token, evs, n, &oc) == -1)
				break;
			sent += n;
			done_seq = seq;
		}
		http_session_close(s);
		s = NULL;
		if (sent == json_array_size(list)) {
			rc = 0;
			break;
		}
		if (!token_refused(&oc))
			break;
		secret_free(&w->token); /* expired: authenticate again, once */
	}
	if (done_seq != 0) {
		struct ob_msg *m = msg_new(OB_MSG_DELIVERED);

		if (m != NULL) {
			m->dest = OB_DEST_CLOUD;
			m->seq = done_seq;
		}
		post(w, m);
	}
	if (rc == 0) {
		backoff_reset(&w->report_backoff);
		w->report_not_before = 0;
		log_debug("onboarding: %zu progress report%s delivered to the cloud", sent,
			  sent == 1 ? "" : "s");
	} else {
		unsigned wait = backoff_next_ms(&w->report_backoff, oc.retry_after_s);

		cloud_reason(&oc, reason, sizeof(reason));
		w->report_not_before = time(NULL) + (time_t)((wait + 999) / 1000);
		log_warn("onboarding: progress reports not delivered to the cloud yet: %s", reason);
	}
	json_decref(list);
	return rc;
}

/* OB_JOB_PHONE_HOME: the redirector names the device's cloud and its anchor. */
static void
job_phone_home(struct ob_worker *w, struct ob_msg *m)
{
	struct cloud_device dev = device_of(w);
	struct http_client_opts o = {0};
	struct cloud_redirect r = {0};
	struct cloud_outcome oc = {0};
	struct http_proxy px;
	bool direct;

	if (current_route(w, &px, &direct, NULL) == -1) {
		set_reason(m, or_errmsg());
		return;
	}
	o.proxy = direct ? NULL : &px;
	o.ca_pem = w->conf.redirector_ca_pem;
	o.connect_timeout_ms = w->conf.connect_timeout_ms;
	o.cancel = &w->stop;
	if (cloud_phone_home(w->conf.redirector_url, &o, &dev, &r, &oc) == -1) {
		cloud_reason(&oc, m->reason, sizeof(m->reason));
		m->retry_after_s = oc.retry_after_s;
		return;
	}
	m->data = json_pack("{s:s, s:s}", "cloud_url", r.cloud_url, "cloud_ca_pem", r.cloud_ca_pem);
	cloud_redirect_free(&r);
	m->ok = m->data != NULL;
	if (!m->ok)
		set_reason(m, "out of memory");
}

/* OB_JOB_AUTHENTICATE: mutual OCRA; then the reports kept so far go out. */
static void
job_authenticate(struct ob_worker *w, struct ob_msg *m)
{
	struct cloud_outcome oc;

	if (authenticate(w, &oc) == -1) {
		cloud_reason(&oc, m->reason, sizeof(m->reason));
		m->retry_after_s = oc.retry_after_s;
		/* Not our cloud, or it does not have us: ask the redirector again. */
		m->redo_phone_home =
			oc.status == CLOUD_SERVER_NOT_PROVEN ||
			(oc.status == CLOUD_REFUSED && strcmp(oc.code, "unknown-device") == 0);
		return;
	}
	m->ok = true;
}

/* Stores the staging conductor (addresses, secret into the vault, root CA as an anchor). */
static int
store_staging(struct ob_worker *w, const struct cloud_onboarding *info, json_t *addresses)
{
	struct http_proxy px = {0};
	struct conductor_client_opts o = conductor_opts(w, &px);
	char addr[CONDUCTOR_MAX_TARGET_ADDRESSES][PEERING_ADDRESS_MAX];
	size_t n;

	if (staging_target_store(&o, info, addr, &n) == -1)
		return -1;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(addresses, json_string(addr[i]));
	return 0;
}

/* OB_JOB_ONBOARDING_INFO: the staging conductor's details, stored before the step is done. */
static void
job_onboarding_info(struct ob_worker *w, struct ob_msg *m)
{
	struct cloud_device dev = device_of(w);
	struct cloud_onboarding info;
	struct cloud_outcome oc;
	struct http_session *s = NULL;
	json_t *addresses = NULL;
	char *key_pem = NULL;
	int rc = -1;

	memset(&info, 0, sizeof(info));
	if (certkey_public_pem(w->ck, &key_pem) == -1) {
		set_reason(m, or_errmsg());
		return;
	}
	dev.cert_key_pem = key_pem;
	for (int attempt = 0; attempt < 2 && rc == -1; attempt++) {
		if (w->token.len == 0 && authenticate(w, &oc) == -1)
			break;
		if (cloud_open(w, &s, &oc) == -1)
			break;
		rc = cloud_get_onboarding(s, &dev, &w->token, &info, &oc);
		http_session_close(s);
		s = NULL;
		if (rc == -1 && !token_refused(&oc))
			break;
		if (rc == -1)
			secret_free(&w->token);
	}
	if (rc == -1) {
		cloud_reason(&oc, m->reason, sizeof(m->reason));
		m->retry_after_s = oc.retry_after_s;
		goto out;
	}
	addresses = json_array();
	if (addresses == NULL || store_staging(w, &info, addresses) == -1) {
		set_reason(m, or_errmsg());
		goto out;
	}
	m->data = json_pack("{s:s, s:s, s:O}", "organization", info.organization, "site", info.site,
			    "conductor", addresses);
	m->ok = m->data != NULL;
out:
	free(key_pem);
	json_decref(addresses);
	cloud_onboarding_free(&info);
}

/*
 * An unused onboarding assertion that has expired (the staging conductor was out of reach for
 * its lifetime) is replaced by a fresh one from the cloud before the next attempt.
 */
static void
refresh_assertion(struct ob_worker *w, const struct conductor_client_opts *o)
{
	struct ob_msg m = {0};

	if (!conductor_assertion_stale(o, "staging", 60))
		return;
	log_info("onboarding: the cloud's assertion has expired unused; asking for a new one");
	job_onboarding_info(w, &m);
	if (!m.ok)
		log_warn("onboarding: no new assertion: %s", m.reason);
	json_decref(m.data);
}

/* OB_JOB_REPORT: only the progress reports. */
static void
job_report(struct ob_worker *w, struct ob_msg *m)
{
	if (flush_cloud(w, true) == -1) {
		set_reason(m, "progress reports not delivered");
		return;
	}
	m->ok = true;
}

/* ---- the conductor ------------------------------------------------------- */

/*
 * conductor_run's step reports: to the main thread, with the conductor they
 * concern, and for a connect a conductor refused, its refusal (read on this
 * thread, right after the attempt).
 */
static void
on_report(void *arg, const char *step, bool ok, const char *reason)
{
	struct ob_worker *w = arg;
	struct ob_msg *m = msg_new(OB_MSG_STEP);
	struct conductor_answer answer;
	char which[16] = "";

	conductor_last_answer(&answer);
	if (w->copts != NULL)
		conductor_current(w->copts, which);
	if (m != NULL) {
		m->seq = ++w->steps_posted;
		m->ok = ok;
		snprintf(m->step, sizeof(m->step), "%s", step);
		snprintf(m->which, sizeof(m->which), "%s", which);
		set_reason(m, reason ? reason : "");
		if (!ok && strcmp(step, "connect") == 0 && answer.address[0] != '\0') {
			snprintf(m->refused_code, sizeof(m->refused_code), "%s", answer.code);
			snprintf(m->refused_address, sizeof(m->refused_address), "%s",
				 answer.address);
			snprintf(m->refused_asset_id, sizeof(m->refused_asset_id), "%s",
				 answer.asset_id);
		}
	}
	post(w, m);
}

/*
 * Delivers the reports waiting for the conductor on its open connection, at
 * most a batch, none this thread delivered already (the main thread learns
 * it later). 1: a batch went, more may wait; 0: none waits; -1: not delivered.
 */
static int
flush_conductor(struct ob_worker *w, struct conductor_conn *c)
{
	json_t *list = current_pending(w, OB_DEST_CONDUCTOR), *batch = json_array(), *e;
	unsigned long seq = 0;
	size_t i;
	int rc = 0;

	if (list == NULL || batch == NULL)
		goto out;
	json_array_foreach(list, i, e)
	{
		unsigned long at = (unsigned long)json_integer_value(json_object_get(e, "seq"));

		if (at <= w->conductor_sent)
			continue;
		if (json_array_size(batch) == CONDUCTOR_REPORT_MAX)
			break;
		seq = at;
		json_array_append_new(batch, json_pack("{s:O, s:O, s:O*, s:O}", "step",
						       json_object_get(e, "step"), "outcome",
						       json_object_get(e, "outcome"), "reason",
						       json_object_get(e, "reason"), "time",
						       json_object_get(e, "time")));
	}
	if (json_array_size(batch) == 0)
		goto out;
	if (conductor_report_events(c, batch) == 0) {
		struct ob_msg *m = msg_new(OB_MSG_DELIVERED);

		w->conductor_sent = seq;
		if (m != NULL) {
			m->dest = OB_DEST_CONDUCTOR;
			m->seq = seq;
		}
		post(w, m);
		rc = 1;
	} else {
		log_warn("onboarding: progress reports not delivered to the conductor yet: %s",
			 or_errmsg());
		rc = -1;
	}
out:
	json_decref(batch);
	json_decref(list);
	return rc;
}

/*
 * conductor_run's leaving, on this thread: a migrate arrived on c (or, for a
 * router-side migrate, conductor_migrate opened c for this), and the router
 * leaves that conductor next. The step reports this thread told are
 * recorded by the main thread, which publishes them: waits (a bounded while,
 * and not past a stop) until every one is, then delivers all that wait on c,
 * so that conductor sees every step done there. It trusts the main thread to
 * publish what it recorded.
 */
static void
on_leaving(void *arg, struct conductor_conn *c)
{
	struct ob_worker *w = arg;
	struct timespec until;
	bool published;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += LEAVING_WAIT_S;
	pthread_mutex_lock(&w->mu);
	while (w->steps_published < w->steps_posted && !w->quit && !w->stop &&
	       pthread_cond_timedwait(&w->cond, &w->mu, &until) == 0)
		;
	published = w->steps_published >= w->steps_posted;
	pthread_mutex_unlock(&w->mu);
	if (!published)
		log_warn("onboarding: the latest step reports are not recorded yet; leaving the "
			 "conductor without them");
	while (flush_conductor(w, c) == 1)
		;
}

/*
 * conductor_run's tick, on this thread: tells the main thread about the
 * connection and a migration under way, delivers progress reports, and ends
 * the job when the way out changed (unless migrating: a stop would fail it).
 */
static void
on_tick(void *arg, struct conductor_conn *c)
{
	struct ob_worker *w = arg;
	time_t deadline = 0;
	int pending = conductor_migration_pending(w->copts, &deadline);
	struct ob_msg *m;
	unsigned gen;

	pthread_mutex_lock(&w->mu);
	w->migrating = pending == 1;
	gen = w->route_gen;
	if (gen != w->job_route_gen && pending != 1 && !w->stop) {
		log_info("onboarding: the way out changed; reconnecting to the conductor");
		w->stop = 1;
	}
	pthread_mutex_unlock(&w->mu);
	if (pending == 1 && deadline != w->posted_deadline) {
		if ((m = msg_new(OB_MSG_MIGRATING)) != NULL)
			m->deadline = deadline;
		post(w, m);
		w->posted_deadline = deadline;
	}
	if (c != NULL && (!w->connected || strcmp(w->conn_router, conductor_conn_router(c)) != 0 ||
			  strcmp(w->conn_address, conductor_conn_address(c)) != 0)) {
		char which[16] = "";

		conductor_current(w->copts, which);
		snprintf(w->conn_router, sizeof(w->conn_router), "%s", conductor_conn_router(c));
		snprintf(w->conn_address, sizeof(w->conn_address), "%s", conductor_conn_address(c));
		w->connected = true;
		if ((m = msg_new(OB_MSG_CONNECTED)) != NULL)
			m->data = json_pack("{s:s, s:s, s:s}", "router", w->conn_router, "address",
					    w->conn_address, "which", which);
		post(w, m);
	} else if (c == NULL && w->connected) {
		w->connected = false;
		post(w, msg_new(OB_MSG_DISCONNECTED));
	}
	if (c != NULL)
		flush_conductor(w, c);
	flush_cloud(w, false);
}

static struct conductor_client_opts
conductor_opts(struct ob_worker *w, const struct http_proxy *px)
{
	struct conductor_client_opts o = {
		.state_dir = w->conf.state_dir,
		.asset_id = w->conf.asset_id,
		.proxy = px,
		.certkey = w->ck,
		.vault = w->vault,
		.connect_timeout_ms = w->conf.connect_timeout_ms,
		.poll_wait_s = w->conf.poll_wait_s,
		.report = on_report,
		.report_arg = w,
		.tick = on_tick,
		.leaving = on_leaving,
		.cancel = &w->stop,
	};
	return o;
}

/* OB_JOB_CONDUCTOR: the command channel (lib/conductor_client) until stopped. */
static void
job_conductor(struct ob_worker *w, struct ob_msg *m)
{
	struct http_proxy px;
	struct conductor_client_opts o;
	bool direct;
	int rc;

	if (current_route(w, &px, &direct, &w->job_route_gen) == -1) {
		set_reason(m, or_errmsg());
		return;
	}
	o = conductor_opts(w, direct ? NULL : &px);
	refresh_assertion(w, &o);
	w->copts = &o;
	rc = conductor_run(&o, &w->stop);
	if (rc == -1)
		set_reason(m, or_errmsg());
	if (w->connected) {
		w->connected = false;
		post(w, msg_new(OB_MSG_DISCONNECTED));
	}
	w->copts = NULL;
	m->ok = rc == 0;
}

/* OB_JOB_MIGRATE: the router-side migrate to the job's addresses. */
static void
job_migrate(struct ob_worker *w, struct ob_msg *m)
{
	const char *addresses[4];
	struct http_proxy px;
	struct conductor_client_opts o;
	bool direct;
	int rc;

	if (current_route(w, &px, &direct, &w->job_route_gen) == -1) {
		set_reason(m, or_errmsg());
		return;
	}
	for (size_t i = 0; i < w->job.n_addresses && i < 4; i++)
		addresses[i] = w->job.addresses[i];
	o = conductor_opts(w, direct ? NULL : &px);
	w->copts = &o;
	rc = conductor_migrate(&o, addresses, w->job.n_addresses, w->job.window_s, 0);
	if (rc == -1)
		set_reason(m, or_errmsg());
	w->copts = NULL;
	m->ok = rc == 0;
}

/* ---- the thread ---------------------------------------------------------- */

/* Runs the job in hand, filling m with its result. */
static void
execute_job(struct ob_worker *w, struct ob_msg *m)
{
	m->job = w->job.kind;
	if (w->job.kind != OB_JOB_OPEN && device_open(w) == -1) {
		set_reason(m, or_errmsg());
	} else {
		switch (w->job.kind) {
		case OB_JOB_OPEN:
			job_open(w, m);
			break;
		case OB_JOB_PHONE_HOME:
			job_phone_home(w, m);
			break;
		case OB_JOB_AUTHENTICATE:
			job_authenticate(w, m);
			break;
		case OB_JOB_ONBOARDING_INFO:
			job_onboarding_info(w, m);
			break;
		case OB_JOB_CONDUCTOR:
			job_conductor(w, m);
			break;
		case OB_JOB_MIGRATE:
			job_migrate(w, m);
			break;
		case OB_JOB_REPORT:
			job_report(w, m);
			break;
		case OB_JOB_NONE:
			m->ok = true;
			break;
		}
	}
	/* A cloud step that got through also delivers what waited (diagnostics first). */
	if (m->ok && (w->job.kind == OB_JOB_AUTHENTICATE || w->job.kind == OB_JOB_ONBOARDING_INFO))
		flush_cloud(w, true);
}

/*
 * Runs one job; returns its result for the caller to post once the worker is
 * free (NULL when out of memory: the job still ran, its result is lost).
 */
static struct ob_msg *
run_job(struct ob_worker *w)
{
	struct ob_msg *m = msg_new(OB_MSG_JOB_DONE);
	struct ob_msg scratch = {0};

	if (m != NULL) {
		execute_job(w, m);
		return m;
	}
	execute_job(w, &scratch);
	json_decref(scratch.data);
	return NULL;
}

/* The thread: waits for a job, runs it, until told to quit. */
static void *
worker_main(void *arg)
{
	struct ob_worker *w = arg;
	struct ob_msg *done;

	for (;;) {
		pthread_mutex_lock(&w->mu);
		while (!w->has_job && !w->quit)
			pthread_cond_wait(&w->cond, &w->mu);
		if (w->quit) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		w->has_job = false;
		w->busy = true;
		pthread_mutex_unlock(&w->mu);

		done = run_job(w);

		/*
		 * Free before the result is told: the main thread hands over the
		 * next job as soon as it reads it, and a busy worker would refuse it.
		 */
		pthread_mutex_lock(&w->mu);
		w->busy = false;
		pthread_mutex_unlock(&w->mu);
		if (done != NULL)
			post(w, done);
		else
			log_error("onboarding: out of memory, a job's result was lost");
	}
	pthread_mutex_lock(&w->mu);
	w->finished = true;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int
onboard_worker_start(struct ob_worker_conf *conf, struct ob_worker **out)
{
	struct ob_worker *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (w == NULL) {
		free(conf->redirector_ca_pem);
		return or_error("out of memory");
	}
	w->conf = *conf;
	conf->redirector_ca_pem = NULL;
	w->wake[0] = w->wake[1] = -1;
	w->report_backoff.base_ms = REPORT_BACKOFF_BASE_MS;
	w->report_backoff.cap_ms = REPORT_BACKOFF_CAP_MS;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) == -1) {
		or_error("cannot make the worker's pipe: %s", strerror(errno));
		goto fail;
	}
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		or_error("cannot start the onboarding worker thread");
		goto fail;
	}
	w->thread_started = true;
	*out = w;
	return 0;
fail:
	onboard_worker_stop(w, 0);
	return -1;
}

int
onboard_worker_fd(const struct ob_worker *w)
{
	return w->wake[0];
}

int
onboard_worker_submit(struct ob_worker *w, const struct ob_job *job)
{
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	if (w->has_job || w->busy) {
		rc = or_error("the onboarding worker is busy");
	} else {
		w->job = *job;
		w->has_job = true;
		w->stop = 0;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void
onboard_worker_stop_job(struct ob_worker *w)
{
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	/* A worker waiting in on_leaving stops waiting. */
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

struct ob_msg *
onboard_worker_take(struct ob_worker *w)
{
	struct ob_msg *list;
	char buf[64];

	while (read(w->wake[0], buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&w->mu);
	list = w->msgs;
	w->msgs = w->msgs_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	return list;
}

void
onboard_worker_set_route(struct ob_worker *w, enum ob_route route, const char *host, unsigned port)
{
	pthread_mutex_lock(&w->mu);
	if (route != w->route || port != w->route_port ||
	    strcmp(host ? host : "", w->route_host) != 0) {
		w->route = route;
		snprintf(w->route_host, sizeof(w->route_host), "%s", host ? host : "");
		w->route_port = port;
		w->route_gen++;
	}
	pthread_mutex_unlock(&w->mu);
}

void
onboard_worker_set_cloud(struct ob_worker *w, const char *url, const char *ca_pem)
{
	char *u = url ? strdup(url) : NULL, *c = ca_pem ? strdup(ca_pem) : NULL;

	pthread_mutex_lock(&w->mu);
	free(w->cloud_url);
	free(w->cloud_ca);
	w->cloud_url = u;
	w->cloud_ca = c;
	pthread_mutex_unlock(&w->mu);
}

void
onboard_worker_set_pending(struct ob_worker *w, enum ob_dest dest, json_t *events)
{
	json_t *old;

	pthread_mutex_lock(&w->mu);
	old = w->pending[dest];
	w->pending[dest] = events;
	pthread_mutex_unlock(&w->mu);
	json_decref(old);
}

void
onboard_worker_set_steps_published(struct ob_worker *w, unsigned long step)
{
	pthread_mutex_lock(&w->mu);
	if (step > w->steps_published)
		w->steps_published = step;
	/* The worker may wait for it before leaving a conductor (on_leaving). */
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

bool
onboard_worker_stop(struct ob_worker *w, unsigned wait_s)
{
	struct ob_msg *m, *next;
	bool ended = true;

	if (w == NULL)
		return true;
	if (w->thread_started) {
		struct timespec until;

		pthread_mutex_lock(&w->mu);
		w->quit = true;
		/* A stop in the middle of a migration would fail it: it resumes at the next start.
		 */
		if (!w->migrating)
			w->stop = 1;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->mu);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait_s;
		if (pthread_timedjoin_np(w->thread, NULL, &until) != 0) {
			log_warn(
				"onboarding: the worker is still in a request; not waiting for it");
			return false;
		}
	}
	for (m = w->msgs; m != NULL; m = next) {
		next = m->next;
		ob_msg_free(m);
	}
	for (int d = 0; d < OB_DEST_COUNT; d++)
		json_decref(w->pending[d]);
	certkey_close(w->ck);
	vault_close(w->vault);
	identity_close(w->id);
	tpm_close(w->tpm);
	secret_free(&w->token);
	free(w->cloud_url);
	free(w->cloud_ca);
	free(w->conf.redirector_ca_pem);
	if (w->wake[0] != -1)
		close(w->wake[0]);
	if (w->wake[1] != -1)
		close(w->wake[1]);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w);
	return ended;
}
