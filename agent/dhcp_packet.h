/*
 * DHCPv4 messages (RFC 2131, 2132, 3396) and the IPv4/UDP frame around them,
 * built and parsed without I/O. Addresses are in host byte order throughout.
 *
 * The parser trusts nothing: every length is checked against what remains, a
 * message whose option framing is broken is refused as a whole, and an option
 * of the wrong size is ignored.
 */
#ifndef ONRAMP_DHCP_PACKET_H
#define ONRAMP_DHCP_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_MSG_MAX 1024    /* what we build; we accept replies up to DHCP_FRAME_MAX */
#define DHCP_FRAME_MAX 1500  /* an Ethernet MTU */
#define DHCP_VENDOR_MAX 1024 /* option 43 after RFC 3396 concatenation */
#define DHCP_VENDOR_CLASS_MAX 255

enum dhcp_msg_type {
	DHCPDISCOVER = 1,
	DHCPOFFER = 2,
	DHCPREQUEST = 3,
	DHCPDECLINE = 4,
	DHCPACK = 5,
	DHCPNAK = 6,
	DHCPRELEASE = 7,
	DHCPINFORM = 8,
};

/* A parsed BOOTREPLY. A field whose has_ flag is false was absent or malformed. */
struct dhcp_msg {
	uint32_t xid;
	uint32_t yiaddr;
	uint8_t chaddr[6];
	uint8_t type; /* option 53 */
	uint32_t server_id;
	uint32_t mask, router, broadcast;
	uint32_t lease_s, t1_s, t2_s;
	bool has_server_id, has_mask, has_router, has_broadcast, has_lease, has_t1, has_t2;
	bool has_vendor;
	uint8_t vendor[DHCP_VENDOR_MAX]; /* option 43 */
	size_t vendor_len;
};

/* What a client puts in a DISCOVER or REQUEST. */
struct dhcp_request {
	uint8_t type; /* DHCPDISCOVER or DHCPREQUEST */
	uint32_t xid;
	uint16_t secs;
	uint8_t mac[6];
	uint32_t ciaddr;	  /* RENEWING, REBINDING; else 0 */
	uint32_t requested_ip;	  /* option 50 (REQUESTING); 0: absent */
	uint32_t server_id;	  /* option 54 (REQUESTING); 0: absent */
	const char *vendor_class; /* option 60; NULL or "": absent */
	bool want_vendor_opts;	  /* list 43 in option 55 */
};

/* Builds a BOOTREQUEST into buf; returns its length, or 0 when cap is too small. */
size_t dhcp_request_build(const struct dhcp_request *req, uint8_t *buf, size_t cap);

/* Parses a BOOTREPLY of len bytes; -1 with or_error() when it is not a usable one. */
int dhcp_msg_parse(const uint8_t *buf, size_t len, struct dhcp_msg *out);

/* Wraps payload in IPv4 + UDP (68 -> 67) with both checksums; returns the length or 0. */
size_t dhcp_frame_build(uint32_t src_ip, uint32_t dst_ip, const uint8_t *payload, size_t len,
			uint8_t *buf, size_t cap);

/*
 * Finds the UDP payload of an IPv4 datagram to port 68. check_udp_sum is
 * false when the kernel says the checksum is not computed yet (offload on
 * veth). Returns -1 with or_error() for anything else.
 */
int dhcp_frame_parse(const uint8_t *buf, size_t len, bool check_udp_sum, const uint8_t **payload,
		     size_t *payload_len, uint32_t *src_ip);

#endif
