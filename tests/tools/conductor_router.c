/*
 * conductor-router: the router's side of the conductor protocol for the
 * integration tests, on the real library code (lib/conductor_client.h), the
 * real device key and vault (software, or a TPM through --tcti), over real
 * TLS and, when asked, through a real proxy.
 *
 *   conductor-router --state-dir DIR --asset-id ID [--software | --tcti T]
 *       [--staging ADDR --root-ca FILE --psk-file FILE]   store the staging conductor
 *       [--proxy HOST:PORT [--proxy-user U --proxy-password-file F]]
 *       [--poll-wait S]
 *       [--assertion-file F]        an onboarding assertion to present to staging
 *       run                         serve the current conductor until SIGTERM
 *       migrate ADDR [ADDR] [--window S]   the router-side migrate (the agent's command)
 *       current                     print which conductor is current
 *       report STEP OUTCOME REASON  connect, post one progress report, leave
 *
 * Every step report is printed on stdout as one JSON line:
 *   {"step":"certificate","ok":true,"reason":null,"time":...}
 */
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/secret.h"
#include "device/certkey.h"
#include "device/tpm.h"
#include "device/vault.h"
#include "net/http_client.h"
#include "net/http_parse.h"
#include "proto/conductor_client.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

/* SIGTERM/SIGINT: the run loop stops after its current request. */
static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Each step report as one JSON line on stdout. */
static void
print_report(void *arg, const char *step, bool ok, const char *reason)
{
	json_t *line = json_pack("{s:s, s:b, s:s?, s:I}", "step", step, "ok", ok, "reason", reason,
				 "time", (json_int_t)time(NULL));
	char *text = json_dumps(line, JSON_COMPACT);

	(void)arg;
	if (text != NULL) {
		puts(text);
		fflush(stdout);
	}
	free(text);
	json_decref(line);
}

static const char usage[] =
	"usage: conductor-router --state-dir DIR --asset-id ID [--software | --tcti T]\n"
	"         [--staging ADDR --root-ca FILE --psk-file FILE] [--proxy HOST:PORT\n"
	"         [--proxy-user U --proxy-password-file F]] [--poll-wait S] [--window S]\n"
	"         [--assertion-file F]\n"
	"         run | current | migrate ADDR [ADDR] | report STEP OUTCOME REASON\n";

/* report: one progress report to the current conductor, on a connection of its own. */
static int
report_once(const struct conductor_client_opts *o, const char *step, const char *outcome,
	    const char *reason)
{
	struct conductor_target t = {0};
	struct conductor_conn *c = NULL;
	json_t *events = json_pack("[{s:s, s:s, s:s, s:I}]", "step", step, "outcome", outcome,
				   "reason", reason, "time", (json_int_t)time(NULL));
	char current[16];
	int rc = -1;

	if (events != NULL && conductor_current(o, current) == 0 &&
	    conductor_get_target(o, current, &t) == 0 && conductor_connect(o, &t, &c) == 0)
		rc = conductor_report_events(c, events);
	conductor_close(c);
	conductor_target_free(&t);
	json_decref(events);
	return rc;
}

/*
 * Opens the device key and vault (software or TPM), stores the staging conductor if given, runs
 * the command.
 */
int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"asset-id", required_argument, NULL, 'a'},
		{"software", no_argument, NULL, 's'},
		{"tcti", required_argument, NULL, 'T'},
		{"staging", required_argument, NULL, 'S'},
		{"root-ca", required_argument, NULL, 'C'},
		{"psk-file", required_argument, NULL, 'p'},
		{"proxy", required_argument, NULL, 'x'},
		{"proxy-user", required_argument, NULL, 'u'},
		{"proxy-password-file", required_argument, NULL, 'P'},
		{"poll-wait", required_argument, NULL, 'w'},
		{"window", required_argument, NULL, 'W'},
		{"assertion-file", required_argument, NULL, 'X'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *state_dir = NULL, *asset_id = NULL, *tcti = NULL, *staging[4], *ca_file = NULL,
		   *psk_file = NULL, *proxy_text = NULL, *proxy_user = NULL, *proxy_pw_file = NULL,
		   *assertion_file = NULL;
	struct conductor_client_opts o = {0};
	struct secret proxy_pw = {0};
	struct http_proxy proxy = {0};
	struct certkey *ck = NULL;
	struct vault *vault = NULL;
	struct tpm *tpm = NULL;
	char *ca = NULL, *psk = NULL, *pw = NULL, *assertion = NULL, current[16];
	size_t n_staging = 0;
	unsigned window = 0;
	int opt, rc = 1;

	log_init("conductor-router", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			state_dir = optarg;
			break;
		case 'a':
			asset_id = optarg;
			break;
		case 's':
			break;
		case 'T':
			tcti = optarg;
			break;
		case 'S':
			if (n_staging < 4)
				staging[n_staging++] = optarg;
			break;
		case 'C':
			ca_file = optarg;
			break;
		case 'p':
			psk_file = optarg;
			break;
		case 'x':
			proxy_text = optarg;
			break;
		case 'u':
			proxy_user = optarg;
			break;
		case 'P':
			proxy_pw_file = optarg;
			break;
		case 'w':
			o.poll_wait_s = (unsigned)atoi(optarg);
			break;
		case 'W':
			window = (unsigned)atoi(optarg);
			break;
		case 'X':
			assertion_file = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (state_dir == NULL || asset_id == NULL || optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (file_ensure_dir(state_dir, 0700) == -1 ||
	    (tcti != NULL && tpm_open(tcti, &tpm) == -1) ||
	    certkey_open_or_create(state_dir, tpm, &ck) == -1 ||
	    vault_open(state_dir, tpm, &vault) == -1)
		goto out;
	if (proxy_text != NULL) {
		if (http_proxy_parse(proxy_text, &proxy) == -1)
			goto out;
		if (proxy_user != NULL) {
			if (file_read_text(proxy_pw_file, 65536, &pw) == -1 ||
			    secret_from(&proxy_pw, pw, strlen(pw)) == -1)
				goto out;
			proxy.user = proxy_user;
			proxy.password = &proxy_pw;
		}
		o.proxy = &proxy;
	}
	o.state_dir = state_dir;
	o.asset_id = asset_id;
	o.certkey = ck;
	o.vault = vault;
	o.report = print_report;
	if (n_staging > 0) {
		if (ca_file == NULL || psk_file == NULL) {
			fputs("conductor-router: --staging needs --root-ca and --psk-file\n",
			      stderr);
			rc = 2;
			goto out;
		}
		if (file_read_text(ca_file, 65536, &ca) == -1 ||
		    file_read_text(psk_file, 65536, &psk) == -1 ||
		    conductor_set_target(&o, "staging", staging, n_staging, psk, strlen(psk), ca) ==
			    -1)
			goto out;
		/* The assertion's own expiry is inside it; this one only says when to refresh. */
		if (assertion_file != NULL &&
		    (file_read_text(assertion_file, 65536, &assertion) == -1 ||
		     conductor_set_assertion(&o, "staging", NULL, assertion, time(NULL) + 3600) ==
			     -1))
			goto out;
	}
	if (strcmp(argv[optind], "run") == 0) {
		rc = conductor_run(&o, &stop) == 0 ? 0 : 1;
	} else if (strcmp(argv[optind], "current") == 0) {
		if (conductor_current(&o, current) == 0) {
			puts(current);
			rc = 0;
		}
	} else if (strcmp(argv[optind], "report") == 0 && optind + 4 == argc) {
		rc = report_once(&o, argv[optind + 1], argv[optind + 2], argv[optind + 3]) == 0 ? 0
												: 1;
	} else if (strcmp(argv[optind], "migrate") == 0 && optind + 1 < argc) {
		rc = conductor_migrate(&o, (const char *const *)argv + optind + 1,
				       (size_t)(argc - optind - 1), window, 0) == 0
			     ? 0
			     : 1;
	} else {
		fputs(usage, stderr);
		rc = 2;
	}
out:
	if (rc == 1)
		fprintf(stderr, "conductor-router: %s\n", or_errmsg());
	if (psk != NULL) {
		secure_zero(psk, strlen(psk));
		free(psk);
	}
	if (pw != NULL) {
		secure_zero(pw, strlen(pw));
		free(pw);
	}
	secret_free(&proxy_pw);
	free(ca);
	free(assertion);
	vault_close(vault);
	certkey_close(ck);
	tpm_close(tpm);
	return rc;
}
