/*
 * Pre-shared secrets and their proofs, on OpenSSL's RAND and EVP_MAC. The
 * only secret inputs are the secret's text and the proof; neither is logged
 * or put in an error message.
 */
#include "proto/conductor_psk.h"

#include "core/encoding.h"
#include "core/error.h"

#include <ctype.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <string.h>

/* 36 random bytes: 4 become the identifier, 32 the secret. */
int
psk_generate(char id[PSK_ID_LEN + 1], struct secret *text)
{
	uint8_t raw[PSK_ID_LEN / 2 + 32];
	char hex[2 * sizeof(raw) + 1];
	int rc = -1;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return or_error("no random bytes for a pre-shared secret");
	hex_encode(raw, sizeof(raw), hex);
	if (secret_alloc(text, PSK_TEXT_LEN + 1) == -1)
		goto out;
	memcpy(text->data, "orpsk-", 6);
	memcpy(text->data + 6, hex, PSK_ID_LEN);
	text->data[6 + PSK_ID_LEN] = '-';
	memcpy(text->data + 7 + PSK_ID_LEN, hex + PSK_ID_LEN, 64);
	text->len = PSK_TEXT_LEN; /* the byte after stays NUL */
	memcpy(id, hex, PSK_ID_LEN);
	id[PSK_ID_LEN] = '\0';
	rc = 0;
out:
	secure_zero(raw, sizeof(raw));
	secure_zero(hex, sizeof(hex));
	return rc;
}

/* See conductor_psk.h; the message never echoes the text. */
int
psk_parse_id(const char *text, size_t len, char id[PSK_ID_LEN + 1])
{
	if (len != PSK_TEXT_LEN || memcmp(text, "orpsk-", 6) != 0 || text[6 + PSK_ID_LEN] != '-')
		return or_error("pre-shared secret: not of the form orpsk-<8 hex>-<64 hex>");
	for (size_t i = 6; i < len; i++)
		if (i != 6 + PSK_ID_LEN && !isxdigit((unsigned char)text[i]))
			return or_error(
				"pre-shared secret: not of the form orpsk-<8 hex>-<64 hex>");
	for (size_t i = 0; i < PSK_ID_LEN; i++)
		id[i] = (char)tolower((unsigned char)text[6 + i]);
	id[PSK_ID_LEN] = '\0';
	return 0;
}

/* See conductor_psk.h. */
bool
conductor_valid_subject(const char *subject)
{
	size_t len = subject ? strlen(subject) : 0;

	if (len == 0 || len > CONDUCTOR_SUBJECT_MAX)
		return false;
	for (const char *p = subject; *p != '\0'; p++)
		if (!isgraph((unsigned char)*p))
			return false;
	return true;
}

/* HMAC-SHA256 through EVP_MAC over the three parts in order. */
int
psk_proof(const struct secret *psk, const uint8_t nonce[CONDUCTOR_NONCE_LEN], const char *subject,
	  const uint8_t exporter[CONDUCTOR_EXPORTER_LEN], uint8_t out[CONDUCTOR_PROOF_LEN])
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	size_t outlen = 0;
	int rc = -1;

	if (psk == NULL || psk->len == 0)
		return or_error("no pre-shared secret");
	if (!conductor_valid_subject(subject))
		return or_error("asset ID must be 1 to %d printable characters without spaces",
				CONDUCTOR_SUBJECT_MAX);
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL || (ctx = EVP_MAC_CTX_new(mac)) == NULL ||
	    EVP_MAC_init(ctx, psk->data, psk->len, params) != 1 ||
	    EVP_MAC_update(ctx, nonce, CONDUCTOR_NONCE_LEN) != 1 ||
	    EVP_MAC_update(ctx, (const uint8_t *)subject, strlen(subject)) != 1 ||
	    EVP_MAC_update(ctx, exporter, CONDUCTOR_EXPORTER_LEN) != 1 ||
	    EVP_MAC_final(ctx, out, &outlen, CONDUCTOR_PROOF_LEN) != 1 ||
	    outlen != CONDUCTOR_PROOF_LEN) {
		or_error("HMAC-SHA256 failed");
		goto out;
	}
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rc;
}

/* See conductor_psk.h. */
bool
psk_proof_check(const struct secret *psk, const uint8_t nonce[CONDUCTOR_NONCE_LEN],
		const char *subject, const uint8_t exporter[CONDUCTOR_EXPORTER_LEN],
		const uint8_t proof[CONDUCTOR_PROOF_LEN])
{
	uint8_t expect[CONDUCTOR_PROOF_LEN];
	bool ok;

	if (psk_proof(psk, nonce, subject, exporter, expect) == -1)
		return false;
	ok = ct_equal(expect, proof, sizeof(expect));
	secure_zero(expect, sizeof(expect));
	return ok;
}
