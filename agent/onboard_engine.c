/*
 * The onboarding state machine; see onboard_engine.h. Pure: it trusts the
 * frontend for the time and the outcome of each step, and trusts nothing in a
 * state file (onboard_from_json checks every field and the flow's order).
 */
#include "onboard_engine.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

#define OB_STATE_VERSION 1
/* A server's Retry-After is honoured up to this many seconds. */
#define OB_RETRY_AFTER_MAX 3600

static const char *const step_names[OB_STEP_COUNT] = {
	"find-proxy",  "phone-home",	"authenticate",	   "onboarding-info", "staging-connect",
	"certificate", "configuration", "production-info", "migrate",	      "running",
};

const char *
onboard_step_name(enum ob_step step)
{
	return step < OB_STEP_COUNT ? step_names[step] : "unknown";
}

int
onboard_step_from_name(const char *name, enum ob_step *step)
{
	for (int i = 0; i < OB_STEP_COUNT; i++) {
		if (strcmp(name, step_names[i]) == 0) {
			*step = (enum ob_step)i;
			return 0;
		}
	}
	return or_error("unknown onboarding step '%s'", name);
}

void
onboard_init(struct ob_state *st)
{
	memset(st, 0, sizeof(*st));
	st->version = OB_STATE_VERSION;
}

bool
onboard_is_done(const struct ob_state *st, enum ob_step step)
{
	return st->done_at[step] != 0;
}

static bool
is_command_step(enum ob_step step)
{
	return step >= OB_CERTIFICATE && step <= OB_PRODUCTION_INFO;
}

enum ob_step
onboard_current(const struct ob_state *st)
{
	for (int s = OB_FIND_PROXY; s <= OB_STAGING_CONNECT; s++)
		if (!onboard_is_done(st, (enum ob_step)s))
			return (enum ob_step)s;
	if (st->migrate_deadline != 0 && !onboard_is_done(st, OB_MIGRATE))
		return OB_MIGRATE;
	if (onboard_is_done(st, OB_MIGRATE))
		return OB_RUNNING;
	for (int s = OB_CERTIFICATE; s <= OB_PRODUCTION_INFO; s++)
		if (!onboard_is_done(st, (enum ob_step)s))
			return (enum ob_step)s;
	return OB_MIGRATE; /* everything handed over: waiting for the conductor's migrate */
}

struct ob_action
onboard_next(const struct ob_state *st, time_t now)
{
	struct ob_action a = {.step = onboard_current(st)};

	if (onboard_is_done(st, OB_RUNNING)) {
		a.kind = OB_ACT_IDLE;
		a.step = OB_RUNNING;
	} else if (st->next_at > now) {
		a.kind = OB_ACT_WAIT;
		a.at = st->next_at;
	} else if (is_command_step(a.step) || (a.step == OB_MIGRATE && st->migrate_deadline == 0)) {
		/* Commands complete these steps: the frontend serves the channel. */
		a.kind = OB_ACT_SERVE_STAGING;
	} else {
		a.kind = OB_ACT_RUN;
	}
	return a;
}

void
onboard_step_done(struct ob_state *st, enum ob_step step, time_t now)
{
	if (step >= OB_STEP_COUNT)
		return;
	/* A zero time would read as "not done"; the epoch itself is no real clock. */
	st->done_at[step] = now > 0 ? now : 1;
	st->attempt = 0;
	st->next_at = 0;
	if (step == OB_MIGRATE) {
		st->migrate_deadline = 0;
		st->migrate_fallback_reason[0] = '\0';
	}
}

/* Back to staging after a failed migrate: reconnect there and await commands. */
static void
fall_back_to_staging(struct ob_state *st, time_t now)
{
	snprintf(st->migrate_fallback_reason, sizeof(st->migrate_fallback_reason), "%s",
		 st->last_error[0] ? st->last_error
				   : "the production conductor was not reached in time");
	st->migrate_deadline = 0;
	st->migrations_failed++;
	st->done_at[OB_STAGING_CONNECT] = 0;
	st->attempt = 0;
	st->next_at = now;
}

/*
 * Whether reason names word as its class or code: at its start or after a
 * space, followed by ':' ("connect: ...", "POST /v1/auth: 401 bad-proof: ...").
 */
static bool
has_word(const char *reason, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = strstr(reason, word); p != NULL; p = strstr(p + 1, word))
		if ((p == reason || p[-1] == ' ') && p[len] == ':')
			return true;
	return false;
}

/* Whether reason names any of the NULL-terminated words (see has_word). */
static bool
has_any(const char *reason, const char *const *words)
{
	for (; *words != NULL; words++)
		if (has_word(reason, *words))
			return true;
	return false;
}

enum ob_cause
onboard_cause(enum ob_step step, const char *reason)
{
	static const char *const proxy[] = {"proxy-auth", "proxy-unreachable", "proxy-forbidden",
					    "proxy-other", NULL};
	/*
	 * What a wrong secret, asset ID, address, port or root CA at the cloud looks
	 * like, and a secret revoked since the router fetched it.
	 */
	static const char *const settings[] = {"bad-proof",	"revoked-psk", "unknown-asset",
					       "connect",	"dns",	       "timeout",
					       "tls-untrusted", "tls",	       NULL};
	static const char *const operator_words[] = {
		"refused", "locked-out", "cloud-not-proven", "tls-untrusted", "tls", NULL};

	if (reason == NULL)
		return OB_CAUSE_TRANSIENT;
	if (strncmp(reason, "no management proxy", 19) == 0 || has_any(reason, proxy))
		return OB_CAUSE_PROXY;
	if (strncmp(reason, "not claimed yet", 15) == 0)
		return OB_CAUSE_CLAIM;
	if (step == OB_STAGING_CONNECT && has_any(reason, settings))
		return OB_CAUSE_SETTINGS;
	if (step <= OB_ONBOARDING_INFO && has_any(reason, operator_words))
		return OB_CAUSE_OPERATOR;
	return OB_CAUSE_TRANSIENT;
}

/*
 * Whether staging-connect failed for a reason new site settings could cure,
 * with the onboarding information stored and the router not (moving) on
 * production: then fetching that information again may help.
 */
static bool
settings_may_cure(const struct ob_state *st, const char *reason)
{
	return onboard_cause(OB_STAGING_CONNECT, reason) == OB_CAUSE_SETTINGS &&
	       onboard_is_done(st, OB_ONBOARDING_INFO) &&
	       !onboard_is_done(st, OB_STAGING_CONNECT) && !onboard_is_done(st, OB_MIGRATE) &&
	       st->migrate_deadline == 0;
}

/* The onboarding information is to be fetched again, now. */
static void
refetch(struct ob_state *st, time_t now)
{
	st->done_at[OB_ONBOARDING_INFO] = 0;
	st->attempt = 0;
	st->next_at = now;
}

void
onboard_step_failed(struct ob_state *st, const struct ob_policy *policy, enum ob_step step,
		    const char *reason, long retry_after_s, double jitter, time_t now)
{
	unsigned long ceiling = policy->base_s, delay;

	if (step >= OB_STEP_COUNT)
		return;
	snprintf(st->last_error, sizeof(st->last_error), "%s", reason);
	st->last_error_step = step;
	st->last_error_at = now;
	/*
	 * A failed command is reported to the conductor, which decides what next;
	 * the channel stays up, so there is nothing to back off from. A lost
	 * channel is onboard_connection_lost().
	 */
	if (is_command_step(step) || (step == OB_MIGRATE && st->migrate_deadline == 0))
		return;

	st->attempt++;
	for (unsigned i = 1; i < st->attempt && ceiling < policy->cap_s; i++)
		ceiling *= 2;
	if (ceiling > policy->cap_s)
		ceiling = policy->cap_s;
	jitter = jitter < 0 ? 0 : jitter > 1 ? 1 : jitter;
	delay = (unsigned long)(jitter * (double)ceiling);
	if (delay < policy->min_s)
		delay = policy->min_s;
	if (retry_after_s > OB_RETRY_AFTER_MAX)
		retry_after_s = OB_RETRY_AFTER_MAX;
	if (retry_after_s >= 0 && (unsigned long)retry_after_s > delay)
		delay = (unsigned long)retry_after_s;
	st->next_at = now + (time_t)delay;

	if (step == OB_MIGRATE && now >= st->migrate_deadline)
		fall_back_to_staging(st, now);
	/* Once what is stored is older than the refresh interval: the operator may have fixed it.
	 */
	if (step == OB_STAGING_CONNECT && settings_may_cure(st, reason) &&
	    now >= st->done_at[OB_ONBOARDING_INFO] + (time_t)(policy->cap_s < OB_REFETCH_MAX_S
								      ? policy->cap_s
								      : OB_REFETCH_MAX_S))
		refetch(st, now);
}

static const char *const wait_names[] = {
	[OB_WAITS_NOTHING] = "nothing",	  [OB_WAITS_BACKOFF] = "backoff",
	[OB_WAITS_PROXY] = "proxy",	  [OB_WAITS_CLAIM] = "claim",
	[OB_WAITS_OPERATOR] = "operator", [OB_WAITS_CONDUCTOR] = "conductor",
	[OB_WAITS_DONE] = "done",
};

const char *
onboard_wait_name(enum ob_wait_kind kind)
{
	return (unsigned)kind < sizeof(wait_names) / sizeof(wait_names[0]) ? wait_names[kind]
									   : "unknown";
}

struct ob_wait
onboard_waiting_for(const struct ob_state *st, time_t now)
{
	struct ob_action a = onboard_next(st, now);
	struct ob_wait w = {.kind = OB_WAITS_NOTHING, .cause = OB_CAUSE_TRANSIENT};
	/* The last failure speaks for the current step only. */
	bool failing =
		st->last_error[0] != '\0' && st->last_error_step == a.step && a.kind != OB_ACT_IDLE;

	if (a.kind == OB_ACT_WAIT)
		w.until = a.at;
	if (a.kind == OB_ACT_IDLE) {
		w.kind = OB_WAITS_DONE;
	} else if (failing &&
		   (w.cause = onboard_cause(a.step, st->last_error)) != OB_CAUSE_TRANSIENT) {
		w.kind = w.cause == OB_CAUSE_PROXY   ? OB_WAITS_PROXY
			 : w.cause == OB_CAUSE_CLAIM ? OB_WAITS_CLAIM
						     : OB_WAITS_OPERATOR;
	} else if (a.kind == OB_ACT_SERVE_STAGING) {
		w.kind = OB_WAITS_CONDUCTOR;
	} else if (a.kind == OB_ACT_WAIT) {
		w.kind = OB_WAITS_BACKOFF;
	}
	return w;
}

time_t
onboard_retry_now(struct ob_state *st, time_t now)
{
	time_t was = st->next_at > now ? st->next_at : 0;

	st->next_at = 0;
	/* The operator may just have corrected the site's settings: fetch them now. */
	if (onboard_current(st) == OB_STAGING_CONNECT &&
	    st->last_error_step == OB_STAGING_CONNECT && settings_may_cure(st, st->last_error))
		refetch(st, now);
	return was;
}

void
onboard_migrate_requested(struct ob_state *st, const struct ob_policy *policy, time_t now)
{
	st->migrate_deadline = now + (time_t)policy->revert_window_s;
	st->done_at[OB_MIGRATE] = 0;
	st->done_at[OB_RUNNING] = 0;
	st->attempt = 0;
	st->next_at = 0;
}

void
onboard_redo_from(struct ob_state *st, enum ob_step step)
{
	if (step < OB_PHONE_HOME || step > OB_ONBOARDING_INFO ||
	    onboard_is_done(st, OB_STAGING_CONNECT))
		return; /* only the cloud steps, and only before a conductor took over */
	for (int s = step; s <= OB_ONBOARDING_INFO; s++)
		st->done_at[s] = 0;
}

void
onboard_migrate_started(struct ob_state *st, time_t deadline)
{
	if (deadline <= 0)
		deadline = 1;
	st->migrate_deadline = deadline;
	st->done_at[OB_MIGRATE] = 0;
	st->done_at[OB_RUNNING] = 0;
	st->attempt = 0;
	st->next_at = 0;
}

void
onboard_migrate_failed(struct ob_state *st, const char *reason, time_t now)
{
	snprintf(st->last_error, sizeof(st->last_error), "%s", reason);
	st->last_error_step = OB_MIGRATE;
	st->last_error_at = now;
	fall_back_to_staging(st, now);
}

bool
onboard_migrate_check_deadline(struct ob_state *st, time_t now)
{
	if (st->migrate_deadline == 0 || onboard_is_done(st, OB_MIGRATE) ||
	    now < st->migrate_deadline)
		return false;
	fall_back_to_staging(st, now);
	return true;
}

bool
onboard_migrate_overdue(const struct ob_state *st, time_t now)
{
	return st->migrate_deadline != 0 && !onboard_is_done(st, OB_MIGRATE) &&
	       now >= st->migrate_deadline + OB_REVERT_GRACE_S;
}

void
onboard_connection_lost(struct ob_state *st, const char *reason, time_t now)
{
	snprintf(st->last_error, sizeof(st->last_error), "%s", reason);
	st->last_error_at = now;
	if (onboard_is_done(st, OB_MIGRATE)) {
		/* Once on production, stay with it: reconnect there, never revert. */
		st->last_error_step = OB_RUNNING;
		st->done_at[OB_RUNNING] = 0;
	} else {
		st->last_error_step = OB_STAGING_CONNECT;
		st->done_at[OB_STAGING_CONNECT] = 0;
	}
}

json_t *
onboard_to_json(const struct ob_state *st)
{
	json_t *done = json_object(), *root;

	for (int s = 0; s < OB_STEP_COUNT; s++)
		if (st->done_at[s])
			json_object_set_new(done, step_names[s], json_integer(st->done_at[s]));
	root = json_pack("{s:i, s:o, s:i, s:I, s:I, s:i}", "version", st->version, "done", done,
			 "attempt", st->attempt, "next_at", (json_int_t)st->next_at,
			 "migrate_deadline", (json_int_t)st->migrate_deadline, "migrations_failed",
			 st->migrations_failed);
	if (root == NULL)
		return NULL;
	if (st->last_error[0])
		json_object_set_new(root, "last_error",
				    json_pack("{s:s, s:s, s:I}", "step",
					      step_names[st->last_error_step], "reason",
					      st->last_error, "at", (json_int_t)st->last_error_at));
	if (st->migrate_fallback_reason[0])
		json_object_set_new(root, "migrate_fallback_reason",
				    json_string(st->migrate_fallback_reason));
	return root;
}

static int
get_time(const json_t *obj, const char *key, time_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return or_error("onboarding state: '%s' must be a non-negative integer", key);
	*out = (time_t)json_integer_value(v);
	return 0;
}

static int
get_string(const json_t *obj, const char *key, char *out, size_t cap)
{
	json_t *v = json_object_get(obj, key);

	out[0] = '\0';
	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) >= cap)
		return or_error("onboarding state: '%s' must be a string under %zu characters", key,
				cap);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

int
onboard_from_json(const json_t *json, struct ob_state *out)
{
	struct ob_state st;
	const json_t *done, *err, *v;
	const char *key;
	time_t t;

	onboard_init(&st);
	if (!json_is_object(json))
		return or_error("onboarding state is not an object");
	v = json_object_get(json, "version");
	if (!json_is_integer(v) || json_integer_value(v) != OB_STATE_VERSION)
		return or_error("onboarding state has an unknown version");
	done = json_object_get(json, "done");
	if (done != NULL && !json_is_object(done))
		return or_error("onboarding state: 'done' must be an object");
	json_object_foreach((json_t *)done, key, v)
	{
		enum ob_step s = OB_FIND_PROXY;
		if (onboard_step_from_name(key, &s) == -1 || !json_is_integer(v) ||
		    json_integer_value(v) <= 0)
			return or_error("onboarding state: bad entry '%s' in 'done'", key);
		st.done_at[s] = (time_t)json_integer_value(v);
	}
	/* The first steps happen in order; a gap means the file is not ours. */
	for (int s = OB_PHONE_HOME; s <= OB_ONBOARDING_INFO; s++)
		if (st.done_at[s] && !st.done_at[s - 1])
			return or_error("onboarding state: '%s' done before '%s'", step_names[s],
					step_names[s - 1]);
	if (st.done_at[OB_RUNNING] && !st.done_at[OB_MIGRATE])
		return or_error("onboarding state: 'running' without 'migrate'");
	v = json_object_get(json, "attempt");
	if (v != NULL &&
	    (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000))
		return or_error("onboarding state: 'attempt' out of range");
	st.attempt = v ? (unsigned)json_integer_value(v) : 0;
	v = json_object_get(json, "migrations_failed");
	if (v != NULL &&
	    (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000))
		return or_error("onboarding state: 'migrations_failed' out of range");
	st.migrations_failed = v ? (unsigned)json_integer_value(v) : 0;
	if (get_time(json, "next_at", &st.next_at) == -1 ||
	    get_time(json, "migrate_deadline", &st.migrate_deadline) == -1 ||
	    get_string(json, "migrate_fallback_reason", st.migrate_fallback_reason,
		       sizeof(st.migrate_fallback_reason)) == -1)
		return -1;
	err = json_object_get(json, "last_error");
	if (err != NULL) {
		char step[32];
		if (!json_is_object(err) || get_string(err, "step", step, sizeof(step)) == -1 ||
		    onboard_step_from_name(step, &st.last_error_step) == -1 ||
		    get_string(err, "reason", st.last_error, sizeof(st.last_error)) == -1 ||
		    get_time(err, "at", &t) == -1)
			return or_error_prefix("onboarding state: bad 'last_error'");
		st.last_error_at = t;
	}
	*out = st;
	return 0;
}
