/*
 * Key identities of PEM texts without OpenSSL 3.0's per-call decoder and
 * encoder setup (see key_id.h). What it trusts: nothing in the PEM text
 * before OpenSSL decoded it; the memo keeps only ids of certificates that
 * parsed, keyed by their whole text.
 */
#include "core/key_id.h"

#include "core/error.h"

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MEMO_SLOTS 16

/* One process-wide DER SubjectPublicKeyInfo decoder; *decoded is where it puts a key. */
static pthread_mutex_t decoder_lock = PTHREAD_MUTEX_INITIALIZER;
static OSSL_DECODER_CTX *decoder;
static EVP_PKEY *decoded;

static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *pem;
	char id[PKI_KEY_ID_LEN + 1];
} memo[MEMO_SLOTS];
static size_t memo_next;

/*
 * See key_id.h: decoded by the kept decoder (made on first use, used under a
 * lock), nothing left over. Trusts nothing in der.
 */
EVP_PKEY *
pki_public_key_from_der(const unsigned char *der, size_t len, const char *what)
{
	const unsigned char *p = der;
	size_t left = len;
	EVP_PKEY *key = NULL;

	pthread_mutex_lock(&decoder_lock);
	if (decoder == NULL &&
	    (decoder = OSSL_DECODER_CTX_new_for_pkey(&decoded, "DER", "SubjectPublicKeyInfo", NULL,
						     EVP_PKEY_PUBLIC_KEY, NULL, NULL)) == NULL) {
		pki_ssl_error("cannot make a public key decoder");
		goto out;
	}
	decoded = NULL;
	if (OSSL_DECODER_from_data(decoder, &p, &left) != 1 || decoded == NULL) {
		pki_ssl_error(what);
		goto out;
	}
	if (left != 0) {
		or_error("%s (%zu bytes after the key)", what, left);
		goto out;
	}
	key = decoded;
	decoded = NULL;
out:
	EVP_PKEY_free(decoded);
	decoded = NULL;
	pthread_mutex_unlock(&decoder_lock);
	return key;
}

/* See key_id.h: the PEM block read by the plain PEM reader, its DER decoded once, hashed. */
int
pki_public_key_id(const char *pem, const char *what, char out[PKI_KEY_ID_LEN + 1])
{
	unsigned char *der = NULL;
	char *name = NULL, *header = NULL, why[128];
	EVP_PKEY *key = NULL;
	long len = 0;
	BIO *bio = pki_pem_source(pem, what);
	int rc = -1;

	if (bio == NULL)
		return -1;
	snprintf(why, sizeof(why), "%s: not a PEM public key", what);
	if (PEM_read_bio(bio, &name, &header, &der, &len) != 1) {
		pki_ssl_error(why);
		goto out;
	}
	if (strcmp(name, PEM_STRING_PUBLIC) != 0 || header[0] != '\0' || len <= 0) {
		or_error("%s (a PEM '%.32s' block)", why, name);
		goto out;
	}
	if ((key = pki_public_key_from_der(der, (size_t)len, why)) == NULL)
		goto out;
	rc = pki_der_key_id(der, (size_t)len, out);
out:
	EVP_PKEY_free(key);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	BIO_free(bio);
	return rc;
}

/* See key_id.h: a hit copies the id; a miss parses and takes the next slot round the memo. */
int
pki_cert_key_id_cached(const char *cert_pem, char out[PKI_KEY_ID_LEN + 1])
{
	bool found = false;
	char *copy;

	pthread_mutex_lock(&memo_lock);
	for (size_t i = 0; cert_pem != NULL && i < MEMO_SLOTS && !found; i++)
		if (memo[i].pem != NULL && strcmp(memo[i].pem, cert_pem) == 0) {
			memcpy(out, memo[i].id, sizeof(memo[i].id));
			found = true;
		}
	pthread_mutex_unlock(&memo_lock);
	if (found)
		return 0;
	/* Parsed outside the lock, so that another thread's hit does not wait for it. */
	if (pki_cert_key_id(cert_pem, out) == -1)
		return -1;
	/* Out of memory it is not remembered: the next call parses it again. */
	if ((copy = strdup(cert_pem)) != NULL) {
		pthread_mutex_lock(&memo_lock);
		free(memo[memo_next].pem);
		memo[memo_next].pem = copy;
		memcpy(memo[memo_next].id, out, PKI_KEY_ID_LEN + 1);
		memo_next = (memo_next + 1) % MEMO_SLOTS;
		pthread_mutex_unlock(&memo_lock);
	}
	return 0;
}
