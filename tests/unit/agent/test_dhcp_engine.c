/*
 * Unit tests for agent/dhcp_engine.c, the pure DHCPv4 client: the whole
 * DISCOVER/OFFER/REQUEST/ACK exchange, renewal at T1 (unicast), rebinding at
 * T2 (broadcast), the end of a lease, NAKs, retransmissions, replies that
 * must be ignored, and the test-lease-divisor aid. Time is simulated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dhcp_engine.h"

#include <string.h>

#define SERVER 0x0a4d0101u
#define ADDR 0x0a4d0176u

static const uint8_t mac[6] = {0x02, 0x00, 0x5e, 0x10, 0x20, 0x30};

static void
init(struct dhcp_engine *e, unsigned divisor)
{
	struct dhcp_engine_conf c;

	memset(&c, 0, sizeof(c));
	memcpy(c.mac, mac, 6);
	strcpy(c.vendor_class, "JuniperSSR");
	c.want_vendor_opts = true;
	c.lease_divisor = divisor;
	dhcp_engine_init(e, &c);
}

static struct dhcp_msg
msg(uint8_t type, uint32_t xid, uint32_t yiaddr)
{
	struct dhcp_msg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.xid = xid;
	m.yiaddr = yiaddr;
	memcpy(m.chaddr, mac, 6);
	m.server_id = SERVER;
	m.has_server_id = true;
	m.lease_s = 120;
	m.has_lease = true;
	m.mask = 0xffffff00;
	m.has_mask = true;
	m.router = SERVER;
	m.has_router = true;
	memcpy(m.vendor,
	       "\x80\x0e"
	       "10.77.1.5:3128",
	       16);
	m.vendor_len = 16;
	m.has_vendor = true;
	return m;
}

/* The message type of the packet the engine asked to send. */
static int
sent_type(const struct dhcp_output *out)
{
	return out->packet_len > 242 ? out->packet[242] : -1;
}

static uint32_t
sent_ciaddr(const struct dhcp_output *out)
{
	const uint8_t *p = out->packet + 12;

	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Runs start, OFFER and ACK at t = 0 ms; the engine is BOUND after. */
static void
bind(struct dhcp_engine *e, struct dhcp_output *out)
{
	struct dhcp_msg m;

	dhcp_engine_start(e, 0, 7, out);
	assert_int_equal(sent_type(out), DHCPDISCOVER);
	assert_false(out->unicast);
	assert_int_equal(e->state, DHCP_STATE_SELECTING);
	m = msg(DHCPOFFER, 7, ADDR);
	dhcp_engine_receive(e, 0, &m, 8, out);
	assert_int_equal(sent_type(out), DHCPREQUEST);
	assert_int_equal(e->state, DHCP_STATE_REQUESTING);
	m = msg(DHCPACK, 7, ADDR);
	dhcp_engine_receive(e, 0, &m, 9, out);
	assert_int_equal(e->state, DHCP_STATE_BOUND);
}

static void
binds_and_configures(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;

	(void)state;
	init(&e, 1);
	bind(&e, &out);
	assert_true(out.configure);
	assert_false(out.deconfigure);
	assert_true(out.lease_changed);
	assert_int_equal(out.packet_len, 0);
	assert_int_equal(e.lease.addr, ADDR);
	assert_int_equal(e.lease.router, SERVER);
	assert_int_equal(e.lease.broadcast, 0x0a4d01ff);
	assert_int_equal(e.lease.t1_s, 60);
	assert_int_equal(e.lease.t2_s, 105);
	assert_true(e.lease.has_vendor);
	assert_int_equal(e.lease.vendor_len, 16);
	assert_int_equal(out.timer_at_ms, 60000);
	assert_non_null(strstr(out.note, "bound to 10.77.1.118/24 from 10.77.1.1"));
	assert_string_equal(dhcp_state_name(e.state), "bound");
}

static void
renews_then_rebinds_then_loses(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;
	struct dhcp_msg m;

	(void)state;
	init(&e, 1);
	bind(&e, &out);
	/* T1: unicast REQUEST from the leased address to the server */
	dhcp_engine_timer(&e, 60000, 100, &out);
	assert_int_equal(e.state, DHCP_STATE_RENEWING);
	assert_int_equal(sent_type(&out), DHCPREQUEST);
	assert_true(out.unicast);
	assert_int_equal(out.dst_ip, SERVER);
	assert_int_equal(sent_ciaddr(&out), ADDR);
	/* the server renews: the learned options are refreshed, the address stays */
	m = msg(DHCPACK, 100, ADDR);
	m.vendor[2] = '9';
	dhcp_engine_receive(&e, 60010, &m, 101, &out);
	assert_int_equal(e.state, DHCP_STATE_BOUND);
	assert_true(out.lease_changed);
	assert_false(out.configure);
	assert_false(out.deconfigure);
	assert_int_equal(e.lease.vendor[2], '9');
	assert_int_equal(out.timer_at_ms, 120000); /* from when the REQUEST went */
	/* the server goes quiet: retransmit until T2, then broadcast until the end */
	dhcp_engine_timer(&e, 120000, 102, &out);
	assert_int_equal(e.state, DHCP_STATE_RENEWING);
	assert_true(out.timer_at_ms <= 60000 + 105000);
	while (e.state == DHCP_STATE_RENEWING) {
		uint64_t at = out.timer_at_ms;
		dhcp_engine_timer(&e, at, 103, &out);
		assert_int_equal(sent_type(&out), DHCPREQUEST);
	}
	assert_int_equal(e.state, DHCP_STATE_REBINDING);
	assert_false(out.unicast);
	assert_int_equal(sent_ciaddr(&out), ADDR);
	assert_non_null(strstr(out.note, "rebinding"));
	while (e.state == DHCP_STATE_REBINDING) {
		uint64_t at = out.timer_at_ms;
		assert_true(at <= 60000 + 120000);
		dhcp_engine_timer(&e, at, 104, &out);
	}
	/* the lease ended: removed, learned options dropped, a new DISCOVER */
	assert_int_equal(e.state, DHCP_STATE_SELECTING);
	assert_true(out.deconfigure);
	assert_true(out.lease_lost);
	assert_int_equal(out.old.addr, ADDR);
	assert_int_equal(sent_type(&out), DHCPDISCOVER);
	assert_non_null(strstr(out.note, "lease of 10.77.1.118 ended"));
}

static void
rebinding_ack_from_another_server(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;
	struct dhcp_msg m;

	(void)state;
	init(&e, 1);
	bind(&e, &out);
	dhcp_engine_timer(&e, 60000, 100, &out);
	while (e.state == DHCP_STATE_RENEWING)
		dhcp_engine_timer(&e, out.timer_at_ms, 200, &out);
	m = msg(DHCPACK, 200, 0x0a4d0177);
	m.server_id = 0x0a4d0102;
	dhcp_engine_receive(&e, out.timer_at_ms - 1, &m, 201, &out);
	assert_int_equal(e.state, DHCP_STATE_BOUND);
	/* a new address: the old one goes first */
	assert_true(out.deconfigure);
	assert_int_equal(out.old.addr, ADDR);
	assert_true(out.configure);
	assert_int_equal(e.lease.addr, 0x0a4d0177);
	assert_int_equal(e.lease.server_id, 0x0a4d0102);
}

static void
nak_while_renewing_drops_the_lease(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;
	struct dhcp_msg m;

	(void)state;
	init(&e, 1);
	bind(&e, &out);
	dhcp_engine_timer(&e, 60000, 100, &out);
	m = msg(DHCPNAK, 100, 0);
	dhcp_engine_receive(&e, 60001, &m, 300, &out);
	assert_true(out.lease_lost);
	assert_true(out.deconfigure);
	assert_int_equal(e.state, DHCP_STATE_SELECTING);
	assert_int_equal(e.xid, 300);
	assert_int_equal(sent_type(&out), DHCPDISCOVER);
}

static void
nak_or_silence_while_requesting_starts_over(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;
	struct dhcp_msg m;

	(void)state;
	init(&e, 1);
	dhcp_engine_start(&e, 0, 7, &out);
	m = msg(DHCPOFFER, 7, ADDR);
	dhcp_engine_receive(&e, 0, &m, 8, &out);
	m = msg(DHCPNAK, 7, 0);
	dhcp_engine_receive(&e, 10, &m, 9, &out);
	assert_int_equal(e.state, DHCP_STATE_INIT);
	assert_false(out.lease_lost);
	assert_int_equal(out.packet_len, 0);
	assert_int_equal(out.timer_at_ms, 2010);
	dhcp_engine_timer(&e, 2010, 11, &out);
	assert_int_equal(e.state, DHCP_STATE_SELECTING);
	assert_int_equal(sent_type(&out), DHCPDISCOVER);

	m = msg(DHCPOFFER, 11, ADDR);
	dhcp_engine_receive(&e, 2020, &m, 12, &out);
	for (int i = 0; i < 3; i++) {
		dhcp_engine_timer(&e, out.timer_at_ms, 13, &out);
		assert_int_equal(e.state, DHCP_STATE_REQUESTING);
		assert_int_equal(sent_type(&out), DHCPREQUEST);
	}
	dhcp_engine_timer(&e, out.timer_at_ms, 14, &out);
	assert_int_equal(e.state, DHCP_STATE_SELECTING);
	assert_int_equal(e.xid, 14);
	assert_non_null(strstr(out.note, "starting over"));
}

static void
discover_backs_off(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;
	uint64_t now = 0, last = 0;

	(void)state;
	init(&e, 1);
	dhcp_engine_start(&e, now, 7, &out);
	assert_int_equal(out.timer_at_ms, 2000);
	for (int i = 0; i < 10; i++) {
		uint64_t gap;

		now = out.timer_at_ms;
		dhcp_engine_timer(&e, now, 8, &out);
		assert_int_equal(sent_type(&out), DHCPDISCOVER);
		assert_int_equal(e.xid, 7);
		gap = out.timer_at_ms - now;
		assert_true(gap >= last && gap <= 64000);
		last = gap;
	}
	assert_int_equal(last, 64000);
	/* the secs field counts from the first DISCOVER */
	assert_int_equal(out.packet[8] << 8 | out.packet[9], now / 1000);
}

static void
ignores_what_is_not_for_it(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;
	struct dhcp_msg m;

	(void)state;
	init(&e, 1);
	dhcp_engine_start(&e, 0, 7, &out);
	m = msg(DHCPOFFER, 6, ADDR); /* another transaction */
	dhcp_engine_receive(&e, 1, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_SELECTING);
	m = msg(DHCPOFFER, 7, ADDR);
	m.chaddr[5] ^= 1; /* another client */
	dhcp_engine_receive(&e, 1, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_SELECTING);
	m = msg(DHCPACK, 7, ADDR); /* not an OFFER */
	dhcp_engine_receive(&e, 1, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_SELECTING);
	m = msg(DHCPOFFER, 7, 0x7f000001); /* loopback */
	dhcp_engine_receive(&e, 1, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_SELECTING);
	assert_non_null(strstr(out.note, "unusable address 127.0.0.1"));
	m = msg(DHCPOFFER, 7, ADDR);
	m.has_server_id = false;
	dhcp_engine_receive(&e, 1, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_SELECTING);

	m = msg(DHCPOFFER, 7, ADDR);
	dhcp_engine_receive(&e, 1, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_REQUESTING);
	m = msg(DHCPACK, 7, ADDR);
	m.has_lease = false;
	dhcp_engine_receive(&e, 2, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_REQUESTING);
	assert_non_null(strstr(out.note, "without a lease time"));
	m = msg(DHCPACK, 7, ADDR);
	m.server_id = 0x0a4d0109; /* another server answering our REQUEST */
	dhcp_engine_receive(&e, 2, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_REQUESTING);
	m = msg(DHCPACK, 7, ADDR + 1); /* not the address offered */
	dhcp_engine_receive(&e, 2, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_REQUESTING);
	m = msg(DHCPACK, 7, ADDR);
	dhcp_engine_receive(&e, 2, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_BOUND);
	/* nothing moves a bound client but its timer */
	m = msg(DHCPNAK, 7, 0);
	dhcp_engine_receive(&e, 3, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_BOUND);
}

static void
lease_times_are_sane(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;
	struct dhcp_msg m;

	(void)state;
	init(&e, 1);
	dhcp_engine_start(&e, 0, 7, &out);
	m = msg(DHCPOFFER, 7, ADDR);
	dhcp_engine_receive(&e, 0, &m, 8, &out);
	m = msg(DHCPACK, 7, ADDR);
	m.t1_s = 1000; /* past the lease: ignored */
	m.has_t1 = true;
	m.t2_s = 10; /* before T1: ignored */
	m.has_t2 = true;
	m.mask = 0xff00ff00; /* not contiguous: the class default */
	dhcp_engine_receive(&e, 0, &m, 8, &out);
	assert_int_equal(e.lease.t1_s, 60);
	assert_int_equal(e.lease.t2_s, 105);
	assert_int_equal(e.lease.mask, 0xff000000);

	init(&e, 1);
	dhcp_engine_start(&e, 0, 7, &out);
	m = msg(DHCPOFFER, 7, ADDR);
	dhcp_engine_receive(&e, 0, &m, 8, &out);
	m = msg(DHCPACK, 7, ADDR);
	m.lease_s = DHCP_LEASE_INFINITE;
	dhcp_engine_receive(&e, 0, &m, 8, &out);
	assert_int_equal(e.state, DHCP_STATE_BOUND);
	assert_int_equal(out.timer_at_ms, 0);
}

static void
divisor_speeds_up_the_lease(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;

	(void)state;
	init(&e, 20);
	bind(&e, &out);
	assert_int_equal(e.lease.lease_s, 120); /* shown as given */
	assert_int_equal(out.timer_at_ms, 3000);
	assert_int_equal(e.t2_at_ms, 5250);
	assert_int_equal(e.end_at_ms, 6000);
	dhcp_engine_timer(&e, 3000, 50, &out);
	assert_int_equal(e.state, DHCP_STATE_RENEWING);
	assert_true(out.timer_at_ms > 3000 && out.timer_at_ms <= 5250);
}

static void
stop_removes_the_lease(void **state)
{
	struct dhcp_engine e;
	struct dhcp_output out;

	(void)state;
	init(&e, 1);
	bind(&e, &out);
	dhcp_engine_stop(&e, &out);
	assert_true(out.deconfigure);
	assert_true(out.lease_lost);
	assert_int_equal(out.old.addr, ADDR);
	assert_int_equal(out.timer_at_ms, 0);
	assert_int_equal(e.state, DHCP_STATE_STOPPED);
	init(&e, 1);
	dhcp_engine_start(&e, 0, 7, &out);
	dhcp_engine_stop(&e, &out);
	assert_false(out.deconfigure);
	assert_false(out.lease_lost);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(binds_and_configures),
		cmocka_unit_test(renews_then_rebinds_then_loses),
		cmocka_unit_test(rebinding_ack_from_another_server),
		cmocka_unit_test(nak_while_renewing_drops_the_lease),
		cmocka_unit_test(nak_or_silence_while_requesting_starts_over),
		cmocka_unit_test(discover_backs_off),
		cmocka_unit_test(ignores_what_is_not_for_it),
		cmocka_unit_test(lease_times_are_sane),
		cmocka_unit_test(divisor_speeds_up_the_lease),
		cmocka_unit_test(stop_removes_the_lease),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
