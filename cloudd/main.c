/*
 * onramp-cloudd's entry point: its configuration keys, its keys (master key,
 * inventory key) and its routes; daemon_main() does the rest. Key files are
 * checked when loaded: size and mode for the master key, a parsable RSA
 * private key for the inventory, certificates for the anchors.
 */
#include "challenges.h"
#include "cloud.h"

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "server/admin_tokens.h"
#include "server/assertion.h"
#include "server/http_server.h"
#include "server/masterkey.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX 65536

static const char usage[] =
	"usage: onramp-cloudd init --config FILE [--token-file FILE]\n"
	"       onramp-cloudd --config FILE [--check-config]\n"
	"\n"
	"An organisation's onramp cloud: inventory from factory records, organisations,\n"
	"sites and their onboarding settings, claims pushed to the redirector, mutual\n"
	"OCRA authentication of devices, onboarding information with onboarding\n"
	"assertions (signed with an assertion key made on first use), and progress.\n"
	"\n"
	"  init       create the state directory, database, master key and inventory key;\n"
	"             a first admin token, written to --token-file (mode 0600) or else\n"
	"             printed once\n"
	"  --config   configuration file (see onramp-cloudd(8)); section [cloudd]:\n"
	"             address, port, cert-file, key-file, threads, state-dir, database,\n"
	"             max-body, log-level, drain-timeout, request-timeout, master-key-file,\n"
	"             inventory-key-file, inventory-pub-file, public-url, public-ca-file,\n"
	"             challenge-lifetime, token-lifetime, retry-after, assertion-lifetime,\n"
	"             lockout-threshold, lockout-base, lockout-max, source-rate,\n"
	"             source-burst, global-rate, global-burst, stuck-after,\n"
	"             ui-session-lifetime, request-timeout;\n"
	"             section [redirector]: url, ca-file, token-file\n"
	"  --check-config  check the configuration and exit (0, or 2 naming FILE:LINE)\n"
	"  --help     this text\n"
	"  --version  the version\n";

/* Frees what configure loaded; key material is zeroed. */
static void
release(void *arg)
{
	struct cloud_app *app = arg;

	masterkey_free(app->mk);
	rate_limiter_free(app->limiter);
	challenges_free(app->challenges);
	assertion_signer_free(app->assertion_signer);
	free(app->assertion_cert_pem);
	if (app->inventory_key_pem != NULL) {
		OPENSSL_cleanse(app->inventory_key_pem, strlen(app->inventory_key_pem));
		free(app->inventory_key_pem);
	}
	free(app->public_ca_pem);
	free(app->redirector_ca_pem);
	secret_free(&app->redirector_token);
	free(app);
}

/*
 * Reads the PEM bundle of certificates (an anchor) named by section/key into
 * *out; an error names the configuration line.
 */
static int
read_anchor(struct config *cfg, const char *section, const char *key, const char *path, char **out)
{
	size_t len;

	if (file_read_all(path, CLOUD_PEM_MAX, (uint8_t **)out, &len) == -1 ||
	    cloud_check_pem(key, *out) == -1) {
		or_error_prefix("%s", key);
		return config_error_at(cfg, section, key);
	}
	return 0;
}

/*
 * Reads the inventory private key file (refused when group or others may read
 * it); it must be an RSA key, as factory records are RSA-OAEP. *pem_out (if
 * not NULL) receives the PEM text, *pkey_out (if not NULL) the key.
 */
static int
load_inventory_key(const char *path, char **pem_out, EVP_PKEY **pkey_out)
{
	uint8_t *pem = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	struct stat st;
	size_t len = 0;
	int rc = -1;

	if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
		return or_error("inventory key %s is readable by group or others; it must be 0600",
				path);
	if (file_read_all(path, KEY_FILE_MAX, &pem, &len) == -1)
		return or_error_prefix("inventory key");
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL || (pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL ||
	    !EVP_PKEY_is_a(pkey, "RSA")) {
		or_error("inventory key %s is not an RSA private key in PEM", path);
		goto out;
	}
	if (pem_out != NULL) {
		*pem_out = (char *)pem;
		pem = NULL;
	}
	if (pkey_out != NULL) {
		*pkey_out = pkey;
		pkey = NULL;
	}
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	if (pem != NULL) {
		OPENSSL_cleanse(pem, len);
		free(pem);
	}
	return rc;
}

/* The [redirector] section: all three keys, or none. */
static int
configure_redirector(struct config *cfg, struct cloud_app *app, bool init)
{
	const char *ca = NULL, *token = NULL;

	if (config_get_string(cfg, "redirector", "url", NULL, &app->redirector_url) == -1 ||
	    config_get_string(cfg, "redirector", "ca-file", NULL, &ca) == -1 ||
	    config_get_string(cfg, "redirector", "token-file", NULL, &token) == -1)
		return -1;
	if (app->redirector_url == NULL && ca == NULL && token == NULL)
		return 0;
	if (app->redirector_url == NULL || ca == NULL || token == NULL) {
		or_error("[redirector] needs url, ca_file and token_file together");
		return config_error_at(cfg, "redirector", "url");
	}
	if (cloud_check_url("[redirector] url", app->redirector_url) == -1)
		return config_error_at(cfg, "redirector", "url");
	if (app->public_url == NULL || app->public_ca_pem == NULL) {
		or_error("[cloudd] public_url and public_ca_file are needed to push claims to the "
			 "redirector");
		return config_error_at(cfg, "redirector", "url");
	}
	if (init)
		return 0;
	if (read_anchor(cfg, "redirector", "ca-file", ca, &app->redirector_ca_pem) == -1)
		return -1;
	if (admin_token_read_file(token, &app->redirector_token) == -1) {
		or_error_prefix("token-file");
		return config_error_at(cfg, "redirector", "token-file");
	}
	return 0;
}

/*
 * Reads [cloudd] and [redirector]; when serving, loads the master and inventory keys (checked
 * when loaded).
 */
static int
configure(struct config *cfg, const struct daemon_config *dc, bool init, void **out)
{
	struct cloud_app *app = calloc(1, sizeof(*app));
	const char *ca = NULL;

	if (app == NULL)
		return or_error("out of memory");
	*out = app;
	if (daemon_state_path(cfg, "cloudd", "master-key-file", dc, "master.key",
			      app->master_key_path, sizeof(app->master_key_path)) == -1 ||
	    daemon_state_path(cfg, "cloudd", "inventory-key-file", dc, "inventory.key",
			      app->inventory_key_path, sizeof(app->inventory_key_path)) == -1 ||
	    daemon_state_path(cfg, "cloudd", "inventory-pub-file", dc, "inventory.pub.pem",
			      app->inventory_pub_path, sizeof(app->inventory_pub_path)) == -1 ||
	    config_get_string(cfg, "cloudd", "public-url", NULL, &app->public_url) == -1 ||
	    config_get_string(cfg, "cloudd", "public-ca-file", NULL, &ca) == -1 ||
	    config_get_uint(cfg, "cloudd", "challenge-lifetime", 60, 1, 3600,
			    &app->challenge_lifetime) == -1 ||
	    config_get_uint(cfg, "cloudd", "token-lifetime", 900, 60, 86400,
			    &app->token_lifetime) == -1 ||
	    config_get_uint(cfg, "cloudd", "retry-after", 60, 1, 86400, &app->retry_after) == -1 ||
	    config_get_uint(cfg, "cloudd", "assertion-lifetime", 3600, 5, ASSERTION_TTL_MAX,
			    &app->assertion_lifetime) == -1 ||
	    config_get_uint(cfg, "cloudd", "lockout-threshold", 5, 1, 1000,
			    &app->lockout.threshold) == -1 ||
	    config_get_uint(cfg, "cloudd", "lockout-base", 30, 1, 86400, &app->lockout.base_s) ==
		    -1 ||
	    config_get_uint(cfg, "cloudd", "lockout-max", 3600, 1, 604800, &app->lockout.max_s) ==
		    -1 ||
	    rate_limit_config(cfg, "cloudd", &app->rate) == -1 ||
	    config_get_uint(cfg, "cloudd", "stuck-after", 900, 60, 604800, &app->stuck_after) ==
		    -1 ||
	    config_get_uint(cfg, "cloudd", "ui-session-lifetime", 28800, 300, 604800,
			    &app->ui_session_lifetime) == -1)
		return -1;
	if (app->public_url != NULL && cloud_check_url("public-url", app->public_url) == -1)
		return config_error_at(cfg, "cloudd", "public-url");
	if (ca != NULL &&
	    read_anchor(cfg, "cloudd", "public-ca-file", ca, &app->public_ca_pem) == -1)
		return -1;
	if (configure_redirector(cfg, app, init) == -1)
		return -1;
	if (init)
		return 0;
	if (masterkey_load(app->master_key_path, &app->mk) == -1 ||
	    load_inventory_key(app->inventory_key_path, &app->inventory_key_pem, NULL) == -1)
		return or_error_prefix("not initialised? (onramp-cloudd init)");
	if (challenges_new(CHALLENGES_KEEP_S, &app->challenges) == -1)
		return -1;
	return rate_limiter_new(&app->rate, &app->limiter);
}

/*
 * Makes an RSA-3072 inventory key (0600), or keeps the one already there, and
 * writes its public key for the factory.
 */
static int
make_inventory_key(const struct cloud_app *app)
{
	EVP_PKEY *pkey = NULL;
	BIO *priv = NULL, *pub = NULL;
	char *data;
	long len;
	int rc = -1;

	if (access(app->inventory_key_path, F_OK) == 0) {
		if (load_inventory_key(app->inventory_key_path, NULL, &pkey) == -1)
			return -1;
		log_info("keeping the inventory key in %s", app->inventory_key_path);
	} else {
		if ((pkey = EVP_RSA_gen(3072)) == NULL ||
		    (priv = BIO_new(BIO_s_secmem())) == NULL ||
		    PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
		    (len = BIO_get_mem_data(priv, &data)) <= 0) {
			or_error("cannot make an RSA inventory key");
			goto out;
		}
		if (file_write_atomic(app->inventory_key_path, data, (size_t)len, 0600) == -1)
			goto out;
	}
	if ((pub = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_PUBKEY(pub, pkey) != 1 ||
	    (len = BIO_get_mem_data(pub, &data)) <= 0) {
		or_error("cannot write the inventory public key");
		goto out;
	}
	if (file_write_atomic(app->inventory_pub_path, data, (size_t)len, 0644) == -1)
		goto out;
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(priv);
	BIO_free(pub);
	return rc;
}

/*
 * init's keys: a new master key, or the one an earlier init that failed
 * later left (checked by loading it), and the inventory key pair.
 */
static int
initialise(void *arg)
{
	struct cloud_app *app = arg;
	struct masterkey *mk = NULL;

	if (access(app->master_key_path, F_OK) == 0) {
		if (masterkey_load(app->master_key_path, &mk) == -1)
			return -1;
		masterkey_free(mk);
		log_info("keeping the master key in %s", app->master_key_path);
	} else if (masterkey_create(app->master_key_path) == -1) {
		return -1;
	}
	if (make_inventory_key(app) == -1)
		return -1;
	fprintf(stderr,
		"onramp-cloudd: master key %s made; give the factory the inventory public key %s\n",
		app->master_key_path, app->inventory_pub_path);
	return 0;
}

/*
 * The device's writing steps, each in one transaction (events opens its own);
 * auth/start only reads the device's row (its challenge is kept in memory).
 */
static void
auth_finish(struct http_ctx *ctx, void *arg)
{
	cloud_transaction(ctx, arg, cloud_auth_finish);
}

static void
onboarding(struct http_ctx *ctx, void *arg)
{
	cloud_transaction(ctx, arg, cloud_device_onboarding);
}

/* See cloud.h: the device and admin routes, each with app as its argument. */
size_t
cloud_routes(struct cloud_app *app, const struct http_route **routes)
{
	static struct http_route table[] = {
		{"POST", "/v1/device/auth/start", cloud_auth_start, NULL},
		{"POST", "/v1/device/auth/finish", auth_finish, NULL},
		{"GET", "/v1/device/onboarding", onboarding, NULL},
		{"POST", "/v1/device/onboarding", onboarding, NULL},
		{"POST", "/v1/device/events", cloud_device_events, NULL},
		{"GET", "/v1/admin/*", cloud_admin, NULL},
		{"POST", "/v1/admin/*", cloud_admin, NULL},
		{"PUT", "/v1/admin/*", cloud_admin, NULL},
		{"DELETE", "/v1/admin/*", cloud_admin, NULL},
		{"GET", "/ui", cloud_ui, NULL},
		{"GET", "/ui/*", cloud_ui, NULL},
		{"POST", "/ui/*", cloud_ui, NULL},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		table[i].arg = app;
	*routes = table;
	return sizeof(table) / sizeof(table[0]);
}

/* daemon_main's routes hook: the cloud's table. */
static size_t
routes(void *app, const struct http_route **out)
{
	return cloud_routes(app, out);
}

/* onramp-cloudd: daemon_main with the cloud's configuration, keys, schema and routes. */
int
main(int argc, char **argv)
{
	const struct daemon_program prog = {
		.name = "onramp-cloudd",
		.version = ONRAMP_VERSION,
		.section = "cloudd",
		.default_db = "cloud.db",
		.usage = usage,
		.component = "cloudd",
		.migrations = cloud_migrations,
		.n_migrations = cloud_n_migrations,
		.configure = configure,
		.initialise = initialise,
		.routes = routes,
		.release = release,
	};

	return daemon_main(argc, argv, &prog);
}
