/*
 * onrampctl ocra: computes one RFC 6287 response with a key given in hex.
 * For testing and for operators checking a device; the key is zeroed after use.
 * Every input is validated; any error prints one line and exits 2.
 */
#include "onrampctl.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/secret.h"
#include "device/ocra.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ocra_usage[] =
	"usage: onrampctl ocra --suite SUITE --key HEX [--counter N] [--question Q]\n"
	"                      [--password-hash HEX] [--session HEX] [--timestamp HEX]\n"
	"\n"
	"Prints the OCRA response for the given inputs on one line.\n"
	"  --suite SUITE        e.g. OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1\n"
	"  --key HEX            the shared secret\n"
	"  --counter N          counter C, decimal (suites with C)\n"
	"  --question Q         challenge, in the suite's format (QA, QN, QH)\n"
	"  --password-hash HEX  hash of the PIN (suites with P)\n"
	"  --session HEX        session information (suites with S)\n"
	"  --timestamp HEX      time steps since the epoch, hex (suites with T)\n";

/* Hex that may have an odd number of digits: pad one '0' in front, as the RFC's code does. */
static int
decode_padded_hex(const char *text, const char *what, uint8_t **out, size_t *len)
{
	char *padded;
	int rc;

	if (strlen(text) % 2 == 0)
		return hex_decode(text, what, out, len);
	if (asprintf(&padded, "0%s", text) < 0)
		return or_error("out of memory");
	rc = hex_decode(padded, what, out, len);
	free(padded);
	return rc;
}

/* A whole decimal or hex number of the command line that fits in 64 bits. */
static int
parse_u64(const char *text, int base, const char *what, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (text[0] == '\0' || (base == 10 && !isdigit((unsigned char)text[0])) ||
	    (base == 16 && !isxdigit((unsigned char)text[0])))
		return or_error("%s must be a %s number, not '%s'", what,
				base == 10 ? "decimal" : "hexadecimal", text);
	errno = 0;
	v = strtoull(text, &end, base);
	if (*end != '\0')
		return or_error("%s must be a %s number, not '%s'", what,
				base == 10 ? "decimal" : "hexadecimal", text);
	if (errno == ERANGE)
		return or_error("%s does not fit in 64 bits", what);
	*out = v;
	return 0;
}

/* Checks every input, computes the response with the key in memory, wipes the key. */
int
cmd_ocra(int argc, char **argv)
{
	static const struct option options[] = {
		{"suite", required_argument, NULL, 's'},
		{"key", required_argument, NULL, 'k'},
		{"counter", required_argument, NULL, 'c'},
		{"question", required_argument, NULL, 'q'},
		{"password-hash", required_argument, NULL, 'p'},
		{"session", required_argument, NULL, 'S'},
		{"timestamp", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *suite_text = NULL, *key_hex = NULL, *counter = NULL, *password = NULL,
		   *session = NULL, *timestamp = NULL;
	struct ocra_input in = {0};
	struct ocra_suite suite;
	struct secret key = {0};
	uint8_t *pw = NULL, *si = NULL, *raw_key = NULL;
	size_t pw_len = 0, si_len = 0, key_len = 0;
	char response[OCRA_RESPONSE_MAX];
	int opt, rc = EXIT_BAD_INPUT;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			suite_text = optarg;
			break;
		case 'k':
			key_hex = optarg;
			break;
		case 'c':
			counter = optarg;
			break;
		case 'q':
			in.question = optarg;
			break;
		case 'p':
			password = optarg;
			break;
		case 'S':
			session = optarg;
			break;
		case 't':
			timestamp = optarg;
			break;
		case 'h':
			fputs(ocra_usage, stdout);
			return EXIT_OK;
		default:
			return ctl_fail(EXIT_BAD_INPUT, "ocra: unknown or incomplete option '%s'",
					argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ctl_fail(EXIT_BAD_INPUT, "ocra: unexpected argument '%s'", argv[optind]);
	if (suite_text == NULL || key_hex == NULL)
		return ctl_fail(EXIT_BAD_INPUT, "ocra: --suite and --key are required");

	if (ocra_suite_parse(suite_text, &suite) == -1)
		goto fail;
	if (hex_decode(key_hex, "key", &raw_key, &key_len) == -1)
		goto fail;
	if (key_len == 0) {
		or_error("key is empty");
		goto fail;
	}
	if (secret_from(&key, raw_key, key_len) == -1)
		goto fail;
	if (counter != NULL) {
		in.has_counter = true;
		if (parse_u64(counter, 10, "counter", &in.counter) == -1)
			goto fail;
	}
	if (password != NULL) {
		if (decode_padded_hex(password, "password hash", &pw, &pw_len) == -1)
			goto fail;
		in.password_hash = pw;
		in.password_hash_len = pw_len;
	}
	if (session != NULL) {
		if (decode_padded_hex(session, "session information", &si, &si_len) == -1)
			goto fail;
		in.session = si;
		in.session_len = si_len;
	}
	if (timestamp != NULL) {
		in.has_timestamp = true;
		if (parse_u64(timestamp, 16, "timestamp", &in.timestamp) == -1)
			goto fail;
	}
	if (ocra_compute(&suite, &in,
			 &(struct ocra_hmac){.compute = ocra_hmac_software, .ctx = &key}, response,
			 sizeof(response)) == -1)
		goto fail;
	puts(response);
	rc = EXIT_OK;
	goto out;
fail:
	ctl_fail(EXIT_BAD_INPUT, "ocra: %s", or_errmsg());
out:
	if (raw_key != NULL)
		OPENSSL_clear_free(raw_key, key_len ? key_len : 1);
	if (pw != NULL)
		OPENSSL_clear_free(pw, pw_len ? pw_len : 1);
	if (si != NULL)
		OPENSSL_clear_free(si, si_len ? si_len : 1);
	secret_free(&key);
	OPENSSL_cleanse(response, sizeof(response));
	return rc;
}
