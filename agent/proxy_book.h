/*
 * The agent's book of management proxy candidates, as a pure engine: where
 * each candidate came from (static entries, the bootstrap file, interfaces
 * learning by DHCP), how each one's last health probe went, which one is in
 * use, and the alarms that follow from it. It does no I/O; the DHCP client,
 * the DHCP hook and the health prober (frontends) tell it what they saw.
 *
 * Health is kept per address: a proxy learned on two interfaces is one proxy.
 * A probe failure raises the critical alarm "Management Proxy is unreachable"
 * about that proxy; its next success clears it.
 */
#ifndef ONRAMP_PROXY_BOOK_H
#define ONRAMP_PROXY_BOOK_H

#include "alarm.h"
#include "net/option43.h"
#include "net/proxy_select.h"

#include <jansson.h>
#include <net/if.h>
#include <stdbool.h>
#include <time.h>

enum proxy_mode { PROXY_MODE_DISABLED = 0, PROXY_MODE_STATIC, PROXY_MODE_LEARNED };

#define BOOK_MAX_STATIC 16
#define BOOK_MAX_IFACES 16
#define BOOK_MAX_CANDIDATES (2 * BOOK_MAX_STATIC + BOOK_MAX_IFACES * OPTION43_MAX_PROXIES)
#define BOOK_LEASE_MAX 16
#define BOOK_MAX_REJECTED 8 /* rejected option 43 entries kept per interface */
#define BOOK_REJECTED_TEXT 96

/* One entry of the last option 43 that was rejected, and why (the parser's words). */
struct book_rejected {
	char entry[BOOK_REJECTED_TEXT];	 /* "sub-option 128 \"10.0.0.1:0\"" */
	char reason[BOOK_REJECTED_TEXT]; /* "port 0" */
};

#define ALARM_PROXY_UNREACHABLE "Management Proxy is unreachable"

/* "disabled", "static", "learned"; and back (-1 with or_error for anything else). */
const char *proxy_mode_name(enum proxy_mode mode);
int proxy_mode_parse(const char *text, enum proxy_mode *mode);

struct book_iface {
	char name[IFNAMSIZ];
	bool discovery;		    /* learning here: enabled and mode learned */
	char lease[BOOK_LEASE_MAX]; /* "init", "bound", ... or "none" */
	struct proxy_addr learned[OPTION43_MAX_PROXIES];
	size_t n_learned;
	struct book_rejected rejected[BOOK_MAX_REJECTED]; /* of the last option 43 */
	size_t n_rejected;
	size_t n_rejected_more; /* rejected beyond those kept */
};

struct book_health {
	struct proxy_addr addr;
	enum proxy_health health;
};

struct proxy_book {
	enum proxy_mode mode;
	struct proxy_addr statics[BOOK_MAX_STATIC];
	size_t n_static;
	struct proxy_addr bootstrap[BOOK_MAX_STATIC];
	size_t n_bootstrap;
	bool onboarded; /* bootstrap entries are used only until then */
	struct book_iface iface[BOOK_MAX_IFACES];
	size_t n_iface;
	struct book_health health[BOOK_MAX_CANDIDATES];
	size_t n_health;
	struct proxy_candidate cand[BOOK_MAX_CANDIDATES]; /* sorted */
	size_t n_cand;
	int active; /* index into cand, -1: none */
	struct alarms *alarms;
};

void proxy_book_init(struct proxy_book *b, enum proxy_mode mode, struct alarms *alarms);

/* Adds a static (or bootstrap-file) entry; -1 when the book is full. */
int proxy_book_add_static(struct proxy_book *b, const struct proxy_addr *addr, bool bootstrap);

/* Adds an interface that may learn proxies; -1 when full or already there. */
int proxy_book_add_iface(struct proxy_book *b, const char *name, bool discovery);

struct book_iface *proxy_book_iface(struct proxy_book *b, const char *name);

/* Replaces what name learned (n = 0: nothing); ignored when discovery is off there. */
void proxy_book_set_learned(struct proxy_book *b, const char *name, const struct proxy_addr *addrs,
			    size_t n, time_t now);

/*
 * Replaces the rejected entries shown for name with those of its last option
 * 43 (n = 0: none); keeps the first BOOK_MAX_REJECTED, counts the others.
 */
void proxy_book_set_rejected(struct proxy_book *b, const char *name,
			     const struct book_rejected *list, size_t n);

void proxy_book_set_lease(struct proxy_book *b, const char *name, const char *lease);

/* Once onboarded to a conductor, the bootstrap file's proxies stop being candidates. */
void proxy_book_set_onboarded(struct proxy_book *b, bool onboarded, time_t now);

/* The result of one health probe of addr. */
void proxy_book_report(struct proxy_book *b, const struct proxy_addr *addr, bool reachable,
		       time_t now);

/* The distinct candidate addresses, to probe; returns how many (at most max). */
size_t proxy_book_targets(const struct proxy_book *b, struct proxy_addr *out, size_t max);

/* The proxy in use, or NULL. */
const struct proxy_candidate *proxy_book_active(const struct proxy_book *b);

/* "reachable", "unreachable" (also while the active one is not probed yet) or "none". */
const char *proxy_book_state(const struct proxy_book *b);

/* {"mode","active","state","candidates":[{"proxy","source","reachable"}]} */
json_t *proxy_book_status_json(const struct proxy_book *b);

/* {"name","discovery","lease","proxies":[..],"rejected":[{"entry","reason"}],
   "rejected_more":0} of one interface */
json_t *proxy_book_iface_json(const struct book_iface *f);

/* {"interfaces":[ one interface as above ]} */
json_t *proxy_book_learned_json(const struct proxy_book *b);

#endif
