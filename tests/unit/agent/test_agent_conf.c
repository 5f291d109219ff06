/*
 * Unit tests for agent/agent_conf.c: every key, its default, and a clear
 * FILE:LINE error for each kind of bad value; the bootstrap file; the proxy
 * password read from its file and never shown in an error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent_conf.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void
write_file(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
setup(void **state)
{
	(void)state;
	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_ERROR);
	strcpy(dir, "/tmp/onramp-test-conf-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

/* Parses text after "[agent]\nstate-dir = DIR\n"; returns agent_conf_parse's result. */
static int
parse(const char *text, struct agent_conf *c)
{
	char full[2048];

	snprintf(full, sizeof(full), "[agent]\nstate-dir = %s\n%s", dir, text);
	return agent_conf_parse("agent.conf", full, c);
}

static void
defaults(void **state)
{
	struct agent_conf c;

	(void)state;
	assert_int_equal(agent_conf_parse("agent.conf", "", &c), 0);
	assert_string_equal(c.state_dir, "/var/lib/onramp");
	assert_string_equal(c.control_socket, "/run/onramp/agent.sock");
	assert_string_equal(c.bootstrap_file, "/var/lib/onramp/bootstrap.conf");
	assert_int_equal(c.mode, PROXY_MODE_LEARNED);
	assert_int_equal(c.health_interval, 60);
	assert_int_equal(c.health_timeout, 3);
	assert_string_equal(c.proxy_auth, "any");
	assert_string_equal(c.proxy_user, "");
	assert_int_equal(c.n_iface, 0);
	agent_conf_free(&c);

	assert_int_equal(parse("[interface eth0]\ndhcp = true\n", &c), 0);
	assert_int_equal(c.n_iface, 1);
	assert_int_equal(c.iface[0].dhcp, AGENT_DHCP_CLIENT);
	assert_true(c.iface[0].discovery);
	assert_string_equal(c.iface[0].vendor_class, "JuniperSSR");
	assert_int_equal(c.iface[0].route_metric, 100);
	assert_int_equal(c.iface[0].lease_divisor, 1);
	agent_conf_free(&c);
}

static void
every_key(void **state)
{
	struct agent_conf c;

	(void)state;
	write_file("pw", "s3cret-proxy-pw\n");
	char text[1024];
	snprintf(text, sizeof(text),
		 "control-socket = /tmp/x.sock\nlog-level = debug\n"
		 "[proxy]\nmode = static\nstatic = 10.0.0.2:3128\nstatic = 10.0.0.1:8080\n"
		 "user = router\npassword-file = %s/pw\nauth = basic\n"
		 "health-interval = 5\nhealth-timeout = 2\n"
		 "[interface eth0]\ndhcp = true\nenable-proxy-discovery = false\n"
		 "vendor-class = Acme Router\nroute-metric = 10\ntest-lease-divisor = 20\n"
		 "[interface eth1]\ndhcp = hook\n[interface eth2]\n",
		 dir);
	assert_int_equal(parse(text, &c), 0);
	assert_string_equal(c.control_socket, "/tmp/x.sock");
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(c.mode, PROXY_MODE_STATIC);
	assert_int_equal(c.n_static, 2);
	assert_int_equal(c.statics[1].port, 8080);
	assert_string_equal(c.proxy_user, "router");
	assert_int_equal(c.proxy_password.len, 15);
	assert_memory_equal(c.proxy_password.data, "s3cret-proxy-pw", 15);
	assert_string_equal(c.proxy_auth, "basic");
	assert_int_equal(c.health_interval, 5);
	assert_int_equal(c.health_timeout, 2);
	assert_int_equal(c.n_iface, 3);
	assert_false(c.iface[0].discovery);
	assert_string_equal(c.iface[0].vendor_class, "Acme Router");
	assert_int_equal(c.iface[0].route_metric, 10);
	assert_int_equal(c.iface[0].lease_divisor, 20);
	assert_int_equal(c.iface[1].dhcp, AGENT_DHCP_HOOK);
	assert_int_equal(c.iface[2].dhcp, AGENT_DHCP_OFF);
	assert_int_equal(c.iface[1].route_metric, 101); /* 100 + its index */
	assert_false(c.bootstrap_loaded);
	agent_conf_free(&c);
	assert_null(c.proxy_password.data);
}

static void
bad_values_name_file_and_line(void **state)
{
	static const struct {
		const char *text, *error;
	} cases[] = {
		{"colour = blue\n", "agent.conf:3: unknown setting 'colour' in [agent]"},
		{"[proxies]\n", "agent.conf:3: unknown section [proxies]"},
		{"[proxy]\nmode = auto\n",
		 "agent.conf:4: mode must be disabled, static or learned, not 'auto'"},
		{"[proxy]\nstatic = 10.0.0.1\n",
		 "agent.conf:4: static proxy '10.0.0.1': missing port"},
		{"[proxy]\nstatic = 10.0.0.1:99999\n",
		 "agent.conf:4: static proxy '10.0.0.1:99999': port 99999 is larger than 65535"},
		{"[proxy]\nstatic = proxy.lan:3128\n",
		 "agent.conf:4: static proxy 'proxy.lan:3128': not an IPv4 address"},
		{"[proxy]\nstatic = 10.0.0.1:80\nstatic = 10.0.0.1:80\n",
		 "agent.conf:5: static proxy 10.0.0.1:80 given twice"},
		{"[proxy]\nuser = bob\n", "agent.conf:4: user and password-file go together"},
		{"[proxy]\nauth = ntlm\n",
		 "agent.conf:4: auth must be any, basic or digest, not 'ntlm'"},
		{"[proxy]\nhealth-interval = 0\n",
		 "agent.conf:4: health-interval must be a whole number from 1 to 86400, not '0'"},
		{"[proxy]\nhealth-timeout = 61\n",
		 "agent.conf:4: health-timeout must be a whole number from 1 to 60, not '61'"},
		{"[interface eth0]\ndhcp = maybe\n",
		 "agent.conf:4: [interface eth0] dhcp must be true, false or hook, not 'maybe'"},
		{"[interface eth0]\nenable-proxy-discovery = on\n",
		 "agent.conf:4: enable-proxy-discovery must be true or false, not 'on'"},
		{"[interface eth0]\nvendor-class = \n", "agent.conf:4: vendor-class is empty"},
		{"[interface eth0]\n[interface eth0]\n",
		 "agent.conf:4: [interface eth0] given twice"},
		{"[interface averyveryverylongname]\n",
		 "agent.conf:3: interface name 'averyveryverylongname' is longer than 15 "
		 "characters"},
		{"[interface eth0]\ntest-lease-divisor = 0\n",
		 "agent.conf:4: test-lease-divisor must be a whole number from 1 to 3600, not '0'"},
		{"control-socket = relative.sock\n",
		 "agent.conf:3: control-socket must be an absolute path, not 'relative.sock'"},
		{"[interface eth0]\ndhcp = true\n[interface eth1]\ndhcp = true\nroute-metric = "
		 "100\n",
		 "agent.conf:7: [interface eth0] and [interface eth1] have the same route-metric "
		 "100"},
		{"[proxy]\npassword-file = /x\n",
		 "agent.conf:4: user and password-file go together"},
		{"[interface eth0]\ndhcp = true\nroute-metric = 101\n[interface eth1]\ndhcp = "
		 "true\n",
		 "agent.conf:6: [interface eth0] and [interface eth1] have the same route-metric "
		 "101"},
		{"[interface eth0]\nvendor-class = caf\xc3\xa9\n",
		 "agent.conf:4: [interface eth0] vendor-class must be 1 to 255 printable ASCII "
		 "characters"},
		{"log-level = loud\n",
		 "agent.conf:3: unknown log level 'loud' (expected error, warn, info or debug)"},
	};
	struct agent_conf c;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].text, &c), -1);
		assert_string_equal(or_errmsg(), cases[i].error);
	}
}

static void
static_mode_needs_an_entry(void **state)
{
	struct agent_conf c;
	char want[256];

	(void)state;
	assert_int_equal(parse("[proxy]\nmode = static\n", &c), -1);
	snprintf(want, sizeof(want),
		 "agent.conf: [proxy] mode is static but there is no static entry (nor a "
		 "bootstrap file %s/bootstrap.conf)",
		 dir);
	assert_string_equal(or_errmsg(), want);
	/* a bootstrap file in the state directory is enough */
	write_file("bootstrap.conf", "[proxy]\nstatic = 10.9.9.9:3128\n");
	assert_int_equal(parse("[proxy]\nmode = static\n", &c), 0);
	assert_true(c.bootstrap_loaded);
	assert_int_equal(c.n_bootstrap, 1);
	agent_conf_free(&c);
	/* disabled mode does not read it */
	assert_int_equal(parse("[proxy]\nmode = disabled\n", &c), 0);
	assert_false(c.bootstrap_loaded);
	agent_conf_free(&c);
	write_file("bootstrap.conf", "[proxy]\nstatic = 10.9.9.9\n");
	assert_int_equal(parse("", &c), -1);
	assert_non_null(
		strstr(or_errmsg(), "bootstrap.conf:2: static proxy '10.9.9.9': missing port"));
	write_file("bootstrap.conf", "[agent]\n");
	assert_int_equal(parse("", &c), -1);
	assert_non_null(strstr(or_errmsg(), "unknown section [agent]"));
	write_file("bootstrap.conf", "# nothing\n");
	assert_int_equal(parse("", &c), -1);
	assert_non_null(strstr(or_errmsg(), "no [proxy] static entry"));
	unlink("bootstrap.conf");
	snprintf(want, sizeof(want), "%s/bootstrap.conf", dir);
	unlink(want);
	/* a bootstrap-file that is named must exist */
	assert_int_equal(parse("bootstrap-file = /nonexistent/boot.conf\n", &c), -1);
	assert_non_null(strstr(or_errmsg(), "/nonexistent/boot.conf"));
}

static void
password_file_is_checked_and_never_shown(void **state)
{
	struct agent_conf c;
	char text[512];

	(void)state;
	snprintf(text, sizeof(text), "[proxy]\nuser = u\npassword-file = %s/pw\n", dir);
	write_file("pw", "\n");
	assert_int_equal(parse(text, &c), -1);
	assert_non_null(strstr(or_errmsg(), "is empty"));
	write_file("pw", "two\nlines-secret\n");
	assert_int_equal(parse(text, &c), -1);
	assert_non_null(strstr(or_errmsg(), "must hold one line"));
	assert_null(strstr(or_errmsg(), "lines-secret"));
	snprintf(text, sizeof(text), "[proxy]\nuser = u\npassword-file = %s/missing\n", dir);
	assert_int_equal(parse(text, &c), -1);
	assert_non_null(strstr(or_errmsg(), "password-file"));
	snprintf(text, sizeof(text), "[proxy]\nuser = a:b\npassword-file = %s/pw\n", dir);
	assert_int_equal(parse(text, &c), -1);
	assert_non_null(strstr(or_errmsg(), "have no ':'"));
}

/* [device] and [onboarding]: defaults, every key, and each refusal with its reason. */
static void
onboarding_and_device(void **state)
{
	static const struct {
		const char *text, *error;
	} bad[] = {
		{"[onboarding]\nredirector-url = http://r\nredirector-ca = /ca\n[device]\n"
		 "software-identity = true\n",
		 "agent.conf:4: redirector-url must be https://"},
		{"[onboarding]\nredirector-url = https://r\n[device]\nsoftware-identity = true\n",
		 "agent.conf:4: redirector-url needs redirector-ca"},
		{"[onboarding]\nredirector-url = https://r\nredirector-ca = /ca\n",
		 "agent.conf:4: onboarding needs [device] tcti"},
		{"[onboarding]\nredirector-ca = /ca\n",
		 "agent.conf:4: redirector-ca needs redirector-url"},
		{"[onboarding]\nredirector-url = https://r\nredirector-ca = ca.pem\n[device]\n"
		 "tcti = tabrmd\n",
		 "agent.conf:5: redirector-ca must be an absolute path"},
		{"[device]\ntcti = tabrmd\nsoftware-identity = true\n",
		 "agent.conf:5: tcti and software-identity = true exclude each other"},
		{"[device]\nasset-id = has space\n",
		 "agent.conf:4: asset-id must be 1 to 64 printable ASCII characters"},
		{"[onboarding]\nretry-base = 10\nretry-cap = 5\n",
		 "agent.conf:4: retry-base must not exceed retry-cap"},
		{"[onboarding]\nrevert-window = 0\n", "agent.conf:4:"},
		{"[onboarding]\npoll-wait = 301\n", "agent.conf:4:"},
		{"[onboarding]\nredirector = https://r\n", "agent.conf:4:"},
	};
	struct agent_conf c;

	(void)state;
	assert_int_equal(parse("", &c), 0);
	assert_false(c.onboarding);
	assert_int_equal(c.revert_window, 300);
	assert_int_equal(c.retry_base, 2);
	assert_int_equal(c.retry_cap, 300);
	assert_int_equal(c.connect_timeout, 10);
	assert_int_equal(c.poll_wait, 25);
	assert_string_equal(c.tcti, "");
	assert_string_equal(c.asset_id, "");
	agent_conf_free(&c);

	assert_int_equal(
		parse("[device]\ntcti = swtpm:host=127.0.0.1,port=2321\n"
		      "asset-id = ASSET-1\n[onboarding]\n"
		      "redirector-url = https://127.0.0.1:8443\nredirector-ca = /etc/ca.pem\n"
		      "revert-window = 30\nretry-base = 1\nretry-cap = 9\n"
		      "connect-timeout = 4\npoll-wait = 3\ntest-kill-after = migrate:started\n",
		      &c),
		0);
	assert_true(c.onboarding);
	assert_string_equal(c.tcti, "swtpm:host=127.0.0.1,port=2321");
	assert_false(c.software_identity);
	assert_string_equal(c.asset_id, "ASSET-1");
	assert_string_equal(c.redirector_url, "https://127.0.0.1:8443");
	assert_string_equal(c.redirector_ca, "/etc/ca.pem");
	assert_int_equal(c.revert_window, 30);
	assert_int_equal(c.retry_base, 1);
	assert_int_equal(c.retry_cap, 9);
	assert_int_equal(c.connect_timeout, 4);
	assert_int_equal(c.poll_wait, 3);
	assert_string_equal(c.test_kill_after, "migrate:started");
	agent_conf_free(&c);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i].text, &c) != -1)
			fail_msg("accepted: %s", bad[i].text);
		if (strstr(or_errmsg(), bad[i].error) == NULL)
			fail_msg("'%s': error '%s' lacks '%s'", bad[i].text, or_errmsg(),
				 bad[i].error);
		assert_non_null(strstr(or_errmsg(), "agent.conf"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(every_key),
		cmocka_unit_test(bad_values_name_file_and_line),
		cmocka_unit_test(static_mode_needs_an_entry),
		cmocka_unit_test(password_file_is_checked_and_never_shown),
		cmocka_unit_test(onboarding_and_device),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
