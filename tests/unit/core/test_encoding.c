/*
 * Unit tests for lib/encoding.c and lib/secret.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/encoding.h"
#include "core/error.h"
#include "core/secret.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static void
hex_round_trip(void **state)
{
	static const uint8_t data[] = {0x00, 0x01, 0xab, 0xff};
	char hex[9];
	uint8_t *out;
	size_t len;

	(void)state;
	hex_encode(data, sizeof(data), hex);
	assert_string_equal(hex, "0001abff");
	assert_int_equal(hex_decode("0001ABff", "value", &out, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(out, data, 4);
	OPENSSL_free(out);
	assert_int_equal(hex_decode("", "value", &out, &len), 0);
	assert_int_equal(len, 0);
	OPENSSL_free(out);
}

static void
hex_refuses_bad_input(void **state)
{
	uint8_t *out;
	size_t len;

	(void)state;
	assert_int_equal(hex_decode("abc", "key", &out, &len), -1);
	assert_non_null(strstr(or_errmsg(), "key has an odd number"));
	assert_null(out);
	assert_int_equal(hex_decode("zz", "key", &out, &len), -1);
	assert_string_equal(or_errmsg(), "key is not hexadecimal");
	assert_int_equal(hex_decode("0x12", "key", &out, &len), -1);
	assert_int_equal(hex_decode("12 34", "key", &out, &len), -1);
}

static void
base64_round_trip_and_strictness(void **state)
{
	uint8_t *out;
	size_t len;
	char *b64;

	(void)state;
	for (size_t n = 0; n < 6; n++) {
		b64 = base64_encode((const uint8_t *)"abcdef", n);
		assert_non_null(b64);
		assert_int_equal(base64_decode(b64, "value", &out, &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(out, "abcdef", n);
		free(out);
		free(b64);
	}
	assert_int_equal(base64_decode("YWJj", "v", &out, &len), 0);
	assert_int_equal(len, 3);
	free(out);
	assert_int_equal(base64_decode("YWJ", "cert", &out, &len), -1);
	assert_non_null(strstr(or_errmsg(), "cert is not base64"));
	assert_int_equal(base64_decode("YW=j", "v", &out, &len), -1);
	assert_int_equal(base64_decode("YWJ!", "v", &out, &len), -1);
	assert_int_equal(base64_decode("Y===", "v", &out, &len), -1);
}

static void
secrets_compare_and_clear(void **state)
{
	struct secret s = {0};

	(void)state;
	assert_true(ct_equal("abc", "abc", 3));
	assert_false(ct_equal("abc", "abd", 3));
	assert_true(ct_equal_str("123456", "123456"));
	assert_false(ct_equal_str("123456", "1234567"));
	assert_false(ct_equal_str("", "1"));
	assert_int_equal(secret_from(&s, "topsecret", 9), 0);
	assert_int_equal(s.len, 9);
	assert_memory_equal(s.data, "topsecret", 9);
	secret_free(&s);
	assert_null(s.data);
	assert_int_equal(s.len, 0);
	secret_free(&s);
}

static void
no_core_dumps(void **state)
{
	struct rlimit rl;

	(void)state;
	assert_int_equal(secret_disable_core_dumps(), 0);
	assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
	assert_int_equal(rl.rlim_cur, 0);
	assert_int_equal(rl.rlim_max, 0);
	assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
	/* a second call (a library and its program both asking) is fine */
	assert_int_equal(secret_disable_core_dumps(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hex_round_trip),
		cmocka_unit_test(hex_refuses_bad_input),
		cmocka_unit_test(base64_round_trip_and_strictness),
		cmocka_unit_test(secrets_compare_and_clear),
		cmocka_unit_test(no_core_dumps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
