/*
 * BOOTP/DHCP wire format. Replies come from the network, so the parser reads
 * only within len and checks every option's length before using it.
 */
#include "dhcp_packet.h"

#include "core/error.h"

#include <string.h>

#define BOOTREQUEST 1
#define BOOTREPLY 2
#define BOOTP_FIXED 236 /* op .. file */
#define OFF_XID 4
#define OFF_SECS 8
#define OFF_CIADDR 12
#define OFF_YIADDR 16
#define OFF_CHADDR 28
#define OFF_SNAME 44
#define OFF_FILE 108
#define OFF_OPTIONS 240
#define BOOTP_MIN_LEN 300 /* some relays drop shorter requests */

#define OPT_PAD 0
#define OPT_MASK 1
#define OPT_ROUTER 3
#define OPT_BROADCAST 28
#define OPT_VENDOR 43
#define OPT_REQUESTED_IP 50
#define OPT_LEASE 51
#define OPT_OVERLOAD 52
#define OPT_TYPE 53
#define OPT_SERVER_ID 54
#define OPT_PARAMS 55
#define OPT_MAX_SIZE 57
#define OPT_T1 58
#define OPT_T2 59
#define OPT_VENDOR_CLASS 60
#define OPT_CLIENT_ID 61
#define OPT_END 255

static const uint8_t magic_cookie[4] = {99, 130, 83, 99};

/* Writes v big-endian. */
static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Reads 4 bytes big-endian (the caller checked they are there). */
static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Appends one option; returns the new position, or 0 when it does not fit. */
static size_t
put_option(uint8_t *buf, size_t pos, size_t cap, uint8_t code, const void *data, size_t len)
{
	if (len > 255 || pos == 0 || cap - pos < 2 + len)
		return 0;
	buf[pos] = code;
	buf[pos + 1] = (uint8_t)len;
	memcpy(buf + pos + 2, data, len);
	return pos + 2 + len;
}

/* Appends a 4-byte option. */
static size_t
put_option32(uint8_t *buf, size_t pos, size_t cap, uint8_t code, uint32_t v)
{
	uint8_t be[4];

	put32(be, v);
	return put_option(buf, pos, cap, code, be, sizeof(be));
}

/*
 * Fills a BOOTREQUEST: fixed fields, then options 53, 61, 57, [50, 54],
 * [60], 55 and the end byte, padded to 300 bytes.
 */
size_t
dhcp_request_build(const struct dhcp_request *req, uint8_t *buf, size_t cap)
{
	static const uint8_t params[] = {OPT_MASK,	OPT_ROUTER, OPT_BROADCAST, OPT_LEASE,
					 OPT_SERVER_ID, OPT_T1,	    OPT_T2,	   OPT_VENDOR};
	uint8_t client_id[7], max_size[2] = {DHCP_FRAME_MAX >> 8, DHCP_FRAME_MAX & 0xFF};
	size_t pos = OFF_OPTIONS, nparams = sizeof(params);

	if (cap < BOOTP_MIN_LEN)
		return 0;
	memset(buf, 0, cap);
	buf[0] = BOOTREQUEST;
	buf[1] = 1; /* Ethernet */
	buf[2] = 6;
	put32(buf + OFF_XID, req->xid);
	buf[OFF_SECS] = (uint8_t)(req->secs >> 8);
	buf[OFF_SECS + 1] = (uint8_t)req->secs;
	put32(buf + OFF_CIADDR, req->ciaddr);
	memcpy(buf + OFF_CHADDR, req->mac, 6);
	memcpy(buf + 236, magic_cookie, 4);

	pos = put_option(buf, pos, cap, OPT_TYPE, &req->type, 1);
	client_id[0] = 1;
	memcpy(client_id + 1, req->mac, 6);
	pos = put_option(buf, pos, cap, OPT_CLIENT_ID, client_id, sizeof(client_id));
	pos = put_option(buf, pos, cap, OPT_MAX_SIZE, max_size, sizeof(max_size));
	if (req->requested_ip != 0)
		pos = put_option32(buf, pos, cap, OPT_REQUESTED_IP, req->requested_ip);
	if (req->server_id != 0)
		pos = put_option32(buf, pos, cap, OPT_SERVER_ID, req->server_id);
	if (req->vendor_class != NULL && req->vendor_class[0] != '\0')
		pos = put_option(buf, pos, cap, OPT_VENDOR_CLASS, req->vendor_class,
				 strlen(req->vendor_class));
	if (!req->want_vendor_opts)
		nparams--; /* OPT_VENDOR is last */
	pos = put_option(buf, pos, cap, OPT_PARAMS, params, nparams);
	if (pos == 0 || pos >= cap)
		return 0;
	buf[pos++] = OPT_END;
	return pos < BOOTP_MIN_LEN ? BOOTP_MIN_LEN : pos;
}

/* Keeps the first well-sized 4-byte value (or list of them, when list) of an option. */
static void
take32(const uint8_t *v, size_t len, bool list, uint32_t *field, bool *has)
{
	if (*has || len < 4 || (list ? len % 4 != 0 : len != 4))
		return;
	*field = get32(v);
	*has = true;
}

/* Stores one option's value in msg when its length is right for it. */
static void
take_option(struct dhcp_msg *msg, uint8_t code, const uint8_t *v, size_t len)
{
	switch (code) {
	case OPT_TYPE:
		if (len == 1 && msg->type == 0)
			msg->type = v[0];
		break;
	case OPT_VENDOR:
		/* RFC 3396: the parts of a long option are concatenated in order */
		if (len <= DHCP_VENDOR_MAX - msg->vendor_len) {
			memcpy(msg->vendor + msg->vendor_len, v, len);
			msg->vendor_len += len;
			msg->has_vendor = true;
		}
		break;
	case OPT_SERVER_ID:
		take32(v, len, false, &msg->server_id, &msg->has_server_id);
		break;
	case OPT_MASK:
		take32(v, len, false, &msg->mask, &msg->has_mask);
		break;
	case OPT_ROUTER: /* a list: the first router */
		take32(v, len, true, &msg->router, &msg->has_router);
		break;
	case OPT_BROADCAST:
		take32(v, len, false, &msg->broadcast, &msg->has_broadcast);
		break;
	case OPT_LEASE:
		take32(v, len, false, &msg->lease_s, &msg->has_lease);
		break;
	case OPT_T1:
		take32(v, len, false, &msg->t1_s, &msg->has_t1);
		break;
	case OPT_T2:
		take32(v, len, false, &msg->t2_s, &msg->has_t2);
		break;
	default:
		break;
	}
}

/*
 * Walks one option area. Returns -1 when an option runs past the area, else
 * 0; *overload gets option 52's value when the area carries it.
 */
static int
walk_options(const uint8_t *area, size_t len, struct dhcp_msg *msg, uint8_t *overload)
{
	size_t pos = 0;

	while (pos < len) {
		uint8_t code = area[pos], optlen;

		if (code == OPT_PAD) {
			pos++;
			continue;
		}
		if (code == OPT_END)
			return 0;
		if (len - pos < 2 || area[pos + 1] > len - pos - 2)
			return or_error("option %u runs past the end of the message", code);
		optlen = area[pos + 1];
		if (code == OPT_OVERLOAD && optlen == 1 && overload != NULL)
			*overload = area[pos + 2];
		else
			take_option(msg, code, area + pos + 2, optlen);
		pos += 2 + (size_t)optlen;
	}
	return 0;
}

/*
 * Checks the fixed part, then walks options, file and sname (when
 * overloaded) in the order RFC 3396 gives.
 */
int
dhcp_msg_parse(const uint8_t *buf, size_t len, struct dhcp_msg *out)
{
	uint8_t overload = 0;

	memset(out, 0, sizeof(*out));
	if (len < OFF_OPTIONS)
		return or_error("message of %zu bytes is too short for DHCP", len);
	if (buf[0] != BOOTREPLY || buf[1] != 1 || buf[2] != 6)
		return or_error("not a BOOTREPLY for Ethernet");
	if (memcmp(buf + 236, magic_cookie, 4) != 0)
		return or_error("no DHCP magic cookie");
	out->xid = get32(buf + OFF_XID);
	out->yiaddr = get32(buf + OFF_YIADDR);
	memcpy(out->chaddr, buf + OFF_CHADDR, 6);
	if (walk_options(buf + OFF_OPTIONS, len - OFF_OPTIONS, out, &overload) == -1)
		return -1;
	if ((overload & 1) && walk_options(buf + OFF_FILE, 128, out, NULL) == -1)
		return or_error_prefix("in the file field");
	if ((overload & 2) && walk_options(buf + OFF_SNAME, 64, out, NULL) == -1)
		return or_error_prefix("in the sname field");
	if (out->type < DHCPDISCOVER || out->type > DHCPINFORM)
		return or_error("no valid DHCP message type");
	return 0;
}

/* RFC 1071 one's complement sum, continued from sum. */
static uint32_t
csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len % 2)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

/* Folds a sum to 16 bits and complements it. */
static uint16_t
csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xFFFF) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The UDP checksum over the pseudo-header and the UDP header + payload at udp. */
static uint16_t
udp_csum(uint32_t src, uint32_t dst, const uint8_t *udp, size_t udp_len)
{
	uint8_t pseudo[12];

	put32(pseudo, src);
	put32(pseudo + 4, dst);
	pseudo[8] = 0;
	pseudo[9] = 17;
	pseudo[10] = (uint8_t)(udp_len >> 8);
	pseudo[11] = (uint8_t)udp_len;
	return csum_fold(csum_add(csum_add(0, pseudo, sizeof(pseudo)), udp, udp_len));
}

/* A minimal IPv4 header (no options, TTL 64) and a UDP header with checksum. */
size_t
dhcp_frame_build(uint32_t src_ip, uint32_t dst_ip, const uint8_t *payload, size_t len, uint8_t *buf,
		 size_t cap)
{
	size_t total = 20 + 8 + len;
	uint16_t sum;

	if (total > cap || total > 0xFFFF)
		return 0;
	memset(buf, 0, 28);
	buf[0] = 0x45; /* IPv4, 20-byte header */
	buf[2] = (uint8_t)(total >> 8);
	buf[3] = (uint8_t)total;
	buf[8] = 64; /* TTL */
	buf[9] = 17; /* UDP */
	put32(buf + 12, src_ip);
	put32(buf + 16, dst_ip);
	sum = csum_fold(csum_add(0, buf, 20));
	buf[10] = (uint8_t)(sum >> 8);
	buf[11] = (uint8_t)sum;
	buf[20] = 0;
	buf[21] = DHCP_CLIENT_PORT;
	buf[23] = DHCP_SERVER_PORT;
	buf[24] = (uint8_t)((8 + len) >> 8);
	buf[25] = (uint8_t)(8 + len);
	memcpy(buf + 28, payload, len);
	sum = udp_csum(src_ip, dst_ip, buf + 20, 8 + len);
	if (sum == 0)
		sum = 0xFFFF; /* 0 means "no checksum" in UDP */
	buf[26] = (uint8_t)(sum >> 8);
	buf[27] = (uint8_t)sum;
	return total;
}

/* Checks IPv4 and UDP headers against len before any use. */
int
dhcp_frame_parse(const uint8_t *buf, size_t len, bool check_udp_sum, const uint8_t **payload,
		 size_t *payload_len, uint32_t *src_ip)
{
	size_t ihl, total, udp_len;

	if (len < 20 || (buf[0] >> 4) != 4)
		return or_error("not an IPv4 packet");
	ihl = (size_t)(buf[0] & 0x0F) * 4;
	total = (size_t)buf[2] << 8 | buf[3];
	if (ihl < 20 || total < ihl + 8 || total > len)
		return or_error("IPv4 header lengths do not fit the packet");
	if (csum_fold(csum_add(0, buf, ihl)) != 0)
		return or_error("bad IPv4 header checksum");
	if (buf[9] != 17)
		return or_error("not UDP");
	if ((buf[6] & 0x3F) != 0 || buf[7] != 0)
		return or_error("IPv4 fragment");
	udp_len = (size_t)buf[ihl + 4] << 8 | buf[ihl + 5];
	if (((size_t)buf[ihl + 2] << 8 | buf[ihl + 3]) != DHCP_CLIENT_PORT)
		return or_error("not for the DHCP client port");
	if (udp_len < 8 || udp_len > total - ihl)
		return or_error("UDP length does not fit the packet");
	if (check_udp_sum && (buf[ihl + 6] | buf[ihl + 7]) != 0 &&
	    udp_csum(get32(buf + 12), get32(buf + 16), buf + ihl, udp_len) != 0)
		return or_error("bad UDP checksum");
	*payload = buf + ihl + 8;
	*payload_len = udp_len - 8;
	*src_ip = get32(buf + 12);
	return 0;
}
