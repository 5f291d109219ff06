/*
 * Unit tests for lib/cloud_proto.c: every field check of the cloud protocols,
 * on good values, each rule broken, and values at their limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "proto/cloud_proto.h"

#include <stdio.h>
#include <string.h>

/* A self-signed certificate made once with the openssl CLI, for the PEM checks. */
static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
			       "MIIBfDCCASOgAwIBAgIUEo657hDBClH8FkqFSwDf+jZ5DA4wCgYIKoZIzj0EAwIw\n"
			       "FDESMBAGA1UEAwwJb25yYW1wLWNhMB4XDTI2MTEyOTE2MDEzOVoXDTM2MTEyNjE2\n"
			       "MDEzOVowFDESMBAGA1UEAwwJb25yYW1wLWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0D\n"
			       "AQcDQgAExPOd3gcRrwgJUBy+b4yE+/lKK6FWNSbCwaLW/WWnp1vq0MopKueHap44\n"
			       "+mvehWCVef4HAvDqR/dLJDdVDw8Ic6NTMFEwHQYDVR0OBBYEFLj6/+IY1wXRtibu\n"
			       "7/DKne6+gJ7DMB8GA1UdIwQYMBaAFLj6/+IY1wXRtibu7/DKne6+gJ7DMA8GA1Ud\n"
			       "EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgSVK742TtmFJpDXETdii7mZ4F\n"
			       "uDKH7tnxiNGHh+PArRgCIHFv+vgrZHxxU4mCTtd1YrhPOjCotqZr5ItOm8RG2kKh\n"
			       "-----END CERTIFICATE-----\n";

static void
serials_and_names(void **state)
{
	char longest[CLOUD_SERIAL_MAX + 2];

	(void)state;
	assert_int_equal(cloud_check_serial("SSR-1000_a.b"), 0);
	assert_int_equal(cloud_check_serial("SSR:1000"), 0);
	assert_int_equal(cloud_check_name("site", "SSR:1000"), -1);
	assert_int_equal(cloud_check_serial(""), -1);
	assert_int_equal(cloud_check_serial("-rf"), -1);
	assert_int_equal(cloud_check_serial(".hidden"), -1);
	assert_int_equal(cloud_check_serial("a b"), -1);
	assert_int_equal(cloud_check_serial("a/b"), -1);
	assert_int_equal(cloud_check_serial("caf\xc3\xa9"), -1);
	memset(longest, 'A', CLOUD_SERIAL_MAX);
	longest[CLOUD_SERIAL_MAX] = '\0';
	assert_int_equal(cloud_check_serial(longest), 0);
	longest[CLOUD_SERIAL_MAX] = 'A';
	longest[CLOUD_SERIAL_MAX + 1] = '\0';
	assert_int_equal(cloud_check_serial(longest), -1);
	assert_non_null(strstr(or_errmsg(), "longer than 64"));
	assert_int_equal(cloud_check_name("organisation", "acme"), 0);
	assert_int_equal(cloud_check_name("site", "a%2fb"), -1);
	assert_non_null(strstr(or_errmsg(), "site"));
}

static void
claim_codes_nonces_tokens(void **state)
{
	(void)state;
	assert_int_equal(cloud_check_claim_code("AB12-CD34"), 0);
	assert_int_equal(cloud_check_claim_code("abc"), -1);
	assert_int_equal(cloud_check_claim_code("AB_12"), -1);
	assert_int_equal(cloud_check_claim_code("0123456789012345678901234567890123"), -1);
	assert_int_equal(cloud_check_nonce("0123456789abcdef"), 0);
	assert_int_equal(cloud_check_nonce("0123456789ABCDEF"), 0);
	assert_int_equal(cloud_check_nonce("0123456789abcde"), -1);
	assert_int_equal(cloud_check_nonce("0123456789abcdeg"), -1);
	assert_int_equal(
		cloud_check_token(
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
		0);
	assert_int_equal(
		cloud_check_token(
			"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"),
		-1);
	assert_int_equal(cloud_check_token("0123"), -1);
	assert_int_equal(cloud_check_id("0123456789abcdef0123456789abcdef"), 0);
	assert_int_equal(cloud_check_id("0123456789abcdef0123456789abcde"), -1);
}

static void
hosts_and_urls(void **state)
{
	(void)state;
	assert_int_equal(cloud_check_host("127.0.0.1"), 0);
	assert_int_equal(cloud_check_host("::1"), 0);
	assert_int_equal(cloud_check_host("conductor-1.example.net"), 0);
	assert_int_equal(cloud_check_host(""), -1);
	assert_int_equal(cloud_check_host("a..b"), -1);
	assert_int_equal(cloud_check_host(".a"), -1);
	assert_int_equal(cloud_check_host("a-.b"), -1);
	assert_int_equal(cloud_check_host("-a.b"), -1);
	assert_int_equal(cloud_check_host("a_b"), -1);
	assert_int_equal(cloud_check_host("a b"), -1);
	assert_int_equal(cloud_check_url("url", "https://cloud.example.net"), 0);
	assert_int_equal(cloud_check_url("url", "https://127.0.0.1:8443"), 0);
	assert_int_equal(cloud_check_url("url", "https://[::1]:8443"), 0);
	assert_int_equal(cloud_check_url("url", "http://127.0.0.1:8443"), -1);
	assert_int_equal(cloud_check_url("url", "https://127.0.0.1:8443/path"), -1);
	assert_int_equal(cloud_check_url("url", "https://user@host"), -1);
	assert_int_equal(cloud_check_url("url", "https://host:0"), -1);
	assert_int_equal(cloud_check_url("url", "https://host:65536"), -1);
	assert_int_equal(cloud_check_url("url", "https://host:"), -1);
	assert_int_equal(cloud_check_url("url", "https://host:12a"), -1);
	assert_int_equal(cloud_check_url("url", "https://"), -1);
	assert_int_equal(cloud_check_url("url", "https://[::1"), -1);
	assert_int_equal(cloud_check_url("cloud URL", "https://[::1]x"), -1);
	assert_non_null(strstr(or_errmsg(), "cloud URL"));
}

static void
pem_bundles(void **state)
{
	char two[sizeof(cert_pem) * 2];
	char bad[sizeof(cert_pem)];

	(void)state;
	assert_int_equal(cloud_check_pem("anchor", cert_pem), 0);
	snprintf(two, sizeof(two), "%s%s", cert_pem, cert_pem);
	assert_int_equal(cloud_check_pem("anchor", two), 0);
	assert_int_equal(cloud_check_pem("anchor", ""), -1);
	assert_int_equal(cloud_check_pem("anchor", "hello"), -1);
	assert_non_null(strstr(or_errmsg(), "no PEM certificate"));
	strcpy(bad, cert_pem);
	bad[100] = bad[100] == 'A' ? 'B' : 'A'; /* a damaged body */
	bad[101] = '*';
	assert_int_equal(cloud_check_pem("anchor", bad), -1);
	assert_int_equal(cloud_check_pem("anchor", "-----BEGIN PRIVATE KEY-----\nAAAA\n"
						   "-----END PRIVATE KEY-----\n"),
			 -1);
}

static void
texts_psks_steps(void **state)
{
	char psk[CLOUD_PSK_MAX + 2];

	(void)state;
	assert_int_equal(cloud_check_text("reason", "proxy answered 407", 0, 256), 0);
	assert_int_equal(cloud_check_text("reason", "", 0, 256), 0);
	assert_int_equal(cloud_check_text("reason", "", 1, 256), -1);
	assert_int_equal(cloud_check_text("reason", "line\nbreak", 0, 256), -1);
	assert_int_equal(cloud_check_text("reason", "abcdef", 0, 5), -1);
	assert_int_equal(cloud_check_psk("s3cret-pre-shared"), 0);
	assert_int_equal(cloud_check_psk("short"), -1);
	assert_int_equal(cloud_check_psk(" leading-space"), -1);
	assert_int_equal(cloud_check_psk("tab\there-x"), -1);
	memset(psk, 'x', sizeof(psk) - 1);
	psk[sizeof(psk) - 1] = '\0';
	assert_int_equal(cloud_check_psk(psk), -1);
	/* The message never quotes the secret. */
	assert_null(strstr(or_errmsg(), "xxxx"));
	assert_int_equal(cloud_check_step("phone-home"), 0);
	assert_int_equal(cloud_check_step("Phone-home"), -1);
	assert_int_equal(cloud_check_step("1st"), -1);
	assert_int_equal(cloud_check_step("a_b"), -1);
	assert_int_equal(cloud_check_outcome("ok"), 0);
	assert_int_equal(cloud_check_outcome("started"), 0);
	assert_int_equal(cloud_check_outcome("failed"), 0);
	assert_int_equal(cloud_check_outcome("OK"), -1);
}

static void
device_suites_and_challenges(void **state)
{
	struct ocra_suite s;

	(void)state;
	assert_int_equal(cloud_device_suite(CLOUD_DEFAULT_SUITE, &s), 0);
	assert_int_equal(s.session_len, 64);
	assert_int_equal(cloud_device_suite("OCRA-1:HOTP-SHA1-6:QN08", &s), -1);
	assert_non_null(strstr(or_errmsg(), "session information"));
	assert_int_equal(cloud_device_suite("OCRA-1:HOTP-SHA256-8:C-QA10-S064", &s), -1);
	assert_int_equal(cloud_device_suite("OCRA-1:HOTP-SHA256-8:QA10-S064-T1M", &s), -1);
	assert_int_equal(cloud_device_suite("OCRA-1:HOTP-SHA256-8:QA10-PSHA1-S064", &s), -1);
	assert_int_equal(cloud_device_suite("not a suite", &s), -1);
	assert_int_equal(cloud_device_suite(CLOUD_DEFAULT_SUITE, &s), 0);
	assert_int_equal(cloud_check_challenge(&s, "Ab3dEf7hIj"), 0);
	assert_int_equal(cloud_check_challenge(&s, "Ab3dEf7hI"), -1);
	assert_int_equal(cloud_check_challenge(&s, "Ab3dEf7hIjK"), -1);
	assert_int_equal(cloud_check_challenge(&s, "Ab3dEf7h-j"), -1);
}

static void
random_and_hash(void **state)
{
	char a[65], b[65], h[65];

	(void)state;
	assert_int_equal(cloud_random_hex(32, a), 0);
	assert_int_equal(cloud_random_hex(32, b), 0);
	assert_int_equal(strlen(a), 64);
	assert_int_equal(cloud_check_token(a), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(cloud_token_hash("abc", h), 0);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(serials_and_names), cmocka_unit_test(claim_codes_nonces_tokens),
		cmocka_unit_test(hosts_and_urls),    cmocka_unit_test(pem_bundles),
		cmocka_unit_test(texts_psks_steps),  cmocka_unit_test(device_suites_and_challenges),
		cmocka_unit_test(random_and_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
