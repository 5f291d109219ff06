/*
 * The fleet's workers: `concurrency` threads, each taking the next router
 * not started yet and running it to its end (fleet_router_run), so that at
 * most `concurrency` routers are in flight at once.
 */
#ifndef ONRAMP_FLEETSIM_POOL_H
#define ONRAMP_FLEETSIM_POOL_H

#include "fleetsim.h"

/* Runs every router of routers[0..n-1]; -1 only when no thread could start. */
int fleet_pool_run(const struct fleet_conf *conf, const char *state_dir,
		   struct fleet_router *routers, size_t n, unsigned concurrency,
		   volatile sig_atomic_t *stop);

#endif
