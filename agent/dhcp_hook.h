/*
 * The "dhcp-hook" control command (dhcp_hook.c): option 43 and lease events
 * handed over by a system DHCP client on an interface with `dhcp = hook`.
 * It needs the configuration, the proxy book and a way to learn option 43:
 * a callback, so that it knows nothing of the rest of the agent. A lease
 * handed over with its lease time is forgotten at its end unless the client
 * renews it first: a client that dies without running its script leaves no
 * stale proxies behind.
 */
#ifndef ONRAMP_AGENT_DHCP_HOOK_H
#define ONRAMP_AGENT_DHCP_HOOK_H

#include "agent_conf.h"
#include "control.h"
#include "proxy_book.h"

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

/* Learns option 43 on ifname (data NULL: none) and probes what is new. */
typedef void (*dhcp_hook_learn_fn)(void *arg, const char *ifname, const uint8_t *data, size_t len);

struct dhcp_hook;

/* The lease-end timer of one interface (the one at the same index in conf). */
struct dhcp_hook_lease {
	struct dhcp_hook *hook;
	const char *ifname;
	struct event *end; /* NULL until the first lease with a time */
	uint32_t lease_s;  /* the last lease time handed over, 0: none */
};

struct dhcp_hook {
	const struct agent_conf *conf;
	struct proxy_book *book;
	dhcp_hook_learn_fn learn;
	void *arg;
	struct event_base *base; /* set by dhcp_hook_register */
	struct dhcp_hook_lease lease[AGENT_MAX_IFACES];
};

/* Adds "dhcp-hook" to the control socket; hook must outlive ctl and base. */
int dhcp_hook_register(struct control *ctl, struct event_base *base, struct dhcp_hook *hook);

/* Frees the lease-end timers (before base goes). */
void dhcp_hook_close(struct dhcp_hook *hook);

#endif
