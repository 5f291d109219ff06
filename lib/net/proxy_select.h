/*
 * Choosing the management proxy among candidates, with no I/O: the rule is
 * deterministic so that two routers with the same candidates agree without
 * talking to each other.
 *
 * Candidates come from static entries, the bootstrap file and every interface
 * that learns proxies by DHCP. The lowest numeric IPv4 address wins, then the
 * lowest port. While that one is known to be unreachable, the next-lowest that
 * is not known to be unreachable is used; as soon as a lower one recovers it is
 * taken back. When every candidate is unreachable the lowest is kept, so that
 * the choice stays stable and the alarm names it.
 */
#ifndef ONRAMP_PROXY_SELECT_H
#define ONRAMP_PROXY_SELECT_H

#include "net/proxy_addr.h"

#include <stddef.h>

enum proxy_health {
	PROXY_HEALTH_UNKNOWN = 0, /* not probed yet: usable, but not yet reported reachable */
	PROXY_HEALTH_UP,
	PROXY_HEALTH_DOWN,
};

#define PROXY_SOURCE_MAX 48

struct proxy_candidate {
	struct proxy_addr addr;
	char source[PROXY_SOURCE_MAX]; /* "static", "bootstrap", "conductor", "dhcp:eth0" */
	enum proxy_health health;
};

/* Sorts by address, then port, then source, so that listings are stable too. */
void proxy_candidates_sort(struct proxy_candidate *c, size_t n);

/*
 * Index of the candidate to use among n (in any order), or -1 when n is 0.
 * Candidates sharing an address are one proxy; the health of each copy must
 * be the same (the caller keeps health per address).
 */
int proxy_select(const struct proxy_candidate *c, size_t n);

#endif
