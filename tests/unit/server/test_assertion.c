/*
 * Unit tests for lib/server/assertion.c: onboarding assertions signed with a
 * key made by server/ca (as cloudd makes it) and checked as a conductor does;
 * every refusal (expired, another asset ID, another key, another conductor,
 * another signer, tampered bytes, not base64) names what was wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/encoding.h"
#include "core/error.h"
#include "server/assertion.h"
#include "server/ca.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define COND "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

struct fixture {
	char *cert_pem, *other_pem;
	struct secret key_pem, other_key;
	struct assertion_signer *signer, *other;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || pki_ca_create("acme assertions", 30, &f->cert_pem, &f->key_pem) == -1 ||
	    pki_ca_create("mallory", 30, &f->other_pem, &f->other_key) == -1 ||
	    assertion_signer_load(f->cert_pem, (char *)f->key_pem.data, &f->signer) == -1 ||
	    assertion_signer_load(f->other_pem, (char *)f->other_key.data, &f->other) == -1)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	assertion_signer_free(f->signer);
	assertion_signer_free(f->other);
	free(f->cert_pem);
	free(f->other_pem);
	secret_free(&f->key_pem);
	secret_free(&f->other_key);
	free(f);
	return 0;
}

static struct assertion_claims
claims(time_t issued, time_t expires)
{
	struct assertion_claims c = {.issued = issued, .expires = expires};

	strcpy(c.serial, "SN-1");
	strcpy(c.asset_id, "ASSET-1");
	strcpy(c.key_sha256, KEY_A);
	strcpy(c.conductor, COND);
	return c;
}

static char *
signed_by(struct assertion_signer *s, struct assertion_claims c)
{
	char *text = NULL;

	assert_int_equal(assertion_sign(s, &c, &text), 0);
	assert_non_null(text);
	return text;
}

static void
test_valid_round_trip(void **state)
{
	struct fixture *f = *state;
	time_t now = time(NULL);
	char *text = signed_by(f->signer, claims(now, now + 600));
	struct assertion_claims got;

	assert_true(strlen(text) < ASSERTION_TEXT_MAX);
	assert_int_equal(assertion_verify(f->cert_pem, text, now, &got), 0);
	assert_string_equal(got.serial, "SN-1");
	assert_string_equal(got.asset_id, "ASSET-1");
	assert_string_equal(got.key_sha256, KEY_A);
	assert_string_equal(got.conductor, COND);
	assert_int_equal(got.expires, now + 600);
	assert_int_equal(assertion_match(&got, "ASSET-1", KEY_A, COND), 0);
	free(text);
}

static void
test_expired_is_refused(void **state)
{
	struct fixture *f = *state;
	time_t now = time(NULL);
	char *text = signed_by(f->signer, claims(now - 700, now - 100));
	struct assertion_claims got;

	assert_int_equal(assertion_verify(f->cert_pem, text, now, &got), -1);
	assert_non_null(strstr(or_errmsg(), "expired"));
	free(text);
}

static void
test_mismatches_are_named(void **state)
{
	struct fixture *f = *state;
	time_t now = time(NULL);
	char *text = signed_by(f->signer, claims(now, now + 600));
	struct assertion_claims got;

	assert_int_equal(assertion_verify(f->cert_pem, text, now, &got), 0);
	assert_int_equal(assertion_match(&got, "ASSET-2", KEY_A, COND), -1);
	assert_non_null(strstr(or_errmsg(), "asset ID"));
	assert_int_equal(assertion_match(&got, "ASSET-1", KEY_B, COND), -1);
	assert_non_null(strstr(or_errmsg(), "another device key"));
	assert_int_equal(assertion_match(&got, "ASSET-1", KEY_A, KEY_B), -1);
	assert_non_null(strstr(or_errmsg(), "another conductor"));
	free(text);
}

static void
test_other_signer_is_refused(void **state)
{
	struct fixture *f = *state;
	time_t now = time(NULL);
	char *text = signed_by(f->other, claims(now, now + 600));
	struct assertion_claims got;

	assert_int_equal(assertion_verify(f->cert_pem, text, now, &got), -1);
	assert_non_null(strstr(or_errmsg(), "signature"));
	/* The other signer's own certificate accepts it: the pin decides. */
	assert_int_equal(assertion_verify(f->other_pem, text, now, &got), 0);
	free(text);
}

static void
test_tampered_bytes_are_refused(void **state)
{
	struct fixture *f = *state;
	time_t now = time(NULL);
	char *text = signed_by(f->signer, claims(now, now + 600)), *bad;
	struct assertion_claims got;
	uint8_t *der = NULL;
	size_t len = 0, at;

	assert_int_equal(base64_decode(text, "t", &der, &len), 0);
	/* Flip one byte of the payload ("ASSET-1" becomes "ASSET-2"). */
	for (at = 0; at + 7 <= len && memcmp(der + at, "ASSET-1", 7) != 0; at++)
		;
	assert_true(at + 7 <= len);
	der[at + 6] = '2';
	bad = base64_encode(der, len);
	assert_int_equal(assertion_verify(f->cert_pem, bad, now, &got), -1);
	assert_int_equal(assertion_verify(f->cert_pem, "not base64!", now, &got), -1);
	assert_int_equal(assertion_verify(f->cert_pem, "AAAA", now, &got), -1);
	free(bad);
	free(der);
	free(text);
}

static void
test_signer_refuses_wrong_key(void **state)
{
	struct fixture *f = *state;
	struct assertion_signer *s = NULL;
	struct assertion_claims c = claims(10, 5);
	char *text = NULL;

	assert_int_equal(assertion_signer_load(f->cert_pem, (char *)f->other_key.data, &s), -1);
	assert_null(s);
	/* Incomplete claims are not signed. */
	assert_int_equal(assertion_sign(f->signer, &c, &text), -1);
	assert_null(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_round_trip),
		cmocka_unit_test(test_expired_is_refused),
		cmocka_unit_test(test_mismatches_are_named),
		cmocka_unit_test(test_other_signer_is_refused),
		cmocka_unit_test(test_tampered_bytes_are_refused),
		cmocka_unit_test(test_signer_refuses_wrong_key),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
