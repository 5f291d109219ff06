/*
 * The conductor's records in its database, for the router and admin APIs:
 * routers and their progress, the command queue, alarms, devices that are
 * not (or not allowed to be) a router here. Every function runs on the
 * calling loop's own connection (struct worker).
 */
#ifndef ONRAMP_RECORDS_H
#define ONRAMP_RECORDS_H

#include "conductor.h"
#include "core/x509.h"
#include "proto/conductor_psk.h"

#include <jansson.h>
#include <stdbool.h>

struct router_row {
	char name[64];
	char asset_id[CONDUCTOR_SUBJECT_MAX + 1];
	enum asset_progress progress, resume;
	char device_key[PKI_KEY_ID_LEN + 1]; /* "" while no device is bound */
	bool polling;
	time_t last_contact;
	char last_error[CONDUCTOR_ERROR_MAX];
	char config_sha256[65];
	bool has_production; /* production conductor's secret and CA are set */
};

/* Looks a router up by "name" or "asset_id"; *found false when there is none. */
int router_get(struct worker *w, const char *column, const char *value, struct router_row *r,
	       bool *found);

/*
 * The live (unexpired at now) session of token_hash: the connection binding it
 * was made on, and its router. *session_found false when there is none,
 * *router_found false when its router is gone.
 */
int router_of_session(struct worker *w, const char *token_hash, time_t now, char binding[65],
		      struct router_row *r, bool *session_found, bool *router_found);

/* Whether the router counts as online now (a fresh poll, or a recent contact). */
bool router_online(struct worker *w, const struct router_row *r, time_t now);

/* Applies ev to the router's stored progress, atomically; *to gets the new progress. */
int router_event(struct worker *w, const char *name, enum asset_event ev, enum asset_progress *to);

/* Sets last_error: error of step (the router's current error until that step succeeds). */
int router_note_error(struct worker *w, const char *name, const char *step, const char *error);

/* Clears last_error when it is step's (NULL: whatever its step): that step succeeded. */
int router_clear_error(struct worker *w, const char *name, const char *step);

/* Removes a router and everything kept about it (the caller holds the transaction). */
int router_delete(struct worker *w, const struct router_row *r);

/* Records contact now; polling says whether a poll is held. */
int router_contact(struct worker *w, const char *name, bool polling);

/* Queues a command (payload reference kept by the caller) and wakes the router's poll. */
int command_queue(struct worker *w, const char *router, const char *kind, json_t *payload,
		  long long *id);

/* Wakes the router's held poll (after a commit that queued commands). */
void command_wake(struct worker *w, const char *router);

/* Raises (or repeats) an alarm; it is logged as an error at every raise. */
int alarm_raise(struct worker *w, const char *severity, const char *kind, const char *subject,
		const char *message);

/* Records a device that presented asset_id and was refused ("unknown" or "denied"). */
int foreign_record(struct worker *w, const char *asset_id, const char *device_key,
		   const char *state, const char *router, const char *peer, const char *reason);

/*
 * Records a device refused for an unknown asset ID (with foreign_record, peer
 * kept there) and raises the unknown-asset alarm naming that asset ID, the
 * device's key, the serial it claimed (text of cloud_trust_claimed_serial)
 * and the routers still waiting for their first device (a mistyped asset ID
 * shows there).
 */
int foreign_unknown(struct worker *w, const char *asset_id, const char *device_key,
		    const char *serial, const char *peer);

/*
 * Forgets the unknown-asset rows of asset_id and their alarm; *removed gets
 * how many rows went (may be NULL).
 */
int foreign_forget(struct worker *w, const char *asset_id, long *removed);

/* Whether the secret psk_id (a proof of it was checked) has been revoked. */
int psk_is_revoked(struct worker *w, const char *psk_id, bool *revoked);

/* Opens a sealed value of the database with the master key; context as sealed. */
int unseal(struct worker *w, const char *context, const char *sealed, struct secret *out);

/* Keeps a progress report of the router (bounded: the newest are kept). */
int event_record(struct worker *w, const char *router, const char *step, const char *outcome,
		 const char *reason, time_t at);

#endif
