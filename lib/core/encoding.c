/*
 * Hex and base64 on top of OpenSSL's encoders. We only add the strictness
 * checks OpenSSL leaves to the caller (alphabet, length, padding).
 */
#include "core/encoding.h"

#include "core/error.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Lower-case hex of buf into out (2*len+1 bytes); trusts the caller for the size. */
void
hex_encode(const uint8_t *buf, size_t len, char *out)
{
	/* OPENSSL_buf2hexstr_ex writes upper case; the project prints lower case. */
	if (len == 0 || OPENSSL_buf2hexstr_ex(out, 2 * len + 1, NULL, buf, len, '\0') != 1) {
		out[0] = '\0';
		return;
	}
	for (size_t i = 0; out[i] != '\0'; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
}

/* True when every character is a hex digit. */
int
is_hex_string(const char *text)
{
	for (; *text != '\0'; text++)
		if (!isxdigit((unsigned char)*text))
			return 0;
	return 1;
}

/* Strict hex (even length, hex digits only) into a new OpenSSL buffer. */
int
hex_decode(const char *hex, const char *what, uint8_t **out, size_t *outlen)
{
	size_t len = strlen(hex);
	size_t decoded = 0;

	*out = NULL;
	*outlen = 0;
	if (!is_hex_string(hex))
		return or_error("%s is not hexadecimal", what);
	if (len % 2 != 0)
		return or_error("%s has an odd number of hex digits (%zu)", what, len);
	if (len == 0) {
		*out = OPENSSL_zalloc(1);
		return *out == NULL ? or_error("out of memory") : 0;
	}
	*out = OPENSSL_malloc(len / 2);
	if (*out == NULL)
		return or_error("out of memory");
	if (OPENSSL_hexstr2buf_ex(*out, len / 2, &decoded, hex, '\0') != 1) {
		OPENSSL_clear_free(*out, len / 2);
		*out = NULL;
		return or_error("%s is not valid hex", what);
	}
	*outlen = decoded;
	return 0;
}

/* Standard base64 with padding, no line breaks, NUL-terminated. */
char *
base64_encode(const uint8_t *buf, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, buf, (int)len);
	return out;
}

/*
 * Strict base64: alphabet, length a multiple of 4 and padding only at the end
 * are checked before OpenSSL decodes.
 */
int
base64_decode(const char *text, const char *what, uint8_t **out, size_t *outlen)
{
	size_t len = strlen(text), padding = 0;
	int decoded;

	*out = NULL;
	*outlen = 0;
	if (len % 4 != 0)
		return or_error("%s is not base64 (length %zu is not a multiple of 4)", what, len);
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (c == '=') {
			if (i < len - 2 || (i == len - 2 && text[len - 1] != '='))
				return or_error("%s is not base64 (misplaced '=')", what);
			padding++;
		} else if (!isalnum((unsigned char)c) && c != '+' && c != '/') {
			return or_error("%s is not base64 (character %zu)", what, i + 1);
		}
	}
	*out = malloc(len / 4 * 3 + 1);
	if (*out == NULL)
		return or_error("out of memory");
	decoded = EVP_DecodeBlock(*out, (const unsigned char *)text, (int)len);
	if (decoded < 0) {
		free(*out);
		*out = NULL;
		return or_error("%s is not valid base64", what);
	}
	/* EVP_DecodeBlock counts padding as zero bytes; take them back off. */
	*outlen = (size_t)decoded - padding;
	return 0;
}
