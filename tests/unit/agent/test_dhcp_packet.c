/*
 * Unit tests for agent/dhcp_packet.c: requests carry options 60 and 55 with
 * 43; replies are parsed strictly (wrong sizes ignored, broken framing
 * refused, option 43 parts concatenated, overloaded fields read); IPv4/UDP
 * frames round-trip; every truncation of a valid reply or frame is handled
 * within its exact-size buffer (the ASan build checks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "dhcp_packet.h"

#include <stdlib.h>
#include <string.h>

/* clang-format off */
static const uint8_t mac[6] = {0x02, 0x00, 0x5e, 0x10, 0x20, 0x30};
/* clang-format on */

/* Finds option code in a request we built; returns its value or NULL. */
static const uint8_t *
find_option(const uint8_t *pkt, size_t len, uint8_t code, uint8_t *optlen)
{
	for (size_t pos = 240; pos + 1 < len && pkt[pos] != 255;) {
		if (pkt[pos] == 0) {
			pos++;
			continue;
		}
		if (pkt[pos] == code) {
			*optlen = pkt[pos + 1];
			return pkt + pos + 2;
		}
		pos += 2 + (size_t)pkt[pos + 1];
	}
	return NULL;
}

static void
builds_discover_and_request(void **state)
{
	struct dhcp_request req = {.type = DHCPDISCOVER,
				   .xid = 0x11223344,
				   .secs = 3,
				   .vendor_class = "JuniperSSR",
				   .want_vendor_opts = true};
	uint8_t pkt[DHCP_MSG_MAX], len8;
	const uint8_t *v;
	size_t len;

	(void)state;
	memcpy(req.mac, mac, 6);
	len = dhcp_request_build(&req, pkt, sizeof(pkt));
	assert_true(len >= 300);
	assert_int_equal(pkt[0], 1);
	assert_memory_equal(pkt + 4, "\x11\x22\x33\x44", 4);
	assert_int_equal(pkt[9], 3);
	assert_memory_equal(pkt + 28, mac, 6);
	assert_memory_equal(pkt + 236, "\x63\x82\x53\x63", 4);
	v = find_option(pkt, len, 53, &len8);
	assert_non_null(v);
	assert_int_equal(v[0], DHCPDISCOVER);
	v = find_option(pkt, len, 60, &len8);
	assert_non_null(v);
	assert_int_equal(len8, 10);
	assert_memory_equal(v, "JuniperSSR", 10);
	v = find_option(pkt, len, 55, &len8);
	assert_non_null(v);
	assert_non_null(memchr(v, 43, len8));
	assert_null(find_option(pkt, len, 50, &len8));

	req.type = DHCPREQUEST;
	req.requested_ip = 0x0a4d0176;
	req.server_id = 0x0a4d0101;
	req.want_vendor_opts = false;
	req.vendor_class = "Other";
	len = dhcp_request_build(&req, pkt, sizeof(pkt));
	v = find_option(pkt, len, 50, &len8);
	assert_non_null(v);
	assert_memory_equal(v, "\x0a\x4d\x01\x76", 4);
	v = find_option(pkt, len, 54, &len8);
	assert_memory_equal(v, "\x0a\x4d\x01\x01", 4);
	v = find_option(pkt, len, 55, &len8);
	assert_null(memchr(v, 43, len8));
	v = find_option(pkt, len, 60, &len8);
	assert_memory_equal(v, "Other", 5);

	req.type = DHCPREQUEST;
	req.ciaddr = 0x0a4d0176;
	req.requested_ip = req.server_id = 0;
	len = dhcp_request_build(&req, pkt, sizeof(pkt));
	assert_memory_equal(pkt + 12, "\x0a\x4d\x01\x76", 4);
	assert_null(find_option(pkt, len, 50, &len8));
	assert_int_equal(dhcp_request_build(&req, pkt, 200), 0);
}

/* A reply with options opts (len bytes) placed after the cookie, and an end byte. */
static size_t
reply(uint8_t *buf, const uint8_t *opts, size_t len)
{
	memset(buf, 0, 240);
	buf[0] = 2;
	buf[1] = 1;
	buf[2] = 6;
	memcpy(buf + 4, "\xde\xad\xbe\xef", 4);
	memcpy(buf + 16, "\x0a\x4d\x01\x76", 4);
	memcpy(buf + 28, mac, 6);
	memcpy(buf + 236, "\x63\x82\x53\x63", 4);
	memcpy(buf + 240, opts, len);
	buf[240 + len] = 255;
	return 241 + len;
}

/* clang-format off */
static const uint8_t ack_opts[] = {
	53, 1, 5, 54, 4, 10, 77, 1, 1, 51, 4, 0, 0, 0, 120, 58, 4, 0, 0, 0, 60, 59, 4, 0, 0,
	0, 105, 1, 4, 255, 255, 255, 0, 3, 8, 10, 77, 1, 1, 10, 77, 1, 2, 28, 4, 10, 77, 1, 255,
	43, 5, 0x80, 3, '1', '.', '2', 43, 3, '.', 'x', 0xff};
/* clang-format on */

static void
parses_a_reply(void **state)
{
	uint8_t buf[600];
	struct dhcp_msg m;
	size_t len = reply(buf, ack_opts, sizeof(ack_opts));

	(void)state;
	assert_int_equal(dhcp_msg_parse(buf, len, &m), 0);
	assert_int_equal(m.type, DHCPACK);
	assert_int_equal(m.xid, 0xdeadbeef);
	assert_int_equal(m.yiaddr, 0x0a4d0176);
	assert_memory_equal(m.chaddr, mac, 6);
	assert_true(m.has_server_id);
	assert_int_equal(m.server_id, 0x0a4d0101);
	assert_int_equal(m.lease_s, 120);
	assert_int_equal(m.t1_s, 60);
	assert_int_equal(m.t2_s, 105);
	assert_int_equal(m.mask, 0xffffff00);
	assert_int_equal(m.router, 0x0a4d0101); /* the first of two */
	assert_int_equal(m.broadcast, 0x0a4d01ff);
	/* RFC 3396: two option 43s are one value */
	assert_true(m.has_vendor);
	assert_int_equal(m.vendor_len, 8);
	assert_memory_equal(m.vendor,
			    "\x80\x03"
			    "1.2.x\xff",
			    8);
}

static void
wrong_sizes_are_ignored(void **state)
{
	/* clang-format off */
	static const uint8_t opts[] = {53, 1, 2, 54, 3, 1, 2, 3, 51, 5, 0, 0, 0, 1, 0,
				       1, 4, 255, 255, 255, 0, 3, 6, 1, 2, 3, 4, 5, 6};
	/* clang-format on */
	uint8_t buf[600];
	struct dhcp_msg m;

	(void)state;
	assert_int_equal(dhcp_msg_parse(buf, reply(buf, opts, sizeof(opts)), &m), 0);
	assert_int_equal(m.type, DHCPOFFER);
	assert_false(m.has_server_id);
	assert_false(m.has_lease);
	assert_false(m.has_router);
	assert_true(m.has_mask);
	assert_false(m.has_vendor);
}

static void
bad_replies_are_refused(void **state)
{
	/* clang-format off */
	static const uint8_t no_type[] = {54, 4, 10, 77, 1, 1};
	/* clang-format on */
	static const uint8_t bad_type[] = {53, 1, 9};
	/* clang-format off */
	static const uint8_t runs_past[] = {53, 1, 5, 43, 200, 1, 2};
	/* clang-format on */
	uint8_t buf[600];
	struct dhcp_msg m;
	size_t len;

	(void)state;
	assert_int_equal(dhcp_msg_parse(buf, reply(buf, no_type, sizeof(no_type)), &m), -1);
	assert_string_equal(or_errmsg(), "no valid DHCP message type");
	assert_int_equal(dhcp_msg_parse(buf, reply(buf, bad_type, sizeof(bad_type)), &m), -1);
	len = reply(buf, runs_past, sizeof(runs_past));
	assert_int_equal(dhcp_msg_parse(buf, len - 1, &m), -1);
	assert_string_equal(or_errmsg(), "option 43 runs past the end of the message");
	len = reply(buf, ack_opts, sizeof(ack_opts));
	buf[0] = 1;
	assert_int_equal(dhcp_msg_parse(buf, len, &m), -1);
	assert_string_equal(or_errmsg(), "not a BOOTREPLY for Ethernet");
	buf[0] = 2;
	buf[237] = 0;
	assert_int_equal(dhcp_msg_parse(buf, len, &m), -1);
	assert_string_equal(or_errmsg(), "no DHCP magic cookie");
	assert_int_equal(dhcp_msg_parse(buf, 239, &m), -1);
}

static void
reads_overloaded_fields(void **state)
{
	/* clang-format off */
	static const uint8_t opts[] = {53, 1, 5, 52, 1, 3};
	/* clang-format on */
	static const uint8_t file[] = {54, 4, 10, 77, 1, 1, 43, 2, 0x80, 0, 255};
	/* clang-format off */
	static const uint8_t sname[] = {51, 4, 0, 0, 1, 0, 43, 1, 0xff, 255};
	/* clang-format on */
	uint8_t buf[600];
	struct dhcp_msg m;
	size_t len = reply(buf, opts, sizeof(opts));

	(void)state;
	memcpy(buf + 108, file, sizeof(file));
	memcpy(buf + 44, sname, sizeof(sname));
	assert_int_equal(dhcp_msg_parse(buf, len, &m), 0);
	assert_int_equal(m.server_id, 0x0a4d0101);
	assert_int_equal(m.lease_s, 256);
	/* options field, then file, then sname */
	assert_int_equal(m.vendor_len, 3);
	assert_memory_equal(m.vendor, "\x80\x00\xff", 3);
	buf[44 + 7] = 100; /* option 43 in sname now runs past the field */
	assert_int_equal(dhcp_msg_parse(buf, len, &m), -1);
	assert_string_equal(or_errmsg(),
			    "in the sname field: option 43 runs past the end of the message");
}

static void
every_truncated_reply_is_safe(void **state)
{
	uint8_t full[600];
	struct dhcp_msg m;
	size_t len = reply(full, ack_opts, sizeof(ack_opts));

	(void)state;
	for (size_t cut = 0; cut <= len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);
		int rc;

		memcpy(copy, full, cut);
		rc = dhcp_msg_parse(copy, cut, &m);
		free(copy);
		/* complete options up to the type make a message; a cut option never does */
		if (cut < 243)
			assert_int_equal(rc, -1);
		if (cut == len || cut == len - 1)
			assert_int_equal(rc, 0);
	}
}

static void
frames_round_trip(void **state)
{
	uint8_t payload[300], frame[400], *copy;
	const uint8_t *p;
	size_t plen, flen;
	uint32_t src;

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	flen = dhcp_frame_build(0x0a4d0176, 0xffffffff, payload, sizeof(payload), frame,
				sizeof(frame));
	assert_int_equal(flen, 328);
	/* as the server would send it: to port 68 */
	frame[20] = 0;
	frame[21] = 67;
	frame[22] = 0;
	frame[23] = 68;
	/* the UDP checksum is now wrong (ports swapped is the same sum: still right) */
	assert_int_equal(dhcp_frame_parse(frame, flen, true, &p, &plen, &src), 0);
	assert_int_equal(plen, sizeof(payload));
	assert_memory_equal(p, payload, plen);
	assert_int_equal(src, 0x0a4d0176);

	frame[100] ^= 1;
	assert_int_equal(dhcp_frame_parse(frame, flen, true, &p, &plen, &src), -1);
	assert_string_equal(or_errmsg(), "bad UDP checksum");
	/* offload on veth: the kernel says the sum is not computed, so it is not checked */
	assert_int_equal(dhcp_frame_parse(frame, flen, false, &p, &plen, &src), 0);
	frame[100] ^= 1;
	frame[8] = 1; /* TTL changes the header checksum */
	assert_int_equal(dhcp_frame_parse(frame, flen, true, &p, &plen, &src), -1);
	assert_string_equal(or_errmsg(), "bad IPv4 header checksum");
	frame[8] = 64;
	frame[23] = 67;
	assert_int_equal(dhcp_frame_parse(frame, flen, false, &p, &plen, &src), -1);
	assert_string_equal(or_errmsg(), "not for the DHCP client port");
	frame[23] = 68;
	for (size_t cut = 0; cut < flen; cut++) {
		copy = malloc(cut ? cut : 1);
		memcpy(copy, frame, cut);
		assert_int_equal(dhcp_frame_parse(copy, cut, true, &p, &plen, &src), -1);
		free(copy);
	}
	assert_int_equal(dhcp_frame_build(0, 0, payload, sizeof(payload), frame, 100), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(builds_discover_and_request),
		cmocka_unit_test(parses_a_reply),
		cmocka_unit_test(wrong_sizes_are_ignored),
		cmocka_unit_test(bad_replies_are_refused),
		cmocka_unit_test(reads_overloaded_fields),
		cmocka_unit_test(every_truncated_reply_is_safe),
		cmocka_unit_test(frames_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
