/*
 * Health probes of the management proxy candidates: a non-blocking TCP
 * connect to each distinct candidate every interval, failed after timeout.
 * Results go to the proxy book, which raises and clears the alarms and
 * fails over (proxy_book.h). This file is the frontend: sockets and timers.
 */
#ifndef ONRAMP_HEALTH_H
#define ONRAMP_HEALTH_H

#include "proxy_book.h"

#include <event2/event.h>

struct health;

/*
 * Arms the probe every interval_s. probe_now: probe at once too; false when
 * the way to the proxies comes up later (the agent's DHCP client puts the
 * address and route on; its first lease calls health_kick).
 */
int health_start(struct event_base *base, struct proxy_book *book, unsigned interval_s,
		 unsigned timeout_s, bool probe_now, struct health **out);

/* Probes now every candidate that is not being probed already (the candidates changed). */
void health_kick(struct health *h);

void health_stop(struct health *h);

#endif
