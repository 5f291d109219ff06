/*
 * Unit tests for lib/config.c and lib/json.c: values, and errors that name
 * the file and line or the field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/error.h"
#include "core/json.h"

#include <string.h>

static int
collect(void *arg, const char *value, const char *where)
{
	char *acc = arg;

	(void)where;
	strcat(acc, value);
	strcat(acc, ";");
	return 0;
}

static void
reads_values(void **state)
{
	struct config cfg;
	const char *s;
	unsigned long n;
	bool b;
	char all[128] = "";

	(void)state;
	assert_int_equal(config_parse("agent.conf",
				      "# comment\nlog-level = debug\n\n[proxy]\nmode = static\n"
				      "static = 10.0.0.1:3128\nstatic = 10.0.0.2:8080\n"
				      "health-interval = 30\n[interface eth0]\n"
				      "enable-proxy-discovery = false\n",
				      &cfg),
			 0);
	assert_int_equal(config_get_string(&cfg, "", "log-level", "info", &s), 0);
	assert_string_equal(s, "debug");
	assert_int_equal(config_get_string(&cfg, "proxy", "mode", "learned", &s), 0);
	assert_string_equal(s, "static");
	assert_int_equal(config_each(&cfg, "proxy", "static", collect, all), 0);
	assert_string_equal(all, "10.0.0.1:3128;10.0.0.2:8080;");
	assert_int_equal(config_get_uint(&cfg, "proxy", "health-interval", 60, 1, 3600, &n), 0);
	assert_int_equal(n, 30);
	assert_int_equal(
		config_get_bool(&cfg, "interface eth0", "enable-proxy-discovery", true, &b), 0);
	assert_false(b);
	assert_int_equal(config_get_uint(&cfg, "proxy", "absent", 60, 1, 3600, &n), 0);
	assert_int_equal(n, 60);
	assert_int_equal(cfg.section_count, 2);
	assert_string_equal(cfg.sections[1], "interface eth0");
	assert_int_equal(config_check_unused(&cfg), 0);
	config_free(&cfg);
}

static void
errors_name_file_and_line(void **state)
{
	struct config cfg;
	unsigned long n;
	bool b;

	(void)state;
	assert_int_equal(config_parse("a.conf", "x = 1\nno equals sign\n", &cfg), -1);
	assert_non_null(strstr(or_errmsg(), "a.conf:2: expected 'key = value'"));
	assert_int_equal(config_parse("a.conf", "[bad section\n", &cfg), -1);
	assert_non_null(strstr(or_errmsg(), "a.conf:1:"));
	assert_int_equal(config_parse("a.conf", "[a b c]\n", &cfg), -1);
	assert_non_null(strstr(or_errmsg(), "a.conf:1: bad section name"));
	assert_int_equal(config_parse("a.conf", "bad key! = 1\n", &cfg), -1);
	assert_non_null(strstr(or_errmsg(), "a.conf:1: bad key name"));

	assert_int_equal(config_parse("b.conf", "\n\nport = 70000\nflag = maybe\ntypo = 1\n", &cfg),
			 0);
	assert_int_equal(config_get_uint(&cfg, "", "port", 1, 1, 65535, &n), -1);
	assert_string_equal(or_errmsg(),
			    "b.conf:3: port must be a whole number from 1 to 65535, not '70000'");
	assert_int_equal(config_get_bool(&cfg, "", "flag", true, &b), -1);
	assert_non_null(strstr(or_errmsg(), "b.conf:4: flag must be true or false"));
	assert_int_equal(config_check_unused(&cfg), -1);
	assert_string_equal(or_errmsg(), "b.conf:5: unknown setting 'typo'");
	config_free(&cfg);

	/* a caller's own check of a value names its line (the last of a repeated key) */
	assert_int_equal(config_parse("c.conf", "a = 1\n[s]\nk = x\n\nk = y\n", &cfg), 0);
	assert_int_equal(config_line(&cfg, "s", "k"), 5);
	assert_int_equal(config_line(&cfg, "", "a"), 1);
	assert_int_equal(config_line(&cfg, "s", "missing"), 0);
	assert_int_equal(config_line(&cfg, "t", "k"), 0);
	/* ... and config_error_at puts that line (else the section's) before the message */
	or_error("k is wrong");
	assert_int_equal(config_error_at(&cfg, "s", "k"), -1);
	assert_string_equal(or_errmsg(), "c.conf:5: k is wrong");
	or_error("m is required");
	assert_int_equal(config_error_at(&cfg, "s", "m"), -1);
	assert_string_equal(or_errmsg(), "c.conf:2: m is required");
	or_error("[t] is required");
	assert_int_equal(config_error_at(&cfg, "t", "k"), -1);
	assert_string_equal(or_errmsg(), "c.conf: [t] is required");
	config_free(&cfg);

	assert_int_equal(config_load("/nonexistent/onramp.conf", &cfg), -1);
	assert_non_null(strstr(or_errmsg(), "/nonexistent/onramp.conf: cannot open"));
}

static void
json_fields_are_checked(void **state)
{
	static const char doc[] = "{\"serial\":\"S1\",\"port\":443,\"on\":true,\"n\":\"x\"}";
	json_t *root;
	const char *s = NULL;
	json_int_t i = 0;
	bool b = false;

	(void)state;
	assert_int_equal(json_parse_object(doc, strlen(doc), 1024, &root), 0);
	assert_int_equal(json_get_string(root, "serial", true, 64, &s), 0);
	assert_string_equal(s, "S1");
	assert_int_equal(json_get_int(root, "port", true, 1, 65535, &i), 0);
	assert_int_equal(i, 443);
	assert_int_equal(json_get_bool(root, "on", true, &b), 0);
	assert_true(b);
	assert_int_equal(json_get_string(root, "missing", false, 64, &s), 0);
	assert_int_equal(json_get_string(root, "missing", true, 64, &s), -1);
	assert_string_equal(or_errmsg(), "field 'missing' is required");
	assert_int_equal(json_get_int(root, "n", true, 0, 1, &i), -1);
	assert_string_equal(or_errmsg(), "field 'n' must be an integer");
	assert_int_equal(json_get_string(root, "serial", true, 1, &s), -1);
	assert_non_null(strstr(or_errmsg(), "longer than 1"));
	assert_int_equal(json_get_int(root, "port", true, 1, 100, &i), -1);
	json_decref(root);

	assert_int_equal(json_parse_object("[1]", 3, 1024, &root), -1);
	assert_string_equal(or_errmsg(), "JSON document must be an object");
	assert_int_equal(json_parse_object("{\"a\":", 5, 1024, &root), -1);
	assert_non_null(strstr(or_errmsg(), "malformed JSON at line 1"));
	assert_int_equal(json_parse_object(doc, strlen(doc), 10, &root), -1);
	assert_non_null(strstr(or_errmsg(), "larger than the 10 allowed"));
	assert_int_equal(json_parse_object("{\"a\":1,\"a\":2}", 13, 1024, &root), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_values),
		cmocka_unit_test(errors_name_file_and_line),
		cmocka_unit_test(json_fields_are_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
