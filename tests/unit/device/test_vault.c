/*
 * Unit tests for lib/vault.c in software mode (AES-256-GCM under the device
 * key file); the TPM mode runs against swtpm in tests/integration.
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
#include "core/secret.h"
#include "device/vault.h"
#include "testdir.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

static const char secret_text[] = "pre-shared secret 0123456789 zz";

static const char *
entry(const char *file)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/vault/%s", testdir, file);
	return path;
}

static struct vault *
open_vault(void)
{
	struct vault *v = NULL;

	assert_int_equal(vault_open(testdir, NULL, &v), 0);
	return v;
}

static void
put(const char *name)
{
	struct vault *v = open_vault();

	assert_int_equal(vault_put(v, name, secret_text, sizeof(secret_text) - 1), 0);
	vault_close(v);
}

static void
expect_get_error(const char *name, const char *words)
{
	struct vault *v = open_vault();
	struct secret s = {0};

	assert_int_equal(vault_get(v, name, &s), -1);
	assert_null(s.data);
	if (strstr(or_errmsg(), words) == NULL)
		fail_msg("error '%s' lacks '%s'", or_errmsg(), words);
	vault_close(v);
}

/* A self-signed certificate, as PEM text (malloc'd). */
static char *
make_cert_pem(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *pem;
	long len;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"Test Root", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	PEM_write_bio_X509(bio, x);
	len = BIO_get_mem_data(bio, &data);
	pem = strndup(data, (size_t)len);
	BIO_free(bio);
	X509_free(x);
	EVP_PKEY_free(k);
	return pem;
}

static void
round_trip_files_0600_no_clear_text(void **state)
{
	struct vault *v = open_vault();
	struct secret s = {0};
	struct stat st;
	uint8_t *raw;
	size_t len;

	(void)state;
	assert_int_equal(vault_put(v, "psk", secret_text, sizeof(secret_text) - 1), 0);
	assert_true(vault_has(v, "psk"));
	assert_int_equal(vault_get(v, "psk", &s), 0);
	assert_int_equal(s.len, sizeof(secret_text) - 1);
	assert_memory_equal(s.data, secret_text, s.len);
	secret_free(&s);
	vault_close(v);
	assert_int_equal(stat(entry("psk.secret"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(entry("device.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(entry(""), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(file_read_all(entry("psk.secret"), 1 << 20, &raw, &len), 0);
	assert_null(memmem(raw, len, "pre-shared", 10));
	free(raw);
}

static void
replacing_and_deleting(void **state)
{
	struct vault *v = open_vault();
	struct secret s = {0};

	(void)state;
	assert_int_equal(vault_put(v, "token", "one", 3), 0);
	assert_int_equal(vault_put(v, "token", "second", 6), 0);
	assert_int_equal(vault_get(v, "token", &s), 0);
	assert_memory_equal(s.data, "second", 6);
	secret_free(&s);
	assert_int_equal(vault_delete(v, "token"), 0);
	assert_false(vault_has(v, "token"));
	assert_int_equal(vault_get(v, "token", &s), -1);
	assert_non_null(strstr(or_errmsg(), "holds no secret named 'token'"));
	assert_int_equal(vault_delete(v, "token"), -1);
	vault_close(v);
}

static void
altered_value_is_refused(void **state)
{
	uint8_t *raw;
	size_t len;
	char *p;

	(void)state;
	put("altered");
	assert_int_equal(file_read_all(entry("altered.secret"), 1 << 20, &raw, &len), 0);
	p = strstr((char *)raw, "\"data\": \"");
	assert_non_null(p);
	p += 9;
	*p = *p == 'A' ? 'B' : 'A';
	assert_int_equal(file_write_atomic(entry("altered.secret"), raw, len, 0600), 0);
	free(raw);
	expect_get_error("altered", "fails its integrity check");
}

static void
truncated_entry_is_refused(void **state)
{
	(void)state;
	put("cut");
	assert_int_equal(truncate(entry("cut.secret"), 60), 0);
	expect_get_error("cut", "damaged");
	assert_int_equal(truncate(entry("cut.secret"), 0), 0);
	expect_get_error("cut", "damaged");
}

static void
swapped_entry_is_refused(void **state)
{
	uint8_t *raw;
	size_t len;

	(void)state;
	put("first");
	assert_int_equal(file_read_all(entry("first.secret"), 1 << 20, &raw, &len), 0);
	assert_int_equal(file_write_atomic(entry("second.secret"), raw, len, 0600), 0);
	free(raw);
	expect_get_error("second", "says it is secret 'first'");
}

static void
another_device_key_cannot_read(void **state)
{
	uint8_t other[32] = {1, 2, 3};

	(void)state;
	put("keyed");
	assert_int_equal(file_write_atomic(entry("device.key"), other, sizeof(other), 0600), 0);
	expect_get_error("keyed", "fails its integrity check");
}

static void
bad_names_write_nothing(void **state)
{
	static const char *const names[] = {"",	    "../escape", "a/b",	  ".hidden",
					    "-opt", "sp ace",	 "t\tab", "nul\x01"};
	char long_name[VAULT_NAME_MAX + 2];
	struct vault *v = open_vault();

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(vault_put(v, names[i], "x", 1), -1);
		assert_non_null(strstr(or_errmsg(), "vault name"));
	}
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(vault_put(v, long_name, "x", 1), -1);
	assert_int_equal(file_exists(testpath("escape.secret")), 0);
	assert_int_equal(vault_put(v, "empty", "", 0), -1);
	assert_int_equal(file_exists(entry("empty.secret")), 0);
	vault_close(v);
}

static void
anchors_round_trip_and_must_be_certificates(void **state)
{
	struct vault *v = open_vault();
	char *pem = make_cert_pem(), *back = NULL;

	(void)state;
	ERR_clear_error();
	assert_int_equal(vault_put_anchor(v, "conductor-root", pem), 0);
	assert_int_equal(vault_get_anchor(v, "conductor-root", &back), 0);
	assert_string_equal(back, pem);
	free(back);
	/*
	 * Reading PEM to its end leaves "no start line" on OpenSSL's error queue;
	 * the queue must be empty before TLS I/O or SSL_get_error() misreports
	 * (SSL_get_error(3)), and a TLS server may read anchors on its threads.
	 */
	assert_int_equal(ERR_peek_error(), 0);
	assert_int_equal(vault_put_anchor(v, "junk", "-----BEGIN CERTIFICATE-----\nAAAA\n"), -1);
	assert_non_null(strstr(or_errmsg(), "X.509"));
	assert_int_equal(ERR_peek_error(), 0);
	/* A secret and an anchor of the same name are different entries. */
	assert_int_equal(vault_get(v, "conductor-root", &(struct secret){0}), -1);
	assert_int_equal(vault_delete_anchor(v, "conductor-root"), 0);
	assert_int_equal(vault_get_anchor(v, "conductor-root", &back), -1);
	free(pem);
	vault_close(v);
}

static void
mode_and_key_file_are_checked(void **state)
{
	struct vault *v = NULL;

	(void)state;
	put("m");
	assert_int_equal(unlink(entry("device.key")), 0);
	assert_int_equal(vault_open(testdir, NULL, &v), -1);
	assert_non_null(strstr(or_errmsg(), "device.key is missing"));
	assert_null(v);
	assert_int_equal(file_write_atomic(entry("vault.json"), "{\"version\":1,\"mode\":\"tpm\"}",
					   26, 0600),
			 0);
	assert_int_equal(vault_open(testdir, NULL, &v), -1);
	assert_non_null(strstr(or_errmsg(), "made with a TPM"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_files_0600_no_clear_text),
		cmocka_unit_test(replacing_and_deleting),
		cmocka_unit_test(altered_value_is_refused),
		cmocka_unit_test(truncated_entry_is_refused),
		cmocka_unit_test(swapped_entry_is_refused),
		cmocka_unit_test(bad_names_write_nothing),
		cmocka_unit_test(anchors_round_trip_and_must_be_certificates),
		cmocka_unit_test(another_device_key_cannot_read),
		cmocka_unit_test(mode_and_key_file_are_checked),
	};
	return cmocka_run_group_tests(tests, testdir_make, testdir_remove);
}
