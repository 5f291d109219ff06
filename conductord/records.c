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
		copy_text(r->name, sizeof(r->name), store_value(res, 0, 0));
		copy_text(r->asset_id, sizeof(r->asset_id), store_value(res, 0, 1));
		if (asset_progress_parse(store_value(res, 0, 2), &r->progress) == -1)
			goto out;
		if (store_value(res, 0, 3) == NULL ||
		    asset_progress_parse(store_value(res, 0, 3), &r->resume) == -1)
			r->resume = r->progress;
		copy_text(r->device_key, sizeof(r->device_key), store_value(res, 0, 4));
		r->polling = parse_i64(store_value(res, 0, 5)) != 0;
		r->last_contact = (time_t)parse_i64(store_value(res, 0, 6));
		copy_text(r->last_error, sizeof(r->last_error), store_value(res, 0, 7));
		copy_text(r->config_sha256, sizeof(r->config_sha256), store_value(res, 0, 8));
		r->has_production = parse_i64(store_value(res, 0, 9)) != 0;
		*found = true;
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

/* Sets or clears the last error shown for the router (truncated to CONDUCTOR_ERROR_MAX). */
int
router_note_error(struct worker *w, const char *name, const char *error)
{
	char text[CONDUCTOR_ERROR_MAX];

	if (error != NULL)
		copy_text(text, sizeof(text), error);
	return store_exec(w->db, "UPDATE routers SET last_error = $1 WHERE name = $2",
			  (const char *[]){error ? text : NULL, name}, 2, NULL);
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
	poll_wake(w->c->polls, router);
}

/* Raises an alarm, or counts a repeat of the same kind and subject; always logged. */
int
alarm_raise(struct worker *w, const char *severity, const char *kind, const char *subject,
	    const char *message)
{
	char now[24];

	fmt_i64((long long)time(NULL), now);
	log_error("ALARM %s %s [%s]: %s", severity, kind, subject, message);
	return store_exec(w->db,
			  "INSERT INTO alarms (severity, kind, subject, message, raised, last) "
			  "VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (kind, subject) DO UPDATE "
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
