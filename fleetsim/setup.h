/*
 * onramp-fleetsim setup: factory records, cloud inventory and claims, and the
 * conductors' routers for N virtual routers (see setup.c and docs/fleetsim.md).
 */
#ifndef ONRAMP_FLEETSIM_SETUP_H
#define ONRAMP_FLEETSIM_SETUP_H

#include <signal.h>

/* The setup command: argv[0] is "setup"; returns the exit status (0, 1 or 2). */
int fleet_setup_main(int argc, char **argv, volatile sig_atomic_t *stop);

#endif
