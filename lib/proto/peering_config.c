/*
 * Validation of the peering configuration schema. The input is operator
 * text: every field is checked for type and bounds, and an unknown field
 * anywhere is an error, so a typo is never pushed to a router.
 */
#include "proto/peering_config.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/json.h"
#include "core/x509.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 63

/* Refuses any key of obj not in allowed (NULL-terminated); where names the object. */
static int
only_known_keys(json_t *obj, const char *where, const char *const *allowed)
{
	const char *key;
	json_t *value;

	json_object_foreach(obj, key, value)
	{
		bool known = false;

		for (const char *const *a = allowed; *a != NULL; a++)
			if (strcmp(key, *a) == 0)
				known = true;
		if (!known)
			return or_error("%s: unknown field '%s'", where, key);
	}
	return 0;
}

/* Names: 1..63 of A-Z a-z 0-9 . _ -, starting with a letter or digit. */
static int
check_name(json_t *obj, const char *where, const char *key, bool required, const char **out)
{
	const char *name = NULL;

	if (json_get_string(obj, key, required, NAME_MAX_LEN, &name) == -1)
		return or_error_prefix("%s", where);
	if (name == NULL) {
		*out = NULL;
		return 0;
	}
	if (!pki_valid_router_name(name))
		return or_error("%s.%s: '%s' is not a name (1 to 63 of A-Z a-z 0-9 . _ -, "
				"starting with a letter or digit)",
				where, key, name);
	*out = name;
	return 0;
}

/* See peering_config.h. */
int
peering_check_address(const char *text, const char *what)
{
	char host[256], buf[16];
	const char *port = NULL, *end;
	unsigned char addr[16];
	size_t hlen;

	if (text == NULL || text[0] == '\0')
		return or_error("%s: empty address", what);
	if (text[0] == '[') {
		end = strchr(text, ']');
		if (end == NULL)
			return or_error("%s: '%s' has no closing ']'", what, text);
		hlen = (size_t)(end - text - 1);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return or_error("%s: '%s': junk after ']'", what, text);
		if (hlen >= sizeof(host))
			return or_error("%s: host too long", what);
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, addr) != 1)
			return or_error("%s: '%s' is not an IPv6 address", what, host);
	} else {
		end = strchr(text, ':');
		if (end != NULL && strchr(end + 1, ':') != NULL)
			return or_error("%s: '%s': write an IPv6 address as [addr]:port", what,
					text);
		hlen = end ? (size_t)(end - text) : strlen(text);
		if (hlen >= sizeof(host))
			return or_error("%s: host too long", what);
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		port = end ? end + 1 : NULL;
		if (inet_pton(AF_INET, host, addr) != 1 && !pki_valid_dns_name(host))
			return or_error("%s: '%s' is neither an IP address nor a DNS name", what,
					host);
	}
	if (port != NULL) {
		char *stop;
		unsigned long p;

		if (port[0] == '\0' || strlen(port) > 5 || !isdigit((unsigned char)port[0]))
			return or_error("%s: '%s': the port must be a number 1..65535", what, text);
		snprintf(buf, sizeof(buf), "%s", port);
		p = strtoul(buf, &stop, 10);
		if (*stop != '\0' || p == 0 || p > 65535)
			return or_error("%s: '%s': the port must be a number 1..65535", what, text);
	}
	return 0;
}

/* router: an object with exactly name, the router being added when one is named. */
static int
check_router(json_t *config, const char *router_name)
{
	static const char *const keys[] = {"name", NULL};
	json_t *router = json_object_get(config, "router");
	const char *name = NULL;

	if (!json_is_object(router))
		return or_error("router: required, must be an object");
	if (only_known_keys(router, "router", keys) == -1 ||
	    check_name(router, "router", "name", true, &name) == -1)
		return -1;
	if (router_name != NULL && name != NULL && strcmp(name, router_name) != 0)
		return or_error("router.name: '%s' is not the router being added ('%s')", name,
				router_name);
	return 0;
}

/* hub: name and 1 to 8 distinct addresses. */
static int
check_hub(json_t *config)
{
	static const char *const keys[] = {"name", "addresses", NULL};
	json_t *hub = json_object_get(config, "hub"), *addrs, *a;
	const char *name;
	char where[64];
	size_t i;

	if (!json_is_object(hub))
		return or_error("hub: required, must be an object");
	if (only_known_keys(hub, "hub", keys) == -1 ||
	    check_name(hub, "hub", "name", true, &name) == -1)
		return -1;
	addrs = json_object_get(hub, "addresses");
	if (!json_is_array(addrs) || json_array_size(addrs) == 0 ||
	    json_array_size(addrs) > PEERING_MAX_HUB_ADDRESSES)
		return or_error("hub.addresses: required, an array of 1 to %d addresses",
				PEERING_MAX_HUB_ADDRESSES);
	json_array_foreach(addrs, i, a)
	{
		snprintf(where, sizeof(where), "hub.addresses[%zu]", i);
		if (!json_is_string(a) || json_string_length(a) > 261)
			return or_error("%s: must be a string of at most 261 characters", where);
		if (peering_check_address(json_string_value(a), where) == -1)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (json_equal(a, json_array_get(addrs, j)))
				return or_error("%s: repeats hub.addresses[%zu]", where, j);
	}
	return 0;
}

/* One neighborhood: name, optional topology, vector and cost. */
static int
check_neighborhood(json_t *nb, const char *where)
{
	static const char *const keys[] = {"name", "topology", "vector", "cost", NULL};
	static const char *const topologies[] = {"spoke", "hub", "mesh", NULL};
	const char *name, *topology = NULL;
	json_int_t cost;
	bool ok = false;

	if (!json_is_object(nb))
		return or_error("%s: must be an object", where);
	if (only_known_keys(nb, where, keys) == -1 ||
	    check_name(nb, where, "name", true, &name) == -1 ||
	    check_name(nb, where, "vector", false, &name) == -1 ||
	    json_get_string(nb, "topology", false, 16, &topology) == -1 ||
	    json_get_int(nb, "cost", false, 0, 999999, &cost) == -1)
		return or_error_prefix("%s", where);
	if (topology == NULL)
		return 0;
	for (const char *const *t = topologies; *t != NULL; t++)
		if (strcmp(topology, *t) == 0)
			ok = true;
	return ok ? 0 : or_error("%s.topology: '%s' is not spoke, hub or mesh", where, topology);
}

/* neighborhoods: 1 to 32, names distinct. */
static int
check_neighborhoods(json_t *config)
{
	json_t *nbs = json_object_get(config, "neighborhoods"), *nb;
	char where[64];
	size_t i;

	if (!json_is_array(nbs) || json_array_size(nbs) == 0 ||
	    json_array_size(nbs) > PEERING_MAX_NEIGHBORHOODS)
		return or_error("neighborhoods: required, an array of 1 to %d neighborhoods",
				PEERING_MAX_NEIGHBORHOODS);
	json_array_foreach(nbs, i, nb)
	{
		snprintf(where, sizeof(where), "neighborhoods[%zu]", i);
		if (check_neighborhood(nb, where) == -1)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_object_get(nb, "name"),
				       json_object_get(json_array_get(nbs, j), "name")))
				return or_error("%s.name: repeats neighborhoods[%zu]", where, j);
	}
	return 0;
}

/*
 * management-proxy: mode (disabled, static or learned) and up to 16 distinct
 * static "a.b.c.d:port" entries, parsed by the agent's own proxy parser;
 * static needs one at least, disabled takes none. Fills out when not NULL.
 */
static int
check_mgmt_proxy(json_t *config, struct peering_mgmt_proxy *out)
{
	static const char *const keys[] = {"mode", "static", NULL};
	static const char *const modes[] = {"disabled", "static", "learned", NULL};
	json_t *mp = json_object_get(config, "management-proxy"), *list, *a;
	struct peering_mgmt_proxy found = {0};
	const char *mode = NULL;
	char where[64];
	size_t i;

	if (out != NULL)
		*out = found;
	if (mp == NULL)
		return 0;
	if (!json_is_object(mp))
		return or_error("management-proxy: must be an object");
	if (only_known_keys(mp, "management-proxy", keys) == -1)
		return -1;
	if (json_get_string(mp, "mode", true, 16, &mode) == -1)
		return or_error_prefix("management-proxy");
	for (const char *const *m = modes; *m != NULL; m++)
		if (strcmp(mode, *m) == 0)
			snprintf(found.mode, sizeof(found.mode), "%s", mode);
	if (found.mode[0] == '\0')
		return or_error("management-proxy.mode: '%s' is not disabled, static or learned",
				mode);
	list = json_object_get(mp, "static");
	if (list != NULL && (!json_is_array(list) || json_array_size(list) == 0 ||
			     json_array_size(list) > PEERING_MAX_PROXIES))
		return or_error("management-proxy.static: an array of 1 to %d proxies",
				PEERING_MAX_PROXIES);
	if (list != NULL && strcmp(mode, "disabled") == 0)
		return or_error("management-proxy.static: mode disabled uses no proxy");
	if (list == NULL && strcmp(mode, "static") == 0)
		return or_error("management-proxy.static: mode static needs 1 to %d proxies",
				PEERING_MAX_PROXIES);
	json_array_foreach(list, i, a)
	{
		struct proxy_addr *p = &found.statics[i];

		snprintf(where, sizeof(where), "management-proxy.static[%zu]", i);
		if (!json_is_string(a) || json_string_length(a) >= PROXY_ADDR_STRLEN)
			return or_error("%s: must be an \"a.b.c.d:port\" string", where);
		if (proxy_addr_parse(json_string_value(a), json_string_length(a), p) == -1)
			return or_error_prefix("%s: '%s'", where, json_string_value(a));
		for (size_t j = 0; j < i; j++)
			if (proxy_addr_cmp(p, &found.statics[j]) == 0)
				return or_error("%s: repeats management-proxy.static[%zu]", where,
						j);
		found.n_static = i + 1;
	}
	found.present = true;
	if (out != NULL)
		*out = found;
	return 0;
}

/* See peering_config.h. */
int
peering_config_validate(json_t *config, const char *router_name)
{
	static const char *const keys[] = {"version",	    "router",		"hub",
					   "neighborhoods", "management-proxy", NULL};
	json_int_t version;

	if (!json_is_object(config))
		return or_error("peering configuration must be a JSON object");
	if (only_known_keys(config, "configuration", keys) == -1 ||
	    json_get_int(config, "version", true, 1, 1, &version) == -1)
		return -1;
	if (check_router(config, router_name) == -1 || check_hub(config) == -1 ||
	    check_neighborhoods(config) == -1 || check_mgmt_proxy(config, NULL) == -1)
		return -1;
	return 0;
}

/* See peering_config.h. */
int
peering_config_mgmt_proxy(json_t *config, struct peering_mgmt_proxy *out)
{
	memset(out, 0, sizeof(*out));
	if (peering_config_validate(config, NULL) == -1)
		return -1;
	return check_mgmt_proxy(config, out);
}

/* See peering_config.h. */
int
peering_config_load(const char *path, const char *router_name, json_t **out)
{
	json_t *config = NULL;

	*out = NULL;
	if (json_load_object_file(path, PEERING_CONFIG_MAX, &config) == -1)
		return -1;
	if (peering_config_validate(config, router_name) == -1) {
		json_decref(config);
		return or_error_prefix("%s", path);
	}
	*out = config;
	return 0;
}

/* See peering_config.h. */
int
sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
		return or_error("SHA-256 failed");
	hex_encode(md, mdlen, out);
	return 0;
}

/* See peering_config.h. */
int
peering_config_canonical(json_t *config, char **text, char sha256[65])
{
	*text = json_dump_compact(config);
	if (*text == NULL)
		return or_error("out of memory");
	if (strlen(*text) > PEERING_CONFIG_MAX)
		or_error("peering configuration is more than %d bytes", PEERING_CONFIG_MAX);
	else if (sha256_hex(*text, strlen(*text), sha256) == 0)
		return 0;
	free(*text);
	*text = NULL;
	return -1;
}

/* host and port as "host:port" ("[v6]:port"), then checked. */
int
peering_format_address(const char *host, unsigned port, const char *what,
		       char out[PEERING_ADDRESS_MAX])
{
	int len = strchr(host, ':') != NULL
			  ? snprintf(out, PEERING_ADDRESS_MAX, "[%s]:%u", host, port)
			  : snprintf(out, PEERING_ADDRESS_MAX, "%s:%u", host, port);

	if (len < 0 || len >= PEERING_ADDRESS_MAX)
		return or_error("%s '%.60s' is too long", what, host);
	return peering_check_address(out, what);
}
