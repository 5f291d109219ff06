/*
 * onramp-agent's entry point: reads the configuration, wires the engines to
 * their frontends (see agent.h) and runs the event loop until SIGTERM or
 * SIGINT. On the way out it removes the leases it put on interfaces and its
 * control socket.
 */
#include "agent.h"

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/notify.h"
#include "core/secret.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_BAD_INPUT 2

static const char usage_text[] =
	"usage: onramp-agent [-c FILE] [--check-config] [--log-level LEVEL] [--syslog]\n"
	"       onramp-agent --version\n"
	"\n"
	"The router's onramp agent: finds the management proxy (static entries, a\n"
	"bootstrap file, or DHCP option 43 learned by its own DHCP client), watches\n"
	"its health, and, when [onboarding] names a redirector, onboards the router:\n"
	"phone home, mutual OCRA with its cloud, staging conductor (certificate,\n"
	"configuration, production details), migrate, running on production. It\n"
	"answers `onrampctl show ...` and `onrampctl migrate conductor` on its\n"
	"control socket.\n"
	"  -c, --config FILE      configuration (default " AGENT_CONF_DEFAULT ")\n"
	"      --check-config     check the configuration and exit\n"
	"      --log-level LEVEL  error, warn, info or debug (default: the file's)\n"
	"      --syslog           log to syslog instead of stderr\n"
	"      --version          print the version and exit\n"
	"See docs/agent.md and docs/agent.conf.md.\n";

/* The entries one option 43 lost, to be shown with the interface. */
struct drops {
	const char *ifname;
	struct book_rejected list[BOOK_MAX_REJECTED];
	size_t n; /* all of them, also those beyond the list */
};

/* Logs one entry option 43 lost, with the interface it came on, and keeps it. */
static void
on_drop(void *arg, const char *entry, const char *reason)
{
	struct drops *d = arg;

	log_warn("%s: option 43: dropped %s: %s", d->ifname, entry, reason);
	if (d->n < BOOK_MAX_REJECTED) {
		snprintf(d->list[d->n].entry, sizeof(d->list[d->n].entry), "%s", entry);
		snprintf(d->list[d->n].reason, sizeof(d->list[d->n].reason), "%s", reason);
	}
	d->n++;
}

/*
 * Replaces what ifname learned with the good proxies of its option 43
 * (data may be NULL: none), and probes the new candidates at once.
 */
static void
learn_option43(void *arg, const char *ifname, const uint8_t *data, size_t len)
{
	struct agent *agent = arg;
	struct option43_proxies found;
	struct drops drops = {.ifname = ifname};
	const struct book_iface *bi = proxy_book_iface(&agent->book, ifname);

	found.count = 0;
	if (bi != NULL && bi->enabled && data != NULL)
		option43_parse(data, len, &found, on_drop, &drops);
	proxy_book_set_learned(&agent->book, ifname, found.proxy, found.count, time(NULL));
	proxy_book_set_rejected(&agent->book, ifname, drops.list, drops.n);
	health_kick(agent->health);
}

/* dhcp_io callback: a new or renewed lease; its option 43 is the truth now. */
static void
dhcp_lease(void *arg, const char *ifname, const struct dhcp_lease *lease)
{
	learn_option43(arg, ifname, lease->has_vendor ? lease->vendor : NULL, lease->vendor_len);
}

/* dhcp_io callback: the lease is gone, and with it what it taught. */
static void
dhcp_lost(void *arg, const char *ifname)
{
	struct agent *agent = arg;

	if (!agent->stopping) {
		proxy_book_set_learned(&agent->book, ifname, NULL, 0, time(NULL));
		proxy_book_set_rejected(&agent->book, ifname, NULL, 0);
	}
}

/* dhcp_io callback: the client state, for `show dhcp learned-proxies`. */
static void
dhcp_state(void *arg, const char *ifname, enum dhcp_state state)
{
	struct agent *agent = arg;

	proxy_book_set_lease(&agent->book, ifname, dhcp_state_name(state));
}

/* Control command "show management-proxy". */
static int
show_proxy(void *arg, json_t *req, json_t **result)
{
	struct agent *agent = arg;

	(void)req;
	*result = proxy_book_status_json(&agent->book);
	return *result ? 0 : or_error("out of memory");
}

/* Control command "show dhcp learned-proxies". */
static int
show_learned(void *arg, json_t *req, json_t **result)
{
	struct agent *agent = arg;

	(void)req;
	*result = proxy_book_learned_json(&agent->book);
	return *result ? 0 : or_error("out of memory");
}

/* Control command "show alarms". */
static int
show_alarms(void *arg, json_t *req, json_t **result)
{
	struct agent *agent = arg;

	(void)req;
	*result = alarms_json(&agent->alarms);
	return *result ? 0 : or_error("out of memory");
}

/* SIGTERM, SIGINT: leave the loop; stop() cleans up. */
static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct agent *agent = arg;

	(void)what;
	log_info("signal %d: stopping", (int)sig);
	notify_stopping();
	event_base_loopbreak(agent->base);
}

/* Once a second: the proxy book's "no management proxy" alarm needs a clock. */
static void
on_book_tick(evutil_socket_t fd, short what, void *arg)
{
	struct agent *agent = arg;

	(void)fd;
	(void)what;
	proxy_book_tick(&agent->book, time(NULL));
}

/*
 * True when the agent's own DHCP client brings an interface up: probes wait
 * for its first lease, so that none fails for want of the route.
 */
static bool
has_dhcp_client(const struct agent_conf *conf)
{
	for (size_t i = 0; i < conf->n_iface; i++)
		if (conf->iface[i].dhcp == AGENT_DHCP_CLIENT)
			return true;
	return false;
}

/*
 * Fills the proxy book from the configuration and the applied peering
 * configuration; a flap within a probe interval is no event.
 */
static int
setup_book(struct agent *a)
{
	a->alarms.settle_s = a->conf.health_interval;
	proxy_book_init(&a->book, a->conf.mode, &a->alarms);
	for (size_t i = 0; i < a->conf.n_static; i++)
		if (proxy_book_add_static(&a->book, &a->conf.statics[i], false) == -1)
			return -1;
	for (size_t i = 0; i < a->conf.n_bootstrap; i++)
		if (proxy_book_add_static(&a->book, &a->conf.bootstrap[i], true) == -1)
			return -1;
	for (size_t i = 0; i < a->conf.n_iface; i++)
		if (a->conf.iface[i].dhcp != AGENT_DHCP_OFF &&
		    proxy_book_add_iface(&a->book, a->conf.iface[i].name,
					 a->conf.iface[i].discovery) == -1)
			return -1;
	mgmt_proxy_apply_stored(a, time(NULL));
	return 0;
}

/*
 * Builds the agent from its configuration: book, control socket, health
 * prober, one DHCP client per `dhcp = true` interface, signals.
 */
static int
start(struct agent *a)
{
	struct dhcp_io_callbacks cb = {dhcp_lease, dhcp_lost, dhcp_state, a};
	struct timeval second = {1, 0};

	if (file_ensure_dir(a->conf.state_dir, 0700) == -1 || setup_book(a) == -1)
		return -1;
	a->dhcp_hook = (struct dhcp_hook){
		.conf = &a->conf, .book = &a->book, .learn = learn_option43, .arg = a};
	a->base = event_base_new();
	if (a->base == NULL)
		return or_error("cannot create the event loop");
	if (control_open(a->base, a->conf.control_socket, &a->control) == -1 ||
	    control_register(a->control, "show management-proxy", show_proxy, a) == -1 ||
	    control_register(a->control, "show dhcp learned-proxies", show_learned, a) == -1 ||
	    control_register(a->control, "show alarms", show_alarms, a) == -1 ||
	    dhcp_hook_register(a->control, a->base, &a->dhcp_hook) == -1 ||
	    onboard_start(a, &a->onboard) == -1)
		return -1;
	if (health_start(a->base, &a->book, a->conf.health_interval, a->conf.health_timeout,
			 !has_dhcp_client(&a->conf), &a->health) == -1)
		return -1;
	for (size_t i = 0; i < a->conf.n_iface; i++) {
		const struct agent_iface_conf *f = &a->conf.iface[i];
		const struct book_iface *bi = proxy_book_iface(&a->book, f->name);

		if (f->dhcp == AGENT_DHCP_CLIENT &&
		    dhcp_io_open(a->base, f, bi != NULL && bi->enabled, &cb, &a->dhcp[i]) == -1)
			return -1;
	}
	a->book_tick = event_new(a->base, -1, EV_PERSIST, on_book_tick, a);
	if (a->book_tick == NULL || event_add(a->book_tick, &second) == -1)
		return or_error("cannot set up the proxy book's timer");
	a->sig_term = evsignal_new(a->base, SIGTERM, on_signal, a);
	a->sig_int = evsignal_new(a->base, SIGINT, on_signal, a);
	if (a->sig_term == NULL || a->sig_int == NULL || evsignal_add(a->sig_term, NULL) == -1 ||
	    evsignal_add(a->sig_int, NULL) == -1)
		return or_error("cannot watch signals");
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/*
 * Undoes start(), whatever part of it ran: leases off the interfaces,
 * probes and connections closed, the socket file removed.
 */
static void
stop(struct agent *a)
{
	a->stopping = true;
	for (size_t i = 0; i < AGENT_MAX_IFACES; i++)
		dhcp_io_close(a->dhcp[i]);
	health_stop(a->health);
	if (!onboard_stop(a->onboard))
		a->exit_now = true;
	control_close(a->control);
	dhcp_hook_close(&a->dhcp_hook);
	if (a->book_tick != NULL)
		event_free(a->book_tick);
	if (a->sig_term != NULL)
		event_free(a->sig_term);
	if (a->sig_int != NULL)
		event_free(a->sig_int);
	if (a->base != NULL)
		event_base_free(a->base);
	agent_conf_free(&a->conf);
}

/* Parses the command line (untrusted), loads the configuration, runs the loop. */
int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'C'},
		{"log-level", required_argument, NULL, 'l'},
		{"syslog", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	static struct agent agent;
	const char *config = AGENT_CONF_DEFAULT, *level_text = NULL;
	enum log_level level = LOG_LEVEL_INFO;
	enum log_target target = LOG_TARGET_STDERR;
	bool check_only = false;
	int opt, rc = 1;

	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'l':
			level_text = optarg;
			break;
		case 's':
			target = LOG_TARGET_SYSLOG;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("onramp-agent %s\n", ONRAMP_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return EXIT_BAD_INPUT;
		}
	}
	if (optind != argc) {
		fputs(usage_text, stderr);
		return EXIT_BAD_INPUT;
	}
	if (level_text != NULL && log_level_parse(level_text, &level) == -1) {
		fprintf(stderr, "onramp-agent: %s\n", or_errmsg());
		return EXIT_BAD_INPUT;
	}
	log_init("onramp-agent", target, level);
	/* before the proxy password is read: no core dump may carry it */
	if (secret_disable_core_dumps() == -1) {
		fprintf(stderr, "onramp-agent: %s\n", or_errmsg());
		return 1;
	}
	if (agent_conf_load(config, &agent.conf) == -1) {
		fprintf(stderr, "onramp-agent: %s\n", or_errmsg());
		return EXIT_BAD_INPUT;
	}
	if (check_only) {
		printf("%s: configuration OK\n", config);
		agent_conf_free(&agent.conf);
		return 0;
	}
	if (level_text == NULL)
		log_init("onramp-agent", target, agent.conf.log_level);
	alarms_init(&agent.alarms);
	if (start(&agent) == -1) {
		log_error("%s", or_errmsg());
		goto out;
	}
	log_info("started: proxy mode %s, control socket %s", proxy_mode_name(agent.conf.mode),
		 agent.conf.control_socket);
	notify_ready("started");
	if (event_base_dispatch(agent.base) == -1)
		log_error("event loop failed");
	else
		rc = 0;
out:
	stop(&agent);
	if (agent.exit_now)
		_exit(rc); /* the onboarding worker is inside a request; the state is saved */
	return rc;
}
