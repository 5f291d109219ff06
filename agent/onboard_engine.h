/*
 * The router's onboarding flow as a pure state machine (no I/O, no clock, no
 * randomness: the frontend passes the time in and performs every step).
 *
 * The flow is a fixed list of steps. The engine says which step to run next
 * and when; the frontend runs it and feeds back the outcome. After every event
 * the frontend persists the engine's state (onboard_to_json) atomically before
 * acting, so after a kill -9 or power loss the agent resumes at the step it was
 * in and never repeats a completed one.
 *
 * Steps from OB_CERTIFICATE to OB_PRODUCTION_INFO are done by commands the
 * staging conductor sends, in the order it chooses; OB_MIGRATE starts when the
 * conductor says "migrate" and either reaches the production conductor within
 * the revert window or falls back to staging with the reason kept.
 */
#ifndef ONRAMP_ONBOARD_ENGINE_H
#define ONRAMP_ONBOARD_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum ob_step {
	OB_FIND_PROXY = 0,  /* a management proxy chosen, or none configured */
	OB_PHONE_HOME,	    /* the redirector named this device's cloud */
	OB_AUTHENTICATE,    /* mutual OCRA with the cloud succeeded */
	OB_ONBOARDING_INFO, /* staging conductor, secret and root CA stored */
	OB_STAGING_CONNECT, /* the staging conductor accepted the secret's proof */
	OB_CERTIFICATE,	    /* a certificate was issued for the device's key */
	OB_CONFIGURATION,   /* the peering configuration was applied */
	OB_PRODUCTION_INFO, /* the production conductor's details were stored */
	OB_MIGRATE,	    /* the production conductor accepted the device */
	OB_RUNNING,	    /* managed by the production conductor */
	OB_STEP_COUNT
};

/* What the frontend should do next. */
enum ob_action_kind {
	OB_ACT_RUN,	      /* run `step` now */
	OB_ACT_WAIT,	      /* run `step` at `at` (backoff or Retry-After) */
	OB_ACT_SERVE_STAGING, /* keep the staging conductor's command channel; `step` is awaited */
	OB_ACT_IDLE,	      /* nothing to run: onboarding is complete */
};

struct ob_action {
	enum ob_action_kind kind;
	enum ob_step step;
	time_t at;
};

#define OB_REASON_MAX 256

struct ob_state {
	unsigned version;
	time_t done_at[OB_STEP_COUNT]; /* 0: not done */
	unsigned attempt;	       /* consecutive failures of the current step */
	time_t next_at;		       /* when the current step may run again */
	char last_error[OB_REASON_MAX];
	enum ob_step last_error_step;
	time_t last_error_at;
	time_t migrate_deadline; /* while migrating: give up and return to staging at this time */
	char migrate_fallback_reason[OB_REASON_MAX];
	unsigned migrations_failed;
};

/* Backoff policy: full jitter is applied by the caller through `jitter` (0..1). */
struct ob_policy {
	unsigned base_s;	  /* first retry delay ceiling, e.g. 2 */
	unsigned cap_s;		  /* largest delay ceiling, e.g. 300 */
	unsigned min_s;		  /* never retry faster than this, e.g. 1 */
	unsigned revert_window_s; /* migrate: time allowed to reach production, default 300 */
};

void onboard_init(struct ob_state *st);

/* The step the flow is at: the first one not done, in flow order. */
enum ob_step onboard_current(const struct ob_state *st);

/* The next thing to do, given the time now. */
struct ob_action onboard_next(const struct ob_state *st, time_t now);

/* The step ran and succeeded (commands report their step the same way). */
void onboard_step_done(struct ob_state *st, enum ob_step step, time_t now);

/*
 * The step failed for `reason`; retry_after_s >= 0 is the server's Retry-After.
 * jitter in [0, 1] picks the delay within the backoff ceiling (full jitter).
 */
void onboard_step_failed(struct ob_state *st, const struct ob_policy *policy, enum ob_step step,
			 const char *reason, long retry_after_s, double jitter, time_t now);

/* The staging conductor said "migrate": start the revert window. */
void onboard_migrate_requested(struct ob_state *st, const struct ob_policy *policy, time_t now);

/*
 * A migration is under way until deadline (the conductor client keeps the
 * revert window itself; this tells the engine, e.g. after a restart).
 */
void onboard_migrate_started(struct ob_state *st, time_t deadline);

/* The migration failed and the router is back on staging: keep the reason. */
void onboard_migrate_failed(struct ob_state *st, const char *reason, time_t now);

/*
 * A migration's revert window closed this long ago and no outcome came: the
 * frontend gives up on it (a safety net: the conductor client ends its own
 * attempts at the deadline, and reports the outcome).
 */
#define OB_REVERT_GRACE_S 60

/* Whether the migration under way is overdue (see OB_REVERT_GRACE_S). */
bool onboard_migrate_overdue(const struct ob_state *st, time_t now);

/* Called with the time when the migrate deadline may have passed; true if it fell back. */
bool onboard_migrate_check_deadline(struct ob_state *st, time_t now);

/* The connection to the managing conductor was lost: reconnect is the current step. */
void onboard_connection_lost(struct ob_state *st, const char *reason, time_t now);

/*
 * Makes step (phone-home to onboarding-info) and the later cloud steps run
 * again, e.g. when the cloud the redirector named does not know the device.
 * The backoff already set stays.
 */
void onboard_redo_from(struct ob_state *st, enum ob_step step);

/*
 * Staging-connect failing for a reason the cloud's site settings could cure
 * (see OB_CAUSE_SETTINGS) makes onboard_step_failed fetch the onboarding
 * information again, at most this often (or every retry-cap when shorter), so
 * that an operator's correction reaches the router without a hand on it.
 */
#define OB_REFETCH_MAX_S 30

/* Who can cure a failure, from its reason (the class names lead, see http_err_name). */
enum ob_cause {
	OB_CAUSE_TRANSIENT, /* the network or a server: trying again may do */
	OB_CAUSE_PROXY,	    /* the management proxy: none found, unreachable, or it refuses */
	OB_CAUSE_CLAIM,	    /* no organisation has claimed the serial yet */
	OB_CAUSE_OPERATOR,  /* something an operator must correct (cloud, anchors, lockout) */
	OB_CAUSE_SETTINGS,  /* staging-connect: the site's secret, asset, address or CA */
};

enum ob_cause onboard_cause(enum ob_step step, const char *reason);

/* What the router waits for now, for show onboarding. */
enum ob_wait_kind {
	OB_WAITS_NOTHING,   /* a step runs or is due now */
	OB_WAITS_BACKOFF,   /* its backoff (or the server's Retry-After) until `until` */
	OB_WAITS_PROXY,	    /* the management proxy */
	OB_WAITS_CLAIM,	    /* a claim of the serial in the cloud */
	OB_WAITS_OPERATOR,  /* an operator's correction (the cause says which) */
	OB_WAITS_CONDUCTOR, /* the staging conductor's commands, or an operator's migrate */
	OB_WAITS_DONE,	    /* nothing: onboarding is complete */
};

struct ob_wait {
	enum ob_wait_kind kind;
	enum ob_cause cause;
	time_t until; /* the next try, 0: none planned or now */
};

struct ob_wait onboard_waiting_for(const struct ob_state *st, time_t now);
const char *onboard_wait_name(enum ob_wait_kind kind);

/*
 * The operator asks for the current step now (onrampctl retry): the backoff
 * is cut short. Returns the time it was waiting until (0: it was not waiting).
 */
time_t onboard_retry_now(struct ob_state *st, time_t now);

bool onboard_is_done(const struct ob_state *st, enum ob_step step);
const char *onboard_step_name(enum ob_step step);
int onboard_step_from_name(const char *name, enum ob_step *step);

/* Serialisation for the state file; from_json refuses anything inconsistent. */
json_t *onboard_to_json(const struct ob_state *st);
int onboard_from_json(const json_t *json, struct ob_state *st);

#endif
