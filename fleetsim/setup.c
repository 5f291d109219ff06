/*
 * onramp-fleetsim setup: the factory's and the operators' work for N virtual
 * routers, on the same paths they use. For router i (serial PREFIX-NNNNNN,
 * also its asset ID and its router name):
 *   the factory: its OCRA key in software, explicitly (identity_create with
 *     no TPM), device.json, and its record with the key and a fresh claim
 *     secret encrypted to the cloud's inventory key, as `onrampctl factory
 *     init-device --software`; the claim secret's hash registered with the
 *     redirector, as `onrampctl redirect device register`;
 *   the cloud's admin API: the record imported, the device claimed for the
 *     organisation's site (the cloud claims it at the redirector), as
 *     `onrampctl cloud inventory import` and `cloud claim`;
 *   the conductors' admin APIs: the router added on staging and on production
 *     with its peering configuration, a production secret made for it by name
 *     (what lets production take it from staging's hand-over once the
 *     conductors trust the cloud's assertions), and its production conductor
 *     given to staging, as `onrampctl conductor router add`, `psk create
 *     --name` and `router production`.
 * Each worker thread keeps one HTTPS session per admin API, so 10,000 routers
 * cost requests, not processes and handshakes. A router that fails is named
 * with the reason; the others go on.
 *
 * Trusts: the admin APIs through the anchors given; nothing on the command
 * line or in the files before it is checked (bad input exits 2 before any
 * router is made).
 */
#include "setup.h"

#include "fleetsim.h"
#include "pool.h"

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/secret.h"
#include "core/x509.h"
#include "device/device.h"
#include "device/identity.h"
#include "device/ocra.h"
#include "device/record.h"
#include "net/http_client.h"
#include "net/http_retry.h"
#include "proto/conductor_client.h"
#include "proto/peering_config.h"

#include <getopt.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ADMIN_TIMEOUT_MS 60000L
#define ADMIN_ATTEMPTS 5 /* an admin request, tried again while the daemon says "not now" */

static const char setup_usage[] =
	"usage: onramp-fleetsim setup --routers N --state-dir DIR --inventory-key FILE\n"
	"         --redirector URL --redirector-ca FILE --redirector-token-file FILE\n"
	"         --cloud URL --cloud-ca FILE --cloud-token-file FILE --org ORG --site SITE\n"
	"         --staging URL --staging-ca FILE --staging-token-file FILE\n"
	"         --production URL --production-ca FILE --production-token-file FILE\n"
	"         --production-address HOST:PORT [--production-address HOST:PORT]\n"
	"         --production-root-ca FILE\n"
	"         [--prefix P] [--first K] [--model M] [--suite SUITE]\n"
	"         [--peering-config FILE] [--concurrency C] [--verbose]\n"
	"\n"
	"Makes N routers for onramp-fleetsim as the factory and the operators do:\n"
	"DIR/P-NNNNNN with its OCRA key in software (explicitly) and its factory record,\n"
	"its claim hash registered at the redirector (--redirector: its admin API, a\n"
	"factory or admin token), imported and claimed at the cloud (--cloud: its admin\n"
	"API), added under its\n"
	"serial as asset ID and router name on the staging and production conductors\n"
	"(--staging, --production: their admin APIs), and told its production conductor\n"
	"(--production-address, its root CA, and a secret the production conductor makes\n"
	"for that router by name).\n"
	"  --prefix P        serial prefix (default SIM: SIM-000001, ...)\n"
	"  --first K         the first router's number (default 1)\n"
	"  --model M         the routers' model (default SSR1000)\n"
	"  --suite SUITE     their OCRA suite (default " RECORD_DEFAULT_SUITE ")\n"
	"  --peering-config FILE  the peering configuration for every router (its\n"
	"                    router.name is replaced); default: a minimal one\n"
	"  --concurrency C   routers set up at once (default 8)\n"
	"Exit status: 0 every router set up, 1 some not (each is named), 2 bad input.\n";

/* A minimal peering configuration (docs/router-config-schema.md); router.name is set per router. */
static const char default_peering[] =
	"{\"version\":1,\"router\":{\"name\":\"r\"},"
	"\"hub\":{\"name\":\"hub-1\",\"addresses\":[\"127.0.0.1:1280\"]},"
	"\"neighborhoods\":[{\"name\":\"mpls-core\",\"topology\":\"spoke\",\"vector\":\"mpls\"}]}";

/* One admin API: where, its anchor, its token. */
struct admin_api {
	const char *url, *ca_file, *token_file;
	char *ca_pem;
	char *token;
};

enum { API_REDIRECTOR, API_CLOUD, API_STAGING, API_PRODUCTION, API_COUNT };
static const char *const api_names[API_COUNT] = {"redirector", "cloud", "staging", "production"};

struct setup {
	const char *state_dir, *prefix, *model, *org, *site, *inventory_file, *peering_file;
	const char *prod_ca_file;
	struct ocra_suite suite;
	unsigned routers, first, concurrency;
	struct admin_api api[API_COUNT];
	EVP_PKEY *inventory;
	json_t *peering;
	json_t *production; /* {"addresses", "ca"}: router production's body, less its secret */
	const char *addresses[CONDUCTOR_MAX_TARGET_ADDRESSES];
	size_t n_addresses;
	pthread_mutex_t mu;
	unsigned made; /* routers set up */
};

/* ---- one router ------------------------------------------------------------ */

/* The sessions a worker thread reuses, one per admin API. */
struct sessions {
	struct http_session *s[API_COUNT];
};

/* Frees a worker's sessions when it ends. */
static void
sessions_close(void *state)
{
	struct sessions *ss = state;

	if (ss == NULL)
		return;
	for (int i = 0; i < API_COUNT; i++)
		http_session_close(ss->s[i]);
	free(ss);
}

/*
 * One admin request on the worker's session to api (opened on first use);
 * a non-2xx answer becomes one sentence with the status and the server's error.
 * answer (NULL: not wanted) gets a 2xx answer's JSON. An answer that says
 * "not now" (5xx, 429: a daemon whose database is busy under a big setup) or a
 * failure on the way is tried again with backoff, Retry-After honoured
 * (net/http_retry); a request repeated after its answer was lost may meet its
 * own first attempt (409), which names the router as failed, never hides it.
 */
static int
admin_call(struct setup *st, struct sessions *ss, int api, const char *method, const char *path,
	   json_t *body, json_t **answer)
{
	struct http_client_opts o = {.ca_pem = st->api[api].ca_pem,
				     .connect_timeout_ms = 10000,
				     .total_timeout_ms = ADMIN_TIMEOUT_MS};
	struct http_retry retry = {.max_attempts = ADMIN_ATTEMPTS,
				   .backoff = {.base_ms = 1000, .cap_ms = 8000}};
	struct http_response resp = {0};
	enum http_err err = HTTP_OK;
	json_t *doc = NULL, *e;
	int rc = -1;

	if (ss->s[api] == NULL && http_session_open(st->api[api].url, &o, &ss->s[api]) == -1)
		return or_error_prefix("%s", api_names[api]);
	if (http_session_request_retry(ss->s[api], &retry, method, path, st->api[api].token, body,
				       &resp, &err) == -1) {
		http_session_close(ss->s[api]); /* a fresh connection next time */
		ss->s[api] = NULL;
		return or_error_prefix("%s %s %s", api_names[api], method, path);
	}
	json_parse_object(resp.body, resp.body_len, HTTP_BODY_MAX, &doc);
	if (resp.status >= 200 && resp.status <= 299) {
		if (answer != NULL) {
			*answer = doc;
			doc = NULL;
		}
		rc = 0;
		goto out;
	}
	e = json_object_get(doc, "error");
	or_error("%s %s %s: %ld %s: %s", api_names[api], method, path, resp.status,
		 json_string_value(json_object_get(e, "code"))
			 ? json_string_value(json_object_get(e, "code"))
			 : "error",
		 json_string_value(json_object_get(e, "message"))
			 ? json_string_value(json_object_get(e, "message"))
			 : "no message");
out:
	json_decref(doc);
	http_response_free(&resp);
	return rc;
}

/*
 * The factory's part (as onrampctl factory init-device --software): the OCRA
 * key made in software in dir, device.json, and the record (*out) with the key
 * encrypted to the inventory key. A half-made router is removed again.
 */
static int
factory(struct setup *st, const char *serial, const char *dir, struct record *out)
{
	struct device_info info = {0};
	struct secret key = {0}, claim_secret = {0};
	struct stat sb;
	int rc = -1;

	if (stat(dir, &sb) == 0)
		return or_error("%s exists already (set up before?)", dir);
	if (identity_create(dir, NULL, st->suite.hash, &key) == -1)
		return -1;
	snprintf(info.serial, sizeof(info.serial), "%s", serial);
	snprintf(info.model, sizeof(info.model), "%s", st->model);
	snprintf(info.ocra_suite, sizeof(info.ocra_suite), "%s", st->suite.text);
	if (record_claim_secret_new(&claim_secret) == -1 ||
	    record_create(serial, st->model, st->suite.text, &key, &claim_secret, st->inventory,
			  out) == -1 ||
	    device_info_write(dir, &info) == -1) {
		identity_remove(dir);
		device_info_remove(dir);
		goto out;
	}
	rc = 0;
out:
	/* From here on the key is in the router's directory and the record; the claim
	 * secret only in the record. */
	secret_free(&key);
	secret_free(&claim_secret);
	return rc;
}

/* Zeroes the "psk" or "secret" text of a request or an answer before it is freed. */
static void
forget_secret(json_t *doc)
{
	static const char *const keys[] = {"psk", "secret"};

	for (size_t i = 0; i < 2; i++) {
		const char *text = json_string_value(json_object_get(doc, keys[i]));

		if (text != NULL)
			secure_zero((void *)text, strlen(text));
	}
}

/* Router index i: factory, cloud, conductors; the first failure ends it. */
static void
setup_router(void *arg, size_t i, void **thread_state)
{
	struct setup *st = arg;
	struct sessions *ss = *thread_state;
	struct record rec = {0};
	char serial[RECORD_SERIAL_MAX + 1], dir[PATH_MAX], path[128];
	json_t *body = NULL, *config = NULL, *answer = NULL;
	const char *psk;
	int rc = -1;

	if (ss == NULL && (ss = *thread_state = calloc(1, sizeof(*ss))) == NULL) {
		or_error("out of memory");
		goto out;
	}
	snprintf(serial, sizeof(serial), "%s-%06zu", st->prefix, st->first + i);
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", st->state_dir, serial) >= sizeof(dir)) {
		or_error("state directory path too long");
		goto out;
	}
	if (factory(st, serial, dir, &rec) == -1)
		goto out;
	body = json_pack("{s:s}", "claim_hash", rec.claim_hash);
	snprintf(path, sizeof(path), "/v1/admin/devices/%s", serial);
	if (admin_call(st, ss, API_REDIRECTOR, "PUT", path, body, NULL) == -1)
		goto out;
	json_decref(body);
	body = json_pack("{s:o}", "record", record_to_json(&rec));
	if (admin_call(st, ss, API_CLOUD, "POST", "/v1/admin/inventory", body, NULL) == -1)
		goto out;
	json_decref(body);
	body = json_pack("{s:s, s:s, s:s}", "serial", serial, "organization", st->org, "site",
			 st->site);
	if (admin_call(st, ss, API_CLOUD, "POST", "/v1/admin/claims", body, NULL) == -1)
		goto out;
	json_decref(body);
	config = json_deep_copy(st->peering);
	json_object_set_new(config, "router", json_pack("{s:s}", "name", serial));
	body = json_pack("{s:s, s:s, s:O}", "name", serial, "asset_id", serial, "config", config);
	if (admin_call(st, ss, API_STAGING, "POST", "/admin/v1/routers", body, NULL) == -1 ||
	    admin_call(st, ss, API_PRODUCTION, "POST", "/admin/v1/routers", body, NULL) == -1)
		goto out;
	/* A production secret made for this router by name: what lets the production
	 * conductor take it from the staging conductor's hand-over (docs/conductor.md). */
	json_decref(body);
	body = json_pack("{s:s}", "name", serial);
	if (admin_call(st, ss, API_PRODUCTION, "POST", "/admin/v1/psks", body, &answer) == -1)
		goto out;
	psk = json_string_value(json_object_get(answer, "secret"));
	if (psk == NULL) {
		or_error("production: the secret made for %s is missing from the answer", serial);
		goto out;
	}
	json_decref(body);
	body = json_deep_copy(st->production);
	json_object_set_new(body, "psk", json_string(psk));
	snprintf(path, sizeof(path), "/admin/v1/routers/%s/production", serial);
	if (admin_call(st, ss, API_STAGING, "POST", path, body, NULL) == -1)
		goto out;
	log_info("%s: set up", serial);
	pthread_mutex_lock(&st->mu);
	st->made++;
	pthread_mutex_unlock(&st->mu);
	rc = 0;
out:
	if (rc == -1)
		fprintf(stderr, "onramp-fleetsim setup: %s: %s\n", serial, or_errmsg());
	forget_secret(body);
	forget_secret(answer);
	json_decref(body);
	json_decref(answer);
	json_decref(config);
	record_free(&rec);
}

/* ---- the command line -------------------------------------------------------- */

/* Reads every file the options name and checks every value; nothing is made yet. */
static int
prepare(struct setup *st, const char *suite)
{
	char *ca = NULL, key_id[PKI_KEY_ID_LEN + 1], *pem;
	json_t *addrs = json_array();
	int rc = -1;

	if (st->routers == 0 || st->state_dir == NULL || st->inventory_file == NULL ||
	    st->org == NULL || st->site == NULL || st->n_addresses == 0 ||
	    st->prod_ca_file == NULL) {
		or_error("--routers, --state-dir, --inventory-key, --org, --site, "
			 "--production-address and --production-root-ca "
			 "are required");
		goto out;
	}
	for (int i = 0; i < API_COUNT; i++) {
		struct admin_api *a = &st->api[i];

		if (a->url == NULL || a->ca_file == NULL || a->token_file == NULL) {
			or_error("--%s, --%s-ca and --%s-token-file are required", api_names[i],
				 api_names[i], api_names[i]);
			goto out;
		}
		if (file_read_text(a->ca_file, PKI_MAX_PEM, &a->ca_pem) == -1 ||
		    file_read_text(a->token_file, 256, &a->token) == -1)
			goto out;
	}
	if (strlen(st->prefix) < 1 || strlen(st->prefix) > RECORD_SERIAL_MAX - 7 ||
	    record_check_serial(st->prefix) == -1 || !pki_valid_router_name(st->prefix)) {
		or_error("--prefix '%s': letters, digits, . _ - (a serial and a router name)",
			 st->prefix);
		goto out;
	}
	if (record_check_model(st->model) == -1 || ocra_suite_parse(suite, &st->suite) == -1)
		goto out;
	if (file_read_text(st->inventory_file, 65536, &pem) == -1)
		goto out;
	rc = record_load_inventory_key(pem, strlen(pem), (void **)&st->inventory);
	free(pem);
	if (rc == -1)
		goto out;
	rc = -1;
	if (st->peering_file != NULL ? json_load_object_file(st->peering_file, PEERING_CONFIG_MAX,
							     &st->peering) == -1
				     : json_parse_object(default_peering, strlen(default_peering),
							 PEERING_CONFIG_MAX, &st->peering) == -1)
		goto out;
	json_object_set_new(st->peering, "router", json_pack("{s:s}", "name", "r"));
	if (peering_config_validate(st->peering, NULL) == -1) {
		or_error_prefix("--peering-config");
		goto out;
	}
	for (size_t i = 0; i < st->n_addresses; i++) {
		if (peering_check_address(st->addresses[i], "--production-address") == -1)
			goto out;
		json_array_append_new(addrs, json_string(st->addresses[i]));
	}
	if (file_read_text(st->prod_ca_file, PKI_MAX_PEM, &ca) == -1 ||
	    pki_cert_key_id(ca, key_id) == -1)
		goto out;
	st->production = json_pack("{s:O, s:s}", "addresses", addrs, "ca", ca);
	rc = st->production != NULL ? 0 : or_error("out of memory");
out:
	free(ca);
	json_decref(addrs);
	return rc;
}

/* Frees what prepare read; the tokens and the secret are zeroed. */
static void
release(struct setup *st)
{
	for (int i = 0; i < API_COUNT; i++) {
		free(st->api[i].ca_pem);
		if (st->api[i].token != NULL) {
			secure_zero(st->api[i].token, strlen(st->api[i].token));
			free(st->api[i].token);
		}
	}
	json_decref(st->production);
	json_decref(st->peering);
	EVP_PKEY_free(st->inventory);
}

int
fleet_setup_main(int argc, char **argv, volatile sig_atomic_t *stop)
{
	static const struct option options[] = {
		{"routers", required_argument, NULL, 'n'},
		{"first", required_argument, NULL, 'F'},
		{"state-dir", required_argument, NULL, 'd'},
		{"prefix", required_argument, NULL, 'p'},
		{"model", required_argument, NULL, 'm'},
		{"suite", required_argument, NULL, 'S'},
		{"inventory-key", required_argument, NULL, 'k'},
		{"redirector", required_argument, NULL, 0x100 + API_REDIRECTOR},
		{"redirector-ca", required_argument, NULL, 0x110 + API_REDIRECTOR},
		{"redirector-token-file", required_argument, NULL, 0x120 + API_REDIRECTOR},
		{"cloud", required_argument, NULL, 0x100 + API_CLOUD},
		{"staging", required_argument, NULL, 0x100 + API_STAGING},
		{"production", required_argument, NULL, 0x100 + API_PRODUCTION},
		{"cloud-ca", required_argument, NULL, 0x110 + API_CLOUD},
		{"staging-ca", required_argument, NULL, 0x110 + API_STAGING},
		{"production-ca", required_argument, NULL, 0x110 + API_PRODUCTION},
		{"cloud-token-file", required_argument, NULL, 0x120 + API_CLOUD},
		{"staging-token-file", required_argument, NULL, 0x120 + API_STAGING},
		{"production-token-file", required_argument, NULL, 0x120 + API_PRODUCTION},
		{"org", required_argument, NULL, 'o'},
		{"site", required_argument, NULL, 's'},
		{"production-address", required_argument, NULL, 'a'},
		{"production-root-ca", required_argument, NULL, 'C'},
		{"peering-config", required_argument, NULL, 'c'},
		{"concurrency", required_argument, NULL, 'j'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct setup st = {.prefix = "SIM", .model = "SSR1000", .first = 1, .concurrency = 8};
	const char *suite = RECORD_DEFAULT_SUITE;
	struct fleet_job job = {.run = setup_router, .done = sessions_close, .arg = &st};
	int opt, bad = 0, rc = 2;

	optind = 1;
	opterr = 0;
	while (!bad && (opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt >= 0x100 && opt < 0x130) {
			struct admin_api *a = &st.api[opt & 0xf];

			*((opt & 0xf0) == 0x00	 ? &a->url
			  : (opt & 0xf0) == 0x10 ? &a->ca_file
						 : &a->token_file) = optarg;
			continue;
		}
		switch (opt) {
		case 'n':
			bad = fleet_parse_count(optarg, "--routers", 1, 999999, &st.routers);
			break;
		case 'F':
			bad = fleet_parse_count(optarg, "--first", 0, 999999, &st.first);
			break;
		case 'd':
			st.state_dir = optarg;
			break;
		case 'p':
			st.prefix = optarg;
			break;
		case 'm':
			st.model = optarg;
			break;
		case 'S':
			suite = optarg;
			break;
		case 'k':
			st.inventory_file = optarg;
			break;
		case 'o':
			st.org = optarg;
			break;
		case 's':
			st.site = optarg;
			break;
		case 'a':
			if (st.n_addresses == CONDUCTOR_MAX_TARGET_ADDRESSES)
				bad = or_error("--production-address: at most %d",
					       CONDUCTOR_MAX_TARGET_ADDRESSES);
			else
				st.addresses[st.n_addresses++] = optarg;
			break;
		case 'C':
			st.prod_ca_file = optarg;
			break;
		case 'c':
			st.peering_file = optarg;
			break;
		case 'j':
			bad = fleet_parse_count(optarg, "--concurrency", 1, 256, &st.concurrency);
			break;
		case 'v':
			log_init("onramp-fleetsim", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
			break;
		case 'h':
			fputs(setup_usage, stdout);
			return 0;
		default:
			bad = or_error("unknown or incomplete option '%s' (try setup --help)",
				       argv[optind - 1]);
			break;
		}
	}
	if (!bad && optind < argc)
		bad = or_error("unexpected argument '%s'", argv[optind]);
	if (!bad && st.first + st.routers > 1000000)
		bad = or_error("--first + --routers: at most 999999 routers are numbered");
	if (bad || prepare(&st, suite) == -1 || file_ensure_dir(st.state_dir, 0700) == -1) {
		fprintf(stderr, "onramp-fleetsim setup: %s\n", or_errmsg());
		goto out;
	}
	pthread_mutex_init(&st.mu, NULL);
	rc = 1;
	if (fleet_pool_run(&job, st.routers, st.concurrency, stop) == -1) {
		fprintf(stderr, "onramp-fleetsim setup: %s\n", or_errmsg());
	} else {
		if (*stop)
			fprintf(stderr, "onramp-fleetsim setup: interrupted\n");
		printf("%u of %u routers set up\n", st.made, st.routers);
		if (st.made == st.routers)
			rc = 0;
	}
	pthread_mutex_destroy(&st.mu);
out:
	release(&st);
	return rc;
}
