/*
 * Hex and base64, done by OpenSSL. All decoders are strict: they refuse
 * anything that is not exactly of the expected alphabet, with a message that
 * names what was wrong.
 */
#ifndef ONRAMP_ENCODING_H
#define ONRAMP_ENCODING_H

#include <stddef.h>
#include <stdint.h>

/* Lower-case hex of buf into out (2*len+1 bytes). */
void hex_encode(const uint8_t *buf, size_t len, char *out);

/*
 * Decodes an even-length hex string (either case) into a newly allocated buffer
 * (OPENSSL_malloc'd; free with OPENSSL_clear_free). `what` names the value in
 * the error message ("key", "session information", ...).
 */
int hex_decode(const char *hex, const char *what, uint8_t **out, size_t *outlen);

/* True when every character of text is a hex digit (the empty string is). */
int is_hex_string(const char *text);

/* Standard base64 with padding, no line breaks; returns a malloc'd string. */
char *base64_encode(const uint8_t *buf, size_t len);

/* Decodes standard base64 with padding into a malloc'd buffer. */
int base64_decode(const char *text, const char *what, uint8_t **out, size_t *outlen);

#endif
