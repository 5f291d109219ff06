/*
 * Unit tests for lib/certkey.c with a software key; the TPM key runs
 * against swtpm in tests/integration.
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
#include "core/key_id.h"
#include "core/x509.h"
#include "device/certkey.h"
#include "testdir.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

static void
key_is_made_once_and_kept(void **state)
{
	struct certkey *k = NULL;
	char *pub1 = NULL, *pub2 = NULL;
	struct stat st;

	(void)state;
	assert_int_equal(certkey_open_or_create(testdir, NULL, &k), 0);
	assert_false(certkey_in_tpm(k));
	assert_int_equal(certkey_public_pem(k, &pub1), 0);
	certkey_close(k);
	assert_int_equal(stat(testpath(CERTKEY_SOFTWARE_FILE), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(certkey_open_or_create(testdir, NULL, &k), 0);
	assert_int_equal(certkey_public_pem(k, &pub2), 0);
	assert_string_equal(pub1, pub2);
	assert_non_null(strstr(pub1, "BEGIN PUBLIC KEY"));
	certkey_close(k);
	free(pub1);
	free(pub2);
}

static void
csr_verifies_and_carries_the_names(void **state)
{
	const char *uris[] = {"urn:onramp:serial:SN-1", "https://router.example/x"};
	struct certkey *k = NULL;
	char *pem = NULL, cn[80];
	X509_REQ *req;
	EVP_PKEY *pub;
	STACK_OF(X509_EXTENSION) * exts;
	GENERAL_NAMES *names;
	BIO *bio;

	(void)state;
	assert_int_equal(certkey_open_or_create(testdir, NULL, &k), 0);
	assert_int_equal(certkey_csr(k, "SN-1", uris, 2, &pem), 0);
	bio = BIO_new_mem_buf(pem, -1);
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	assert_non_null(req);
	pub = X509_REQ_get_pubkey(req);
	assert_int_equal(X509_REQ_verify(req, pub), 1);
	X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, "SN-1");
	exts = X509_REQ_get_extensions(req);
	names = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(names), 2);
	for (int i = 0; i < 2; i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		assert_int_equal(gn->type, GEN_URI);
		assert_string_equal(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
				    uris[i]);
	}
	GENERAL_NAMES_free(names);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	EVP_PKEY_free(pub);
	X509_REQ_free(req);
	BIO_free(bio);
	free(pem);
	certkey_close(k);
}

/* Every CSR of a key (the first makes its SubjectPublicKeyInfo, the next copy it) carries the key.
 */
static void
each_csr_carries_the_keys_spki(void **state)
{
	struct certkey *k = NULL;
	char *pem = NULL, *pub_pem = NULL, id[PKI_KEY_ID_LEN + 1], want_id[PKI_KEY_ID_LEN + 1];
	unsigned char *want = NULL, *got = NULL;
	int want_len, got_len;
	EVP_PKEY *pub;
	X509_REQ *req;
	BIO *bio;

	(void)state;
	assert_int_equal(certkey_open_or_create(testdir, NULL, &k), 0);
	assert_int_equal(certkey_public_pem(k, &pub_pem), 0);
	bio = BIO_new_mem_buf(pub_pem, -1);
	pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(pub);
	want_len = i2d_PUBKEY(pub, &want);
	assert_true(want_len > 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(certkey_csr(k, i == 1 ? "second" : "SN-1", NULL, 0, &pem), 0);
		bio = BIO_new_mem_buf(pem, -1);
		req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
		BIO_free(bio);
		assert_non_null(req);
		got_len = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &got);
		assert_int_equal(got_len, want_len);
		assert_memory_equal(got, want, (size_t)want_len);
		assert_int_equal(X509_REQ_verify(req, pub), 1);
		OPENSSL_free(got);
		got = NULL;
		X509_REQ_free(req);
		free(pem);
	}
	/* The key's id is the one its public key's PEM names. */
	assert_int_equal(certkey_key_id(k, id), 0);
	assert_int_equal(pki_public_key_id(pub_pem, "device key", want_id), 0);
	assert_string_equal(id, want_id);
	OPENSSL_free(want);
	EVP_PKEY_free(pub);
	free(pub_pem);
	certkey_close(k);
}

static void
bad_names_are_refused(void **state)
{
	static const char *const bad_uris[] = {"no-scheme", "1x:y", "a b:c", "urn:", "x:\x80"};
	char long_cn[66];
	struct certkey *k = NULL;
	char *pem = NULL;

	(void)state;
	assert_int_equal(certkey_open_or_create(testdir, NULL, &k), 0);
	memset(long_cn, 'c', 65);
	long_cn[65] = '\0';
	assert_int_equal(certkey_csr(k, "", NULL, 0, &pem), -1);
	assert_int_equal(certkey_csr(k, long_cn, NULL, 0, &pem), -1);
	assert_int_equal(certkey_csr(k, "a\nb", NULL, 0, &pem), -1);
	for (size_t i = 0; i < sizeof(bad_uris) / sizeof(bad_uris[0]); i++) {
		if (certkey_csr(k, "ok", &bad_uris[i], 1, &pem) != -1)
			fail_msg("URI '%s' was taken", bad_uris[i]);
		assert_non_null(strstr(or_errmsg(), "URI SAN"));
	}
	assert_null(pem);
	certkey_close(k);
}

static void
a_tpm_key_needs_a_tpm(void **state)
{
	struct certkey *k = NULL;

	(void)state;
	assert_int_equal(file_write_atomic(testpath(CERTKEY_TPM_FILE), "{}", 2, 0600), 0);
	assert_int_equal(certkey_open_or_create(testdir, NULL, &k), -1);
	assert_non_null(strstr(or_errmsg(), "no TPM was configured"));
	assert_null(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(key_is_made_once_and_kept),
		cmocka_unit_test(csr_verifies_and_carries_the_names),
		cmocka_unit_test(each_csr_carries_the_keys_spki),
		cmocka_unit_test(bad_names_are_refused),
		cmocka_unit_test(a_tpm_key_needs_a_tpm),
	};
	return cmocka_run_group_tests(tests, testdir_make, testdir_remove);
}
