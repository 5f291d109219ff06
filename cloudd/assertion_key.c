/*
 * The cloud's assertion key (issue 12): an EC P-256 key and its self-signed
 * certificate, made on first use (the first `assertion-cert export` or the
 * first onboarding assertion), kept in the database with the key sealed under
 * the master key like every other secret of the cloud, and loaded once per
 * process. Conductors pin the certificate (`onrampctl conductor trust-cloud`).
 * What it trusts: the database row only once the master key opens it for
 * this very row (the seal is bound to its context).
 */
#include "cloud.h"

#include "core/error.h"
#include "core/log.h"
#include "server/assertion.h"
#include "server/ca.h"
#include "server/http_server.h"
#include "server/masterkey.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KEY_ROW "1"
#define KEY_CONTEXT "assertion-key:1"
#define CERT_DAYS 3650
#define CERT_NAME "onramp cloud onboarding assertions"

static pthread_mutex_t loading = PTHREAD_MUTEX_INITIALIZER;

/* Makes a key and certificate and stores them, unless another process stored one first. */
static int
create_key(struct cloud_app *app, struct store *st)
{
	struct secret key = {0};
	char *cert = NULL, *sealed = NULL, num[CLOUD_NUM_LEN];
	int rc = -1;

	if (pki_ca_create(CERT_NAME, CERT_DAYS, &cert, &key) == -1 ||
	    masterkey_seal(app->mk, KEY_CONTEXT, key.data, key.len, &sealed) == -1)
		goto out;
	cloud_num((long long)time(NULL), num);
	if (store_exec(st,
		       "INSERT INTO assertion_keys (id, cert_pem, key_sealed, created) VALUES "
		       "(" KEY_ROW ", $1, $2, $3) ON CONFLICT (id) DO NOTHING",
		       (const char *[]){cert, sealed, num}, 3, NULL) == -1)
		goto out;
	log_info("assertion key made (certificate '%s', %d days)", CERT_NAME, CERT_DAYS);
	rc = 0;
out:
	free(sealed);
	free(cert);
	secret_free(&key);
	return rc;
}

/* Reads the stored key into app; *found false when there is none yet. */
static int
load_key(struct cloud_app *app, struct store *st, bool *found)
{
	struct store_result *res = NULL;
	struct secret sealed = {0}, key = {0};
	int rc = -1;

	*found = false;
	if (store_exec(st, "SELECT cert_pem, key_sealed FROM assertion_keys WHERE id = " KEY_ROW,
		       NULL, 0, &res) == -1)
		return -1;
	if (store_rows(res) == 1) {
		*found = true;
		if (masterkey_open(app->mk, KEY_CONTEXT, store_value(res, 0, 1), &sealed) == -1 ||
		    secret_alloc(&key, sealed.len + 1) == -1) {
			or_error_prefix("the assertion key");
			goto out;
		}
		/* The sealed PEM has no NUL: it is copied into a NUL-terminated secret. */
		memcpy(key.data, sealed.data, sealed.len);
		key.data[sealed.len] = '\0';
		if (assertion_signer_load(store_value(res, 0, 0), (const char *)key.data,
					  &app->assertion_signer) == -1 ||
		    (app->assertion_cert_pem = strdup(store_value(res, 0, 0))) == NULL) {
			or_error_prefix("the assertion key");
			goto out;
		}
	}
	rc = 0;
out:
	if (rc == -1) {
		assertion_signer_free(app->assertion_signer);
		app->assertion_signer = NULL;
	}
	secret_free(&sealed);
	secret_free(&key);
	store_result_free(res);
	return rc;
}

/* See cloud.h: loaded once per process (under a lock), made first when there is none. */
int
cloud_assertion_key(struct cloud_app *app, struct store *st)
{
	bool found;
	int rc = -1;

	pthread_mutex_lock(&loading);
	if (app->assertion_signer != NULL) {
		rc = 0;
		goto out;
	}
	if (load_key(app, st, &found) == -1)
		goto out;
	if (!found && (create_key(app, st) == -1 || load_key(app, st, &found) == -1))
		goto out;
	rc = found ? 0 : or_error("the assertion key was not stored");
out:
	pthread_mutex_unlock(&loading);
	return rc;
}

/* See cloud.h: the certificate only (made first when there is none); never the key. */
void
cloud_admin_assertion_cert(struct http_ctx *ctx, struct cloud_app *app, struct store *st)
{
	if (strcmp(http_ctx_method(ctx), "GET") != 0) {
		http_reply_error(ctx, 405, "method-not-allowed", "only GET is allowed here");
		return;
	}
	if (cloud_assertion_key(app, st) == -1) {
		cloud_internal(ctx, "loading the assertion key");
		return;
	}
	http_reply_json(ctx, 200, json_pack("{s:s}", "certificate", app->assertion_cert_pem));
}
