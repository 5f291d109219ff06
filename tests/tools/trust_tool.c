/*
 * trust-tool: drives the device-trust library (lib/tpm, identity, vault,
 * certkey, state, record) from the integration tests, against a real swtpm.
 * Not installed; a test helper only. It prints secrets where a test needs
 * them (vault-get, record-decrypt): never use it on a real device.
 *
 *   trust-tool ocra-vectors --tcti T --vectors FILE.tsv
 *   trust-tool ocra --state-dir D (--tcti T|--software) --question Q [--session HEX]
 *   trust-tool vault-put|vault-get|vault-delete --state-dir D (--tcti T|--software) --name N
 *   trust-tool anchor-put --name N --file PEM | anchor-get --name N   (same options)
 *   trust-tool csr --state-dir D (--tcti T|--software) --cn CN [--uri U]...
 *   trust-tool certkey-pub --state-dir D (--tcti T|--software)
 *   trust-tool record-decrypt --record R --key PRIVATE.pem
 *   trust-tool state-loop --path P     (saves forever; for kill -9 tests)
 *   trust-tool state-load --path P
 *
 * Exit 0 ok, 1 failure (message on stderr), 2 usage.
 */
#include "core/encoding.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/secret.h"
#include "device/certkey.h"
#include "device/device.h"
#include "device/identity.h"
#include "device/ocra.h"
#include "device/record.h"
#include "device/state.h"
#include "device/tpm.h"
#include "device/vault.h"

#include <getopt.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_URIS 8

struct args {
	const char *cmd, *state_dir, *tcti, *vectors, *question, *session, *name, *file, *cn,
		*record, *key, *path;
	const char *uris[MAX_URIS];
	size_t n_uris;
	bool software;
};

static int
fail(const char *what)
{
	fprintf(stderr, "trust-tool: %s: %s\n", what, or_errmsg());
	return 1;
}

static int
open_tpm(const struct args *a, struct tpm **tpm)
{
	*tpm = NULL;
	if (a->tcti == NULL && !a->software)
		return or_error("give --tcti or --software");
	return a->tcti != NULL ? tpm_open(a->tcti, tpm) : 0;
}

/* One row of tests/vectors/ocra-rfc6287-appendix-c.tsv, split in place. */
struct vector {
	char *suite, *key, *counter, *question, *password, *session, *timestamp, *expected;
};

static int
split_row(char *line, struct vector *v)
{
	char **fields[] = {&v->suite,	 &v->key,     &v->counter,   &v->question,
			   &v->password, &v->session, &v->timestamp, &v->expected};
	char *p = line;

	line[strcspn(line, "\r\n")] = '\0';
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		*fields[i] = p;
		p = strchr(p, '\t');
		if (p == NULL && i + 1 < sizeof(fields) / sizeof(fields[0]))
			return -1;
		if (p != NULL)
			*p++ = '\0';
	}
	return 0;
}

/* Computes one vector with the given HMAC; buffers are freed by the caller's OPENSSL_free. */
static int
compute_vector(const struct vector *v, const struct ocra_hmac *hmac, char *out)
{
	struct ocra_suite suite;
	struct ocra_input in = {.question = v->question};
	uint8_t *pw = NULL, *si = NULL;
	size_t pw_len = 0, si_len = 0;
	int rc = -1;

	if (ocra_suite_parse(v->suite, &suite) == -1)
		return -1;
	if (v->counter[0] != '\0') {
		in.has_counter = true;
		in.counter = strtoull(v->counter, NULL, 10);
	}
	if (v->timestamp[0] != '\0') {
		in.has_timestamp = true;
		in.timestamp = strtoull(v->timestamp, NULL, 16);
	}
	if (v->password[0] != '\0') {
		if (hex_decode(v->password, "password", &pw, &pw_len) == -1)
			goto out;
		in.password_hash = pw;
		in.password_hash_len = pw_len;
	}
	if (v->session[0] != '\0') {
		if (hex_decode(v->session, "session", &si, &si_len) == -1)
			goto out;
		in.session = si;
		in.session_len = si_len;
	}
	rc = ocra_compute(&suite, &in, hmac, out, OCRA_RESPONSE_MAX);
out:
	OPENSSL_free(pw);
	OPENSSL_free(si);
	return rc;
}

/* Every vector: the key imported into the TPM, the HMAC done there, compared with software. */
static int
cmd_ocra_vectors(const struct args *a)
{
	char dir[] = "/tmp/trust-tool-XXXXXX", line[1024], tpm_out[OCRA_RESPONSE_MAX],
	     sw_out[OCRA_RESPONSE_MAX];
	struct tpm *tpm = NULL;
	FILE *f = NULL;
	unsigned n = 0, bad = 0;
	int rc = 1;

	if (a->tcti == NULL || a->vectors == NULL)
		return or_error("ocra-vectors needs --tcti and --vectors"), fail("usage");
	if (mkdtemp(dir) == NULL || (f = fopen(a->vectors, "r")) == NULL) {
		or_error("cannot open %s or make a temporary directory", a->vectors);
		goto out;
	}
	if (tpm_open(a->tcti, &tpm) == -1)
		goto out;
	while (fgets(line, sizeof(line), f) != NULL) {
		struct vector v;
		struct ocra_suite suite;
		struct identity *id = NULL;
		struct secret key = {0};
		uint8_t *raw = NULL;
		size_t raw_len = 0;
		struct ocra_hmac hmac;
		int ok;

		if (line[0] == '#' || strncmp(line, "suite\t", 6) == 0)
			continue;
		if (split_row(line, &v) == -1 || ocra_suite_parse(v.suite, &suite) == -1 ||
		    hex_decode(v.key, "key", &raw, &raw_len) == -1 ||
		    secret_from(&key, raw, raw_len) == -1) {
			OPENSSL_free(raw);
			or_error_prefix("vector %u", n + 1);
			goto out;
		}
		OPENSSL_free(raw);
		ok = identity_import(dir, tpm, suite.hash, &key) == 0 &&
		     identity_open(dir, tpm, &id) == 0;
		hmac = ok ? identity_ocra_hmac(id) : (struct ocra_hmac){0};
		ok = ok && compute_vector(&v, &hmac, tpm_out) == 0 &&
		     compute_vector(&v,
				    &(struct ocra_hmac){.compute = ocra_hmac_software, .ctx = &key},
				    sw_out) == 0;
		identity_close(id);
		secret_free(&key);
		if (!ok) {
			or_error_prefix("vector %u (%s)", n + 1, v.suite);
			goto out;
		}
		n++;
		if (strcmp(tpm_out, sw_out) != 0 || strcmp(tpm_out, v.expected) != 0) {
			fprintf(stderr, "vector %u %s %s: tpm %s software %s expected %s\n", n,
				v.suite, v.question, tpm_out, sw_out, v.expected);
			bad++;
		}
	}
	printf("%u vectors, %u differ\n", n, bad);
	rc = bad == 0 && n > 0 ? 0 : 1;
	if (rc != 0 && bad == 0)
		or_error("no vectors read");
out:
	if (f != NULL)
		fclose(f);
	identity_remove(dir);
	rmdir(dir);
	tpm_close(tpm);
	return rc == 0 ? 0 : (bad ? 1 : fail("ocra-vectors"));
}

static int
cmd_ocra(const struct args *a, struct tpm *tpm)
{
	struct device_info info;
	struct ocra_suite suite;
	struct ocra_input in = {.question = a->question};
	struct identity *id = NULL;
	struct ocra_hmac hmac;
	char out[OCRA_RESPONSE_MAX];
	uint8_t *si = NULL;
	size_t si_len = 0;
	int rc = -1;

	if (device_info_read(a->state_dir, &info) == -1 ||
	    ocra_suite_parse(info.ocra_suite, &suite) == -1 ||
	    identity_open(a->state_dir, tpm, &id) == -1)
		goto out;
	if (a->session != NULL) {
		if (hex_decode(a->session, "session", &si, &si_len) == -1)
			goto out;
		in.session = si;
		in.session_len = si_len;
	}
	hmac = identity_ocra_hmac(id);
	if (ocra_compute(&suite, &in, &hmac, out, sizeof(out)) == -1)
		goto out;
	puts(out);
	rc = 0;
out:
	OPENSSL_free(si);
	identity_close(id);
	return rc;
}

static int
cmd_vault(const struct args *a, struct tpm *tpm)
{
	struct vault *v = NULL;
	struct secret s = {0};
	char *pem = NULL;
	uint8_t *data = NULL;
	size_t len = 0, cap = 0;
	int rc = -1;

	if (a->name == NULL)
		return or_error("give --name");
	if (vault_open(a->state_dir, tpm, &v) == -1)
		return -1;
	if (strcmp(a->cmd, "vault-put") == 0) {
		/* The value comes on stdin so that it is never on a command line. */
		int c;
		while ((c = getchar()) != EOF) {
			if (len == cap) {
				uint8_t *bigger = realloc(data, cap = cap ? 2 * cap : 256);
				if (bigger == NULL) {
					or_error("out of memory");
					goto out;
				}
				data = bigger;
			}
			data[len++] = (uint8_t)c;
		}
		rc = vault_put(v, a->name, data, len);
	} else if (strcmp(a->cmd, "vault-get") == 0) {
		rc = vault_get(v, a->name, &s);
		if (rc == 0)
			fwrite(s.data, 1, s.len, stdout);
	} else if (strcmp(a->cmd, "vault-delete") == 0) {
		rc = vault_delete(v, a->name);
	} else if (strcmp(a->cmd, "anchor-put") == 0) {
		if (a->file == NULL || file_read_all(a->file, VAULT_VALUE_MAX, &data, &len) == -1)
			goto out;
		rc = vault_put_anchor(v, a->name, (const char *)data);
	} else if (strcmp(a->cmd, "anchor-get") == 0) {
		rc = vault_get_anchor(v, a->name, &pem);
		if (rc == 0)
			fputs(pem, stdout);
	} else if (strcmp(a->cmd, "anchor-delete") == 0) {
		rc = vault_delete_anchor(v, a->name);
	} else {
		or_error("unknown command '%s'", a->cmd);
	}
out:
	if (data != NULL)
		secure_zero(data, len);
	free(data);
	free(pem);
	secret_free(&s);
	vault_close(v);
	return rc;
}

static int
cmd_certkey(const struct args *a, struct tpm *tpm)
{
	struct certkey *k = NULL;
	char *pem = NULL;
	int rc;

	if (certkey_open_or_create(a->state_dir, tpm, &k) == -1)
		return -1;
	if (strcmp(a->cmd, "csr") == 0)
		rc = a->cn == NULL ? or_error("give --cn")
				   : certkey_csr(k, a->cn, a->uris, a->n_uris, &pem);
	else
		rc = certkey_public_pem(k, &pem);
	if (rc == 0)
		fputs(pem, stdout);
	free(pem);
	certkey_close(k);
	return rc;
}

static int
cmd_record_decrypt(const struct args *a)
{
	struct record rec = {0};
	struct secret key = {0}, claim = {0};
	uint8_t *pem = NULL;
	size_t len = 0;
	char hex[2 * OCRA_HASH_MAX + 1];
	int rc = -1;

	if (a->record == NULL || a->key == NULL)
		return or_error("give --record and --key");
	if (record_read(a->record, &rec) == -1 || file_read_all(a->key, 65536, &pem, &len) == -1 ||
	    record_decrypt_key(&rec, (const char *)pem, &key) == -1 ||
	    record_decrypt_claim_secret(&rec, (const char *)pem, &claim) == -1)
		goto out;
	hex_encode(key.data, key.len, hex);
	/* The test checks that neither appears in clear anywhere else. */
	printf("%s %s %s %s\n", rec.serial, rec.ocra_suite, hex, (const char *)claim.data);
	rc = 0;
out:
	secret_free(&key);
	secret_free(&claim);
	if (pem != NULL)
		secure_zero(pem, len);
	free(pem);
	record_free(&rec);
	return rc;
}

/* Saves a growing state as fast as it can until killed: the kill -9 test's victim. */
static int
cmd_state_loop(const struct args *a)
{
	char pad[4096];

	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (json_int_t i = 0;; i++) {
		/* The size changes with i, so a torn write would show as a short or mixed file. */
		json_t *s = json_pack("{s:I, s:s%, s:{s:I}}", "counter", i, "pad", pad,
				      (size_t)(i % 4000), "nested", "again", i);
		int rc = s != NULL ? state_save(a->path, s) : or_error("out of memory");
		json_decref(s);
		if (rc == -1)
			return -1;
		if (i == 0) {
			puts("saving");
			fflush(stdout);
		}
	}
}

static int
cmd_state_load(const struct args *a)
{
	json_t *s = NULL;
	char *text;

	if (state_load(a->path, &s) == -1)
		return -1;
	if (s == NULL) {
		puts("none");
		return 0;
	}
	text = json_dump_compact(s);
	puts(text != NULL ? text : "");
	free(text);
	json_decref(s);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"tcti", required_argument, NULL, 't'},
		{"software", no_argument, NULL, 'S'},
		{"vectors", required_argument, NULL, 'v'},
		{"question", required_argument, NULL, 'q'},
		{"session", required_argument, NULL, 's'},
		{"name", required_argument, NULL, 'n'},
		{"file", required_argument, NULL, 'f'},
		{"cn", required_argument, NULL, 'c'},
		{"uri", required_argument, NULL, 'u'},
		{"record", required_argument, NULL, 'r'},
		{"key", required_argument, NULL, 'k'},
		{"path", required_argument, NULL, 'p'},
		{NULL, 0, NULL, 0},
	};
	struct args a = {0};
	struct tpm *tpm = NULL;
	int opt, rc;

	if (argc < 2)
		return fprintf(stderr, "usage: trust-tool COMMAND [OPTIONS]\n"), 2;
	a.cmd = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			a.state_dir = optarg;
			break;
		case 't':
			a.tcti = optarg;
			break;
		case 'S':
			a.software = true;
			break;
		case 'v':
			a.vectors = optarg;
			break;
		case 'q':
			a.question = optarg;
			break;
		case 's':
			a.session = optarg;
			break;
		case 'n':
			a.name = optarg;
			break;
		case 'f':
			a.file = optarg;
			break;
		case 'c':
			a.cn = optarg;
			break;
		case 'u':
			if (a.n_uris == MAX_URIS)
				return fprintf(stderr, "trust-tool: too many --uri\n"), 2;
			a.uris[a.n_uris++] = optarg;
			break;
		case 'r':
			a.record = optarg;
			break;
		case 'k':
			a.key = optarg;
			break;
		case 'p':
			a.path = optarg;
			break;
		default:
			return fprintf(stderr, "trust-tool: bad option\n"), 2;
		}
	}
	if (strcmp(a.cmd, "ocra-vectors") == 0)
		return cmd_ocra_vectors(&a);
	if (strcmp(a.cmd, "record-decrypt") == 0)
		return cmd_record_decrypt(&a) == 0 ? 0 : fail(a.cmd);
	if (strcmp(a.cmd, "state-loop") == 0 || strcmp(a.cmd, "state-load") == 0) {
		if (a.path == NULL)
			return fprintf(stderr, "trust-tool: give --path\n"), 2;
		rc = strcmp(a.cmd, "state-loop") == 0 ? cmd_state_loop(&a) : cmd_state_load(&a);
		return rc == 0 ? 0 : fail(a.cmd);
	}
	if (a.state_dir == NULL)
		return fprintf(stderr, "trust-tool: give --state-dir\n"), 2;
	if (open_tpm(&a, &tpm) == -1)
		return fail("tpm");
	if (strcmp(a.cmd, "ocra") == 0)
		rc = cmd_ocra(&a, tpm);
	else if (strncmp(a.cmd, "vault-", 6) == 0 || strncmp(a.cmd, "anchor-", 7) == 0)
		rc = cmd_vault(&a, tpm);
	else if (strcmp(a.cmd, "csr") == 0 || strcmp(a.cmd, "certkey-pub") == 0)
		rc = cmd_certkey(&a, tpm);
	else
		rc = or_error("unknown command '%s'", a.cmd);
	tpm_close(tpm);
	return rc == 0 ? 0 : fail(a.cmd);
}
