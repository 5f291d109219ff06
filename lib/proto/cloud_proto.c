/*
 * Field checks of the cloud protocols. Everything here treats its input as
 * hostile: lengths first, then the alphabet, then the structure.
 */
#include "proto/cloud_proto.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/x509.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * Letters, digits, '.', '_', '-' and the extra characters, not starting with
 * '.' or '-' (no hidden names, no options).
 */
static int
check_identifier(const char *what, const char *s, size_t max, const char *extra)
{
	size_t len = strnlen(s, max + 1);

	if (len == 0)
		return or_error("%s is empty", what);
	if (len > max)
		return or_error("%s is longer than %zu characters", what, max);
	if (s[0] == '.' || s[0] == '-')
		return or_error("%s must not start with '%c'", what, s[0]);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '.' && c != '_' && c != '-' &&
		    (c == '\0' || strchr(extra, c) == NULL))
			return or_error("%s may hold only letters, digits, '.', '_', '-'%s "
					"(character %zu is not one)",
					what, extra[0] ? " and ':'" : "", i + 1);
	}
	return 0;
}

/* See cloud_proto.h. */
int
cloud_check_serial(const char *serial)
{
	return check_identifier("serial", serial, CLOUD_SERIAL_MAX, ":");
}

/* See cloud_proto.h. */
int
cloud_check_name(const char *what, const char *name)
{
	return check_identifier(what, name, CLOUD_NAME_MAX, "");
}

/* See cloud_proto.h. */
int
cloud_check_claim_code(const char *code)
{
	size_t len = strnlen(code, CLOUD_CLAIM_CODE_MAX + 1);

	if (len < 4 || len > CLOUD_CLAIM_CODE_MAX)
		return or_error("claim code must have 4 to %d characters", CLOUD_CLAIM_CODE_MAX);
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)code[i]) && code[i] != '-')
			return or_error("claim code may hold only letters, digits and '-'");
	return 0;
}

/* Exactly n lower-case hex digits when exact, else min..max digits of either case. */
static int
check_hex(const char *what, const char *s, size_t min, size_t max, bool lower)
{
	size_t len = strnlen(s, max + 1);

	if (len < min || len > max) {
		if (min == max)
			return or_error("%s must have exactly %zu hex digits", what, min);
		return or_error("%s must have %zu to %zu hex digits", what, min, max);
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isxdigit(c) || (lower && isupper(c)))
			return or_error("%s must be %shex digits", what,
					lower ? "lower-case " : "");
	}
	return 0;
}

/* See cloud_proto.h. */
int
cloud_check_nonce(const char *nonce)
{
	return check_hex("nonce", nonce, CLOUD_NONCE_MIN, CLOUD_NONCE_MAX, false);
}

/* See cloud_proto.h. */
int
cloud_check_token(const char *token)
{
	return check_hex("token", token, CLOUD_TOKEN_HEX, CLOUD_TOKEN_HEX, true);
}

/* See cloud_proto.h. */
int
cloud_check_id(const char *id)
{
	return check_hex("challenge identifier", id, CLOUD_ID_HEX, CLOUD_ID_HEX, true);
}

/* See cloud_proto.h. */
int
cloud_check_claim_hex(const char *what, const char *text)
{
	return check_hex(what, text, CLOUD_CLAIM_SECRET_HEX, CLOUD_CLAIM_SECRET_HEX, true);
}

/* See cloud_proto.h: an address inet_pton takes, or an RFC 1123 name. */
int
cloud_check_host(const char *host)
{
	size_t len = strnlen(host, CLOUD_HOST_MAX + 1), label = 0;
	unsigned char buf[16];

	if (len == 0)
		return or_error("host is empty");
	if (len > CLOUD_HOST_MAX)
		return or_error("host is longer than %d characters", CLOUD_HOST_MAX);
	if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
		return 0;
	/* RFC 1123 names: labels of 1 to 63 letters, digits and inner hyphens. */
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)host[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || host[i - 1] == '-')
				return or_error("host '%.*s' is not a valid name or address",
						(int)len, host);
			label = 0;
			continue;
		}
		if (!isalnum(c) && !(c == '-' && label > 0))
			return or_error("host is not a valid name or address (character %zu)",
					i + 1);
		label++;
	}
	return 0;
}

/* See cloud_proto.h: scheme, host (checked as a host), optional port, nothing more. */
int
cloud_check_url(const char *what, const char *url)
{
	size_t len = strnlen(url, CLOUD_URL_MAX + 1), hlen;
	const char *host, *rest;
	char hostbuf[CLOUD_HOST_MAX + 1];

	if (len > CLOUD_URL_MAX)
		return or_error("%s is longer than %d characters", what, CLOUD_URL_MAX);
	if (strncmp(url, "https://", 8) != 0)
		return or_error("%s must start with https://", what);
	host = url + 8;
	if (*host == '[') {
		rest = strchr(host, ']');
		if (rest == NULL)
			return or_error("%s has an unclosed '[' in its host", what);
		host++;
		hlen = (size_t)(rest++ - host);
	} else {
		rest = host + strcspn(host, ":/?#@[]");
		hlen = (size_t)(rest - host);
	}
	if (hlen == 0 || hlen > CLOUD_HOST_MAX)
		return or_error("%s has no valid host", what);
	memcpy(hostbuf, host, hlen);
	hostbuf[hlen] = '\0';
	if (cloud_check_host(hostbuf) == -1)
		return or_error_prefix("%s", what);
	if (*rest == ':') {
		const char *port = rest + 1;
		unsigned long p = 0;

		/* At most five digits and nothing after them. */
		for (rest = port; isdigit((unsigned char)*rest) && rest - port < 6; rest++)
			p = p * 10 + (unsigned long)(*rest - '0');
		if (rest == port || rest - port > 5 || p == 0 || p > 65535)
			return or_error("%s has a port out of range 1-65535", what);
	}
	if (*rest != '\0')
		return or_error("%s must be an origin, https://host[:port], with nothing after it",
				what);
	return 0;
}

/* See cloud_proto.h: every PEM block must parse as a certificate. */
int
cloud_check_pem(const char *what, const char *pem)
{
	size_t len = strnlen(pem, CLOUD_PEM_MAX + 1);

	if (len > CLOUD_PEM_MAX)
		return or_error("%s is larger than %d bytes", what, CLOUD_PEM_MAX);
	return pki_check_certificates(pem, len, CLOUD_PEM_CERTS_MAX, what);
}

/* See cloud_proto.h. */
int
cloud_check_text(const char *what, const char *text, size_t min, size_t max)
{
	size_t len = strnlen(text, max + 1);

	if (len < min)
		return or_error("%s is empty", what);
	if (len > max)
		return or_error("%s is longer than %zu bytes", what, max);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c < 0x20 || c == 0x7f)
			return or_error("%s holds a control character (byte %zu)", what, i + 1);
	}
	return 0;
}

/* See cloud_proto.h. */
int
cloud_check_psk(const char *psk)
{
	size_t len = strnlen(psk, CLOUD_PSK_MAX + 1);

	/* The message never quotes the secret, not even a part of it. */
	if (len < CLOUD_PSK_MIN || len > CLOUD_PSK_MAX)
		return or_error("pre-shared secret must have %d to %d characters", CLOUD_PSK_MIN,
				CLOUD_PSK_MAX);
	for (size_t i = 0; i < len; i++)
		if (psk[i] < 0x20 || psk[i] > 0x7e)
			return or_error("pre-shared secret must be printable ASCII");
	if (psk[0] == ' ' || psk[len - 1] == ' ')
		return or_error("pre-shared secret must not start or end with a space");
	return 0;
}

/* See cloud_proto.h. */
int
cloud_check_step(const char *step)
{
	size_t len = strnlen(step, CLOUD_STEP_MAX + 1);

	if (len == 0 || len > CLOUD_STEP_MAX)
		return or_error("step must have 1 to %d characters", CLOUD_STEP_MAX);
	if (!islower((unsigned char)step[0]))
		return or_error("step must start with a lower-case letter");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)step[i];
		if (!islower(c) && !isdigit(c) && c != '-')
			return or_error("step may hold only a-z, 0-9 and '-'");
	}
	return 0;
}

/* See cloud_proto.h. */
int
cloud_check_outcome(const char *outcome)
{
	if (strcmp(outcome, "started") == 0 || strcmp(outcome, "ok") == 0 ||
	    strcmp(outcome, "failed") == 0)
		return 0;
	return or_error("outcome must be \"started\", \"ok\" or \"failed\"");
}

/* See cloud_proto.h. */
int
cloud_device_suite(const char *text, struct ocra_suite *suite)
{
	if (ocra_suite_parse(text, suite) == -1)
		return -1;
	if (suite->session_len == 0)
		return or_error("suite %s has no session information (S): the response could "
				"not be bound to the TLS connection",
				suite->text);
	if (suite->counter || suite->password || suite->timestamp)
		return or_error("suite %s uses a counter, password or time step: device suites "
				"take only a question and session information",
				suite->text);
	return 0;
}

/* See cloud_proto.h. */
int
cloud_check_challenge(const struct ocra_suite *suite, const char *challenge)
{
	size_t len = strnlen(challenge, OCRA_QUESTION_FIELD + 1);

	/* A fixed length keeps the concatenation QC||QS unambiguous. */
	if (len != suite->question_max)
		return or_error("challenge must have exactly %u characters", suite->question_max);
	if (ocra_check_question(suite, challenge) == -1)
		return or_error_prefix("challenge");
	return 0;
}

/* See cloud_proto.h: OpenSSL's generator only. */
int
cloud_random_hex(size_t bytes, char *out)
{
	unsigned char buf[64];

	if (bytes > sizeof(buf))
		return or_error("random value too long");
	if (RAND_bytes(buf, (int)bytes) != 1)
		return or_error("random generator failed");
	hex_encode(buf, bytes, out);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* See cloud_proto.h. */
int
cloud_token_hash(const char *token, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return or_error("SHA-256 failed");
	hex_encode(md, len, out);
	return 0;
}
