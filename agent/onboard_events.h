/*
 * The onboarding flow's progress reports, as a pure engine (no I/O, no clock):
 * every step's outcome with its time and reason, and the alarms of the proxy
 * book, kept in order with a sequence number and delivered to two places, the
 * organisation's cloud and the conductor the router is connected to, each of
 * which may be unreachable for a long time. What happens before any server
 * answers (proxy 407/403, proxy unreachable, DNS, untrusted certificate, not
 * claimed yet) is kept here until a server takes it.
 *
 * The list is part of the agent's state file, so a report survives a restart.
 * A failure repeated while nothing was delivered is kept once, with a count,
 * so days of "not claimed yet" take one entry.
 */
#ifndef ONRAMP_ONBOARD_EVENTS_H
#define ONRAMP_ONBOARD_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define OB_EVENT_STEP_MAX 32	/* the cloud's limit: 1 to 32 of a-z 0-9 - */
#define OB_EVENT_REASON_MAX 256 /* the cloud's limit, printable ASCII */
#define OB_EVENTS_KEEP 256

enum ob_dest { OB_DEST_CLOUD = 0, OB_DEST_CONDUCTOR, OB_DEST_COUNT };

struct ob_event {
	unsigned long seq;
	char step[OB_EVENT_STEP_MAX + 1];
	time_t time;	 /* the latest occurrence */
	char outcome[8]; /* "started", "ok", "failed" */
	char reason[OB_EVENT_REASON_MAX];
	unsigned count;		/* occurrences folded into this entry */
	unsigned long alarm_id; /* 0: not an alarm */
	bool alarm_cleared;
};

struct ob_events {
	struct ob_event list[OB_EVENTS_KEEP]; /* oldest first */
	size_t count;
	unsigned long next_seq;
	unsigned long sent[OB_DEST_COUNT]; /* events up to this seq were delivered there */
	unsigned long dropped;		   /* entries lost to the size limit, for the log */
};

void ob_events_init(struct ob_events *ev);

/*
 * Adds an event; returns its seq. reason may be NULL; it is cut to the cloud's
 * limit and anything not printable becomes '?'. A failure equal to the newest
 * entry (same step and reason) that no destination took yet is folded into it.
 */
unsigned long ob_events_add(struct ob_events *ev, const char *step, time_t when,
			    const char *outcome, const char *reason);

/* An alarm's raise (cleared false) or clear, as step "alarm". */
unsigned long ob_events_add_alarm(struct ob_events *ev, unsigned long alarm_id, bool cleared,
				  const char *text, time_t when);

/* Events not yet delivered to dest. */
size_t ob_events_pending(const struct ob_events *ev, enum ob_dest dest);

/*
 * Up to max undelivered events for dest, oldest first, as
 * [{"seq","step","time" (seconds),"outcome","reason" (or absent)}].
 */
json_t *ob_events_pending_json(const struct ob_events *ev, enum ob_dest dest, size_t max);

/*
 * dest took every event up to seq. Calls fn for each alarm event newly
 * delivered to the cloud (so the caller can mark the alarm reported).
 */
void ob_events_delivered(struct ob_events *ev, enum ob_dest dest, unsigned long seq,
			 void (*fn)(void *arg, const struct ob_event *e), void *arg);

/* The newest event of step whose outcome is "failed", or NULL. */
const struct ob_event *ob_events_last_failure(const struct ob_events *ev, const char *step);

json_t *ob_events_to_json(const struct ob_events *ev);
/* Refuses anything malformed; on error *ev is left as it was. */
int ob_events_from_json(const json_t *json, struct ob_events *ev);

#endif
