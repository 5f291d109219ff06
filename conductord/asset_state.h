/*
 * Where a router stands on this conductor, as a pure state machine: no I/O,
 * no clock (the caller passes the time). The conductor stores a router's
 * progress; what operators see (`onrampctl conductor show assets`) is the
 * progress with liveness laid over it (a router that stopped polling shows
 * as `disconnected`), plus the asset IDs that are not routers here
 * (`unknown`) or that a second device tried to take (`denied`).
 */
#ifndef ONRAMP_ASSET_STATE_H
#define ONRAMP_ASSET_STATE_H

#include <stdbool.h>
#include <time.h>

enum asset_role { ROLE_STAGING = 0, ROLE_PRODUCTION };

/* Stored progress of a router added here. */
enum asset_progress {
	AP_PENDING = 0, /* added, never authenticated */
	AP_CONNECTED,	/* authenticated with the pre-shared secret */
	AP_CERTIFIED,	/* its certificate was issued and acknowledged */
	AP_CONFIGURED,	/* the current peering configuration was acknowledged */
	AP_MIGRATING,	/* told to migrate; waiting for its report */
	AP_MIGRATED,	/* reported that it runs on its new conductor */
	AP_RUNNING,	/* production: configured and managed here */
	AP_COUNT
};

/* What operators see. */
enum asset_state {
	AS_UNKNOWN = 0,
	AS_PENDING,
	AS_CONNECTED,
	AS_CERTIFIED,
	AS_CONFIGURED,
	AS_MIGRATING,
	AS_MIGRATED,
	AS_RUNNING,
	AS_DISCONNECTED,
	AS_DENIED,
	AS_COUNT
};

enum asset_event {
	AE_AUTHENTICATED = 0, /* the router proved the secret on a new connection */
	AE_CERT_ACKED,	      /* it acknowledged a certificate */
	AE_CONFIG_ACKED,      /* it acknowledged the current configuration's hash */
	AE_MIGRATE_SENT,      /* a migrate command was queued for it */
	AE_MIGRATE_SUCCEEDED, /* it reported reaching the new conductor */
	AE_MIGRATE_FAILED,    /* it reported returning here, with a reason */
	AE_MIGRATED_IN,	      /* it arrived here by a migration from another conductor */
	AE_COUNT
};

const char *asset_progress_name(enum asset_progress p);
int asset_progress_parse(const char *name, enum asset_progress *out);
const char *asset_state_name(enum asset_state s);
const char *asset_event_name(enum asset_event e);

/*
 * The progress after event ev. resume is the progress to return to when a
 * migration fails (the progress before AE_MIGRATE_SENT; the caller stores
 * it). Returns -1 (with or_error) for an event that cannot happen in cur,
 * leaving *next unchanged.
 */
int asset_next(enum asset_role role, enum asset_progress cur, enum asset_progress resume,
	       enum asset_event ev, enum asset_progress *next);

/*
 * Whether `migrate` may start: the router must be configured (or running)
 * and online, and no migration may be under way. force skips the first two
 * checks, never the third. On refusal, -1 with the reason in or_error.
 */
int asset_may_migrate(enum asset_progress cur, bool online, bool force);

/*
 * Whether a router's asset ID may be changed (`router set --asset-id`): only
 * while no device has authenticated as it (still pending, no device key
 * bound). Once a device is bound, the asset ID is that device's. On refusal,
 * -1 with the reason in or_error.
 */
int asset_may_reassign(enum asset_progress cur, bool device_bound);

/*
 * Whether a router may be deleted: not while it is online, unless forced
 * (which also ends its session). On refusal, -1 with the reason in or_error.
 */
int asset_may_delete(bool online, bool force);

/*
 * A router is online while it holds a command poll open or has polled within
 * window_s seconds.
 */
bool asset_online(bool polling, time_t last_contact, time_t now, unsigned window_s);

/* The state shown for a router with this progress and liveness. */
enum asset_state asset_display(enum asset_progress p, bool online);

#endif
