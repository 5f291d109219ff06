/*
 * The agent's alarms: raised and cleared by the engines, logged, shown by
 * `onrampctl show alarms`, and kept (with their history) until the
 * onboarding flow has reported them to the cloud. No I/O besides the log.
 */
#ifndef ONRAMP_ALARM_H
#define ONRAMP_ALARM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum alarm_severity { ALARM_CRITICAL = 0, ALARM_MAJOR, ALARM_MINOR };

#define ALARM_MESSAGE_MAX 128
#define ALARM_SUBJECT_MAX 460 /* "asset ID " 128 " at conductor " HOST:PORT */
#define ALARM_KEEP 64	      /* raised and cleared alarms kept, oldest reported ones go first */

struct alarm {
	unsigned long id;
	enum alarm_severity severity;
	char message[ALARM_MESSAGE_MAX]; /* "Management Proxy is unreachable" */
	char subject[ALARM_SUBJECT_MAX]; /* what it is about: "10.92.53.8:3128" */
	time_t raised, cleared;		 /* cleared: 0 while active */
	bool reported;			 /* its latest change went to the cloud */
};

struct alarms {
	struct alarm list[ALARM_KEEP];
	size_t count;
	unsigned long next_id;
	/*
	 * 0, or the probe interval: an alarm is reported only once it has lived
	 * that long, and one cleared sooner never leaves the router (it is
	 * logged, then forgotten), so that a start-up flap is no event.
	 */
	unsigned settle_s;
};

/* An empty list that reports every alarm (settle_s 0). */
void alarms_init(struct alarms *a);

/* Raises message about subject unless it is already active; returns its id. */
unsigned long alarm_raise(struct alarms *a, enum alarm_severity severity, const char *message,
			  const char *subject, time_t now);

/*
 * Clears the active alarm of message about subject; false when none was
 * active. One raised less than settle_s ago is dropped from the list.
 */
bool alarm_clear(struct alarms *a, const char *message, const char *subject, time_t now);

bool alarm_is_active(const struct alarms *a, const char *message, const char *subject);

/* True when al's latest change is to be reported now: not yet, and settled. */
bool alarm_due(const struct alarms *a, const struct alarm *al, time_t now);

/* Records that the alarm's latest change (raise or clear) reached the cloud. */
void alarm_mark_reported(struct alarms *a, unsigned long id);

/* {"alarms":[{"id":1,"severity":"critical","message":..,"subject":..,
   "raised":"2026-01-01T00:00:00Z","cleared":null,"reported":false}]}, oldest first. */
json_t *alarms_json(const struct alarms *a);

const char *alarm_severity_name(enum alarm_severity severity);

/*
 * One alarm for a state file: {"id","severity","message","subject","raised",
 * "cleared" (seconds, 0 while active),"reported"}.
 */
json_t *alarm_state_json(const struct alarm *al);

/*
 * Puts back an alarm alarm_state_json wrote (after a restart), with its id,
 * times and reported flag; later ids follow it. -1 (with or_error) when item
 * is malformed or its id or (active) message and subject are taken already.
 */
int alarm_restore(struct alarms *a, json_t *item);

#endif
