/*
 * Unit tests for lib/state.c: the versioned, checksummed, crash-safe state file.
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
#include "device/state.h"
#include "testdir.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* The name of the first file in testdir that starts with prefix, or NULL. */
static const char *
find_file(const char *prefix)
{
	static char name[256];
	struct dirent *e;
	DIR *d = opendir(testdir);
	const char *found = NULL;

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
			snprintf(name, sizeof(name), "%s", e->d_name);
			found = name;
			break;
		}
	}
	if (d != NULL)
		closedir(d);
	return found;
}

static void
write_raw(const char *path, const char *text)
{
	assert_int_equal(file_write_atomic(path, text, strlen(text), 0600), 0);
}

static void
missing_file_is_no_state(void **state)
{
	json_t *s = (json_t *)1;

	(void)state;
	assert_int_equal(state_load(testpath("none.json"), &s), 0);
	assert_null(s);
}

static void
round_trip_with_mode_0600(void **state)
{
	const char *path = testpath("rt.json");
	json_t *in = json_pack("{s:i, s:s, s:[i,i], s:{s:b}, s:f}", "counter", 7, "name",
			       "r\xc3\xa9", "list", 1, 2, "obj", "flag", 1, "real", 0.1);
	json_t *out = NULL;
	struct stat st;

	(void)state;
	assert_int_equal(state_save(path, in), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(state_load(path, &out), 0);
	assert_non_null(out);
	assert_true(json_equal(in, out));
	json_decref(in);
	json_decref(out);
}

static void
altered_file_is_kept_aside(void **state)
{
	const char *path = testpath("alter.json");
	json_t *in = json_pack("{s:i}", "counter", 41), *out = NULL;
	uint8_t *text;
	size_t len;
	char *p;

	(void)state;
	assert_int_equal(state_save(path, in), 0);
	assert_int_equal(file_read_all(path, 65536, &text, &len), 0);
	p = strstr((char *)text, "41");
	assert_non_null(p);
	p[1] = '2';
	write_raw(path, (char *)text);
	free(text);
	assert_int_equal(state_load(path, &out), -1);
	assert_null(out);
	assert_non_null(strstr(or_errmsg(), "checksum mismatch"));
	assert_non_null(strstr(or_errmsg(), "kept aside as"));
	assert_int_equal(file_exists(path), 0);
	assert_non_null(find_file("alter.json.corrupt-"));
	/* After that, the state is missing (the caller decides), not silently reset. */
	assert_int_equal(state_load(path, &out), 0);
	assert_null(out);
	json_decref(in);
}

static void
garbage_and_truncation_are_corrupt(void **state)
{
	static const char *const bad[] = {
		"",
		"not json",
		"{\"version\":1,\"checksum\":\"sha256:00\",\"sta",
		"[1,2]",
		"{\"version\":1,\"state\":{}}",
		"{\"version\":1,\"checksum\":\"sha256:00\",\"state\":[]}",
		"{\"version\":0,\"checksum\":\"x\",\"state\":{}}",
		"{\"version\":\"1\",\"checksum\":\"x\",\"state\":{}}",
	};
	json_t *out = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char name[32];
		snprintf(name, sizeof(name), "bad%zu.json", i);
		write_raw(testpath(name), bad[i]);
		assert_int_equal(state_load(testpath(name), &out), -1);
		assert_null(out);
		assert_non_null(strstr(or_errmsg(), "kept aside"));
		assert_int_equal(file_exists(testpath(name)), 0);
	}
}

static void
newer_version_is_refused_in_place(void **state)
{
	const char *path = testpath("newer.json");
	json_t *out = NULL;

	(void)state;
	write_raw(path, "{\"version\":2,\"checksum\":\"sha256:00\",\"state\":{}}");
	assert_int_equal(state_load(path, &out), -1);
	assert_non_null(strstr(or_errmsg(), "newer"));
	assert_int_equal(file_exists(path), 1);
}

static void
stale_temporaries_are_removed(void **state)
{
	char path[256];
	json_t *in = json_pack("{s:i}", "a", 1), *out = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s", testpath("tmp.json"));
	assert_int_equal(state_save(path, in), 0);
	write_raw(testpath("tmp.json.tmp.AbC123"), "{\"torn");
	assert_int_equal(state_load(path, &out), 0);
	assert_true(json_equal(in, out));
	assert_int_equal(file_exists(testpath("tmp.json.tmp.AbC123")), 0);
	json_decref(in);
	json_decref(out);
}

static void
only_objects_are_saved(void **state)
{
	json_t *arr = json_array();

	(void)state;
	assert_int_equal(state_save(testpath("arr.json"), arr), -1);
	assert_int_equal(file_exists(testpath("arr.json")), 0);
	json_decref(arr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(missing_file_is_no_state),
		cmocka_unit_test(round_trip_with_mode_0600),
		cmocka_unit_test(altered_file_is_kept_aside),
		cmocka_unit_test(garbage_and_truncation_are_corrupt),
		cmocka_unit_test(newer_version_is_refused_in_place),
		cmocka_unit_test(stale_temporaries_are_removed),
		cmocka_unit_test(only_objects_are_saved),
	};
	return cmocka_run_group_tests(tests, testdir_make, testdir_remove);
}
