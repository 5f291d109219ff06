/*
 * The DHCPv4 client of one interface as a pure state machine (RFC 2131
 * section 4.4): no sockets, no clock, no randomness. The frontend
 * (dhcp_io.c) feeds it the time, fresh transaction IDs, parsed replies and
 * timer expiries, and carries out what it asks in struct dhcp_output: send
 * this packet, configure or remove this lease, arm the timer for then, the
 * learned options changed or are gone.
 *
 *   INIT -> SELECTING -(OFFER)-> REQUESTING -(ACK)-> BOUND -(T1)-> RENEWING
 *     ^         ^                    | NAK/4 tries              -(T2)-> REBINDING
 *     |         +--------------------+                          -(end)-> INIT
 *     +-- NAK in RENEWING/REBINDING, lease end: the lease is removed
 */
#ifndef ONRAMP_DHCP_ENGINE_H
#define ONRAMP_DHCP_ENGINE_H

#include "dhcp_packet.h"

#include <stdbool.h>
#include <stdint.h>

enum dhcp_state {
	DHCP_STATE_INIT = 0,
	DHCP_STATE_SELECTING,
	DHCP_STATE_REQUESTING,
	DHCP_STATE_BOUND,
	DHCP_STATE_RENEWING,
	DHCP_STATE_REBINDING,
	DHCP_STATE_STOPPED,
};

/* "init", "selecting", ... as shown by the agent's status. */
const char *dhcp_state_name(enum dhcp_state state);

struct dhcp_engine_conf {
	uint8_t mac[6];
	char vendor_class[DHCP_VENDOR_CLASS_MAX + 1]; /* option 60; "" to send none */
	bool want_vendor_opts;			      /* ask for option 43 */
	unsigned lease_divisor; /* test aid: lease, T1 and T2 run this many times faster; 1 */
};

struct dhcp_lease {
	uint32_t addr, mask, router, broadcast, server_id; /* router, broadcast: 0 when absent */
	uint32_t lease_s, t1_s, t2_s; /* as the server gave them (defaults applied) */
	bool has_vendor;
	uint8_t vendor[DHCP_VENDOR_MAX];
	size_t vendor_len;
};

#define DHCP_LEASE_INFINITE 0xFFFFFFFFu

struct dhcp_output {
	size_t packet_len; /* 0: nothing to send */
	uint8_t packet[DHCP_MSG_MAX];
	bool unicast; /* to dst_ip from the leased address (RENEWING); else broadcast */
	uint32_t dst_ip;
	bool deconfigure; /* remove `old` from the interface (before configuring) */
	struct dhcp_lease old;
	bool configure;	      /* put the engine's lease on the interface */
	bool lease_changed;   /* a new or renewed lease: the learned options are refreshed */
	bool lease_lost;      /* no lease any more: what was learned from it is dropped */
	uint64_t timer_at_ms; /* call dhcp_engine_timer() then; 0: no timer */
	char note[192];	      /* what happened, for the log; "" when nothing worth saying */
};

struct dhcp_engine {
	struct dhcp_engine_conf conf;
	enum dhcp_state state;
	uint32_t xid;
	unsigned tries;
	uint64_t exchange_start_ms; /* for the secs field */
	uint64_t request_sent_ms;   /* lease times count from here */
	uint64_t timer_at_ms;
	uint64_t t1_at_ms, t2_at_ms, end_at_ms; /* 0: never (infinite lease) */
	struct dhcp_lease offer;
	struct dhcp_lease lease; /* valid in BOUND, RENEWING, REBINDING */
};

void dhcp_engine_init(struct dhcp_engine *e, const struct dhcp_engine_conf *conf);

/* Begins at INIT: sends a DISCOVER. xid is a fresh random transaction ID. */
void dhcp_engine_start(struct dhcp_engine *e, uint64_t now_ms, uint32_t xid,
		       struct dhcp_output *out);

/* The timer the engine asked for expired. xid is used if a new exchange starts. */
void dhcp_engine_timer(struct dhcp_engine *e, uint64_t now_ms, uint32_t xid,
		       struct dhcp_output *out);

/* A parsed reply arrived on the interface (any xid: the engine checks). */
void dhcp_engine_receive(struct dhcp_engine *e, uint64_t now_ms, const struct dhcp_msg *msg,
			 uint32_t xid, struct dhcp_output *out);

/* Stops: the lease, if any, is to be removed and what was learned dropped. */
void dhcp_engine_stop(struct dhcp_engine *e, struct dhcp_output *out);

#endif
