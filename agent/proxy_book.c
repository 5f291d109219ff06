/*
 * Candidate bookkeeping and the alarms that follow from health. It trusts its
 * callers to pass valid addresses (the parsers checked them) and interface
 * names it was told about; everything is bounded by the book's arrays.
 */
#include "proxy_book.h"

#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

static const char *const mode_names[] = {"disabled", "static", "learned"};

/* The mode as configured and shown. */
const char *
proxy_mode_name(enum proxy_mode mode)
{
	return (unsigned)mode < 3 ? mode_names[mode] : "unknown";
}

/* Parses a configured mode. */
int
proxy_mode_parse(const char *text, enum proxy_mode *mode)
{
	for (int i = 0; i < 3; i++) {
		if (strcmp(text, mode_names[i]) == 0) {
			*mode = (enum proxy_mode)i;
			return 0;
		}
	}
	return or_error("mode must be disabled, static or learned, not '%.40s'", text);
}

/* An empty book; alarms outlive it. */
void
proxy_book_init(struct proxy_book *b, enum proxy_mode mode, struct alarms *alarms)
{
	memset(b, 0, sizeof(*b));
	b->mode = mode;
	b->local_mode = mode;
	b->alarms = alarms;
	b->active = -1;
}

/* The health entry of addr, or NULL. */
static struct book_health *
health_of(struct proxy_book *b, const struct proxy_addr *addr)
{
	for (size_t i = 0; i < b->n_health; i++)
		if (proxy_addr_cmp(&b->health[i].addr, addr) == 0)
			return &b->health[i];
	return NULL;
}

/* Appends one candidate with its source (bounded by the array). */
static void
add_candidate(struct proxy_book *b, const struct proxy_addr *addr, const char *fmt, const char *arg)
{
	struct proxy_candidate *c;

	if (b->n_cand == BOOK_MAX_CANDIDATES)
		return;
	c = &b->cand[b->n_cand++];
	memset(c, 0, sizeof(*c));
	c->addr = *addr;
	snprintf(c->source, sizeof(c->source), fmt, arg);
}

/* Puts the active candidate into text ("none" when there is none). */
static void
active_text(const struct proxy_book *b, char *text, size_t cap)
{
	char addr[PROXY_ADDR_STRLEN];

	if (b->active < 0) {
		snprintf(text, cap, "none");
		return;
	}
	proxy_addr_format(&b->cand[b->active].addr, addr);
	snprintf(text, cap, "%s (%s)", addr, b->cand[b->active].source);
}

/*
 * Rebuilds the candidates from their sources, forgets the health of proxies
 * that are no longer candidates (clearing their alarms), and selects again.
 */
static void
refresh(struct proxy_book *b, time_t now)
{
	char before[PROXY_ADDR_STRLEN + PROXY_SOURCE_MAX + 4], after[sizeof(before)];
	size_t kept = 0;

	active_text(b, before, sizeof(before));
	b->n_cand = 0;
	for (size_t i = 0; i < b->n_iface; i++)
		b->iface[i].discovery = b->iface[i].enabled && b->mode == PROXY_MODE_LEARNED;
	if (b->mode != PROXY_MODE_DISABLED) {
		for (size_t i = 0; b->by_conductor && i < b->n_conductor; i++)
			add_candidate(b, &b->conductor[i], "%s", "conductor");
		for (size_t i = 0; !b->by_conductor && i < b->n_static; i++)
			add_candidate(b, &b->statics[i], "%s", "static");
		for (size_t i = 0; !b->by_conductor && i < b->n_bootstrap; i++)
			add_candidate(b, &b->bootstrap[i], "%s", "bootstrap");
		for (size_t i = 0; i < b->n_iface; i++)
			for (size_t j = 0; b->iface[i].discovery && j < b->iface[i].n_learned; j++)
				add_candidate(b, &b->iface[i].learned[j], "dhcp:%s",
					      b->iface[i].name);
	}
	for (size_t i = 0; i < b->n_health; i++) {
		bool used = false;
		char addr[PROXY_ADDR_STRLEN];

		for (size_t j = 0; j < b->n_cand && !used; j++)
			used = proxy_addr_cmp(&b->cand[j].addr, &b->health[i].addr) == 0;
		if (used) {
			b->health[kept++] = b->health[i];
			continue;
		}
		proxy_addr_format(&b->health[i].addr, addr);
		alarm_clear(b->alarms, ALARM_PROXY_UNREACHABLE, addr, now);
	}
	b->n_health = kept;
	for (size_t j = 0; j < b->n_cand; j++) {
		struct book_health *h = health_of(b, &b->cand[j].addr);

		if (h == NULL) {
			h = &b->health[b->n_health++];
			h->addr = b->cand[j].addr;
			h->health = PROXY_HEALTH_UNKNOWN;
		}
		b->cand[j].health = h->health;
	}
	if (b->n_cand > 0 || b->mode == PROXY_MODE_DISABLED) {
		b->none_since = 0;
		if (b->no_proxy_subject[0] != '\0')
			alarm_clear(b->alarms, ALARM_NO_PROXY, b->no_proxy_subject, now);
		b->no_proxy_subject[0] = '\0';
	}
	proxy_candidates_sort(b->cand, b->n_cand);
	b->active = proxy_select(b->cand, b->n_cand);
	active_text(b, after, sizeof(after));
	if (strcmp(before, after) != 0)
		log_info("management proxy: using %s (was %s)", after, before);
}

/* Adds a configured entry and selects again. */
int
proxy_book_add_static(struct proxy_book *b, const struct proxy_addr *addr, bool bootstrap)
{
	struct proxy_addr *list = bootstrap ? b->bootstrap : b->statics;
	size_t *n = bootstrap ? &b->n_bootstrap : &b->n_static;

	if (*n == BOOK_MAX_STATIC)
		return or_error("more than %d static proxies", BOOK_MAX_STATIC);
	list[(*n)++] = *addr;
	refresh(b, 0);
	return 0;
}

/* Adds an interface; discovery there needs mode learned too. */
int
proxy_book_add_iface(struct proxy_book *b, const char *name, bool discovery)
{
	struct book_iface *i;

	if (proxy_book_iface(b, name) != NULL)
		return or_error("interface %s given twice", name);
	if (b->n_iface == BOOK_MAX_IFACES)
		return or_error("more than %d interfaces", BOOK_MAX_IFACES);
	if (strlen(name) >= IFNAMSIZ)
		return or_error("interface name '%s' is too long", name);
	i = &b->iface[b->n_iface++];
	memset(i, 0, sizeof(*i));
	snprintf(i->name, sizeof(i->name), "%s", name);
	i->enabled = discovery;
	i->discovery = discovery && b->mode == PROXY_MODE_LEARNED;
	snprintf(i->lease, sizeof(i->lease), "none");
	return 0;
}

/* The interface named name, or NULL. */
struct book_iface *
proxy_book_iface(struct proxy_book *b, const char *name)
{
	for (size_t i = 0; i < b->n_iface; i++)
		if (strcmp(b->iface[i].name, name) == 0)
			return &b->iface[i];
	return NULL;
}

/* True when a and b hold the same n addresses in the same order (fields, not padding). */
static bool
same_addrs(const struct proxy_addr *a, const struct proxy_addr *b, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (proxy_addr_cmp(&a[k], &b[k]) != 0)
			return false;
	return true;
}

/*
 * Replaces the interface's learned proxies when they changed, logs
 * them, and selects again.
 */
void
proxy_book_set_learned(struct proxy_book *b, const char *name, const struct proxy_addr *addrs,
		       size_t n, time_t now)
{
	struct book_iface *i = proxy_book_iface(b, name);
	char list[OPTION43_MAX_PROXIES * (PROXY_ADDR_STRLEN + 1) + 8] = "";

	if (i == NULL || !i->enabled)
		return;
	if (n > OPTION43_MAX_PROXIES)
		n = OPTION43_MAX_PROXIES;
	if (n == i->n_learned && same_addrs(i->learned, addrs, n))
		return;
	if (n > 0)
		memcpy(i->learned, addrs, n * sizeof(*addrs));
	i->n_learned = n;
	for (size_t k = 0; k < n; k++) {
		char addr[PROXY_ADDR_STRLEN];

		proxy_addr_format(&addrs[k], addr);
		strcat(list, k ? " " : "");
		strcat(list, addr);
	}
	log_info("%s: learned proxies: %s%s", name, n ? list : "none",
		 i->discovery ? "" : " (not used: mode is not learned)");
	refresh(b, now);
}

/* Keeps what the last option 43 of the interface had rejected, bounded. */
void
proxy_book_set_rejected(struct proxy_book *b, const char *name, const struct book_rejected *list,
			size_t n)
{
	struct book_iface *i = proxy_book_iface(b, name);

	if (i == NULL)
		return;
	i->n_rejected = n < BOOK_MAX_REJECTED ? n : BOOK_MAX_REJECTED;
	i->n_rejected_more = n - i->n_rejected;
	for (size_t k = 0; k < i->n_rejected; k++)
		i->rejected[k] = list[k];
}

/* Records the lease state shown for the interface. */
void
proxy_book_set_lease(struct proxy_book *b, const char *name, const char *lease)
{
	struct book_iface *i = proxy_book_iface(b, name);

	if (i != NULL)
		snprintf(i->lease, sizeof(i->lease), "%s", lease);
}

/* Replaces the settings in force (logged when they change), and selects again. */
void
proxy_book_set_conductor(struct proxy_book *b, bool present, enum proxy_mode mode,
			 const struct proxy_addr *statics, size_t n, time_t now)
{
	enum proxy_mode want = present ? mode : b->local_mode;

	if (n > BOOK_MAX_STATIC)
		n = BOOK_MAX_STATIC;
	if (!present)
		n = 0;
	if (present == b->by_conductor && want == b->mode && n == b->n_conductor &&
	    same_addrs(b->conductor, statics, n))
		return;
	if (n > 0)
		memcpy(b->conductor, statics, n * sizeof(*statics));
	b->n_conductor = n;
	b->by_conductor = present;
	b->mode = want;
	if (present)
		log_info("management proxy: the conductor's configuration is in force: mode %s, "
			 "%zu static entr%s",
			 proxy_mode_name(mode), n, n == 1 ? "y" : "ies");
	else
		log_info("management proxy: the local settings are in force: mode %s",
			 proxy_mode_name(want));
	refresh(b, now);
}

/*
 * No candidate (and a mode that needs one) for the grace period: the agent
 * has no way out, which must not go unnoticed.
 */
void
proxy_book_tick(struct proxy_book *b, time_t now)
{
	if (b->n_cand > 0 || b->mode == PROXY_MODE_DISABLED || b->no_proxy_subject[0] != '\0')
		return;
	if (b->none_since == 0) {
		b->none_since = now;
		return;
	}
	if (now - b->none_since < BOOK_NO_PROXY_GRACE_S)
		return;
	snprintf(b->no_proxy_subject, sizeof(b->no_proxy_subject), "mode %s%s",
		 proxy_mode_name(b->mode), b->by_conductor ? ", by the conductor" : "");
	alarm_raise(b->alarms, ALARM_CRITICAL, ALARM_NO_PROXY, b->no_proxy_subject, now);
}

/* Takes one probe result: alarms on the transitions, then selects again. */
void
proxy_book_report(struct proxy_book *b, const struct proxy_addr *addr, bool reachable, time_t now)
{
	struct book_health *h = health_of(b, addr);
	enum proxy_health was;
	char text[PROXY_ADDR_STRLEN];

	if (h == NULL)
		return; /* no longer a candidate: the probe finished too late to matter */
	was = h->health;
	h->health = reachable ? PROXY_HEALTH_UP : PROXY_HEALTH_DOWN;
	proxy_addr_format(addr, text);
	if (!reachable && was != PROXY_HEALTH_DOWN)
		alarm_raise(b->alarms, ALARM_CRITICAL, ALARM_PROXY_UNREACHABLE, text, now);
	else if (reachable && was == PROXY_HEALTH_DOWN)
		alarm_clear(b->alarms, ALARM_PROXY_UNREACHABLE, text, now);
	if (reachable && was == PROXY_HEALTH_UNKNOWN)
		log_info("management proxy %s is reachable", text);
	if (was != h->health)
		refresh(b, now);
}

/* Every distinct candidate address (the health table holds exactly those). */
size_t
proxy_book_targets(const struct proxy_book *b, struct proxy_addr *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < b->n_health && n < max; i++)
		out[n++] = b->health[i].addr;
	return n;
}

/* The candidate in use. */
const struct proxy_candidate *
proxy_book_active(const struct proxy_book *b)
{
	return b->active < 0 ? NULL : &b->cand[b->active];
}

/* The state of the proxy in use. */
const char *
proxy_book_state(const struct proxy_book *b)
{
	if (b->active < 0)
		return "none";
	return b->cand[b->active].health == PROXY_HEALTH_UP ? "reachable" : "unreachable";
}

/* The answer to "show management-proxy". */
json_t *
proxy_book_status_json(const struct proxy_book *b)
{
	json_t *list = json_array(), *active = json_null();
	char addr[PROXY_ADDR_STRLEN];

	for (size_t i = 0; list != NULL && i < b->n_cand; i++) {
		proxy_addr_format(&b->cand[i].addr, addr);
		json_array_append_new(list, json_pack("{ss ss sb}", "proxy", addr, "source",
						      b->cand[i].source, "reachable",
						      b->cand[i].health == PROXY_HEALTH_UP));
	}
	if (b->active >= 0) {
		proxy_addr_format(&b->cand[b->active].addr, addr);
		active = json_string(addr);
	}
	return json_pack("{ss so ss so}", "mode", proxy_mode_name(b->mode), "active", active,
			 "state", proxy_book_state(b), "candidates", list);
}

/* One interface of "show dhcp learned-proxies". */
json_t *
proxy_book_iface_json(const struct book_iface *f)
{
	json_t *proxies = json_array(), *rejected = json_array();
	char addr[PROXY_ADDR_STRLEN];

	/* What is kept while the mode is not learned is not in use: not shown. */
	for (size_t j = 0; proxies != NULL && f->discovery && j < f->n_learned; j++) {
		proxy_addr_format(&f->learned[j], addr);
		json_array_append_new(proxies, json_string(addr));
	}
	for (size_t j = 0; rejected != NULL && j < f->n_rejected; j++)
		json_array_append_new(rejected, json_pack("{ss ss}", "entry", f->rejected[j].entry,
							  "reason", f->rejected[j].reason));
	return json_pack("{ss sb ss so so sI}", "name", f->name, "discovery", f->discovery, "lease",
			 f->lease, "proxies", proxies, "rejected", rejected, "rejected_more",
			 (json_int_t)f->n_rejected_more);
}

/* The answer to "show dhcp learned-proxies". */
json_t *
proxy_book_learned_json(const struct proxy_book *b)
{
	json_t *list = json_array();

	for (size_t i = 0; list != NULL && i < b->n_iface; i++)
		json_array_append_new(list, proxy_book_iface_json(&b->iface[i]));
	return json_pack("{so}", "interfaces", list);
}
