/*
 * The master key file and AES-256-GCM sealing under it. The key file is
 * trusted only after its size and mode are checked; sealed text is trusted
 * only after its tag verifies under the key and the context.
 */
#include "server/masterkey.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/file.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SEAL_VERSION 0x01
#define NONCE_LEN 12
#define TAG_LEN 16
#define SEAL_MAX (64 * 1024)

struct masterkey {
	struct secret key;
};

/* See masterkey.h: 32 bytes of OpenSSL's generator, written atomically 0600. */
int
masterkey_create(const char *path)
{
	uint8_t key[MASTERKEY_LEN];
	struct stat st;
	int rc;

	if (stat(path, &st) == 0)
		return or_error("%s already exists; a master key is never replaced", path);
	if (errno != ENOENT)
		return or_error("%s: %s", path, strerror(errno));
	if (RAND_bytes(key, sizeof(key)) != 1)
		return or_error("random generator failed");
	rc = file_write_atomic(path, key, sizeof(key), 0600);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* See masterkey.h: the mode and size are checked before the key is kept. */
int
masterkey_load(const char *path, struct masterkey **out)
{
	struct masterkey *mk = NULL;
	uint8_t *data = NULL;
	struct stat st;
	size_t len = 0;
	int rc = -1;

	*out = NULL;
	if (stat(path, &st) == -1)
		return or_error("master key %s: %s", path, strerror(errno));
	if ((st.st_mode & 077) != 0)
		return or_error("master key %s is readable by group or others (mode %03o); it must "
				"be 0600",
				path, (unsigned)(st.st_mode & 0777));
	if (file_read_all(path, MASTERKEY_LEN + 1, &data, &len) == -1)
		return or_error_prefix("master key");
	if (len != MASTERKEY_LEN) {
		or_error("master key %s has %zu bytes, not %d", path, len, MASTERKEY_LEN);
		goto out;
	}
	mk = calloc(1, sizeof(*mk));
	if (mk == NULL || secret_from(&mk->key, data, len) == -1) {
		free(mk);
		mk = NULL;
		or_error("out of memory");
		goto out;
	}
	*out = mk;
	rc = 0;
out:
	if (data != NULL) {
		OPENSSL_cleanse(data, len);
		free(data);
	}
	return rc;
}

/* Frees the key; its bytes are zeroed. */
void
masterkey_free(struct masterkey *mk)
{
	if (mk == NULL)
		return;
	secret_free(&mk->key);
	free(mk);
}

/* Runs AES-256-GCM one way or the other over in into out; tag is written or checked. */
static int
gcm(const struct masterkey *mk, int encrypt, const uint8_t *nonce, const char *context,
    const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n, rc = -1;

	if (ctx == NULL)
		return or_error("out of memory");
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, mk->key.data, nonce, encrypt) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &n, (const uint8_t *)context, (int)strlen(context)) != 1 ||
	    (len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)) {
		or_error("AES-256-GCM failed");
		goto out;
	}
	if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1) {
		or_error("AES-256-GCM failed");
		goto out;
	}
	if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1) {
		or_error(encrypt ? "AES-256-GCM failed"
				 : "sealed value does not verify: tampered, truncated, for another "
				   "record, or sealed under another master key");
		goto out;
	}
	if (encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) {
		or_error("AES-256-GCM failed");
		goto out;
	}
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* See masterkey.h: a fresh random nonce for every value. */
int
masterkey_seal(const struct masterkey *mk, const char *context, const void *data, size_t len,
	       char **sealed)
{
	size_t total = 1 + NONCE_LEN + len + TAG_LEN;
	uint8_t *buf;
	int rc = -1;

	*sealed = NULL;
	if (len > SEAL_MAX)
		return or_error("value of %zu bytes is too large to seal", len);
	buf = calloc(1, total);
	if (buf == NULL)
		return or_error("out of memory");
	buf[0] = SEAL_VERSION;
	if (RAND_bytes(buf + 1, NONCE_LEN) != 1) {
		or_error("random generator failed");
		goto out;
	}
	if (gcm(mk, 1, buf + 1, context, data, len, buf + 1 + NONCE_LEN,
		buf + 1 + NONCE_LEN + len) == -1)
		goto out;
	*sealed = base64_encode(buf, total);
	if (*sealed == NULL) {
		or_error("out of memory");
		goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

/* See masterkey.h: nothing of the value is returned unless the tag verifies. */
int
masterkey_open(const struct masterkey *mk, const char *context, const char *sealed,
	       struct secret *out)
{
	uint8_t *buf = NULL;
	size_t len = 0, plen;
	int rc = -1;

	out->data = NULL;
	out->len = 0;
	if (strlen(sealed) > 2 * SEAL_MAX)
		return or_error("sealed value is too large");
	if (base64_decode(sealed, "sealed value", &buf, &len) == -1)
		return -1;
	if (len < 1 + NONCE_LEN + TAG_LEN || buf[0] != SEAL_VERSION) {
		or_error("sealed value is truncated or of an unknown version");
		goto out;
	}
	plen = len - 1 - NONCE_LEN - TAG_LEN;
	if (secret_alloc(out, plen) == -1)
		goto out;
	if (gcm(mk, 0, buf + 1, context, buf + 1 + NONCE_LEN, plen, out->data,
		buf + 1 + NONCE_LEN + plen) == -1) {
		secret_free(out);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}
