/*
 * The device's OCRA key, kept as a TPM HMAC object (or, when configured, as
 * a software key file). It trusts nothing in the identity file: every field is
 * checked, and a TPM blob is checked again by the TPM when it is loaded.
 */
#include "device/identity.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "device/tpm.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define IDENTITY_MAX_BYTES 65536

struct identity {
	struct tpm *tpm;       /* NULL: software */
	struct tpm_blob *blob; /* the TPM's wrapped HMAC key */
	struct secret key;     /* software only */
	enum ocra_hash hash;
};

/* The OCRA hash of a name from the identity file. */
static int
hash_from_name(const char *name, enum ocra_hash *out)
{
	static const enum ocra_hash all[] = {OCRA_HASH_SHA1, OCRA_HASH_SHA256, OCRA_HASH_SHA512};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(name, ocra_hash_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return or_error("unknown hash '%s' (expected SHA1, SHA256 or SHA512)", name);
}

/* Writes the identity file for key: the TPM's blob of it, or the key itself in software. */
static int
store(const char *state_dir, struct tpm *tpm, enum ocra_hash hash, const struct secret *key)
{
	char path[PATH_MAX], *blob_b64 = NULL, *key_hex = NULL;
	struct tpm_blob *blob = NULL;
	json_t *doc = NULL;
	int ret = -1;

	if (key->len != ocra_hash_size(hash))
		return or_error("an OCRA key for HMAC-%s must have %zu bytes, not %zu",
				ocra_hash_name(hash), ocra_hash_size(hash), key->len);
	if (file_ensure_dir(state_dir, 0700) == -1 ||
	    file_path(path, sizeof(path), state_dir, IDENTITY_FILE) == -1)
		return -1;
	doc = json_pack("{s:i, s:s, s:s}", "version", 1, "kind", tpm ? "tpm" : "software", "hash",
			ocra_hash_name(hash));
	if (doc == NULL) {
		or_error("out of memory");
		goto out;
	}
	if (tpm != NULL) {
		blob = calloc(1, sizeof(*blob));
		if (blob == NULL) {
			or_error("out of memory");
			goto out;
		}
		if (tpm_hmac_key_create(tpm, hash, key, blob) == -1)
			goto out;
		blob_b64 = tpm_blob_to_base64(blob);
		if (blob_b64 == NULL || json_object_set_new(doc, "blob", json_string(blob_b64))) {
			or_error("out of memory");
			goto out;
		}
	} else {
		key_hex = OPENSSL_secure_zalloc(2 * key->len + 1);
		if (key_hex == NULL) {
			or_error("out of memory");
			goto out;
		}
		hex_encode(key->data, key->len, key_hex);
		if (json_object_set_new(doc, "key", json_string(key_hex))) {
			or_error("out of memory");
			goto out;
		}
	}
	ret = json_write_atomic(path, doc, 0600);
out:
	/* jansson keeps its own copy of the hex key: wipe it before the object goes. */
	if (key_hex != NULL) {
		json_t *k = json_object_get(doc, "key");
		if (k != NULL)
			secure_zero((char *)json_string_value(k), json_string_length(k));
		OPENSSL_secure_clear_free(key_hex, 2 * key->len + 1);
	}
	json_decref(doc);
	free(blob_b64);
	free(blob);
	return ret;
}

/* Stores key as the device identity (in the TPM when tpm is given). */
int
identity_import(const char *state_dir, struct tpm *tpm, enum ocra_hash hash,
		const struct secret *key)
{
	if (store(state_dir, tpm, hash, key) == -1)
		return or_error_prefix("%s: cannot store the device identity", state_dir);
	return 0;
}

/*
 * A new key from the TPM's generator (RAND_priv_bytes in software), stored as
 * the identity; key_out gets it only when asked for.
 */
int
identity_create(const char *state_dir, struct tpm *tpm, enum ocra_hash hash, struct secret *key_out)
{
	struct secret key = {0};
	int ret = -1;

	if (secret_alloc(&key, ocra_hash_size(hash)) == -1)
		return -1;
	/* With a TPM the key is born in the device's own generator. */
	if (tpm != NULL ? tpm_random(tpm, key.data, key.len) == -1
			: RAND_priv_bytes(key.data, (int)key.len) != 1) {
		if (tpm == NULL)
			or_error("no random bytes for the OCRA key");
		goto out;
	}
	if (identity_import(state_dir, tpm, hash, &key) == -1)
		goto out;
	if (key_out != NULL) {
		*key_out = key;
		key = (struct secret){0};
	}
	ret = 0;
out:
	secret_free(&key);
	return ret;
}

/* Reads and checks the identity file; the software key's text is wiped after it is decoded. */
int
identity_open(const char *state_dir, struct tpm *tpm, struct identity **out)
{
	char path[PATH_MAX];
	const char *kind = NULL, *hash_name = NULL, *blob_b64 = NULL, *key_hex = NULL;
	json_int_t version = 0;
	struct identity *id = NULL;
	uint8_t *raw = NULL;
	size_t raw_len = 0, text_len = 0;
	uint8_t *text = NULL;
	json_t *doc = NULL;
	int rc, ret = -1;

	*out = NULL;
	if (file_path(path, sizeof(path), state_dir, IDENTITY_FILE) == -1)
		return -1;
	if (file_exists(path) == 0)
		return or_error("%s holds no device identity (run 'onrampctl factory init-device')",
				state_dir);
	/* Read by hand rather than json_load_object_file: a software key must not linger. */
	if (file_read_all(path, IDENTITY_MAX_BYTES, &text, &text_len) == -1)
		return -1;
	rc = json_parse_object((const char *)text, text_len, IDENTITY_MAX_BYTES, &doc);
	secure_zero(text, text_len);
	free(text);
	if (rc == -1)
		return or_error_prefix("%s: damaged identity file", path);
	id = calloc(1, sizeof(*id));
	if (id == NULL) {
		or_error("out of memory");
		goto out;
	}
	if (json_get_int(doc, "version", true, 1, 1, &version) == -1 ||
	    json_get_string(doc, "kind", true, 16, &kind) == -1 ||
	    json_get_string(doc, "hash", true, 16, &hash_name) == -1 ||
	    hash_from_name(hash_name, &id->hash) == -1)
		goto bad;
	if (strcmp(kind, "tpm") == 0) {
		if (tpm == NULL) {
			or_error("%s: the identity is in a TPM, but no TPM was configured", path);
			goto out;
		}
		id->blob = calloc(1, sizeof(*id->blob));
		if (id->blob == NULL) {
			or_error("out of memory");
			goto out;
		}
		if (json_get_string(doc, "blob", true, 2 * TPM_BLOB_MAX, &blob_b64) == -1 ||
		    tpm_blob_from_base64(blob_b64, "field 'blob'", id->blob) == -1)
			goto bad;
		id->tpm = tpm;
	} else if (strcmp(kind, "software") == 0) {
		if (tpm != NULL) {
			or_error("%s: the identity is a software key, but a TPM was configured",
				 path);
			goto out;
		}
		if (json_get_string(doc, "key", true, 2 * OCRA_HASH_MAX, &key_hex) == -1 ||
		    hex_decode(key_hex, "field 'key'", &raw, &raw_len) == -1)
			goto bad;
		if (raw_len != ocra_hash_size(id->hash)) {
			or_error("field 'key' must have %zu bytes for HMAC-%s",
				 ocra_hash_size(id->hash), hash_name);
			goto bad;
		}
		if (secret_from(&id->key, raw, raw_len) == -1)
			goto out;
		log_warn("software identity: the OCRA key is in %s, not in a TPM; whoever reads "
			 "that file can act as this device",
			 path);
	} else {
		or_error("field 'kind' must be \"tpm\" or \"software\"");
		goto bad;
	}
	*out = id;
	id = NULL;
	ret = 0;
	goto out;
bad:
	or_error_prefix("%s: damaged identity file", path);
out:
	if (raw != NULL)
		OPENSSL_clear_free(raw, raw_len ? raw_len : 1);
	if (key_hex != NULL)
		secure_zero((char *)key_hex, strlen(key_hex));
	json_decref(doc);
	identity_close(id);
	return ret;
}

/*
 * The ocra_hmac provider: refuses another hash than the key's, then HMACs in
 * the TPM or in software.
 */
static int
identity_compute(void *ctx, enum ocra_hash hash, const uint8_t *msg, size_t msg_len, uint8_t *mac,
		 size_t *mac_len)
{
	struct identity *id = ctx;

	if (hash != id->hash)
		return or_error("the device's OCRA key is an HMAC-%s key; the suite asks for %s",
				ocra_hash_name(id->hash), ocra_hash_name(hash));
	if (id->tpm != NULL)
		return tpm_hmac(id->tpm, id->blob, hash, msg, msg_len, mac, mac_len);
	return ocra_hmac_software(&id->key, hash, msg, msg_len, mac, mac_len);
}

/* The HMAC provider of this identity for ocra_compute/ocra_verify. */
struct ocra_hmac
identity_ocra_hmac(struct identity *id)
{
	return (struct ocra_hmac){.compute = identity_compute, .ctx = id};
}

/* The hash the key was made for. */
enum ocra_hash
identity_hash(const struct identity *id)
{
	return id->hash;
}

/* Whether the key lives in a TPM. */
bool
identity_in_tpm(const struct identity *id)
{
	return id->tpm != NULL;
}

/* Wipes a software key and frees; NULL is fine. */
void
identity_close(struct identity *id)
{
	if (id == NULL)
		return;
	secret_free(&id->key);
	free(id->blob);
	free(id);
}

/* Whether state_dir holds an identity file. */
int
identity_exists(const char *state_dir)
{
	return file_exists_in(state_dir, IDENTITY_FILE);
}

/* Removes the identity file (the factory's undo). */
int
identity_remove(const char *state_dir)
{
	return file_remove_in(state_dir, IDENTITY_FILE);
}
