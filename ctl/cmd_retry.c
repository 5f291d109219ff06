/*
 * onrampctl retry: asks the router's agent to try its current onboarding step
 * now instead of waiting for its backoff, e.g. after the proxy's password or
 * the site's settings in the cloud were corrected. It trusts the command line
 * for nothing and the agent's answer only to print it.
 */
#include "onrampctl.h"

#include "core/error.h"
#include "net/control_client.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char retry_usage[] =
	"usage: onrampctl retry [--socket PATH]\n"
	"\n"
	"Asks the agent to try its current onboarding step now instead of waiting\n"
	"for its backoff (after fixing a proxy password, a claim or the site's\n"
	"settings, for example). 'onrampctl show onboarding' says what the router\n"
	"waits for.\n"
	"  --socket PATH  the agent's control socket (default " ONRAMP_AGENT_SOCKET ")\n"
	"Exit 0 asked, 1 refused (e.g. onboarding complete) or no agent, 2 bad input.\n";

int
cmd_retry(int argc, char **argv)
{
	static const struct option options[] = {
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket_path = ONRAMP_AGENT_SOCKET, *was, *step;
	json_t *req = NULL, *result = NULL;
	int opt, rc = EXIT_FAILURE_RUNTIME;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			socket_path = optarg;
			break;
		case 'h':
			fputs(retry_usage, stdout);
			return EXIT_OK;
		default:
			return ctl_fail(EXIT_BAD_INPUT, "retry: unknown or incomplete option '%s'",
					argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ctl_fail(EXIT_BAD_INPUT, "retry: unexpected argument '%s'", argv[optind]);
	req = json_pack("{s:s}", "command", "retry");
	if (req == NULL || control_call(socket_path, req, &result) == -1) {
		rc = ctl_fail(EXIT_FAILURE_RUNTIME, "retry: %s", or_errmsg());
		goto out;
	}
	was = json_string_value(json_object_get(result, "was_waiting_until"));
	step = json_string_value(json_object_get(result, "step"));
	printf("retrying step %s now", step != NULL ? step : "?");
	if (was != NULL)
		printf(" (it was waiting until %s)", was);
	printf("\n");
	rc = EXIT_OK;
out:
	json_decref(result);
	json_decref(req);
	return rc;
}
