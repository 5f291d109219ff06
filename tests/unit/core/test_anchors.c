/*
 * Unit tests for lib/core/anchors.c: an anchor text is parsed once and its
 * certificates shared (the same objects, call after call, each caller with
 * its own references); texts pki_check_certificates refuses are refused with
 * its reasons and never remembered; a text remembered under a larger bound is
 * checked again under a smaller one; a store made from the anchors trusts
 * exactly them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/anchors.h"
#include "core/error.h"
#include "core/secret.h"
#include "server/ca.h"

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A new CA's certificate (malloc'd PEM). */
static char *
ca_pem(const char *name)
{
	struct secret key = {0};
	char *pem = NULL;

	assert_int_equal(pki_ca_create(name, 30, &pem, &key), 0);
	secret_free(&key);
	return pem;
}

/* Two texts joined (malloc'd). */
static char *
joined(const char *a, const char *b)
{
	size_t len = strlen(a) + strlen(b) + 1;
	char *text = malloc(len);

	assert_non_null(text);
	snprintf(text, len, "%s%s", a, b);
	return text;
}

static void
parsed_once_and_shared(void **state)
{
	char *one = ca_pem("anchor one"), *two = ca_pem("anchor two"), *both = joined(one, two);
	STACK_OF(X509) * first, *again;

	(void)state;
	first = pki_anchors_get(both, 4, "anchors");
	assert_non_null(first);
	assert_int_equal(sk_X509_num(first), 2);
	again = pki_anchors_get(both, 4, "anchors");
	assert_non_null(again);
	assert_true(first != again);
	for (int i = 0; i < 2; i++)
		assert_ptr_equal(sk_X509_value(first, i), sk_X509_value(again, i));
	/* Each caller's references are its own. */
	sk_X509_pop_free(first, X509_free);
	assert_non_null(X509_get_subject_name(sk_X509_value(again, 1)));
	sk_X509_pop_free(again, X509_free);
	free(both);
	free(two);
	free(one);
}

static void
bad_texts_refused_and_not_remembered(void **state)
{
	char *one = ca_pem("anchor three"), *two = ca_pem("anchor four"), *both = joined(one, two);
	char *broken = strdup(one);
	STACK_OF(X509) * certs;

	(void)state;
	assert_non_null(broken);
	/* The DER's first bytes (its outer SEQUENCE) made zeros: not a certificate. */
	memset(strstr(broken, "-----\n") + 6, 'A', 8);
	for (int round = 0; round < 2; round++) {
		assert_null(pki_anchors_get(broken, 4, "the anchor"));
		assert_non_null(strstr(or_errmsg(), "the anchor holds a PEM block that is not"));
		assert_null(pki_anchors_get("no certificate here", 4, "the anchor"));
		assert_non_null(strstr(or_errmsg(), "holds no PEM certificate"));
		assert_null(pki_anchors_get("", 4, "the anchor"));
		assert_null(pki_anchors_get(NULL, 4, "the anchor"));
	}
	/* Remembered under a bound of 4, it is still refused under a bound of 1. */
	certs = pki_anchors_get(both, 4, "anchors");
	assert_non_null(certs);
	sk_X509_pop_free(certs, X509_free);
	assert_null(pki_anchors_get(both, 1, "anchors"));
	assert_non_null(strstr(or_errmsg(), "holds more than 1 certificates"));
	free(broken);
	free(both);
	free(two);
	free(one);
}

/* More texts than the memo holds: each still gives its own certificates. */
static void
past_the_memo(void **state)
{
	char *pems[12];
	X509 *seen[12];

	(void)state;
	for (int i = 0; i < 12; i++) {
		char name[32];
		STACK_OF(X509) * certs;

		snprintf(name, sizeof(name), "anchor %d", i);
		pems[i] = ca_pem(name);
		certs = pki_anchors_get(pems[i], 1, "anchor");
		assert_non_null(certs);
		seen[i] = sk_X509_value(certs, 0);
		X509_up_ref(seen[i]);
		sk_X509_pop_free(certs, X509_free);
	}
	for (int i = 11; i >= 0; i--) {
		STACK_OF(X509) *certs = pki_anchors_get(pems[i], 1, "anchor");

		assert_non_null(certs);
		assert_int_equal(X509_cmp(sk_X509_value(certs, 0), seen[i]), 0);
		sk_X509_pop_free(certs, X509_free);
		X509_free(seen[i]);
		free(pems[i]);
	}
}

/* Whether cert verifies against store alone. */
static bool
verifies(X509_STORE *store, X509 *cert)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	bool ok;

	assert_non_null(ctx);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
	ok = X509_verify_cert(ctx) == 1;
	X509_STORE_CTX_free(ctx);
	return ok;
}

static void
store_trusts_the_anchors(void **state)
{
	char *one = ca_pem("anchor five"), *two = ca_pem("anchor six"), *both = joined(one, two);
	char *other = ca_pem("not an anchor");
	STACK_OF(X509) *certs = pki_anchors_get(both, 4, "anchors"),
		       *outside = pki_anchors_get(other, 1, "other");
	X509_STORE *store;

	(void)state;
	assert_non_null(certs);
	assert_non_null(outside);
	store = pki_anchors_store(certs);
	assert_non_null(store);
	assert_int_equal(sk_X509_OBJECT_num(X509_STORE_get0_objects(store)), 2);
	assert_true(verifies(store, sk_X509_value(certs, 0)));
	assert_true(verifies(store, sk_X509_value(certs, 1)));
	assert_false(verifies(store, sk_X509_value(outside, 0)));
	X509_STORE_free(store);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(outside, X509_free);
	free(other);
	free(both);
	free(two);
	free(one);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parsed_once_and_shared),
		cmocka_unit_test(bad_texts_refused_and_not_remembered),
		cmocka_unit_test(past_the_memo),
		cmocka_unit_test(store_trusts_the_anchors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
