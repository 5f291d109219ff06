/*
 * The "dhcp-hook" control command (dhcp_hook.c): option 43 and lease events
 * handed over by a system DHCP client on an interface with `dhcp = hook`.
 * It needs the configuration, the proxy book and a way to learn option 43:
 * a callback, so that it knows nothing of the rest of the agent.
 */
#ifndef ONRAMP_AGENT_DHCP_HOOK_H
#define ONRAMP_AGENT_DHCP_HOOK_H

#include "agent_conf.h"
#include "control.h"
#include "proxy_book.h"

#include <stddef.h>
#include <stdint.h>

/* Learns option 43 on ifname (data NULL: none) and probes what is new. */
typedef void (*dhcp_hook_learn_fn)(void *arg, const char *ifname, const uint8_t *data, size_t len);

struct dhcp_hook {
	const struct agent_conf *conf;
	struct proxy_book *book;
	dhcp_hook_learn_fn learn;
	void *arg;
};

/* Adds "dhcp-hook" to the control socket; hook must outlive ctl. */
int dhcp_hook_register(struct control *ctl, struct dhcp_hook *hook);

#endif
