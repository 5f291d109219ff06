/*
 * Option 43 TLV walk. Each sub-option is checked against the bytes that
 * remain before it is read; one bad sub-option costs only itself, except a
 * length that runs past the end, after which nothing can be trusted.
 */
#include "net/option43.h"

#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

/* Copies up to 64 bytes of value into out (>= 4*64+4 bytes) with non-printables as \xNN. */
static void
escape(const uint8_t *value, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len && i < 64 && o + 5 < cap; i++) {
		if (value[i] >= 0x20 && value[i] < 0x7F && value[i] != '"' && value[i] != '\\')
			out[o++] = (char)value[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", value[i]);
	}
	if (len > 64 && o + 4 < cap)
		o += (size_t)snprintf(out + o, cap - o, "...");
	out[o] = '\0';
}

/* Tells the caller which entry was dropped and why. */
static void
dropped(option43_drop_fn drop, void *arg, const char *entry, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	if (drop == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	drop(arg, entry, reason);
}

/* Adds one sub-option 128 value to out, or says why not. */
static void
take_proxy(const uint8_t *value, size_t len, struct option43_proxies *out, option43_drop_fn drop,
	   void *arg)
{
	char shown[300], entry[sizeof(shown) + 20];
	struct proxy_addr addr;

	escape(value, len, shown, sizeof(shown));
	snprintf(entry, sizeof(entry), "sub-option 128 \"%s\"", shown);
	if (proxy_addr_parse((const char *)value, len, &addr) == -1) {
		dropped(drop, arg, entry, "%s", or_errmsg());
		return;
	}
	if (proxy_addr_is_loopback(&addr)) {
		dropped(drop, arg, entry, "a loopback address");
		return;
	}
	for (size_t i = 0; i < out->count; i++) {
		if (proxy_addr_cmp(&out->proxy[i], &addr) == 0) {
			dropped(drop, arg, entry, "given twice");
			return;
		}
	}
	if (out->count == OPTION43_MAX_PROXIES) {
		dropped(drop, arg, entry, "more than %d proxies", OPTION43_MAX_PROXIES);
		return;
	}
	out->proxy[out->count++] = addr;
}

/* Walks the TLVs; checks each length against what remains first. */
void
option43_parse(const uint8_t *data, size_t len, struct option43_proxies *out, option43_drop_fn drop,
	       void *arg)
{
	size_t pos = 0;
	char entry[24];

	out->count = 0;
	while (pos < len) {
		uint8_t code = data[pos], sublen;

		if (code == 0x00) {
			pos++;
			continue;
		}
		if (code == 0xFF) {
			for (size_t rest = pos + 1; rest < len; rest++) {
				if (data[rest] != 0x00) {
					dropped(drop, arg, "after the end byte",
						"%zu bytes of trailing junk", len - pos - 1);
					break;
				}
			}
			return;
		}
		snprintf(entry, sizeof(entry), "sub-option %u", code);
		if (len - pos < 2) {
			dropped(drop, arg, entry, "truncated: no length byte");
			return;
		}
		sublen = data[pos + 1];
		if (sublen > len - pos - 2) {
			dropped(drop, arg, entry, "truncated: length %u but only %zu bytes remain",
				sublen, len - pos - 2);
			return;
		}
		if (code == OPTION43_PROXY_SUBOPTION)
			take_proxy(data + pos + 2, sublen, out, drop, arg);
		pos += 2 + (size_t)sublen;
	}
}
