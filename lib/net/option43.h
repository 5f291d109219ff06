/*
 * DHCP option 43 (vendor-specific information) as the management proxy's
 * discovery uses it: TLV sub-options, where sub-option 128 carries one proxy
 * as ASCII "a.b.c.d:port". Several 128s may come, in any order among other
 * sub-options, with pad (0x00) bytes between them and an end (0xFF) byte.
 *
 * The parser trusts nothing in the bytes: it never reads past len, drops every
 * bad candidate with a reason and keeps the good ones.
 */
#ifndef ONRAMP_OPTION43_H
#define ONRAMP_OPTION43_H

#include "net/proxy_addr.h"

#include <stddef.h>
#include <stdint.h>

#define OPTION43_PROXY_SUBOPTION 128
#define OPTION43_MAX_PROXIES 16

struct option43_proxies {
	struct proxy_addr proxy[OPTION43_MAX_PROXIES];
	size_t count;
};

/*
 * Told about every part of the option that was dropped: the entry, such as
 * "sub-option 128 \"10.0.0.1:0\"" (non-printable bytes escaped, at most 64
 * shown), "sub-option 128" when its TLV is cut short, or "after the end
 * byte", and the reason, such as "port 0". The caller logs (and the agent
 * shows) them with the interface's name.
 */
typedef void (*option43_drop_fn)(void *arg, const char *entry, const char *reason);

/* Parses len bytes of option 43 into out (emptied first); drop may be NULL. */
void option43_parse(const uint8_t *data, size_t len, struct option43_proxies *out,
		    option43_drop_fn drop, void *arg);

#endif
