/*
 * Certificates for the conductor, all through OpenSSL's X.509 API. The text
 * of every extension value we build is a constant of this file; names that
 * come from outside (router names, server names) go into typed GENERAL_NAME
 * structures after validation, never into a configuration string.
 */
#include "core/x509.h"

#include "core/encoding.h"
#include "core/error.h"

#include <ctype.h>
#include <limits.h>
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

/* Adds the text of OpenSSL's last error to the message, when there is one. */
static int
ssl_error(const char *what)
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
static BIO *
pem_source(const char *pem, const char *what)
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
static X509 *
cert_from_pem(const char *pem, const char *what)
{
	BIO *bio = pem_source(pem, what);
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
		ssl_error("cannot write certificate PEM");
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
		ssl_error("cannot write private key PEM");
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
 * Hex SHA-256 of the DER SubjectPublicKeyInfo: the key's identity, the same for a CSR and its
 * certificate.
 */
static int
spki_sha256(EVP_PKEY *key, char out[PKI_KEY_ID_LEN + 1])
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int len;

	len = i2d_PUBKEY(key, &der);
	if (len <= 0)
		return ssl_error("cannot encode public key");
	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1) {
		OPENSSL_free(der);
		return ssl_error("SHA-256 failed");
	}
	OPENSSL_free(der);
	hex_encode(md, mdlen, out);
	return 0;
}

/* An ASN.1 time as seconds since the epoch, or -1. */
static time_t
asn1_time_t(const ASN1_TIME *t)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return (time_t)-1;
	return timegm(&tm);
}

/* Fills out's serial, fingerprint, key identity and validity from cert. */
static int
describe(X509 *cert, struct pki_issued *out)
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
		return ssl_error("cannot read certificate serial");
	}
	for (i = 0; hex[i] != '\0'; i++)
		out->serial[i] = (char)tolower((unsigned char)hex[i]);
	out->serial[i] = '\0';
	OPENSSL_free(hex);
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1)
		return ssl_error("cannot fingerprint certificate");
	hex_encode(md, mdlen, out->sha256);
	if (spki_sha256(X509_get0_pubkey(cert), out->key_id) == -1)
		return -1;
	out->not_before = asn1_time_t(X509_get0_notBefore(cert));
	out->not_after = asn1_time_t(X509_get0_notAfter(cert));
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
		return ssl_error("no random bytes for the serial");
	/* Positive (top bit clear) and always 20 bytes long (next bit set). */
	buf[0] = (unsigned char)((buf[0] & 0x3f) | 0x40);
	bn = BN_bin2bn(buf, sizeof(buf), NULL);
	if (bn == NULL || (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    X509_set_serialNumber(cert, serial) != 1) {
		ssl_error("cannot set serial");
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
		return ssl_error("cannot build certificate extension");
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : ssl_error("cannot add certificate extension");
}

/* Sets CN as the only subject attribute. */
static int
set_subject_cn(X509 *cert, const char *cn)
{
	X509_NAME *name = X509_get_subject_name(cert);

	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				       0) != 1)
		return ssl_error("cannot set the subject name");
	return 0;
}

/*
 * Version 3, random serial, validity of days from now but never past the
 * issuer's own notAfter (a certificate that outlives its CA would only fail
 * later, at the far end), issuer's name (or own).
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
	    X509_set_pubkey(cert, pubkey) != 1) {
		ssl_error("cannot build certificate");
		goto fail;
	}
	if (issuer != NULL &&
	    ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(issuer)) > 0 &&
	    X509_set1_notAfter(cert, X509_get0_notAfter(issuer)) != 1) {
		ssl_error("cannot bound the certificate's validity");
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

	return X509_sign(cert, key, md) > 0 ? 0 : ssl_error("cannot sign certificate");
}

/* See pki.h. */
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
		return ssl_error("cannot add subjectAltName");
	return 0;
}

/* True for an IPv4 or IPv6 literal. */
static bool
is_ip_literal(const char *name)
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);

	ERR_clear_error();
	ASN1_OCTET_STRING_free(ip);
	return ip != NULL;
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
 * Issues an end-entity certificate for pubkey under ca: CN cn, the SANs in
 * gens, extended key usage eku (a constant of this file), CA:FALSE. On
 * failure out is left empty.
 */
static int
issue_leaf(struct pki_ca *ca, const char *cn, EVP_PKEY *pubkey, unsigned days, const char *eku,
	   GENERAL_NAMES *gens, struct pki_issued *out)
{
	X509 *cert = new_cert(ca->cert, cn, pubkey, days);
	int rc = -1;

	if (cert == NULL ||
	    add_ext(cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") == -1 ||
	    add_ext(cert, ca->cert, NID_key_usage, "critical,digitalSignature") == -1 ||
	    add_ext(cert, ca->cert, NID_ext_key_usage, eku) == -1 ||
	    add_ext(cert, ca->cert, NID_subject_key_identifier, "hash") == -1 ||
	    add_ext(cert, ca->cert, NID_authority_key_identifier, "keyid:always") == -1 ||
	    add_sans(cert, gens) == -1 || sign_cert(cert, ca->key) == -1 ||
	    describe(cert, out) == -1) {
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
		return ssl_error("cannot generate the CA key");
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

/* See pki.h: checks CA flags, validity and key match before use. */
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
	if ((ca->cert = cert_from_pem(cert_pem, "CA certificate")) == NULL)
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
	if ((bio = pem_source(key_pem, "CA key")) == NULL)
		goto fail;
	ca->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (ca->key == NULL) {
		ssl_error("CA key: not a PEM private key");
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

/* See pki.h: names checked and typed before anything is generated. */
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
		bool ip = is_ip_literal(names[i]);

		if (!ip && !pki_valid_dns_name(names[i])) {
			or_error("'%s' is neither an IP address nor a DNS name", names[i]);
			goto out;
		}
		if (push_name(gens, ip ? GEN_IPADD : GEN_DNS, names[i]) == -1)
			goto out;
	}
	if ((key = EVP_EC_gen("P-256")) == NULL) {
		ssl_error("cannot generate the server key");
		goto out;
	}
	if (issue_leaf(ca, common_name, key, days, "serverAuth", gens, out) == -1 ||
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

/* Parses and checks a CSR; the caller frees *req. */
static int
load_csr(const char *csr_pem, const char *required_uri, X509_REQ **req_out,
	 char key_id[PKI_KEY_ID_LEN + 1])
{
	BIO *bio = pem_source(csr_pem, "CSR");
	X509_REQ *req = NULL;
	EVP_PKEY *key;

	*req_out = NULL;
	if (bio == NULL)
		return -1;
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (req == NULL)
		return ssl_error("CSR: not a PEM certificate request");
	key = X509_REQ_get0_pubkey(req);
	if (key == NULL) {
		X509_REQ_free(req);
		return ssl_error("CSR: no readable public key");
	}
	if (X509_REQ_verify(req, key) != 1) {
		ERR_clear_error();
		X509_REQ_free(req);
		return or_error("CSR: signature does not verify (no proof of key possession)");
	}
	if (check_key_strength(key) == -1 ||
	    (required_uri != NULL && !csr_has_uri(req, required_uri) &&
	     or_error("CSR: does not carry the required URI %s", required_uri)) ||
	    spki_sha256(key, key_id) == -1) {
		X509_REQ_free(req);
		return -1;
	}
	*req_out = req;
	return 0;
}

/* See pki.h. */
int
pki_csr_check(const char *csr_pem, const char *required_uri, char key_id[PKI_KEY_ID_LEN + 1])
{
	X509_REQ *req;

	if (load_csr(csr_pem, required_uri, &req, key_id) == -1)
		return -1;
	X509_REQ_free(req);
	return 0;
}

/* See pki.h. */
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

/* See pki.h: only the CSR's key is used. */
int
pki_sign_router_csr(struct pki_ca *ca, const char *csr_pem, const char *router_name, unsigned days,
		    struct pki_issued *out)
{
	char key_id[PKI_KEY_ID_LEN + 1], uri[sizeof(PKI_PEERING_URI_PREFIX) + 64];
	GENERAL_NAMES *gens = NULL;
	X509_REQ *req = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!pki_valid_router_name(router_name))
		return or_error("router name must be 1 to 63 of A-Z a-z 0-9 . _ - starting with a "
				"letter or digit");
	if (days == 0 || days > PKI_MAX_DAYS_LEAF)
		return or_error("router certificate validity must be 1 to %d days, not %u",
				PKI_MAX_DAYS_LEAF, days);
	if (load_csr(csr_pem, NULL, &req, key_id) == -1)
		return -1;
	snprintf(uri, sizeof(uri), "%s%s", PKI_PEERING_URI_PREFIX, router_name);
	if ((gens = sk_GENERAL_NAME_new_null()) == NULL) {
		or_error("out of memory");
		goto out;
	}
	if (push_name(gens, GEN_URI, uri) == -1)
		goto out;
	if (issue_leaf(ca, router_name, X509_REQ_get0_pubkey(req), days, "serverAuth,clientAuth",
		       gens, out) == -1)
		goto out;
	rc = 0;
out:
	GENERAL_NAMES_free(gens);
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

/* See pki.h. */
int
pki_cert_key_id(const char *cert_pem, char key_id[PKI_KEY_ID_LEN + 1])
{
	X509 *cert = cert_from_pem(cert_pem, "certificate");
	int rc;

	if (cert == NULL)
		return -1;
	rc = spki_sha256(X509_get0_pubkey(cert), key_id);
	X509_free(cert);
	return rc;
}

/* See pki.h. */
int
pki_cert_serves(const char *cert_pem, const char *const *names, size_t n_names, unsigned min_days,
		bool *serves, time_t *not_after)
{
	X509 *cert = cert_from_pem(cert_pem, "certificate");
	time_t now = time(NULL);
	int ok;

	*serves = false;
	if (cert == NULL)
		return -1;
	*not_after = asn1_time_t(X509_get0_notAfter(cert));
	ok = *not_after != (time_t)-1 && *not_after - now > (time_t)min_days * 86400;
	for (size_t i = 0; ok && i < n_names; i++) {
		if (is_ip_literal(names[i]))
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
	BIO *bio = pem_source(pem, what);
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

/* See pki.h: OpenSSL's verifier with only the given anchors trusted. */
int
pki_verify_chain(const char *cert_pem, const char *anchor_pem)
{
	STACK_OF(X509) *chain = NULL, *anchors = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	X509 *leaf;
	int rc = -1;

	if ((chain = certs_from_pem(cert_pem, "certificate")) == NULL ||
	    (anchors = certs_from_pem(anchor_pem, "trust anchor")) == NULL)
		goto out;
	if ((store = X509_STORE_new()) == NULL || (ctx = X509_STORE_CTX_new()) == NULL) {
		or_error("out of memory");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(anchors); i++)
		X509_STORE_add_cert(store, sk_X509_value(anchors, i));
	leaf = sk_X509_shift(chain);
	if (X509_STORE_CTX_init(ctx, store, leaf, chain) != 1) {
		X509_free(leaf);
		ssl_error("cannot set up certificate verification");
		goto out;
	}
	if (X509_verify_cert(ctx) == 1)
		rc = 0;
	else
		or_error("certificate does not verify: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	X509_free(leaf);
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(anchors, X509_free);
	return rc;
}

/* See pki.h. Trusts nothing in pem: every block is parsed, the count bounded. */
int
pki_check_certificates(const char *pem, size_t len, size_t max_certs, const char *what)
{
	BIO *bio = NULL;
	X509 *cert;
	size_t n = 0;
	unsigned long e;
	int rc = -1;

	if (len == 0)
		return or_error("%s is empty", what);
	if (len > INT_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return or_error("out of memory");
	ERR_clear_error();
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		X509_free(cert);
		if (++n > max_certs) {
			or_error("%s holds more than %zu certificates", what, max_certs);
			goto out;
		}
	}
	/* The loop ends at the end of the text (no start line) or on a bad block. */
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		or_error("%s holds a PEM block that is not a valid certificate", what);
		goto out;
	}
	if (n == 0) {
		or_error("%s holds no PEM certificate", what);
		goto out;
	}
	rc = 0;
out:
	/* The read past the last certificate always fails: not this thread's next error. */
	ERR_clear_error();
	BIO_free(bio);
	return rc;
}
