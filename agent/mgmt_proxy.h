/*
 * The management-proxy settings a conductor gives: the applied peering
 * configuration (STATE_DIR/peering.json, written by the conductor client on
 * apply-config) may carry a management-proxy section; while it does, its
 * mode and static entries are in force instead of agent.conf's [proxy] mode
 * and static entries and the bootstrap file (docs/agent.conf.md). Read at
 * start, so they survive a restart, and again after every apply-config.
 */
#ifndef ONRAMP_MGMT_PROXY_H
#define ONRAMP_MGMT_PROXY_H

#include <time.h>

struct agent;

#define PEERING_STATE_FILE "peering.json" /* lib/proto/conductor_client.h */

/*
 * Puts the stored configuration's management-proxy settings in force, or the
 * local ones when there is no configuration, it has no such section, or it
 * cannot be read (logged: the bootstrap entries are the safer way out).
 */
void mgmt_proxy_apply_stored(struct agent *a, time_t now);

#endif
