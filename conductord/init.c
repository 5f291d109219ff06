/*
 * Initialisation and loading of a conductor's state directory:
 *   master.key   32 random bytes (0600): seals pre-shared secrets in the database
 *   ca.pem       the root CA certificate (public; `onrampctl conductor ca export`)
 *   ca.key       its private key (0600)
 *   server.pem   the conductor's TLS server certificate, SANs = server-name entries
 *   server.key   its private key (0600)
 * init prints nothing secret except the first admin token, once (or writes it
 * to a 0600 file). It refuses to run over an initialised directory.
 */
#include "conductor.h"

#include "core/error.h"
#include "core/file.h"
#include "core/secret.h"
#include "proto/peering_config.h"
#include "server/ca.h"
#include "server/masterkey.h"
#include "server/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SERVER_CERT_DAYS 397

/* A PEM file of at most PKI_MAX_PEM bytes, NUL-terminated. */
static int
read_text(const char *path, char **out)
{
	uint8_t *data;
	size_t len;

	if (file_read_all(path, PKI_MAX_PEM, &data, &len) == -1)
		return -1;
	*out = (char *)data;
	return 0;
}

/* Writes a file of the state directory atomically with the given mode. */
static int
write_pem(const struct conductor_settings *s, const char *file, const char *pem, size_t len,
	  mode_t mode)
{
	char path[4096];

	if (state_path(s, file, path, sizeof(path)) == -1)
		return -1;
	return file_write_atomic(path, pem, len, mode);
}

/* The CA: imported (checked first) or made here. Written as ca.pem and ca.key. */
static int
make_ca(const struct conductor_settings *s)
{
	struct secret key = {0};
	struct pki_ca *ca = NULL;
	char *cert = NULL, cn[128];
	uint8_t *key_data = NULL;
	size_t key_len = 0;
	int rc = -1;

	if (s->ca_import_cert != NULL) {
		if (read_text(s->ca_import_cert, &cert) == -1 ||
		    file_read_all(s->ca_import_key, PKI_MAX_PEM, &key_data, &key_len) == -1)
			goto out;
		if (secret_from(&key, key_data, key_len + 1) == -1)
			goto out;
		key.len = key_len;
		if (pki_ca_load(cert, (char *)key.data, &ca) == -1) {
			or_error_prefix("cannot import the CA");
			goto out;
		}
	} else {
		snprintf(cn, sizeof(cn), "%s root CA", s->name);
		if (pki_ca_create(cn, s->ca_days, &cert, &key) == -1)
			goto out;
	}
	if (write_pem(s, "ca.key", (char *)key.data, key.len, 0600) == -1 ||
	    write_pem(s, "ca.pem", cert, strlen(cert), 0644) == -1)
		goto out;
	rc = 0;
out:
	if (key_data != NULL) {
		secure_zero(key_data, key_len);
		free(key_data);
	}
	secret_free(&key);
	pki_ca_free(ca);
	free(cert);
	return rc;
}

/* Loads the CA of the state directory; the key's copy in memory is zeroed after use. */
static int
load_ca(const struct conductor_settings *s, struct pki_ca **out)
{
	char path[4096], *cert = NULL;
	uint8_t *key = NULL;
	size_t key_len = 0;
	int rc = -1;

	if (state_path(s, "ca.pem", path, sizeof(path)) == -1 || read_text(path, &cert) == -1 ||
	    state_path(s, "ca.key", path, sizeof(path)) == -1 ||
	    file_read_all(path, PKI_MAX_PEM, &key, &key_len) == -1)
		goto out;
	rc = pki_ca_load(cert, (char *)key, out);
out:
	if (key != NULL) {
		secure_zero(key, key_len);
		free(key);
	}
	free(cert);
	return rc;
}

/* A new server certificate and key for every server-name, written as server.pem and server.key. */
static int
issue_server_cert(const struct conductor_settings *s, struct pki_ca *ca)
{
	struct secret key = {0};
	struct pki_issued srv;
	int rc = -1;

	if (pki_issue_server(ca, s->name, s->server_names, s->n_server_names, SERVER_CERT_DAYS,
			     &srv, &key) == -1)
		return or_error_prefix("server certificate");
	if (write_pem(s, "server.key", (char *)key.data, key.len, 0600) == 0 &&
	    write_pem(s, "server.pem", srv.cert_pem, strlen(srv.cert_pem), 0644) == 0)
		rc = 0;
	pki_issued_free(&srv);
	secret_free(&key);
	return rc;
}

/* Stores a new admin token's hash and hands the token out once. */
static int
first_admin_token(const struct conductor_settings *s, const char *token_file)
{
	char token[65], hash[65], created[24];
	struct store *db = NULL;
	int rc = -1;

	if (random_hex(32, token) == -1 || sha256_hex(token, strlen(token), hash) == -1)
		return -1;
	if (conductor_db_open(s, &db) == -1)
		goto out;
	fmt_i64((long long)time(NULL), created);
	if (store_exec(db, "INSERT INTO admin_tokens (hash, created) VALUES ($1, $2)",
		       (const char *[]){hash, created}, 2, NULL) == -1)
		goto out;
	if (token_file != NULL) {
		if (file_write_atomic(token_file, token, strlen(token), 0600) == -1)
			goto out;
		printf("admin token written to %s\n", token_file);
	} else {
		printf("admin token: %s\n", token);
	}
	rc = 0;
out:
	secure_zero(token, sizeof(token));
	store_close(db);
	return rc;
}

/*
 * Removes the keys and certificates a failed init made, so that init can be
 * run again once the cause is fixed (it refuses a state directory that
 * holds a master key or a CA).
 */
static void
remove_made(const struct conductor_settings *s)
{
	static const char *const files[] = {"server.pem", "server.key", "ca.pem", "ca.key",
					    "master.key"};
	char path[4096];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (state_path(s, files[i], path, sizeof(path)) == 0 && unlink(path) == -1 &&
		    errno != ENOENT)
			log_warn("cannot remove %s after the failed init: %s", path,
				 strerror(errno));
}

/* Creates the state directory; refuses one that already holds a CA. */
int
conductor_init(const struct conductor_settings *s, const char *token_file)
{
	struct pki_ca *ca = NULL;
	char path[4096];
	struct stat st;
	int rc = -1;

	if (file_ensure_dir(s->state_dir, 0700) == -1)
		return -1;
	if (state_path(s, "ca.pem", path, sizeof(path)) == -1)
		return -1;
	if (stat(path, &st) == 0)
		return or_error("%s is already initialised (found %s)", s->state_dir, path);
	if (state_path(s, "master.key", path, sizeof(path)) == -1 || masterkey_create(path) == -1)
		return -1;
	if (make_ca(s) == -1 || load_ca(s, &ca) == -1 || issue_server_cert(s, ca) == -1 ||
	    first_admin_token(s, token_file) == -1)
		goto out;
	printf("conductor %s (%s) initialised in %s\n", s->name,
	       s->role == ROLE_PRODUCTION ? "production" : "staging", s->state_dir);
	rc = 0;
out:
	if (rc == -1)
		remove_made(s);
	pki_ca_free(ca);
	return rc;
}

/* Reissues the server certificate when it expires soon or misses a server-name (or when forced). */
int
conductor_renew_server_cert(struct conductor *c, bool force)
{
	char *pem = NULL;
	time_t not_after;
	bool serves = false;
	int rc = -1;

	if (read_text(c->server_cert_path, &pem) == -1)
		return -1;
	if (pki_cert_serves(pem, c->set.server_names, c->set.n_server_names,
			    c->set.renew_before_days, &serves, &not_after) == -1)
		goto out;
	if (serves && !force) {
		rc = 0;
		goto out;
	}
	log_info("renewing the server certificate (it expires soon or lacks a server-name)");
	rc = issue_server_cert(&c->set, c->ca);
out:
	free(pem);
	return rc;
}

/* Loads what run needs: master key, CA, server certificate paths (renewed if due). */
int
conductor_load(struct conductor *c)
{
	char path[4096];

	if (state_path(&c->set, "master.key", path, sizeof(path)) == -1 ||
	    masterkey_load(path, &c->mk) == -1)
		return or_error_prefix("not initialised (run 'onramp-conductord init')");
	if (load_ca(&c->set, &c->ca) == -1 ||
	    state_path(&c->set, "server.pem", c->server_cert_path, sizeof(c->server_cert_path)) ==
		    -1 ||
	    state_path(&c->set, "server.key", c->server_key_path, sizeof(c->server_key_path)) ==
		    -1 ||
	    conductor_renew_server_cert(c, false) == -1) {
		conductor_unload(c);
		return -1;
	}
	return 0;
}

/* Frees what conductor_load loaded. */
void
conductor_unload(struct conductor *c)
{
	pki_ca_free(c->ca);
	c->ca = NULL;
	masterkey_free(c->mk);
	c->mk = NULL;
}
