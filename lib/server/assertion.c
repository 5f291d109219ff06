/*
 * Onboarding assertions: CMS SignedData over a small JSON payload, made and
 * checked by OpenSSL. The signer's certificate is not put into the CMS: the
 * verifier pins the one certificate it trusts and looks for the signer there
 * only (CMS_NOINTERN), so a certificate smuggled into an assertion is never
 * used. See assertion.h for the format.
 */
#include "server/assertion.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/json.h"
#include "core/x509.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#define ASSERTION_TYPE "onramp-onboarding-assertion"
#define PAYLOAD_MAX 2048
#define CLOCK_SKEW_S 300

struct assertion_signer {
	X509 *cert;
	EVP_PKEY *key;
};

/* Whether text is exactly 64 lowercase hex digits (a SHA-256). */
static bool
is_sha256_hex(const char *text)
{
	size_t n = strlen(text);

	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
			return false;
	return true;
}

/* Whether a certificate is within its validity at now. */
static bool
cert_current(X509 *cert, time_t now)
{
	return X509_cmp_time(X509_get0_notBefore(cert), &now) < 0 &&
	       X509_cmp_time(X509_get0_notAfter(cert), &now) > 0;
}

/* See assertion.h: both PEM texts parsed, the key checked against the certificate. */
int
assertion_signer_load(const char *cert_pem, const char *key_pem, struct assertion_signer **out)
{
	struct assertion_signer *s = NULL;
	BIO *bio = NULL;
	int rc = -1;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return or_error("out of memory");
	if ((s->cert = pki_cert_from_pem(cert_pem, "assertion certificate")) == NULL)
		goto out;
	if ((bio = pki_pem_source(key_pem, "assertion key")) == NULL)
		goto out;
	if ((s->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		pki_ssl_error("assertion key: not a PEM private key");
		goto out;
	}
	if (X509_check_private_key(s->cert, s->key) != 1) {
		pki_ssl_error("assertion key: not the assertion certificate's key");
		goto out;
	}
	if (!cert_current(s->cert, time(NULL))) {
		or_error("the assertion certificate is expired or not yet valid");
		goto out;
	}
	*out = s;
	s = NULL;
	rc = 0;
out:
	BIO_free(bio);
	assertion_signer_free(s);
	return rc;
}

/* Frees a signer (the key is freed by OpenSSL, which clears it). */
void
assertion_signer_free(struct assertion_signer *s)
{
	if (s == NULL)
		return;
	X509_free(s->cert);
	EVP_PKEY_free(s->key);
	free(s);
}

/* The payload text of claims (malloc'd). */
static char *
payload_of(const struct assertion_claims *c)
{
	json_t *doc = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "v", 1, "type",
				ASSERTION_TYPE, "serial", c->serial, "asset_id", c->asset_id,
				"key_sha256", c->key_sha256, "conductor", c->conductor, "issued",
				(json_int_t)c->issued, "expires", (json_int_t)c->expires);
	char *text = doc ? json_dump_compact(doc) : NULL;

	json_decref(doc);
	return text;
}

/* See assertion.h: CMS_sign with the payload embedded, no certificates, DER, base64. */
int
assertion_sign(const struct assertion_signer *s, const struct assertion_claims *claims, char **out)
{
	CMS_ContentInfo *cms = NULL;
	unsigned char *der = NULL;
	char *payload = NULL;
	BIO *in = NULL;
	int len, rc = -1;

	*out = NULL;
	if (!is_sha256_hex(claims->key_sha256) || !is_sha256_hex(claims->conductor) ||
	    claims->serial[0] == '\0' || claims->asset_id[0] == '\0' ||
	    claims->expires <= claims->issued)
		return or_error("assertion: incomplete claims");
	if ((payload = payload_of(claims)) == NULL)
		return or_error("out of memory");
	if ((in = BIO_new_mem_buf(payload, (int)strlen(payload))) == NULL ||
	    (cms = CMS_sign(s->cert, s->key, NULL, in,
			    CMS_BINARY | CMS_NOCERTS | CMS_NOSMIMECAP)) == NULL) {
		pki_ssl_error("assertion: signing failed");
		goto out;
	}
	if ((len = i2d_CMS_ContentInfo(cms, &der)) <= 0) {
		pki_ssl_error("assertion: encoding failed");
		goto out;
	}
	if ((*out = base64_encode(der, (size_t)len)) == NULL) {
		or_error("out of memory");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	free(payload);
	return rc;
}

/* Copies a string field of at most max bytes into out (max + 1 bytes). */
static int
copy_field(json_t *doc, const char *key, size_t max, char *out)
{
	const char *v = NULL;

	if (json_get_string(doc, key, true, max, &v) == -1)
		return -1;
	if (v[0] == '\0')
		return or_error("field '%s' is empty", key);
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* The payload parsed strictly into claims. */
static int
parse_payload(const char *text, size_t len, struct assertion_claims *c)
{
	const char *type = NULL;
	json_int_t v = 0, issued = 0, expires = 0;
	json_t *doc = NULL;
	int rc = -1;

	if (json_parse_object(text, len, PAYLOAD_MAX, &doc) == -1)
		return -1;
	if (json_get_int(doc, "v", true, 1, 1, &v) == -1 ||
	    json_get_string(doc, "type", true, 64, &type) == -1 ||
	    copy_field(doc, "serial", ASSERTION_SERIAL_MAX, c->serial) == -1 ||
	    copy_field(doc, "asset_id", ASSERTION_ASSET_MAX, c->asset_id) == -1 ||
	    copy_field(doc, "key_sha256", 64, c->key_sha256) == -1 ||
	    copy_field(doc, "conductor", 64, c->conductor) == -1 ||
	    json_get_int(doc, "issued", true, 0, INT64_MAX, &issued) == -1 ||
	    json_get_int(doc, "expires", true, 0, INT64_MAX, &expires) == -1)
		goto out;
	if (strcmp(type, ASSERTION_TYPE) != 0) {
		or_error("it is not an onboarding assertion (type '%.64s')", type);
		goto out;
	}
	if (!is_sha256_hex(c->key_sha256) || !is_sha256_hex(c->conductor)) {
		or_error("key_sha256 and conductor must be 64 lowercase hex digits");
		goto out;
	}
	c->issued = (time_t)issued;
	c->expires = (time_t)expires;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/* See assertion.h: the signer is looked for in the pinned certificate only. */
int
assertion_verify(const char *trusted_cert_pem, const char *text, time_t now,
		 struct assertion_claims *out)
{
	struct assertion_claims c = {0};
	const unsigned char *p;
	CMS_ContentInfo *cms = NULL;
	STACK_OF(X509) *certs = NULL;
	X509 *trusted = NULL;
	uint8_t *der = NULL;
	BIO *content = NULL;
	char *payload = NULL;
	size_t der_len = 0;
	long payload_len;
	int rc = -1;

	if (strlen(text) > ASSERTION_TEXT_MAX)
		return or_error("assertion: longer than %d bytes", ASSERTION_TEXT_MAX);
	if ((trusted = pki_cert_from_pem(trusted_cert_pem, "assertion certificate")) == NULL)
		return -1;
	if (!cert_current(trusted, now)) {
		or_error("assertion: the trusted assertion certificate is expired or not yet "
			 "valid");
		goto out;
	}
	if (base64_decode(text, "assertion", &der, &der_len) == -1)
		goto out;
	p = der;
	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_len)) == NULL || p != der + der_len) {
		pki_ssl_error("assertion: not a DER CMS structure");
		goto out;
	}
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
	    OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data ||
	    sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1) {
		or_error("assertion: not CMS SignedData with one signer over data");
		goto out;
	}
	if ((certs = sk_X509_new_null()) == NULL || !sk_X509_push(certs, trusted) ||
	    (content = BIO_new(BIO_s_mem())) == NULL) {
		or_error("out of memory");
		goto out;
	}
	if (CMS_verify(cms, certs, NULL, NULL, content,
		       CMS_BINARY | CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
		pki_ssl_error("assertion: the signature is not the trusted assertion key's");
		goto out;
	}
	payload_len = BIO_get_mem_data(content, &payload);
	if (payload_len <= 0 || payload_len > PAYLOAD_MAX) {
		or_error("assertion: payload of %ld bytes", payload_len);
		goto out;
	}
	if (parse_payload(payload, (size_t)payload_len, &c) == -1) {
		or_error_prefix("assertion payload");
		goto out;
	}
	if (c.expires <= now) {
		or_error("assertion: expired (issued %lld, expired %lld, now %lld)",
			 (long long)c.issued, (long long)c.expires, (long long)now);
		goto out;
	}
	if (c.issued > now + CLOCK_SKEW_S || c.expires <= c.issued) {
		or_error("assertion: issued in the future or with its expiry before its issue");
		goto out;
	}
	*out = c;
	rc = 0;
out:
	BIO_free(content);
	sk_X509_free(certs);
	X509_free(trusted);
	CMS_ContentInfo_free(cms);
	free(der);
	return rc;
}

/* See assertion.h. */
int
assertion_match(const struct assertion_claims *c, const char *asset_id, const char *key_sha256,
		const char *conductor)
{
	if (strcmp(c->asset_id, asset_id) != 0)
		return or_error("assertion: it is for asset ID '%s', not '%s'", c->asset_id,
				asset_id);
	if (strcmp(c->key_sha256, key_sha256) != 0)
		return or_error("assertion: it binds another device key (%.16s..., not %.16s...)",
				c->key_sha256, key_sha256);
	if (strcmp(c->conductor, conductor) != 0)
		return or_error("assertion: it is for another conductor (%.16s..., this is "
				"%.16s...)",
				c->conductor, conductor);
	return 0;
}
