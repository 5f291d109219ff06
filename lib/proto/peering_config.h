/*
 * A router's peering configuration for its hub, as the conductor holds and
 * pushes it (schema: docs/router-config-schema.md). The conductor validates
 * it when a router is added; the router stores the exact canonical text it
 * is sent and acknowledges that text's SHA-256.
 */
#ifndef ONRAMP_PEERING_CONFIG_H
#define ONRAMP_PEERING_CONFIG_H

#include "net/proxy_addr.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define PEERING_CONFIG_MAX (64 * 1024) /* bytes of a configuration file or text */
#define PEERING_MAX_HUB_ADDRESSES 8
#define PEERING_MAX_NEIGHBORHOODS 32
#define PEERING_MAX_PROXIES 16 /* management-proxy.static entries */

/*
 * The optional "management-proxy" section: the router's management-proxy
 * settings once this configuration is applied (they replace agent.conf's
 * [proxy] mode and static entries and the bootstrap file's entries).
 */
struct peering_mgmt_proxy {
	bool present;
	char mode[16]; /* "disabled", "static" or "learned" */
	struct proxy_addr statics[PEERING_MAX_PROXIES];
	size_t n_static;
};

/*
 * Checks config against the schema: every required field, types, bounds,
 * names, addresses, no unknown field anywhere. When router_name is not NULL,
 * router.name must equal it. The error names the field ("hub.addresses[1]").
 */
int peering_config_validate(json_t *config, const char *router_name);

/*
 * The management-proxy section of a valid configuration (out->present false
 * when it has none). -1 only when config does not pass the schema.
 */
int peering_config_mgmt_proxy(json_t *config, struct peering_mgmt_proxy *out);

/* Reads a JSON file (at most PEERING_CONFIG_MAX bytes) and validates it. */
int peering_config_load(const char *path, const char *router_name, json_t **out);

/*
 * The canonical text of a valid configuration (compact, keys sorted; the
 * bytes a router stores) and its SHA-256 in hex. text is malloc'd.
 */
int peering_config_canonical(json_t *config, char **text, char sha256_hex[65]);

/* SHA-256 of len bytes, in lower-case hex. */
int sha256_hex(const void *data, size_t len, char out[65]);

/*
 * Checks "host" or "host:port" ("[v6]:port" for IPv6): host an IP literal or
 * DNS name, port 1..65535. A helper shared with the conductor's addresses.
 */
int peering_check_address(const char *text, const char *what);

#endif
