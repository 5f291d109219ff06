/*
 * Unit tests for lib/server/ca.c and lib/core/x509.c: the conductor's CA, its server certificate
 * and router certificates from CSRs, each checked with OpenSSL's own verifier.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "server/ca.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fixture {
	char *ca_pem;
	struct secret ca_key;
	struct pki_ca *ca;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || pki_ca_create("test root", 400, &f->ca_pem, &f->ca_key) == -1 ||
	    pki_ca_load(f->ca_pem, (char *)f->ca_key.data, &f->ca) == -1)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	pki_ca_free(f->ca);
	free(f->ca_pem);
	secret_free(&f->ca_key);
	free(f);
	return 0;
}

static X509 *
parse_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);

	BIO_free(bio);
	assert_non_null(cert);
	return cert;
}

/* Verifies leaf against root with OpenSSL's chain verifier; returns the X509_V_ code. */
static int
verify_chain(const char *root_pem, const char *leaf_pem, int purpose)
{
	X509 *root = parse_cert(root_pem), *leaf = parse_cert(leaf_pem);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc;

	assert_int_equal(X509_STORE_add_cert(store, root), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
	if (purpose)
		X509_STORE_CTX_set_purpose(ctx, purpose);
	rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(root);
	X509_free(leaf);
	return rc;
}

/* A CSR made the way a router would, with a subject and SAN the CA must ignore. */
static char *
make_csr(EVP_PKEY *key, const char *cn, const char *san)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_REQ_get_subject_name(req);
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long len;

	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	if (san != NULL) {
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
		assert_non_null(ext);
		sk_X509_EXTENSION_push(exts, ext);
		X509_REQ_add_extensions(req, exts);
	}
	X509_REQ_set_pubkey(req, key);
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	PEM_write_bio_X509_REQ(bio, req);
	len = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)len);
	BIO_free(bio);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return out;
}

static void
ca_is_a_ca_and_self_verifies(void **state)
{
	struct fixture *f = *state;
	X509 *cert = parse_cert(f->ca_pem);

	assert_true(X509_get_extension_flags(cert) & EXFLAG_CA);
	assert_true(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN);
	X509_free(cert);
	assert_int_equal(verify_chain(f->ca_pem, f->ca_pem, 0), X509_V_OK);
	assert_string_equal(pki_ca_cert_pem(f->ca), f->ca_pem);
	/* The key PEM is NUL-terminated and is a private key. */
	assert_non_null(strstr((char *)f->ca_key.data, "PRIVATE KEY"));
	assert_int_equal(strlen((char *)f->ca_key.data), f->ca_key.len);
}

static void
ca_create_refuses_bad_input(void **state)
{
	struct secret key = {0};
	char *pem;

	(void)state;
	assert_int_equal(pki_ca_create("", 30, &pem, &key), -1);
	assert_int_equal(pki_ca_create("x", 0, &pem, &key), -1);
	assert_int_equal(pki_ca_create("x", PKI_MAX_DAYS_CA + 1, &pem, &key), -1);
	assert_non_null(strstr(or_errmsg(), "days"));
	assert_null(key.data);
}

static void
ca_load_refuses_wrong_key_and_non_ca(void **state)
{
	struct fixture *f = *state;
	struct secret other_key = {0}, server_key = {0};
	struct pki_issued server;
	const char *names[] = {"127.0.0.1"};
	struct pki_ca *ca;
	char *other_pem;

	assert_int_equal(pki_ca_create("other", 30, &other_pem, &other_key), 0);
	assert_int_equal(pki_ca_load(f->ca_pem, (char *)other_key.data, &ca), -1);
	assert_non_null(strstr(or_errmsg(), "does not belong"));
	assert_null(ca);

	assert_int_equal(pki_issue_server(f->ca, "srv", names, 1, 10, &server, &server_key), 0);
	assert_int_equal(pki_ca_load(server.cert_pem, (char *)server_key.data, &ca), -1);
	assert_non_null(strstr(or_errmsg(), "not a CA"));

	assert_int_equal(pki_ca_load("garbage", (char *)other_key.data, &ca), -1);
	assert_non_null(strstr(or_errmsg(), "not a PEM certificate"));
	assert_int_equal(pki_ca_load(f->ca_pem, "garbage", &ca), -1);
	assert_non_null(strstr(or_errmsg(), "not a PEM private key"));
	assert_int_equal(pki_ca_load("", "", &ca), -1);

	pki_issued_free(&server);
	secret_free(&server_key);
	secret_free(&other_key);
	free(other_pem);
}

static void
server_cert_has_sans_and_verifies(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"127.0.0.1", "::1", "conductor.example.net"};
	struct pki_issued srv;
	struct secret key = {0};
	X509 *cert;
	EVP_PKEY *pkey;
	BIO *bio;

	assert_int_equal(pki_issue_server(f->ca, "conductor", names, 3, 30, &srv, &key), 0);
	assert_int_equal(verify_chain(f->ca_pem, srv.cert_pem, X509_PURPOSE_SSL_SERVER), X509_V_OK);
	cert = parse_cert(srv.cert_pem);
	assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(cert, "127.0.0.2", 0), 0);
	assert_int_equal(X509_check_host(cert, "conductor.example.net", 0, 0, NULL), 1);
	assert_false(X509_get_extension_flags(cert) & EXFLAG_CA);
	/* The key returned is the certificate's. */
	bio = BIO_new_mem_buf(key.data, (int)key.len);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(pkey);
	assert_int_equal(X509_check_private_key(cert, pkey), 1);
	assert_int_equal(srv.not_after - srv.not_before, 30 * 86400 + 300);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	X509_free(cert);
	pki_issued_free(&srv);
	secret_free(&key);
}

static void
server_cert_refuses_bad_names(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"bad name", "a,DNS:evil", "", "-x"};
	struct pki_issued srv;
	struct secret key = {0};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pki_issue_server(f->ca, "c", &bad[i], 1, 30, &srv, &key), -1);
		assert_null(srv.cert_pem);
		assert_null(key.data);
	}
	assert_int_equal(pki_issue_server(f->ca, "c", bad, 0, 30, &srv, &key), -1);
	assert_int_equal(pki_issue_server(f->ca, "c", bad, 0, PKI_MAX_DAYS_LEAF + 1, &srv, &key),
			 -1);
}

static void
router_cert_carries_only_the_conductors_names(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *csr = make_csr(key, "evil", "DNS:evil.example,URI:urn:onramp:peering:evil");
	char key_id[PKI_KEY_ID_LEN + 1], cert_key_id[PKI_KEY_ID_LEN + 1];
	struct pki_issued out;
	GENERAL_NAMES *gens;
	GENERAL_NAME *gen;
	X509 *cert;
	char cn[64];

	assert_int_equal(pki_sign_router_csr(f->ca, csr, "hub-router-1", 90, &out), 0);
	assert_int_equal(verify_chain(f->ca_pem, out.cert_pem, X509_PURPOSE_SSL_SERVER), X509_V_OK);
	assert_int_equal(verify_chain(f->ca_pem, out.cert_pem, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
	cert = parse_cert(out.cert_pem);
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, "hub-router-1");
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(cert)), 1);
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
	gen = sk_GENERAL_NAME_value(gens, 0);
	assert_int_equal(gen->type, GEN_URI);
	assert_string_equal((const char *)ASN1_STRING_get0_data(gen->d.uniformResourceIdentifier),
			    "urn:onramp:peering:hub-router-1");
	GENERAL_NAMES_free(gens);
	assert_false(X509_get_extension_flags(cert) & EXFLAG_CA);
	assert_int_equal(X509_check_private_key(cert, key), 1);
	/* The bound validity is what was asked for, plus the clock-skew margin. */
	assert_int_equal(out.not_after - out.not_before, 90 * 86400 + 300);
	/* The device identity is the same from the CSR and from the certificate. */
	assert_int_equal(pki_csr_check(csr, NULL, key_id), 0);
	assert_int_equal(pki_cert_key_id(out.cert_pem, cert_key_id), 0);
	assert_string_equal(key_id, cert_key_id);
	assert_string_equal(key_id, out.key_id);
	assert_int_equal(strlen(out.sha256), 64);
	assert_int_equal(strlen(out.serial), 40);
	X509_free(cert);
	pki_issued_free(&out);
	free(csr);
	EVP_PKEY_free(key);
}

/* A leaf asked to live longer than its CA stops when the CA does, and still verifies. */
static void
leaf_never_outlives_its_ca(void **state)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *csr = make_csr(key, "r", NULL), *ca_pem = NULL;
	const char *names[1] = {"127.0.0.1"};
	struct secret ca_key = {0}, srv_key = {0};
	struct pki_issued out, srv;
	struct pki_ca *ca = NULL;
	X509 *root;
	struct tm tm;
	time_t ca_end;

	(void)state;
	assert_int_equal(pki_ca_create("short root", 10, &ca_pem, &ca_key), 0);
	assert_int_equal(pki_ca_load(ca_pem, (char *)ca_key.data, &ca), 0);
	root = parse_cert(ca_pem);
	assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(root), &tm), 1);
	ca_end = timegm(&tm);
	assert_int_equal(pki_sign_router_csr(ca, csr, "r1", 365, &out), 0);
	assert_int_equal(out.not_after, ca_end);
	assert_int_equal(verify_chain(ca_pem, out.cert_pem, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
	assert_int_equal(pki_issue_server(ca, "srv", names, 1, 397, &srv, &srv_key), 0);
	assert_int_equal(srv.not_after, ca_end);
	/* Shorter than the CA: as asked. */
	pki_issued_free(&out);
	assert_int_equal(pki_sign_router_csr(ca, csr, "r1", 5, &out), 0);
	assert_true(out.not_after < ca_end);
	pki_issued_free(&out);
	pki_issued_free(&srv);
	secret_free(&srv_key);
	X509_free(root);
	pki_ca_free(ca);
	secret_free(&ca_key);
	free(ca_pem);
	free(csr);
	EVP_PKEY_free(key);
}

static void
serials_are_unique(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *csr = make_csr(key, "r", NULL);
	static char serials[200][PKI_SERIAL_HEX_MAX];
	struct pki_issued out;

	for (int i = 0; i < 200; i++) {
		assert_int_equal(pki_sign_router_csr(f->ca, csr, "r1", 1, &out), 0);
		strcpy(serials[i], out.serial);
		assert_true(serials[i][0] >= '4' && serials[i][0] <= '7');
		for (int j = 0; j < i; j++)
			assert_string_not_equal(serials[i], serials[j]);
		pki_issued_free(&out);
	}
	free(csr);
	EVP_PKEY_free(key);
}

static void
csr_checks(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = EVP_EC_gen("P-256"), *weak = EVP_RSA_gen(1024);
	char *csr = make_csr(key, "r", "URI:urn:onramp:nonce:abcd");
	char *weak_csr = make_csr(weak, "r", NULL);
	char key_id[PKI_KEY_ID_LEN + 1];
	struct pki_issued out;
	char *tampered, *p;

	assert_int_equal(pki_csr_check(csr, "urn:onramp:nonce:abcd", key_id), 0);
	assert_int_equal(pki_csr_check(csr, "urn:onramp:nonce:abce", key_id), -1);
	assert_non_null(strstr(or_errmsg(), "required URI"));
	assert_int_equal(pki_csr_check(weak_csr, NULL, key_id), -1);
	assert_non_null(strstr(or_errmsg(), "too short"));
	assert_int_equal(pki_sign_router_csr(f->ca, weak_csr, "r", 1, &out), -1);
	assert_int_equal(pki_csr_check("not a csr", NULL, key_id), -1);
	assert_non_null(strstr(or_errmsg(), "not a PEM certificate request"));

	/* Change one base64 character in the middle of the CSR: parse or signature fails. */
	tampered = strdup(csr);
	p = tampered + strlen(tampered) / 2;
	*p = *p == 'A' ? 'B' : 'A';
	assert_int_equal(pki_csr_check(tampered, NULL, key_id), -1);

	assert_int_equal(pki_sign_router_csr(f->ca, csr, "bad name", 1, &out), -1);
	assert_int_equal(pki_sign_router_csr(f->ca, csr, "r", 0, &out), -1);
	assert_int_equal(pki_sign_router_csr(f->ca, csr, "r", PKI_MAX_DAYS_LEAF + 1, &out), -1);
	assert_null(out.cert_pem);
	free(tampered);
	free(csr);
	free(weak_csr);
	EVP_PKEY_free(key);
	EVP_PKEY_free(weak);
}

static void
server_cert_serves_its_names_until_near_expiry(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"127.0.0.1", "conductor.example.net"};
	const char *more[] = {"127.0.0.1", "10.0.0.1"};
	struct pki_issued srv;
	struct secret key = {0};
	time_t not_after;
	bool serves;

	assert_int_equal(pki_issue_server(f->ca, "c", names, 2, 40, &srv, &key), 0);
	assert_int_equal(pki_cert_serves(srv.cert_pem, names, 2, 30, &serves, &not_after), 0);
	assert_true(serves);
	assert_int_equal(not_after, srv.not_after);
	/* Renewal is due within 50 days; a new address is not covered. */
	assert_int_equal(pki_cert_serves(srv.cert_pem, names, 2, 50, &serves, &not_after), 0);
	assert_false(serves);
	assert_int_equal(pki_cert_serves(srv.cert_pem, more, 2, 1, &serves, &not_after), 0);
	assert_false(serves);
	assert_int_equal(pki_cert_serves("junk", names, 2, 1, &serves, &not_after), -1);
	pki_issued_free(&srv);
	secret_free(&key);
}

static void
verify_chain_against_anchor(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *csr = make_csr(key, "r", NULL), *other_pem;
	char leaf_id[PKI_KEY_ID_LEN + 1], csr_id[PKI_KEY_ID_LEN + 1];
	struct secret other_key = {0};
	struct pki_issued out;

	assert_int_equal(pki_sign_router_csr(f->ca, csr, "r1", 10, &out), 0);
	assert_int_equal(pki_verify_chain(out.cert_pem, f->ca_pem, NULL), 0);
	/* Again, the anchor now remembered: the leaf's key id is the CSR's. */
	assert_int_equal(pki_verify_chain(out.cert_pem, f->ca_pem, leaf_id), 0);
	assert_int_equal(pki_csr_check(csr, NULL, csr_id), 0);
	assert_string_equal(leaf_id, csr_id);
	assert_int_equal(pki_ca_create("other", 30, &other_pem, &other_key), 0);
	assert_int_equal(pki_verify_chain(out.cert_pem, other_pem, NULL), -1);
	assert_non_null(strstr(or_errmsg(), "does not verify"));
	assert_int_equal(pki_verify_chain("junk", f->ca_pem, NULL), -1);
	assert_int_equal(pki_verify_chain(out.cert_pem, "junk", NULL), -1);
	pki_issued_free(&out);
	secret_free(&other_key);
	free(other_pem);
	free(csr);
	EVP_PKEY_free(key);
}

/* The DER SubjectPublicKeyInfo of a certificate's key, as it is in the certificate. */
static int
cert_spki_der(const char *pem, unsigned char **der)
{
	X509 *cert = parse_cert(pem);
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), der);

	X509_free(cert);
	return len;
}

/*
 * A certificate signed from a loaded request carries the request's key as
 * OpenSSL writes it and as the CSR's key id names it: for an EC key (points
 * written uncompressed, and compressed), an RSA key, and the same through
 * pki_sign_router_csr.
 */
static void
router_cert_key_is_the_requests(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *keys[3] = {EVP_EC_gen("P-256"), EVP_EC_gen("P-384"), EVP_RSA_gen(2048)};
	char key_id[PKI_KEY_ID_LEN + 1], cert_key_id[PKI_KEY_ID_LEN + 1];

	assert_int_equal(EVP_PKEY_set_utf8_string_param(
				 keys[1], OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"),
			 1);
	for (size_t i = 0; i < 3; i++) {
		char *csr = make_csr(keys[i], "r", NULL);
		unsigned char *want = NULL, *got = NULL;
		struct pki_issued out, again;
		X509_REQ *req = NULL;
		int want_len = i2d_PUBKEY(keys[i], &want), got_len;
		X509 *cert;

		assert_int_equal(pki_csr_load(csr, NULL, &req, key_id), 0);
		assert_int_equal(pki_sign_router_req(f->ca, req, key_id, "r1", 10, &out), 0);
		assert_int_equal(verify_chain(f->ca_pem, out.cert_pem, X509_PURPOSE_SSL_CLIENT),
				 X509_V_OK);
		got_len = cert_spki_der(out.cert_pem, &got);
		assert_int_equal(got_len, want_len);
		assert_memory_equal(got, want, (size_t)want_len);
		assert_string_equal(out.key_id, key_id);
		assert_int_equal(pki_cert_key_id(out.cert_pem, cert_key_id), 0);
		assert_string_equal(cert_key_id, key_id);
		cert = parse_cert(out.cert_pem);
		assert_int_equal(X509_check_private_key(cert, keys[i]), 1);
		X509_free(cert);
		assert_int_equal(pki_sign_router_csr(f->ca, csr, "r1", 10, &again), 0);
		assert_string_equal(again.key_id, key_id);
		pki_issued_free(&again);
		pki_issued_free(&out);
		X509_REQ_free(req);
		OPENSSL_free(want);
		OPENSSL_free(got);
		free(csr);
		EVP_PKEY_free(keys[i]);
	}
}

/*
 * A loaded request keeps its key undecoded: when the id given does not name
 * its SubjectPublicKeyInfo as written, the key is decoded from the request and
 * the certificate still carries it.
 */
static void
router_cert_key_decoded_when_the_id_differs(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *csr = make_csr(key, "r", NULL), key_id[PKI_KEY_ID_LEN + 1], other[PKI_KEY_ID_LEN + 1];
	struct pki_issued out;
	X509_REQ *req = NULL;
	X509 *cert;

	assert_int_equal(pki_csr_load(csr, NULL, &req, key_id), 0);
	assert_null(X509_REQ_get0_pubkey(req));
	memset(other, '0', PKI_KEY_ID_LEN);
	other[PKI_KEY_ID_LEN] = '\0';
	assert_int_equal(pki_sign_router_req(f->ca, req, other, "r1", 10, &out), 0);
	cert = parse_cert(out.cert_pem);
	assert_int_equal(X509_check_private_key(cert, key), 1);
	X509_free(cert);
	pki_issued_free(&out);
	X509_REQ_free(req);
	free(csr);
	EVP_PKEY_free(key);
}

static void
router_names(void **state)
{
	(void)state;
	assert_true(pki_valid_router_name("r1"));
	assert_true(pki_valid_router_name("Hub_Router-2.site"));
	assert_false(pki_valid_router_name(""));
	assert_false(pki_valid_router_name(NULL));
	assert_false(pki_valid_router_name("-r"));
	assert_false(pki_valid_router_name("r 1"));
	assert_false(pki_valid_router_name("r/1"));
	assert_false(pki_valid_router_name(
		"a123456789012345678901234567890123456789012345678901234567890123"));
}

/* The one PEM certificate check of vault, HTTP client and cloud. */
static void
certificate_pem_check(void **state)
{
	struct fixture *f = *state;
	char two[8192], bad[8192];

	snprintf(two, sizeof(two), "comment\n%s\nbetween\n%s", f->ca_pem, f->ca_pem);
	assert_int_equal(pki_check_certificates(two, strlen(two), 2, "anchor"), 0);
	assert_int_equal(ERR_peek_error(), 0);
	assert_int_equal(pki_check_certificates(two, strlen(two), 1, "anchor"), -1);
	assert_non_null(strstr(or_errmsg(), "anchor holds more than 1 certificates"));
	assert_int_equal(pki_check_certificates("", 0, 4, "anchor"), -1);
	assert_string_equal(or_errmsg(), "anchor is empty");
	assert_int_equal(pki_check_certificates("not pem", 7, 4, "anchor"), -1);
	assert_string_equal(or_errmsg(), "anchor holds no PEM certificate");
	/* A second block that is not a certificate is refused, not skipped. */
	snprintf(bad, sizeof(bad),
		 "%s-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f->ca_pem);
	assert_int_equal(pki_check_certificates(bad, strlen(bad), 4, "anchor"), -1);
	assert_non_null(strstr(or_errmsg(), "not a valid certificate"));
	assert_int_equal(ERR_peek_error(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ca_is_a_ca_and_self_verifies),
		cmocka_unit_test(ca_create_refuses_bad_input),
		cmocka_unit_test(ca_load_refuses_wrong_key_and_non_ca),
		cmocka_unit_test(server_cert_has_sans_and_verifies),
		cmocka_unit_test(server_cert_refuses_bad_names),
		cmocka_unit_test(router_cert_carries_only_the_conductors_names),
		cmocka_unit_test(serials_are_unique),
		cmocka_unit_test(leaf_never_outlives_its_ca),
		cmocka_unit_test(csr_checks),
		cmocka_unit_test(server_cert_serves_its_names_until_near_expiry),
		cmocka_unit_test(verify_chain_against_anchor),
		cmocka_unit_test(certificate_pem_check),
		cmocka_unit_test(router_cert_key_is_the_requests),
		cmocka_unit_test(router_cert_key_decoded_when_the_id_differs),
		cmocka_unit_test(router_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
