/*
 * Unit tests for lib/server/tls_exporter.c: over a real TLS 1.3 connection in
 * memory (OpenSSL on both ends, a BIO pair), the kept exporter equals what the
 * client exports, on the first and on later takings, under another label or
 * length, for a label too long to keep; a connection not yet handshaken gets
 * an error, and nothing is kept from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "server/tls_exporter.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <string.h>

struct pair {
	SSL_CTX *server_ctx, *client_ctx;
	SSL *server, *client;
};

/* A self-signed P-256 certificate for the server end. */
static void
server_identity(SSL_CTX *ctx)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();

	assert_non_null(key);
	assert_non_null(cert);
	assert_int_equal(X509_set_version(cert, X509_VERSION_3), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
				   (const unsigned char *)"exporter-test", -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	assert_int_equal(X509_set_pubkey(cert, key), 1);
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static int
setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	BIO *server_bio, *client_bio;

	if (p == NULL)
		return -1;
	p->server_ctx = SSL_CTX_new(TLS_server_method());
	p->client_ctx = SSL_CTX_new(TLS_client_method());
	server_identity(p->server_ctx);
	SSL_CTX_set_min_proto_version(p->server_ctx, TLS1_3_VERSION);
	p->server = SSL_new(p->server_ctx);
	p->client = SSL_new(p->client_ctx);
	assert_int_equal(BIO_new_bio_pair(&server_bio, 0, &client_bio, 0), 1);
	SSL_set_bio(p->server, server_bio, server_bio);
	SSL_set_bio(p->client, client_bio, client_bio);
	SSL_set_accept_state(p->server);
	SSL_set_connect_state(p->client);
	*state = p;
	return 0;
}

static int
teardown(void **state)
{
	struct pair *p = *state;

	SSL_free(p->server);
	SSL_free(p->client);
	SSL_CTX_free(p->server_ctx);
	SSL_CTX_free(p->client_ctx);
	free(p);
	return 0;
}

/* Runs both ends until the handshake is done (no certificate check: not what is tested). */
static void
handshake(struct pair *p)
{
	int i, server_done = 0, client_done = 0;

	for (i = 0; i < 100 && !(server_done && client_done); i++) {
		if (!client_done)
			client_done = SSL_do_handshake(p->client) == 1;
		if (!server_done)
			server_done = SSL_do_handshake(p->server) == 1;
	}
	assert_true(server_done && client_done);
}

/* The client end's exporter, straight from OpenSSL. */
static void
client_exporter(struct pair *p, const char *label, uint8_t *out, size_t len)
{
	assert_int_equal(
		SSL_export_keying_material(p->client, out, len, label, strlen(label), NULL, 0, 0),
		1);
}

static void
kept_value_is_the_connections_own(void **state)
{
	struct pair *p = *state;
	uint8_t server[64], client[64], again[64];

	handshake(p);
	client_exporter(p, "EXPORTER-onramp-a", client, 32);
	assert_int_equal(tls_exporter(p->server, "EXPORTER-onramp-a", server, 32), 0);
	assert_memory_equal(server, client, 32);
	assert_int_equal(tls_exporter(p->server, "EXPORTER-onramp-a", again, 32), 0);
	assert_memory_equal(again, client, 32);
}

static void
another_label_or_length_is_taken_anew(void **state)
{
	struct pair *p = *state;
	uint8_t server[64], client[64];

	handshake(p);
	assert_int_equal(tls_exporter(p->server, "EXPORTER-onramp-a", server, 32), 0);
	client_exporter(p, "EXPORTER-onramp-b", client, 32);
	assert_int_equal(tls_exporter(p->server, "EXPORTER-onramp-b", server, 32), 0);
	assert_memory_equal(server, client, 32);
	client_exporter(p, "EXPORTER-onramp-b", client, 48);
	assert_int_equal(tls_exporter(p->server, "EXPORTER-onramp-b", server, 48), 0);
	assert_memory_equal(server, client, 48);
	client_exporter(p, "EXPORTER-onramp-a", client, 32);
	assert_int_equal(tls_exporter(p->server, "EXPORTER-onramp-a", server, 32), 0);
	assert_memory_equal(server, client, 32);
}

static void
label_too_long_to_keep_is_still_exported(void **state)
{
	struct pair *p = *state;
	char label[TLS_EXPORTER_LABEL_MAX + 10];
	uint8_t server[64], client[64];

	memset(label, 'x', sizeof(label) - 1);
	label[sizeof(label) - 1] = '\0';
	handshake(p);
	client_exporter(p, label, client, 32);
	assert_int_equal(tls_exporter(p->server, label, server, 32), 0);
	assert_memory_equal(server, client, 32);
	assert_int_equal(tls_exporter(p->server, label, server, 32), 0);
	assert_memory_equal(server, client, 32);
}

static void
no_handshake_no_exporter(void **state)
{
	struct pair *p = *state;
	uint8_t server[64], client[64];

	assert_int_equal(tls_exporter(p->server, "EXPORTER-onramp-a", server, 32), -1);
	assert_non_null(strstr(or_errmsg(), "TLS exporter 'EXPORTER-onramp-a' of 32 bytes failed"));
	handshake(p);
	client_exporter(p, "EXPORTER-onramp-a", client, 32);
	assert_int_equal(tls_exporter(p->server, "EXPORTER-onramp-a", server, 32), 0);
	assert_memory_equal(server, client, 32);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(kept_value_is_the_connections_own, setup, teardown),
		cmocka_unit_test_setup_teardown(another_label_or_length_is_taken_anew, setup,
						teardown),
		cmocka_unit_test_setup_teardown(label_too_long_to_keep_is_still_exported, setup,
						teardown),
		cmocka_unit_test_setup_teardown(no_handshake_no_exporter, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
