/*
 * onramp-agent, the router's agent. One process, one libevent loop; the
 * parts follow OpenBSD dhcpleased's split between pure engines (state
 * machines that are unit-tested without I/O) and frontends (sockets, timers,
 * rtnetlink) that feed them:
 *
 *   engines:   proxy_book.c (candidates, selection, alarms), alarm.c,
 *              dhcp_engine.c + dhcp_packet.c (the DHCPv4 client), agent_conf.c
 *   frontends: dhcp_io.c + netlink.c (one DHCP client per interface),
 *              mgmt_proxy.c (the conductor's management-proxy settings),
 *              health.c (proxy probes), control.c (the control socket),
 *              dhcp_hook.c (option 43 handed over by a system DHCP client)
 *
 * The onboarding flow: engines onboard_engine.c (the steps) and
 * onboard_events.c (progress reports), asset_alarm.c (the alarms a
 * conductor's refusal of the asset ID calls for); frontend onboard.c on this loop, with
 * onboard_worker.c, a thread for the blocking HTTPS and TPM work. It asks the
 * proxy book for the active proxy (proxy_book_active).
 */
#ifndef ONRAMP_AGENT_H
#define ONRAMP_AGENT_H

#include "agent_conf.h"
#include "alarm.h"
#include "control.h"
#include "dhcp_hook.h"
#include "dhcp_io.h"
#include "health.h"
#include "mgmt_proxy.h"
#include "onboard.h"
#include "proxy_book.h"

#include <event2/event.h>

struct agent {
	struct agent_conf conf;
	struct event_base *base;
	struct alarms alarms;
	struct proxy_book book;
	struct control *control;
	struct dhcp_hook dhcp_hook; /* the "dhcp-hook" command's view of the agent */
	struct health *health;
	struct dhcp_io *dhcp[AGENT_MAX_IFACES];
	struct event *sig_term, *sig_int;
	struct event *book_tick; /* proxy_book_tick, once a second */
	struct onboard *onboard; /* the onboarding flow (onboard.c) */
	bool stopping;		 /* leases removed on the way out teach nothing */
	bool exit_now;		 /* a worker thread is still busy: _exit after cleanup */
};

#endif
