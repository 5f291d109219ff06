/*
 * The router progress state machine. Everything here is a function of its
 * arguments; the tables are the specification (docs/protocol-conductor.md,
 * "Asset states").
 */
#include "asset_state.h"

#include "core/error.h"

#include <string.h>

static const char *const progress_names[AP_COUNT] = {
	"pending", "connected", "certified", "configured", "migrating", "migrated", "running",
};

static const char *const state_names[AS_COUNT] = {
	"unknown",   "pending",	 "connected", "certified",    "configured",
	"migrating", "migrated", "running",   "disconnected", "denied",
};

static const char *const event_names[AE_COUNT] = {
	"authenticated", "certificate acknowledged", "configuration acknowledged",
	"migrate sent",	 "migration succeeded",	     "migration failed",
	"migrated in",
};

/* The stored name of a progress value. */
const char *
asset_progress_name(enum asset_progress p)
{
	return (unsigned)p < AP_COUNT ? progress_names[p] : "invalid";
}

/* Parses a stored progress name; anything else is refused. */
int
asset_progress_parse(const char *name, enum asset_progress *out)
{
	for (int i = 0; i < AP_COUNT; i++)
		if (strcmp(name, progress_names[i]) == 0) {
			*out = (enum asset_progress)i;
			return 0;
		}
	return or_error("'%s' is not a router progress state", name);
}

/* The name operators see for a state. */
const char *
asset_state_name(enum asset_state s)
{
	return (unsigned)s < AS_COUNT ? state_names[s] : "invalid";
}

/* The name of an event, for logs and errors. */
const char *
asset_event_name(enum asset_event e)
{
	return (unsigned)e < AE_COUNT ? event_names[e] : "invalid";
}

/* A certificate or configuration acknowledged: where it leads from cur, or -1. */
static int
after_ack(enum asset_role role, enum asset_progress cur, enum asset_event ev)
{
	switch (cur) {
	case AP_CONNECTED:
		if (ev == AE_CERT_ACKED)
			return AP_CERTIFIED;
		return role == ROLE_PRODUCTION ? AP_RUNNING : AP_CONFIGURED;
	case AP_CERTIFIED:
		if (ev == AE_CERT_ACKED)
			return AP_CERTIFIED;
		return role == ROLE_PRODUCTION ? AP_RUNNING : AP_CONFIGURED;
	case AP_CONFIGURED:
		/* A renewed certificate keeps it configured. */
		if (ev == AE_CONFIG_ACKED && role == ROLE_PRODUCTION)
			return AP_RUNNING;
		return AP_CONFIGURED;
	case AP_RUNNING:
	case AP_MIGRATING: /* an acknowledgement still in flight when migrate was sent */
		return cur;
	default:
		return -1;
	}
}

/* The transition table: the progress after ev, or -1 when ev cannot happen in cur. */
int
asset_next(enum asset_role role, enum asset_progress cur, enum asset_progress resume,
	   enum asset_event ev, enum asset_progress *next)
{
	int to = -1;

	if ((unsigned)cur >= AP_COUNT || (unsigned)ev >= AE_COUNT)
		return or_error("invalid router state or event");
	switch (ev) {
	case AE_AUTHENTICATED:
		to = cur == AP_PENDING ? AP_CONNECTED : (int)cur;
		break;
	case AE_CERT_ACKED:
	case AE_CONFIG_ACKED:
		to = after_ack(role, cur, ev);
		break;
	case AE_MIGRATE_SENT:
		if (cur != AP_PENDING && cur != AP_MIGRATING)
			to = AP_MIGRATING;
		break;
	case AE_MIGRATE_SUCCEEDED:
		if (cur == AP_MIGRATING || cur == AP_MIGRATED)
			to = AP_MIGRATED;
		break;
	case AE_MIGRATE_FAILED:
		if (cur == AP_MIGRATING && resume != AP_MIGRATING && (unsigned)resume < AP_COUNT)
			to = resume;
		break;
	case AE_MIGRATED_IN:
		if (cur == AP_CONFIGURED || cur == AP_RUNNING)
			to = AP_RUNNING;
		else if (cur == AP_CONNECTED || cur == AP_CERTIFIED)
			to = cur;
		break;
	default:
		break;
	}
	if (to < 0)
		return or_error("'%s' cannot happen to a router that is %s", asset_event_name(ev),
				asset_progress_name(cur));
	*next = (enum asset_progress)to;
	return 0;
}

/* The policy of migrate: configured or running and online, unless forced; never twice at once. */
int
asset_may_migrate(enum asset_progress cur, bool online, bool force)
{
	if (cur == AP_MIGRATING)
		return or_error("a migration is already under way");
	if (cur == AP_PENDING)
		return or_error("the router has never connected");
	if (force)
		return 0;
	if (cur != AP_CONFIGURED && cur != AP_RUNNING)
		return or_error("the router is %s, not configured (--force to migrate anyway)",
				asset_progress_name(cur));
	if (!online)
		return or_error("the router is not connected (--force to migrate anyway)");
	return 0;
}

/* See asset_state.h: a bound device owns the asset ID; a pending router's is only a label. */
int
asset_may_reassign(enum asset_progress cur, bool device_bound)
{
	if (device_bound || cur != AP_PENDING)
		return or_error("a device has already authenticated with its asset ID (the router "
				"is %s); delete the router and add it again to give it another",
				asset_progress_name(cur));
	return 0;
}

/* See asset_state.h. */
int
asset_may_delete(bool online, bool force)
{
	if (online && !force)
		return or_error("the router is connected (--force deletes it anyway and ends its "
				"session)");
	return 0;
}

/*
 * Online while polling, or when the last contact is at most window_s old (and not in the
 * future).
 */
bool
asset_online(bool polling, time_t last_contact, time_t now, unsigned window_s)
{
	if (polling)
		return true;
	return last_contact > 0 && now >= last_contact && now - last_contact <= (time_t)window_s;
}

/* Progress with liveness laid over it. */
enum asset_state
asset_display(enum asset_progress p, bool online)
{
	switch (p) {
	case AP_PENDING:
		return AS_PENDING;
	case AP_MIGRATING:
		return AS_MIGRATING;
	case AP_MIGRATED:
		return AS_MIGRATED;
	case AP_CONNECTED:
		return online ? AS_CONNECTED : AS_DISCONNECTED;
	case AP_CERTIFIED:
		return online ? AS_CERTIFIED : AS_DISCONNECTED;
	case AP_CONFIGURED:
		return online ? AS_CONFIGURED : AS_DISCONNECTED;
	case AP_RUNNING:
		return online ? AS_RUNNING : AS_DISCONNECTED;
	default:
		return AS_UNKNOWN;
	}
}
