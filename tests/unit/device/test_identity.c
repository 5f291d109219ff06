/*
 * Unit tests for lib/identity.c with a software identity; the TPM identity
 * runs against swtpm in tests/integration.
 */
/* cmocka.h needs these first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "core/error.h"
#include "core/file.h"
#include "device/identity.h"
#include "testdir.h"

#include <sys/stat.h>

#define SUITE "OCRA-1:HOTP-SHA256-8:QA10-S064"

static void
create_open_and_compute(void **state)
{
	struct ocra_suite suite;
	struct ocra_input in = {.question = "CLI22220SRV11110"};
	struct secret key = {0};
	struct identity *id = NULL;
	struct ocra_hmac hmac;
	char a[OCRA_RESPONSE_MAX], b[OCRA_RESPONSE_MAX];
	uint8_t session[64] = {7};
	struct stat st;

	(void)state;
	in.session = session;
	in.session_len = sizeof(session);
	assert_int_equal(ocra_suite_parse(SUITE, &suite), 0);
	assert_int_equal(identity_exists(testdir), 0);
	assert_int_equal(identity_create(testdir, NULL, OCRA_HASH_SHA256, &key), 0);
	assert_int_equal(key.len, 32);
	assert_int_equal(identity_exists(testdir), 1);
	assert_int_equal(stat(testpath(IDENTITY_FILE), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(identity_open(testdir, NULL, &id), 0);
	assert_false(identity_in_tpm(id));
	assert_int_equal(identity_hash(id), OCRA_HASH_SHA256);
	in.question = "ABCDEFGHIJ";
	hmac = identity_ocra_hmac(id);
	assert_int_equal(ocra_compute(&suite, &in, &hmac, a, sizeof(a)), 0);
	assert_int_equal(
		ocra_compute(&suite, &in,
			     &(struct ocra_hmac){.compute = ocra_hmac_software, .ctx = &key}, b,
			     sizeof(b)),
		0);
	assert_string_equal(a, b);
	identity_close(id);
	secret_free(&key);
}

static void
another_hash_is_refused(void **state)
{
	struct ocra_suite suite;
	struct ocra_input in = {.question = "12345678"};
	struct identity *id = NULL;
	struct ocra_hmac hmac;
	char out[OCRA_RESPONSE_MAX];

	(void)state;
	assert_int_equal(identity_create(testdir, NULL, OCRA_HASH_SHA256, NULL), 0);
	assert_int_equal(identity_open(testdir, NULL, &id), 0);
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA1-6:QN08", &suite), 0);
	hmac = identity_ocra_hmac(id);
	assert_int_equal(ocra_compute(&suite, &in, &hmac, out, sizeof(out)), -1);
	assert_non_null(strstr(or_errmsg(), "HMAC-SHA256 key"));
	identity_close(id);
}

static void
import_checks_the_key_length(void **state)
{
	struct secret k = {0};

	(void)state;
	assert_int_equal(secret_alloc(&k, 20), 0);
	assert_int_equal(identity_import(testdir, NULL, OCRA_HASH_SHA512, &k), -1);
	assert_non_null(strstr(or_errmsg(), "64 bytes"));
	assert_int_equal(identity_import(testdir, NULL, OCRA_HASH_SHA1, &k), 0);
	secret_free(&k);
}

static void
expect_open_error(const char *text, const char *words)
{
	struct identity *id = NULL;

	if (text != NULL)
		assert_int_equal(
			file_write_atomic(testpath(IDENTITY_FILE), text, strlen(text), 0600), 0);
	assert_int_equal(identity_open(testdir, NULL, &id), -1);
	assert_null(id);
	if (strstr(or_errmsg(), words) == NULL)
		fail_msg("error '%s' lacks '%s'", or_errmsg(), words);
}

static void
damaged_or_missing_files_are_refused(void **state)
{
	(void)state;
	assert_int_equal(identity_remove(testdir), 0);
	expect_open_error(NULL, "init-device");
	expect_open_error(
		"{\"version\":1,\"kind\":\"software\",\"hash\":\"SHA256\",\"key\":\"00\"}",
		"32 bytes");
	expect_open_error("{\"version\":1,\"kind\":\"software\",\"hash\":\"MD5\",\"key\":\"00\"}",
			  "unknown hash");
	expect_open_error("{\"version\":1,\"kind\":\"tpm\",\"hash\":\"SHA256\",\"blob\":\"AA==\"}",
			  "no TPM was configured");
	expect_open_error("{\"version\":1,\"kind\":\"hsm\",\"hash\":\"SHA1\"}", "kind");
	expect_open_error("{\"version\":1,", "damaged identity file");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(create_open_and_compute),
		cmocka_unit_test(another_hash_is_refused),
		cmocka_unit_test(import_checks_the_key_length),
		cmocka_unit_test(damaged_or_missing_files_are_refused),
	};
	return cmocka_run_group_tests(tests, testdir_make, testdir_remove);
}
