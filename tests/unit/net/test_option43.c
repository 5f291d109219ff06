/*
 * Unit tests for lib/proxy_addr.c and lib/option43.c: valid and malformed
 * option 43, and every truncation of valid input copied to a buffer of exactly
 * that size, so that the ASan build catches any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "net/option43.h"
#include "net/proxy_addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct drops {
	int count;
	char last[512];
};

static void
on_drop(void *arg, const char *entry, const char *reason)
{
	struct drops *d = arg;

	d->count++;
	snprintf(d->last, sizeof(d->last), "%s: %s", entry, reason);
}

/* Parses a copy of data in a buffer of exactly len bytes. */
static void
parse(const uint8_t *data, size_t len, struct option43_proxies *out, struct drops *d)
{
	uint8_t *copy = malloc(len ? len : 1);

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, data, len);
	memset(d, 0, sizeof(*d));
	option43_parse(copy, len, out, on_drop, d);
	free(copy);
}

static void
assert_proxy(const struct proxy_addr *a, const char *want)
{
	char text[PROXY_ADDR_STRLEN];

	proxy_addr_format(a, text);
	assert_string_equal(text, want);
}

static void
addr_parses_strictly(void **state)
{
	static const struct {
		const char *text, *reason;
	} bad[] = {
		{"", "empty"},
		{"10.0.0.1", "missing port"},
		{"10.0.0.1:", "missing port"},
		{"10.0.0.1:0", "port 0"},
		{"10.0.0.1:65536", "port 65536 is larger than 65535"},
		{"10.0.0.1:1234567", "port 1234567 is larger than 65535"},
		{"10.0.0.1:03128", "port is not a decimal number"},
		{"10.0.0.1:3128x", "port is not a decimal number"},
		{"10.0.0.1:-1", "port is not a decimal number"},
		{"10.0.0.1:3128 ", "port is not a decimal number"},
		{"proxy.example.com:3128", "not an IPv4 address"},
		{"[fe80::1]:3128", "not an IPv4 address"},
		{"::1:3128", "not an IPv4 address"},
		{"10.0.0:3128", "not an IPv4 address"},
		{"10.0.0.1.5:3128", "not an IPv4 address"},
		{"10.0.0.256:3128", "not an IPv4 address"},
		{"010.0.0.1:3128", "not an IPv4 address"},
		{"10.0.0.1000:3128", "not an IPv4 address"},
		{" 10.0.0.1:3128", "not an IPv4 address"},
		{"0.0.0.0:3128", "address in 0.0.0.0/8"},
		{"224.0.0.1:3128", "multicast, reserved or broadcast address"},
		{"255.255.255.255:3128", "multicast, reserved or broadcast address"},
	};
	struct proxy_addr a;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(proxy_addr_parse(bad[i].text, strlen(bad[i].text), &a), -1);
		assert_string_equal(or_errmsg(), bad[i].reason);
	}
	assert_int_equal(proxy_addr_parse("10.92.53.8:3128", 15, &a), 0);
	assert_proxy(&a, "10.92.53.8:3128");
	assert_int_equal(proxy_addr_parse("0.0.0.0:1", 9, &a), -1);
	assert_int_equal(proxy_addr_parse("1.0.0.0:65535", 13, &a), 0);
	assert_int_equal(a.ip, 0x01000000);
	assert_int_equal(a.port, 65535);
	/* len is obeyed: the text need not end where len ends */
	assert_int_equal(proxy_addr_parse("10.0.0.1:80ZZZ", 11, &a), 0);
	assert_proxy(&a, "10.0.0.1:80");
	assert_int_equal(proxy_addr_parse("10.0.0.1:8\0", 11, &a), -1);
}

static void
addr_compares_numerically(void **state)
{
	struct proxy_addr a, b;

	(void)state;
	assert_int_equal(proxy_addr_parse("9.255.255.255:1", 15, &a), 0);
	assert_int_equal(proxy_addr_parse("10.0.0.0:1", 10, &b), 0);
	assert_true(proxy_addr_cmp(&a, &b) < 0);
	assert_int_equal(proxy_addr_parse("10.0.0.0:80", 11, &a), 0);
	assert_true(proxy_addr_cmp(&a, &b) > 0);
	assert_int_equal(proxy_addr_cmp(&a, &a), 0);
}

/* 80 0f "10.92.53.8:3128" ff, as dnsmasq sends it. */
/* clang-format off */
static const uint8_t one[] = {0x80, 0x0f, '1', '0', '.', '9', '2', '.', '5', '3',
			      '.', '8', ':', '3', '1', '2', '8', 0xff};
/* clang-format on */

static void
parses_valid(void **state)
{
	/* clang-format off */
	static const uint8_t several[] = {
		0x00, 0x00, 0x01, 0x03, 'a', 'b', 'c', 0x80, 0x0b, '1', '0', '.', '0', '.',
		'0', '.', '9', ':', '8', '0', 0x00, 0x81, 0x00, 0x80, 0x0d, '1', '0', '.',
		'0', '.', '0', '.', '2', ':', '3', '1', '2', '8', 0xff, 0x00, 0x00};
	/* clang-format on */
	struct option43_proxies out;
	struct drops d;

	(void)state;
	parse(one, sizeof(one), &out, &d);
	assert_int_equal(out.count, 1);
	assert_int_equal(d.count, 0);
	assert_proxy(&out.proxy[0], "10.92.53.8:3128");

	/* no end byte is fine too */
	parse(one, sizeof(one) - 1, &out, &d);
	assert_int_equal(out.count, 1);
	assert_int_equal(d.count, 0);

	parse(several, sizeof(several), &out, &d);
	assert_int_equal(d.count, 0);
	assert_int_equal(out.count, 2);
	assert_proxy(&out.proxy[0], "10.0.0.9:80");
	assert_proxy(&out.proxy[1], "10.0.0.2:3128");

	parse(NULL, 0, &out, &d);
	assert_int_equal(out.count, 0);
	assert_int_equal(d.count, 0);
}

static void
drops_bad_candidates_keeps_good(void **state)
{
	/* clang-format off */
	static const uint8_t mixed[] = {
		0x80, 0x0a, '1', '0', '.', '0', '.', '0', '.', '1', ':', '0',      /* port 0 */
		0x80, 0x08, '1', '0', '.', '0', '.', '0', '.', '1',                /* no port */
		0x80, 0x0b, 'p', 'r', 'o', 'x', 'y', '.', 'l', 'a', 'n', ':', '1', /* name */
		0x80, 0x0b, '1', '.', '2', '.', '3', '.', '4', ':', '8', '0', 0x07, /* binary */
		0x80, 0x0d, '1', '0', '.', '0', '.', '0', '.', '7', ':', '8', '0', '8', '0',
		0x80, 0x00,                                                         /* empty */
		0x80, 0x0e, '1', '2', '7', '.', '0', '.', '0', '.', '1', ':', '3', '1', '2', '8',
		0x80, 0x0d, '1', '0', '.', '0', '.', '0', '.', '7', ':', '8', '0', '8', '0',
		0x80, 0x0e, '1', '0', '.', '0', '.', '0', '.', '1', ':', '6', '5', '5', '3', '6',
		0xff};
	/* clang-format on */
	struct option43_proxies out;
	struct drops d;

	(void)state;
	parse(mixed, sizeof(mixed), &out, &d);
	assert_int_equal(out.count, 1);
	assert_proxy(&out.proxy[0], "10.0.0.7:8080");
	assert_int_equal(d.count, 8);
	assert_string_equal(d.last,
			    "sub-option 128 \"10.0.0.1:65536\": port 65536 is larger than 65535");
}

static void
reasons_name_the_problem(void **state)
{
	static const struct {
		const uint8_t bytes[24];
		size_t len;
		const char *reason;
	} cases[] = {
		{{0x80}, 1, "sub-option 128: truncated: no length byte"},
		{{0x80, 0x10, '1', '.', '2'},
		 5,
		 "sub-option 128: truncated: length 16 but only 3 bytes remain"},
		{{0x80, 0x03, '1', 0x00, 0x0a},
		 5,
		 "sub-option 128 \"1\\x00\\x0a\": not an IPv4 address"},
		{{0x80, 0x09, '1', '.', '2', '.', '3', '.', '4', ':', '0'},
		 11,
		 "sub-option 128 \"1.2.3.4:0\": port 0"},
		{{0xff, 0x01, 0x02}, 3, "after the end byte: 2 bytes of trailing junk"},
		{{0x05, 0x01, 0xaa, 0x80}, 4, "sub-option 128: truncated: no length byte"},
	};
	struct option43_proxies out;
	struct drops d;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parse(cases[i].bytes, cases[i].len, &out, &d);
		assert_int_equal(out.count, 0);
		assert_int_equal(d.count, 1);
		assert_string_equal(d.last, cases[i].reason);
	}
	/* pads after the end byte are not junk */
	parse((const uint8_t[]){0xff, 0x00, 0x00}, 3, &out, &d);
	assert_int_equal(d.count, 0);
	/* a raw string instead of TLVs is refused, not misread */
	parse((const uint8_t *)"10.0.0.1:3128", 13, &out, &d);
	assert_int_equal(out.count, 0);
	assert_int_equal(d.count, 1);
}

static void
caps_the_number_of_proxies(void **state)
{
	uint8_t buf[20 * 14 + 1];
	struct option43_proxies out;
	struct drops d;
	size_t len = 0;

	(void)state;
	for (int i = 0; i < 20; i++) {
		buf[len++] = 0x80;
		buf[len++] = 12;
		snprintf((char *)buf + len, 13, "10.0.0.%02d:80", 10 + i);
		len += 12;
	}
	parse(buf, len, &out, &d);
	assert_int_equal(out.count, OPTION43_MAX_PROXIES);
	assert_int_equal(d.count, 20 - OPTION43_MAX_PROXIES);
	assert_non_null(strstr(d.last, "more than 16 proxies"));
}

static void
every_truncation_is_safe(void **state)
{
	/* clang-format off */
	static const uint8_t two[] = {0x00, 0x80, 0x0d, '1', '0', '.', '1', '.', '1', '.', '9', ':',
				      '3', '1', '2', '8', 0x01, 0x02, 0xab, 0xcd, 0x80, 0x0b,
				      '1', '0', '.', '1', '.', '1', '.', '8', ':', '8', '0', 0xff};
	/* clang-format on */
	struct option43_proxies out;
	struct drops d;

	(void)state;
	for (size_t len = 0; len <= sizeof(two); len++) {
		parse(two, len, &out, &d);
		/* a proxy is kept exactly when its whole TLV is inside the buffer */
		assert_int_equal(out.count, (len >= 16) + (len >= 33));
		if (len == 16 || len == 20 || len == 33 || len == 34 || len <= 1)
			assert_int_equal(d.count, 0);
		else
			assert_int_equal(d.count, 1);
	}
	for (size_t len = 0; len <= sizeof(one); len++) {
		parse(one, len, &out, &d);
		assert_int_equal(out.count, len >= 17 ? 1 : 0);
		assert_int_equal(d.count, len == 0 || len >= 17 ? 0 : 1);
	}
	/* every truncation also as a length byte that runs past the end */
	for (size_t len = 2; len <= sizeof(one); len++) {
		uint8_t copy[sizeof(one)];

		memcpy(copy, one, len);
		copy[1] = 0xff;
		parse(copy, len, &out, &d);
		assert_int_equal(out.count, 0);
		assert_int_equal(d.count, 1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(addr_parses_strictly),
		cmocka_unit_test(addr_compares_numerically),
		cmocka_unit_test(parses_valid),
		cmocka_unit_test(drops_bad_candidates_keeps_good),
		cmocka_unit_test(reasons_name_the_problem),
		cmocka_unit_test(caps_the_number_of_proxies),
		cmocka_unit_test(every_truncation_is_safe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
