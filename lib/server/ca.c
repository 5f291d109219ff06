/*
 * The conductor's certificate authority, all through OpenSSL's X.509 API. The
 * text of every extension value we build is a constant of this file; names
 * that come from outside (router names, server names) go into typed
 * GENERAL_NAME structures after validation, never into a configuration
 * string. Parsing and checking certificates and CSRs is core/x509.c's.
 */
#include "server/ca.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/key_id.h"

#include <ctype.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#define SERIAL_BYTES 20
#define CLOCK_SKEW_S 300 /* notBefore is set this far back, for routers whose clock lags */

struct pki_ca {
	X509 *cert;
	EVP_PKEY *key;
	char *cert_pem;
};

/* The certificate's PEM as a malloc'd string. */
static char *
pem_of_cert(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long len;

	if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1 &&
	    (len = BIO_get_mem_data(bio, &data)) > 0)
		out = strndup(data, (size_t)len);
	BIO_free(bio);
	if (out == NULL)
		pki_ssl_error("cannot write certificate PEM");
	return out;
}

/* The private key as PEM in a secret; the BIO is on the secure heap and cleansed. */
static int
pem_of_key(EVP_PKEY *key, struct secret *out)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char *data;
	long len;
	int rc = -1;

	if (bio == NULL || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (len = BIO_get_mem_data(bio, &data)) <= 0) {
		pki_ssl_error("cannot write private key PEM");
		goto out;
	}
	if (secret_alloc(out, (size_t)len + 1) == -1)
		goto out;
	memcpy(out->data, data, (size_t)len);
	out->len = (size_t)len; /* the byte after stays NUL */
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

/*
 * Fills out's serial, fingerprint, key identity and validity from cert; key_id
 * is the subject key's identity when the caller has it (NULL: hashed here).
 */
static int
describe(X509 *cert, const char *key_id, struct pki_issued *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	BIGNUM *bn;
	char *hex;
	size_t i;

	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	BN_free(bn);
	if (hex == NULL || strlen(hex) >= sizeof(out->serial)) {
		OPENSSL_free(hex);
		return pki_ssl_error("cannot read certificate serial");
	}
	for (i = 0; hex[i] != '\0'; i++)
		out->serial[i] = (char)tolower((unsigned char)hex[i]);
	out->serial[i] = '\0';
	OPENSSL_free(hex);
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1)
		return pki_ssl_error("cannot fingerprint certificate");
	hex_encode(md, mdlen, out->sha256);
	if (key_id != NULL)
		snprintf(out->key_id, sizeof(out->key_id), "%s", key_id);
	else if (pki_spki_sha256(X509_get0_pubkey(cert), out->key_id) == -1)
		return -1;
	out->not_before = pki_asn1_time(X509_get0_notBefore(cert));
	out->not_after = pki_asn1_time(X509_get0_notAfter(cert));
	out->cert_pem = pem_of_cert(cert);
	return out->cert_pem ? 0 : -1;
}

/* A fresh random serial from OpenSSL's generator. */
static int
set_random_serial(X509 *cert)
{
	unsigned char buf[SERIAL_BYTES];
	ASN1_INTEGER *serial = NULL;
	BIGNUM *bn = NULL;
	int rc = -1;

	if (RAND_bytes(buf, sizeof(buf)) != 1)
		return pki_ssl_error("no random bytes for the serial");
	/* Positive (top bit clear) and always 20 bytes long (next bit set). */
	buf[0] = (unsigned char)((buf[0] & 0x3f) | 0x40);
	bn = BN_bin2bn(buf, sizeof(buf), NULL);
	if (bn == NULL || (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    X509_set_serialNumber(cert, serial) != 1) {
		pki_ssl_error("cannot set serial");
		goto out;
	}
	rc = 0;
out:
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	return rc;
}

/* Adds one extension from a constant value string of this file. */
static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return pki_ssl_error("cannot build certificate extension");
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : pki_ssl_error("cannot add certificate extension");
}

/* Sets CN as the only subject attribute. */
static int
set_subject_cn(X509 *cert, const char *cn)
{
	X509_NAME *name = X509_get_subject_name(cert);

	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				       0) != 1)
		return pki_ssl_error("cannot set the subject name");
	return 0;
}

/*
 * Version 3, random serial, validity of days from now but never past the
 * issuer's own notAfter (a certificate that outlives its CA would only fail
 * later, at the far end), issuer's name (or own), the subject key pubkey
 * (NULL: the caller sets it).
 */
static X509 *
new_cert(X509 *issuer, const char *cn, EVP_PKEY *pubkey, unsigned days)
{
	X509 *cert = X509_new();

	if (cert == NULL) {
		or_error("out of memory");
		return NULL;
	}
	if (set_random_serial(cert) == -1 || set_subject_cn(cert, cn) == -1)
		goto fail;
	if (X509_set_version(cert, X509_VERSION_3) != 1 ||
	    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer)
					      : X509_get_subject_name(cert)) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -CLOCK_SKEW_S) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL) == NULL ||
	    (pubkey != NULL && X509_set_pubkey(cert, pubkey) != 1)) {
		pki_ssl_error("cannot build certificate");
		goto fail;
	}
	if (issuer != NULL &&
	    ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(issuer)) > 0 &&
	    X509_set1_notAfter(cert, X509_get0_notAfter(issuer)) != 1) {
		pki_ssl_error("cannot bound the certificate's validity");
		goto fail;
	}
	return cert;
fail:
	X509_free(cert);
	return NULL;
}

/* Signs with SHA-256 (or the key's own digest for EdDSA). */
static int
sign_cert(X509 *cert, EVP_PKEY *key)
{
	int id = EVP_PKEY_get_base_id(key);
	const EVP_MD *md = (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? NULL : EVP_sha256();

	return X509_sign(cert, key, md) > 0 ? 0 : pki_ssl_error("cannot sign certificate");
}

/* Appends a DNS, IP or URI name; type is GEN_DNS, GEN_IPADD or GEN_URI. */
static int
push_name(GENERAL_NAMES *gens, int type, const char *value)
{
	GENERAL_NAME *gen = GENERAL_NAME_new();
	ASN1_STRING *str = NULL;

	if (gen == NULL)
		return or_error("out of memory");
	if (type == GEN_IPADD) {
		str = a2i_IPADDRESS(value);
	} else if ((str = ASN1_IA5STRING_new()) != NULL &&
		   ASN1_STRING_set(str, value, (int)strlen(value)) != 1) {
		ASN1_STRING_free(str);
		str = NULL;
	}
	if (str == NULL) {
		GENERAL_NAME_free(gen);
		return or_error("cannot encode name '%s'", value);
	}
	GENERAL_NAME_set0_value(gen, type, str);
	if (sk_GENERAL_NAME_push(gens, gen) == 0) {
		GENERAL_NAME_free(gen);
		return or_error("out of memory");
	}
	return 0;
}

/* Adds the subjectAltName extension built from typed names. */
static int
add_sans(X509 *cert, GENERAL_NAMES *gens)
{
	if (X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
		return pki_ssl_error("cannot add subjectAltName");
	return 0;
}

/* A common name: 1 to 64 printable characters. */
static bool
valid_cn(const char *cn)
{
	size_t len = cn ? strlen(cn) : 0;

	if (len == 0 || len > 64)
		return false;
	for (const char *p = cn; *p != '\0'; p++)
		if (!isprint((unsigned char)*p))
			return false;
	return true;
}

/*
 * Sets the request's SubjectPublicKeyInfo as the certificate's subject key.
 * OpenSSL 3.0's X509_set_pubkey encodes the key and decodes it again, each
 * through a chain built from every provider's encoders or decoders: the
 * dearest part of signing. So the request's own SPKI is copied as it is
 * (algorithm, parameter, key bits) when its DER is the one key_id hashes,
 * that is when it is the key as OpenSSL writes it (key_id comes from the
 * request's decoded key, pki_csr_load); anything else is set from the
 * decoded key, as before.
 */
static int
set_request_key(X509 *cert, X509_REQ *req, const char *key_id)
{
	X509_PUBKEY *spki = X509_REQ_get_X509_PUBKEY(req);
	char id[PKI_KEY_ID_LEN + 1] = "";
	unsigned char *der = NULL;
	EVP_PKEY *key = NULL;
	int len, rc = -1;

	/* An id that cannot be made leaves id empty: the key is set from the decoded one. */
	if ((len = i2d_X509_PUBKEY(spki, &der)) <= 0 || pki_der_key_id(der, (size_t)len, id) == -1)
		id[0] = '\0';
	ERR_clear_error();
	if (strcmp(id, key_id) == 0 &&
	    (rc = pki_spki_copy(X509_get_X509_PUBKEY(cert), spki)) != 1) {
		if (rc == -1)
			or_error_prefix("cannot set the certificate's key");
		goto out;
	}
	/* pki_csr_load leaves the request's key undecoded (core/x509.h). */
	rc = -1;
	if (len > 0 &&
	    (key = pki_public_key_from_der(der, (size_t)len, "the request's key")) == NULL) {
		or_error_prefix("cannot set the certificate's key");
		goto out;
	}
	if (key == NULL || X509_set_pubkey(cert, key) != 1) {
		pki_ssl_error("cannot set the certificate's key");
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(key);
	OPENSSL_free(der);
	return rc;
}

/*
 * Issues an end-entity certificate under ca for pubkey, or (pubkey NULL) for
 * the key of req whose identity is key_id: CN cn, the SANs in gens, extended
 * key usage eku (a constant of this file), CA:FALSE. On failure out is left
 * empty.
 */
static int
issue_leaf(struct pki_ca *ca, const char *cn, EVP_PKEY *pubkey, X509_REQ *req, const char *key_id,
	   unsigned days, const char *eku, GENERAL_NAMES *gens, struct pki_issued *out)
{
	X509 *cert = new_cert(ca->cert, cn, pubkey, days);
	int rc = -1;

	if (cert == NULL || (pubkey == NULL && set_request_key(cert, req, key_id) == -1) ||
	    add_ext(cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") == -1 ||
	    add_ext(cert, ca->cert, NID_key_usage, "critical,digitalSignature") == -1 ||
	    add_ext(cert, ca->cert, NID_ext_key_usage, eku) == -1 ||
	    add_ext(cert, ca->cert, NID_subject_key_identifier, "hash") == -1 ||
	    add_ext(cert, ca->cert, NID_authority_key_identifier, "keyid:always") == -1 ||
	    add_sans(cert, gens) == -1 || sign_cert(cert, ca->key) == -1 ||
	    describe(cert, pubkey == NULL ? key_id : NULL, out) == -1) {
		pki_issued_free(out);
		goto out;
	}
	rc = 0;
out:
	X509_free(cert);
	return rc;
}

/* A self-signed root: CA:TRUE, keyCertSign and cRLSign, SKI/AKI. */
int
pki_ca_create(const char *common_name, unsigned days, char **cert_pem, struct secret *key_pem)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int rc = -1;

	*cert_pem = NULL;
	if (!valid_cn(common_name))
		return or_error("CA name must be 1 to 64 printable characters");
	if (days == 0 || days > PKI_MAX_DAYS_CA)
		return or_error("CA validity must be 1 to %d days, not %u", PKI_MAX_DAYS_CA, days);
	key = EVP_EC_gen("P-256");
	if (key == NULL)
		return pki_ssl_error("cannot generate the CA key");
	cert = new_cert(NULL, common_name, key, days);
	if (cert == NULL || add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") == -1 ||
	    add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") == -1 ||
	    add_ext(cert, cert, NID_subject_key_identifier, "hash") == -1 ||
	    add_ext(cert, cert, NID_authority_key_identifier, "keyid:always") == -1 ||
	    sign_cert(cert, key) == -1)
		goto out;
	if ((*cert_pem = pem_of_cert(cert)) == NULL)
		goto out;
	if (pem_of_key(key, key_pem) == -1) {
		free(*cert_pem);
		*cert_pem = NULL;
		goto out;
	}
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/* See ca.h: checks CA flags, validity and key match before use. */
int
pki_ca_load(const char *cert_pem, const char *key_pem, struct pki_ca **out)
{
	struct pki_ca *ca = NULL;
	BIO *bio = NULL;
	uint32_t flags;

	*out = NULL;
	ca = calloc(1, sizeof(*ca));
	if (ca == NULL)
		return or_error("out of memory");
	if ((ca->cert = pki_cert_from_pem(cert_pem, "CA certificate")) == NULL)
		goto fail;
	flags = X509_get_extension_flags(ca->cert);
	if (!(flags & EXFLAG_CA) ||
	    ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca->cert) & KU_KEY_CERT_SIGN))) {
		or_error("CA certificate: not a CA (needs basicConstraints CA:TRUE and "
			 "keyCertSign)");
		goto fail;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(ca->cert)) >= 0 ||
	    X509_cmp_current_time(X509_get0_notAfter(ca->cert)) <= 0) {
		or_error("CA certificate: expired or not yet valid");
		goto fail;
	}
	if ((bio = pki_pem_source(key_pem, "CA key")) == NULL)
		goto fail;
	ca->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (ca->key == NULL) {
		pki_ssl_error("CA key: not a PEM private key");
		goto fail;
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		or_error("CA key does not belong to the CA certificate");
		goto fail;
	}
	if ((ca->cert_pem = pem_of_cert(ca->cert)) == NULL)
		goto fail;
	BIO_free(bio);
	*out = ca;
	return 0;
fail:
	BIO_free(bio);
	pki_ca_free(ca);
	return -1;
}

/* Frees the CA; the key is freed by OpenSSL (cleansed). */
void
pki_ca_free(struct pki_ca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca->cert_pem);
	free(ca);
}

/* The CA certificate as loaded. */
const char *
pki_ca_cert_pem(const struct pki_ca *ca)
{
	return ca->cert_pem;
}

/* See ca.h: names checked and typed before anything is generated. */
int
pki_issue_server(struct pki_ca *ca, const char *common_name, const char *const *names,
		 size_t n_names, unsigned days, struct pki_issued *out, struct secret *key_pem)
{
	GENERAL_NAMES *gens = NULL;
	EVP_PKEY *key = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!valid_cn(common_name))
		return or_error("server name must be 1 to 64 printable characters");
	if (days == 0 || days > PKI_MAX_DAYS_LEAF)
		return or_error("server certificate validity must be 1 to %d days, not %u",
				PKI_MAX_DAYS_LEAF, days);
	if (n_names == 0)
		return or_error("a server certificate needs at least one name or address");
	if ((gens = sk_GENERAL_NAME_new_null()) == NULL)
		return or_error("out of memory");
	for (size_t i = 0; i < n_names; i++) {
		bool ip = pki_is_ip_literal(names[i]);

		if (!ip && !pki_valid_dns_name(names[i])) {
			or_error("'%s' is neither an IP address nor a DNS name", names[i]);
			goto out;
		}
		if (push_name(gens, ip ? GEN_IPADD : GEN_DNS, names[i]) == -1)
			goto out;
	}
	if ((key = EVP_EC_gen("P-256")) == NULL) {
		pki_ssl_error("cannot generate the server key");
		goto out;
	}
	if (issue_leaf(ca, common_name, key, NULL, NULL, days, "serverAuth", gens, out) == -1 ||
	    pem_of_key(key, key_pem) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		pki_issued_free(out);
	GENERAL_NAMES_free(gens);
	EVP_PKEY_free(key);
	return rc;
}

/* A router certificate's name and validity, checked before anything is parsed or signed. */
static int
router_terms_check(const char *router_name, unsigned days)
{
	if (!pki_valid_router_name(router_name))
		return or_error("router name must be 1 to 63 of A-Z a-z 0-9 . _ - starting with a "
				"letter or digit");
	if (days == 0 || days > PKI_MAX_DAYS_LEAF)
		return or_error("router certificate validity must be 1 to %d days, not %u",
				PKI_MAX_DAYS_LEAF, days);
	return 0;
}

/* See ca.h: only the request's key is used. */
int
pki_sign_router_req(struct pki_ca *ca, X509_REQ *req, const char *key_id, const char *router_name,
		    unsigned days, struct pki_issued *out)
{
	char uri[sizeof(PKI_PEERING_URI_PREFIX) + 64];
	GENERAL_NAMES *gens = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (router_terms_check(router_name, days) == -1)
		return -1;
	snprintf(uri, sizeof(uri), "%s%s", PKI_PEERING_URI_PREFIX, router_name);
	if ((gens = sk_GENERAL_NAME_new_null()) == NULL)
		return or_error("out of memory");
	if (push_name(gens, GEN_URI, uri) == -1 ||
	    issue_leaf(ca, router_name, NULL, req, key_id, days, "serverAuth,clientAuth", gens,
		       out) == -1)
		goto out;
	rc = 0;
out:
	GENERAL_NAMES_free(gens);
	return rc;
}

/* See ca.h: the CSR loaded and checked, then signed. */
int
pki_sign_router_csr(struct pki_ca *ca, const char *csr_pem, const char *router_name, unsigned days,
		    struct pki_issued *out)
{
	char key_id[PKI_KEY_ID_LEN + 1];
	X509_REQ *req = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (router_terms_check(router_name, days) == -1 ||
	    pki_csr_load(csr_pem, NULL, &req, key_id) == -1)
		return -1;
	rc = pki_sign_router_req(ca, req, key_id, router_name, days, out);
	X509_REQ_free(req);
	return rc;
}

/* Frees what pki_issue_server or pki_sign_router_csr filled. */
void
pki_issued_free(struct pki_issued *issued)
{
	free(issued->cert_pem);
	issued->cert_pem = NULL;
}
