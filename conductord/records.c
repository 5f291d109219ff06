/*
 * Database records of the conductor. Progress changes are compare-and-set
 * (UPDATE ... WHERE progress = the value read), so two loops or two
 * instances on one PostgreSQL never lose a transition.
 */
#include "records.h"

#include "core/error.h"
#include "core/json.h"
#include "poll.h"
#include "server/masterkey.h"
#include "server/store.h"
#include "server/store_listen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_KEPT_TEXT "199" /* progress reports kept per router, less one */
#define CAS_TRIES 8
/* Refused devices kept; past this only known ones are counted (a secret's holder cannot fill the
 * disk). */
#define FOREIGN_MAX_TEXT "10000"

static const char router_cols[] =
	"SELECT name, asset_id, progress, resume, device_key, polling, last_contact, last_error, "
	"config_sha256, CASE WHEN prod_psk IS NULL THEN 0 ELSE 1 END FROM routers WHERE ";

/* Copies a possibly NULL store value into a fixed buffer, truncating. */
static void
copy_text(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* Fills r from the router columns of router_cols starting at column first of row 0. */
static int
router_from_row(const struct store_result *res, int first, struct router_row *r)
{
	copy_text(r->name, sizeof(r->name), store_value(res, 0, first));
	copy_text(r->asset_id, sizeof(r->asset_id), store_value(res, 0, first + 1));
	if (asset_progress_parse(store_value(res, 0, first + 2), &r->progress) == -1)
		return -1;
	if (store_value(res, 0, first + 3) == NULL ||
	    asset_progress_parse(store_value(res, 0, first + 3), &r->resume) == -1)
		r->resume = r->progress;
	copy_text(r->device_key, sizeof(r->device_key), store_value(res, 0, first + 4));
	r->polling = parse_i64(store_value(res, 0, first + 5)) != 0;
	r->last_contact = (time_t)parse_i64(store_value(res, 0, first + 6));
	copy_text(r->last_error, sizeof(r->last_error), store_value(res, 0, first + 7));
	copy_text(r->config_sha256, sizeof(r->config_sha256), store_value(res, 0, first + 8));
	r->has_production = parse_i64(store_value(res, 0, first + 9)) != 0;
	return 0;
}

/* Reads one router's record; the lookup column is a constant of the callers, never input. */
int
router_get(struct worker *w, const char *column, const char *value, struct router_row *r,
	   bool *found)
{
	struct store_result *res = NULL;
	char sql[512];
	int rc = -1;

	*found = false;
	memset(r, 0, sizeof(*r));
	/* column is one of two constants of the callers, never input. */
	snprintf(sql, sizeof(sql), "%s%s = $1", router_cols,
		 strcmp(column, "asset_id") == 0 ? "asset_id" : "name");
	if (store_exec(w->db, sql, &value, 1, &res) == -1)
		return -1;
	if (store_rows(res) == 1) {
		if (router_from_row(res, 0, r) == -1)
			goto out;
		*found = true;
	}
	rc = 0;
out:
	store_result_free(res);
	return rc;
}

/*
 * See records.h: the session and its router in one statement, as every
 * request of a router after its auth asks for both.
 */
int
router_of_session(struct worker *w, const char *token_hash, time_t now, char binding[65],
		  struct router_row *r, bool *session_found, bool *router_found)
{
	struct store_result *res = NULL;
	char when[24];
	int rc = -1;

	*session_found = *router_found = false;
	memset(r, 0, sizeof(*r));
	fmt_i64((long long)now, when);
	if (store_exec(w->db,
		       "SELECT s.binding, r.name, r.asset_id, r.progress, r.resume, r.device_key, "
		       "r.polling, r.last_contact, r.last_error, r.config_sha256, "
		       "CASE WHEN r.prod_psk IS NULL THEN 0 ELSE 1 END "
		       "FROM sessions s LEFT JOIN routers r ON r.name = s.router "
		       "WHERE s.token_hash = $1 AND s.expires > $2",
		       (const char *[]){token_hash, when}, 2, &res) == -1)
		return -1;
	if (store_rows(res) == 1) {
		*session_found = true;
		copy_text(binding, 65, store_value(res, 0, 0));
		if (store_value(res, 0, 1) != NULL) {
			if (router_from_row(res, 1, r) == -1)
				goto out;
			*router_found = true;
		}
	}
	rc = 0;
out:
	store_result_free(res);
	return rc;
}

/* Online: a poll held recently (a dead process's stale flag expires) or a contact within 15 s. */
bool
router_online(struct worker *w, const struct router_row *r, time_t now)
{
	unsigned window = w->c->set.poll_timeout_s + 15;
	/* A held poll whose process died leaves polling = 1: trust it one wait long. */
	bool polling = r->polling && now - r->last_contact <= (time_t)window;

	return asset_online(polling, r->last_contact, now, 15);
}

/*
 * Applies an event by compare-and-set on the stored progress, retrying when another loop changed
 * it.
 */
int
router_event(struct worker *w, const char *name, enum asset_event ev, enum asset_progress *to)
{
	for (int i = 0; i < CAS_TRIES; i++) {
		struct store_result *res = NULL;
		struct router_row r;
		enum asset_progress next, resume;
		bool found;
		long changed;

		if (router_get(w, "name", name, &r, &found) == -1)
			return -1;
		if (!found)
			return or_error("no router named %s", name);
		if (asset_next(w->c->set.role, r.progress, r.resume, ev, &next) == -1)
			return -1;
		resume = ev == AE_MIGRATE_SENT ? r.progress : r.resume;
		if (next == r.progress && resume == r.resume) {
			*to = next;
			return 0;
		}
		if (store_exec(w->db,
			       "UPDATE routers SET progress = $1, resume = $2 WHERE name = $3 AND "
			       "progress = $4",
			       (const char *[]){asset_progress_name(next),
						asset_progress_name(resume), name,
						asset_progress_name(r.progress)},
			       4, &res) == -1)
			return -1;
		changed = store_changes(res);
		store_result_free(res);
		if (changed == 1) {
			log_info("router %s: %s -> %s (%s)", name, asset_progress_name(r.progress),
				 asset_progress_name(next), asset_event_name(ev));
			*to = next;
			return 0;
		}
	}
	return or_error("router %s: its state keeps changing under us", name);
}

/* Sets the last error shown for the router (truncated to CONDUCTOR_ERROR_MAX) and its step. */
int
router_note_error(struct worker *w, const char *name, const char *step, const char *error)
{
	char text[CONDUCTOR_ERROR_MAX];

	copy_text(text, sizeof(text), error);
	return store_exec(
		w->db, "UPDATE routers SET last_error = $1, last_error_step = $2 WHERE name = $3",
		(const char *[]){text, step, name}, 3, NULL);
}

/*
 * Clears the last error when step succeeded: only an error of that step (or of no recorded
 * step, kept from before steps were recorded) is no longer current.
 */
int
router_clear_error(struct worker *w, const char *name, const char *step)
{
	if (step == NULL)
		return store_exec(w->db,
				  "UPDATE routers SET last_error = NULL, last_error_step = NULL "
				  "WHERE name = $1",
				  &name, 1, NULL);
	return store_exec(w->db,
			  "UPDATE routers SET last_error = NULL, last_error_step = NULL WHERE "
			  "name = $1 AND last_error IS NOT NULL AND (last_error_step IS NULL OR "
			  "last_error_step = $2)",
			  (const char *[]){name, step}, 2, NULL);
}

/*
 * Deletes the router's rows, children first (they reference it), with the devices refused as
 * duplicates of its asset ID and their alarm: none of it means anything without the router.
 */
int
router_delete(struct worker *w, const struct router_row *r)
{
	static const char *const by_router[] = {
		"DELETE FROM sessions WHERE router = $1",
		"DELETE FROM commands WHERE router = $1",
		"DELETE FROM certificates WHERE router = $1",
		"DELETE FROM migrations WHERE router = $1",
		"DELETE FROM events WHERE router = $1",
		"DELETE FROM foreign_assets WHERE router = $1",
		"DELETE FROM routers WHERE name = $1",
	};
	const char *name = r->name, *asset_id = r->asset_id;

	for (size_t i = 0; i < sizeof(by_router) / sizeof(by_router[0]); i++)
		if (store_exec(w->db, by_router[i], &name, 1, NULL) == -1)
			return -1;
	return store_exec(w->db,
			  "DELETE FROM alarms WHERE kind = 'duplicate-asset' AND subject = $1",
			  &asset_id, 1, NULL);
}

/* Records contact now, and whether a poll is being held. */
int
router_contact(struct worker *w, const char *name, bool polling)
{
	char now[24];

	fmt_i64((long long)time(NULL), now);
	return store_exec(w->db,
			  "UPDATE routers SET last_contact = $1, polling = $2 WHERE name = $3",
			  (const char *[]){now, polling ? "1" : "0", name}, 3, NULL);
}

/* Appends a command to the router's queue; the caller wakes its poll after committing. */
int
command_queue(struct worker *w, const char *router, const char *kind, json_t *payload,
	      long long *id)
{
	struct store_result *res = NULL;
	char *text = json_dump_compact(payload), now[24];
	int rc = -1;

	if (text == NULL)
		return or_error("out of memory");
	fmt_i64((long long)time(NULL), now);
	if (store_exec(w->db,
		       "INSERT INTO commands (router, kind, payload, created) VALUES ($1, $2, $3, "
		       "$4) RETURNING id",
		       (const char *[]){router, kind, text, now}, 4, &res) == -1)
		goto out;
	if (store_rows(res) != 1) {
		or_error("command queue: no id returned");
		goto out;
	}
	if (id != NULL)
		*id = parse_i64(store_value(res, 0, 0));
	log_info("router %s: queued %s", router, kind);
	rc = 0;
out:
	store_result_free(res);
	free(text);
	return rc;
}

/*
 * Wakes the router's held poll wherever it is held. On PostgreSQL the poll may be held by another
 * instance, so the wake-up goes through the database: every instance's listener (this one's too)
 * wakes the polls it holds for the router. Should the notification fail, this instance's own
 * polls are woken at least; a poll held elsewhere then ends at its timeout as before.
 */
void
command_wake(struct worker *w, const char *router)
{
	if (store_can_notify(w->db)) {
		if (store_notify(w->db, CONDUCTOR_WAKE_CHANNEL, router) == 0)
			return;
		log_warn("router %s: cannot notify the other instances: %s", router, or_errmsg());
	}
	/* Inside the admin request's transaction, a woken poll would not see the command yet. */
	if (store_in_transaction(w->db)) {
		if (w->n_deferred < DEFERRED_WAKES)
			snprintf(w->deferred[w->n_deferred++], sizeof(w->deferred[0]), "%s",
				 router);
		else
			w->deferred_all = true;
		return;
	}
	poll_wake(w->c->polls, router);
}

/* See conductor.h. */
void
command_wake_deferred(struct worker *w)
{
	if (w->deferred_all)
		poll_wake_all(w->c->polls);
	else
		for (unsigned i = 0; i < w->n_deferred; i++)
			poll_wake(w->c->polls, w->deferred[i]);
	w->n_deferred = 0;
	w->deferred_all = false;
}

/*
 * Raises an alarm, or counts a repeat of the same kind and subject; always logged. New alarms
 * are kept up to a bound: unknown asset IDs come from whoever holds a secret, and must not fill
 * the disk.
 */
int
alarm_raise(struct worker *w, const char *severity, const char *kind, const char *subject,
	    const char *message)
{
	char now[24];

	fmt_i64((long long)time(NULL), now);
	log_error("ALARM %s %s [%s]: %s", severity, kind, subject, message);
	return store_exec(w->db,
			  "INSERT INTO alarms (severity, kind, subject, message, raised, last) "
			  "SELECT $1, $2, $3, $4, CAST($5 AS BIGINT), CAST($5 AS BIGINT) WHERE "
			  "(SELECT count(*) FROM alarms) < " FOREIGN_MAX_TEXT
			  " ON CONFLICT (kind, subject) DO UPDATE "
			  "SET last = $5, count = alarms.count + 1, message = $4",
			  (const char *[]){severity, kind, subject, message, now}, 5, NULL);
}

/* Records (or counts again) a refused device by asset ID and device key, up to a bound. */
int
foreign_record(struct worker *w, const char *asset_id, const char *device_key, const char *state,
	       const char *router, const char *peer, const char *reason)
{
	char now[24];

	fmt_i64((long long)time(NULL), now);
	return store_exec(
		w->db,
		"INSERT INTO foreign_assets (asset_id, device_key, state, router, peer, "
		"reason, first_seen, last_seen) SELECT $1, $2, $3, $4, $5, $6, CAST($7 AS BIGINT), "
		"CAST($7 AS BIGINT) WHERE (SELECT count(*) FROM foreign_assets) < " FOREIGN_MAX_TEXT
		" ON CONFLICT (asset_id, device_key) DO UPDATE SET state = $3, router = $4, "
		"peer = $5, reason = $6, last_seen = $7, "
		"attempts = foreign_assets.attempts + 1",
		(const char *[]){asset_id, device_key, state, router, peer, reason, now}, 7, NULL);
}

/*
 * Records the refused device and raises the unknown-asset alarm; the alarm names the routers
 * that no device has authenticated as yet, where a mistyped asset ID would be.
 */
int
foreign_unknown(struct worker *w, const char *asset_id, const char *device_key, const char *serial,
		const char *peer)
{
	struct store_result *res = NULL;
	char message[2048], waiting[512] = "";
	size_t used = 0;
	int rc = -1;

	if (foreign_record(w, asset_id, device_key, "unknown", NULL, peer,
			   "unknown asset ID: no router has it here") == -1 ||
	    store_exec(w->db,
		       "SELECT name, asset_id FROM routers WHERE device_key IS NULL ORDER BY "
		       "created, name LIMIT 4",
		       NULL, 0, &res) == -1)
		return -1;
	/* Three are named; a fourth row only says there are more. */
	for (size_t i = 0; i < store_rows(res) && i < 3 && used < sizeof(waiting); i++) {
		int n = snprintf(waiting + used, sizeof(waiting) - used, "%s%s (asset ID %s)",
				 i ? ", " : "", store_value(res, i, 0), store_value(res, i, 1));

		used += n > 0 ? (size_t)n : 0;
	}
	if (store_rows(res) > 3 && used < sizeof(waiting))
		snprintf(waiting + used, sizeof(waiting) - used, ", ...");
	snprintf(message, sizeof(message),
		 "asset ID %s was presented by the device with key %s, %s, but no router has it; "
		 "%s%s. Correct a router's asset ID with 'onrampctl conductor router set NAME "
		 "--asset-id %s', or dismiss it with 'onrampctl conductor asset forget %s'",
		 asset_id, device_key, serial,
		 waiting[0] ? "routers no device has reached yet: " : "every router has its device",
		 waiting, asset_id, asset_id);
	rc = alarm_raise(w, "warning", "unknown-asset", asset_id, message);
	store_result_free(res);
	return rc;
}

/* Deletes the asset ID's unknown rows and its unknown-asset alarm. */
int
foreign_forget(struct worker *w, const char *asset_id, long *removed)
{
	struct store_result *res = NULL;

	if (store_exec(w->db,
		       "DELETE FROM foreign_assets WHERE asset_id = $1 AND state = 'unknown'",
		       &asset_id, 1, &res) == -1)
		return -1;
	if (removed != NULL)
		*removed = store_changes(res);
	store_result_free(res);
	return store_exec(w->db, "DELETE FROM alarms WHERE kind = 'unknown-asset' AND subject = $1",
			  &asset_id, 1, NULL);
}

/* Reads the secret's revocation; an unknown id counts as revoked (its proof cannot be right). */
int
psk_is_revoked(struct worker *w, const char *psk_id, bool *revoked)
{
	struct store_result *res = NULL;

	*revoked = true;
	if (psk_id == NULL)
		return 0;
	if (store_exec(w->db, "SELECT revoked FROM psks WHERE id = $1", &psk_id, 1, &res) == -1)
		return -1;
	*revoked = store_rows(res) != 1 || store_value(res, 0, 0) != NULL;
	store_result_free(res);
	return 0;
}

/* Opens a value sealed under the master key; refuses a tampered or misplaced one. */
int
unseal(struct worker *w, const char *context, const char *sealed, struct secret *out)
{
	if (sealed == NULL)
		return or_error("no sealed value for %s", context);
	return masterkey_open(w->c->mk, context, sealed, out);
}

/* Keeps a progress report, and drops the router's oldest beyond the newest 200. */
int
event_record(struct worker *w, const char *router, const char *step, const char *outcome,
	     const char *reason, time_t at)
{
	char at_text[24], now[24];

	fmt_i64((long long)at, at_text);
	fmt_i64((long long)time(NULL), now);
	if (store_exec(w->db,
		       "INSERT INTO events (router, step, outcome, reason, at, received) VALUES "
		       "($1, $2, $3, $4, $5, $6)",
		       (const char *[]){router, step, outcome, reason, at_text, now}, 6,
		       NULL) == -1)
		return -1;
	return store_exec(w->db,
			  "DELETE FROM events WHERE router = $1 AND id < (SELECT id FROM events "
			  "WHERE router = $1 ORDER BY id DESC LIMIT 1 OFFSET " EVENTS_KEPT_TEXT ")",
			  &router, 1, NULL);
}
