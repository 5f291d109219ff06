/*
 * onrampctl dhcp-hook IFACE [EVENT]: run from a system DHCP client's script,
 * it hands the lease event and option 43 to the agent (for interfaces
 * configured with `dhcp = hook`). Option 43 comes from the environment the
 * client sets: busybox udhcpc's `opt43` (plain hex) or ISC dhclient's
 * `new_vendor_encapsulated_options` (hex bytes separated by ':'). The event
 * comes from the argument (udhcpc passes it as $1) or from $reason (dhclient).
 * The lease time comes from --lease-time, or udhcpc's `lease` or dhclient's
 * `new_dhcp_lease_time`: the agent drops the proxies at the lease's end if no
 * new event comes (a client killed without running its script).
 * The environment is untrusted input: it is normalised and checked here, and
 * the agent parses option 43 itself.
 */
#include "onrampctl.h"

#include "core/error.h"
#include "net/control_client.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPTION43_HEX_MAX 2048

static const char hook_usage[] =
	"usage: onrampctl dhcp-hook IFACE [EVENT] [--lease-time SECONDS] [--socket PATH]\n"
	"\n"
	"Hands a system DHCP client's lease event and option 43 to the agent, for an\n"
	"interface configured with 'dhcp = hook'. EVENT defaults to $reason (dhclient);\n"
	"option 43 is read from $opt43 (udhcpc) or $new_vendor_encapsulated_options\n"
	"(dhclient), the lease time from $lease (udhcpc) or $new_dhcp_lease_time\n"
	"(dhclient). Lease obtained: bound, renew (udhcpc); BOUND, RENEW, REBIND, REBOOT\n"
	"(dhclient). Lease gone: deconfig, leasefail, nak; EXPIRE, FAIL, RELEASE, STOP,\n"
	"TIMEOUT. Other dhclient reasons (PREINIT, ...) are ignored. With a lease time,\n"
	"the agent drops the proxies when the lease ends without a new event.\n"
	"  --lease-time SECONDS  the lease time (1 to 4294967295, which is infinite)\n"
	"  --socket PATH         the agent's control socket (default " ONRAMP_AGENT_SOCKET ")\n";

static const char *const bound_events[] = {"bound", "renew", "BOUND", "RENEW", "REBIND", "REBOOT"};
static const char *const unbound_events[] = {"deconfig", "leasefail", "nak",  "EXPIRE",
					     "FAIL",	 "RELEASE",   "STOP", "TIMEOUT"};
static const char *const ignored_events[] = {"PREINIT", "MEDIUM", "ARPCHECK", "ARPSEND"};

/* True when word is one of list's n words. */
static int
member(const char *word, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(word, list[i]) == 0)
			return 1;
	return 0;
}

#define MEMBER(word, list) member(word, list, sizeof(list) / sizeof(list[0]))

/*
 * Turns "800f3130..." (udhcpc) or "80:f:31:30:..." (dhclient, which drops
 * leading zeros) into plain lower-case hex in out. -1 when it is neither.
 */
static int
normalise_hex(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	if (strchr(in, ':') == NULL) {
		for (const char *p = in; *p; p++)
			if (!isxdigit((unsigned char)*p))
				return -1;
		if (strlen(in) % 2 != 0 || strlen(in) >= cap)
			return -1;
		for (const char *p = in; *p; p++)
			out[o++] = (char)tolower((unsigned char)*p);
		out[o] = '\0';
		return 0;
	}
	for (const char *p = in;;) {
		size_t digits = 0;

		while (isxdigit((unsigned char)p[digits]))
			digits++;
		if (digits == 0 || digits > 2 || o + 3 > cap)
			return -1;
		out[o++] = digits == 1 ? '0' : (char)tolower((unsigned char)p[0]);
		out[o++] = (char)tolower((unsigned char)p[digits - 1]);
		p += digits;
		if (*p == '\0')
			break;
		if (*p++ != ':')
			return -1;
	}
	out[o] = '\0';
	return 0;
}

/* A lease time in seconds, 1 to 4294967295 (infinite), as decimal digits; -1 otherwise. */
static int
parse_lease_time(const char *text, json_int_t *out)
{
	unsigned long long v;
	char *end;

	if (text[0] < '0' || text[0] > '9' || strlen(text) > 10)
		return -1;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > 0xffffffffull)
		return -1;
	*out = (json_int_t)v;
	return 0;
}

/* Maps the DHCP client's event, normalises option 43, asks the agent. */
int
cmd_dhcp_hook(int argc, char **argv)
{
	static const struct option options[] = {
		{"socket", required_argument, NULL, 's'},
		{"lease-time", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket_path = ONRAMP_AGENT_SOCKET, *ifname, *event, *raw, *var = "opt43";
	const char *lease_text = NULL, *lease_var = NULL;
	char hex[OPTION43_HEX_MAX + 1] = "";
	json_t *req = NULL, *result = NULL;
	json_int_t lease_s = 0;
	int opt, rc = EXIT_OK, bound;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			socket_path = optarg;
			break;
		case 'l':
			if (parse_lease_time(optarg, &lease_s) == -1)
				return ctl_fail(EXIT_BAD_INPUT,
						"dhcp-hook: --lease-time must be 1 to 4294967295 "
						"seconds, not '%.40s'",
						optarg);
			lease_text = optarg;
			break;
		case 'h':
			fputs(hook_usage, stdout);
			return EXIT_OK;
		default:
			return ctl_fail(EXIT_BAD_INPUT,
					"dhcp-hook: unknown or incomplete option '%s'",
					argv[optind - 1]);
		}
	}
	if (optind >= argc || argc - optind > 2)
		return ctl_fail(EXIT_BAD_INPUT, "dhcp-hook: expected IFACE [EVENT] (try --help)");
	ifname = argv[optind];
	event = optind + 1 < argc ? argv[optind + 1] : getenv("reason");
	if (event == NULL)
		return ctl_fail(EXIT_BAD_INPUT, "dhcp-hook: no EVENT argument and no $reason");
	if (MEMBER(event, ignored_events))
		return EXIT_OK;
	bound = MEMBER(event, bound_events);
	if (!bound && !MEMBER(event, unbound_events))
		return ctl_fail(EXIT_BAD_INPUT, "dhcp-hook: unknown event '%.40s'", event);
	raw = getenv(var);
	if (raw == NULL) {
		var = "new_vendor_encapsulated_options";
		raw = getenv(var);
	}
	if (bound && raw != NULL && normalise_hex(raw, hex, sizeof(hex)) == -1) {
		/* still tell the agent about the lease, so that stale proxies go */
		hex[0] = '\0';
		rc = ctl_fail(EXIT_BAD_INPUT, "dhcp-hook: $%s is not hex bytes; option 43 ignored",
			      var);
	}
	if (bound && lease_text == NULL) {
		lease_var = "lease";
		lease_text = getenv(lease_var);
		if (lease_text == NULL) {
			lease_var = "new_dhcp_lease_time";
			lease_text = getenv(lease_var);
		}
		if (lease_text != NULL && parse_lease_time(lease_text, &lease_s) == -1)
			/* still tell the agent about the lease, without an end */
			rc = ctl_fail(EXIT_BAD_INPUT,
				      "dhcp-hook: $%s is not 1 to 4294967295 seconds; the lease is "
				      "handed over without an end",
				      lease_var);
	}
	req = json_pack("{ss ss ss ss}", "command", "dhcp-hook", "interface", ifname, "event",
			bound ? "bound" : "unbound", "option43", hex);
	if (req != NULL && bound && lease_s != 0 &&
	    json_object_set_new(req, "lease_time", json_integer(lease_s)) == -1) {
		json_decref(req);
		req = NULL;
	}
	if (req == NULL || control_call(socket_path, req, &result) == -1)
		rc = ctl_fail(EXIT_FAILURE_RUNTIME, "dhcp-hook: %s", or_errmsg());
	json_decref(result);
	json_decref(req);
	return rc;
}
