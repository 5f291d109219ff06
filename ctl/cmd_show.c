/*
 * onrampctl show TOPIC: asks the agent over its control socket and prints
 * the answer as a table, or as the agent's JSON with --json. The agent's
 * answer is checked like any input before it is printed.
 */
#include "onrampctl.h"

#include "core/error.h"
#include "core/json.h"
#include "net/control_client.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char show_usage[] =
	"usage: onrampctl show TOPIC [--json] [--watch] [--socket PATH]\n"
	"\n"
	"Shows the router agent's state. TOPIC is one of:\n"
	"  management-proxy       mode, active proxy, state, every candidate and its source\n"
	"  dhcp learned-proxies   per interface: discovery on/off, lease state, proxies,\n"
	"                         the entries of its last option 43 rejected and why\n"
	"  alarms                 raised and cleared alarms\n"
	"  onboarding             the onboarding flow: current step, what the router waits\n"
	"                         for, each step done and when, connection state,\n"
	"                         diagnostics\n"
	"  --json                 print the agent's JSON answer as it is\n"
	"  --watch                ask again every 2 s until interrupted (a terminal is\n"
	"                         redrawn; otherwise one answer after the other)\n"
	"  --socket PATH          the agent's control socket (default " ONRAMP_AGENT_SOCKET ")\n";

/* Returns the string field or "?" when the agent sent something else. */
static const char *
str(json_t *obj, const char *key)
{
	const char *s = NULL;

	if (json_get_string(obj, key, true, 1024, &s) == -1)
		return "?";
	return s;
}

/* The management proxy as a table, then its active alarms. */
static void
print_proxy(const char *socket_path, json_t *r)
{
	json_t *cands = json_object_get(r, "candidates"), *c, *alarms = NULL, *al;
	json_t *req = json_pack("{ss}", "command", "show alarms");
	size_t i;

	printf("mode:    %s\n", str(r, "mode"));
	printf("active:  %s\n",
	       json_is_string(json_object_get(r, "active")) ? str(r, "active") : "N/A");
	printf("state:   %s\n", str(r, "state"));
	printf("\n%-22s %-22s %s\n", "CANDIDATE", "SOURCE", "REACHABLE");
	json_array_foreach(cands, i, c)
		printf("%-22s %-22s %s\n", str(c, "proxy"), str(c, "source"),
		       json_is_true(json_object_get(c, "reachable")) ? "yes" : "no");
	if (json_array_size(cands) == 0)
		printf("(none)\n");
	/* the alarms are a separate topic; show the active proxy ones here too */
	if (req != NULL && control_call(socket_path, req, &alarms) == 0) {
		int header = 0;

		json_array_foreach(json_object_get(alarms, "alarms"), i, al)
		{
			if (!json_is_null(json_object_get(al, "cleared")) ||
			    (strcmp(str(al, "message"), "Management Proxy is unreachable") != 0 &&
			     strcmp(str(al, "message"), "no management proxy is available") != 0))
				continue;
			if (!header++)
				printf("\nactive alarms:\n");
			printf("  %s: %s (%s) since %s\n", str(al, "severity"), str(al, "message"),
			       str(al, "subject"), str(al, "raised"));
		}
	}
	json_decref(alarms);
	json_decref(req);
}

/* One line per DHCP interface, then one per entry its last option 43 had rejected. */
static void
print_learned(const char *socket_path, json_t *r)
{
	json_t *ifaces = json_object_get(r, "interfaces"), *f, *p;
	size_t i, j;

	(void)socket_path;
	printf("%-16s %-10s %-12s %s\n", "INTERFACE", "DISCOVERY", "LEASE", "PROXIES");
	json_array_foreach(ifaces, i, f)
	{
		json_t *proxies = json_object_get(f, "proxies");

		printf("%-16s %-10s %-12s ", str(f, "name"),
		       json_is_true(json_object_get(f, "discovery")) ? "on" : "off",
		       str(f, "lease"));
		json_array_foreach(proxies, j, p) printf(
			"%s%s", j ? " " : "", json_is_string(p) ? json_string_value(p) : "?");
		printf("%s\n", json_array_size(proxies) ? "" : "-");
		json_array_foreach(json_object_get(f, "rejected"), j, p)
			printf("  rejected: %s: %s\n", str(p, "entry"), str(p, "reason"));
		if (json_integer_value(json_object_get(f, "rejected_more")) > 0)
			printf("  rejected: %lld more\n",
			       (long long)json_integer_value(json_object_get(f, "rejected_more")));
	}
	if (json_array_size(ifaces) == 0)
		printf("(no DHCP interface configured)\n");
}

/*
 * One line per alarm, oldest first; REPORTED: its latest change reached the
 * cloud. A message or subject wider than its column is cut there with "..."
 * and given whole on the next line (an asset alarm names a conductor and a
 * command).
 */
static void
print_alarms(const char *socket_path, json_t *r)
{
	json_t *alarms = json_object_get(r, "alarms"), *al;
	const char *message, *subject;
	size_t i;

	(void)socket_path;
	printf("%-9s %-34s %-22s %-21s %-21s %s\n", "SEVERITY", "MESSAGE", "SUBJECT", "RAISED",
	       "CLEARED", "REPORTED");
	json_array_foreach(alarms, i, al)
	{
		int message_width, subject_width;

		message = str(al, "message");
		subject = str(al, "subject");
		message_width = strlen(message) > 34 ? 31 : 34;
		subject_width = strlen(subject) > 22 ? 19 : 22;
		printf("%-9s %-*.*s%s %-*.*s%s %-21s %-21s %s\n", str(al, "severity"),
		       message_width, message_width, message, message_width < 34 ? "..." : "",
		       subject_width, subject_width, subject, subject_width < 22 ? "..." : "",
		       str(al, "raised"),
		       json_is_string(json_object_get(al, "cleared")) ? str(al, "cleared")
								      : "active",
		       json_is_true(json_object_get(al, "reported")) ? "yes" : "no");
		if (message_width < 34 || subject_width < 22)
			printf("          %s (%s)\n", message, subject);
	}
	if (json_array_size(alarms) == 0)
		printf("(none)\n");
}

static const struct topic {
	const char *word1, *word2; /* word2 NULL: a one-word topic */
	const char *command;
	void (*print)(const char *socket_path, json_t *result);
} topics[] = {
	{"management-proxy", NULL, "show management-proxy", print_proxy},
	{"dhcp", "learned-proxies", "show dhcp learned-proxies", print_learned},
	{"alarms", NULL, "show alarms", print_alarms},
	{"onboarding", NULL, "show onboarding", print_onboarding},
};

static volatile sig_atomic_t stop_watching;

/* SIGINT, SIGTERM while watching: leave after the current answer. */
static void
on_stop(int sig)
{
	(void)sig;
	stop_watching = 1;
}

/* Asks the agent about topic once and prints the answer (JSON, or the topic's text). */
static int
show_once(const struct topic *topic, const char *socket_path, int json)
{
	json_t *req = json_pack("{ss}", "command", topic->command), *result = NULL;
	char *text;
	int rc = EXIT_OK;

	if (req == NULL || control_call(socket_path, req, &result) == -1) {
		json_decref(req);
		return ctl_fail(EXIT_FAILURE_RUNTIME, "show: %s", or_errmsg());
	}
	if (json) {
		text = json_dumps(result, JSON_COMPACT);
		if (text != NULL)
			puts(text);
		else
			rc = ctl_fail(EXIT_FAILURE_RUNTIME, "show: out of memory");
		free(text);
	} else {
		topic->print(socket_path, result);
	}
	json_decref(result);
	json_decref(req);
	return rc;
}

/* Finds the topic (one or two words), parses options, asks the agent. */
int
cmd_show(int argc, char **argv)
{
	static const struct option options[] = {
		{"json", no_argument, NULL, 'j'},
		{"watch", no_argument, NULL, 'w'},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket_path = ONRAMP_AGENT_SOCKET;
	const struct topic *topic = NULL;
	int opt, json = 0, watch = 0, words = 0, rc;

	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]) && argc > 1; i++) {
		if (strcmp(argv[1], topics[i].word1) != 0)
			continue;
		if (topics[i].word2 == NULL) {
			topic = &topics[i];
			words = 1;
		} else if (argc > 2 && strcmp(argv[2], topics[i].word2) == 0) {
			topic = &topics[i];
			words = 2;
		}
	}
	if (topic == NULL) {
		if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
			fputs(show_usage, stdout);
			return EXIT_OK;
		}
		return ctl_fail(EXIT_BAD_INPUT,
				"show: unknown topic '%s' (try 'onrampctl show --help')",
				argc > 1 ? argv[1] : "");
	}
	argc -= words;
	argv += words;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'w':
			watch = 1;
			break;
		case 's':
			socket_path = optarg;
			break;
		case 'h':
			fputs(show_usage, stdout);
			return EXIT_OK;
		default:
			return ctl_fail(EXIT_BAD_INPUT, "show: unknown or incomplete option '%s'",
					argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ctl_fail(EXIT_BAD_INPUT, "show: unexpected argument '%s'", argv[optind]);
	if (!watch)
		return show_once(topic, socket_path, json);
	/* --watch: until SIGINT or SIGTERM, which end it with 0; a failed ask ends it too. */
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	while (!stop_watching) {
		if (isatty(STDOUT_FILENO) && !json)
			fputs("\033[H\033[2J", stdout);
		if ((rc = show_once(topic, socket_path, json)) != EXIT_OK)
			return rc;
		fflush(stdout);
		for (int i = 0; i < 20 && !stop_watching; i++)
			usleep(100000);
	}
	return EXIT_OK;
}
