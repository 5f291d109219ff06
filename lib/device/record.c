/*
 * Factory registration records (see record.h). The OCRA key goes into CMS
 * EnvelopedData only; the plain key exists in memory (a struct secret) for
 * as long as encryption or decryption takes. Nothing in a record is trusted:
 * every field is checked on reading, and the decrypted key must fit the
 * suite.
 */
#include "device/record.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"

#include <ctype.h>
#include <openssl/cms.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CREATED_LEN 20 /* 2006-01-02T15:04:05Z */
#define MIN_RSA_BITS 2048

/* A serial: 1-64 letters, digits, '.', '_', ':' or '-'. */
int
record_check_serial(const char *serial)
{
	size_t len = strlen(serial);

	if (len == 0 || len > RECORD_SERIAL_MAX)
		return or_error("serial must have 1 to %d characters", RECORD_SERIAL_MAX);
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)serial[i]) && strchr("._:-", serial[i]) == NULL)
			return or_error("serial '%.64s' may hold only letters, digits, '.', '_', "
					"':' and '-'",
					serial);
	return 0;
}

/* A model: 1-64 printable ASCII characters. */
int
record_check_model(const char *model)
{
	size_t len = strlen(model);

	if (len == 0 || len > RECORD_MODEL_MAX)
		return or_error("model must have 1 to %d characters", RECORD_MODEL_MAX);
	for (size_t i = 0; i < len; i++)
		if (model[i] < ' ' || model[i] > '~')
			return or_error("model may hold only printable ASCII characters");
	return 0;
}

/* An RFC 3339 UTC time of exactly the form YYYY-MM-DDTHH:MM:SSZ. */
static int
check_created(const char *text)
{
	struct tm tm = {0};
	const char *end;

	if (strlen(text) != CREATED_LEN ||
	    (end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end != '\0')
		return or_error(
			"field 'created' must be an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ)");
	return 0;
}

/* An OpenSSL error's reason, for messages that say why. */
static const char *
ssl_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());

	return r != NULL ? r : "unknown OpenSSL error";
}

/* Refuses a key that is not RSA of at least MIN_RSA_BITS. */
static int
check_rsa(EVP_PKEY *pkey, const char *what)
{
	if (!EVP_PKEY_is_a(pkey, "RSA"))
		return or_error("the %s must be an RSA key", what);
	if (EVP_PKEY_get_bits(pkey) < MIN_RSA_BITS)
		return or_error("the %s has %d bits; at least %d are needed", what,
				EVP_PKEY_get_bits(pkey), MIN_RSA_BITS);
	return 0;
}

/*
 * The inventory's RSA public key from PEM (a public key or a certificate); a
 * private key is refused outright.
 */
int
record_load_inventory_key(const char *pem, size_t len, void **pkey_out)
{
	OSSL_DECODER_CTX *dctx = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	BIO *bio = NULL;
	int ret = -1;

	*pkey_out = NULL;
	/* The inventory's private key has no business in the factory: refuse it outright. */
	if (memmem(pem, len, "PRIVATE KEY-----", 16) != NULL)
		return or_error("the inventory key file holds a private key; give the factory "
				"only the public key or a certificate");
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return or_error("out of memory");
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (cert != NULL) {
		pkey = X509_get_pubkey(cert);
	} else {
		ERR_clear_error();
		(void)BIO_reset(bio);
		dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY,
						     NULL, NULL);
		if (dctx == NULL || !OSSL_DECODER_from_bio(dctx, bio))
			pkey = NULL;
	}
	if (pkey == NULL) {
		or_error("the inventory key is neither a PEM public key nor a PEM certificate");
		goto out;
	}
	if (check_rsa(pkey, "inventory key") == -1)
		goto out;
	*pkey_out = pkey;
	pkey = NULL;
	ret = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	OSSL_DECODER_CTX_free(dctx);
	X509_free(cert);
	BIO_free(bio);
	return ret;
}

/*
 * CMS names a recipient by certificate or by key identifier. For a bare key
 * a stand-in certificate holding only the key and its identifier (SHA-1 of
 * the public key) serves both sides: the encryptor takes the identifier from
 * it, and the decryptor matches the record against it. OpenSSL reads the
 * extensions of a certificate only once it encodes, which takes validity
 * times and a signature; a throw-away key signs it. It is never written out.
 */
static X509 *
recipient_stub(EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	X509_EXTENSION *ext = NULL;
	EVP_PKEY *throwaway = NULL;
	X509V3_CTX ctx;

	if (x == NULL || !X509_set_version(x, X509_VERSION_3) || !X509_set_pubkey(x, pkey) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 0) == NULL)
		goto fail;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, NULL, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		goto fail;
	throwaway = EVP_EC_gen("P-256");
	if (throwaway == NULL || X509_sign(x, throwaway, EVP_sha256()) <= 0 ||
	    X509_get0_subject_key_id(x) == NULL)
		goto fail;
	X509_EXTENSION_free(ext);
	EVP_PKEY_free(throwaway);
	return x;
fail:
	X509_EXTENSION_free(ext);
	EVP_PKEY_free(throwaway);
	X509_free(x);
	return NULL;
}

/* The current UTC time in RFC 3339. */
static void
utc_now(char out[CREATED_LEN + 1])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, CREATED_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * data in CMS EnvelopedData to the inventory key (AES-256-CBC, RSA-OAEP
 * SHA-256), as DER into *der (malloc'd).
 */
static int
envelope(const uint8_t *data, size_t len, EVP_PKEY *inventory_pkey, uint8_t **der, size_t *der_len)
{
	CMS_ContentInfo *cms = NULL;
	CMS_RecipientInfo *ri;
	EVP_PKEY_CTX *pctx;
	unsigned char *out = NULL;
	X509 *stub = NULL;
	BIO *in = NULL;
	int n, ret = -1;

	*der = NULL;
	stub = recipient_stub(inventory_pkey);
	in = BIO_new_mem_buf(data, (int)len);
	if (stub == NULL || in == NULL) {
		or_error("cannot prepare the inventory key as a CMS recipient");
		goto out;
	}
	cms = CMS_encrypt(NULL, in, EVP_aes_256_cbc(), CMS_BINARY | CMS_PARTIAL);
	ri = cms != NULL ? CMS_add1_recipient_cert(cms, stub, CMS_USE_KEYID | CMS_KEY_PARAM) : NULL;
	pctx = ri != NULL ? CMS_RecipientInfo_get0_pkey_ctx(ri) : NULL;
	if (pctx == NULL || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0 ||
	    !CMS_final(cms, in, NULL, CMS_BINARY) || (n = i2d_CMS_ContentInfo(cms, &out)) <= 0) {
		or_error("CMS encryption failed: %s", ssl_reason());
		goto out;
	}
	if ((*der = malloc((size_t)n)) == NULL) {
		or_error("out of memory");
		goto out;
	}
	memcpy(*der, out, (size_t)n);
	*der_len = (size_t)n;
	ret = 0;
out:
	ERR_clear_error();
	OPENSSL_free(out);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	X509_free(stub);
	return ret;
}

/* See record.h: OpenSSL's generator, in hex. */
int
record_claim_secret_new(struct secret *out)
{
	uint8_t raw[RECORD_CLAIM_SECRET_HEX / 2];
	int ret = -1;

	*out = (struct secret){0};
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		or_error("no randomness for a claim secret");
		goto out;
	}
	if (secret_alloc(out, RECORD_CLAIM_SECRET_HEX + 1) == -1)
		goto out;
	hex_encode(raw, sizeof(raw), (char *)out->data);
	out->len = RECORD_CLAIM_SECRET_HEX;
	ret = 0;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	return ret;
}

/* See record.h. */
int
record_claim_hash(const char *claim_secret, char out[RECORD_CLAIM_HASH_HEX + 1])
{
	uint8_t md[32];
	unsigned int md_len = 0;

	if (!EVP_Digest(claim_secret, strlen(claim_secret), md, &md_len, EVP_sha256(), NULL) ||
	    md_len != sizeof(md))
		return or_error("SHA-256 failed");
	hex_encode(md, sizeof(md), out);
	return 0;
}

/* Exactly n lower-case hex digits. */
static bool
lower_hex(const char *text, size_t n)
{
	if (strlen(text) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)text[i]) || isupper((unsigned char)text[i]))
			return false;
	return true;
}

/*
 * A record with the OCRA key and the claim secret each in CMS EnvelopedData
 * to the inventory key.
 */
int
record_create(const char *serial, const char *model, const char *suite_text,
	      const struct secret *key, const struct secret *claim_secret, void *inventory_pkey,
	      struct record *out)
{
	struct ocra_suite suite;

	memset(out, 0, sizeof(*out));
	if (record_check_serial(serial) == -1 || record_check_model(model) == -1 ||
	    ocra_suite_parse(suite_text, &suite) == -1 ||
	    check_rsa(inventory_pkey, "inventory key") == -1)
		return -1;
	if (key->len != ocra_hash_size(suite.hash))
		return or_error("an OCRA key for %s must have %zu bytes, not %zu", suite_text,
				ocra_hash_size(suite.hash), key->len);
	if (claim_secret->len != RECORD_CLAIM_SECRET_HEX ||
	    !lower_hex((const char *)claim_secret->data, RECORD_CLAIM_SECRET_HEX))
		return or_error("a claim secret must be %d lower-case hex digits",
				RECORD_CLAIM_SECRET_HEX);
	if (envelope(key->data, key->len, inventory_pkey, &out->ocra_key_cms,
		     &out->ocra_key_cms_len) == -1 ||
	    envelope(claim_secret->data, claim_secret->len, inventory_pkey, &out->claim_secret_cms,
		     &out->claim_secret_cms_len) == -1 ||
	    record_claim_hash((const char *)claim_secret->data, out->claim_hash) == -1) {
		record_free(out);
		return -1;
	}
	snprintf(out->serial, sizeof(out->serial), "%s", serial);
	snprintf(out->model, sizeof(out->model), "%s", model);
	snprintf(out->ocra_suite, sizeof(out->ocra_suite), "%s", suite.text);
	utc_now(out->created);
	return 0;
}

/* The record as the JSON the inventory imports. */
json_t *
record_to_json(const struct record *r)
{
	char *b64 = base64_encode(r->ocra_key_cms, r->ocra_key_cms_len);
	char *claim_b64 = r->claim_secret_cms != NULL
				  ? base64_encode(r->claim_secret_cms, r->claim_secret_cms_len)
				  : NULL;
	json_t *doc = NULL;

	if (b64 != NULL && r->claim_secret_cms == NULL)
		doc = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "version", 1, "serial", r->serial,
				"model", r->model, "ocra_suite", r->ocra_suite, "ocra_key_cms", b64,
				"created", r->created);
	else if (b64 != NULL && claim_b64 != NULL)
		doc = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "version",
				RECORD_VERSION, "serial", r->serial, "model", r->model,
				"ocra_suite", r->ocra_suite, "ocra_key_cms", b64,
				"claim_secret_cms", claim_b64, "claim_hash", r->claim_hash,
				"created", r->created);
	free(b64);
	free(claim_b64);
	return doc;
}

/* Reads an untrusted record: known fields only, each checked. */
int
record_from_json(json_t *doc, struct record *out)
{
	static const char *const fields[] = {"version",	   "serial",	   "model",
					     "ocra_suite", "ocra_key_cms", "claim_secret_cms",
					     "claim_hash", "created"};
	const char *serial = NULL, *model = NULL, *suite_text = NULL, *cms = NULL, *created = NULL,
		   *claim_cms = NULL, *claim_hash = NULL, *key;
	struct ocra_suite suite;
	json_int_t version = 0;
	json_t *value;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	json_object_foreach(doc, key, value)
	{
		bool known = false;
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			known = known || strcmp(key, fields[i]) == 0;
		if (!known)
			return or_error("record: unexpected field '%.64s'", key);
	}
	if (json_get_int(doc, "version", true, 1, RECORD_VERSION, &version) == -1 ||
	    json_get_string(doc, "serial", true, RECORD_SERIAL_MAX, &serial) == -1 ||
	    record_check_serial(serial) == -1 ||
	    json_get_string(doc, "model", true, RECORD_MODEL_MAX, &model) == -1 ||
	    record_check_model(model) == -1 ||
	    json_get_string(doc, "ocra_suite", true, OCRA_SUITE_MAX, &suite_text) == -1 ||
	    ocra_suite_parse(suite_text, &suite) == -1 ||
	    json_get_string(doc, "created", true, CREATED_LEN, &created) == -1 ||
	    check_created(created) == -1 ||
	    json_get_string(doc, "ocra_key_cms", true, RECORD_MAX_BYTES, &cms) == -1 ||
	    base64_decode(cms, "field 'ocra_key_cms'", &out->ocra_key_cms,
			  &out->ocra_key_cms_len) == -1 ||
	    json_get_string(doc, "claim_secret_cms", version >= 2, RECORD_MAX_BYTES, &claim_cms) ==
		    -1 ||
	    json_get_string(doc, "claim_hash", version >= 2, RECORD_CLAIM_HASH_HEX, &claim_hash) ==
		    -1)
		goto out;
	if (version == 1 && (claim_cms != NULL || claim_hash != NULL)) {
		or_error("a version 1 record has no claim secret");
		goto out;
	}
	if (claim_hash != NULL && !lower_hex(claim_hash, RECORD_CLAIM_HASH_HEX)) {
		or_error("field 'claim_hash' must be %d lower-case hex digits",
			 RECORD_CLAIM_HASH_HEX);
		goto out;
	}
	if (claim_cms != NULL &&
	    base64_decode(claim_cms, "field 'claim_secret_cms'", &out->claim_secret_cms,
			  &out->claim_secret_cms_len) == -1)
		goto out;
	if (claim_hash != NULL)
		snprintf(out->claim_hash, sizeof(out->claim_hash), "%s", claim_hash);
	snprintf(out->serial, sizeof(out->serial), "%s", serial);
	snprintf(out->model, sizeof(out->model), "%s", model);
	snprintf(out->ocra_suite, sizeof(out->ocra_suite), "%s", suite.text);
	snprintf(out->created, sizeof(out->created), "%s", created);
	ret = 0;
out:
	if (ret == -1) {
		record_free(out);
		or_error_prefix("record");
	}
	return ret;
}

/* Writes the record atomically, 0600. */
int
record_write(const char *path, const struct record *r)
{
	json_t *doc = record_to_json(r);
	int ret = doc != NULL ? json_write_atomic(path, doc, 0600) : or_error("out of memory");

	json_decref(doc);
	return ret;
}

/* Reads and checks a record file. */
int
record_read(const char *path, struct record *out)
{
	json_t *doc = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if (json_load_object_file(path, RECORD_MAX_BYTES, &doc) == -1)
		return -1;
	ret = record_from_json(doc, out);
	json_decref(doc);
	return ret == -1 ? or_error_prefix("%s", path) : 0;
}

/* True when one of the CMS recipients is the key of stub. */
static bool
addressed_to(CMS_ContentInfo *cms, X509 *stub)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);

	for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
		if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS &&
		    CMS_RecipientInfo_ktri_cert_cmp(ri, stub) == 0)
			return true;
	}
	return false;
}

/*
 * Decrypts one CMS field of the record (what names it) with the inventory
 * private key, after checking that it is addressed to it, into *out (at most
 * cap bytes).
 */
static int
open_envelope(const struct record *r, const char *what, const uint8_t *der, size_t der_len,
	      const char *inventory_private_key_pem, size_t cap, struct secret *out_secret)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *stub = NULL;
	BIO *bio = NULL, *out = NULL;
	char *plain;
	long plain_len;
	int ret = -1;

	*out_secret = (struct secret){0};
	bio = BIO_new_mem_buf(inventory_private_key_pem, -1);
	pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	if (pkey == NULL) {
		or_error("the inventory private key is not a PEM private key");
		goto out;
	}
	if (check_rsa(pkey, "inventory private key") == -1)
		goto out;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_len);
	if (cms == NULL || p != der + der_len ||
	    OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_enveloped) {
		or_error("record %s: field '%s' is not CMS EnvelopedData", r->serial, what);
		goto out;
	}
	stub = recipient_stub(pkey);
	out = BIO_new(BIO_s_secmem());
	if (stub == NULL || out == NULL) {
		or_error("out of memory");
		goto out;
	}
	if (!addressed_to(cms, stub)) {
		or_error("record %s: field '%s' is encrypted to another inventory key, not to "
			 "this one",
			 r->serial, what);
		goto out;
	}
	/* Naming the recipient (not cert NULL) makes a failure an error, never garbage. */
	if (!CMS_decrypt(cms, pkey, stub, NULL, out, CMS_BINARY)) {
		or_error("record %s: cannot decrypt field '%s': %s", r->serial, what, ssl_reason());
		goto out;
	}
	plain_len = BIO_get_mem_data(out, &plain);
	if (plain_len <= 0 || (size_t)plain_len > cap) {
		or_error("record %s: field '%s' decrypts to %ld bytes", r->serial, what, plain_len);
		goto out;
	}
	ret = secret_from(out_secret, plain, (size_t)plain_len);
out:
	if (out != NULL) {
		plain_len = BIO_get_mem_data(out, &plain);
		if (plain_len > 0)
			secure_zero(plain, (size_t)plain_len);
	}
	ERR_clear_error();
	BIO_free(out);
	BIO_free(bio);
	X509_free(stub);
	EVP_PKEY_free(pkey);
	CMS_ContentInfo_free(cms);
	return ret;
}

/* Decrypts the OCRA key with the inventory private key; the key must fit the suite. */
int
record_decrypt_key(const struct record *r, const char *inventory_private_key_pem,
		   struct secret *key_out)
{
	struct ocra_suite suite;

	*key_out = (struct secret){0};
	if (ocra_suite_parse(r->ocra_suite, &suite) == -1 ||
	    open_envelope(r, "ocra_key_cms", r->ocra_key_cms, r->ocra_key_cms_len,
			  inventory_private_key_pem, OCRA_HASH_MAX, key_out) == -1)
		return -1;
	if (key_out->len != ocra_hash_size(suite.hash)) {
		or_error("record %s: the decrypted OCRA key has %zu bytes; %s needs %zu", r->serial,
			 key_out->len, r->ocra_suite, ocra_hash_size(suite.hash));
		secret_free(key_out);
		return -1;
	}
	return 0;
}

/* See record.h: the secret must be well formed and match the record's hash. */
int
record_decrypt_claim_secret(const struct record *r, const char *inventory_private_key_pem,
			    struct secret *secret_out)
{
	struct secret raw = {0};
	char hash[RECORD_CLAIM_HASH_HEX + 1];
	int ret = -1;

	*secret_out = (struct secret){0};
	if (r->claim_secret_cms == NULL)
		return or_error("record %s has no claim secret (a version 1 record)", r->serial);
	if (open_envelope(r, "claim_secret_cms", r->claim_secret_cms, r->claim_secret_cms_len,
			  inventory_private_key_pem, RECORD_CLAIM_SECRET_HEX, &raw) == -1)
		return -1;
	/* NUL-terminated, so that it is text for hashing and for JSON. */
	if (secret_alloc(secret_out, RECORD_CLAIM_SECRET_HEX + 1) == -1)
		goto out;
	memcpy(secret_out->data, raw.data, raw.len);
	secret_out->len = raw.len;
	if (!lower_hex((const char *)secret_out->data, RECORD_CLAIM_SECRET_HEX) ||
	    record_claim_hash((const char *)secret_out->data, hash) == -1 ||
	    !ct_equal_str(hash, r->claim_hash)) {
		or_error("record %s: the claim secret does not match its claim_hash", r->serial);
		goto out;
	}
	ret = 0;
out:
	if (ret == -1)
		secret_free(secret_out);
	secret_free(&raw);
	return ret;
}

/* Frees the record's CMS bytes. */
void
record_free(struct record *r)
{
	free(r->ocra_key_cms);
	r->ocra_key_cms = NULL;
	r->ocra_key_cms_len = 0;
	free(r->claim_secret_cms);
	r->claim_secret_cms = NULL;
	r->claim_secret_cms_len = 0;
}
