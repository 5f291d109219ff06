/*
 * The staging conductor that the cloud's onboarding information names,
 * stored for the conductor client: what the agent's onboarding worker and
 * onramp-fleetsim both do once the cloud has answered, so that the two keep
 * one behaviour as the protocol grows.
 */
#ifndef ONRAMP_STAGING_TARGET_H
#define ONRAMP_STAGING_TARGET_H

#include "proto/cloud_client.h"
#include "proto/conductor_client.h"
#include "proto/peering_config.h"

#include <stddef.h>

/*
 * Stores the staging conductor of info with conductor_set_target: its
 * addresses ("host:port" from the cloud's hosts and port; the first
 * CONDUCTOR_MAX_TARGET_ADDRESSES win), its pre-shared secret (into the
 * vault) and its root CA (a site without one is refused: the staging
 * conductor could not be trusted), then the cloud's onboarding assertion
 * for it, if any, with the asset ID the cloud knows the device by
 * (conductor_set_assertion). addresses (NULL: not wanted) gets the
 * stored "host:port" strings and *n their number.
 */
int staging_target_store(const struct conductor_client_opts *o, const struct cloud_onboarding *info,
			 char addresses[CONDUCTOR_MAX_TARGET_ADDRESSES][PEERING_ADDRESS_MAX],
			 size_t *n);

#endif
