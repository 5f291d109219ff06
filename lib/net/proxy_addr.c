/*
 * Strict "a.b.c.d:port" parsing. The text may come from a DHCP server, so it
 * is read byte by byte within len and never assumed to be NUL-terminated or
 * printable.
 */
#include "net/proxy_addr.h"

#include "core/error.h"

#include <stdio.h>

/*
 * Reads a decimal number of at most max_digits digits, no leading zero, from
 * text[*pos..len). Returns -1 when there is no digit, a leading zero or too many.
 */
static int
read_decimal(const char *text, size_t len, size_t *pos, unsigned max_digits, unsigned long *out)
{
	size_t start = *pos;
	unsigned long v = 0;

	while (*pos < len && text[*pos] >= '0' && text[*pos] <= '9') {
		if (*pos - start == max_digits)
			return -1;
		v = v * 10 + (unsigned long)(text[*pos] - '0');
		(*pos)++;
	}
	if (*pos == start || (text[start] == '0' && *pos - start > 1))
		return -1;
	*out = v;
	return 0;
}

/* Reads four octets, a colon and a port, all within len. */
int
proxy_addr_parse(const char *text, size_t len, struct proxy_addr *out)
{
	unsigned long octet, port;
	uint32_t ip = 0;
	size_t pos = 0;

	if (len == 0)
		return or_error("empty");
	for (int i = 0; i < 4; i++) {
		if (read_decimal(text, len, &pos, 3, &octet) == -1 || octet > 255)
			return or_error("not an IPv4 address");
		ip = ip << 8 | (uint32_t)octet;
		if (i < 3) {
			if (pos == len || text[pos] != '.')
				return or_error("not an IPv4 address");
			pos++;
		}
	}
	if (pos == len || (pos == len - 1 && text[pos] == ':'))
		return or_error("missing port");
	if (text[pos] != ':')
		return or_error("not an IPv4 address");
	pos++;
	if (read_decimal(text, len, &pos, 9, &port) == -1 || pos != len)
		return or_error("port is not a decimal number");
	if (port == 0)
		return or_error("port 0");
	if (port > 65535)
		return or_error("port %lu is larger than 65535", port);
	if ((ip >> 24) == 0)
		return or_error("address in 0.0.0.0/8");
	if ((ip >> 28) >= 0xE)
		return or_error("multicast, reserved or broadcast address");
	out->ip = ip;
	out->port = (uint16_t)port;
	return 0;
}

/* Prints the address as it is parsed. */
void
proxy_addr_format(const struct proxy_addr *addr, char out[PROXY_ADDR_STRLEN])
{
	snprintf(out, PROXY_ADDR_STRLEN, "%u.%u.%u.%u:%u", addr->ip >> 24, (addr->ip >> 16) & 0xFF,
		 (addr->ip >> 8) & 0xFF, addr->ip & 0xFF, addr->port);
}

/* Numeric order: address, then port. */
int
proxy_addr_cmp(const struct proxy_addr *a, const struct proxy_addr *b)
{
	if (a->ip != b->ip)
		return a->ip < b->ip ? -1 : 1;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	return 0;
}

/* True for 127.0.0.0/8. */
int
proxy_addr_is_loopback(const struct proxy_addr *addr)
{
	return (addr->ip >> 24) == 127;
}
