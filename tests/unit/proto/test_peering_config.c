/*
 * Unit tests for lib/peering_config.c: the peering configuration schema.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "proto/peering_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char good[] =
	"{\"version\":1,\"router\":{\"name\":\"branch-17\"},"
	"\"hub\":{\"name\":\"hub-east\",\"addresses\":[\"203.0.113.10:1280\",\"hub.example.net\","
	"\"[2001:db8::1]:1280\"]},"
	"\"neighborhoods\":[{\"name\":\"mpls-core\",\"topology\":\"spoke\",\"vector\":\"mpls\","
	"\"cost\":10},{\"name\":\"internet\"}]}";

static json_t *
parse(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	assert_non_null(j);
	return j;
}

/* Validates good with one change made by a JSON-path-free patch: replace from with to. */
static int
validate_patched(const char *from, const char *to, const char *router)
{
	char text[2048];
	const char *at = strstr(good, from);
	json_t *j;
	int rc;

	assert_non_null(at);
	snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
	j = json_loads(text, 0, NULL);
	if (j == NULL)
		fail_msg("patched text is not JSON: %s", text);
	rc = peering_config_validate(j, router);
	json_decref(j);
	return rc;
}

static void
accepts_a_good_configuration(void **state)
{
	json_t *j = parse(good);

	(void)state;
	assert_int_equal(peering_config_validate(j, "branch-17"), 0);
	assert_int_equal(peering_config_validate(j, NULL), 0);
	json_decref(j);
}

struct bad_case {
	const char *from, *to, *message;
};

static void
refuses_every_kind_of_bad_field(void **state)
{
	static const struct bad_case cases[] = {
		{"\"version\":1", "\"version\":2", "version"},
		{"\"version\":1,", "", "'version' is required"},
		{"\"version\":1", "\"version\":1,\"extra\":true", "unknown field 'extra'"},
		{"{\"name\":\"branch-17\"}", "\"branch-17\"", "router: required"},
		{"\"name\":\"branch-17\"", "\"name\":\"bad name\"", "router.name"},
		{"\"name\":\"branch-17\"", "\"name\":\"\"", "router.name"},
		{"\"name\":\"branch-17\"", "\"name\":7", "must be a string"},
		{"\"name\":\"hub-east\",", "", "'name' is required"},
		{"\"name\":\"hub-east\"", "\"name\":\"hub-east\",\"port\":1",
		 "unknown field 'port'"},
		{"\"203.0.113.10:1280\"", "\"203.0.113.10:0\"", "hub.addresses[0]"},
		{"\"203.0.113.10:1280\"", "\"203.0.113.10:65536\"", "port"},
		{"\"203.0.113.10:1280\"", "\"203.0.113.10:x\"", "port"},
		{"\"203.0.113.10:1280\"", "\"bad host:1\"", "neither an IP"},
		{"\"203.0.113.10:1280\"", "\"2001:db8::1\"", "[addr]:port"},
		{"\"[2001:db8::1]:1280\"", "\"[zz::1]:1280\"", "IPv6"},
		{"\"[2001:db8::1]:1280\"", "\"[2001:db8::1\"", "closing"},
		{"\"[2001:db8::1]:1280\"", "\"hub.example.net\"", "repeats"},
		{"\"203.0.113.10:1280\"", "5", "must be a string"},
		{"\"hub.example.net\",", "", NULL}, /* still valid: checked below */
		{"{\"name\":\"internet\"}", "{\"name\":\"mpls-core\"}", "repeats neighborhoods[0]"},
		{"\"topology\":\"spoke\"", "\"topology\":\"star\"", "not spoke, hub or mesh"},
		{"\"cost\":10", "\"cost\":-1", "cost"},
		{"\"cost\":10", "\"cost\":\"10\"", "cost"},
		{"{\"name\":\"internet\"}", "{\"name\":\"internet\",\"mtu\":1}",
		 "unknown field 'mtu'"},
		{"{\"name\":\"internet\"}", "\"internet\"", "neighborhoods[1]: must be an object"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = validate_patched(cases[i].from, cases[i].to, "branch-17");

		if (cases[i].message == NULL) {
			assert_int_equal(rc, 0);
			continue;
		}
		if (rc != -1)
			fail_msg("case %zu (%s -> %s) was accepted", i, cases[i].from, cases[i].to);
		if (strstr(or_errmsg(), cases[i].message) == NULL)
			fail_msg("case %zu: message '%s' lacks '%s'", i, or_errmsg(),
				 cases[i].message);
	}
}

static void
refuses_empty_or_oversized_lists(void **state)
{
	json_t *j = parse(good), *addrs, *nbs;

	(void)state;
	addrs = json_object_get(json_object_get(j, "hub"), "addresses");
	json_array_clear(addrs);
	assert_int_equal(peering_config_validate(j, NULL), -1);
	for (int i = 0; i < PEERING_MAX_HUB_ADDRESSES + 1; i++) {
		char a[32];
		snprintf(a, sizeof(a), "10.0.0.%d:1280", i + 1);
		json_array_append_new(addrs, json_string(a));
	}
	assert_int_equal(peering_config_validate(j, NULL), -1);
	assert_non_null(strstr(or_errmsg(), "hub.addresses"));
	json_array_remove(addrs, 0);
	assert_int_equal(peering_config_validate(j, NULL), 0);

	nbs = json_object_get(j, "neighborhoods");
	json_array_clear(nbs);
	assert_int_equal(peering_config_validate(j, NULL), -1);
	assert_non_null(strstr(or_errmsg(), "neighborhoods"));
	json_decref(j);

	j = json_array();
	assert_int_equal(peering_config_validate(j, NULL), -1);
	json_decref(j);
}

static void
router_name_must_match(void **state)
{
	json_t *j = parse(good);

	(void)state;
	assert_int_equal(peering_config_validate(j, "branch-18"), -1);
	assert_non_null(strstr(or_errmsg(), "not the router being added"));
	json_decref(j);
}

static void
canonical_text_is_stable(void **state)
{
	json_t *a = parse(good), *b;
	char *ta, *tb, ha[65], hb[65], expect[65];

	(void)state;
	/* The same object with keys in another order gives the same bytes and hash. */
	b = parse("{\"neighborhoods\":[{\"vector\":\"mpls\",\"cost\":10,\"topology\":\"spoke\","
		  "\"name\":\"mpls-core\"},{\"name\":\"internet\"}],"
		  "\"hub\":{\"addresses\":[\"203.0.113.10:1280\",\"hub.example.net\","
		  "\"[2001:db8::1]:1280\"],\"name\":\"hub-east\"},"
		  "\"router\":{\"name\":\"branch-17\"},\"version\":1}");
	assert_int_equal(peering_config_canonical(a, &ta, ha), 0);
	assert_int_equal(peering_config_canonical(b, &tb, hb), 0);
	assert_string_equal(ta, tb);
	assert_string_equal(ha, hb);
	assert_int_equal(sha256_hex(ta, strlen(ta), expect), 0);
	assert_string_equal(ha, expect);
	/* SHA-256("abc"), FIPS 180-2. */
	assert_int_equal(sha256_hex("abc", 3, expect), 0);
	assert_string_equal(expect,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	free(ta);
	free(tb);
	json_decref(a);
	json_decref(b);
}

static void
loads_from_file(void **state)
{
	char path[] = "/tmp/onramp-test-peering-XXXXXX";
	json_t *j;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));
	close(fd);
	assert_int_equal(peering_config_load(path, "branch-17", &j), 0);
	json_decref(j);
	assert_int_equal(peering_config_load(path, "other", &j), -1);
	assert_null(j);
	assert_non_null(strstr(or_errmsg(), path));
	unlink(path);
	assert_int_equal(peering_config_load(path, NULL, &j), -1);
}

/* good with a management-proxy section (text: the section's value) appended. */
static json_t *
with_mgmt_proxy(const char *section)
{
	char text[2048];

	snprintf(text, sizeof(text), "%.*s,\"management-proxy\":%s}", (int)strlen(good) - 1, good,
		 section);
	return json_loads(text, 0, NULL);
}

static void
management_proxy_section_is_optional_and_parsed(void **state)
{
	struct peering_mgmt_proxy mp;
	char text[PROXY_ADDR_STRLEN];
	json_t *j = parse(good);

	(void)state;
	assert_int_equal(peering_config_mgmt_proxy(j, &mp), 0);
	assert_false(mp.present);
	json_decref(j);

	j = with_mgmt_proxy("{\"mode\":\"static\",\"static\":[\"10.92.53.8:3128\","
			    "\"10.92.53.9:8080\"]}");
	assert_non_null(j);
	assert_int_equal(peering_config_validate(j, "branch-17"), 0);
	assert_int_equal(peering_config_mgmt_proxy(j, &mp), 0);
	assert_true(mp.present);
	assert_string_equal(mp.mode, "static");
	assert_int_equal(mp.n_static, 2);
	proxy_addr_format(&mp.statics[1], text);
	assert_string_equal(text, "10.92.53.9:8080");
	json_decref(j);

	j = with_mgmt_proxy("{\"mode\":\"learned\"}");
	assert_int_equal(peering_config_mgmt_proxy(j, &mp), 0);
	assert_true(mp.present);
	assert_string_equal(mp.mode, "learned");
	assert_int_equal(mp.n_static, 0);
	json_decref(j);

	j = with_mgmt_proxy("{\"mode\":\"disabled\"}");
	assert_int_equal(peering_config_mgmt_proxy(j, &mp), 0);
	assert_string_equal(mp.mode, "disabled");
	json_decref(j);
}

static void
management_proxy_section_refuses_bad_fields(void **state)
{
	static const struct bad_case cases[] = {
		{"[]", NULL, "management-proxy: must be an object"},
		{"{}", NULL, "management-proxy: field 'mode' is required"},
		{"{\"mode\":\"dhcp\"}", NULL, "not disabled, static or learned"},
		{"{\"mode\":\"static\"}", NULL, "mode static needs"},
		{"{\"mode\":\"static\",\"static\":[]}", NULL, "an array of 1 to 16"},
		{"{\"mode\":\"disabled\",\"static\":[\"10.0.0.1:3128\"]}", NULL,
		 "mode disabled uses no proxy"},
		{"{\"mode\":\"static\",\"static\":[\"10.0.0.1:0\"]}", NULL,
		 "management-proxy.static[0]: '10.0.0.1:0'"},
		{"{\"mode\":\"static\",\"static\":[\"proxy.example:3128\"]}", NULL,
		 "management-proxy.static[0]"},
		{"{\"mode\":\"static\",\"static\":[7]}", NULL, "a.b.c.d:port"},
		{"{\"mode\":\"static\",\"static\":[\"10.0.0.1:3128\",\"10.0.0.1:3128\"]}", NULL,
		 "static[1]: repeats management-proxy.static[0]"},
		{"{\"mode\":\"static\",\"static\":[\"10.0.0.1:3128\"],\"user\":\"x\"}", NULL,
		 "management-proxy: unknown field 'user'"},
	};
	struct peering_mgmt_proxy mp;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = with_mgmt_proxy(cases[i].from);

		assert_non_null(j);
		if (peering_config_validate(j, NULL) != -1)
			fail_msg("case %zu (%s) was accepted", i, cases[i].from);
		if (strstr(or_errmsg(), cases[i].message) == NULL)
			fail_msg("case %zu: message '%s' lacks '%s'", i, or_errmsg(),
				 cases[i].message);
		assert_int_equal(peering_config_mgmt_proxy(j, &mp), -1);
		assert_false(mp.present);
		json_decref(j);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_a_good_configuration),
		cmocka_unit_test(refuses_every_kind_of_bad_field),
		cmocka_unit_test(refuses_empty_or_oversized_lists),
		cmocka_unit_test(router_name_must_match),
		cmocka_unit_test(canonical_text_is_stable),
		cmocka_unit_test(loads_from_file),
		cmocka_unit_test(management_proxy_section_is_optional_and_parsed),
		cmocka_unit_test(management_proxy_section_refuses_bad_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
