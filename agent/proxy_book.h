/*
 * The agent's book of management proxy candidates, as a pure engine: where
 * each candidate came from, how each one's last health probe went, which one
 * is in use, and the alarms that follow from it. It does no I/O; the DHCP
 * client, the DHCP hook, the health prober and the onboarding flow
 * (frontends) tell it what they saw.
 *
 * The settings in force are either the local ones (agent.conf's [proxy] mode
 * and static entries, and the bootstrap file's entries) or, once a
 * conductor's peering configuration with a management-proxy section is
 * applied, that section's mode and static entries, which replace the local
 * ones (docs/agent.conf.md). Candidate sources: "static" (agent.conf),
 * "bootstrap" (the bootstrap file), "conductor" (the applied configuration),
 * "dhcp:IFACE" (option 43 learned on IFACE, in mode learned).
 *
 * Health is kept per address: a proxy learned on two interfaces is one proxy.
 * A probe failure raises the critical alarm "Management Proxy is unreachable"
 * about that proxy; its next success clears it. No candidate at all for
 * BOOK_NO_PROXY_GRACE_S seconds (mode not disabled) raises the critical alarm
 * "no management proxy is available"; a candidate clears it.
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
#define ALARM_NO_PROXY "no management proxy is available"
#define BOOK_NO_PROXY_GRACE_S 20 /* DHCP resends its DISCOVER after 4 and 8 s */

/* "disabled", "static", "learned"; and back (-1 with or_error for anything else). */
const char *proxy_mode_name(enum proxy_mode mode);
int proxy_mode_parse(const char *text, enum proxy_mode *mode);

struct book_iface {
	char name[IFNAMSIZ];
	bool enabled;		    /* enable-proxy-discovery: option 43 is kept */
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
	enum proxy_mode mode;	    /* in force: local_mode or the conductor's */
	enum proxy_mode local_mode; /* agent.conf's */
	struct proxy_addr statics[BOOK_MAX_STATIC];
	size_t n_static;
	struct proxy_addr bootstrap[BOOK_MAX_STATIC];
	size_t n_bootstrap;
	bool by_conductor; /* a configuration's management-proxy section is in force */
	struct proxy_addr conductor[BOOK_MAX_STATIC];
	size_t n_conductor;
	time_t none_since;			  /* no candidate since then (0: some) */
	char no_proxy_subject[ALARM_SUBJECT_MAX]; /* of the raised "no proxy" alarm */
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

/*
 * Puts a conductor configuration's management-proxy settings in force (mode
 * and its n static entries, at most BOOK_MAX_STATIC), replacing the local
 * ones; present false: the local settings are in force again.
 */
void proxy_book_set_conductor(struct proxy_book *b, bool present, enum proxy_mode mode,
			      const struct proxy_addr *statics, size_t n, time_t now);

/* Once a second or so: raises the "no management proxy" alarm after its grace. */
void proxy_book_tick(struct proxy_book *b, time_t now);

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
