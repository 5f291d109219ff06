/*
 * Small helpers the conductor's handlers share: time and number text,
 * random tokens, input checks.
 */
#include "conductor.h"

#include "core/encoding.h"
#include "core/error.h"
#include "proto/conductor_psk.h"
#include "proto/peering_config.h"
#include "server/daemon.h"
#include "server/http_server.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decimal text of v, for a store parameter. */
void
fmt_i64(long long v, char out[24])
{
	snprintf(out, 24, "%lld", v);
}

/* The integer of a store value; 0 for NULL or anything that is not a whole integer. */
long long
parse_i64(const char *text)
{
	char *end;
	long long v;

	if (text == NULL)
		return 0;
	v = strtoll(text, &end, 10);
	return *end == '\0' ? v : 0;
}

/* bytes random bytes as hex: nonces, tokens. Trusts OpenSSL's generator only. */
int
random_hex(size_t bytes, char *out)
{
	unsigned char buf[64];

	if (bytes > sizeof(buf) || RAND_bytes(buf, (int)bytes) != 1)
		return or_error("no random bytes");
	hex_encode(buf, bytes, out);
	secure_zero(buf, sizeof(buf));
	return 0;
}

/* An asset ID is a subject that cannot be mistaken for a peer conductor's. */
bool
valid_asset_id(const char *asset_id)
{
	/* "peer:" subjects are for conductors; an asset ID never looks like one. */
	return conductor_valid_subject(asset_id) && strncmp(asset_id, "peer:", 5) != 0;
}

/* Checks a JSON array of host:port strings from a request; out points into it. */
int
parse_addresses(json_t *array, const char *what, const char **out, size_t max, size_t *n)
{
	json_t *a;
	size_t i;

	*n = 0;
	if (!json_is_array(array) || json_array_size(array) == 0 || json_array_size(array) > max)
		return or_error("%s: an array of 1 to %zu addresses (host:port)", what, max);
	json_array_foreach(array, i, a)
	{
		const char *text = json_string_value(a);

		if (text == NULL || strlen(text) > 261)
			return or_error("%s[%zu]: must be a string host:port", what, i);
		if (peering_check_address(text, what) == -1)
			return -1;
		if (strchr(text, ':') == NULL || text[strlen(text) - 1] == ']')
			return or_error("%s[%zu]: '%s' needs a port (host:port)", what, i, text);
		out[(*n)++] = text;
	}
	return 0;
}

/* The loop's worker; replies 503 when the loop has no database connection. */
struct worker *
worker_of(struct http_ctx *ctx)
{
	struct worker *w = http_ctx_thread_state(ctx);

	if (w == NULL || w->db == NULL) {
		http_reply_error(ctx, 503, "unavailable", "no database connection");
		return NULL;
	}
	return w;
}

/* GET /healthz for load balancers (docs/protocol-conductor.md): no authentication. */
void
handle_healthz(struct http_ctx *ctx, void *arg)
{
	struct worker *w = http_ctx_thread_state(ctx);

	(void)arg;
	daemon_reply_health(ctx, w != NULL ? w->db : NULL);
}
