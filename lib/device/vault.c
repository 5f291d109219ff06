/*
 * The vault (see vault.h). What it trusts: nothing read from state_dir. Entry
 * files are parsed with bounds, their kind and name must be the ones asked
 * for, and the AES-256-GCM tag over (kind, name, value) must verify before a
 * byte of the value is handed out.
 */
#include "device/vault.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/x509.h"
#include "device/tpm.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#define VAULT_DIR "vault"
#define VAULT_META "vault.json"
#define VAULT_DEVICE_KEY "device.key"
#define AES_KEY_LEN 32
#define GCM_IV_LEN 12
#define GCM_TAG_LEN 16
/* An anchor is a root CA or a small bundle of them. */
#define VAULT_ANCHOR_CERTS_MAX 64
#define ANCHOR_WHAT "the value (X.509 certificates in PEM)"
/* An entry file: the value in base64 plus a sealed blob, with room to spare. */
#define ENTRY_FILE_MAX (VAULT_VALUE_MAX * 2 + 3 * TPM_BLOB_MAX)

struct vault {
	char dir[PATH_MAX];
	struct tpm *tpm;
	struct secret device_key; /* software mode only */
};

enum entry_kind { ENTRY_SECRET, ENTRY_ANCHOR };

static const char *const kind_names[] = {"secret", "anchor"};

/*
 * A vault name: 1-64 letters, digits, '.', '_' or '-', starting with a letter
 * or digit, so never a path.
 */
int
vault_check_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > VAULT_NAME_MAX)
		return or_error("vault name must have 1 to %d characters", VAULT_NAME_MAX);
	if (!isalnum((unsigned char)name[0]))
		return or_error("vault name '%.64s' must start with a letter or digit", name);
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && strchr("._-", name[i]) == NULL)
			return or_error("vault name '%.64s' may hold only letters, digits, '.', "
					"'_' and '-'",
					name);
	return 0;
}

/* The entry file of kind/name, after the name's check. */
static int
entry_path(const struct vault *v, enum entry_kind kind, const char *name, char *path, size_t cap)
{
	char file[VAULT_NAME_MAX + 16];

	if (vault_check_name(name) == -1)
		return -1;
	snprintf(file, sizeof(file), "%s.%s", name, kind_names[kind]);
	return file_path(path, cap, v->dir, file);
}

/* Reads the software device key, making it on first use; a missing key of an old vault is an error.
 */
static int
device_key(struct vault *v, bool new_vault)
{
	char path[PATH_MAX];
	uint8_t *raw = NULL;
	size_t len = 0;
	int exists, ret = -1;

	if (file_path(path, sizeof(path), v->dir, VAULT_DEVICE_KEY) == -1)
		return -1;
	exists = file_exists(path);
	if (exists == -1)
		return -1;
	/* A key left by an open that died before vault.json was written is taken as it is. */
	if (!exists) {
		if (!new_vault)
			return or_error(
				"%s is missing: the vault's entries cannot be read without it",
				path);
		if (secret_alloc(&v->device_key, AES_KEY_LEN) == -1)
			return -1;
		if (RAND_priv_bytes(v->device_key.data, AES_KEY_LEN) != 1)
			return or_error("no random bytes for the device key");
		return file_write_atomic(path, v->device_key.data, AES_KEY_LEN, 0600);
	}
	if (file_read_all(path, AES_KEY_LEN, &raw, &len) == -1)
		return -1;
	if (len != AES_KEY_LEN) {
		or_error("%s must hold %d bytes, not %zu", path, AES_KEY_LEN, len);
		goto out;
	}
	ret = secret_from(&v->device_key, raw, len);
out:
	secure_zero(raw, len);
	free(raw);
	return ret;
}

/* Reads vault.json, which says whether the vault was made with a TPM; *new_vault when absent. */
static int
check_mode(struct vault *v, bool *new_vault)
{
	const char *want = v->tpm != NULL ? "tpm" : "software", *mode = NULL;
	char path[PATH_MAX];
	json_int_t version = 0;
	json_t *doc = NULL;
	int exists, ret = -1;

	if (file_path(path, sizeof(path), v->dir, VAULT_META) == -1 ||
	    (exists = file_exists(path)) == -1)
		return -1;
	*new_vault = !exists;
	if (!exists)
		return 0;
	if (json_load_object_file(path, 4096, &doc) == -1 ||
	    json_get_int(doc, "version", true, 1, 1, &version) == -1 ||
	    json_get_string(doc, "mode", true, 16, &mode) == -1) {
		or_error_prefix("%s", path);
		goto out;
	}
	if (strcmp(mode, want) != 0) {
		or_error("%s: the vault was made %s, but %s", path,
			 strcmp(mode, "tpm") == 0 ? "with a TPM" : "in software",
			 v->tpm != NULL ? "a TPM was configured" : "no TPM was configured");
		goto out;
	}
	ret = 0;
out:
	json_decref(doc);
	return ret;
}

/* Writes vault.json last, once everything the mode needs (the device key) is in place. */
static int
write_mode(struct vault *v)
{
	char path[PATH_MAX];
	json_t *doc;
	int ret;

	if (file_path(path, sizeof(path), v->dir, VAULT_META) == -1)
		return -1;
	doc = json_pack("{s:i, s:s}", "version", 1, "mode", v->tpm != NULL ? "tpm" : "software");
	ret = doc != NULL ? json_write_atomic(path, doc, 0600) : or_error("out of memory");
	json_decref(doc);
	return ret;
}

/*
 * Creates state_dir and its vault (0700) if needed, checks the mode it was
 * made in, reads or makes the software device key.
 */
int
vault_open(const char *state_dir, struct tpm *tpm, struct vault **out)
{
	struct vault *v;
	bool new_vault = false;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return or_error("out of memory");
	v->tpm = tpm;
	if (file_path(v->dir, sizeof(v->dir), state_dir, VAULT_DIR) == -1 ||
	    file_ensure_dir(state_dir, 0700) == -1 || file_ensure_dir(v->dir, 0700) == -1 ||
	    check_mode(v, &new_vault) == -1 || (tpm == NULL && device_key(v, new_vault) == -1) ||
	    (new_vault && write_mode(v) == -1)) {
		vault_close(v);
		return or_error_prefix("cannot open the vault");
	}
	*out = v;
	return 0;
}

/* Wipes the device key and frees; NULL is fine. */
void
vault_close(struct vault *v)
{
	if (v == NULL)
		return;
	secret_free(&v->device_key);
	free(v);
}

/* The additional authenticated data: binds a value to its kind and name. */
static size_t
make_aad(enum entry_kind kind, const char *name, uint8_t *aad, size_t cap)
{
	int n = snprintf((char *)aad, cap, "onramp-vault-1|%s|%s", kind_names[kind], name);

	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* AES-256-GCM of len bytes with aad; decryption fails unless the tag verifies. */
static int
gcm(bool encrypt, const struct secret *key, const uint8_t *iv, const uint8_t *aad, size_t aad_len,
    const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n, ok;

	ok = ctx != NULL &&
	     EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->data, iv, encrypt ? 1 : 0) &&
	     EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) &&
	     EVP_CipherUpdate(ctx, out, &n, in, (int)len) &&
	     (encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag)) &&
	     EVP_CipherFinal_ex(ctx, out + n, &n) > 0 &&
	     (!encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag));
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* The entry's AES key: a new random one sealed to the TPM, or the device key. */
static int
new_entry_key(struct vault *v, struct secret *key, json_t *doc)
{
	struct tpm_blob *blob = NULL;
	char *b64 = NULL;
	int ret = -1;

	if (v->tpm == NULL)
		return secret_from(key, v->device_key.data, v->device_key.len);
	blob = calloc(1, sizeof(*blob));
	if (blob == NULL || secret_alloc(key, AES_KEY_LEN) == -1) {
		or_error("out of memory");
		goto out;
	}
	if (tpm_random(v->tpm, key->data, key->len) == -1 ||
	    tpm_seal(v->tpm, key->data, key->len, blob) == -1)
		goto out;
	b64 = tpm_blob_to_base64(blob);
	if (b64 == NULL || json_object_set_new(doc, "sealed_key", json_string(b64)) != 0) {
		or_error("out of memory");
		goto out;
	}
	ret = 0;
out:
	free(b64);
	free(blob);
	return ret;
}

/* Puts data in base64 as a string field of doc. */
static int
set_b64(json_t *doc, const char *field, const uint8_t *data, size_t len)
{
	char *b64 = base64_encode(data, len);
	int rc = b64 != NULL ? json_object_set_new(doc, field, json_string(b64)) : -1;

	free(b64);
	return rc == 0 ? 0 : or_error("out of memory");
}

/*
 * Encrypts a value under a fresh entry key and IV, binds kind and name as AAD,
 * and replaces the entry file atomically (0600).
 */
static int
put_entry(struct vault *v, enum entry_kind kind, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX];
	uint8_t iv[GCM_IV_LEN], tag[GCM_TAG_LEN], aad[128], *ct = NULL;
	struct secret key = {0};
	size_t aad_len;
	json_t *doc = NULL;
	int ret = -1;

	if (entry_path(v, kind, name, path, sizeof(path)) == -1)
		return -1;
	if (len == 0 || len > VAULT_VALUE_MAX)
		return or_error("a vault %s must have 1 to %d bytes, not %zu", kind_names[kind],
				VAULT_VALUE_MAX, len);
	aad_len = make_aad(kind, name, aad, sizeof(aad));
	doc = json_pack("{s:i, s:s, s:s, s:s}", "version", 1, "kind", kind_names[kind], "name",
			name, "mode", v->tpm != NULL ? "tpm" : "software");
	ct = malloc(len);
	if (doc == NULL || ct == NULL || aad_len == 0) {
		or_error("out of memory");
		goto out;
	}
	if (new_entry_key(v, &key, doc) == -1)
		goto out;
	if (RAND_bytes(iv, sizeof(iv)) != 1 ||
	    gcm(true, &key, iv, aad, aad_len, data, len, ct, tag) == -1) {
		or_error("AES-256-GCM encryption failed");
		goto out;
	}
	if (set_b64(doc, "iv", iv, sizeof(iv)) == -1 || set_b64(doc, "data", ct, len) == -1 ||
	    set_b64(doc, "tag", tag, sizeof(tag)) == -1)
		goto out;
	ret = json_write_atomic(path, doc, 0600);
	if (ret == 0)
		log_debug("vault: stored %s '%s'", kind_names[kind], name);
out:
	secret_free(&key);
	free(ct);
	json_decref(doc);
	return ret == 0 ? 0 : or_error_prefix("vault %s '%s'", kind_names[kind], name);
}

/* Decodes one base64 field that must have exactly want bytes (0: any up to the value limit). */
static int
get_b64(json_t *doc, const char *field, size_t want, uint8_t **out, size_t *len)
{
	const char *text = NULL;

	if (json_get_string(doc, field, true, 2 * VAULT_VALUE_MAX, &text) == -1 ||
	    base64_decode(text, field, out, len) == -1)
		return -1;
	if ((want != 0 && *len != want) || (want == 0 && (*len == 0 || *len > VAULT_VALUE_MAX)))
		return or_error("field '%s' has %zu bytes", field, *len);
	return 0;
}

/* Reads, checks and decrypts one entry; out holds the value only when everything checked. */
static int
get_entry(struct vault *v, enum entry_kind kind, const char *name, struct secret *out)
{
	char path[PATH_MAX];
	const char *f_kind = NULL, *f_name = NULL, *f_mode = NULL, *sealed_b64 = NULL;
	uint8_t aad[128], *text = NULL, *iv = NULL, *ct = NULL, *tag = NULL;
	size_t aad_len, text_len = 0, iv_len = 0, ct_len = 0, tag_len = 0;
	struct tpm_blob *blob = NULL;
	struct secret key = {0}, value = {0};
	json_int_t version = 0;
	json_t *doc = NULL;
	int exists, ret = -1;

	*out = (struct secret){0};
	if (entry_path(v, kind, name, path, sizeof(path)) == -1)
		return -1;
	exists = file_exists(path);
	if (exists != 1)
		return exists == -1 ? -1
				    : or_error("the vault holds no %s named '%s'", kind_names[kind],
					       name);
	if (file_read_all(path, ENTRY_FILE_MAX, &text, &text_len) == -1)
		goto out;
	aad_len = make_aad(kind, name, aad, sizeof(aad));
	/* Every structural fault is "damaged": truncation usually shows as broken JSON. */
	if (json_parse_object((const char *)text, text_len, ENTRY_FILE_MAX, &doc) == -1 ||
	    json_get_int(doc, "version", true, 1, 1, &version) == -1 ||
	    json_get_string(doc, "kind", true, 16, &f_kind) == -1 ||
	    json_get_string(doc, "name", true, VAULT_NAME_MAX, &f_name) == -1 ||
	    json_get_string(doc, "mode", true, 16, &f_mode) == -1 ||
	    get_b64(doc, "iv", GCM_IV_LEN, &iv, &iv_len) == -1 ||
	    get_b64(doc, "tag", GCM_TAG_LEN, &tag, &tag_len) == -1 ||
	    get_b64(doc, "data", 0, &ct, &ct_len) == -1) {
		or_error_prefix(
			"%s: the entry is damaged (truncated or altered); refusing to use it",
			path);
		goto out;
	}
	if (strcmp(f_kind, kind_names[kind]) != 0 || strcmp(f_name, name) != 0 ||
	    strcmp(f_mode, v->tpm != NULL ? "tpm" : "software") != 0) {
		or_error(
			"%s: the entry says it is %s '%.64s' (%s), not %s '%s': refusing to use it",
			path, f_kind, f_name, f_mode, kind_names[kind], name);
		goto out;
	}
	if (v->tpm != NULL) {
		blob = calloc(1, sizeof(*blob));
		if (blob == NULL) {
			or_error("out of memory");
			goto out;
		}
		if (json_get_string(doc, "sealed_key", true, 2 * TPM_BLOB_MAX, &sealed_b64) == -1 ||
		    tpm_blob_from_base64(sealed_b64, "field 'sealed_key'", blob) == -1) {
			or_error_prefix("%s: the entry is damaged; refusing to use it", path);
			goto out;
		}
		if (tpm_unseal(v->tpm, blob, &key) == -1) {
			or_error_prefix("%s: cannot unseal the entry's key", path);
			goto out;
		}
		if (key.len != AES_KEY_LEN) {
			or_error("%s: the sealed key has %zu bytes", path, key.len);
			goto out;
		}
	} else if (secret_from(&key, v->device_key.data, v->device_key.len) == -1) {
		goto out;
	}
	if (secret_alloc(&value, ct_len) == -1)
		goto out;
	if (aad_len == 0 || gcm(false, &key, iv, aad, aad_len, ct, ct_len, value.data, tag) == -1) {
		or_error("%s: the entry fails its integrity check (altered, damaged, or made "
			 "under another key): refusing to use it",
			 path);
		goto out;
	}
	*out = value;
	value = (struct secret){0};
	ret = 0;
out:
	secret_free(&value);
	secret_free(&key);
	free(blob);
	free(text);
	free(iv);
	free(ct);
	free(tag);
	json_decref(doc);
	return ret;
}

/* Removes an entry file durably; a missing entry is an error. */
static int
delete_entry(struct vault *v, enum entry_kind kind, const char *name)
{
	char path[PATH_MAX];
	int exists;

	if (entry_path(v, kind, name, path, sizeof(path)) == -1 ||
	    (exists = file_exists(path)) == -1)
		return -1;
	if (!exists)
		return or_error("the vault holds no %s named '%s'", kind_names[kind], name);
	return file_remove(path);
}

/* Stores a secret (see put_entry). */
int
vault_put(struct vault *v, const char *name, const void *data, size_t len)
{
	return put_entry(v, ENTRY_SECRET, name, data, len);
}

/* Reads a secret (see get_entry). */
int
vault_get(struct vault *v, const char *name, struct secret *out)
{
	return get_entry(v, ENTRY_SECRET, name, out);
}

/* Removes a secret. */
int
vault_delete(struct vault *v, const char *name)
{
	return delete_entry(v, ENTRY_SECRET, name);
}

/* Whether a secret's file exists; says nothing of its integrity. */
bool
vault_has(struct vault *v, const char *name)
{
	char path[PATH_MAX];

	return entry_path(v, ENTRY_SECRET, name, path, sizeof(path)) == 0 && file_exists(path) == 1;
}

/* Stores PEM certificates, checked before they are stored. */
int
vault_put_anchor(struct vault *v, const char *name, const char *pem)
{
	size_t len = strnlen(pem, VAULT_VALUE_MAX + 1);

	if (len > VAULT_VALUE_MAX)
		return or_error("trust anchor '%s' is larger than %d bytes", name, VAULT_VALUE_MAX);
	if (pki_check_certificates(pem, len, VAULT_ANCHOR_CERTS_MAX, ANCHOR_WHAT) == -1)
		return or_error_prefix("trust anchor '%s'", name);
	return put_entry(v, ENTRY_ANCHOR, name, pem, len);
}

/* Reads an anchor and checks again that it is PEM certificates. */
int
vault_get_anchor(struct vault *v, const char *name, char **pem_out)
{
	struct secret value = {0};
	int ret = -1;

	*pem_out = NULL;
	if (get_entry(v, ENTRY_ANCHOR, name, &value) == -1)
		return -1;
	if (memchr(value.data, '\0', value.len) != NULL ||
	    pki_check_certificates((const char *)value.data, value.len, VAULT_ANCHOR_CERTS_MAX,
				   ANCHOR_WHAT) == -1) {
		or_error("trust anchor '%s' does not hold PEM certificates", name);
		goto out;
	}
	*pem_out = malloc(value.len + 1);
	if (*pem_out == NULL) {
		or_error("out of memory");
		goto out;
	}
	memcpy(*pem_out, value.data, value.len);
	(*pem_out)[value.len] = '\0';
	ret = 0;
out:
	secret_free(&value);
	return ret;
}

/* Removes an anchor. */
int
vault_delete_anchor(struct vault *v, const char *name)
{
	return delete_entry(v, ENTRY_ANCHOR, name);
}
