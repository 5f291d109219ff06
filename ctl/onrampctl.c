/*
 * onrampctl's entry point: finds the command named by the first argument and
 * hands it the rest. It trusts nothing from the command line.
 */
#include "onrampctl.h"

#include "core/error.h"
#include "core/secret.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{"ocra", cmd_ocra, "compute an RFC 6287 OCRA response"},
	{"factory", cmd_factory, "provision a device in the factory (init-device)"},
	{"show", cmd_show, "show the router agent's state (proxy, DHCP, alarms, onboarding)"},
	{"dhcp-hook", cmd_dhcp_hook, "hand a system DHCP client's option 43 to the agent"},
	{"probe", cmd_probe, "make an HTTPS request through the proxy, report what happened"},
	{"conductor", cmd_conductor, "operate a conductor: CA, secrets, routers, migrate"},
	{"migrate", cmd_migrate, "move this router to its production conductor (agent)"},
	{"retry", cmd_retry, "try the current onboarding step now, not after its backoff (agent)"},
	{"cloud", cmd_cloud, "an organisation cloud's admin API (onramp-cloudd)"},
	{"redirect", cmd_redirect, "the redirector's admin API (onramp-redirectd)"},
};

/* The list of commands. */
static void
usage(FILE *out)
{
	fprintf(out, "usage: onrampctl COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'onrampctl COMMAND --help' describes a command; see also onrampctl(1).\n");
}

/* Prints "onrampctl: MESSAGE" on stderr and returns code, so errors are one line. */
int
ctl_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("onrampctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* Finds the command named by the first argument and hands it the rest. */
int
main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr), EXIT_BAD_INPUT;
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("onrampctl %s\n", ONRAMP_VERSION);
		return EXIT_OK;
	}
	/* keys, passwords and tokens pass through several commands: never into a core */
	if (secret_disable_core_dumps() == -1)
		return ctl_fail(EXIT_FAILURE_RUNTIME, "%s", or_errmsg());
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	return ctl_fail(EXIT_BAD_INPUT, "unknown command '%s' (try 'onrampctl --help')", argv[1]);
}
