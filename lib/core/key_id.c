/*
 * Key identities of PEM texts without OpenSSL 3.0's per-call decoder and
 * encoder setup (see key_id.h). What it trusts: nothing in the PEM text
 * before OpenSSL decoded it.
 */
#include "core/key_id.h"

#include "core/anchors.h"
#include "core/error.h"

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <string.h>

/* One process-wide DER SubjectPublicKeyInfo decoder; *decoded is where it puts a key. */
static pthread_mutex_t decoder_lock = PTHREAD_MUTEX_INITIALIZER;
static OSSL_DECODER_CTX *decoder;
static EVP_PKEY *decoded;

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

/*
 * See key_id.h: the certificates from the process's parsed anchors
 * (core/anchors.h: parsed once per text), the first one's key named.
 */
int
pki_cert_key_id_cached(const char *cert_pem, char out[PKI_KEY_ID_LEN + 1])
{
	STACK_OF(X509) *certs = pki_anchors_get(cert_pem, PKI_ANCHOR_CERTS_MAX, "certificate");
	int rc;

	if (certs == NULL)
		return -1;
	rc = pki_spki_sha256(X509_get0_pubkey(sk_X509_value(certs, 0)), out);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}
