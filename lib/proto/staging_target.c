/*
 * The staging conductor from the cloud's onboarding information (see
 * staging_target.h). Trusts the information only as far as cloud_client
 * checked it; every address is checked again as a conductor address.
 */
#include "proto/staging_target.h"

#include "core/error.h"

#include <string.h>

/* Addresses formatted and checked first, then everything stored by the conductor client. */
int
staging_target_store(const struct conductor_client_opts *o, const struct cloud_onboarding *info,
		     char addresses[CONDUCTOR_MAX_TARGET_ADDRESSES][PEERING_ADDRESS_MAX], size_t *n)
{
	char addr[CONDUCTOR_MAX_TARGET_ADDRESSES][PEERING_ADDRESS_MAX];
	const char *list[CONDUCTOR_MAX_TARGET_ADDRESSES];
	size_t count = info->n_addresses;

	if (n != NULL)
		*n = 0;
	if (info->conductor_ca_pem == NULL)
		return or_error("the site has no conductor root CA, so the staging conductor "
				"cannot be trusted");
	if (count > CONDUCTOR_MAX_TARGET_ADDRESSES)
		count = CONDUCTOR_MAX_TARGET_ADDRESSES; /* the first ones win */
	for (size_t i = 0; i < count; i++) {
		if (peering_format_address(info->addresses[i], info->port,
					   "staging conductor address", addr[i]) == -1)
			return -1;
		list[i] = addr[i];
	}
	/* psk.len counts its NUL */
	if (conductor_set_target(o, "staging", list, count, (const char *)info->psk.data,
				 info->psk.len ? info->psk.len - 1 : 0,
				 info->conductor_ca_pem) == -1)
		return -1;
	/* The cloud's onboarding assertion: what lets this device claim its asset ID (issue 12). */
	if (info->assertion != NULL &&
	    conductor_set_assertion(o, "staging", info->asset_id, info->assertion,
				    info->assertion_expires) == -1)
		return -1;
	for (size_t i = 0; addresses != NULL && i < count; i++)
		memcpy(addresses[i], addr[i], PEERING_ADDRESS_MAX);
	if (n != NULL)
		*n = count;
	return 0;
}
