/*
 * onramp-fleetsim: the command line, the fleet (the routers the factory made
 * under --state-dir) and the summary. The routers run in fleet_pool; each
 * router's flow is fleetsim/router.c. See docs/fleetsim.md and
 * docs/man/onramp-fleetsim.1.
 *
 * Trusts: nothing on the command line or in the files it names before it is
 * checked; bad input exits 2 before any router starts.
 */
#include "fleetsim.h"
#include "pool.h"
#include "setup.h"

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/secret.h"
#include "core/x509.h"
#include "device/device.h"
#include "net/http_parse.h"
#include "proto/conductor_client.h"

#include <curl/curl.h>
#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_ALL_RUNNING 0
#define EXIT_SOME_FAILED 1
#define EXIT_BAD_INPUT 2

static const char usage[] =
	"usage: onramp-fleetsim [run] --state-dir DIR --redirector URL --redirector-ca FILE\n"
	"         --proxy HOST:PORT [--proxy-user U --proxy-password-file FILE]\n"
	"         [--routers N] [--concurrency C] [--json] [--migrate self|wait]\n"
	"         [--router-timeout S] [--connect-timeout S] [--poll-wait S]\n"
	"         [--revert-window S] [--refusals N] [--retry-base MS] [--retry-cap MS]\n"
	"         [--hold S] [--verbose | --debug]\n"
	"       onramp-fleetsim setup --routers N --state-dir DIR ...   (setup --help)\n"
	"\n"
	"Runs N virtual routers (the first N directories of DIR made by onramp-fleetsim\n"
	"setup or onrampctl factory init-device --software) through the whole onboarding\n"
	"flow, at most C at a time, through the proxy, with libonramp's device code:\n"
	"phone home, mutual OCRA, onboarding information, staging conductor,\n"
	"certificate, configuration, production details, migrate, running.\n"
	"  --state-dir DIR        the routers' directories (DIR/SERIAL), made by the factory\n"
	"  --redirector URL       the phone-home redirector (https://host:port)\n"
	"  --redirector-ca FILE   its trust anchor (PEM), as the factory configures a router\n"
	"  --proxy HOST:PORT      the management proxy every connection goes through\n"
	"  --proxy-user U         proxy credentials; the password from --proxy-password-file\n"
	"  --routers N            how many routers (default: every one in DIR)\n"
	"  --concurrency C        routers in flight at once (default 8, at most 4096)\n"
	"  --json                 print "
	"{\"routers\",\"running\",\"failed\",\"p50_s\",\"p99_s\",\"errors\"}\n"
	"  --migrate self|wait    self (default): migrate on the router's own initiative once\n"
	"                         staging sent the production details; wait: for the staging\n"
	"                         conductor's migrate command (an operator's)\n"
	"  --router-timeout S     a router not running S seconds after its start failed (600)\n"
	"  --connect-timeout S    one connection: proxy, CONNECT, TLS (10)\n"
	"  --poll-wait S          the longest command poll asked for (25)\n"
	"  --revert-window S      migrate: time to reach the production conductor (300)\n"
	"  --refusals N           a refusal (4xx, untrusted TLS, proxy credentials) fails the\n"
	"                         router at its N-th time in a row (3)\n"
	"  --retry-base MS, --retry-cap MS   the backoff (full jitter; Retry-After honoured;\n"
	"                         1000 and 30000)\n"
	"  --hold S               routers that run stay connected to the production conductor\n"
	"                         until S seconds after the last router finished (default 0)\n"
	"  --verbose, --debug     log the routers' steps (info) or everything (debug)\n"
	"\n"
	"p50_s and p99_s: seconds from a router's start to running, over the routers that\n"
	"reached running (null when none did). Exit status: 0 every router running,\n"
	"1 some failed, 2 bad input (nothing was run).\n";

static volatile sig_atomic_t stop_all, hold_stop;

/* SIGINT/SIGTERM: every router stops soon and counts as failed ("interrupted"). */
static void
on_signal(int sig)
{
	(void)sig;
	stop_all = 1;
}

/* Parses a whole decimal number in [min, max]. */
int
fleet_parse_count(const char *text, const char *what, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (text[0] < '0' || text[0] > '9')
		return or_error("%s: '%s' is not a number", what, text);
	v = strtoul(text, &end, 10);
	if (*end != '\0' || v < min || v > max)
		return or_error("%s: '%s' is not a number from %u to %u", what, text, min, max);
	*out = (unsigned)v;
	return 0;
}

/* qsort order of directory names. */
static int
by_name(const void *a, const void *b)
{
	return strcmp(((const struct fleet_router *)a)->serial,
		      ((const struct fleet_router *)b)->serial);
}

/*
 * The routers of state_dir: its sub-directories that hold a factory's
 * device.json, sorted by name; the first `want` of them (0: all).
 */
static int
list_routers(const char *state_dir, unsigned want, struct fleet_router **out, size_t *n_out)
{
	struct fleet_router *list = NULL, *grown;
	size_t n = 0, cap = 0;
	struct dirent *e;
	char path[PATH_MAX];
	DIR *d;
	int rc = -1;

	*out = NULL;
	*n_out = 0;
	if ((d = opendir(state_dir)) == NULL)
		return or_error("--state-dir %s: cannot open it", state_dir);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strlen(e->d_name) > FLEET_SERIAL_MAX ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s", state_dir, e->d_name) >=
			    sizeof(path) ||
		    device_info_exists(path) != 1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((grown = realloc(list, cap * sizeof(*list))) == NULL) {
				or_error("out of memory");
				goto out;
			}
			list = grown;
		}
		memset(&list[n], 0, sizeof(list[n]));
		memcpy(list[n].serial, e->d_name, strlen(e->d_name)); /* checked above: it fits */
		n++;
	}
	if (n == 0) {
		or_error("--state-dir %s holds no router made by the factory "
			 "(DIR/SERIAL/device.json)",
			 state_dir);
		goto out;
	}
	if (want > n) {
		or_error("--routers %u: --state-dir %s holds only %zu routers", want, state_dir, n);
		goto out;
	}
	qsort(list, n, sizeof(*list), by_name);
	*out = list;
	*n_out = want ? want : n;
	list = NULL;
	rc = 0;
out:
	closedir(d);
	free(list);
	return rc;
}

/* qsort order of durations. */
static int
by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile p of sorted[0..n-1], rounded to milliseconds. */
static double
percentile(const double *sorted, size_t n, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);

	if (rank == 0)
		rank = 1;
	return round(sorted[rank - 1] * 1000.0) / 1000.0;
}

/* The summary: counts, percentiles of the running routers' times, failures by reason. */
static json_t *
summary(const struct fleet_router *routers, size_t n)
{
	json_t *errors = json_object(), *doc;
	double *times = calloc(n ? n : 1, sizeof(double));
	size_t running = 0;

	if (errors == NULL || times == NULL) {
		json_decref(errors);
		free(times);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (routers[i].running) {
			times[running++] = routers[i].ended - routers[i].started;
			continue;
		}
		const char *reason = routers[i].reason[0] ? routers[i].reason : "not started";
		json_int_t count = json_integer_value(json_object_get(errors, reason));

		json_object_set_new(errors, reason, json_integer(count + 1));
	}
	qsort(times, running, sizeof(double), by_value);
	doc = json_pack("{s:I, s:I, s:I, s:o, s:o, s:o}", "routers", (json_int_t)n, "running",
			(json_int_t)running, "failed", (json_int_t)(n - running), "p50_s",
			running ? json_real(percentile(times, running, 50)) : json_null(), "p99_s",
			running ? json_real(percentile(times, running, 99)) : json_null(), "errors",
			errors);
	free(times);
	return doc;
}

/* The summary as lines for a person. */
static void
print_text(const json_t *doc)
{
	const char *reason;
	json_t *count;

	printf("routers: %" JSON_INTEGER_FORMAT "\nrunning: %" JSON_INTEGER_FORMAT
	       "\nfailed:  %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(doc, "routers")),
	       json_integer_value(json_object_get(doc, "running")),
	       json_integer_value(json_object_get(doc, "failed")));
	if (json_is_real(json_object_get(doc, "p50_s")))
		printf("p50:     %.3f s\np99:     %.3f s\n",
		       json_real_value(json_object_get(doc, "p50_s")),
		       json_real_value(json_object_get(doc, "p99_s")));
	json_object_foreach(json_object_get(doc, "errors"), reason, count) printf(
		"error:   %" JSON_INTEGER_FORMAT " x %s\n", json_integer_value(count), reason);
}

struct options {
	const char *state_dir, *redirector, *redirector_ca, *proxy, *proxy_user, *proxy_pw_file;
	unsigned routers, concurrency;
	bool json;
	enum log_level level;
};

/* Checks the options and reads the files they name into conf. */
static int
prepare(const struct options *a, struct fleet_conf *conf, struct secret *proxy_pw)
{
	char *base = NULL, *path = NULL, *pw = NULL;
	int rc = -1, url_ok;

	if (a->state_dir == NULL || a->redirector == NULL || a->redirector_ca == NULL ||
	    a->proxy == NULL)
		return or_error("--state-dir, --redirector, --redirector-ca and --proxy are "
				"required");
	if ((a->proxy_user == NULL) != (a->proxy_pw_file == NULL))
		return or_error("--proxy-user and --proxy-password-file go together");
	url_ok = http_url_origin_and_path(a->redirector, &base, &path);
	free(base);
	free(path);
	if (url_ok == -1)
		return or_error_prefix("--redirector");
	if (http_proxy_parse(a->proxy, &conf->proxy) == -1)
		return or_error_prefix("--proxy");
	if (file_read_text(a->redirector_ca, PKI_MAX_PEM, &conf->redirector_ca_pem) == -1 ||
	    pki_check_certificates(conf->redirector_ca_pem, strlen(conf->redirector_ca_pem), 16,
				   "--redirector-ca") == -1)
		return -1;
	if (a->proxy_user != NULL) {
		if (file_read_text(a->proxy_pw_file, 1024, &pw) == -1)
			return -1;
		if (secret_from(proxy_pw, pw, strlen(pw)) == -1)
			goto out;
		conf->proxy.user = a->proxy_user;
		conf->proxy.password = proxy_pw;
	}
	conf->redirector_url = a->redirector;
	rc = 0;
out:
	if (pw != NULL) {
		secure_zero(pw, strlen(pw));
		free(pw);
	}
	return rc;
}

struct run_arg {
	const struct fleet_conf *conf;
	const char *state_dir;
	struct fleet_router *routers;
	volatile sig_atomic_t *stop;
};

/* One router of the fleet, on a worker thread. */
static void
run_router(void *arg, size_t i, void **thread_state)
{
	struct run_arg *a = arg;
	struct fleet_router *r = &a->routers[i];

	(void)thread_state;
	fleet_router_run(a->conf, a->state_dir, r, a->stop);
	log_info("%s: %s%s", r->serial,
		 r->running ? "running" : "failed: ", r->running ? "" : r->reason);
}

/*
 * --hold: the running routers stay connected hold_s seconds more (or until
 * SIGINT/SIGTERM), then leave; returns once every one has left.
 */
static void
hold_then_end(struct fleet_router *routers, size_t n, unsigned hold_s)
{
	size_t held = 0;

	for (size_t i = 0; i < n; i++)
		held += routers[i].held;
	fprintf(stderr, "onramp-fleetsim: %zu routers held connected for %u s\n", held, hold_s);
	for (unsigned ms = hold_s * 1000u; ms > 0 && !stop_all; ms -= ms > 100 ? 100 : ms) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};

		nanosleep(&ts, NULL);
	}
	hold_stop = 1;
	fleet_hold_end(routers, n);
}

/* Parses the options, runs the fleet, prints the summary. */
int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"redirector", required_argument, NULL, 'r'},
		{"redirector-ca", required_argument, NULL, 'R'},
		{"proxy", required_argument, NULL, 'x'},
		{"proxy-user", required_argument, NULL, 'u'},
		{"proxy-password-file", required_argument, NULL, 'P'},
		{"routers", required_argument, NULL, 'n'},
		{"concurrency", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"migrate", required_argument, NULL, 'm'},
		{"router-timeout", required_argument, NULL, 't'},
		{"connect-timeout", required_argument, NULL, 'T'},
		{"poll-wait", required_argument, NULL, 'w'},
		{"revert-window", required_argument, NULL, 'W'},
		{"refusals", required_argument, NULL, 'f'},
		{"retry-base", required_argument, NULL, 'b'},
		{"retry-cap", required_argument, NULL, 'B'},
		{"hold", required_argument, NULL, 'H'},
		{"verbose", no_argument, NULL, 'v'},
		{"debug", no_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct options a = {.concurrency = 8, .level = LOG_LEVEL_ERROR};
	struct fleet_conf conf = {
		.router_timeout_s = 600,
		.poll_wait_s = 25,
		.revert_window_s = CONDUCTOR_DEFAULT_REVERT_WINDOW_S,
		.refusals_max = 3,
		.migrate_self = true,
		.backoff_base_ms = 1000,
		.backoff_cap_ms = 30000,
		.software_version = "onramp-fleetsim " ONRAMP_VERSION,
	};
	struct fleet_router *routers = NULL;
	struct secret proxy_pw = {0};
	unsigned connect_s = 10, hold_s = 0;
	size_t n = 0;
	json_t *doc = NULL;
	int opt, bad = 0, rc = EXIT_BAD_INPUT;

	log_init("onramp-fleetsim", LOG_TARGET_STDERR, LOG_LEVEL_ERROR);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && strcmp(argv[1], "setup") == 0) {
		/* Admin tokens and the production secret are in memory: no core file. */
		secret_disable_core_dumps();
		return fleet_setup_main(argc - 1, argv + 1, &stop_all);
	}
	if (argc > 1 && strcmp(argv[1], "run") == 0) {
		argc--;
		argv++;
	}
	opterr = 0;
	while (!bad && (opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			a.state_dir = optarg;
			break;
		case 'r':
			a.redirector = optarg;
			break;
		case 'R':
			a.redirector_ca = optarg;
			break;
		case 'x':
			a.proxy = optarg;
			break;
		case 'u':
			a.proxy_user = optarg;
			break;
		case 'P':
			a.proxy_pw_file = optarg;
			break;
		case 'n':
			bad = fleet_parse_count(optarg, "--routers", 1, 1000000, &a.routers);
			break;
		case 'c':
			bad = fleet_parse_count(optarg, "--concurrency", 1, 4096, &a.concurrency);
			break;
		case 'j':
			a.json = true;
			break;
		case 'm':
			if (strcmp(optarg, "self") == 0 || strcmp(optarg, "wait") == 0)
				conf.migrate_self = strcmp(optarg, "self") == 0;
			else
				bad = or_error("--migrate: self or wait, not '%s'", optarg);
			break;
		case 't':
			bad = fleet_parse_count(optarg, "--router-timeout", 1, 86400,
						&conf.router_timeout_s);
			break;
		case 'T':
			bad = fleet_parse_count(optarg, "--connect-timeout", 1, 600, &connect_s);
			break;
		case 'w':
			bad = fleet_parse_count(optarg, "--poll-wait", 1, 300, &conf.poll_wait_s);
			break;
		case 'W':
			bad = fleet_parse_count(optarg, "--revert-window", 1, 86400,
						&conf.revert_window_s);
			break;
		case 'f':
			bad = fleet_parse_count(optarg, "--refusals", 1, 1000, &conf.refusals_max);
			break;
		case 'b':
			bad = fleet_parse_count(optarg, "--retry-base", 100, 3600000,
						&conf.backoff_base_ms);
			break;
		case 'B':
			bad = fleet_parse_count(optarg, "--retry-cap", 100, 3600000,
						&conf.backoff_cap_ms);
			break;
		case 'H':
			bad = fleet_parse_count(optarg, "--hold", 0, 86400, &hold_s);
			break;
		case 'v':
			a.level = LOG_LEVEL_INFO;
			break;
		case 'D':
			a.level = LOG_LEVEL_DEBUG;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			bad = or_error("unknown or incomplete option '%s' (try --help)",
				       argv[optind - 1]);
			break;
		}
	}
	if (!bad && optind < argc)
		bad = or_error("unexpected argument '%s' (try --help)", argv[optind]);
	conf.connect_timeout_ms = (long)connect_s * 1000;
	conf.hold = hold_s > 0;
	conf.hold_stop = &hold_stop;
	if (bad || prepare(&a, &conf, &proxy_pw) == -1 ||
	    list_routers(a.state_dir, a.routers, &routers, &n) == -1) {
		fprintf(stderr, "onramp-fleetsim: %s\n", or_errmsg());
		goto out;
	}
	/* Proxy credentials are in memory: no core file may hold them. */
	secret_disable_core_dumps();
	log_init("onramp-fleetsim", LOG_TARGET_STDERR, a.level);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "onramp-fleetsim: libcurl could not be initialised\n");
		rc = EXIT_SOME_FAILED;
		goto out;
	}
	struct run_arg ra = {&conf, a.state_dir, routers, &stop_all};
	struct fleet_job job = {.run = run_router, .arg = &ra};

	rc = fleet_pool_run(&job, n, a.concurrency, &stop_all);
	if (conf.hold)
		hold_then_end(routers, n, hold_s);
	if (rc == -1) {
		fprintf(stderr, "onramp-fleetsim: %s\n", or_errmsg());
		rc = EXIT_SOME_FAILED;
		goto out;
	}
	if ((doc = summary(routers, n)) == NULL) {
		fprintf(stderr, "onramp-fleetsim: out of memory\n");
		rc = EXIT_SOME_FAILED;
		goto out;
	}
	if (a.json) {
		char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10));

		if (text != NULL)
			puts(text);
		free(text);
	} else {
		print_text(doc);
	}
	rc = json_integer_value(json_object_get(doc, "failed")) == 0 ? EXIT_ALL_RUNNING
								     : EXIT_SOME_FAILED;
out:
	json_decref(doc);
	free(routers);
	free(conf.redirector_ca_pem);
	secret_free(&proxy_pw);
	return rc;
}
