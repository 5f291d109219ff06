/*
 * Unit tests for lib/record.c: the factory registration record, its CMS
 * encryption to the inventory key, and the checks on reading one.
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
#include "core/json.h"
#include "device/record.h"
#include "testdir.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define SUITE "OCRA-1:HOTP-SHA256-8:QA10-S064"

static EVP_PKEY *inventory, *other;
static char *inventory_pub, *inventory_priv, *other_priv;
static struct secret key;

static char *
pem_of(EVP_PKEY *k, bool private)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long len;

	if (private)
		PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
	else
		PEM_write_bio_PUBKEY(bio, k);
	len = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)len);
	BIO_free(bio);
	return out;
}

static int
setup(void **state)
{
	inventory = EVP_RSA_gen(2048);
	other = EVP_RSA_gen(2048);
	inventory_pub = pem_of(inventory, false);
	inventory_priv = pem_of(inventory, true);
	other_priv = pem_of(other, true);
	secret_alloc(&key, 32);
	for (size_t i = 0; i < key.len; i++)
		key.data[i] = (uint8_t)(0xa0 + i);
	return testdir_make(state);
}

/* The claim secret every record here is made with. */
static struct secret claim_secret;

static int
teardown(void **state)
{
	EVP_PKEY_free(inventory);
	EVP_PKEY_free(other);
	free(inventory_pub);
	free(inventory_priv);
	free(other_priv);
	secret_free(&key);
	secret_free(&claim_secret);
	return testdir_remove(state);
}

static void
make(struct record *r)
{
	void *pk = NULL;

	if (claim_secret.data == NULL)
		assert_int_equal(record_claim_secret_new(&claim_secret), 0);
	assert_int_equal(record_load_inventory_key(inventory_pub, strlen(inventory_pub), &pk), 0);
	assert_int_equal(record_create("SN-0001", "SSR120", SUITE, &key, &claim_secret, pk, r), 0);
	EVP_PKEY_free(pk);
}

static void
round_trip_through_file_and_decrypt(void **state)
{
	struct record r, back;
	struct secret got = {0};
	uint8_t *raw;
	size_t len;

	(void)state;
	make(&r);
	assert_int_equal(record_write(testpath("rec.json"), &r), 0);
	assert_int_equal(record_read(testpath("rec.json"), &back), 0);
	assert_string_equal(back.serial, "SN-0001");
	assert_string_equal(back.model, "SSR120");
	assert_string_equal(back.ocra_suite, SUITE);
	assert_int_equal(strlen(back.created), 20);
	assert_int_equal(record_decrypt_key(&back, inventory_priv, &got), 0);
	assert_int_equal(got.len, key.len);
	assert_memory_equal(got.data, key.data, key.len);
	/* The key is nowhere in the file, raw or in hex. */
	assert_int_equal(file_read_all(testpath("rec.json"), 1 << 20, &raw, &len), 0);
	assert_null(memmem(raw, len, key.data, key.len));
	assert_null(strstr((char *)raw, "a0a1a2a3"));
	/* The claim secret travels encrypted; only its hash is in clear. */
	assert_null(strstr((char *)raw, (const char *)claim_secret.data));
	assert_non_null(strstr((char *)raw, back.claim_hash));
	secret_free(&got);
	assert_int_equal(record_decrypt_claim_secret(&back, inventory_priv, &got), 0);
	assert_string_equal((const char *)got.data, (const char *)claim_secret.data);
	{
		char hash[RECORD_CLAIM_HASH_HEX + 1];
		assert_int_equal(record_claim_hash((const char *)claim_secret.data, hash), 0);
		assert_string_equal(hash, back.claim_hash);
	}
	free(raw);
	secret_free(&got);
	record_free(&r);
	record_free(&back);
}

static void
another_key_fails_clearly(void **state)
{
	struct record r;
	struct secret got = {0};

	(void)state;
	make(&r);
	assert_int_equal(record_decrypt_key(&r, other_priv, &got), -1);
	assert_null(got.data);
	assert_non_null(strstr(or_errmsg(), "encrypted to another inventory key"));
	assert_int_equal(record_decrypt_key(&r, "not a key", &got), -1);
	assert_non_null(strstr(or_errmsg(), "not a PEM private key"));
	record_free(&r);
}

static void
inventory_key_forms(void **state)
{
	X509 *x = X509_new();
	BIO *bio = BIO_new(BIO_s_mem());
	EVP_PKEY *ec = EVP_EC_gen("P-256"), *small = EVP_RSA_gen(1024);
	char *data, *ec_pub = pem_of(ec, false), *small_pub = pem_of(small, false);
	void *pk = NULL;
	long len;

	(void)state;
	/* A certificate holding the key is as good as the key. */
	X509_set_version(x, X509_VERSION_3);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, inventory);
	X509_sign(x, inventory, EVP_sha256());
	PEM_write_bio_X509(bio, x);
	len = BIO_get_mem_data(bio, &data);
	assert_int_equal(record_load_inventory_key(data, (size_t)len, &pk), 0);
	assert_int_equal(EVP_PKEY_eq(pk, inventory), 1);
	EVP_PKEY_free(pk);
	assert_int_equal(record_load_inventory_key(inventory_priv, strlen(inventory_priv), &pk),
			 -1);
	assert_non_null(strstr(or_errmsg(), "private key"));
	assert_int_equal(record_load_inventory_key(ec_pub, strlen(ec_pub), &pk), -1);
	assert_non_null(strstr(or_errmsg(), "RSA"));
	assert_int_equal(record_load_inventory_key(small_pub, strlen(small_pub), &pk), -1);
	assert_non_null(strstr(or_errmsg(), "2048"));
	assert_int_equal(record_load_inventory_key("hello", 5, &pk), -1);
	assert_null(pk);
	free(ec_pub);
	free(small_pub);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(small);
	BIO_free(bio);
	X509_free(x);
}

static void
create_checks_its_input(void **state)
{
	struct record r;
	struct secret short_key = {0};

	(void)state;
	struct secret cs = {0}, bad_cs = {0};

	assert_int_equal(record_claim_secret_new(&cs), 0);
	assert_int_equal(record_create("bad serial", "M", SUITE, &key, &cs, inventory, &r), -1);
	assert_int_equal(record_create("S", "", SUITE, &key, &cs, inventory, &r), -1);
	assert_int_equal(record_create("S", "M", "OCRA-2:nope", &key, &cs, inventory, &r), -1);
	secret_alloc(&short_key, 20);
	assert_int_equal(record_create("S", "M", SUITE, &short_key, &cs, inventory, &r), -1);
	assert_non_null(strstr(or_errmsg(), "must have 32 bytes"));
	secret_free(&short_key);
	secret_alloc(&bad_cs, 10);
	assert_int_equal(record_create("S", "M", SUITE, &key, &bad_cs, inventory, &r), -1);
	assert_non_null(strstr(or_errmsg(), "claim secret"));
	secret_free(&bad_cs);
	secret_free(&cs);
}

/* Replaces one field of a good record's JSON and expects record_from_json to refuse it. */
static void
expect_refused(const char *field, json_t *value, const char *words)
{
	struct record r, back;
	json_t *doc;

	make(&r);
	doc = record_to_json(&r);
	if (value != NULL)
		json_object_set_new(doc, field, value);
	else
		json_object_del(doc, field);
	assert_int_equal(record_from_json(doc, &back), -1);
	assert_null(back.ocra_key_cms);
	if (strstr(or_errmsg(), words) == NULL)
		fail_msg("error '%s' lacks '%s'", or_errmsg(), words);
	json_decref(doc);
	record_free(&r);
}

static void
reading_checks_every_field(void **state)
{
	(void)state;
	expect_refused("version", json_integer(3), "version");
	expect_refused("version", json_integer(1), "version 1 record has no claim secret");
	expect_refused("claim_hash", NULL, "'claim_hash' is required");
	expect_refused("claim_hash", json_string("ABC"), "claim_hash");
	expect_refused("claim_secret_cms", json_string("not base64!"), "base64");
	expect_refused("serial", NULL, "'serial' is required");
	expect_refused("serial", json_string("../x"), "serial");
	expect_refused("model", json_string("bad\nmodel"), "printable");
	expect_refused("ocra_suite", json_string("OCRA-1:HOTP-MD5-6:QN08"), "");
	expect_refused("ocra_key_cms", json_string("not base64!"), "base64");
	expect_refused("created", json_string("yesterday"), "RFC 3339");
	expect_refused("extra", json_string("x"), "unexpected field 'extra'");
}

static void
not_cms_is_refused(void **state)
{
	struct record r;
	struct secret got = {0};

	(void)state;
	make(&r);
	r.ocra_key_cms[r.ocra_key_cms_len / 2] ^= 0xff;
	r.ocra_key_cms_len -= 10;
	assert_int_equal(record_decrypt_key(&r, inventory_priv, &got), -1);
	assert_null(got.data);
	/* A claim secret that does not match the record's hash is refused. */
	r.claim_hash[0] = r.claim_hash[0] == '0' ? '1' : '0';
	assert_int_equal(record_decrypt_claim_secret(&r, inventory_priv, &got), -1);
	assert_non_null(strstr(or_errmsg(), "does not match"));
	assert_null(got.data);
	record_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_through_file_and_decrypt),
		cmocka_unit_test(another_key_fails_clearly),
		cmocka_unit_test(inventory_key_forms),
		cmocka_unit_test(create_checks_its_input),
		cmocka_unit_test(reading_checks_every_field),
		cmocka_unit_test(not_cms_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
