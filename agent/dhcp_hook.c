/*
 * The "dhcp-hook" control command: a system DHCP client (busybox udhcpc,
 * ISC dhclient) that runs on an interface configured with `dhcp = hook` hands
 * the agent its lease events and option 43, through `onrampctl dhcp-hook`.
 * The request is untrusted input: interface, event and hex are all checked.
 *
 * {"command":"dhcp-hook","interface":"eth0","event":"bound","option43":"800f..."}
 * event "bound" (a lease was obtained or renewed; option43 may be absent) or
 * "unbound" (the lease is gone).
 */
#include "dhcp_hook.h"

#include "dhcp_packet.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"

#include <openssl/crypto.h>
#include <string.h>
#include <time.h>

/* Control command "dhcp-hook": checks the request, then learns or forgets. */
static int
hook(void *arg, json_t *req, json_t **result)
{
	struct dhcp_hook *dh = arg;
	const char *ifname = NULL, *event = NULL, *hex = NULL;
	const struct agent_iface_conf *conf = NULL;
	struct book_iface *bi;
	uint8_t *data = NULL;
	size_t len = 0;

	if (json_get_string(req, "interface", true, IFNAMSIZ - 1, &ifname) == -1 ||
	    json_get_string(req, "event", true, 16, &event) == -1 ||
	    json_get_string(req, "option43", false, 2 * DHCP_VENDOR_MAX, &hex) == -1)
		return -1;
	for (size_t i = 0; i < dh->conf->n_iface; i++)
		if (strcmp(dh->conf->iface[i].name, ifname) == 0)
			conf = &dh->conf->iface[i];
	if (conf == NULL || conf->dhcp != AGENT_DHCP_HOOK)
		return or_error("interface %s is not configured with dhcp = hook", ifname);
	if (strcmp(event, "bound") != 0 && strcmp(event, "unbound") != 0)
		return or_error("event must be bound or unbound, not '%s'", event);
	if (strcmp(event, "bound") == 0 && hex != NULL && hex[0] != '\0' &&
	    hex_decode(hex, "option43", &data, &len) == -1)
		return -1;
	bi = proxy_book_iface(dh->book, ifname); /* every hook interface is in the book */
	log_info("%s: dhcp hook: %s%s", ifname, event, data != NULL ? ", with option 43" : "");
	if (strcmp(event, "bound") == 0) {
		proxy_book_set_lease(dh->book, ifname, "bound");
		dh->learn(dh->arg, ifname, data, len);
	} else {
		proxy_book_set_lease(dh->book, ifname, "none");
		proxy_book_set_learned(dh->book, ifname, NULL, 0, time(NULL));
	}
	OPENSSL_free(data);
	*result = proxy_book_iface_json(bi);
	return *result != NULL ? 0 : or_error("out of memory");
}

/* See dhcp_hook.h. */
int
dhcp_hook_register(struct control *ctl, struct dhcp_hook *dh)
{
	return control_register(ctl, "dhcp-hook", hook, dh);
}
