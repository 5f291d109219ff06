/*
 * onramp-redirectd's entry point: its configuration keys; daemon_main() does
 * the rest (init, serving, signals).
 */
#include "redirect.h"

#include "core/error.h"
#include "server/daemon.h"

#include <stdlib.h>

static const char usage[] =
	"usage: onramp-redirectd init --config FILE [--token-file FILE]\n"
	"       onramp-redirectd --config FILE [--check-config]\n"
	"\n"
	"The global phone-home service of onramp: a router posts its serial and learns\n"
	"the URL and trust anchor of the cloud that claimed it, or 404 with Retry-After.\n"
	"\n"
	"  init       create the state directory and database, and a first admin token:\n"
	"             written to --token-file (mode 0600), or else printed once\n"
	"  --config   configuration file (see onramp-redirectd(8)), section [redirectd]:\n"
	"             address, port, cert-file, key-file, threads, state-dir, database,\n"
	"             max-body, request-timeout, log-level, drain-timeout, retry-after,\n"
	"             source-rate, source-burst, global-rate, global-burst\n"
	"  --check-config  check the configuration and exit (0, or 2 naming FILE:LINE)\n"
	"  --help     this text\n"
	"  --version  the version\n";

/*
 * Reads [redirectd] retry-after and the rate limits (the rest is daemon_config_read's); trusts
 * the file only as parsed by lib/config.
 */
static int
configure(struct config *cfg, const struct daemon_config *dc, bool init, void **out)
{
	struct redirect_app *app = calloc(1, sizeof(*app));

	(void)dc;
	if (app == NULL)
		return or_error("out of memory");
	*out = app;
	if (config_get_uint(cfg, "redirectd", "retry-after", 60, 1, 86400, &app->retry_after) ==
		    -1 ||
	    rate_limit_config(cfg, "redirectd", &app->rate) == -1)
		return -1;
	return init ? 0 : rate_limiter_new(&app->rate, &app->limiter);
}

/* Frees the application state. */
static void
release(void *arg)
{
	struct redirect_app *app = arg;

	rate_limiter_free(app->limiter);
	free(app);
}

/* daemon_main's routes hook: the redirector's table. */
static size_t
routes(void *app, const struct http_route **out)
{
	return redirect_routes(app, out);
}

/* onramp-redirectd: daemon_main with the redirector's configuration, schema and routes. */
int
main(int argc, char **argv)
{
	const struct daemon_program prog = {
		.name = "onramp-redirectd",
		.version = ONRAMP_VERSION,
		.section = "redirectd",
		.default_db = "redirect.db",
		.usage = usage,
		.component = "redirectd",
		.migrations = redirect_migrations,
		.n_migrations = redirect_n_migrations,
		.configure = configure,
		.routes = routes,
		.release = release,
	};

	return daemon_main(argc, argv, &prog);
}
