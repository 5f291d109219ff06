/*
 * A bounded list of alarms. It trusts its callers for the strings (they are
 * the agent's own) but bounds their copies.
 */
#include "alarm.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"

#include <stdio.h>
#include <string.h>

static const char *const severity_names[] = {"critical", "major", "minor"};

/* The severity as shown and reported. */
const char *
alarm_severity_name(enum alarm_severity severity)
{
	return (unsigned)severity < 3 ? severity_names[severity] : "unknown";
}

/* An empty list; ids start at 1. */
void
alarms_init(struct alarms *a)
{
	memset(a, 0, sizeof(*a));
	a->next_id = 1;
}

/* The active alarm of message about subject, or NULL. */
static struct alarm *
find_active(struct alarms *a, const char *message, const char *subject)
{
	for (size_t i = 0; i < a->count; i++) {
		struct alarm *al = &a->list[i];
		if (al->cleared == 0 && strcmp(al->message, message) == 0 &&
		    strcmp(al->subject, subject) == 0)
			return al;
	}
	return NULL;
}

/* Makes room for one more: drops the oldest cleared and reported alarm, else the oldest. */
static void
make_room(struct alarms *a)
{
	size_t victim = 0;

	if (a->count < ALARM_KEEP)
		return;
	for (size_t i = 0; i < a->count; i++) {
		if (a->list[i].cleared != 0 && a->list[i].reported) {
			victim = i;
			break;
		}
	}
	memmove(&a->list[victim], &a->list[victim + 1],
		(a->count - victim - 1) * sizeof(a->list[0]));
	a->count--;
}

/* Raises (and logs) unless already active. */
unsigned long
alarm_raise(struct alarms *a, enum alarm_severity severity, const char *message,
	    const char *subject, time_t now)
{
	struct alarm *al = find_active(a, message, subject);

	if (al != NULL)
		return al->id;
	make_room(a);
	al = &a->list[a->count++];
	memset(al, 0, sizeof(*al));
	al->id = a->next_id++;
	al->severity = severity;
	snprintf(al->message, sizeof(al->message), "%s", message);
	snprintf(al->subject, sizeof(al->subject), "%s", subject);
	al->raised = now;
	log_error("alarm raised: %s: %s (%s)", alarm_severity_name(severity), message, subject);
	return al->id;
}

/*
 * Clears (and logs); the clearing is to be reported again, unless the alarm
 * lived less than settle_s: its raise was never due, so it is forgotten.
 */
bool
alarm_clear(struct alarms *a, const char *message, const char *subject, time_t now)
{
	struct alarm *al = find_active(a, message, subject);

	if (al == NULL)
		return false;
	if (now - al->raised < (time_t)a->settle_s) {
		log_info("alarm cleared: %s: %s (%s) after %lld s, within %u s: not reported",
			 alarm_severity_name(al->severity), message, subject,
			 (long long)(now - al->raised), a->settle_s);
		memmove(al, al + 1, (size_t)(&a->list[a->count] - (al + 1)) * sizeof(*al));
		a->count--;
		return true;
	}
	al->cleared = now;
	al->reported = false;
	log_info("alarm cleared: %s: %s (%s)", alarm_severity_name(al->severity), message, subject);
	return true;
}

/* True while raised and not cleared. */
bool
alarm_is_active(const struct alarms *a, const char *message, const char *subject)
{
	return find_active((struct alarms *)a, message, subject) != NULL;
}

/* A raise waits until it has lived settle_s; a clear is due at once. */
bool
alarm_due(const struct alarms *a, const struct alarm *al, time_t now)
{
	if (al->reported)
		return false;
	return al->cleared != 0 || now - al->raised >= (time_t)a->settle_s;
}

/* The onboarding flow reported the alarm's latest change. */
void
alarm_mark_reported(struct alarms *a, unsigned long id)
{
	for (size_t i = 0; i < a->count; i++)
		if (a->list[i].id == id)
			a->list[i].reported = true;
}

/* RFC 3339 UTC time, or null for 0. */
static json_t *
time_json(time_t t)
{
	char text[RFC3339_LEN + 1];

	if (t == 0)
		return json_null();
	rfc3339_format(t, text);
	return json_string(text);
}

/* The answer to "show alarms". */
json_t *
alarms_json(const struct alarms *a)
{
	json_t *list = json_array();

	for (size_t i = 0; list != NULL && i < a->count; i++) {
		const struct alarm *al = &a->list[i];
		json_array_append_new(list,
				      json_pack("{sI ss ss ss so so sb}", "id", (json_int_t)al->id,
						"severity", alarm_severity_name(al->severity),
						"message", al->message, "subject", al->subject,
						"raised", time_json(al->raised), "cleared",
						time_json(al->cleared), "reported", al->reported));
	}
	return json_pack("{so}", "alarms", list);
}

/* See alarm.h. */
json_t *
alarm_state_json(const struct alarm *al)
{
	return json_pack("{sI ss ss ss sI sI sb}", "id", (json_int_t)al->id, "severity",
			 alarm_severity_name(al->severity), "message", al->message, "subject",
			 al->subject, "raised", (json_int_t)al->raised, "cleared",
			 (json_int_t)al->cleared, "reported", al->reported);
}

/* See alarm.h. It trusts nothing in item: every field is checked before a change. */
int
alarm_restore(struct alarms *a, json_t *item)
{
	const json_int_t big = (json_int_t)1 << 52;
	const char *severity, *message, *subject;
	json_int_t id, raised, cleared;
	struct alarm al = {0};
	bool reported;
	int s;

	if (!json_is_object(item))
		return or_error("alarm: not an object");
	if (json_get_int(item, "id", true, 1, big, &id) == -1 ||
	    json_get_string(item, "severity", true, 16, &severity) == -1 ||
	    json_get_string(item, "message", true, ALARM_MESSAGE_MAX - 1, &message) == -1 ||
	    json_get_string(item, "subject", true, ALARM_SUBJECT_MAX - 1, &subject) == -1 ||
	    json_get_int(item, "raised", true, 1, big, &raised) == -1 ||
	    json_get_int(item, "cleared", true, 0, big, &cleared) == -1 ||
	    json_get_bool(item, "reported", true, &reported) == -1)
		return or_error_prefix("alarm");
	for (s = 0; s < 3 && strcmp(severity, severity_names[s]) != 0; s++)
		;
	if (s == 3)
		return or_error("alarm %lld: unknown severity '%s'", (long long)id, severity);
	if (cleared != 0 && cleared < raised)
		return or_error("alarm %lld: cleared before it was raised", (long long)id);
	for (size_t i = 0; i < a->count; i++)
		if (a->list[i].id == (unsigned long)id)
			return or_error("alarm %lld: id taken already", (long long)id);
	if (cleared == 0 && find_active(a, message, subject) != NULL)
		return or_error("alarm %lld: active already", (long long)id);
	al.id = (unsigned long)id;
	al.severity = (enum alarm_severity)s;
	snprintf(al.message, sizeof(al.message), "%s", message);
	snprintf(al.subject, sizeof(al.subject), "%s", subject);
	al.raised = (time_t)raised;
	al.cleared = (time_t)cleared;
	al.reported = reported;
	make_room(a);
	a->list[a->count++] = al;
	if (a->next_id <= al.id)
		a->next_id = al.id + 1;
	return 0;
}
