/*
 * Unit tests for lib/core/key_id.c: the key id of a PEM public key is the one
 * pki_spki_sha256 gives for EC, RSA and Ed25519 keys, call after call and
 * from two threads at once (one decoder kept for the process); anything but
 * one PEM "PUBLIC KEY" holding one public key is refused and leaves the
 * decoder usable; a certificate's remembered id is pki_cert_key_id's, past
 * the memo's size too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/key_id.h"
#include "core/x509.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The text a memory BIO holds, NUL-terminated (malloc'd). */
static char *
bio_text(BIO *bio)
{
	char *data = NULL, *text;
	long len = BIO_get_mem_data(bio, &data);

	text = malloc((size_t)len + 1);
	assert_non_null(text);
	memcpy(text, data, (size_t)len);
	text[len] = '\0';
	return text;
}

/* A PEM block of the given type around der (malloc'd). */
static char *
pem_block(const char *type, const unsigned char *der, long len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *text;

	assert_non_null(bio);
	assert_true(PEM_write_bio(bio, type, "", der, len) > 0);
	text = bio_text(bio);
	BIO_free(bio);
	return text;
}

/* A key's public half as PEM_write_bio_PUBKEY writes it (malloc'd). */
static char *
public_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *text;

	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
	text = bio_text(bio);
	BIO_free(bio);
	return text;
}

static void
same_id_as_spki_sha256(void **state)
{
	EVP_PKEY *keys[] = {EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
			    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"),
			    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
			    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")};

	(void)state;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char want[PKI_KEY_ID_LEN + 1], got[PKI_KEY_ID_LEN + 1], *pem;

		assert_non_null(keys[i]);
		pem = public_pem(keys[i]);
		assert_int_equal(pki_spki_sha256(keys[i], want), 0);
		for (int round = 0; round < 3; round++) {
			memset(got, 0, sizeof(got));
			assert_int_equal(pki_public_key_id(pem, "cert_key", got), 0);
			assert_string_equal(got, want);
		}
		free(pem);
		EVP_PKEY_free(keys[i]);
	}
}

/* The hex SHA-256 of what i2d_PUBKEY (OpenSSL's encoder) writes for key. */
static void
encoder_id(EVP_PKEY *key, char out[PKI_KEY_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int len = i2d_PUBKEY(key, &der);

	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL), 1);
	for (unsigned int i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * mdlen] = '\0';
	OPENSSL_free(der);
}

/*
 * pki_spki_sha256 (which builds an EC key's SubjectPublicKeyInfo itself) names
 * every key as the SHA-256 of what OpenSSL's encoder writes: EC points
 * uncompressed and compressed, generated and decoded, explicit curve
 * parameters, RSA, Ed25519.
 */
static void
spki_sha256_is_the_encoders(void **state)
{
	EVP_PKEY *keys[] = {EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
			    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"),
			    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
			    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
			    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
			    NULL,
			    NULL};
	size_t n = sizeof(keys) / sizeof(keys[0]);
	unsigned char *der = NULL;
	const unsigned char *p;
	int len;

	(void)state;
	assert_int_equal(EVP_PKEY_set_utf8_string_param(
				 keys[1], OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"),
			 1);
	assert_int_equal(
		EVP_PKEY_set_utf8_string_param(keys[2], OSSL_PKEY_PARAM_EC_ENCODING, "explicit"),
		1);
	/* The compressed and the explicit keys again, as decoded from what they wrote. */
	for (size_t i = 1; i <= 2; i++) {
		len = i2d_PUBKEY(keys[i], &der);
		assert_true(len > 0);
		p = der;
		keys[n - 3 + i] = d2i_PUBKEY(NULL, &p, len);
		OPENSSL_free(der);
		der = NULL;
	}
	for (size_t i = 0; i < n; i++) {
		char want[PKI_KEY_ID_LEN + 1], got[PKI_KEY_ID_LEN + 1];

		assert_non_null(keys[i]);
		encoder_id(keys[i], want);
		assert_int_equal(pki_spki_sha256(keys[i], got), 0);
		assert_string_equal(got, want);
		EVP_PKEY_free(keys[i]);
	}
}

/* pki_public_key_id refuses text, naming `what` and `expect` in the error. */
static void
refused(const char *pem, const char *expect)
{
	char out[PKI_KEY_ID_LEN + 1];

	assert_int_equal(pki_public_key_id(pem, "cert_key", out), -1);
	assert_non_null(strstr(or_errmsg(), "cert_key"));
	if (strstr(or_errmsg(), expect) == NULL)
		fail_msg("error '%s' does not say '%s'", or_errmsg(), expect);
}

static void
refuses_what_is_not_one_public_key(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unsigned char *der = NULL, *longer;
	char want[PKI_KEY_ID_LEN + 1], got[PKI_KEY_ID_LEN + 1], *pem;
	int len;
	BIO *bio = BIO_new(BIO_s_mem());

	(void)state;
	assert_non_null(key);
	assert_non_null(bio);
	refused("not a key", "not a PEM public key");
	refused("", "empty");
	/* The private key, a certificate-typed block, garbage DER, a key with bytes after it. */
	assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
	pem = bio_text(bio);
	refused(pem, "PRIVATE KEY");
	free(pem);
	assert_true((len = i2d_PUBKEY(key, &der)) > 0);
	pem = pem_block("CERTIFICATE", der, len);
	refused(pem, "'CERTIFICATE'");
	free(pem);
	pem = pem_block("PUBLIC KEY", (const unsigned char *)"\x30\x03\x02\x01\x01", 5);
	refused(pem, "not a PEM public key");
	free(pem);
	longer = calloc(1, (size_t)len + 2);
	assert_non_null(longer);
	memcpy(longer, der, (size_t)len);
	pem = pem_block("PUBLIC KEY", longer, len + 2);
	refused(pem, "2 bytes after the key");
	free(pem);
	/* A P-256 key whose point is off the curve, and one whose point says "compressed". */
	memcpy(longer, der, (size_t)len);
	longer[len - 1] ^= 0x01;
	pem = pem_block("PUBLIC KEY", longer, len);
	refused(pem, "not a PEM public key");
	free(pem);
	memcpy(longer, der, (size_t)len);
	longer[len - 65] = 0x02;
	pem = pem_block("PUBLIC KEY", longer, len);
	refused(pem, "not a PEM public key");
	free(pem);
	free(longer);
	/* The kept decoder still decodes after refusals. */
	pem = public_pem(key);
	assert_int_equal(pki_spki_sha256(key, want), 0);
	assert_int_equal(pki_public_key_id(pem, "cert_key", got), 0);
	assert_string_equal(got, want);
	free(pem);
	OPENSSL_free(der);
	BIO_free(bio);
	EVP_PKEY_free(key);
}

struct worker {
	char *pem;
	char want[PKI_KEY_ID_LEN + 1];
	int wrong;
};

/* Computes one key's id many times; counts the answers that differ. */
static void *
work(void *arg)
{
	struct worker *w = arg;
	char got[PKI_KEY_ID_LEN + 1];

	for (int i = 0; i < 200; i++)
		if (pki_public_key_id(w->pem, "cert_key", got) == -1 || strcmp(got, w->want) != 0)
			w->wrong++;
	return NULL;
}

static void
two_threads_share_the_decoder(void **state)
{
	struct worker w[2] = {0};
	EVP_PKEY *keys[2] = {EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
			     EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")};
	pthread_t t[2];

	(void)state;
	for (int i = 0; i < 2; i++) {
		assert_non_null(keys[i]);
		w[i].pem = public_pem(keys[i]);
		assert_int_equal(pki_spki_sha256(keys[i], w[i].want), 0);
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].wrong, 0);
		free(w[i].pem);
		EVP_PKEY_free(keys[i]);
	}
}

/* A self-signed certificate of a new P-256 key (malloc'd PEM). */
static char *
self_signed(int serial)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *cert = X509_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char *text;

	assert_non_null(key);
	assert_non_null(cert);
	assert_non_null(bio);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(cert), serial), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(cert), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(cert), 3600));
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
						    (const unsigned char *)"key id test", -1, -1,
						    0),
			 1);
	assert_int_equal(X509_set_issuer_name(cert, X509_get_subject_name(cert)), 1);
	assert_int_equal(X509_set_pubkey(cert, key), 1);
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509(bio, cert), 1);
	text = bio_text(bio);
	BIO_free(bio);
	X509_free(cert);
	EVP_PKEY_free(key);
	return text;
}

static void
cached_cert_id_is_pki_cert_key_id(void **state)
{
	enum { CERTS = 20 }; /* more than the memo holds */
	char *pems[CERTS], want[PKI_KEY_ID_LEN + 1], got[PKI_KEY_ID_LEN + 1];

	(void)state;
	for (int i = 0; i < CERTS; i++)
		pems[i] = self_signed(i + 1);
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < CERTS; i++) {
			assert_int_equal(pki_cert_key_id(pems[i], want), 0);
			assert_int_equal(pki_cert_key_id_cached(pems[i], got), 0);
			assert_string_equal(got, want);
			assert_int_equal(pki_cert_key_id_cached(pems[i], got), 0);
			assert_string_equal(got, want);
		}
	assert_int_equal(pki_cert_key_id_cached("not a certificate", got), -1);
	assert_non_null(strstr(or_errmsg(), "holds no PEM certificate"));
	assert_int_equal(pki_cert_key_id_cached("not a certificate", got), -1);
	for (int i = 0; i < CERTS; i++)
		free(pems[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(same_id_as_spki_sha256),
		cmocka_unit_test(spki_sha256_is_the_encoders),
		cmocka_unit_test(refuses_what_is_not_one_public_key),
		cmocka_unit_test(two_threads_share_the_decoder),
		cmocka_unit_test(cached_cert_id_is_pki_cert_key_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
