/*
 * Unit tests for lib/ocra.c: all 70 RFC 6287 Appendix C vectors, every suite
 * form the RFC allows, each validation error, and the verifier's windows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/encoding.h"
#include "core/error.h"
#include "device/ocra.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K20 "3132333435363738393031323334353637383930"
#define K32 K20 "313233343536373839303132"
#define PIN "7110eda4d09e062aa5e4a390b0a572ac0d2c0220"

struct vector {
	char suite[80], key[140], counter[24], question[140], pin[140], session[1100], ts[24],
		expected[140];
};

/* Copies a column that fits; -1 for a column longer than the vector's field. */
static int
copy_column(char *dst, size_t cap, const char *src)
{
	size_t len = strlen(src);

	if (len >= cap)
		return -1;
	memcpy(dst, src, len + 1);
	return 0;
}

/* Splits one TSV line into the eight columns (empty columns allowed). */
static int
parse_line(char *line, struct vector *v)
{
	char *cols[8];
	char *p = line;

	line[strcspn(line, "\r\n")] = '\0';
	for (int i = 0; i < 8; i++) {
		cols[i] = p;
		p = strchr(p, '\t');
		if (p == NULL && i < 7)
			return -1;
		if (p)
			*p++ = '\0';
	}
	if (copy_column(v->suite, sizeof(v->suite), cols[0]) == -1 ||
	    copy_column(v->key, sizeof(v->key), cols[1]) == -1 ||
	    copy_column(v->counter, sizeof(v->counter), cols[2]) == -1 ||
	    copy_column(v->question, sizeof(v->question), cols[3]) == -1 ||
	    copy_column(v->pin, sizeof(v->pin), cols[4]) == -1 ||
	    copy_column(v->session, sizeof(v->session), cols[5]) == -1 ||
	    copy_column(v->ts, sizeof(v->ts), cols[6]) == -1 ||
	    copy_column(v->expected, sizeof(v->expected), cols[7]) == -1)
		return -1;
	return 0;
}

/* Computes a vector's response with the software HMAC; returns 0 or -1. */
static int
compute(const struct vector *v, char *out)
{
	struct ocra_suite suite;
	struct ocra_input in = {0};
	struct secret key = {0};
	uint8_t *raw = NULL, *pin = NULL, *session = NULL;
	size_t raw_len, pin_len = 0, session_len = 0;
	int rc = -1;

	if (ocra_suite_parse(v->suite, &suite) == -1 ||
	    hex_decode(v->key, "key", &raw, &raw_len) == -1 ||
	    secret_from(&key, raw, raw_len) == -1)
		goto out;
	in.question = v->question;
	if (v->counter[0]) {
		in.has_counter = true;
		in.counter = strtoull(v->counter, NULL, 10);
	}
	if (v->pin[0]) {
		if (hex_decode(v->pin, "pin", &pin, &pin_len) == -1)
			goto out;
		in.password_hash = pin;
		in.password_hash_len = pin_len;
	}
	if (v->session[0]) {
		if (hex_decode(v->session, "session", &session, &session_len) == -1)
			goto out;
		in.session = session;
		in.session_len = session_len;
	}
	if (v->ts[0]) {
		in.has_timestamp = true;
		in.timestamp = strtoull(v->ts, NULL, 16);
	}
	rc = ocra_compute(&suite, &in,
			  &(struct ocra_hmac){.compute = ocra_hmac_software, .ctx = &key}, out,
			  OCRA_RESPONSE_MAX);
out:
	OPENSSL_free(raw);
	OPENSSL_free(pin);
	OPENSSL_free(session);
	secret_free(&key);
	return rc;
}

static int
run_vector_file(const char *path)
{
	char line[4096], out[OCRA_RESPONSE_MAX];
	int count = 0;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		struct vector v;
		if (line[0] == '#' || strncmp(line, "suite\t", 6) == 0)
			continue;
		assert_int_equal(parse_line(line, &v), 0);
		if (compute(&v, out) == -1)
			fail_msg("%s q=%s: %s", v.suite, v.question, or_errmsg());
		if (strcmp(out, v.expected) != 0)
			fail_msg("%s q=%s c=%s: got %s, want %s", v.suite, v.question, v.counter,
				 out, v.expected);
		count++;
	}
	fclose(f);
	return count;
}

static void
all_70_appendix_c_vectors(void **state)
{
	(void)state;
	assert_int_equal(run_vector_file(VECTORS_DIR "/ocra-rfc6287-appendix-c.tsv"), 70);
}

static void
shared_partial_vectors_when_present(void **state)
{
	const char *path = "../shared/vectors/ocra-rfc6287-part.tsv";
	char full[512];
	FILE *probe;

	(void)state;
	snprintf(full, sizeof(full), "%s/../../%s", VECTORS_DIR, path);
	probe = fopen(full, "r");
	if (probe == NULL)
		skip();
	fclose(probe);
	assert_true(run_vector_file(full) >= 35);
}

static void
parses_every_suite_form(void **state)
{
	static const char *const good[] = {
		"OCRA-1:HOTP-SHA1-0:QN08",
		"OCRA-1:HOTP-SHA1-4:QA04",
		"OCRA-1:HOTP-SHA256-10:QH64",
		"OCRA-1:HOTP-SHA512-7:C-QN10",
		"OCRA-1:HOTP-SHA1-6:QA10-PSHA1",
		"OCRA-1:HOTP-SHA1-6:QA10-PSHA256",
		"OCRA-1:HOTP-SHA1-6:QA10-PSHA512",
		"OCRA-1:HOTP-SHA1-6:QN08-S064",
		"OCRA-1:HOTP-SHA1-6:QN08-S128",
		"OCRA-1:HOTP-SHA1-6:QN08-S256",
		"OCRA-1:HOTP-SHA1-6:QN08-S512",
		"OCRA-1:HOTP-SHA1-6:QN08-S001",
		"OCRA-1:HOTP-SHA1-6:QN08-S100",
		"OCRA-1:HOTP-SHA1-6:QN08-T1S",
		"OCRA-1:HOTP-SHA1-6:QN08-T59S",
		"OCRA-1:HOTP-SHA1-6:QN08-T30S",
		"OCRA-1:HOTP-SHA1-6:QN08-T1M",
		"OCRA-1:HOTP-SHA1-6:QN08-T59M",
		"OCRA-1:HOTP-SHA1-6:QN08-T0H",
		"OCRA-1:HOTP-SHA1-6:QN08-T48H",
		"OCRA-1:HOTP-SHA512-8:C-QH40-PSHA256-S128-T30S",
		"OCRA-1:HOTP-SHA256-8:C-QA08-S064",
		"OCRA-1:HOTP-SHA256-8:QA08-PSHA1-T1M",
		"OCRA-1:HOTP-SHA256-8:C-QA08-T2H",
	};
	struct ocra_suite s;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (ocra_suite_parse(good[i], &s) == -1)
			fail_msg("%s refused: %s", good[i], or_errmsg());

	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA512-8:C-QH40-PSHA256-S128-T30S", &s), 0);
	assert_int_equal(s.hash, OCRA_HASH_SHA512);
	assert_int_equal(s.digits, 8);
	assert_true(s.counter);
	assert_int_equal(s.question_format, 'H');
	assert_int_equal(s.question_max, 40);
	assert_true(s.password);
	assert_int_equal(s.password_hash, OCRA_HASH_SHA256);
	assert_int_equal(s.session_len, 128);
	assert_true(s.timestamp);
	assert_int_equal(s.time_step, 30);

	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-6:QN08-T2H", &s), 0);
	assert_int_equal(s.time_step, 7200);
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-6:QN08-T5M", &s), 0);
	assert_int_equal(s.time_step, 300);
	assert_false(s.counter || s.password || s.session_len);
}

static void
refuses_malformed_suites(void **state)
{
	static const struct {
		const char *suite, *message_part;
	} bad[] = {
		{"", "expected Algorithm:CryptoFunction:DataInput"},
		{"OCRA-1:HOTP-SHA1-6", "expected Algorithm"},
		{"OCRA-1:HOTP-SHA1-6:QN08:X", "expected Algorithm"},
		{"OCRA-2:HOTP-SHA1-6:QN08", "algorithm must be OCRA-1"},
		{"ocra-1:HOTP-SHA1-6:QN08", "algorithm must be OCRA-1"},
		{"OCRA-1:TOTP-SHA1-6:QN08", "must start with HOTP-"},
		{"OCRA-1:HOTP-MD5-6:QN08", "HOTP-SHA1, HOTP-SHA256 or HOTP-SHA512"},
		{"OCRA-1:HOTP-SHA1:QN08", "HOTP-SHA1, HOTP-SHA256 or HOTP-SHA512"},
		{"OCRA-1:HOTP-SHA1-3:QN08", "0 or 4 to 10"},
		{"OCRA-1:HOTP-SHA1-11:QN08", "0 or 4 to 10"},
		{"OCRA-1:HOTP-SHA1-06:QN08", "0 or 4 to 10"},
		{"OCRA-1:HOTP-SHA1-x:QN08", "0 or 4 to 10"},
		{"OCRA-1:HOTP-SHA1-6:", "data input is empty"},
		{"OCRA-1:HOTP-SHA1-6:C", "no question"},
		{"OCRA-1:HOTP-SHA1-6:QX08", "QA, QN or QH"},
		{"OCRA-1:HOTP-SHA1-6:QN8", "QA, QN or QH"},
		{"OCRA-1:HOTP-SHA1-6:QN03", "04 to 64"},
		{"OCRA-1:HOTP-SHA1-6:QN65", "04 to 64"},
		{"OCRA-1:HOTP-SHA1-6:QN0A", "QA, QN or QH"},
		{"OCRA-1:HOTP-SHA1-6:PSHA1-QN08", "optional C and then a question"},
		{"OCRA-1:HOTP-SHA1-6:QN08-C", "unexpected 'C'"},
		{"OCRA-1:HOTP-SHA1-6:C-C-QN08", "optional C and then a question"},
		{"OCRA-1:HOTP-SHA1-6:QN08-QN08", "unexpected 'QN08'"},
		{"OCRA-1:HOTP-SHA1-6:QN08-PMD5", "PSHA1, PSHA256 or PSHA512"},
		{"OCRA-1:HOTP-SHA1-6:QN08-S64", "S followed by three digits"},
		{"OCRA-1:HOTP-SHA1-6:QN08-S000", "001 to 512"},
		{"OCRA-1:HOTP-SHA1-6:QN08-S513", "001 to 512"},
		{"OCRA-1:HOTP-SHA1-6:QN08-T0S", "1 to 59"},
		{"OCRA-1:HOTP-SHA1-6:QN08-T60S", "1 to 59"},
		{"OCRA-1:HOTP-SHA1-6:QN08-T60M", "1 to 59"},
		{"OCRA-1:HOTP-SHA1-6:QN08-T49H", "0 to 48"},
		{"OCRA-1:HOTP-SHA1-6:QN08-T1D", "unit must be S, M or H"},
		{"OCRA-1:HOTP-SHA1-6:QN08-TM", "T followed by a step"},
		{"OCRA-1:HOTP-SHA1-6:QN08-T01M", "T followed by a step"},
		{"OCRA-1:HOTP-SHA1-6:QN08-T1M-S064", "unexpected 'S064'"},
		{"OCRA-1:HOTP-SHA1-6:QN08-S064-PSHA1", "unexpected 'PSHA1'"},
		{"OCRA-1:HOTP-SHA1-6:QN08--T1M", "empty field"},
		{"OCRA-1:HOTP-SHA1-6:QN08-", "empty field"},
		{"OCRA-1:HOTP-SHA1-6:QN08-X", "unexpected 'X'"},
		{"OCRA-1:HOTP-SHA1-6:QN08-S064-S064", "unexpected 'S064'"},
	};
	struct ocra_suite s;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ocra_suite_parse(bad[i].suite, &s) != -1)
			fail_msg("'%s' was accepted", bad[i].suite);
		if (strstr(or_errmsg(), bad[i].message_part) == NULL)
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].suite, or_errmsg(),
				 bad[i].message_part);
	}
}

/* Runs one computation expected to fail and checks the message. */
static void
expect_input_error(const char *suite_text, const struct ocra_input *in, const char *part)
{
	struct ocra_suite suite;
	struct secret key = {0};
	char out[OCRA_RESPONSE_MAX];

	assert_int_equal(ocra_suite_parse(suite_text, &suite), 0);
	assert_int_equal(secret_from(&key, "12345678901234567890", 20), 0);
	if (ocra_compute(&suite, in, &(struct ocra_hmac){ocra_hmac_software, &key}, out,
			 sizeof(out)) != -1)
		fail_msg("%s: accepted, expected '%s'", suite_text, part);
	if (strstr(or_errmsg(), part) == NULL)
		fail_msg("%s: message '%s' lacks '%s'", suite_text, or_errmsg(), part);
	secret_free(&key);
}

static void
refuses_bad_inputs(void **state)
{
	static const uint8_t pin[20] = {1}, big[65] = {2}, session[64] = {3};
	(void)state;

	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08", &(struct ocra_input){.question = "123"},
			   "too short");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08",
			   &(struct ocra_input){.question = "12345678901234567"}, "too long");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08", &(struct ocra_input){.question = "1234a678"},
			   "not numeric");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QH08", &(struct ocra_input){.question = "12g4"},
			   "not hexadecimal");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QA08", &(struct ocra_input){.question = "ab cd"},
			   "not alphanumeric");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QA08", &(struct ocra_input){0}, "needs a question");
	expect_input_error("OCRA-1:HOTP-SHA1-6:C-QN08", &(struct ocra_input){.question = "1234"},
			   "needs a counter");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08",
			   &(struct ocra_input){.question = "1234", .has_counter = true},
			   "takes no counter");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08-PSHA1",
			   &(struct ocra_input){.question = "1234"}, "needs a password hash");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08",
			   &(struct ocra_input){.question = "1234",
						.password_hash = pin,
						.password_hash_len = 20},
			   "takes no password hash");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08-PSHA256",
			   &(struct ocra_input){.question = "1234",
						.password_hash = big,
						.password_hash_len = 33},
			   "SHA256 hash of 32 bytes");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08-S064", &(struct ocra_input){.question = "1234"},
			   "needs session information");
	expect_input_error(
		"OCRA-1:HOTP-SHA1-6:QN08",
		&(struct ocra_input){.question = "1234", .session = session, .session_len = 64},
		"takes no session information");
	expect_input_error(
		"OCRA-1:HOTP-SHA1-6:QN08-S032",
		&(struct ocra_input){.question = "1234", .session = session, .session_len = 33},
		"at most 32");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08-T1M", &(struct ocra_input){.question = "1234"},
			   "needs a timestamp");
	expect_input_error("OCRA-1:HOTP-SHA1-6:QN08",
			   &(struct ocra_input){.question = "1234", .has_timestamp = true},
			   "takes no timestamp");
}

/* DataInput layout: suite, 0x00, C, Q(128), P, S, T, checked byte by byte. */
static void
data_input_layout(void **state)
{
	static const char suite_text[] = "OCRA-1:HOTP-SHA1-6:C-QN08-PSHA1-S004-T1M";
	static const uint8_t pin[20] = {0xaa}, session[2] = {0x12, 0x34};
	struct ocra_input in = {.has_counter = true,
				.counter = 0x0102030405060708ULL,
				.question = "22222222",
				.password_hash = pin,
				.password_hash_len = 20,
				.session = session,
				.session_len = 2,
				.has_timestamp = true,
				.timestamp = 0x132d0b6};
	struct ocra_suite suite;
	uint8_t *msg;
	size_t len, p;

	(void)state;
	assert_int_equal(ocra_suite_parse(suite_text, &suite), 0);
	assert_int_equal(ocra_data_input(&suite, &in, &msg, &len), 0);
	p = strlen(suite_text);
	assert_int_equal(len, p + 1 + 8 + 128 + 20 + 4 + 8);
	assert_memory_equal(msg, suite_text, p);
	assert_int_equal(msg[p], 0);
	p++;
	assert_memory_equal(msg + p, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	p += 8;
	/* 22222222 = 0x153158E: nibbles left-aligned, then zeros */
	assert_memory_equal(msg + p, "\x15\x31\x58\xe0\x00", 5);
	p += 128;
	assert_int_equal(msg[p], 0xaa);
	p += 20;
	assert_memory_equal(msg + p, "\x00\x00\x12\x34", 4);
	p += 4;
	assert_memory_equal(msg + p, "\x00\x00\x00\x00\x01\x32\xd0\xb6", 8);
	OPENSSL_clear_free(msg, len);
}

static void
numeric_question_of_64_digits(void **state)
{
	struct ocra_suite suite;
	struct ocra_input in = {.question = "1000000000000000000000000000000000000000000000000000"
					    "000000000000"};
	uint8_t *msg;
	size_t len, base;

	(void)state;
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-6:QN64", &suite), 0);
	assert_int_equal(strlen(in.question), 64);
	assert_int_equal(ocra_data_input(&suite, &in, &msg, &len), 0);
	base = strlen(suite.text) + 1;
	/* 10^63 is 53 hex digits starting 26f..., left-aligned: first byte 0x26 */
	assert_int_equal(msg[base], 0x26);
	OPENSSL_clear_free(msg, len);
}

static void
digits_zero_gives_whole_hmac(void **state)
{
	struct ocra_suite suite;
	struct secret key = {0};
	char out[OCRA_RESPONSE_MAX];

	(void)state;
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA256-0:QN08", &suite), 0);
	assert_int_equal(secret_from(&key, "k", 1), 0);
	assert_int_equal(ocra_compute(&suite, &(struct ocra_input){.question = "12345678"},
				      &(struct ocra_hmac){ocra_hmac_software, &key}, out,
				      sizeof(out)),
			 0);
	assert_int_equal(strlen(out), 64);
	assert_true(is_hex_string(out));
	secret_free(&key);
}

static void
ten_digit_responses_are_padded(void **state)
{
	struct ocra_suite suite;
	struct secret key = {0};
	char out[OCRA_RESPONSE_MAX];

	(void)state;
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-10:QN08", &suite), 0);
	assert_int_equal(secret_from(&key, "12345678901234567890", 20), 0);
	for (int q = 10000000; q < 10000050; q++) {
		char question[16];
		snprintf(question, sizeof(question), "%d", q);
		assert_int_equal(ocra_compute(&suite, &(struct ocra_input){.question = question},
					      &(struct ocra_hmac){ocra_hmac_software, &key}, out,
					      sizeof(out)),
				 0);
		assert_int_equal(strlen(out), 10);
	}
	secret_free(&key);
}

static void
verifier_windows(void **state)
{
	struct ocra_suite suite;
	struct secret key = {0};
	struct ocra_hmac hmac = {ocra_hmac_software, &key};
	char response[OCRA_RESPONSE_MAX];
	bool ok;
	uint64_t mc = 0, mt = 0;
	struct ocra_input in = {.has_counter = true, .counter = 7, .question = "12345678"};

	(void)state;
	assert_int_equal(secret_from(&key, "12345678901234567890", 20), 0);
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-6:C-QN08", &suite), 0);
	assert_int_equal(ocra_compute(&suite, &in, &hmac, response, sizeof(response)), 0);

	in.counter = 5;
	assert_int_equal(ocra_verify(&suite, &in, &hmac, response, NULL, &ok, &mc, NULL), 0);
	assert_false(ok);
	assert_int_equal(ocra_verify(&suite, &in, &hmac, response,
				     &(struct ocra_window){.counter_ahead = 1}, &ok, &mc, NULL),
			 0);
	assert_false(ok);
	assert_int_equal(ocra_verify(&suite, &in, &hmac, response,
				     &(struct ocra_window){.counter_ahead = 2}, &ok, &mc, NULL),
			 0);
	assert_true(ok);
	assert_int_equal(mc, 7);
	/* A counter behind is never accepted: the window only looks ahead. */
	in.counter = 8;
	assert_int_equal(ocra_verify(&suite, &in, &hmac, response,
				     &(struct ocra_window){.counter_ahead = 5}, &ok, &mc, NULL),
			 0);
	assert_false(ok);
	assert_int_equal(ocra_verify(&suite, &in, &hmac, "000000x", NULL, &ok, NULL, NULL), 0);
	assert_false(ok);

	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-6:QN08-T30S", &suite), 0);
	in = (struct ocra_input){.question = "12345678", .has_timestamp = true, .timestamp = 100};
	assert_int_equal(ocra_compute(&suite, &in, &hmac, response, sizeof(response)), 0);
	in.timestamp = 102;
	assert_int_equal(ocra_verify(&suite, &in, &hmac, response,
				     &(struct ocra_window){.time_behind = 1}, &ok, NULL, &mt),
			 0);
	assert_false(ok);
	assert_int_equal(ocra_verify(&suite, &in, &hmac, response,
				     &(struct ocra_window){.time_behind = 2}, &ok, NULL, &mt),
			 0);
	assert_true(ok);
	assert_int_equal(mt, 100);
	in.timestamp = 98;
	assert_int_equal(ocra_verify(&suite, &in, &hmac, response,
				     &(struct ocra_window){.time_ahead = 2}, &ok, NULL, &mt),
			 0);
	assert_true(ok);
	/* Window near zero does not wrap around. */
	in.timestamp = 0;
	assert_int_equal(ocra_verify(&suite, &in, &hmac, response,
				     &(struct ocra_window){.time_behind = 5}, &ok, NULL, &mt),
			 0);
	assert_false(ok);
	secret_free(&key);
}

static void
time_steps_and_random_questions(void **state)
{
	struct ocra_suite suite;
	uint64_t steps;
	char q[80];

	(void)state;
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA512-8:QN08-T1M", &suite), 0);
	assert_int_equal(ocra_time_steps(&suite, (time_t)0x132d0b6 * 60 + 59, &steps), 0);
	assert_int_equal(steps, 0x132d0b6);
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-6:QN08-T0H", &suite), 0);
	assert_int_equal(ocra_time_steps(&suite, 1000, &steps), -1);
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-6:QN08", &suite), 0);
	assert_int_equal(ocra_time_steps(&suite, 1000, &steps), -1);

	static const char *const suites[] = {"OCRA-1:HOTP-SHA1-6:QN08", "OCRA-1:HOTP-SHA1-6:QA64",
					     "OCRA-1:HOTP-SHA1-6:QH10"};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(ocra_suite_parse(suites[i], &suite), 0);
		assert_int_equal(ocra_random_question(&suite, q, sizeof(q)), 0);
		assert_int_equal(strlen(q), suite.question_max);
		assert_int_equal(ocra_check_question(&suite, q), 0);
	}
	assert_int_equal(ocra_random_question(&suite, q, 5), -1);
}

/* A provider that returns the wrong length must be refused, not truncated from. */
static int
short_hmac(void *ctx, enum ocra_hash hash, const uint8_t *msg, size_t msg_len, uint8_t *mac,
	   size_t *mac_len)
{
	(void)ctx, (void)hash, (void)msg, (void)msg_len;
	memset(mac, 0, 4);
	*mac_len = 4;
	return 0;
}

static void
refuses_wrong_length_from_provider(void **state)
{
	struct ocra_suite suite;
	char out[OCRA_RESPONSE_MAX];

	(void)state;
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-6:QN08", &suite), 0);
	assert_int_equal(ocra_compute(&suite, &(struct ocra_input){.question = "12345678"},
				      &(struct ocra_hmac){short_hmac, NULL}, out, sizeof(out)),
			 -1);
	assert_non_null(strstr(or_errmsg(), "returned 4 bytes"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(all_70_appendix_c_vectors),
		cmocka_unit_test(shared_partial_vectors_when_present),
		cmocka_unit_test(parses_every_suite_form),
		cmocka_unit_test(refuses_malformed_suites),
		cmocka_unit_test(refuses_bad_inputs),
		cmocka_unit_test(data_input_layout),
		cmocka_unit_test(numeric_question_of_64_digits),
		cmocka_unit_test(digits_zero_gives_whole_hmac),
		cmocka_unit_test(ten_digit_responses_are_padded),
		cmocka_unit_test(verifier_windows),
		cmocka_unit_test(time_steps_and_random_questions),
		cmocka_unit_test(refuses_wrong_length_from_provider),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
