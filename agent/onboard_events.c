/*
 * The onboarding progress reports; see onboard_events.h. Pure. It trusts the
 * frontend for times and outcomes, and nothing in a state file: every field
 * of ob_events_from_json is checked.
 */
#include "onboard_events.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

void
ob_events_init(struct ob_events *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->next_seq = 1;
}

/* Copies text as printable ASCII (anything else becomes '?'), cut to cap - 1 bytes. */
static void
copy_printable(char *dst, size_t cap, const char *text)
{
	size_t i = 0;

	for (; text != NULL && text[i] != '\0' && i + 1 < cap; i++)
		dst[i] = (text[i] >= 0x20 && text[i] <= 0x7e) ? text[i] : '?';
	dst[i] = '\0';
}

/* Whether no destination took seq yet. */
static bool
undelivered_everywhere(const struct ob_events *ev, unsigned long seq)
{
	for (int d = 0; d < OB_DEST_COUNT; d++)
		if (seq <= ev->sent[d])
			return false;
	return true;
}

/* Makes room for one more entry: the oldest goes. */
static void
make_room(struct ob_events *ev)
{
	if (ev->count < OB_EVENTS_KEEP)
		return;
	memmove(&ev->list[0], &ev->list[1], (OB_EVENTS_KEEP - 1) * sizeof(ev->list[0]));
	ev->count--;
	ev->dropped++;
}

/* A new entry at the end, with the next seq. */
static struct ob_event *
append(struct ob_events *ev, const char *step, time_t when, const char *outcome, const char *reason)
{
	struct ob_event *e;

	make_room(ev);
	e = &ev->list[ev->count++];
	memset(e, 0, sizeof(*e));
	e->seq = ev->next_seq++;
	copy_printable(e->step, sizeof(e->step), step);
	copy_printable(e->outcome, sizeof(e->outcome), outcome);
	copy_printable(e->reason, sizeof(e->reason), reason);
	e->time = when;
	e->count = 1;
	return e;
}

unsigned long
ob_events_add(struct ob_events *ev, const char *step, time_t when, const char *outcome,
	      const char *reason)
{
	char text[OB_EVENT_REASON_MAX];
	struct ob_event *last = ev->count ? &ev->list[ev->count - 1] : NULL;

	copy_printable(text, sizeof(text), reason);
	if (last != NULL && strcmp(outcome, "failed") == 0 &&
	    strcmp(last->outcome, "failed") == 0 &&
	    strncmp(last->step, step, sizeof(last->step)) == 0 && strcmp(last->reason, text) == 0 &&
	    last->alarm_id == 0 && undelivered_everywhere(ev, last->seq)) {
		last->count++;
		last->time = when;
		return last->seq;
	}
	return append(ev, step, when, outcome, text)->seq;
}

unsigned long
ob_events_add_alarm(struct ob_events *ev, unsigned long alarm_id, bool cleared, const char *text,
		    time_t when)
{
	struct ob_event *e = append(ev, "alarm", when, cleared ? "ok" : "failed", text);

	e->alarm_id = alarm_id;
	e->alarm_cleared = cleared;
	return e->seq;
}

size_t
ob_events_pending(const struct ob_events *ev, enum ob_dest dest)
{
	size_t n = 0;

	for (size_t i = 0; i < ev->count; i++)
		if (ev->list[i].seq > ev->sent[dest])
			n++;
	return n;
}

/* The reason as reported: a folded failure says how often it happened. */
static void
reported_reason(const struct ob_event *e, char out[OB_EVENT_REASON_MAX])
{
	char suffix[48];
	size_t room;

	if (e->count <= 1) {
		snprintf(out, OB_EVENT_REASON_MAX, "%s", e->reason);
		return;
	}
	snprintf(suffix, sizeof(suffix), " (%u times)", e->count);
	room = OB_EVENT_REASON_MAX - 1 - strlen(suffix);
	snprintf(out, OB_EVENT_REASON_MAX, "%.*s%s", (int)room, e->reason, suffix);
}

json_t *
ob_events_pending_json(const struct ob_events *ev, enum ob_dest dest, size_t max)
{
	json_t *list = json_array();
	char reason[OB_EVENT_REASON_MAX];

	for (size_t i = 0; list != NULL && i < ev->count && json_array_size(list) < max; i++) {
		const struct ob_event *e = &ev->list[i];
		json_t *item;

		if (e->seq <= ev->sent[dest])
			continue;
		reported_reason(e, reason);
		item = json_pack("{s:I, s:s, s:I, s:s}", "seq", (json_int_t)e->seq, "step", e->step,
				 "time", (json_int_t)e->time, "outcome", e->outcome);
		if (item != NULL && reason[0] != '\0')
			json_object_set_new(item, "reason", json_string(reason));
		if (item == NULL || json_array_append_new(list, item) == -1) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

void
ob_events_delivered(struct ob_events *ev, enum ob_dest dest, unsigned long seq,
		    void (*fn)(void *arg, const struct ob_event *e), void *arg)
{
	if (seq <= ev->sent[dest])
		return;
	if (seq >= ev->next_seq)
		seq = ev->next_seq - 1;
	for (size_t i = 0; fn != NULL && dest == OB_DEST_CLOUD && i < ev->count; i++) {
		const struct ob_event *e = &ev->list[i];

		if (e->alarm_id != 0 && e->seq > ev->sent[dest] && e->seq <= seq)
			fn(arg, e);
	}
	ev->sent[dest] = seq;
}

const struct ob_event *
ob_events_last_failure(const struct ob_events *ev, const char *step)
{
	for (size_t i = ev->count; i > 0; i--) {
		const struct ob_event *e = &ev->list[i - 1];

		if (strcmp(e->step, step) == 0 && strcmp(e->outcome, "failed") == 0)
			return e;
	}
	return NULL;
}

json_t *
ob_events_to_json(const struct ob_events *ev)
{
	json_t *list = json_array(), *root;

	for (size_t i = 0; list != NULL && i < ev->count; i++) {
		const struct ob_event *e = &ev->list[i];
		json_t *item =
			json_pack("{s:I, s:s, s:I, s:s, s:s, s:i}", "seq", (json_int_t)e->seq,
				  "step", e->step, "time", (json_int_t)e->time, "outcome",
				  e->outcome, "reason", e->reason, "count", e->count);

		if (item != NULL && e->alarm_id != 0) {
			json_object_set_new(item, "alarm_id",
					    json_integer((json_int_t)e->alarm_id));
			json_object_set_new(item, "alarm_cleared", json_boolean(e->alarm_cleared));
		}
		if (item == NULL || json_array_append_new(list, item) == -1) {
			json_decref(list);
			return NULL;
		}
	}
	if (list == NULL)
		return NULL;
	root = json_pack("{s:o, s:I, s:I, s:I}", "list", list, "next_seq", (json_int_t)ev->next_seq,
			 "sent_cloud", (json_int_t)ev->sent[OB_DEST_CLOUD], "sent_conductor",
			 (json_int_t)ev->sent[OB_DEST_CONDUCTOR]);
	return root;
}

/* A non-negative integer field below limit. */
static int
get_count(const json_t *obj, const char *key, json_int_t limit, json_int_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= limit)
		return or_error("onboarding events: '%s' must be an integer from 0 to %lld", key,
				(long long)limit - 1);
	*out = json_integer_value(v);
	return 0;
}

/* A string field that fits cap (with its NUL). */
static int
get_text(const json_t *obj, const char *key, char *out, size_t cap)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v) || json_string_length(v) >= cap)
		return or_error("onboarding events: '%s' must be a string under %zu bytes", key,
				cap);
	copy_printable(out, cap, json_string_value(v));
	return 0;
}

/* One list entry; seq must be above prev (the list is in order). */
static int
event_from_json(const json_t *item, unsigned long prev, struct ob_event *e)
{
	const json_int_t big = (json_int_t)1 << 52;
	json_int_t seq = 0, when = 0, count = 0, alarm = 0;
	json_t *v;

	memset(e, 0, sizeof(*e));
	if (!json_is_object(item) || get_count(item, "seq", big, &seq) == -1 ||
	    get_count(item, "time", big, &when) == -1 ||
	    get_count(item, "count", 1000000000, &count) == -1 ||
	    get_text(item, "step", e->step, sizeof(e->step)) == -1 ||
	    get_text(item, "outcome", e->outcome, sizeof(e->outcome)) == -1 ||
	    get_text(item, "reason", e->reason, sizeof(e->reason)) == -1)
		return -1;
	if ((unsigned long)seq <= prev || count < 1)
		return or_error("onboarding events: entries out of order");
	if (strcmp(e->outcome, "ok") != 0 && strcmp(e->outcome, "failed") != 0 &&
	    strcmp(e->outcome, "started") != 0)
		return or_error("onboarding events: unknown outcome '%s'", e->outcome);
	if ((v = json_object_get(item, "alarm_id")) != NULL) {
		if (get_count(item, "alarm_id", big, &alarm) == -1)
			return -1;
		e->alarm_cleared = json_is_true(json_object_get(item, "alarm_cleared"));
	}
	e->seq = (unsigned long)seq;
	e->time = (time_t)when;
	e->count = (unsigned)count;
	e->alarm_id = (unsigned long)alarm;
	return 0;
}

int
ob_events_from_json(const json_t *json, struct ob_events *out)
{
	static struct ob_events ev; /* large: not on the stack; the agent is one thread here */
	const json_int_t big = (json_int_t)1 << 52;
	json_int_t next = 0, sent_cloud = 0, sent_cond = 0;
	json_t *list, *item;
	size_t i;

	ob_events_init(&ev);
	if (!json_is_object(json))
		return or_error("onboarding events are not an object");
	list = json_object_get(json, "list");
	if (!json_is_array(list) || json_array_size(list) > OB_EVENTS_KEEP)
		return or_error("onboarding events: 'list' must be an array of at most %d",
				OB_EVENTS_KEEP);
	if (get_count(json, "next_seq", big, &next) == -1 ||
	    get_count(json, "sent_cloud", big, &sent_cloud) == -1 ||
	    get_count(json, "sent_conductor", big, &sent_cond) == -1)
		return -1;
	json_array_foreach(list, i, item)
	{
		unsigned long prev = i ? ev.list[i - 1].seq : 0;

		if (event_from_json(item, prev, &ev.list[i]) == -1)
			return or_error_prefix("onboarding events[%zu]", i);
	}
	ev.count = json_array_size(list);
	ev.next_seq = (unsigned long)next;
	if (ev.next_seq < 1 || (ev.count && ev.list[ev.count - 1].seq >= ev.next_seq) ||
	    (unsigned long)sent_cloud >= ev.next_seq || (unsigned long)sent_cond >= ev.next_seq)
		return or_error("onboarding events: sequence numbers do not add up");
	ev.sent[OB_DEST_CLOUD] = (unsigned long)sent_cloud;
	ev.sent[OB_DEST_CONDUCTOR] = (unsigned long)sent_cond;
	*out = ev;
	return 0;
}
