/*
 * Unit tests for lib/conductor_psk.c: secret text, identifiers and proofs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/encoding.h"
#include "core/error.h"
#include "proto/conductor_psk.h"

#include <string.h>

static const char key_text[] =
	"orpsk-0123abcd-abababababababababababababababababababababababababababababababab";

static void
fixed_inputs(uint8_t nonce[32], uint8_t exporter[32])
{
	for (int i = 0; i < 32; i++) {
		nonce[i] = (uint8_t)i;
		exporter[i] = (uint8_t)(100 + i);
	}
}

static void
proof_matches_an_independent_hmac(void **state)
{
	struct secret psk = {(uint8_t *)key_text, sizeof(key_text) - 1};
	uint8_t nonce[32], exporter[32], proof[32];
	char hex[65];

	(void)state;
	fixed_inputs(nonce, exporter);
	assert_int_equal(psk_proof(&psk, nonce, "ASSET-0001", exporter, proof), 0);
	hex_encode(proof, sizeof(proof), hex);
	/* Python: hmac.new(key, nonce + b"ASSET-0001" + exporter, hashlib.sha256) */
	assert_string_equal(hex,
			    "47b6e9d256bc81d0c896013dad9ad59ca90ad89758ed41707da9a77758251bff");
	assert_true(psk_proof_check(&psk, nonce, "ASSET-0001", exporter, proof));
}

static void
proof_check_refuses_any_change(void **state)
{
	struct secret psk = {(uint8_t *)key_text, sizeof(key_text) - 1};
	struct secret other = {(uint8_t *)key_text, sizeof(key_text) - 2};
	uint8_t nonce[32], exporter[32], proof[32];

	(void)state;
	fixed_inputs(nonce, exporter);
	assert_int_equal(psk_proof(&psk, nonce, "ASSET-0001", exporter, proof), 0);
	assert_false(psk_proof_check(&other, nonce, "ASSET-0001", exporter, proof));
	assert_false(psk_proof_check(&psk, nonce, "ASSET-0002", exporter, proof));
	nonce[31] ^= 1;
	assert_false(psk_proof_check(&psk, nonce, "ASSET-0001", exporter, proof));
	nonce[31] ^= 1;
	exporter[0] ^= 0x80;
	assert_false(psk_proof_check(&psk, nonce, "ASSET-0001", exporter, proof));
	exporter[0] ^= 0x80;
	proof[5] ^= 1;
	assert_false(psk_proof_check(&psk, nonce, "ASSET-0001", exporter, proof));
	/* Bad subjects are refused, not hashed. */
	assert_int_equal(psk_proof(&psk, nonce, "", exporter, proof), -1);
	assert_int_equal(psk_proof(&psk, nonce, "has space", exporter, proof), -1);
	assert_false(psk_proof_check(&psk, nonce, "has space", exporter, proof));
}

static void
generated_secrets_parse_and_differ(void **state)
{
	struct secret a = {0}, b = {0};
	char ida[PSK_ID_LEN + 1], idb[PSK_ID_LEN + 1], parsed[PSK_ID_LEN + 1];

	(void)state;
	assert_int_equal(psk_generate(ida, &a), 0);
	assert_int_equal(psk_generate(idb, &b), 0);
	assert_int_equal(a.len, PSK_TEXT_LEN);
	assert_int_equal(strlen((char *)a.data), PSK_TEXT_LEN);
	assert_memory_equal(a.data, "orpsk-", 6);
	assert_int_equal(psk_parse_id((char *)a.data, a.len, parsed), 0);
	assert_string_equal(parsed, ida);
	assert_string_not_equal(ida, idb);
	assert_memory_not_equal(a.data, b.data, PSK_TEXT_LEN);
	secret_free(&a);
	secret_free(&b);
}

static void
parse_refuses_malformed_text(void **state)
{
	char id[PSK_ID_LEN + 1], text[PSK_TEXT_LEN + 2];

	(void)state;
	assert_int_equal(psk_parse_id(key_text, strlen(key_text), id), 0);
	assert_string_equal(id, "0123abcd");
	assert_int_equal(psk_parse_id(key_text, strlen(key_text) - 1, id), -1);
	assert_int_equal(psk_parse_id("", 0, id), -1);
	strcpy(text, key_text);
	text[0] = 'x';
	assert_int_equal(psk_parse_id(text, strlen(text), id), -1);
	strcpy(text, key_text);
	text[20] = 'g';
	assert_int_equal(psk_parse_id(text, strlen(text), id), -1);
	strcpy(text, key_text);
	text[14] = 'x';
	assert_int_equal(psk_parse_id(text, strlen(text), id), -1);
	/* The message never echoes the text. */
	assert_null(strstr(or_errmsg(), "abab"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(proof_matches_an_independent_hmac),
		cmocka_unit_test(proof_check_refuses_any_change),
		cmocka_unit_test(generated_secrets_parse_and_differ),
		cmocka_unit_test(parse_refuses_malformed_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
