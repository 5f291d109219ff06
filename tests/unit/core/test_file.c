/*
 * Unit tests for lib/file.c: atomic replacement and bounded reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/file.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int
make_dir(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/onramp-test-file-XXXXXX");
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
replaces_atomically_with_mode(void **state)
{
	char path[128];
	uint8_t *data;
	size_t len, entries = 0;
	struct stat st;
	DIR *d;

	(void)state;
	snprintf(path, sizeof(path), "%s/state.json", dir);
	assert_int_equal(file_write_atomic(path, "old", 3, 0600), 0);
	assert_int_equal(file_write_atomic(path, "new content", 11, 0600), 0);
	assert_int_equal(file_read_all(path, 1024, &data, &len), 0);
	assert_int_equal(len, 11);
	assert_string_equal((char *)data, "new content");
	free(data);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* No temporary file is left behind. */
	d = opendir(dir);
	while (readdir(d) != NULL)
		entries++;
	closedir(d);
	assert_int_equal(entries, 3);
}

static void
failure_leaves_target_alone(void **state)
{
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/missing-dir/state.json", dir);
	assert_int_equal(file_write_atomic(path, "x", 1, 0600), -1);
	assert_non_null(strstr(or_errmsg(), "cannot create temporary file"));
}

static void
bounded_reads(void **state)
{
	char path[128];
	uint8_t *data;
	size_t len;

	(void)state;
	snprintf(path, sizeof(path), "%s/big", dir);
	assert_int_equal(file_write_atomic(path, "0123456789", 10, 0644), 0);
	assert_int_equal(file_read_all(path, 9, &data, &len), -1);
	assert_non_null(strstr(or_errmsg(), "10 bytes is more than the 9 allowed"));
	assert_int_equal(file_read_all(dir, 9, &data, &len), -1);
	assert_non_null(strstr(or_errmsg(), "not a regular file"));
	assert_int_equal(file_ensure_dir(dir, 0700), 0);
	assert_int_equal(file_ensure_dir(path, 0700), -1);
}

static void
text_without_trailing_newlines(void **state)
{
	char path[128], *text;

	(void)state;
	snprintf(path, sizeof(path), "%s/token", dir);
	assert_int_equal(file_write_atomic(path, "secret\r\n\n", 9, 0600), 0);
	assert_int_equal(file_read_text(path, 64, &text), 0);
	assert_string_equal(text, "secret");
	free(text);
	assert_int_equal(file_write_atomic(path, "a\nb\n", 4, 0600), 0);
	assert_int_equal(file_read_text(path, 64, &text), 0);
	assert_string_equal(text, "a\nb");
	free(text);
	assert_int_equal(file_read_text(path, 3, &text), -1);
	assert_null(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(replaces_atomically_with_mode),
		cmocka_unit_test(failure_leaves_target_alone),
		cmocka_unit_test(bounded_reads),
		cmocka_unit_test(text_without_trailing_newlines),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
