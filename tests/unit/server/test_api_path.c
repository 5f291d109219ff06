/*
 * Unit tests for lib/api_path.c: splitting admin paths into segments and
 * matching them against patterns, on good paths and every malformed kind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/api_path.h"

#include <string.h>

static void
splits(void **state)
{
	struct api_path p;

	(void)state;
	assert_int_equal(api_path_split("/v1/admin/organizations/acme/sites", "/v1/admin/", &p), 0);
	assert_int_equal(p.n, 3);
	assert_string_equal(p.seg[0], "organizations");
	assert_string_equal(p.seg[1], "acme");
	assert_string_equal(p.seg[2], "sites");
	/* A trailing slash and a query are dropped. */
	assert_int_equal(api_path_split("/v1/admin/devices/?x=1", "/v1/admin/", &p), 0);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.seg[0], "devices");
	assert_int_equal(api_path_split("/v1/admin/", "/v1/admin/", &p), 0);
	assert_int_equal(p.n, 0);
}

static void
refuses(void **state)
{
	struct api_path p;
	char long_path[API_PATH_MAX + 32];

	(void)state;
	assert_int_equal(api_path_split("/v2/admin/x", "/v1/admin/", &p), -1);
	assert_int_equal(api_path_split("/v1/admin/a//b", "/v1/admin/", &p), -1);
	assert_int_equal(api_path_split("/v1/admin//a", "/v1/admin/", &p), -1);
	assert_int_equal(api_path_split("/v1/admin/a/b/c/d/e/f/g/h/i", "/v1/admin/", &p), -1);
	strcpy(long_path, "/v1/admin/");
	memset(long_path + 10, 'a', API_PATH_MAX + 1);
	long_path[10 + API_PATH_MAX + 1] = '\0';
	assert_int_equal(api_path_split(long_path, "/v1/admin/", &p), -1);
}

static void
matches(void **state)
{
	struct api_path p;

	(void)state;
	assert_int_equal(api_path_split("/v1/admin/organizations/acme/sites/paris/settings",
					"/v1/admin/", &p),
			 0);
	assert_true(api_path_is(&p, "organizations/*/sites/*/settings"));
	assert_false(api_path_is(&p, "organizations/*/sites/*"));
	assert_false(api_path_is(&p, "organizations/*/sites/*/settings/x"));
	assert_false(api_path_is(&p, "organisations/*/sites/*/settings"));
	assert_int_equal(api_path_split("/v1/admin/tokens", "/v1/admin/", &p), 0);
	assert_true(api_path_is(&p, "tokens"));
	assert_false(api_path_is(&p, "token"));
	assert_false(api_path_is(&p, "tokensx"));
	assert_false(api_path_is(&p, "*/x"));
	assert_true(api_path_is(&p, "*"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(splits),
		cmocka_unit_test(refuses),
		cmocka_unit_test(matches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
