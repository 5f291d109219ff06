/*
 * X.509 checks that every layer uses, all through OpenSSL: certificate and
 * CSR parsing with size bounds, key identities (SHA-256 of the
 * SubjectPublicKeyInfo), chain verification against given anchors, and the
 * name rules for routers and servers. Nothing here holds or uses a CA key;
 * the conductor's CA is server/ca.c.
 */
#include "core/x509.h"

#include "core/anchors.h"
#include "core/encoding.h"
#include "core/error.h"
#include "core/key_id.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Adds the text of OpenSSL's last error to the message, when there is one. */
int
pki_ssl_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_clear_error();
	if (e == 0)
		return or_error("%s", what);
	ERR_error_string_n(e, buf, sizeof(buf));
	return or_error("%s (%s)", what, buf);
}

/* A read-only BIO over PEM text after a size check. */
BIO *
pki_pem_source(const char *pem, const char *what)
{
	size_t len;
	BIO *bio;

	if (pem == NULL || (len = strlen(pem)) == 0) {
		or_error("%s: empty", what);
		return NULL;
	}
	if (len > PKI_MAX_PEM) {
		or_error("%s: %zu bytes is more than the %d allowed", what, len, PKI_MAX_PEM);
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		or_error("out of memory");
	return bio;
}

/* The first certificate of PEM text. */
X509 *
pki_cert_from_pem(const char *pem, const char *what)
{
	BIO *bio = pki_pem_source(pem, what);
	X509 *cert;

	if (bio == NULL)
		return NULL;
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (cert == NULL) {
		ERR_clear_error();
		or_error("%s: not a PEM certificate", what);
	}
	return cert;
}

/*
 * See x509.h: id-ecPublicKey, the curve's OID and the point in the key's own
 * conversion form, as OpenSSL's encoder writes them, from the key's
 * parameters. Trusts key to be a decoded or generated key.
 */
X509_PUBKEY *
pki_named_curve_spki(EVP_PKEY *key)
{
	unsigned char point[256], *bits = NULL;
	char group[64], encoding[32];
	size_t point_len = 0;
	X509_PUBKEY *spki = NULL;
	int nid;

	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, encoding,
					   sizeof(encoding), NULL) != 1 ||
	    strcmp(encoding, OSSL_PKEY_EC_ENCODING_GROUP) != 0 ||
	    EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) != 1 ||
	    (nid = OBJ_sn2nid(group)) == NID_undef ||
	    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
					    &point_len) != 1 ||
	    point_len == 0)
		goto out;
	if ((spki = X509_PUBKEY_new()) == NULL ||
	    (bits = OPENSSL_memdup(point, point_len)) == NULL ||
	    X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
				   OBJ_nid2obj(nid), bits, (int)point_len) != 1) {
		OPENSSL_free(bits);
		X509_PUBKEY_free(spki);
		spki = NULL;
	}
out:
	ERR_clear_error();
	return spki;
}

/*
 * Hex SHA-256 of the DER SubjectPublicKeyInfo: the key's identity, the same for a CSR and its
 * certificate.
 */
int
pki_spki_sha256(EVP_PKEY *key, char out[PKI_KEY_ID_LEN + 1])
{
	unsigned char *der = NULL;
	X509_PUBKEY *spki;
	int len, rc;

	/* An EC key on a named curve without OpenSSL 3.0's encoder chain (see above). */
	spki = pki_named_curve_spki(key);
	len = spki != NULL ? i2d_X509_PUBKEY(spki, &der) : i2d_PUBKEY(key, &der);
	X509_PUBKEY_free(spki);
	if (len <= 0)
		return pki_ssl_error("cannot encode public key");
	rc = pki_der_key_id(der, (size_t)len, out);
	OPENSSL_free(der);
	return rc;
}

/* See x509.h: the hex SHA-256 of a SubjectPublicKeyInfo's DER, as given. */
int
pki_der_key_id(const unsigned char *der, size_t len, char out[PKI_KEY_ID_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL) != 1)
		return pki_ssl_error("SHA-256 failed");
	hex_encode(md, mdlen, out);
	return 0;
}

/*
 * See x509.h: the algorithm, its parameter (an OID or NULL, nothing else) and
 * the key bits of from, copied into to as they are. Trusts from to be a
 * parsed or OpenSSL-made SubjectPublicKeyInfo.
 */
int
pki_spki_copy(X509_PUBKEY *to, X509_PUBKEY *from)
{
	ASN1_OBJECT *alg = NULL, *param = NULL;
	const ASN1_OBJECT *alg0;
	const unsigned char *key_bits;
	unsigned char *bits = NULL;
	const void *param0;
	X509_ALGOR *algor;
	int ptype, bits_len;

	if (X509_PUBKEY_get0_param(NULL, &key_bits, &bits_len, &algor, from) != 1)
		return 1;
	X509_ALGOR_get0(&alg0, &ptype, &param0, algor);
	/* EC: the curve's OID; RSA: NULL. Other parameters: the caller sets them from the key. */
	if (ptype != V_ASN1_OBJECT && ptype != V_ASN1_NULL)
		return 1;
	if ((alg = OBJ_dup(alg0)) == NULL ||
	    (ptype == V_ASN1_OBJECT && (param = OBJ_dup(param0)) == NULL) ||
	    (bits = OPENSSL_memdup(key_bits, (size_t)bits_len)) == NULL ||
	    X509_PUBKEY_set0_param(to, alg, ptype, param, bits, bits_len) != 1) {
		ASN1_OBJECT_free(alg);
		ASN1_OBJECT_free(param);
		OPENSSL_free(bits);
		return pki_ssl_error("cannot copy the public key");
	}
	return 0;
}

/* An ASN.1 time as seconds since the epoch, or -1. */
time_t
pki_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return (time_t)-1;
	return timegm(&tm);
}

/* See x509.h. */
bool
pki_valid_dns_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 253 || name[0] == '.' || name[0] == '-')
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
			return false;
	return true;
}

/* True for an IPv4 or IPv6 literal. */
bool
pki_is_ip_literal(const char *name)
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);

	ERR_clear_error();
	ASN1_OCTET_STRING_free(ip);
	return ip != NULL;
}

/* Whether the CSR's requested subjectAltName holds exactly uri. */
static bool
csr_has_uri(X509_REQ *req, const char *uri)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	GENERAL_NAMES *gens;
	bool found = false;

	if (exts == NULL)
		return false;
	gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *gen = sk_GENERAL_NAME_value(gens, i);
		const ASN1_IA5STRING *s;

		if (gen->type != GEN_URI)
			continue;
		s = gen->d.uniformResourceIdentifier;
		if ((size_t)ASN1_STRING_length(s) == strlen(uri) &&
		    memcmp(ASN1_STRING_get0_data(s), uri, strlen(uri)) == 0)
			found = true;
	}
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return found;
}

/* Accepts EC P-256/P-384 and RSA of 2048 bits or more, nothing else. */
static int
check_key_strength(EVP_PKEY *key)
{
	char group[64];
	size_t len = 0;

	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1)
			return or_error("CSR: EC key without a named curve");
		if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0 &&
		    strcmp(group, "secp384r1") != 0 && strcmp(group, "P-384") != 0)
			return or_error("CSR: EC curve %s is not accepted (P-256 or P-384)", group);
		return 0;
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(key) < 2048)
			return or_error("CSR: RSA key of %d bits is too short (2048 at least)",
					EVP_PKEY_get_bits(key));
		return 0;
	default:
		return or_error("CSR: key type is not accepted (EC P-256/P-384 or RSA)");
	}
}

/*
 * A library context with only OpenSSL's null provider: no decoders. OpenSSL
 * 3.0 decodes the key inside every CSR it parses, through a decoder chain it
 * builds from every provider's decoders and key managers for that one call
 * (about 0.1 ms here, and a conductor parses two CSRs per router set up).
 * Parsed in this context the request keeps its SubjectPublicKeyInfo as bytes
 * and pki_public_key_from_der decodes it with the decoder kept for the
 * process. NULL when it cannot be made: requests are then parsed as before.
 */
static OSSL_LIB_CTX *keyless_ctx;
static pthread_once_t keyless_once = PTHREAD_ONCE_INIT;

static void
make_keyless_ctx(void)
{
	if ((keyless_ctx = OSSL_LIB_CTX_new()) != NULL &&
	    OSSL_PROVIDER_load(keyless_ctx, "null") == NULL) {
		OSSL_LIB_CTX_free(keyless_ctx);
		keyless_ctx = NULL;
	}
	ERR_clear_error();
}

/*
 * The CSR of PEM text (the first CERTIFICATE REQUEST block, as
 * PEM_read_bio_X509_REQ takes it), parsed without decoding its key, and that
 * key decoded once. Trusts nothing in csr_pem.
 */
static int
csr_parse(const char *csr_pem, X509_REQ **req_out, EVP_PKEY **key_out)
{
	BIO *bio = pki_pem_source(csr_pem, "CSR");
	unsigned char *der = NULL, *spki = NULL;
	const unsigned char *p;
	X509_REQ *req = NULL;
	long len = 0;
	int spki_len, rc = -1;

	*req_out = NULL;
	*key_out = NULL;
	if (bio == NULL)
		return -1;
	if (PEM_bytes_read_bio(&der, &len, NULL, PEM_STRING_X509_REQ, bio, NULL, NULL) != 1) {
		pki_ssl_error("CSR: not a PEM certificate request");
		goto out;
	}
	pthread_once(&keyless_once, make_keyless_ctx);
	p = der;
	/* (OpenSSL drops the error of its attempt to decode the key in keyless_ctx itself.) */
	req = (X509_REQ *)ASN1_item_d2i_ex(NULL, &p, len, ASN1_ITEM_rptr(X509_REQ), keyless_ctx,
					   NULL);
	if (req == NULL) {
		pki_ssl_error("CSR: not a PEM certificate request");
		goto out;
	}
	if ((spki_len = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &spki)) <= 0 ||
	    (*key_out = pki_public_key_from_der(spki, (size_t)spki_len,
						"CSR: no readable public key")) == NULL)
		goto out;
	*req_out = req;
	req = NULL;
	rc = 0;
out:
	X509_REQ_free(req);
	OPENSSL_free(spki);
	OPENSSL_free(der);
	BIO_free(bio);
	return rc;
}

/* See x509.h: parsed, its signature verified with its own key, the key and the URI checked. */
int
pki_csr_load(const char *csr_pem, const char *required_uri, X509_REQ **req_out,
	     char key_id[PKI_KEY_ID_LEN + 1])
{
	X509_REQ *req = NULL;
	EVP_PKEY *key = NULL;
	int rc = -1;

	*req_out = NULL;
	if (csr_parse(csr_pem, &req, &key) == -1)
		return -1;
	if (X509_REQ_verify_ex(req, key, NULL, NULL) != 1) {
		ERR_clear_error();
		or_error("CSR: signature does not verify (no proof of key possession)");
		goto out;
	}
	if (check_key_strength(key) == -1 ||
	    (required_uri != NULL && !csr_has_uri(req, required_uri) &&
	     or_error("CSR: does not carry the required URI %s", required_uri)) ||
	    pki_spki_sha256(key, key_id) == -1)
		goto out;
	*req_out = req;
	req = NULL;
	rc = 0;
out:
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rc;
}

/* See x509.h. */
int
pki_csr_check(const char *csr_pem, const char *required_uri, char key_id[PKI_KEY_ID_LEN + 1])
{
	X509_REQ *req;

	if (pki_csr_load(csr_pem, required_uri, &req, key_id) == -1)
		return -1;
	X509_REQ_free(req);
	return 0;
}

/* See x509.h. */
bool
pki_valid_router_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > 63 || !isalnum((unsigned char)name[0]))
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			return false;
	return true;
}

/* See x509.h. */
int
pki_cert_key_id(const char *cert_pem, char key_id[PKI_KEY_ID_LEN + 1])
{
	X509 *cert = pki_cert_from_pem(cert_pem, "certificate");
	int rc;

	if (cert == NULL)
		return -1;
	rc = pki_spki_sha256(X509_get0_pubkey(cert), key_id);
	X509_free(cert);
	return rc;
}

/* See x509.h. */
int
pki_cert_serves(const char *cert_pem, const char *const *names, size_t n_names, unsigned min_days,
		bool *serves, time_t *not_after)
{
	X509 *cert = pki_cert_from_pem(cert_pem, "certificate");
	time_t now = time(NULL);
	int ok;

	*serves = false;
	if (cert == NULL)
		return -1;
	*not_after = pki_asn1_time(X509_get0_notAfter(cert));
	ok = *not_after != (time_t)-1 && *not_after - now > (time_t)min_days * 86400;
	for (size_t i = 0; ok && i < n_names; i++) {
		if (pki_is_ip_literal(names[i]))
			ok = X509_check_ip_asc(cert, names[i], 0) == 1;
		else
			ok = X509_check_host(cert, names[i], 0, X509_CHECK_FLAG_NO_WILDCARDS,
					     NULL) == 1;
	}
	X509_free(cert);
	*serves = ok;
	return 0;
}

/* Every certificate of a PEM text, in order; NULL (with or_error) when there is none. */
static STACK_OF(X509) * certs_from_pem(const char *pem, const char *what)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	BIO *bio = pki_pem_source(pem, what);
	X509 *cert;

	if (certs == NULL || bio == NULL)
		goto fail;
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (sk_X509_push(certs, cert) == 0) {
			X509_free(cert);
			goto fail;
		}
	ERR_clear_error();
	BIO_free(bio);
	if (sk_X509_num(certs) > 0)
		return certs;
	or_error("%s: no PEM certificate", what);
	sk_X509_pop_free(certs, X509_free);
	return NULL;
fail:
	BIO_free(bio);
	sk_X509_pop_free(certs, X509_free);
	if (bio != NULL)
		or_error("out of memory");
	return NULL;
}

/*
 * See x509.h: OpenSSL's verifier with only the given anchors trusted (parsed
 * once per process: core/anchors.h), the leaf parsed once for both the
 * verification and its key id.
 */
int
pki_verify_chain(const char *cert_pem, const char *anchor_pem, char key_id[PKI_KEY_ID_LEN + 1])
{
	STACK_OF(X509) *chain = NULL, *anchors = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	X509 *leaf = NULL;
	int rc = -1;

	if ((chain = certs_from_pem(cert_pem, "certificate")) == NULL ||
	    (anchors = pki_anchors_get(anchor_pem, PKI_ANCHOR_CERTS_MAX, "trust anchor")) == NULL)
		goto out;
	if ((store = pki_anchors_store(anchors)) == NULL || (ctx = X509_STORE_CTX_new()) == NULL) {
		or_error("out of memory");
		goto out;
	}
	leaf = sk_X509_shift(chain);
	if (X509_STORE_CTX_init(ctx, store, leaf, chain) != 1) {
		pki_ssl_error("cannot set up certificate verification");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		or_error("certificate does not verify: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	if (key_id != NULL && pki_spki_sha256(X509_get0_pubkey(leaf), key_id) == -1)
		goto out;
	rc = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_free(leaf);
	X509_STORE_free(store);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(anchors, X509_free);
	return rc;
}

/* See x509.h. Trusts nothing in pem: every block is parsed, the count bounded. */
STACK_OF(X509) * pki_certs_parse(const char *pem, size_t len, size_t max_certs, const char *what)
{
	STACK_OF(X509) *certs = NULL;
	BIO *bio = NULL;
	X509 *cert;
	unsigned long e;
	bool ok = false;

	if (len == 0) {
		or_error("%s is empty", what);
		return NULL;
	}
	if (len > INT_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL ||
	    (certs = sk_X509_new_null()) == NULL) {
		or_error("out of memory");
		goto out;
	}
	ERR_clear_error();
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if ((size_t)sk_X509_num(certs) == max_certs) {
			X509_free(cert);
			or_error("%s holds more than %zu certificates", what, max_certs);
			goto out;
		}
		if (sk_X509_push(certs, cert) == 0) {
			X509_free(cert);
			or_error("out of memory");
			goto out;
		}
	}
	/* The loop ends at the end of the text (no start line) or on a bad block. */
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		or_error("%s holds a PEM block that is not a valid certificate", what);
		goto out;
	}
	if (sk_X509_num(certs) == 0) {
		or_error("%s holds no PEM certificate", what);
		goto out;
	}
	ok = true;
out:
	/* The read past the last certificate always fails: not this thread's next error. */
	ERR_clear_error();
	BIO_free(bio);
	if (!ok) {
		sk_X509_pop_free(certs, X509_free);
		certs = NULL;
	}
	return certs;
}

/* See x509.h. */
int
pki_check_certificates(const char *pem, size_t len, size_t max_certs, const char *what)
{
	STACK_OF(X509) *certs = pki_certs_parse(pem, len, max_certs, what);

	sk_X509_pop_free(certs, X509_free);
	return certs != NULL ? 0 : -1;
}
