/*
 * The certificate key and its CSRs (see certkey.h). The request is built by
 * OpenSSL; only the signature differs: OpenSSL signs with a software key,
 * the TPM signs the digest of the to-be-signed part with its own key. The
 * finished CSR is verified against the public key before it is handed out.
 * Trusts: nothing in the key files beyond what OpenSSL and the TPM check.
 */
#include "device/certkey.h"

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/x509.h"
#include "device/tpm.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#define CN_MAX 64
#define URI_MAX 1024
#define KEY_FILE_MAX 16384

struct certkey {
	struct tpm *tpm;       /* NULL: software */
	struct tpm_blob *blob; /* TPM only */
	EVP_PKEY *pkey;	       /* software: the key pair; TPM: the public key only */
	X509_PUBKEY *spki;     /* pkey's SubjectPublicKeyInfo, made by the first CSR */
};

/* Copies a memory BIO's contents into a malloc'd string. */
static int
bio_to_string(BIO *bio, char **out)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);

	*out = len >= 0 ? malloc((size_t)len + 1) : NULL;
	if (*out == NULL)
		return or_error("out of memory");
	memcpy(*out, data, (size_t)len);
	(*out)[len] = '\0';
	return 0;
}

/* Refuses a key that is not EC P-256. */
static int
check_p256(EVP_PKEY *pkey, const char *path)
{
	char group[32] = "";

	if (!EVP_PKEY_is_a(pkey, "EC") ||
	    !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					    NULL) ||
	    strcmp(group, "prime256v1") != 0)
		return or_error("%s: not an EC P-256 key", path);
	return 0;
}

/* Reads the software key PEM, or generates one and writes it 0600; the PEM text is wiped after. */
static int
open_software(struct certkey *k, const char *path)
{
	uint8_t *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	char *text = NULL;
	int exists, ret = -1;

	if ((exists = file_exists(path)) == -1)
		return -1;
	if (exists) {
		if (file_read_all(path, KEY_FILE_MAX, &pem, &len) == -1)
			return -1;
		bio = BIO_new_mem_buf(pem, (int)len);
		k->pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
		if (k->pkey == NULL) {
			or_error("%s: not a PEM private key", path);
			goto out;
		}
		ret = check_p256(k->pkey, path);
		goto out;
	}
	k->pkey = EVP_EC_gen("P-256");
	bio = BIO_new(BIO_s_mem());
	if (k->pkey == NULL || bio == NULL ||
	    !PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) ||
	    bio_to_string(bio, &text) == -1) {
		or_error("cannot generate an EC P-256 key");
		goto out;
	}
	ret = file_write_atomic(path, text, strlen(text), 0600);
	if (ret == 0)
		log_info("generated the certificate key (software) in %s", path);
out:
	if (text != NULL) {
		secure_zero(text, strlen(text));
		free(text);
	}
	if (pem != NULL) {
		secure_zero(pem, len);
		free(pem);
	}
	BIO_free(bio);
	return ret;
}

/*
 * Reads the TPM key blob, or has the TPM generate a key and keeps its blob;
 * the public key is taken from the blob.
 */
static int
open_tpm(struct certkey *k, const char *path)
{
	const char *b64 = NULL;
	char *blob_b64 = NULL;
	json_int_t version = 0;
	json_t *doc = NULL;
	int exists, ret = -1;

	if ((exists = file_exists(path)) == -1)
		return -1;
	k->blob = calloc(1, sizeof(*k->blob));
	if (k->blob == NULL)
		return or_error("out of memory");
	if (exists) {
		if (json_load_object_file(path, KEY_FILE_MAX, &doc) == -1 ||
		    json_get_int(doc, "version", true, 1, 1, &version) == -1 ||
		    json_get_string(doc, "blob", true, 2 * TPM_BLOB_MAX, &b64) == -1 ||
		    tpm_blob_from_base64(b64, "field 'blob'", k->blob) == -1) {
			or_error_prefix("%s: damaged key file", path);
			goto out;
		}
	} else {
		if (tpm_ec_key_create(k->tpm, k->blob) == -1)
			goto out;
		blob_b64 = tpm_blob_to_base64(k->blob);
		doc = blob_b64 != NULL ? json_pack("{s:i, s:s, s:s}", "version", 1, "kind", "tpm",
						   "blob", blob_b64)
				       : NULL;
		if (doc == NULL) {
			or_error("out of memory");
			goto out;
		}
		if (json_write_atomic(path, doc, 0600) == -1)
			goto out;
		log_info("generated the certificate key in the TPM; its blob is in %s", path);
	}
	ret = tpm_ec_public(k->blob, (void **)&k->pkey);
out:
	free(blob_b64);
	json_decref(doc);
	return ret;
}

/*
 * Opens the certificate key of the configured kind; a key of the other kind is
 * refused rather than replaced.
 */
int
certkey_open_or_create(const char *state_dir, struct tpm *tpm, struct certkey **out)
{
	char tpm_path[PATH_MAX], sw_path[PATH_MAX];
	struct certkey *k;
	int other, ret = -1;

	*out = NULL;
	if (file_path(tpm_path, sizeof(tpm_path), state_dir, CERTKEY_TPM_FILE) == -1 ||
	    file_path(sw_path, sizeof(sw_path), state_dir, CERTKEY_SOFTWARE_FILE) == -1 ||
	    file_ensure_dir(state_dir, 0700) == -1)
		return -1;
	/* A key of the other kind means the configuration changed: never make a second key. */
	other = file_exists(tpm != NULL ? sw_path : tpm_path);
	if (other != 0)
		return other == -1 ? -1
				   : or_error("%s: the certificate key is %s, but %s",
					      tpm != NULL ? sw_path : tpm_path,
					      tpm != NULL ? "a software key" : "in a TPM",
					      tpm != NULL ? "a TPM was configured"
							  : "no TPM was configured");
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return or_error("out of memory");
	k->tpm = tpm;
	ret = tpm != NULL ? open_tpm(k, tpm_path) : open_software(k, sw_path);
	if (ret == -1) {
		certkey_close(k);
		return or_error_prefix("certificate key");
	}
	*out = k;
	return 0;
}

/* Frees the key; NULL is fine. */
void
certkey_close(struct certkey *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	X509_PUBKEY_free(k->spki);
	free(k->blob);
	free(k);
}

/* Whether the key lives in a TPM. */
bool
certkey_in_tpm(const struct certkey *k)
{
	return k->tpm != NULL;
}

/* A URI SAN: an absolute URI of printable ASCII without spaces. */
static int
check_uri(const char *uri)
{
	size_t len = strlen(uri), scheme = 0;

	if (len == 0 || len > URI_MAX)
		return or_error("a URI SAN must have 1 to %d characters", URI_MAX);
	while (isalnum((unsigned char)uri[scheme]) ||
	       (scheme > 0 && uri[scheme] != '\0' && strchr("+.-", uri[scheme])))
		scheme++;
	if (scheme == 0 || !isalpha((unsigned char)uri[0]) || uri[scheme] != ':' ||
	    uri[scheme + 1] == '\0')
		return or_error("URI SAN '%.80s' is not an absolute URI (scheme:rest)", uri);
	for (size_t i = 0; i < len; i++)
		if (uri[i] <= ' ' || uri[i] > '~')
			return or_error("URI SAN '%.80s' has a space or a non-ASCII character",
					uri);
	return 0;
}

/* Adds a subjectAltName extension of URIs to the request. */
static int
add_sans(X509_REQ *req, const char *const *uris, size_t n)
{
	GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext = NULL;
	int ret = -1;

	if (names == NULL || exts == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		GENERAL_NAME *gn = GENERAL_NAME_new();
		ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
		if (gn == NULL || ia5 == NULL || !ASN1_STRING_set(ia5, uris[i], -1)) {
			GENERAL_NAME_free(gn);
			ASN1_IA5STRING_free(ia5);
			goto oom;
		}
		GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
		if (!sk_GENERAL_NAME_push(names, gn)) {
			GENERAL_NAME_free(gn);
			goto oom;
		}
	}
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, names);
	if (ext == NULL)
		goto oom;
	if (!sk_X509_EXTENSION_push(exts, ext)) {
		X509_EXTENSION_free(ext);
		goto oom;
	}
	if (!X509_REQ_add_extensions(req, exts))
		goto oom;
	ret = 0;
	goto out;
oom:
	or_error("cannot add the subjectAltName extension");
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	sk_GENERAL_NAME_pop_free(names, GENERAL_NAME_free);
	return ret;
}

/* ECDSA-SHA256 over data: in the TPM (digest signed there) or by OpenSSL. */
int
certkey_sign(struct certkey *k, const void *data, size_t len, uint8_t **sig_der, size_t *sig_len)
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	EVP_MD_CTX *ctx = NULL;
	size_t n = 0;
	int ret = -1;

	*sig_der = NULL;
	*sig_len = 0;
	if (k->tpm != NULL) {
		SHA256(data, len, digest);
		return tpm_ec_sign(k->tpm, k->blob, digest, sig_der, sig_len);
	}
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL ||
	    EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, k->pkey, NULL) != 1 ||
	    EVP_DigestSign(ctx, NULL, &n, data, len) != 1 || (*sig_der = malloc(n)) == NULL ||
	    EVP_DigestSign(ctx, *sig_der, &n, data, len) != 1) {
		free(*sig_der);
		*sig_der = NULL;
		or_error("ECDSA signing failed");
		goto out;
	}
	*sig_len = n;
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* Signs the request in the TPM: ecdsa-with-SHA256 over the DER of its to-be-signed part. */
static int
sign_in_tpm(struct certkey *k, X509_REQ *req)
{
	X509_ALGOR *alg = X509_ALGOR_new();
	ASN1_BIT_STRING *bits = NULL;
	unsigned char *tbs = NULL;
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	int tbs_len, ret = -1;

	if (alg == NULL ||
	    !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL) ||
	    !X509_REQ_set1_signature_algo(req, alg)) {
		or_error("cannot set the CSR's signature algorithm");
		goto out;
	}
	tbs_len = i2d_re_X509_REQ_tbs(req, &tbs);
	if (tbs_len <= 0) {
		or_error("cannot encode the CSR");
		goto out;
	}
	if (certkey_sign(k, tbs, (size_t)tbs_len, &sig, &sig_len) == -1)
		goto out;
	bits = ASN1_BIT_STRING_new();
	if (bits == NULL || !ASN1_BIT_STRING_set(bits, sig, (int)sig_len)) {
		or_error("out of memory");
		goto out;
	}
	/* Say "no unused bits" explicitly, or the encoder drops trailing zero bytes. */
	bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	X509_REQ_set0_signature(req, bits);
	bits = NULL;
	ret = 0;
out:
	X509_ALGOR_free(alg);
	ASN1_BIT_STRING_free(bits);
	OPENSSL_free(tbs);
	free(sig);
	return ret;
}

/*
 * Sets the key into a new CSR. OpenSSL 3.0's X509_REQ_set_pubkey encodes the
 * key and decodes it again, each through a chain built from every provider's
 * encoders or decoders; a router makes a CSR for each of its certificates
 * with the same key. So the key's SubjectPublicKeyInfo is made once (the
 * first CSR; from the key's parameters for an EC key on a named curve,
 * through X509_PUBKEY_set for any other) and copied into each request as it
 * is; a key whose parameters are not an OID or NULL is set as before.
 */
static int
set_request_key(struct certkey *k, X509_REQ *req)
{
	int rc;

	if (k->spki == NULL && (k->spki = pki_named_curve_spki(k->pkey)) == NULL &&
	    X509_PUBKEY_set(&k->spki, k->pkey) != 1)
		return -1;
	if ((rc = pki_spki_copy(X509_REQ_get_X509_PUBKEY(req), k->spki)) != 1)
		return rc;
	return X509_REQ_set_pubkey(req, k->pkey) == 1 ? 0 : -1;
}

/*
 * A PKCS#10 request for common_name and URI SANs, signed by the certificate
 * key. A signature made in the TPM is verified before the request is returned
 * (it comes from outside this process and a wrong one would only show at the
 * conductor); one OpenSSL just made with the key in memory is not checked again.
 */
int
certkey_csr(struct certkey *k, const char *common_name, const char *const *uri_sans, size_t n_sans,
	    char **csr_pem_out)
{
	X509_REQ *req = NULL;
	BIO *bio = NULL;
	size_t cn_len = strlen(common_name);
	int ret = -1;

	*csr_pem_out = NULL;
	if (cn_len == 0 || cn_len > CN_MAX)
		return or_error("the CSR's common name must have 1 to %d characters", CN_MAX);
	for (size_t i = 0; i < cn_len; i++)
		if ((unsigned char)common_name[i] < ' ' || common_name[i] == 0x7f)
			return or_error("the CSR's common name has a control character");
	for (size_t i = 0; i < n_sans; i++)
		if (check_uri(uri_sans[i]) == -1)
			return -1;
	req = X509_REQ_new();
	if (req == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
					(const unsigned char *)common_name, -1, -1, 0) ||
	    set_request_key(k, req) == -1) {
		or_error("cannot build the CSR (is the common name valid UTF-8?)");
		goto out;
	}
	if (n_sans > 0 && add_sans(req, uri_sans, n_sans) == -1)
		goto out;
	if (k->tpm != NULL ? sign_in_tpm(k, req) == -1
			   : X509_REQ_sign(req, k->pkey, EVP_sha256()) <= 0) {
		if (k->tpm == NULL)
			or_error("cannot sign the CSR");
		goto out;
	}
	if (k->tpm != NULL && X509_REQ_verify(req, k->pkey) != 1) {
		or_error("the CSR's signature does not verify against the certificate key");
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || !PEM_write_bio_X509_REQ(bio, req) ||
	    bio_to_string(bio, csr_pem_out) == -1) {
		or_error("cannot write the CSR as PEM");
		goto out;
	}
	ret = 0;
out:
	BIO_free(bio);
	X509_REQ_free(req);
	return ret;
}

/* See certkey.h: named by the one function that names keys, without a PEM round trip. */
int
certkey_key_id(struct certkey *k, char *out)
{
	return pki_spki_sha256(k->pkey, out);
}

/* The public key as PEM. */
int
certkey_public_pem(struct certkey *k, char **pem_out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int ret = -1;

	*pem_out = NULL;
	if (bio != NULL && PEM_write_bio_PUBKEY(bio, k->pkey))
		ret = bio_to_string(bio, pem_out);
	else
		or_error("cannot write the public key as PEM");
	BIO_free(bio);
	return ret;
}
