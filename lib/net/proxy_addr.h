/*
 * A management proxy's address: an IPv4 address and a TCP port, written
 * "a.b.c.d:port". The same strict parser serves the configuration, the
 * bootstrap file and DHCP option 43, so that a candidate means the same thing
 * wherever it came from.
 */
#ifndef ONRAMP_PROXY_ADDR_H
#define ONRAMP_PROXY_ADDR_H

#include <stddef.h>
#include <stdint.h>

struct proxy_addr {
	uint32_t ip;   /* host byte order, so that comparing numbers compares addresses */
	uint16_t port; /* 1 to 65535 */
};

/* "255.255.255.255:65535" and its NUL. */
#define PROXY_ADDR_STRLEN 22

/*
 * Parses exactly len bytes of text (no NUL needed) as "a.b.c.d:port": four
 * decimal octets without leading zeros, a port from 1 to 65535 without leading
 * zeros, nothing else. Refuses 0.0.0.0/8, multicast, reserved and broadcast
 * addresses. On -1 the or_error() message is the reason, without the text.
 */
int proxy_addr_parse(const char *text, size_t len, struct proxy_addr *out);

/* Writes "a.b.c.d:port" into out. */
void proxy_addr_format(const struct proxy_addr *addr, char out[PROXY_ADDR_STRLEN]);

/* Orders by address, then port: <0, 0 or >0. */
int proxy_addr_cmp(const struct proxy_addr *a, const struct proxy_addr *b);

/* True for 127.0.0.0/8. */
int proxy_addr_is_loopback(const struct proxy_addr *addr);

#endif
