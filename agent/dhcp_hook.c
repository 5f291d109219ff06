/*
 * The "dhcp-hook" control command: a system DHCP client (busybox udhcpc,
 * ISC dhclient) that runs on an interface configured with `dhcp = hook` hands
 * the agent its lease events and option 43, through `onrampctl dhcp-hook`.
 * The request is untrusted input: interface, event, hex and lease time are
 * all checked.
 *
 * {"command":"dhcp-hook","interface":"eth0","event":"bound","option43":"800f...",
 *  "lease_time":3600}
 * event "bound" (a lease was obtained or renewed; option43 and lease_time may
 * be absent) or "unbound" (the lease is gone). With lease_time (seconds, as
 * the server gave it; 4294967295 is infinite) the learned proxies go when it
 * ends without a new event: the system client may die without running its
 * script, as the agent's own client would never let a lease outlive its end.
 */
#include "dhcp_hook.h"

#include "dhcp_packet.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/json.h"
#include "core/log.h"

#include <openssl/crypto.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define LEASE_INFINITE 0xffffffffu

/* The lease handed over ended with no new event: what it taught goes. */
static void
on_lease_end(evutil_socket_t fd, short what, void *arg)
{
	struct dhcp_hook_lease *l = arg;

	(void)fd;
	(void)what;
	log_warn("%s: dhcp hook: the lease of %u s ended with no new event from the DHCP "
		 "client; its proxies are dropped",
		 l->ifname, l->lease_s);
	proxy_book_set_lease(l->hook->book, l->ifname, "expired");
	proxy_book_set_learned(l->hook->book, l->ifname, NULL, 0, time(NULL));
	l->lease_s = 0;
}

/*
 * Arms the interface's lease-end timer for lease_s seconds from now, or
 * disarms it (0, or infinite). libevent's timers are monotonic: a jump of the
 * wall clock does not end a lease early.
 */
static int
arm_lease_end(struct dhcp_hook_lease *l, uint32_t lease_s)
{
	struct timeval tv = {0, 0};

	if (l->end != NULL)
		event_del(l->end);
	l->lease_s = 0;
	if (lease_s == 0 || lease_s == LEASE_INFINITE)
		return 0;
	if (l->end == NULL) {
		l->end = evtimer_new(l->hook->base, on_lease_end, l);
		if (l->end == NULL)
			return or_error("out of memory");
	}
	tv.tv_sec = (time_t)lease_s;
	if (evtimer_add(l->end, &tv) == -1)
		return or_error("cannot arm the lease-end timer");
	l->lease_s = lease_s;
	return 0;
}

/* Control command "dhcp-hook": checks the request, then learns or forgets. */
static int
hook(void *arg, json_t *req, json_t **result)
{
	struct dhcp_hook *dh = arg;
	const char *ifname = NULL, *event = NULL, *hex = NULL;
	const struct agent_iface_conf *conf = NULL;
	struct dhcp_hook_lease *lease = NULL;
	struct book_iface *bi;
	json_int_t lease_s = 0;
	uint8_t *data = NULL;
	size_t len = 0;
	bool bound;
	int rc = -1;

	if (json_get_string(req, "interface", true, IFNAMSIZ - 1, &ifname) == -1 ||
	    json_get_string(req, "event", true, 16, &event) == -1 ||
	    json_get_string(req, "option43", false, 2 * DHCP_VENDOR_MAX, &hex) == -1 ||
	    json_get_int(req, "lease_time", false, 1, LEASE_INFINITE, &lease_s) == -1)
		return -1;
	for (size_t i = 0; i < dh->conf->n_iface; i++)
		if (strcmp(dh->conf->iface[i].name, ifname) == 0) {
			conf = &dh->conf->iface[i];
			lease = &dh->lease[i];
		}
	if (conf == NULL || conf->dhcp != AGENT_DHCP_HOOK)
		return or_error("interface %s is not configured with dhcp = hook", ifname);
	if (strcmp(event, "bound") != 0 && strcmp(event, "unbound") != 0)
		return or_error("event must be bound or unbound, not '%s'", event);
	bound = strcmp(event, "bound") == 0;
	if (!bound && lease_s != 0)
		return or_error("lease_time goes only with event bound");
	if (bound && hex != NULL && hex[0] != '\0' &&
	    hex_decode(hex, "option43", &data, &len) == -1)
		return -1;
	lease->hook = dh;
	lease->ifname = conf->name;
	if (arm_lease_end(lease, (uint32_t)lease_s) == -1)
		goto out;
	bi = proxy_book_iface(dh->book, ifname); /* every hook interface is in the book */
	if (lease_s != 0)
		log_info("%s: dhcp hook: %s%s, lease %lld s", ifname, event,
			 data != NULL ? ", with option 43" : "", (long long)lease_s);
	else
		log_info("%s: dhcp hook: %s%s", ifname, event,
			 data != NULL ? ", with option 43" : "");
	if (bound) {
		proxy_book_set_lease(dh->book, ifname, "bound");
		dh->learn(dh->arg, ifname, data, len);
	} else {
		proxy_book_set_lease(dh->book, ifname, "none");
		proxy_book_set_learned(dh->book, ifname, NULL, 0, time(NULL));
	}
	*result = proxy_book_iface_json(bi);
	if (*result == NULL ||
	    json_object_set_new(*result, "lease_time",
				lease_s != 0 ? json_integer(lease_s) : json_null()) == -1) {
		json_decref(*result);
		*result = NULL;
		or_error("out of memory");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_free(data);
	return rc;
}

/* See dhcp_hook.h. */
int
dhcp_hook_register(struct control *ctl, struct event_base *base, struct dhcp_hook *dh)
{
	dh->base = base;
	return control_register(ctl, "dhcp-hook", hook, dh);
}

/* See dhcp_hook.h. */
void
dhcp_hook_close(struct dhcp_hook *dh)
{
	for (size_t i = 0; i < AGENT_MAX_IFACES; i++) {
		if (dh->lease[i].end != NULL)
			event_free(dh->lease[i].end);
		dh->lease[i].end = NULL;
	}
}
