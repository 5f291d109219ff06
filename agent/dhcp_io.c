/*
 * Sockets, timer and rtnetlink for one interface's DHCP client. Packets from
 * the network are parsed by dhcp_packet.c before the engine sees them; this
 * file trusts the engine's decisions and the kernel.
 */
#include "dhcp_io.h"

#include "core/error.h"
#include "core/log.h"
#include "netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct dhcp_io {
	struct event_base *base;
	struct agent_iface_conf conf;
	struct dhcp_io_callbacks cb;
	int ifindex;
	struct dhcp_engine engine;
	enum dhcp_state shown_state;
	int raw_fd, udp_fd;
	uint32_t udp_addr; /* the address udp_fd is bound to */
	struct event *raw_ev, *udp_ev, *timer_ev;
};

/* Monotonic milliseconds: lease timers must not jump with the wall clock. */
static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A random transaction ID, so that replies to others are not taken for ours. */
static uint32_t
fresh_xid(void)
{
	uint32_t xid = 0;

	while (getrandom(&xid, sizeof(xid), 0) != sizeof(xid))
		;
	return xid;
}

/* Prefix length of a contiguous netmask. */
static unsigned
prefix_of(uint32_t mask)
{
	return (unsigned)__builtin_popcount(mask);
}

/* Reads the interface's Ethernet address. */
static int
read_mac(const char *name, uint8_t mac[6])
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	if (fd == -1)
		return or_error("socket: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
	close(fd);
	if (rc == -1)
		return or_error("reading the hardware address: %s", strerror(errno));
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		return or_error("not an Ethernet interface");
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

/* A packet socket that sees only UDP datagrams to port 68 that are not fragments. */
static int
open_raw(int ifindex)
{
	static struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9), /* IP protocol */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 6),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6), /* flags and fragment offset */
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 4, 0),
		BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0), /* X = IP header length */
		BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2),	/* UDP destination port */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 68, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
	struct sockaddr_ll sll;
	int fd, on = 1;

	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_IP));
	if (fd == -1)
		return or_error("packet socket: %s", strerror(errno));
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_IP);
	sll.sll_ifindex = ifindex;
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == -1 ||
	    setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &on, sizeof(on)) == -1 ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == -1) {
		int e = errno;
		close(fd);
		return or_error("packet socket: %s", strerror(e));
	}
	return fd;
}

/* Drains the UDP socket; replies are read from the packet socket. */
static void
on_udp(evutil_socket_t fd, short what, void *arg)
{
	char buf[DHCP_FRAME_MAX];

	(void)what;
	(void)arg;
	/* replies are read from the packet socket; this one only keeps port 68 open */
	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
}

/* Closes the unicast socket (the leased address is going away). */
static void
close_udp(struct dhcp_io *io)
{
	if (io->udp_ev != NULL)
		event_free(io->udp_ev);
	if (io->udp_fd != -1)
		close(io->udp_fd);
	io->udp_ev = NULL;
	io->udp_fd = -1;
	io->udp_addr = 0;
}

/* A UDP socket bound to the leased address on port 68, for unicast to the server. */
static int
open_udp(struct dhcp_io *io, uint32_t addr)
{
	struct sockaddr_in sin;
	int fd, on = 1;

	if (io->udp_fd != -1 && io->udp_addr == addr)
		return 0;
	close_udp(io);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return or_error("UDP socket: %s", strerror(errno));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(DHCP_CLIENT_PORT);
	sin.sin_addr.s_addr = htonl(addr);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, io->conf.name, strlen(io->conf.name)) ==
		    -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		int e = errno;
		close(fd);
		return or_error("UDP socket on port 68: %s", strerror(e));
	}
	io->udp_ev = event_new(io->base, fd, EV_READ | EV_PERSIST, on_udp, io);
	if (io->udp_ev == NULL || event_add(io->udp_ev, NULL) == -1) {
		if (io->udp_ev != NULL)
			event_free(io->udp_ev);
		io->udp_ev = NULL;
		close(fd);
		return or_error("out of memory");
	}
	io->udp_fd = fd;
	io->udp_addr = addr;
	return 0;
}

/*
 * Sends the engine's packet: unicast through the UDP socket (RENEWING),
 * else broadcast in an IPv4/UDP frame through the packet socket.
 */
static void
send_packet(struct dhcp_io *io, const struct dhcp_output *out)
{
	uint8_t frame[DHCP_FRAME_MAX];
	struct sockaddr_ll sll;
	struct sockaddr_in sin;
	uint32_t src = io->engine.state == DHCP_STATE_REBINDING ? io->engine.lease.addr : 0;
	size_t len;

	if (out->unicast) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(DHCP_SERVER_PORT);
		sin.sin_addr.s_addr = htonl(out->dst_ip);
		if (open_udp(io, io->engine.lease.addr) == -1 ||
		    sendto(io->udp_fd, out->packet, out->packet_len, 0, (struct sockaddr *)&sin,
			   sizeof(sin)) < 0)
			log_warn("%s: dhcp: cannot send to the server: %s", io->conf.name,
				 io->udp_fd == -1 ? or_errmsg() : strerror(errno));
		return;
	}
	len = dhcp_frame_build(src, 0xFFFFFFFFu, out->packet, out->packet_len, frame,
			       sizeof(frame));
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_IP);
	sll.sll_ifindex = io->ifindex;
	sll.sll_halen = 6;
	memset(sll.sll_addr, 0xFF, 6);
	if (len == 0 || sendto(io->raw_fd, frame, len, 0, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		log_warn("%s: dhcp: cannot send a broadcast: %s", io->conf.name,
			 len == 0 ? "packet too large" : strerror(errno));
}

/* Puts the lease on the interface; failures are logged, the lease kept. */
static void
configure(struct dhcp_io *io, const struct dhcp_lease *l)
{
	if (nl_addr_set(io->ifindex, l->addr, prefix_of(l->mask), l->broadcast) == -1)
		log_error("%s: %s", io->conf.name, or_errmsg());
	if (l->router != 0 &&
	    nl_default_route_set(io->ifindex, l->router, io->conf.route_metric) == -1)
		log_error("%s: %s", io->conf.name, or_errmsg());
}

/* Takes a lease off the interface; what is already gone is fine. */
static void
deconfigure(struct dhcp_io *io, const struct dhcp_lease *l)
{
	close_udp(io);
	if (l->router != 0 &&
	    nl_default_route_del(io->ifindex, l->router, io->conf.route_metric) == -1)
		log_warn("%s: %s", io->conf.name, or_errmsg());
	if (nl_addr_del(io->ifindex, l->addr, prefix_of(l->mask)) == -1)
		log_warn("%s: %s", io->conf.name, or_errmsg());
}

/* Carries out what the engine asked for, in the order that keeps the interface sane. */
static void
apply(struct dhcp_io *io, struct dhcp_output *out)
{
	struct timeval tv;
	uint64_t now;

	if (out->note[0] != '\0')
		log_info("%s: dhcp: %s", io->conf.name, out->note);
	if (out->deconfigure)
		deconfigure(io, &out->old);
	if (out->configure)
		configure(io, &io->engine.lease);
	if (out->lease_lost && io->cb.lost != NULL)
		io->cb.lost(io->cb.arg, io->conf.name);
	if (out->lease_changed && io->cb.lease != NULL)
		io->cb.lease(io->cb.arg, io->conf.name, &io->engine.lease);
	if (out->packet_len > 0)
		send_packet(io, out);
	if (io->engine.state != io->shown_state && io->cb.state != NULL) {
		io->shown_state = io->engine.state;
		io->cb.state(io->cb.arg, io->conf.name, io->engine.state);
	}
	evtimer_del(io->timer_ev);
	if (out->timer_at_ms != 0) {
		now = now_ms();
		now = out->timer_at_ms > now ? out->timer_at_ms - now : 0;
		tv.tv_sec = (time_t)(now / 1000);
		tv.tv_usec = (suseconds_t)(now % 1000) * 1000;
		evtimer_add(io->timer_ev, &tv);
	}
}

/* The engine's timer expired. */
static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dhcp_io *io = arg;
	struct dhcp_output out;

	(void)fd;
	(void)what;
	dhcp_engine_timer(&io->engine, now_ms(), fresh_xid(), &out);
	apply(io, &out);
}

/* Reads one datagram with the kernel's note on whether its UDP checksum is done yet. */
static ssize_t
read_frame(int fd, uint8_t *buf, size_t cap, bool *csum_ready)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	ssize_t n;

	msg.msg_control = control.buf;
	msg.msg_controllen = sizeof(control.buf);
	n = recvmsg(fd, &msg, 0);
	*csum_ready = true;
	for (c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		struct tpacket_auxdata aux;

		if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA ||
		    c->cmsg_len < CMSG_LEN(sizeof(aux)))
			continue;
		memcpy(&aux, CMSG_DATA(c), sizeof(aux));
		*csum_ready = (aux.tp_status & TP_STATUS_CSUMNOTREADY) == 0;
	}
	return n;
}

/*
 * Reads every pending frame; what does not parse is dropped, the rest
 * goes to the engine, which checks it is for us.
 */
static void
on_raw(evutil_socket_t fd, short what, void *arg)
{
	struct dhcp_io *io = arg;
	uint8_t frame[DHCP_FRAME_MAX + 64];
	struct dhcp_output out;
	struct dhcp_msg msg;
	const uint8_t *payload;
	size_t payload_len;
	uint32_t src;
	bool csum_ready;
	ssize_t n;

	(void)what;
	while ((n = read_frame(fd, frame, sizeof(frame), &csum_ready)) > 0) {
		if (dhcp_frame_parse(frame, (size_t)n, csum_ready, &payload, &payload_len, &src) ==
			    -1 ||
		    dhcp_msg_parse(payload, payload_len, &msg) == -1) {
			log_debug("%s: dhcp: ignored a packet: %s", io->conf.name, or_errmsg());
			continue;
		}
		dhcp_engine_receive(&io->engine, now_ms(), &msg, fresh_xid(), &out);
		apply(io, &out);
	}
}

/* Opens the interface (it must exist and be Ethernet) and sends a DISCOVER. */
int
dhcp_io_open(struct event_base *base, const struct agent_iface_conf *conf, bool want_vendor_opts,
	     const struct dhcp_io_callbacks *cb, struct dhcp_io **out)
{
	struct dhcp_engine_conf ec;
	struct dhcp_output first;
	struct dhcp_io *io;

	*out = NULL;
	io = calloc(1, sizeof(*io));
	if (io == NULL)
		return or_error("out of memory");
	io->base = base;
	io->conf = *conf;
	io->cb = *cb;
	io->raw_fd = io->udp_fd = -1;
	memset(&ec, 0, sizeof(ec));
	io->ifindex = (int)if_nametoindex(conf->name);
	if (io->ifindex == 0) {
		or_error("interface %s: %s", conf->name, strerror(errno));
		goto fail;
	}
	if (read_mac(conf->name, ec.mac) == -1) {
		or_error_prefix("interface %s", conf->name);
		goto fail;
	}
	snprintf(ec.vendor_class, sizeof(ec.vendor_class), "%s", conf->vendor_class);
	ec.want_vendor_opts = want_vendor_opts;
	ec.lease_divisor = conf->lease_divisor;
	dhcp_engine_init(&io->engine, &ec);
	io->raw_fd = open_raw(io->ifindex);
	if (io->raw_fd == -1) {
		or_error_prefix("interface %s", conf->name);
		goto fail;
	}
	io->raw_ev = event_new(base, io->raw_fd, EV_READ | EV_PERSIST, on_raw, io);
	io->timer_ev = evtimer_new(base, on_timer, io);
	if (io->raw_ev == NULL || io->timer_ev == NULL || event_add(io->raw_ev, NULL) == -1) {
		or_error("out of memory");
		goto fail;
	}
	io->shown_state = DHCP_STATE_INIT;
	if (conf->lease_divisor > 1)
		log_warn("%s: test-lease-divisor %u: lease times run %u times faster (a test aid)",
			 conf->name, conf->lease_divisor, conf->lease_divisor);
	dhcp_engine_start(&io->engine, now_ms(), fresh_xid(), &first);
	apply(io, &first);
	*out = io;
	return 0;
fail:
	dhcp_io_close(io);
	return -1;
}

/* Stops the engine, applies its last output (lease removed), frees all. */
void
dhcp_io_close(struct dhcp_io *io)
{
	struct dhcp_output out;

	if (io == NULL)
		return;
	if (io->timer_ev != NULL) {
		dhcp_engine_stop(&io->engine, &out);
		apply(io, &out);
		event_free(io->timer_ev);
	}
	if (io->raw_ev != NULL)
		event_free(io->raw_ev);
	if (io->raw_fd != -1)
		close(io->raw_fd);
	close_udp(io);
	free(io);
}
