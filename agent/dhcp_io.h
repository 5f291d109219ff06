/*
 * The DHCP client's frontend for one interface: the sockets (a packet socket
 * for broadcasts and every reply, a UDP socket for unicast renewals), the
 * timer, and rtnetlink to put the lease on the interface. All decisions are
 * the engine's (dhcp_engine.h); this file only carries them out and tells
 * the agent what was learned through the callbacks.
 */
#ifndef ONRAMP_DHCP_IO_H
#define ONRAMP_DHCP_IO_H

#include "agent_conf.h"
#include "dhcp_engine.h"

#include <event2/event.h>

struct dhcp_io_callbacks {
	/* a new or renewed lease; lease->vendor holds its option 43 */
	void (*lease)(void *arg, const char *ifname, const struct dhcp_lease *lease);
	/* the lease is gone */
	void (*lost)(void *arg, const char *ifname);
	/* the engine's state changed (for status) */
	void (*state)(void *arg, const char *ifname, enum dhcp_state state);
	void *arg;
};

struct dhcp_io;

/* Opens the interface's sockets and starts with a DISCOVER. */
int dhcp_io_open(struct event_base *base, const struct agent_iface_conf *conf,
		 bool want_vendor_opts, const struct dhcp_io_callbacks *cb, struct dhcp_io **out);

/* Stops the client, removes the lease from the interface, frees everything. */
void dhcp_io_close(struct dhcp_io *io);

#endif
