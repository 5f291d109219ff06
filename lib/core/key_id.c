/*
 * Key identities of PEM texts without OpenSSL 3.0's per-call decoder and
 * encoder setup (see key_id.h). What it trusts: nothing in the PEM text
 * before OpenSSL decoded it.
 */
#include "core/key_id.h"

#include "core/anchors.h"
#include "core/error.h"

#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdbool.h>
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

/*
 * The DER SubjectPublicKeyInfo of an EC P-256 key with an uncompressed point,
 * up to the point: SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 },
 * BIT STRING of 66 bytes (no unused bits, then 0x04 || X || Y) }. What routers'
 * certificate keys are (lib/device/certkey.c), as OpenSSL writes them.
 */
static const unsigned char p256_spki_prefix[] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
	0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
#define P256_POINT_LEN 65

static pthread_once_t p256_once = PTHREAD_ONCE_INIT;
static EC_GROUP *p256; /* read-only once made: shared by all threads */

static void
make_p256(void)
{
	p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

/*
 * Whether der is an EC P-256 SubjectPublicKeyInfo whose point is on the
 * curve, checked on a group made once per process: OpenSSL 3.0's decoder
 * makes the curve again (its Montgomery setup) for every key, the costliest
 * part of an onboarding request. false for any other key, which then goes to
 * the decoder (and its errors). Trusts nothing in der.
 */
static bool
p256_key_valid(const unsigned char *der, size_t len)
{
	EC_POINT *point = NULL;
	bool valid;

	if (len != sizeof(p256_spki_prefix) + P256_POINT_LEN ||
	    memcmp(der, p256_spki_prefix, sizeof(p256_spki_prefix)) != 0 ||
	    der[sizeof(p256_spki_prefix)] != POINT_CONVERSION_UNCOMPRESSED)
		return false;
	pthread_once(&p256_once, make_p256);
	if (p256 == NULL || (point = EC_POINT_new(p256)) == NULL) {
		ERR_clear_error();
		return false;
	}
	/* Reading an uncompressed point checks that it is on the curve. */
	valid = EC_POINT_oct2point(p256, point, der + sizeof(p256_spki_prefix), P256_POINT_LEN,
				   NULL) == 1 &&
		EC_POINT_is_at_infinity(p256, point) == 0;
	EC_POINT_free(point);
	ERR_clear_error();
	return valid;
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
	if (!p256_key_valid(der, (size_t)len) &&
	    (key = pki_public_key_from_der(der, (size_t)len, why)) == NULL)
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
