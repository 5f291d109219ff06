/*
 * Unit tests for lib/ocra_mutual.c: the RFC 6287 Appendix C.2 mutual vectors
 * for both roles, and the binding of a response to its session information.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "device/ocra_mutual.h"
#include "proto/cloud_proto.h"

#include <string.h>

static const char key32[] = "12345678901234567890123456789012";

static void
rfc_mutual_vectors(void **state)
{
	static const struct {
		const char *qc, *qs, *server, *client;
	} v[] = {
		{"CLI22220", "SRV11110", "28247970", "15510767"},
		{"CLI22221", "SRV11111", "01984843", "90175646"},
		{"CLI22222", "SRV11112", "65387857", "33777207"},
		{"CLI22223", "SRV11113", "03351211", "95285278"},
		{"CLI22224", "SRV11114", "83412541", "28934924"},
	};
	struct secret key = {(uint8_t *)key32, 32};
	struct ocra_hmac hmac = {ocra_hmac_software, &key};
	struct ocra_suite suite;
	char out[OCRA_RESPONSE_MAX];
	bool ok;

	(void)state;
	assert_int_equal(ocra_suite_parse("OCRA-1:HOTP-SHA256-8:QA08", &suite), 0);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(ocra_mutual_response(&suite, &hmac, OCRA_ROLE_SERVER, v[i].qc,
						      v[i].qs, NULL, 0, out, sizeof(out)),
				 0);
		assert_string_equal(out, v[i].server);
		assert_int_equal(ocra_mutual_response(&suite, &hmac, OCRA_ROLE_CLIENT, v[i].qc,
						      v[i].qs, NULL, 0, out, sizeof(out)),
				 0);
		assert_string_equal(out, v[i].client);
		assert_int_equal(ocra_mutual_check(&suite, &hmac, OCRA_ROLE_CLIENT, v[i].qc,
						   v[i].qs, NULL, 0, v[i].client, &ok),
				 0);
		assert_true(ok);
		/* The server's response is no good as the client's, and the other way round. */
		assert_int_equal(ocra_mutual_check(&suite, &hmac, OCRA_ROLE_CLIENT, v[i].qc,
						   v[i].qs, NULL, 0, v[i].server, &ok),
				 0);
		assert_false(ok);
		assert_int_equal(ocra_mutual_check(&suite, &hmac, OCRA_ROLE_SERVER, v[i].qc,
						   v[i].qs, NULL, 0, v[i].client, &ok),
				 0);
		assert_false(ok);
	}
}

static void
bound_to_session(void **state)
{
	struct secret key = {(uint8_t *)key32, 32};
	struct ocra_hmac hmac = {ocra_hmac_software, &key};
	struct ocra_suite suite;
	uint8_t s1[64], s2[64];
	char r1[OCRA_RESPONSE_MAX], qc[16], qs[16];
	bool ok;

	(void)state;
	memset(s1, 0x11, sizeof(s1));
	memcpy(s2, s1, sizeof(s2));
	s2[63] ^= 1;
	assert_int_equal(cloud_device_suite(CLOUD_DEFAULT_SUITE, &suite), 0);
	assert_int_equal(ocra_random_question(&suite, qc, sizeof(qc)), 0);
	assert_int_equal(ocra_random_question(&suite, qs, sizeof(qs)), 0);
	assert_int_equal(ocra_mutual_response(&suite, &hmac, OCRA_ROLE_CLIENT, qc, qs, s1, 64, r1,
					      sizeof(r1)),
			 0);
	/* The default suite answers with the whole HMAC-SHA256 (truncation 0): 2^256 responses. */
	assert_int_equal(suite.digits, 0);
	assert_int_equal(strlen(r1), 64);
	assert_int_equal(
		ocra_mutual_check(&suite, &hmac, OCRA_ROLE_CLIENT, qc, qs, s1, 64, r1, &ok), 0);
	assert_true(ok);
	/* One bit of another TLS session's exporter and the response is refused. */
	assert_int_equal(
		ocra_mutual_check(&suite, &hmac, OCRA_ROLE_CLIENT, qc, qs, s2, 64, r1, &ok), 0);
	assert_false(ok);
	/* A session value missing where the suite needs one is an input error. */
	assert_int_equal(ocra_mutual_response(&suite, &hmac, OCRA_ROLE_CLIENT, qc, qs, NULL, 0, r1,
					      sizeof(r1)),
			 -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rfc_mutual_vectors),
		cmocka_unit_test(bound_to_session),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
