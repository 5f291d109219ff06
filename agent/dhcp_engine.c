/*
 * The DHCPv4 client state machine. It trusts the frontend for the time and
 * for transaction IDs; it trusts nothing in a reply: xid, hardware address,
 * message type, server and addresses are checked before a reply is used.
 */
#include "dhcp_engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define RETRANSMIT_BASE_MS 2000
#define RETRANSMIT_CAP_MS 64000
#define REQUEST_TRIES 4
#define RESTART_DELAY_MS 2000
#define RENEW_FLOOR_MS 60000 /* RFC 2131 4.4.5: at least 60 s between retransmissions */

static const char *const state_names[] = {
	"init", "selecting", "requesting", "bound", "renewing", "rebinding", "stopped",
};

/* The state's name as shown in status. */
const char *
dhcp_state_name(enum dhcp_state state)
{
	if ((unsigned)state >= sizeof(state_names) / sizeof(state_names[0]))
		return "unknown";
	return state_names[state];
}

static void note(struct dhcp_output *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Records what happened, for the frontend to log. */
static void
note(struct dhcp_output *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->note, sizeof(out->note), fmt, ap);
	va_end(ap);
}

/* Dotted quad of a host-order address, in one of two rotating buffers. */
static const char *
ipstr(uint32_t ip)
{
	static char buf[2][16];
	static int which;

	which ^= 1;
	snprintf(buf[which], sizeof(buf[which]), "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xFF,
		 (ip >> 8) & 0xFF, ip & 0xFF);
	return buf[which];
}

/* Prefix length of a contiguous mask. */
static unsigned
mask_bits(uint32_t mask)
{
	return (unsigned)__builtin_popcount(mask);
}

/* A stopped-at-INIT engine with its own copy of conf. */
void
dhcp_engine_init(struct dhcp_engine *e, const struct dhcp_engine_conf *conf)
{
	memset(e, 0, sizeof(*e));
	e->conf = *conf;
	if (e->conf.lease_divisor == 0)
		e->conf.lease_divisor = 1;
	e->state = DHCP_STATE_INIT;
}

/* Exponential backoff for DISCOVER and REQUEST: 2 s doubling, at most 64 s. */
static uint64_t
retransmit_ms(unsigned tries)
{
	uint64_t delay = (uint64_t)RETRANSMIT_BASE_MS << (tries < 6 ? tries : 6);

	return delay < RETRANSMIT_CAP_MS ? delay : RETRANSMIT_CAP_MS;
}

/* Builds a DISCOVER or REQUEST for the current state into out. */
static void
emit(struct dhcp_engine *e, uint64_t now_ms, uint8_t type, struct dhcp_output *out)
{
	struct dhcp_request req;
	uint64_t secs = (now_ms - e->exchange_start_ms) / 1000;

	memset(&req, 0, sizeof(req));
	req.type = type;
	req.xid = e->xid;
	req.secs = secs > 0xFFFF ? 0xFFFF : (uint16_t)secs;
	memcpy(req.mac, e->conf.mac, 6);
	req.vendor_class = e->conf.vendor_class;
	req.want_vendor_opts = e->conf.want_vendor_opts;
	if (e->state == DHCP_STATE_REQUESTING) {
		req.requested_ip = e->offer.addr;
		req.server_id = e->offer.server_id;
	} else if (e->state == DHCP_STATE_RENEWING || e->state == DHCP_STATE_REBINDING) {
		req.ciaddr = e->lease.addr;
	}
	out->packet_len = dhcp_request_build(&req, out->packet, sizeof(out->packet));
	out->unicast = e->state == DHCP_STATE_RENEWING;
	out->dst_ip = out->unicast ? e->lease.server_id : 0xFFFFFFFFu;
	if (type == DHCPREQUEST)
		e->request_sent_ms = now_ms;
}

/* Starts a new exchange with a DISCOVER. */
static void
begin_selecting(struct dhcp_engine *e, uint64_t now_ms, uint32_t xid, struct dhcp_output *out)
{
	e->state = DHCP_STATE_SELECTING;
	e->xid = xid;
	e->tries = 0;
	e->exchange_start_ms = now_ms;
	emit(e, now_ms, DHCPDISCOVER, out);
	e->timer_at_ms = now_ms + retransmit_ms(0);
}

/* Drops the lease: the frontend removes it and forgets what it taught. */
static void
lose_lease(struct dhcp_engine *e, struct dhcp_output *out)
{
	out->deconfigure = true;
	out->old = e->lease;
	out->lease_lost = true;
	memset(&e->lease, 0, sizeof(e->lease));
	e->t1_at_ms = e->t2_at_ms = e->end_at_ms = 0;
}

/* Sends the first DISCOVER. */
void
dhcp_engine_start(struct dhcp_engine *e, uint64_t now_ms, uint32_t xid, struct dhcp_output *out)
{
	memset(out, 0, sizeof(*out));
	begin_selecting(e, now_ms, xid, out);
	out->timer_at_ms = e->timer_at_ms;
}

/* Time to wait in RENEWING or REBINDING before sending again, ending at deadline. */
static uint64_t
renew_timer(const struct dhcp_engine *e, uint64_t now_ms, uint64_t deadline)
{
	uint64_t floor = RENEW_FLOOR_MS / e->conf.lease_divisor, wait;

	if (deadline <= now_ms)
		return now_ms;
	wait = (deadline - now_ms) / 2;
	if (wait < floor)
		wait = floor;
	if (wait < 1000)
		wait = 1000;
	return now_ms + wait < deadline ? now_ms + wait : deadline;
}

/*
 * What the timer means depends on the state: retransmit, start over,
 * renew (T1), rebind (T2), or give the lease up (end).
 */
void
dhcp_engine_timer(struct dhcp_engine *e, uint64_t now_ms, uint32_t xid, struct dhcp_output *out)
{
	memset(out, 0, sizeof(*out));
	e->timer_at_ms = 0;
	switch (e->state) {
	case DHCP_STATE_INIT:
		begin_selecting(e, now_ms, xid, out);
		break;
	case DHCP_STATE_SELECTING:
		e->tries++;
		emit(e, now_ms, DHCPDISCOVER, out);
		e->timer_at_ms = now_ms + retransmit_ms(e->tries);
		break;
	case DHCP_STATE_REQUESTING:
		if (++e->tries >= REQUEST_TRIES) {
			note(out, "no answer to REQUEST for %s; starting over",
			     ipstr(e->offer.addr));
			begin_selecting(e, now_ms, xid, out);
			break;
		}
		emit(e, now_ms, DHCPREQUEST, out);
		e->timer_at_ms = now_ms + retransmit_ms(e->tries);
		break;
	case DHCP_STATE_BOUND:
		e->state = DHCP_STATE_RENEWING;
		e->xid = xid;
		e->exchange_start_ms = now_ms;
		emit(e, now_ms, DHCPREQUEST, out);
		e->timer_at_ms = renew_timer(e, now_ms, e->t2_at_ms);
		break;
	case DHCP_STATE_RENEWING:
		if (now_ms >= e->t2_at_ms) {
			e->state = DHCP_STATE_REBINDING;
			e->xid = xid;
			note(out, "no answer from %s to renew %s; rebinding",
			     ipstr(e->lease.server_id), ipstr(e->lease.addr));
		}
		emit(e, now_ms, DHCPREQUEST, out);
		e->timer_at_ms = renew_timer(
			e, now_ms, e->state == DHCP_STATE_RENEWING ? e->t2_at_ms : e->end_at_ms);
		break;
	case DHCP_STATE_REBINDING:
		if (now_ms >= e->end_at_ms) {
			note(out, "lease of %s ended", ipstr(e->lease.addr));
			lose_lease(e, out);
			begin_selecting(e, now_ms, xid, out);
			break;
		}
		emit(e, now_ms, DHCPREQUEST, out);
		e->timer_at_ms = renew_timer(e, now_ms, e->end_at_ms);
		break;
	case DHCP_STATE_STOPPED:
		break;
	}
	out->timer_at_ms = e->timer_at_ms;
}

/* The default mask of the address's class, when the server gave none that is usable. */
static uint32_t
classful_mask(uint32_t addr)
{
	if ((addr >> 31) == 0)
		return 0xFF000000u;
	if ((addr >> 30) == 2)
		return 0xFFFF0000u;
	return 0xFFFFFF00u;
}

/* Fills lease from an OFFER or ACK; -1 (with a note) when it is not usable. */
static int
lease_from_msg(const struct dhcp_msg *m, bool need_lease_time, struct dhcp_lease *l,
	       struct dhcp_output *out)
{
	uint32_t a = m->yiaddr;

	memset(l, 0, sizeof(*l));
	if ((a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) >= 0xE) {
		note(out, "ignored a reply offering the unusable address %s", ipstr(a));
		return -1;
	}
	if (!m->has_server_id || m->server_id == 0) {
		note(out, "ignored a reply without a server identifier");
		return -1;
	}
	if (need_lease_time && (!m->has_lease || m->lease_s == 0)) {
		note(out, "ignored an ACK without a lease time");
		return -1;
	}
	l->addr = a;
	l->server_id = m->server_id;
	/* a mask must be contiguous ones, and leave room for a host */
	if (m->has_mask && m->mask != 0 && (~m->mask & (~m->mask + 1)) == 0 &&
	    mask_bits(m->mask) <= 30)
		l->mask = m->mask;
	else
		l->mask = classful_mask(a);
	l->router = m->has_router ? m->router : 0;
	l->broadcast = m->has_broadcast ? m->broadcast : (a | ~l->mask);
	l->lease_s = m->has_lease ? m->lease_s : 0;
	if (l->lease_s == DHCP_LEASE_INFINITE) {
		l->t1_s = l->t2_s = DHCP_LEASE_INFINITE;
	} else {
		l->t1_s = m->has_t1 && m->t1_s < l->lease_s ? m->t1_s : l->lease_s / 2;
		l->t2_s = m->has_t2 && m->t2_s < l->lease_s && m->t2_s >= l->t1_s
				  ? m->t2_s
				  : (uint32_t)((uint64_t)l->lease_s * 7 / 8);
		if (l->t2_s < l->t1_s)
			l->t2_s = l->t1_s;
	}
	l->has_vendor = m->has_vendor;
	l->vendor_len = m->vendor_len;
	memcpy(l->vendor, m->vendor, m->vendor_len);
	return 0;
}

/* Starts the lease's clocks from the time its REQUEST was sent (RFC 2131 4.4.1). */
static void
arm_lease(struct dhcp_engine *e)
{
	uint64_t d = e->conf.lease_divisor, base = e->request_sent_ms;

	if (e->lease.lease_s == DHCP_LEASE_INFINITE) {
		e->t1_at_ms = e->t2_at_ms = e->end_at_ms = e->timer_at_ms = 0;
		return;
	}
	e->t1_at_ms = base + (uint64_t)e->lease.t1_s * 1000 / d;
	e->t2_at_ms = base + (uint64_t)e->lease.t2_s * 1000 / d;
	e->end_at_ms = base + (uint64_t)e->lease.lease_s * 1000 / d;
	e->timer_at_ms = e->t1_at_ms;
}

/* True when two leases put the same things on the interface. */
static bool
same_config(const struct dhcp_lease *a, const struct dhcp_lease *b)
{
	return a->addr == b->addr && a->mask == b->mask && a->router == b->router &&
	       a->broadcast == b->broadcast;
}

/* An ACK in REQUESTING, RENEWING or REBINDING. */
static void
take_ack(struct dhcp_engine *e, const struct dhcp_msg *m, struct dhcp_output *out)
{
	struct dhcp_lease fresh;
	bool had = e->state != DHCP_STATE_REQUESTING;

	if (lease_from_msg(m, true, &fresh, out) == -1)
		return;
	if (e->state == DHCP_STATE_REQUESTING && fresh.addr != e->offer.addr) {
		note(out, "ignored an ACK for %s after requesting %s", ipstr(fresh.addr),
		     ipstr(e->offer.addr));
		return;
	}
	if (!had || !same_config(&e->lease, &fresh)) {
		if (had) {
			out->deconfigure = true;
			out->old = e->lease;
		}
		out->configure = true;
	}
	e->lease = fresh;
	out->lease_changed = true;
	e->state = DHCP_STATE_BOUND;
	arm_lease(e);
	note(out, "%s %s/%u from %s, lease %u s (T1 %u s, T2 %u s)%s", had ? "renewed" : "bound to",
	     ipstr(fresh.addr), mask_bits(fresh.mask), ipstr(fresh.server_id), fresh.lease_s,
	     fresh.t1_s, fresh.t2_s, fresh.has_vendor ? ", with option 43" : "");
}

/*
 * A reply: used only if it is for this client and exchange and fits
 * the state; everything else is ignored.
 */
void
dhcp_engine_receive(struct dhcp_engine *e, uint64_t now_ms, const struct dhcp_msg *msg,
		    uint32_t xid, struct dhcp_output *out)
{
	memset(out, 0, sizeof(*out));
	out->timer_at_ms = e->timer_at_ms;
	if (msg->xid != e->xid || memcmp(msg->chaddr, e->conf.mac, 6) != 0)
		return;
	switch (e->state) {
	case DHCP_STATE_SELECTING:
		if (msg->type != DHCPOFFER || lease_from_msg(msg, false, &e->offer, out) == -1)
			break;
		note(out, "offered %s by %s", ipstr(e->offer.addr), ipstr(e->offer.server_id));
		e->state = DHCP_STATE_REQUESTING;
		e->tries = 0;
		emit(e, now_ms, DHCPREQUEST, out);
		e->timer_at_ms = now_ms + retransmit_ms(0);
		break;
	case DHCP_STATE_REQUESTING:
		if (msg->has_server_id && msg->server_id != e->offer.server_id)
			break;
		if (msg->type == DHCPACK) {
			take_ack(e, msg, out);
		} else if (msg->type == DHCPNAK) {
			note(out, "%s refused %s (NAK); starting over", ipstr(e->offer.server_id),
			     ipstr(e->offer.addr));
			e->state = DHCP_STATE_INIT;
			e->timer_at_ms = now_ms + RESTART_DELAY_MS;
		}
		break;
	case DHCP_STATE_RENEWING:
	case DHCP_STATE_REBINDING:
		if (msg->type == DHCPACK) {
			take_ack(e, msg, out);
		} else if (msg->type == DHCPNAK) {
			note(out, "%s refused the lease of %s (NAK); lease dropped",
			     msg->has_server_id ? ipstr(msg->server_id) : "the server",
			     ipstr(e->lease.addr));
			lose_lease(e, out);
			begin_selecting(e, now_ms, xid, out);
		}
		break;
	default:
		break;
	}
	out->timer_at_ms = e->timer_at_ms;
}

/* Ends the client; a held lease is to be removed. */
void
dhcp_engine_stop(struct dhcp_engine *e, struct dhcp_output *out)
{
	memset(out, 0, sizeof(*out));
	if (e->state == DHCP_STATE_BOUND || e->state == DHCP_STATE_RENEWING ||
	    e->state == DHCP_STATE_REBINDING)
		lose_lease(e, out);
	e->state = DHCP_STATE_STOPPED;
	e->timer_at_ms = 0;
}
