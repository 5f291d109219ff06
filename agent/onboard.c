/*
 * The onboarding frontend; see onboard.h. It trusts the engine for what to
 * do, the worker for what happened, and the state file only after state_load
 * verified its checksum and the engine and events checked every field.
 *
 * One rule makes it crash-safe: a step's outcome (and what it produced) is
 * written to the state file before the next job is handed to the worker. A
 * kill -9 between a step's effect and that write makes the step run again,
 * and every step is safe to repeat: phone home and authentication are
 * questions, the onboarding information overwrites the same vault entries,
 * and the conductor client keeps its own state (conductor.json) so that the
 * conductor's commands and a migration resume where they were. At start the
 * engine is brought up to date with what the conductor client stored.
 */
#include "onboard.h"

#include "agent.h"
#include "asset_alarm.h"
#include "core/backoff.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "device/state.h"
#include "onboard_engine.h"
#include "onboard_events.h"
#include "onboard_worker.h"
#include "proto/peering_config.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <limits.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ONRAMP_VERSION
#define ONRAMP_VERSION "dev"
#endif

#define CA_FILE_MAX (64 * 1024)
/* A migration's requests are not cancelled: 4 s for them keeps a stop within the documented 5 s. */
#define WORKER_STOP_WAIT_S 4
#define DIAGNOSTICS_SHOWN 10
/* An alarm's text in a report, so that "critical cleared: TEXT" fits OB_EVENT_REASON_MAX. */
#define ALARM_REPORT_TEXT_MAX (OB_EVENT_REASON_MAX - 1 - sizeof("critical cleared: ") + 1)

struct onboard {
	struct agent *agent;
	bool enabled;
	struct ob_policy policy;
	struct ob_state st;
	struct ob_events ev;
	unsigned long steps_recorded; /* the worker's step reports (OB_MSG_STEP) in ev, by seq */
	json_t *data; /* "device", "cloud", "site", "conductor": what the steps produced */
	char path[PATH_MAX];
	struct ob_worker *w;
	struct event *wake_ev, *tick_ev;
	enum ob_job_kind running;
	bool opened;
	bool dirty;	   /* the last save failed: nothing is dispatched until one works */
	bool kill_pending; /* test-kill-after matched: SIGKILL once saved */
	bool curl_ready;   /* curl_global_init done (undone at stop) */
	struct backoff open_backoff, conductor_backoff, report_backoff;
	time_t open_next, conductor_next, report_next;
	bool up;
	char down_reason[OB_REASON_LEN];
	struct {
		unsigned id;
		const char *state; /* NULL, "requested", "migrating", "succeeded", "failed" */
		char reason[OB_REASON_LEN];
		struct ob_job job;
	} mig;
};

/* ---- small helpers ------------------------------------------------------- */

static json_t *
json_time(time_t t)
{
	char text[RFC3339_LEN + 1];

	if (t == 0)
		return json_null();
	rfc3339_format(t, text);
	return json_string(text);
}

/* Full jitter's random fraction, from OpenSSL's generator. */
static double
jitter(void)
{
	uint32_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 1.0; /* the ceiling: never faster than planned */
	return (double)r / (double)UINT32_MAX;
}

/* A string member of one of the data objects, or NULL. */
static const char *
data_str(const struct onboard *ob, const char *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(ob->data, obj), key));
}

static void
set_up(struct onboard *ob)
{
	if (!ob->up)
		log_info("onboarding: connection up");
	ob->up = true;
	ob->down_reason[0] = '\0';
}

static void
set_down(struct onboard *ob, const char *reason)
{
	ob->up = false;
	snprintf(ob->down_reason, sizeof(ob->down_reason), "%s", reason);
}

/* Whether the test aid test-kill-after names this event: "STEP" (ok) or "STEP:OUTCOME". */
static bool
kill_matches(const struct onboard *ob, const char *step, const char *outcome)
{
	char want[96];

	if (ob->agent->conf.test_kill_after[0] == '\0')
		return false;
	snprintf(want, sizeof(want), "%s:%s", step, outcome);
	return strcmp(ob->agent->conf.test_kill_after, want) == 0 ||
	       (strcmp(outcome, "ok") == 0 && strcmp(ob->agent->conf.test_kill_after, step) == 0);
}

/* Adds a progress report and logs it. */
static void
record(struct onboard *ob, const char *step, const char *outcome, const char *reason)
{
	if (kill_matches(ob, step, outcome))
		ob->kill_pending = true;
	ob_events_add(&ob->ev, step, time(NULL), outcome, reason);
	if (strcmp(outcome, "failed") == 0)
		log_warn("onboarding: %s failed: %s", step, reason ? reason : "");
	else
		log_info("onboarding: %s %s%s%s", step, outcome, reason && *reason ? ": " : "",
			 reason ? reason : "");
}

/* ---- the state file ------------------------------------------------------ */

/* Publishes the undelivered reports to the worker, and which of its step reports they hold. */
static void
publish(struct onboard *ob)
{
	if (ob->w == NULL)
		return;
	for (int d = 0; d < OB_DEST_COUNT; d++)
		onboard_worker_set_pending(
			ob->w, (enum ob_dest)d,
			ob_events_pending_json(&ob->ev, (enum ob_dest)d, OB_EVENTS_KEEP));
	onboard_worker_set_steps_published(ob->w, ob->steps_recorded);
}

/*
 * Writes engine, reports and data atomically. On failure the flow holds
 * (nothing is dispatched) and the tick tries again.
 */
static int
save(struct onboard *ob)
{
	json_t *root = json_deep_copy(ob->data);
	int rc = -1;

	if (root == NULL || json_object_set_new(root, "engine", onboard_to_json(&ob->st)) == -1 ||
	    json_object_set_new(root, "events", ob_events_to_json(&ob->ev)) == -1 ||
	    json_object_set_new(root, "asset_alarms", asset_alarm_state_json(&ob->agent->alarms)) ==
		    -1) {
		or_error("out of memory");
	} else {
		rc = state_save(ob->path, root);
	}
	json_decref(root);
	if (rc == 0 && ob->kill_pending) {
		/* A kill -9 exactly at this step boundary, for the crash tests. */
		log_warn("onboarding: test-kill-after %s: killing myself",
			 ob->agent->conf.test_kill_after);
		raise(SIGKILL);
	}
	if (rc == -1) {
		if (!ob->dirty)
			log_error("onboarding: cannot save %s, holding: %s", ob->path, or_errmsg());
		ob->dirty = true;
	} else {
		ob->dirty = false;
	}
	publish(ob);
	return rc;
}

/* Keeps a state file that passed its checksum but not our checks, and starts over. */
static void
set_aside(struct onboard *ob, const char *why)
{
	char aside[PATH_MAX + 32];

	snprintf(aside, sizeof(aside), "%s.invalid-%ld", ob->path, (long)time(NULL));
	log_error("onboarding: %s: %s; kept as %s, starting over", ob->path, why, aside);
	if (rename(ob->path, aside) == -1)
		log_error("onboarding: cannot rename %s", ob->path);
}

/* Loads the state file, or starts a fresh flow (a bad file is kept aside, never reused). */
static void
load(struct onboard *ob)
{
	json_t *root = NULL, *v;
	const char *key;
	char why[OR_ERRMSG_MAX];

	onboard_init(&ob->st);
	ob_events_init(&ob->ev);
	ob->data = json_object();
	if (state_load(ob->path, &root) == -1) {
		snprintf(why, sizeof(why), "%s", or_errmsg());
		log_error("onboarding: %s; starting over", why);
		record(ob, "state", "failed", why);
		return;
	}
	if (root == NULL)
		return;
	if (onboard_from_json(json_object_get(root, "engine"), &ob->st) == -1 ||
	    ob_events_from_json(json_object_get(root, "events"), &ob->ev) == -1 ||
	    asset_alarm_restore(&ob->agent->alarms, json_object_get(root, "asset_alarms")) == -1) {
		snprintf(why, sizeof(why), "%s", or_errmsg());
		set_aside(ob, why);
		onboard_init(&ob->st);
		ob_events_init(&ob->ev);
		record(ob, "state", "failed", why);
		json_decref(root);
		return;
	}
	json_object_foreach(root, key, v)
	{
		if (json_is_object(v) && strcmp(key, "engine") != 0 && strcmp(key, "events") != 0)
			json_object_set(ob->data, key, v);
	}
	json_decref(root);
	log_info("onboarding: resuming at step %s", onboard_step_name(onboard_current(&ob->st)));
}

/* ---- dispatch ------------------------------------------------------------ */

/*
 * Hands job to the worker; true only when the worker took it. Nothing may be
 * marked started before this says so: a refused job is handed over again at
 * the next dispatch (the worker is busy only for the moment between telling
 * a result and being free again).
 */
static bool
submit(struct onboard *ob, const struct ob_job *job)
{
	if (onboard_worker_submit(ob->w, job) == -1) {
		log_debug("onboarding: %s job not taken yet: %s", ob_job_name(job->kind),
			  or_errmsg());
		return false;
	}
	ob->running = job->kind;
	return true;
}

static bool
submit_kind(struct onboard *ob, enum ob_job_kind kind)
{
	struct ob_job job = {.kind = kind};

	return submit(ob, &job);
}

/* The way out as the proxy book sees it now, for the worker. */
static void
publish_route(struct onboard *ob)
{
	const struct proxy_candidate *c = proxy_book_active(&ob->agent->book);
	char text[PROXY_ADDR_STRLEN], host[PROXY_ADDR_STRLEN];

	if (ob->agent->book.mode == PROXY_MODE_DISABLED) {
		onboard_worker_set_route(ob->w, OB_ROUTE_DIRECT, NULL, 0);
	} else if (c == NULL) {
		onboard_worker_set_route(ob->w, OB_ROUTE_NONE, NULL, 0);
	} else {
		proxy_addr_format(&c->addr, text);
		snprintf(host, sizeof(host), "%.*s", (int)strcspn(text, ":"), text);
		onboard_worker_set_route(ob->w, OB_ROUTE_PROXY, host, c->addr.port);
	}
}

/* OB_FIND_PROXY, right here: the book knows. */
static void
find_proxy(struct onboard *ob, time_t now)
{
	const struct proxy_candidate *c = proxy_book_active(&ob->agent->book);
	char text[PROXY_ADDR_STRLEN], reason[96];

	if (ob->agent->book.mode == PROXY_MODE_DISABLED) {
		onboard_step_done(&ob->st, OB_FIND_PROXY, now);
		record(ob, "find-proxy", "ok", "proxy mode disabled: direct connections");
	} else if (c != NULL) {
		proxy_addr_format(&c->addr, text);
		snprintf(reason, sizeof(reason), "%s (%s)", text, c->source);
		onboard_step_done(&ob->st, OB_FIND_PROXY, now);
		record(ob, "find-proxy", "ok", reason);
	} else {
		snprintf(reason, sizeof(reason), "no management proxy found yet (mode %s)",
			 proxy_mode_name(ob->agent->book.mode));
		onboard_step_failed(&ob->st, &ob->policy, OB_FIND_PROXY, reason, -1, jitter(), now);
		record(ob, "find-proxy", "failed", reason);
		set_down(ob, reason);
	}
	save(ob);
}

/* Starts the conductor channel unless it is backing off after a failure. */
static void
serve_conductor(struct onboard *ob, time_t now)
{
	if (now >= ob->conductor_next)
		submit_kind(ob, OB_JOB_CONDUCTOR);
}

/* Hands the next step to the worker when it is free and the engine says so. */
static void
dispatch(struct onboard *ob)
{
	time_t now = time(NULL);
	struct ob_action a;

	if (!ob->enabled || ob->running != OB_JOB_NONE || ob->dirty)
		return;
	if (!ob->opened) {
		if (now >= ob->open_next)
			submit_kind(ob, OB_JOB_OPEN);
		return;
	}
	if (ob->mig.state != NULL && strcmp(ob->mig.state, "requested") == 0) {
		/* "requested" stays until the worker took the job: the next tick tries again. */
		if (submit(ob, &ob->mig.job))
			ob->mig.state = "migrating";
		return;
	}
	a = onboard_next(&ob->st, now);
	switch (a.kind) {
	case OB_ACT_IDLE:
	case OB_ACT_SERVE_STAGING:
		serve_conductor(ob, now);
		return;
	case OB_ACT_WAIT:
		if (onboard_is_done(&ob->st, OB_AUTHENTICATE) &&
		    ob_events_pending(&ob->ev, OB_DEST_CLOUD) > 0 && now >= ob->report_next)
			submit_kind(ob, OB_JOB_REPORT);
		return;
	case OB_ACT_RUN:
		break;
	}
	switch (a.step) {
	case OB_FIND_PROXY:
		find_proxy(ob, now);
		if (onboard_is_done(&ob->st, OB_FIND_PROXY))
			dispatch(ob);
		return;
	case OB_PHONE_HOME:
		submit_kind(ob, OB_JOB_PHONE_HOME);
		return;
	case OB_AUTHENTICATE:
		submit_kind(ob, OB_JOB_AUTHENTICATE);
		return;
	case OB_ONBOARDING_INFO:
		submit_kind(ob, OB_JOB_ONBOARDING_INFO);
		return;
	default:
		serve_conductor(ob, now);
		return;
	}
}

/* ---- results ------------------------------------------------------------- */

/* Marks every step up to and including last done (facts found on disk). */
static void
done_through(struct onboard *ob, enum ob_step last, time_t now)
{
	for (int s = OB_FIND_PROXY; s <= (int)last; s++)
		if (!onboard_is_done(&ob->st, (enum ob_step)s))
			onboard_step_done(&ob->st, (enum ob_step)s, now);
}

/*
 * A step the conductor client finished and saved just before the agent was
 * stopped: mark it done and report it, as if it had just happened here.
 */
static void
catch_up(struct onboard *ob, enum ob_step step, time_t now)
{
	if (onboard_is_done(&ob->st, step))
		return;
	onboard_step_done(&ob->st, step, now);
	record(ob, onboard_step_name(step), "ok", "done before the agent restarted");
}

/*
 * The device is open: takes what the conductor client stored, so that a
 * kill -9 between its write and ours loses nothing.
 */
static void
opened(struct onboard *ob, json_t *facts)
{
	time_t now = time(NULL), deadline;
	const char *current = json_string_value(json_object_get(facts, "current"));

	ob->opened = true;
	backoff_reset(&ob->open_backoff);
	json_object_set(ob->data, "device", facts);
	if (current != NULL && current[0] != '\0')
		done_through(ob, OB_ONBOARDING_INFO, now);
	if (json_is_true(json_object_get(facts, "certificate")))
		catch_up(ob, OB_CERTIFICATE, now);
	if (json_is_true(json_object_get(facts, "configuration")))
		catch_up(ob, OB_CONFIGURATION, now);
	if (json_is_true(json_object_get(facts, "production")))
		catch_up(ob, OB_PRODUCTION_INFO, now);
	deadline = (time_t)json_integer_value(json_object_get(facts, "migration_deadline"));
	if (current != NULL && strcmp(current, "production") == 0) {
		if (!onboard_is_done(&ob->st, OB_MIGRATE)) {
			done_through(ob, OB_STAGING_CONNECT, now);
			catch_up(ob, OB_MIGRATE, now);
		}
	} else if (deadline != 0 && ob->st.migrate_deadline == 0) {
		onboard_migrate_started(&ob->st, deadline);
	} else if (deadline == 0 && ob->st.migrate_deadline != 0) {
		/* Recorded here but not (or no longer) by the client: it ended on staging. */
		onboard_migrate_failed(&ob->st,
				       "the agent restarted during the migration; on staging", now);
		record(ob, "migrate", "failed", ob->st.last_error);
	}
	if (data_str(ob, "cloud", "url") != NULL)
		onboard_worker_set_cloud(ob->w, data_str(ob, "cloud", "url"),
					 data_str(ob, "cloud", "ca_pem"));
	log_info("onboarding: device %s, asset ID %s; at step %s",
		 json_string_value(json_object_get(facts, "serial")),
		 json_string_value(json_object_get(facts, "asset_id")),
		 onboard_step_name(onboard_current(&ob->st)));
	save(ob);
}

/* A cloud step's outcome: done, or failed with backoff (Retry-After honoured). */
static void
cloud_step_result(struct onboard *ob, enum ob_step step, const struct ob_msg *m,
		  const char *ok_reason)
{
	time_t now = time(NULL);

	if (m->ok) {
		onboard_step_done(&ob->st, step, now);
		record(ob, onboard_step_name(step), "ok", ok_reason);
		set_up(ob);
	} else {
		onboard_step_failed(&ob->st, &ob->policy, step, m->reason, m->retry_after_s,
				    jitter(), now);
		record(ob, onboard_step_name(step), "failed", m->reason);
		set_down(ob, m->reason);
	}
	save(ob);
}

static void
job_done(struct onboard *ob, struct ob_msg *m)
{
	time_t now = time(NULL);
	char reason[OB_REASON_LEN] = "";

	ob->running = OB_JOB_NONE;
	switch (m->job) {
	case OB_JOB_OPEN:
		if (m->ok) {
			opened(ob, m->data);
		} else {
			ob->open_next = now + backoff_next_ms(&ob->open_backoff, -1) / 1000 + 1;
			log_error("onboarding: cannot open the device: %s", m->reason);
			set_down(ob, m->reason);
		}
		break;
	case OB_JOB_PHONE_HOME:
		if (m->ok) {
			json_object_set_new(ob->data, "cloud",
					    json_pack("{s:O, s:O}", "url",
						      json_object_get(m->data, "cloud_url"),
						      "ca_pem",
						      json_object_get(m->data, "cloud_ca_pem")));
			onboard_worker_set_cloud(ob->w, data_str(ob, "cloud", "url"),
						 data_str(ob, "cloud", "ca_pem"));
			snprintf(reason, sizeof(reason), "cloud %s", data_str(ob, "cloud", "url"));
		}
		cloud_step_result(ob, OB_PHONE_HOME, m, reason);
		break;
	case OB_JOB_AUTHENTICATE:
		if (m->redo_phone_home) {
			/* Phone home again; nothing more goes to a cloud that is not ours. */
			onboard_redo_from(&ob->st, OB_PHONE_HOME);
			json_object_del(ob->data, "cloud");
			onboard_worker_set_cloud(ob->w, NULL, NULL);
		}
		cloud_step_result(ob, OB_AUTHENTICATE, m, "mutual OCRA with the cloud");
		break;
	case OB_JOB_ONBOARDING_INFO:
		if (m->ok) {
			json_object_set(ob->data, "site", m->data);
			snprintf(reason, sizeof(reason),
				 "organisation %s, site %s, staging conductor %s",
				 data_str(ob, "site", "organization"), data_str(ob, "site", "site"),
				 json_string_value(
					 json_array_get(json_object_get(m->data, "conductor"), 0)));
		}
		cloud_step_result(ob, OB_ONBOARDING_INFO, m, reason);
		break;
	case OB_JOB_CONDUCTOR:
		if (!m->ok) {
			enum ob_step step = onboard_current(&ob->st);

			ob->conductor_next =
				now + backoff_next_ms(&ob->conductor_backoff, -1) / 1000 + 1;
			onboard_step_failed(&ob->st, &ob->policy, step, m->reason, -1, jitter(),
					    now);
			record(ob, onboard_step_name(step), "failed", m->reason);
			set_down(ob, m->reason);
			save(ob);
		}
		break;
	case OB_JOB_MIGRATE:
		ob->mig.state = m->ok ? "succeeded" : "failed";
		snprintf(ob->mig.reason, sizeof(ob->mig.reason), "%s", m->ok ? "" : m->reason);
		if (!m->ok && ob->st.migrate_deadline != 0 &&
		    !onboard_is_done(&ob->st, OB_MIGRATE)) {
			onboard_migrate_failed(&ob->st, m->reason, now);
			record(ob, "migrate", "failed", m->reason);
			save(ob);
		}
		break;
	case OB_JOB_REPORT:
		if (!m->ok)
			ob->report_next = now + backoff_next_ms(&ob->report_backoff, -1) / 1000 + 1;
		else
			backoff_reset(&ob->report_backoff);
		break;
	case OB_JOB_NONE:
		break;
	}
}

/*
 * The engine wants the onboarding information again (new site settings may
 * cure what staging-connect keeps failing with): the channel to staging ends
 * now, and the next dispatch fetches it from the cloud.
 */
static void
refetching(struct onboard *ob)
{
	record(ob, "onboarding-info", "started",
	       "fetching the site's settings again: the staging conductor is not reached with "
	       "these");
	if (ob->running == OB_JOB_CONDUCTOR)
		onboard_worker_stop_job(ob->w);
}

/* The conductor client's "connect": staging, or production (running). */
static void
connect_report(struct onboard *ob, const struct ob_msg *m, time_t now)
{
	bool production = strcmp(m->which, "production") == 0;
	enum ob_step step = production ? OB_RUNNING : OB_STAGING_CONNECT;
	char reason[OB_REASON_LEN];
	bool had_info;

	if (m->ok) {
		if (production && !onboard_is_done(&ob->st, OB_MIGRATE))
			onboard_step_done(&ob->st, OB_MIGRATE, now);
		onboard_step_done(&ob->st, step, now);
		backoff_reset(&ob->conductor_backoff);
		snprintf(reason, sizeof(reason), "connected to the %s conductor",
			 production ? "production" : "staging");
		record(ob, onboard_step_name(step), "ok", reason);
		asset_alarm_accepted(&ob->agent->alarms, now);
		set_up(ob);
		return;
	}
	if (m->refused_code[0] != '\0')
		asset_alarm_refused(&ob->agent->alarms, m->refused_code, m->refused_address,
				    m->refused_asset_id, now);
	had_info = onboard_is_done(&ob->st, OB_ONBOARDING_INFO);
	if (onboard_is_done(&ob->st, step))
		onboard_connection_lost(&ob->st, m->reason, now);
	else
		onboard_step_failed(&ob->st, &ob->policy, step, m->reason, -1, jitter(), now);
	record(ob, onboard_step_name(step), "failed", m->reason);
	set_down(ob, m->reason);
	if (had_info && !onboard_is_done(&ob->st, OB_ONBOARDING_INFO))
		refetching(ob);
}

/* A step reported by the conductor client. */
static void
step_report(struct onboard *ob, const struct ob_msg *m)
{
	time_t now = time(NULL);
	enum ob_step step;

	if (strcmp(m->step, "connect") == 0) {
		connect_report(ob, m, now);
	} else if (strcmp(m->step, "migrate") == 0) {
		if (m->ok) {
			onboard_step_done(&ob->st, OB_MIGRATE, now);
			record(ob, "migrate", "ok", "on the production conductor");
		} else {
			onboard_migrate_failed(&ob->st, m->reason, now);
			record(ob, "migrate", "failed", m->reason);
			set_down(ob, m->reason);
		}
	} else if (onboard_step_from_name(m->step, &step) == 0) {
		if (m->ok && step == OB_CONFIGURATION)
			mgmt_proxy_apply_stored(ob->agent, now); /* its management-proxy section */
		if (m->ok)
			onboard_step_done(&ob->st, step, now);
		else
			onboard_step_failed(&ob->st, &ob->policy, step, m->reason, -1, jitter(),
					    now);
		record(ob, m->step, m->ok ? "ok" : "failed", m->reason);
	} else {
		record(ob, m->step, m->ok ? "ok" : "failed", m->reason);
	}
	save(ob);
}

/* An alarm event reached the cloud: the alarm's latest change is reported. */
static void
alarm_delivered(void *arg, const struct ob_event *e)
{
	struct onboard *ob = arg;
	struct alarms *al = &ob->agent->alarms;

	for (size_t i = 0; i < al->count; i++)
		if (al->list[i].id == e->alarm_id && (al->list[i].cleared != 0) == e->alarm_cleared)
			alarm_mark_reported(al, e->alarm_id);
}

static void
handle(struct onboard *ob, struct ob_msg *m)
{
	switch (m->kind) {
	case OB_MSG_JOB_DONE:
		job_done(ob, m);
		break;
	case OB_MSG_STEP:
		ob->steps_recorded = m->seq;
		step_report(ob, m);
		break;
	case OB_MSG_CONNECTED:
		json_object_set(ob->data, "conductor", m->data);
		log_info("onboarding: on the %s conductor %s as router %s",
			 data_str(ob, "conductor", "which"), data_str(ob, "conductor", "address"),
			 data_str(ob, "conductor", "router"));
		save(ob);
		break;
	case OB_MSG_DISCONNECTED:
		set_down(ob, "the conductor channel is down; reconnecting");
		break;
	case OB_MSG_MIGRATING:
		if (ob->st.migrate_deadline != m->deadline &&
		    !onboard_is_done(&ob->st, OB_MIGRATE)) {
			char until[RFC3339_LEN + 1], reason[96];

			/*
			 * A router-side migrate recorded its start already; its revert
			 * window opens once staging got its reports: the client's deadline.
			 */
			if (ob->st.migrate_deadline == 0) {
				rfc3339_format(m->deadline, until);
				snprintf(reason, sizeof(reason),
					 "to the production conductor, revert at %s", until);
				record(ob, "migrate", "started", reason);
			}
			onboard_migrate_started(&ob->st, m->deadline);
			save(ob);
		}
		set_down(ob, "migrating to the production conductor");
		break;
	case OB_MSG_DELIVERED:
		ob_events_delivered(&ob->ev, m->dest, m->seq, alarm_delivered, ob);
		save(ob);
		break;
	}
}

/* The worker has messages. */
static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct onboard *ob = arg;
	struct ob_msg *m, *next;

	(void)fd;
	(void)what;
	for (m = onboard_worker_take(ob->w); m != NULL; m = next) {
		next = m->next;
		handle(ob, m);
		ob_msg_free(m);
	}
	dispatch(ob);
}

/* Turns the agent's alarms whose latest change is due (alarm_due) into reports. */
static void
queue_alarms(struct onboard *ob)
{
	const struct alarms *al = &ob->agent->alarms;
	bool added = false;

	for (size_t i = 0; i < al->count; i++) {
		const struct alarm *a = &al->list[i];
		bool cleared = a->cleared != 0, queued = false;
		char body[ALARM_MESSAGE_MAX + ALARM_SUBJECT_MAX + 4], text[sizeof(body) + 32];

		if (!alarm_due(al, a, time(NULL)))
			continue;
		for (size_t j = 0; j < ob->ev.count && !queued; j++)
			queued = ob->ev.list[j].alarm_id == a->id &&
				 ob->ev.list[j].alarm_cleared == cleared;
		if (queued)
			continue;
		/*
		 * The cloud knows an alarm by the text after "raised: " or "cleared: ": it is
		 * cut the same for both, so that the whole report fits the cloud's limit.
		 */
		snprintf(body, sizeof(body), "%s (%s)", a->message, a->subject);
		body[strnlen(body, ALARM_REPORT_TEXT_MAX)] = '\0';
		snprintf(text, sizeof(text), "%s %s: %s", alarm_severity_name(a->severity),
			 cleared ? "cleared" : "raised", body);
		ob_events_add_alarm(&ob->ev, a->id, cleared, text,
				    cleared ? a->cleared : a->raised);
		added = true;
	}
	if (added)
		save(ob);
}

/*
 * The revert window closed long ago and no outcome came (nothing carries the
 * migration out): back on staging, with the reason, and a router-side
 * migrate that waited for the worker ends as failed.
 */
static void
check_overdue_migration(struct onboard *ob, time_t now)
{
	const char *why = "the revert window closed without an outcome; back on staging";

	if (!onboard_migrate_overdue(&ob->st, now) || ob->running == OB_JOB_MIGRATE)
		return;
	onboard_migrate_failed(&ob->st, why, now);
	record(ob, "migrate", "failed", why);
	if (ob->mig.state != NULL &&
	    (strcmp(ob->mig.state, "requested") == 0 || strcmp(ob->mig.state, "migrating") == 0)) {
		ob->mig.state = "failed";
		snprintf(ob->mig.reason, sizeof(ob->mig.reason), "%s", why);
	}
	save(ob);
}

/* Once a second: the way out, alarms, a held save, and whatever is due. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct onboard *ob = arg;

	(void)fd;
	(void)what;
	publish_route(ob);
	queue_alarms(ob);
	if (ob->enabled && ob->opened)
		check_overdue_migration(ob, time(NULL));
	if (ob->dirty)
		save(ob);
	dispatch(ob);
}

/* ---- control commands ---------------------------------------------------- */

/* The steps with their times, for show onboarding. */
static json_t *
steps_json(const struct onboard *ob)
{
	json_t *steps = json_array();

	for (int s = 0; steps != NULL && s < OB_STEP_COUNT; s++)
		json_array_append_new(steps, json_pack("{s:s, s:o}", "step",
						       onboard_step_name((enum ob_step)s), "done",
						       json_time(ob->st.done_at[s])));
	return steps;
}

/* The newest failures, newest first: what went wrong before a server answered, too. */
static json_t *
diagnostics_json(const struct onboard *ob)
{
	json_t *list = json_array();

	for (size_t i = ob->ev.count; list != NULL && i > 0; i--) {
		const struct ob_event *e = &ob->ev.list[i - 1];

		if (strcmp(e->outcome, "failed") != 0)
			continue;
		if (json_array_size(list) == DIAGNOSTICS_SHOWN)
			break;
		json_array_append_new(list,
				      json_pack("{s:s, s:o, s:s, s:i, s:b}", "step", e->step,
						"time", json_time(e->time), "reason", e->reason,
						"count", e->count, "reported",
						e->seq <= ob->ev.sent[OB_DEST_CLOUD] ||
							e->seq <= ob->ev.sent[OB_DEST_CONDUCTOR]));
	}
	return list;
}

/* What the flow is doing now, in a few words. */
static const char *
activity(const struct onboard *ob, const struct ob_action *a)
{
	if (!ob->opened)
		return "opening the device";
	if (a->kind == OB_ACT_IDLE)
		return "done: running on the production conductor";
	if (ob->running == OB_JOB_MIGRATE || ob->st.migrate_deadline != 0)
		return "migrating to the production conductor";
	if (a->kind == OB_ACT_SERVE_STAGING)
		return "connected to the staging conductor, waiting for its commands";
	if (a->kind == OB_ACT_WAIT)
		return "waiting to retry";
	return "in progress";
}

/* A few words on what each kind of wait needs, for a person. */
static const char *
wait_text(const struct onboard *ob, const struct ob_wait *w)
{
	switch (w->kind) {
	case OB_WAITS_DONE:
		return "nothing: onboarding is complete";
	case OB_WAITS_BACKOFF:
		return "a backoff before trying again";
	case OB_WAITS_PROXY:
		return "the management proxy (found, reachable, and accepting this router's "
		       "credentials)";
	case OB_WAITS_CLAIM:
		return "a claim: an organisation's operator to claim this serial in the cloud";
	case OB_WAITS_OPERATOR:
		return w->cause == OB_CAUSE_SETTINGS
			       ? "an operator: the staging conductor refuses or is not reached "
				 "with the site's settings; correct them in the cloud (onrampctl "
				 "cloud site set), the router fetches them again"
			       : "an operator to correct what the last error names";
	case OB_WAITS_CONDUCTOR:
		return onboard_current(&ob->st) == OB_MIGRATE
			       ? "an operator's migrate (from the staging conductor, or "
				 "onrampctl migrate conductor here)"
			       : "the staging conductor's commands";
	case OB_WAITS_NOTHING:
		break;
	}
	if (!ob->opened)
		return "nothing: opening the device";
	return "nothing: the step is under way";
}

/* What the router waits for: {"what", "until", "text"}. */
static json_t *
waiting_json(const struct onboard *ob, time_t now)
{
	struct ob_wait w = onboard_waiting_for(&ob->st, now);

	if (ob->running == OB_JOB_MIGRATE || ob->st.migrate_deadline != 0) {
		/* The conductor client keeps the revert window itself. */
		w.kind = OB_WAITS_NOTHING;
		w.until = 0;
	}
	return json_pack("{s:s, s:o, s:s}", "what", onboard_wait_name(w.kind), "until",
			 json_time(w.until), "text", wait_text(ob, &w));
}

/* Control command "show onboarding". */
static int
show_onboarding(void *arg, json_t *req, json_t **result)
{
	struct onboard *ob = arg;
	struct ob_action a;
	json_t *r;
	char conn[OB_REASON_LEN + 16];

	(void)req;
	if (!ob->enabled) {
		*result = json_pack("{s:b}", "enabled", false);
		return *result ? 0 : or_error("out of memory");
	}
	a = onboard_next(&ob->st, time(NULL));
	if (ob->up)
		snprintf(conn, sizeof(conn), "up");
	else
		snprintf(conn, sizeof(conn), "down - %s",
			 ob->down_reason[0] ? ob->down_reason : "not connected yet");
	r = json_pack("{s:b, s:s, s:s, s:s, s:o, s:o, s:i, s:{s:i, s:i}}", "enabled", true,
		      "current", onboard_step_name(a.step), "activity", activity(ob, &a),
		      "connection", conn, "steps", steps_json(ob), "diagnostics",
		      diagnostics_json(ob), "migrations_failed", ob->st.migrations_failed,
		      "reports_pending", "cloud", (int)ob_events_pending(&ob->ev, OB_DEST_CLOUD),
		      "conductor", (int)ob_events_pending(&ob->ev, OB_DEST_CONDUCTOR));
	if (r == NULL)
		return or_error("out of memory");
	json_object_set_new(r, "done", json_boolean(a.kind == OB_ACT_IDLE));
	json_object_set_new(r, "waiting_for", waiting_json(ob, time(NULL)));
	json_object_set_new(r, "next_attempt", json_time(a.kind == OB_ACT_WAIT ? a.at : 0));
	json_object_set_new(r, "last_error",
			    ob->st.last_error[0]
				    ? json_pack("{s:s, s:s, s:o}", "step",
						onboard_step_name(ob->st.last_error_step), "reason",
						ob->st.last_error, "time",
						json_time(ob->st.last_error_at))
				    : json_null());
	json_object_set_new(r, "migration",
			    ob->st.migrate_deadline ? json_pack("{s:o}", "revert_at",
								json_time(ob->st.migrate_deadline))
						    : json_null());
	json_object_set_new(r, "migrate_fallback_reason",
			    ob->st.migrate_fallback_reason[0]
				    ? json_string(ob->st.migrate_fallback_reason)
				    : json_null());
	json_object_set_new(r, "router_migration",
			    ob->mig.state ? json_pack("{s:i, s:s, s:s}", "id", ob->mig.id, "state",
						      ob->mig.state, "reason", ob->mig.reason)
					  : json_null());
	json_object_set_new(r, "device", json_deep_copy(json_object_get(ob->data, "device")));
	json_object_set_new(r, "site", json_deep_copy(json_object_get(ob->data, "site")));
	json_object_set_new(r, "conductor", json_deep_copy(json_object_get(ob->data, "conductor")));
	json_object_set_new(r, "cloud",
			    data_str(ob, "cloud", "url")
				    ? json_pack("{s:s}", "url", data_str(ob, "cloud", "url"))
				    : json_null());
	*result = r;
	return 0;
}

/* Whether a conductor address names its port (peering_check_address allows none). */
static bool
has_port(const char *a)
{
	const char *colon = strrchr(a, ':');

	return colon != NULL && (a[0] != '[' || colon > strchr(a, ']'));
}

/* Control command "migrate conductor": {"addresses":["host:port", ...]}. */
static int
migrate_conductor(void *arg, json_t *req, json_t **result)
{
	struct onboard *ob = arg;
	json_t *list = json_object_get(req, "addresses"), *v;
	struct ob_job job = {.kind = OB_JOB_MIGRATE};
	char until[RFC3339_LEN + 1], reason[OB_REASON_LEN];
	time_t now = time(NULL);
	size_t i;

	if (!ob->enabled)
		return or_error("onboarding is not configured on this router");
	if (!json_is_array(list) || json_array_size(list) < 1 || json_array_size(list) > 4)
		return or_error("migrate conductor needs 1 to 4 addresses");
	json_array_foreach(list, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) >= sizeof(job.addresses[0]))
			return or_error("address %zu is not a host:port string", i + 1);
		if (peering_check_address(json_string_value(v), "conductor address") == -1)
			return -1;
		if (!has_port(json_string_value(v)))
			return or_error("conductor address '%s' needs a port (host:port)",
					json_string_value(v));
		snprintf(job.addresses[i], sizeof(job.addresses[i]), "%s", json_string_value(v));
	}
	job.n_addresses = json_array_size(list);
	job.window_s = ob->agent->conf.revert_window;
	if (onboard_is_done(&ob->st, OB_MIGRATE))
		return or_error("the router already runs on its production conductor");
	if (!onboard_is_done(&ob->st, OB_PRODUCTION_INFO))
		return or_error("the router has no production conductor details yet (its "
				"secret and root CA come from the staging conductor)");
	if (ob->st.migrate_deadline != 0 ||
	    (ob->mig.state &&
	     (strcmp(ob->mig.state, "requested") == 0 || strcmp(ob->mig.state, "migrating") == 0)))
		return or_error("a migration is under way already");
	if (!onboard_is_done(&ob->st, OB_STAGING_CONNECT))
		return or_error("the router is not connected to its staging conductor");
	ob->mig.id++;
	ob->mig.state = "requested";
	ob->mig.reason[0] = '\0';
	ob->mig.job = job;
	onboard_migrate_started(&ob->st, now + (time_t)job.window_s);
	rfc3339_format(now + (time_t)job.window_s, until);
	snprintf(reason, sizeof(reason), "requested on the router: to %.120s, revert at %s",
		 job.addresses[0], until);
	record(ob, "migrate", "started", reason);
	save(ob);
	/*
	 * The channel to staging ends now (its poll is cancelled); then the worker
	 * delivers the reports of the steps done there, this one too, on a session of
	 * its own (conductor_migrate's leaving), and migrates.
	 */
	if (ob->running == OB_JOB_CONDUCTOR)
		onboard_worker_stop_job(ob->w);
	dispatch(ob);
	*result = json_pack("{s:i, s:s, s:i}", "id", ob->mig.id, "state", ob->mig.state,
			    "revert_window", job.window_s);
	return *result ? 0 : or_error("out of memory");
}

/*
 * Control command "retry": the current step now, not after its backoff (the
 * operator fixed something, e.g. the proxy's password). The frontend's own
 * backoffs are cut too, a proxy probe runs now, and a conductor channel that is
 * down (reconnecting after a pause) starts over at once.
 */
static int
retry(void *arg, json_t *req, json_t **result)
{
	struct onboard *ob = arg;
	time_t now = time(NULL), was;
	enum ob_step before;

	(void)req;
	if (!ob->enabled)
		return or_error("onboarding is not configured on this router");
	if (onboard_is_done(&ob->st, OB_RUNNING) && ob->up)
		return or_error("nothing to retry: the router runs on its production conductor");
	before = onboard_current(&ob->st);
	was = onboard_retry_now(&ob->st, now);
	ob->open_next = ob->conductor_next = ob->report_next = 0;
	backoff_reset(&ob->open_backoff);
	backoff_reset(&ob->conductor_backoff);
	backoff_reset(&ob->report_backoff);
	if (ob->agent->health != NULL)
		health_kick(ob->agent->health);
	if (ob->running == OB_JOB_CONDUCTOR && !ob->up && ob->st.migrate_deadline == 0)
		onboard_worker_stop_job(ob->w);
	if (before == OB_STAGING_CONNECT && !onboard_is_done(&ob->st, OB_ONBOARDING_INFO))
		refetching(ob);
	log_info("onboarding: retry asked on the router at step %s", onboard_step_name(before));
	save(ob);
	dispatch(ob);
	*result =
		json_pack("{s:s, s:o, s:s}", "step", onboard_step_name(onboard_current(&ob->st)),
			  "was_waiting_until", json_time(was), "running", ob_job_name(ob->running));
	return *result ? 0 : or_error("out of memory");
}

/* ---- start and stop ------------------------------------------------------ */

/* The worker's configuration from agent.conf. */
static int
worker_conf(const struct agent_conf *c, struct ob_worker_conf *wc)
{
	uint8_t *pem = NULL;
	size_t len = 0;

	memset(wc, 0, sizeof(*wc));
	if (file_read_all(c->redirector_ca, CA_FILE_MAX, &pem, &len) == -1)
		return or_error_prefix("[onboarding] redirector-ca");
	wc->redirector_ca_pem = (char *)pem;
	snprintf(wc->state_dir, sizeof(wc->state_dir), "%s", c->state_dir);
	snprintf(wc->tcti, sizeof(wc->tcti), "%s", c->tcti);
	snprintf(wc->asset_id, sizeof(wc->asset_id), "%s", c->asset_id);
	snprintf(wc->redirector_url, sizeof(wc->redirector_url), "%s", c->redirector_url);
	snprintf(wc->software_version, sizeof(wc->software_version), "%s", ONRAMP_VERSION);
	wc->connect_timeout_ms = (long)c->connect_timeout * 1000;
	wc->poll_wait_s = c->poll_wait;
	if (c->proxy_user[0] != '\0') {
		wc->proxy_user = c->proxy_user;
		wc->proxy_password = &c->proxy_password;
	}
	wc->proxy_auth = strcmp(c->proxy_auth, "basic") == 0	? PROXY_AUTH_BASIC
			 : strcmp(c->proxy_auth, "digest") == 0 ? PROXY_AUTH_DIGEST
								: PROXY_AUTH_ANY;
	return 0;
}

int
onboard_start(struct agent *agent, struct onboard **out)
{
	const struct agent_conf *c = &agent->conf;
	struct timeval second = {1, 0};
	struct ob_worker_conf wc;
	struct onboard *ob = calloc(1, sizeof(*ob));

	*out = NULL;
	if (ob == NULL)
		return or_error("out of memory");
	ob->agent = agent;
	ob->enabled = c->onboarding;
	*out = ob;
	if (control_register(agent->control, "show onboarding", show_onboarding, ob) == -1 ||
	    control_register(agent->control, "migrate conductor", migrate_conductor, ob) == -1 ||
	    control_register(agent->control, "retry", retry, ob) == -1)
		return -1;
	if (!ob->enabled) {
		log_info("onboarding: not configured (no [onboarding] redirector-url)");
		return 0;
	}
	ob->policy.base_s = c->retry_base;
	ob->policy.cap_s = c->retry_cap;
	ob->policy.min_s = 1;
	ob->policy.revert_window_s = c->revert_window;
	ob->open_backoff =
		(struct backoff){.base_ms = c->retry_base * 1000u, .cap_ms = c->retry_cap * 1000u};
	ob->conductor_backoff = ob->open_backoff;
	ob->report_backoff = ob->open_backoff;
	if ((size_t)snprintf(ob->path, sizeof(ob->path), "%s/%s", c->state_dir,
			     ONBOARD_STATE_FILE) >= sizeof(ob->path))
		return or_error("state-dir is too long");
	if (c->test_kill_after[0] != '\0')
		log_warn("onboarding: test-kill-after = %s is a test aid: the agent kills itself "
			 "there",
			 c->test_kill_after);
	if (c->software_identity)
		log_warn("onboarding: software identity: the device's keys are in files, not in "
			 "a TPM");
	if (worker_conf(c, &wc) == -1)
		return -1;
	/* Once, before any thread: the worker's sessions then never re-initialise libcurl. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return or_error("libcurl could not be initialised");
	ob->curl_ready = true;
	load(ob);
	set_down(ob, "not connected yet");
	if (onboard_worker_start(&wc, &ob->w) == -1)
		return -1;
	ob->wake_ev =
		event_new(agent->base, onboard_worker_fd(ob->w), EV_READ | EV_PERSIST, on_wake, ob);
	ob->tick_ev = event_new(agent->base, -1, EV_PERSIST, on_tick, ob);
	if (ob->wake_ev == NULL || ob->tick_ev == NULL || event_add(ob->wake_ev, NULL) == -1 ||
	    event_add(ob->tick_ev, &second) == -1)
		return or_error("cannot set up the onboarding events");
	publish_route(ob);
	publish(ob);
	log_info("onboarding: redirector %s, state %s", c->redirector_url, ob->path);
	dispatch(ob);
	return 0;
}

bool
onboard_stop(struct onboard *ob)
{
	bool ended = true;

	if (ob == NULL)
		return true;
	if (ob->wake_ev != NULL)
		event_free(ob->wake_ev);
	if (ob->tick_ev != NULL)
		event_free(ob->tick_ev);
	if (ob->w != NULL)
		ended = onboard_worker_stop(ob->w, WORKER_STOP_WAIT_S);
	if (ended)
		ob->w = NULL;
	if (ob->enabled && !ob->dirty)
		save(ob);
	if (!ended)
		return false; /* the worker may still read ob: leave it allocated */
	if (ob->curl_ready)
		curl_global_cleanup();
	json_decref(ob->data);
	free(ob);
	return true;
}
