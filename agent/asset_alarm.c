/*
 * Raises and clears the asset alarms. It trusts the onboarding frontend for
 * the conductor's code, address and the asset ID presented (the conductor
 * was reached through TLS with its pinned root CA); the alarm list bounds the
 * copies.
 */
#include "asset_alarm.h"

#include "core/error.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Whether message is one of the asset alarms. */
static bool
is_asset_alarm(const char *message)
{
	return strcmp(message, ALARM_ASSET_DUPLICATE) == 0 ||
	       strcmp(message, ALARM_ASSET_UNKNOWN) == 0;
}

/* Clears every active asset alarm but the one of keep_message about keep_subject. */
static void
clear_asset_alarms(struct alarms *a, const char *keep_message, const char *keep_subject, time_t now)
{
	size_t i = 0;

	while (i < a->count) {
		const struct alarm *al = &a->list[i];
		char message[ALARM_MESSAGE_MAX], subject[ALARM_SUBJECT_MAX];
		size_t before = a->count;

		if (al->cleared != 0 || !is_asset_alarm(al->message) ||
		    (keep_message != NULL && strcmp(al->message, keep_message) == 0 &&
		     strcmp(al->subject, keep_subject) == 0)) {
			i++;
			continue;
		}
		/* alarm_clear may drop the entry (a raise not yet settled): copy first. */
		snprintf(message, sizeof(message), "%s", al->message);
		snprintf(subject, sizeof(subject), "%s", al->subject);
		alarm_clear(a, message, subject, now);
		if (a->count == before)
			i++;
	}
}

/* See asset_alarm.h. */
void
asset_alarm_refused(struct alarms *a, const char *code, const char *address, const char *asset_id,
		    time_t now)
{
	char subject[ALARM_SUBJECT_MAX];
	const char *message;
	enum alarm_severity severity;

	if (strcmp(code, "duplicate-asset") == 0) {
		message = ALARM_ASSET_DUPLICATE;
		severity = ALARM_CRITICAL;
	} else if (strcmp(code, "unknown-asset") == 0) {
		message = ALARM_ASSET_UNKNOWN;
		severity = ALARM_MAJOR;
	} else {
		return;
	}
	snprintf(subject, sizeof(subject), "asset ID %s at conductor %s", asset_id, address);
	clear_asset_alarms(a, message, subject, now);
	alarm_raise(a, severity, message, subject, now);
}

/* See asset_alarm.h. */
void
asset_alarm_accepted(struct alarms *a, time_t now)
{
	clear_asset_alarms(a, NULL, NULL, now);
}

/* See asset_alarm.h. */
json_t *
asset_alarm_state_json(const struct alarms *a)
{
	json_t *list = json_array();

	for (size_t i = 0; list != NULL && i < a->count; i++) {
		const struct alarm *al = &a->list[i];

		if (is_asset_alarm(al->message) && (al->cleared == 0 || !al->reported))
			json_array_append_new(list, alarm_state_json(al));
	}
	return list;
}

/* See asset_alarm.h. */
int
asset_alarm_restore(struct alarms *a, json_t *list)
{
	static struct alarms copy; /* large: not on the stack; the agent is one thread here */
	json_t *item;
	size_t i;

	if (list == NULL)
		return 0;
	if (!json_is_array(list) || json_array_size(list) > ALARM_KEEP)
		return or_error("asset alarms: not a list of at most %d alarms", ALARM_KEEP);
	copy = *a;
	json_array_foreach(list, i, item)
	{
		const char *message = json_string_value(json_object_get(item, "message"));

		if (message == NULL || !is_asset_alarm(message))
			return or_error("asset alarms: entry %zu is no asset alarm", i + 1);
		if (alarm_restore(&copy, item) == -1)
			return or_error_prefix("asset alarms: entry %zu", i + 1);
	}
	*a = copy;
	return 0;
}
