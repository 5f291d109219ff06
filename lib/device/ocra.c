/*
 * RFC 6287 OCRA. Parsing trusts nothing: every suite and every input is
 * checked against the RFC's grammar before any byte of DataInput is built.
 * The HMAC is delegated (struct ocra_hmac) so the key may stay in a TPM.
 */
#include "device/ocra.h"

#include "core/encoding.h"
#include "core/error.h"

#include <ctype.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	enum ocra_hash hash;
	size_t size;
	const char *digest;
} hashes[] = {
	{"SHA1", OCRA_HASH_SHA1, 20, "SHA1"},
	{"SHA256", OCRA_HASH_SHA256, 32, "SHA256"},
	{"SHA512", OCRA_HASH_SHA512, 64, "SHA512"},
};

/* Bytes of the hash's output; trusts hash to be an enum value. */
size_t
ocra_hash_size(enum ocra_hash hash)
{
	return hashes[hash].size;
}

/* "SHA1", "SHA256" or "SHA512". */
const char *
ocra_hash_name(enum ocra_hash hash)
{
	return hashes[hash].name;
}

/* Matches exactly len bytes of text against the three hash names. */
static int
parse_hash(const char *text, size_t len, enum ocra_hash *hash)
{
	for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
		if (strlen(hashes[i].name) == len && memcmp(hashes[i].name, text, len) == 0) {
			*hash = hashes[i].hash;
			return 0;
		}
	}
	return -1;
}

/* Parses 1 to maxdigits decimal digits without a leading zero (a lone "0" is fine). */
static int
parse_small_uint(const char *text, size_t len, size_t maxdigits, unsigned *out)
{
	unsigned v = 0;

	if (len == 0 || len > maxdigits || (len > 1 && text[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)text[i]))
			return -1;
		v = v * 10 + (unsigned)(text[i] - '0');
	}
	*out = v;
	return 0;
}

/* "HOTP-SHA1-6": the CryptoFunction part. */
static int
parse_crypto_function(const char *text, size_t len, struct ocra_suite *s)
{
	const char *hash, *dash;
	unsigned digits;

	if (len < 5 || memcmp(text, "HOTP-", 5) != 0)
		return or_error("crypto function must start with HOTP-");
	hash = text + 5;
	dash = memchr(hash, '-', len - 5);
	if (dash == NULL || parse_hash(hash, (size_t)(dash - hash), &s->hash) == -1)
		return or_error("crypto function must be HOTP-SHA1, HOTP-SHA256 or HOTP-SHA512 "
				"followed by -digits");
	if (parse_small_uint(dash + 1, (size_t)(text + len - dash - 1), 2, &digits) == -1 ||
	    (digits != 0 && (digits < 4 || digits > 10)))
		return or_error("truncation must be 0 or 4 to 10 digits");
	s->digits = digits;
	return 0;
}

/* "QA10": format and length 04 to 64. */
static int
parse_question_spec(const char *tok, size_t len, struct ocra_suite *s)
{
	unsigned max;

	if (len != 4 || (tok[1] != 'A' && tok[1] != 'N' && tok[1] != 'H') ||
	    !isdigit((unsigned char)tok[2]) || !isdigit((unsigned char)tok[3]))
		return or_error("question must be QA, QN or QH followed by two digits (04 to 64)");
	max = (unsigned)((tok[2] - '0') * 10 + (tok[3] - '0'));
	if (max < 4 || max > 64)
		return or_error("question length must be 04 to 64, not %02u", max);
	s->question_format = tok[1];
	s->question_max = max;
	return 0;
}

/* "S064": session information of 001 to 512 bytes. */
static int
parse_session_spec(const char *tok, size_t len, struct ocra_suite *s)
{
	unsigned n = 0;

	if (len != 4)
		return or_error("session information must be S followed by three digits");
	for (size_t i = 1; i < 4; i++) {
		if (!isdigit((unsigned char)tok[i]))
			return or_error("session information must be S followed by three digits");
		n = n * 10 + (unsigned)(tok[i] - '0');
	}
	if (n < 1 || n > 512)
		return or_error("session information length must be 001 to 512 bytes");
	s->session_len = n;
	return 0;
}

/* "T30S", "T1M", "T24H": the time step in seconds, within the RFC's ranges. */
static int
parse_time_spec(const char *tok, size_t len, struct ocra_suite *s)
{
	char unit = tok[len - 1];
	unsigned n;

	if (len < 3 || parse_small_uint(tok + 1, len - 2, 2, &n) == -1)
		return or_error("timestamp must be T followed by a step such as 30S, 1M or 24H");
	switch (unit) {
	case 'S':
	case 'M':
		if (n < 1 || n > 59)
			return or_error("time step in %s must be 1 to 59",
					unit == 'S' ? "seconds" : "minutes");
		s->time_step = unit == 'S' ? n : n * 60UL;
		break;
	case 'H':
		if (n > 48)
			return or_error("time step in hours must be 0 to 48");
		s->time_step = n * 3600UL;
		break;
	default:
		return or_error("time step unit must be S, M or H");
	}
	s->timestamp = true;
	return 0;
}

/*
 * DataInput: [C] Q [P] [S] [T], in that order, separated by '-'. `stage`
 * enforces the order and that each appears at most once.
 */
static int
parse_data_input(const char *text, struct ocra_suite *s)
{
	enum { AT_C, AT_Q, AT_P, AT_S, AT_T, AT_END } stage = AT_C;
	const char *tok = text;

	if (*text == '\0')
		return or_error("data input is empty; a question (Q..) is required");
	while (tok != NULL) {
		const char *dash = strchr(tok, '-');
		size_t len = dash ? (size_t)(dash - tok) : strlen(tok);

		if (len == 0)
			return or_error("empty field in data input");
		if (len == 1 && tok[0] == 'C' && stage == AT_C) {
			s->counter = true;
			stage = AT_Q;
		} else if (tok[0] == 'Q' && stage <= AT_Q) {
			if (parse_question_spec(tok, len, s) == -1)
				return -1;
			stage = AT_P;
		} else if (tok[0] == 'P' && stage == AT_P) {
			if (parse_hash(tok + 1, len - 1, &s->password_hash) == -1)
				return or_error("password hash must be PSHA1, PSHA256 or PSHA512");
			s->password = true;
			stage = AT_S;
		} else if (tok[0] == 'S' && stage >= AT_P && stage <= AT_S) {
			if (parse_session_spec(tok, len, s) == -1)
				return -1;
			stage = AT_T;
		} else if (tok[0] == 'T' && stage >= AT_P && stage <= AT_T) {
			if (parse_time_spec(tok, len, s) == -1)
				return -1;
			stage = AT_END;
		} else if (stage == AT_Q || stage == AT_C) {
			return or_error("data input must begin with an optional C and then a "
					"question (Q..), not '%.*s'",
					(int)len, tok);
		} else {
			return or_error("unexpected '%.*s' in data input (order is C, Q, P, S, T, "
					"each at most once)",
					(int)len, tok);
		}
		tok = dash ? dash + 1 : NULL;
	}
	if (stage <= AT_Q)
		return or_error("data input has no question (Q..)");
	return 0;
}

/*
 * Parses an untrusted suite string into suite, all or nothing, with a message
 * naming the faulty part.
 */
int
ocra_suite_parse(const char *text, struct ocra_suite *suite)
{
	const char *c1, *c2;
	struct ocra_suite s;

	memset(&s, 0, sizeof(s));
	if (strlen(text) > OCRA_SUITE_MAX)
		return or_error("malformed OCRA suite: longer than %d characters", OCRA_SUITE_MAX);
	c1 = strchr(text, ':');
	c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (c1 == NULL || c2 == NULL || strchr(c2 + 1, ':') != NULL)
		return or_error("malformed OCRA suite '%s': expected "
				"Algorithm:CryptoFunction:DataInput",
				text);
	if (c1 - text != 6 || memcmp(text, "OCRA-1", 6) != 0)
		return or_error("malformed OCRA suite '%s': algorithm must be OCRA-1", text);
	if (parse_crypto_function(c1 + 1, (size_t)(c2 - c1 - 1), &s) == -1 ||
	    parse_data_input(c2 + 1, &s) == -1)
		return or_error_prefix("malformed OCRA suite '%s'", text);
	strcpy(s.text, text);
	*suite = s;
	return 0;
}

/* Checks a question's length and alphabet against the suite. */
int
ocra_check_question(const struct ocra_suite *suite, const char *q)
{
	size_t len = strlen(q);

	/*
	 * One challenge is 4 to xx characters; in mutual challenge-response the
	 * question is two challenges concatenated (RFC 6287 section 7.3), so up to
	 * twice xx. Both fit the 128-byte question field for every format.
	 */
	if (len < 4)
		return or_error("question is too short: %zu characters, at least 4", len);
	if (len > 2 * (size_t)suite->question_max)
		return or_error("question is too long: %zu characters, at most %u "
				"(two challenges of %u)",
				len, 2 * suite->question_max, suite->question_max);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)q[i];
		if ((suite->question_format == 'N' && !isdigit(c)) ||
		    (suite->question_format == 'H' && !isxdigit(c)) ||
		    (suite->question_format == 'A' && !isalnum(c)))
			return or_error("question is not %s: character %zu is '%c'",
					suite->question_format == 'N'	? "numeric"
					: suite->question_format == 'H' ? "hexadecimal"
									: "alphanumeric",
					i + 1, isprint(c) ? c : '?');
	}
	return 0;
}

/* Writes hex digits nibble by nibble, left-aligned, as the reference code does. */
static void
put_nibbles(uint8_t *field, const char *hex)
{
	for (size_t i = 0; hex[i] != '\0'; i++) {
		unsigned char c = (unsigned char)hex[i];
		uint8_t v = (uint8_t)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
		field[i / 2] |= (uint8_t)(i % 2 == 0 ? v << 4 : v);
	}
}

/* The question field: numeric questions are the hex digits of the decimal number. */
static int
encode_question(const struct ocra_suite *suite, const char *q, uint8_t *field)
{
	BIGNUM *bn = NULL;
	char *hex = NULL, *digits;

	switch (suite->question_format) {
	case 'A':
		memcpy(field, q, strlen(q));
		return 0;
	case 'H':
		put_nibbles(field, q);
		return 0;
	default:
		if (BN_dec2bn(&bn, q) == 0 || (hex = BN_bn2hex(bn)) == NULL) {
			BN_free(bn);
			return or_error("cannot convert numeric question");
		}
		/* BN_bn2hex pads to whole bytes; the RFC wants no leading zero digits. */
		digits = hex;
		while (digits[0] == '0' && digits[1] != '\0')
			digits++;
		put_nibbles(field, digits);
		OPENSSL_free(hex);
		BN_free(bn);
		return 0;
	}
}

/* Writes v as 8 big-endian bytes. */
static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Every input the suite names is given and fits, and no other is. */
static int
check_inputs(const struct ocra_suite *s, const struct ocra_input *in)
{
	if (s->counter && !in->has_counter)
		return or_error("suite %s needs a counter", s->text);
	if (!s->counter && in->has_counter)
		return or_error("suite %s takes no counter", s->text);
	if (in->question == NULL)
		return or_error("suite %s needs a question", s->text);
	if (ocra_check_question(s, in->question) == -1)
		return -1;
	if (s->password && in->password_hash == NULL)
		return or_error("suite %s needs a password hash (%s)", s->text,
				ocra_hash_name(s->password_hash));
	if (!s->password && in->password_hash != NULL)
		return or_error("suite %s takes no password hash", s->text);
	if (s->password && (in->password_hash_len == 0 ||
			    in->password_hash_len > ocra_hash_size(s->password_hash)))
		return or_error("password hash must be a %s hash of %zu bytes, not %zu bytes",
				ocra_hash_name(s->password_hash), ocra_hash_size(s->password_hash),
				in->password_hash_len);
	if (s->session_len && in->session == NULL)
		return or_error("suite %s needs session information (%u bytes)", s->text,
				s->session_len);
	if (!s->session_len && in->session != NULL)
		return or_error("suite %s takes no session information", s->text);
	if (s->session_len && in->session_len > s->session_len)
		return or_error("session information is %zu bytes, at most %u", in->session_len,
				s->session_len);
	if (s->timestamp && !in->has_timestamp)
		return or_error("suite %s needs a timestamp", s->text);
	if (!s->timestamp && in->has_timestamp)
		return or_error("suite %s takes no timestamp", s->text);
	return 0;
}

/* Builds the RFC's DataInput from checked inputs (see docs/ocra.md). */
int
ocra_data_input(const struct ocra_suite *s, const struct ocra_input *in, uint8_t **msg,
		size_t *msg_len)
{
	size_t suite_len = strlen(s->text), len, pos = 0, plen;
	uint8_t *buf;

	*msg = NULL;
	*msg_len = 0;
	if (check_inputs(s, in) == -1)
		return -1;
	plen = s->password ? ocra_hash_size(s->password_hash) : 0;
	len = suite_len + 1 + (s->counter ? 8 : 0) + OCRA_QUESTION_FIELD + plen + s->session_len +
	      (s->timestamp ? 8 : 0);
	buf = OPENSSL_zalloc(len);
	if (buf == NULL)
		return or_error("out of memory");
	memcpy(buf, s->text, suite_len);
	pos = suite_len + 1; /* the 0x00 separator is already zero */
	if (s->counter) {
		put_be64(buf + pos, in->counter);
		pos += 8;
	}
	if (encode_question(s, in->question, buf + pos) == -1) {
		OPENSSL_clear_free(buf, len);
		return -1;
	}
	pos += OCRA_QUESTION_FIELD;
	/* Shorter password hashes and session values are left-padded with zeros. */
	if (s->password) {
		memcpy(buf + pos + plen - in->password_hash_len, in->password_hash,
		       in->password_hash_len);
		pos += plen;
	}
	if (s->session_len) {
		if (in->session_len)
			memcpy(buf + pos + s->session_len - in->session_len, in->session,
			       in->session_len);
		pos += s->session_len;
	}
	if (s->timestamp)
		put_be64(buf + pos, in->timestamp);
	*msg = buf;
	*msg_len = len;
	return 0;
}

/* RFC 4226 dynamic truncation, or the whole MAC in hex for digits 0. */
static void
truncate_mac(const uint8_t *mac, size_t mac_len, unsigned digits, char *out)
{
	uint64_t modulus = 1;
	uint32_t binary;
	unsigned offset;

	if (digits == 0) {
		hex_encode(mac, mac_len, out);
		return;
	}
	offset = mac[mac_len - 1] & 0x0f;
	binary = ((uint32_t)(mac[offset] & 0x7f) << 24) | ((uint32_t)mac[offset + 1] << 16) |
		 ((uint32_t)mac[offset + 2] << 8) | mac[offset + 3];
	for (unsigned i = 0; i < digits; i++)
		modulus *= 10;
	snprintf(out, OCRA_RESPONSE_MAX, "%0*llu", (int)digits,
		 (unsigned long long)(binary % modulus));
}

/*
 * One response: DataInput, the HMAC through the given provider, truncation.
 * Wipes the MAC and the message.
 */
int
ocra_compute(const struct ocra_suite *suite, const struct ocra_input *in,
	     const struct ocra_hmac *hmac, char *out, size_t out_cap)
{
	uint8_t *msg = NULL, mac[OCRA_HASH_MAX];
	size_t msg_len, mac_len = 0;
	int rc = -1;

	if (out_cap < OCRA_RESPONSE_MAX)
		return or_error("response buffer too small");
	if (ocra_data_input(suite, in, &msg, &msg_len) == -1)
		return -1;
	if (hmac->compute(hmac->ctx, suite->hash, msg, msg_len, mac, &mac_len) == -1)
		goto out;
	if (mac_len != ocra_hash_size(suite->hash)) {
		or_error("HMAC provider returned %zu bytes for %s", mac_len,
			 ocra_hash_name(suite->hash));
		goto out;
	}
	truncate_mac(mac, mac_len, suite->digits, out);
	rc = 0;
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_clear_free(msg, msg_len);
	return rc;
}

/* Tries every counter and time step in the window, comparing each in constant time. */
int
ocra_verify(const struct ocra_suite *suite, const struct ocra_input *in,
	    const struct ocra_hmac *hmac, const char *response, const struct ocra_window *win,
	    bool *ok, uint64_t *matched_counter, uint64_t *matched_time)
{
	static const struct ocra_window none;
	struct ocra_input probe = *in;
	char expected[OCRA_RESPONSE_MAX];
	unsigned c_ahead, t_behind, t_ahead;
	bool found = false;
	int rc = 0;

	*ok = false;
	if (win == NULL)
		win = &none;
	c_ahead = suite->counter ? win->counter_ahead : 0;
	t_behind = suite->timestamp ? win->time_behind : 0;
	t_ahead = suite->timestamp ? win->time_ahead : 0;
	if (suite->timestamp && in->has_timestamp && in->timestamp < t_behind)
		t_behind = (unsigned)in->timestamp;

	/* Every candidate is computed and compared, so timing does not tell which matched. */
	for (uint64_t dc = 0; rc == 0 && dc <= c_ahead; dc++) {
		for (uint64_t dt = 0; rc == 0 && dt <= (uint64_t)t_behind + t_ahead; dt++) {
			probe.counter = in->counter + dc;
			probe.timestamp = in->timestamp - t_behind + dt;
			if (ocra_compute(suite, &probe, hmac, expected, sizeof(expected)) == -1) {
				rc = -1;
				break;
			}
			if (ct_equal_str(expected, response) && !found) {
				found = true;
				if (matched_counter)
					*matched_counter = probe.counter;
				if (matched_time)
					*matched_time = probe.timestamp;
			}
		}
	}
	/* An expected response is as good as the key for this challenge: wipe it on every path. */
	OPENSSL_cleanse(expected, sizeof(expected));
	*ok = rc == 0 && found;
	return rc;
}

/* Time steps of the suite since the epoch at now. */
int
ocra_time_steps(const struct ocra_suite *suite, time_t now, uint64_t *steps)
{
	if (!suite->timestamp)
		return or_error("suite %s has no timestamp", suite->text);
	if (suite->time_step == 0)
		return or_error("suite %s has a time step of zero; give the timestamp explicitly",
				suite->text);
	if (now < 0)
		return or_error("time before the epoch");
	*steps = (uint64_t)now / suite->time_step;
	return 0;
}

/* A random question of the suite's full length, without modulo bias. */
int
ocra_random_question(const struct ocra_suite *suite, char *out, size_t out_cap)
{
	static const char alnum[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	const char *alphabet;
	size_t n = suite->question_max, alen, filled = 0;
	unsigned limit;

	if (out_cap <= n)
		return or_error("question buffer too small");
	alphabet = suite->question_format == 'A'   ? alnum
		   : suite->question_format == 'H' ? "0123456789abcdef"
						   : "0123456789";
	alen = strlen(alphabet);
	/* Rejection sampling: bytes at or past the last whole multiple of alen are redrawn. */
	limit = 256 - 256 % (unsigned)alen;
	while (filled < n) {
		unsigned char rnd;
		if (RAND_bytes(&rnd, 1) != 1)
			return or_error("random generator failed");
		if (rnd < limit)
			out[filled++] = alphabet[rnd % alen];
	}
	out[n] = '\0';
	return 0;
}

/* HMAC with the key in ctx (a struct secret) through OpenSSL. */
int
ocra_hmac_software(void *ctx, enum ocra_hash hash, const uint8_t *msg, size_t msg_len, uint8_t *mac,
		   size_t *mac_len)
{
	const struct secret *key = ctx;

	if (EVP_Q_mac(NULL, "HMAC", NULL, hashes[hash].digest, NULL, key->data, key->len, msg,
		      msg_len, mac, OCRA_HASH_MAX, mac_len) == NULL)
		return or_error("HMAC-%s failed", hashes[hash].name);
	return 0;
}
