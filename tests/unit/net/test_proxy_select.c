/*
 * Unit tests for lib/proxy_select.c: lowest address then port, failover to
 * the next-lowest reachable, and taking the lowest back when it recovers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/proxy_select.h"

#include <stdio.h>
#include <string.h>

static struct proxy_candidate
cand(const char *text, const char *source, enum proxy_health health)
{
	struct proxy_candidate c;

	memset(&c, 0, sizeof(c));
	assert_int_equal(proxy_addr_parse(text, strlen(text), &c.addr), 0);
	snprintf(c.source, sizeof(c.source), "%s", source);
	c.health = health;
	return c;
}

static const char *
chosen(const struct proxy_candidate *c, size_t n)
{
	static char text[PROXY_ADDR_STRLEN];
	int i = proxy_select(c, n);

	if (i < 0)
		return "none";
	proxy_addr_format(&c[i].addr, text);
	return text;
}

static void
lowest_address_then_port(void **state)
{
	struct proxy_candidate c[] = {
		cand("10.92.53.8:3128", "dhcp:eth0", PROXY_HEALTH_UNKNOWN),
		cand("9.200.1.1:8080", "static", PROXY_HEALTH_UNKNOWN),
		cand("10.92.53.10:80", "dhcp:eth1", PROXY_HEALTH_UNKNOWN),
		cand("9.200.1.1:3128", "dhcp:eth1", PROXY_HEALTH_UNKNOWN),
	};

	(void)state;
	assert_string_equal(chosen(c, 0), "none");
	/* numeric, not textual: 9.x < 10.x and 10.92.53.8 < 10.92.53.10 */
	assert_string_equal(chosen(c, 4), "9.200.1.1:3128");
	assert_string_equal(chosen(c, 1), "10.92.53.8:3128");
	assert_string_equal(chosen(c + 2, 1), "10.92.53.10:80");
	assert_string_equal(chosen(c, 3), "9.200.1.1:8080");
	proxy_candidates_sort(c, 4);
	assert_string_equal(c[0].source, "dhcp:eth1");
	assert_string_equal(c[1].source, "static");
	assert_string_equal(c[2].source, "dhcp:eth0");
	assert_string_equal(c[3].source, "dhcp:eth1");
}

static void
order_does_not_matter(void **state)
{
	struct proxy_candidate a[] = {
		cand("10.0.0.3:80", "static", PROXY_HEALTH_UP),
		cand("10.0.0.1:80", "dhcp:eth0", PROXY_HEALTH_UP),
		cand("10.0.0.2:80", "dhcp:eth1", PROXY_HEALTH_UP),
	};
	struct proxy_candidate b[] = {a[2], a[0], a[1]};

	(void)state;
	assert_string_equal(chosen(a, 3), "10.0.0.1:80");
	assert_string_equal(chosen(b, 3), "10.0.0.1:80");
}

static void
fails_over_and_back(void **state)
{
	struct proxy_candidate c[] = {
		cand("10.0.0.2:3128", "dhcp:eth0", PROXY_HEALTH_UP),
		cand("10.0.0.1:3128", "static", PROXY_HEALTH_UP),
		cand("10.0.0.3:3128", "dhcp:eth1", PROXY_HEALTH_UP),
	};

	(void)state;
	assert_string_equal(chosen(c, 3), "10.0.0.1:3128");
	c[1].health = PROXY_HEALTH_DOWN;
	assert_string_equal(chosen(c, 3), "10.0.0.2:3128");
	c[0].health = PROXY_HEALTH_DOWN;
	assert_string_equal(chosen(c, 3), "10.0.0.3:3128");
	/* all down: the lowest stays chosen */
	c[2].health = PROXY_HEALTH_DOWN;
	assert_string_equal(chosen(c, 3), "10.0.0.1:3128");
	/* the middle one recovers first, then the lowest is taken back */
	c[0].health = PROXY_HEALTH_UP;
	assert_string_equal(chosen(c, 3), "10.0.0.2:3128");
	c[1].health = PROXY_HEALTH_UP;
	assert_string_equal(chosen(c, 3), "10.0.0.1:3128");
	/* not probed yet counts as usable, so a new lowest is tried at once */
	c[1].health = PROXY_HEALTH_UNKNOWN;
	assert_string_equal(chosen(c, 3), "10.0.0.1:3128");
}

static void
same_address_twice_is_one_proxy(void **state)
{
	struct proxy_candidate c[] = {
		cand("10.0.0.5:3128", "static", PROXY_HEALTH_DOWN),
		cand("10.0.0.5:3128", "dhcp:eth0", PROXY_HEALTH_DOWN),
		cand("10.0.0.6:3128", "dhcp:eth0", PROXY_HEALTH_UP),
	};

	(void)state;
	assert_string_equal(chosen(c, 3), "10.0.0.6:3128");
	assert_int_equal(proxy_select(c, 2), 1); /* all down: lowest, "dhcp:eth0" < "static" */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lowest_address_then_port),
		cmocka_unit_test(order_does_not_matter),
		cmocka_unit_test(fails_over_and_back),
		cmocka_unit_test(same_address_twice_is_one_proxy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
