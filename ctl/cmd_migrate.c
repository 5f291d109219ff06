/*
 * onrampctl migrate conductor ADDR [ADDR ...]: the router-side migrate. The
 * agent moves the router from its staging conductor to the production
 * conductor at ADDR, with the secret and root CA the staging conductor gave
 * it, and comes back to staging if that fails within its revert window.
 * This command asks the agent over the control socket and, unless --no-wait,
 * follows `show onboarding` until the migration succeeded or failed.
 */
#include "onrampctl.h"

#include "core/error.h"
#include "net/control_client.h"
#include "proto/peering_config.h"

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ADDRESSES 4
#define WAIT_MARGIN_S 120

static const char migrate_usage[] =
	"usage: onrampctl migrate conductor ADDR [ADDR ...] [--no-wait] [--timeout S]\n"
	"                 [--socket PATH]\n"
	"\n"
	"Moves this router to its production conductor at ADDR (host:port, up to 4),\n"
	"using the secret and root CA the staging conductor sent it. If the router\n"
	"cannot get there within the agent's revert window it returns to the staging\n"
	"conductor and the reason is shown (onrampctl show onboarding).\n"
	"  --no-wait      return once the agent accepted the request\n"
	"  --timeout S    give up waiting after S seconds (default: revert window + 120)\n"
	"  --socket PATH  the agent's control socket (default " ONRAMP_AGENT_SOCKET ")\n"
	"While it waits it says so on standard error: each state of the migration, and\n"
	"every 10 s.\n"
	"Exit 0 migrated (or accepted with --no-wait), 1 failed or refused, 2 bad input.\n";

/* Whether a conductor address names its port (peering_check_address allows none). */
static bool
has_port(const char *a)
{
	const char *colon = strrchr(a, ':');

	return colon != NULL && (a[0] != '[' || colon > strchr(a, ']'));
}

/* Sleeps ms milliseconds. */
static void
nap(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Follows "show onboarding" until migration id ended; returns the exit code. */
static int
follow(const char *socket_path, json_int_t id, long timeout_s, const char *where)
{
	time_t end = time(NULL) + timeout_s, said = 0;
	json_t *req = json_pack("{s:s}", "command", "show onboarding");
	char last[32] = "";
	int rc = -1;

	while (rc == -1 && time(NULL) < end) {
		json_t *r = NULL, *mig;
		const char *state;
		time_t now;

		nap(500);
		if (control_call(socket_path, req, &r) == -1) {
			rc = ctl_fail(EXIT_FAILURE_RUNTIME, "migrate: %s", or_errmsg());
			break;
		}
		mig = json_object_get(r, "router_migration");
		state = json_string_value(json_object_get(mig, "state"));
		/* While it waits, it says for what: each new state, and every 10 s. */
		now = time(NULL);
		if (json_integer_value(json_object_get(mig, "id")) == id && state != NULL &&
		    strcmp(state, "succeeded") != 0 && strcmp(state, "failed") != 0 &&
		    (strcmp(state, last) != 0 || now - said >= 10)) {
			fprintf(stderr, "migrate #%lld: %s, to %s (giving up in %lld s)\n",
				(long long)id, state, where, (long long)(end - now));
			snprintf(last, sizeof(last), "%s", state);
			said = now;
		}
		if (json_integer_value(json_object_get(mig, "id")) == id && state != NULL) {
			if (strcmp(state, "succeeded") == 0) {
				printf("migrated: the router runs on the production conductor %s\n",
				       where);
				rc = EXIT_OK;
			} else if (strcmp(state, "failed") == 0) {
				rc = ctl_fail(EXIT_FAILURE_RUNTIME,
					      "migrate: failed, back on the staging conductor: %s",
					      json_string_value(json_object_get(mig, "reason")));
			}
		}
		json_decref(r);
	}
	json_decref(req);
	if (rc == -1)
		rc = ctl_fail(EXIT_FAILURE_RUNTIME,
			      "migrate: no outcome after %ld s; see onrampctl show onboarding",
			      timeout_s);
	return rc;
}

int
cmd_migrate(int argc, char **argv)
{
	static const struct option options[] = {
		{"no-wait", no_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket_path = ONRAMP_AGENT_SOCKET;
	json_t *req = NULL, *addresses, *result = NULL;
	long timeout_s = 0;
	int opt, wait = 1, rc;
	char *end;

	/* --help anywhere, after the words too ("migrate conductor --help"). */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(migrate_usage, stdout);
			return EXIT_OK;
		}
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
		switch (opt) {
		case 'n':
			wait = 0;
			break;
		case 't':
			timeout_s = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || timeout_s < 1 || timeout_s > 86400)
				return ctl_fail(EXIT_BAD_INPUT,
						"migrate: --timeout must be 1 to 86400 seconds");
			break;
		case 's':
			socket_path = optarg;
			break;
		case 'h':
			fputs(migrate_usage, stdout);
			return EXIT_OK;
		default:
			return ctl_fail(EXIT_BAD_INPUT,
					"migrate: unknown or incomplete option '%s'",
					argv[optind - 1]);
		}
	}
	if (optind >= argc || strcmp(argv[optind], "conductor") != 0)
		return ctl_fail(EXIT_BAD_INPUT,
				"migrate: usage: onrampctl migrate conductor ADDR [ADDR ...]");
	optind++;
	/* Options may also follow the addresses. */
	addresses = json_array();
	for (; optind < argc; optind++) {
		const char *a = argv[optind];

		if (strcmp(a, "--no-wait") == 0) {
			wait = 0;
			continue;
		}
		if (strcmp(a, "--socket") == 0 && optind + 1 < argc) {
			socket_path = argv[++optind];
			continue;
		}
		if (strcmp(a, "--timeout") == 0 && optind + 1 < argc) {
			timeout_s = strtol(argv[++optind], &end, 10);
			if (*end != '\0' || timeout_s < 1 || timeout_s > 86400) {
				json_decref(addresses);
				return ctl_fail(EXIT_BAD_INPUT,
						"migrate: --timeout must be 1 to 86400 seconds");
			}
			continue;
		}
		if (a[0] == '-' || peering_check_address(a, "conductor address") == -1 ||
		    !has_port(a)) {
			json_decref(addresses);
			if (a[0] == '-')
				return ctl_fail(EXIT_BAD_INPUT, "migrate: unknown option '%s'", a);
			if (has_port(a))
				return ctl_fail(EXIT_BAD_INPUT, "migrate: %s", or_errmsg());
			return ctl_fail(EXIT_BAD_INPUT,
					"migrate: address '%s' needs a port (host:port)", a);
		}
		json_array_append_new(addresses, json_string(a));
	}
	if (json_array_size(addresses) < 1 || json_array_size(addresses) > MAX_ADDRESSES) {
		json_decref(addresses);
		return ctl_fail(EXIT_BAD_INPUT, "migrate: give 1 to %d conductor addresses",
				MAX_ADDRESSES);
	}
	req = json_pack("{s:s, s:O}", "command", "migrate conductor", "addresses", addresses);
	if (req == NULL || control_call(socket_path, req, &result) == -1) {
		json_decref(req);
		json_decref(addresses);
		return ctl_fail(EXIT_FAILURE_RUNTIME, "migrate: %s", or_errmsg());
	}
	json_decref(req);
	if (timeout_s == 0)
		timeout_s = (long)json_integer_value(json_object_get(result, "revert_window")) +
			    WAIT_MARGIN_S;
	if (!wait) {
		printf("migrate #%lld accepted; follow it with onrampctl show onboarding\n",
		       (long long)json_integer_value(json_object_get(result, "id")));
		rc = EXIT_OK;
	} else {
		rc = follow(socket_path, json_integer_value(json_object_get(result, "id")),
			    timeout_s, json_string_value(json_array_get(addresses, 0)));
	}
	json_decref(result);
	json_decref(addresses);
	return rc;
}
