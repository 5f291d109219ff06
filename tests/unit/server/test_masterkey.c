/*
 * Unit tests for lib/masterkey.c: the key file's creation and checks, and
 * sealing: round trip, binding to the context, tampering and truncation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/file.h"
#include "server/masterkey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[64];

static int
make_dir(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/onramp-test-masterkey-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
remove_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
key_file(void **state)
{
	char path[128], other[128];
	struct masterkey *mk;
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/master.key", dir);
	assert_int_equal(masterkey_create(path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, MASTERKEY_LEN);
	/* Never replaced. */
	assert_int_equal(masterkey_create(path), -1);
	assert_non_null(strstr(or_errmsg(), "already exists"));
	assert_int_equal(masterkey_load(path, &mk), 0);
	masterkey_free(mk);
	chmod(path, 0644);
	assert_int_equal(masterkey_load(path, &mk), -1);
	assert_non_null(strstr(or_errmsg(), "0600"));
	assert_null(mk);
	snprintf(other, sizeof(other), "%s/short.key", dir);
	assert_int_equal(file_write_atomic(other, "0123456789", 10, 0600), 0);
	assert_int_equal(masterkey_load(other, &mk), -1);
	assert_non_null(strstr(or_errmsg(), "10 bytes"));
	snprintf(other, sizeof(other), "%s/missing.key", dir);
	assert_int_equal(masterkey_load(other, &mk), -1);
}

static void
seal_and_open(void **state)
{
	char p1[128], p2[128];
	struct masterkey *mk, *mk2;
	struct secret out;
	char *sealed, *copy;
	size_t len;

	(void)state;
	snprintf(p1, sizeof(p1), "%s/k1", dir);
	snprintf(p2, sizeof(p2), "%s/k2", dir);
	assert_int_equal(masterkey_create(p1), 0);
	assert_int_equal(masterkey_create(p2), 0);
	assert_int_equal(masterkey_load(p1, &mk), 0);
	assert_int_equal(masterkey_load(p2, &mk2), 0);
	assert_int_equal(masterkey_seal(mk, "psk:acme/paris", "top-secret-psk", 14, &sealed), 0);
	assert_null(strstr(sealed, "top-secret"));
	assert_int_equal(masterkey_open(mk, "psk:acme/paris", sealed, &out), 0);
	assert_int_equal(out.len, 14);
	assert_memory_equal(out.data, "top-secret-psk", 14);
	secret_free(&out);
	/* Another row's context, another master key: refused. */
	assert_int_equal(masterkey_open(mk, "psk:acme/lyon", sealed, &out), -1);
	assert_non_null(strstr(or_errmsg(), "does not verify"));
	assert_null(out.data);
	assert_int_equal(masterkey_open(mk2, "psk:acme/paris", sealed, &out), -1);
	/* A flipped character and a truncation: refused. */
	copy = strdup(sealed);
	copy[10] = copy[10] == 'A' ? 'B' : 'A';
	assert_int_equal(masterkey_open(mk, "psk:acme/paris", copy, &out), -1);
	len = strlen(sealed);
	strcpy(copy, sealed);
	copy[len - 8] = '\0';
	assert_int_equal(masterkey_open(mk, "psk:acme/paris", copy, &out), -1);
	assert_int_equal(masterkey_open(mk, "psk:acme/paris", "AAAA", &out), -1);
	assert_int_equal(masterkey_open(mk, "psk:acme/paris", "not base64!", &out), -1);
	free(copy);
	/* Two seals of one value differ (fresh nonce). */
	assert_int_equal(masterkey_seal(mk, "psk:acme/paris", "top-secret-psk", 14, &copy), 0);
	assert_string_not_equal(copy, sealed);
	free(copy);
	free(sealed);
	/* An empty value seals and opens. */
	assert_int_equal(masterkey_seal(mk, "x", "", 0, &sealed), 0);
	assert_int_equal(masterkey_open(mk, "x", sealed, &out), 0);
	assert_int_equal(out.len, 0);
	secret_free(&out);
	free(sealed);
	masterkey_free(mk);
	masterkey_free(mk2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(key_file),
		cmocka_unit_test(seal_and_open),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
