/*
 * Rate limits on unauthenticated endpoints, to protect CPU and the database
 * from a flood: a token bucket per source address and one for the whole
 * daemon. A source over its limit gets 429 rate-limited with Retry-After;
 * the other sources go on. Limits never decide who a device is: they only
 * slow down whoever sends too much, so they cannot lock a genuine device out
 * for longer than a flood lasts.
 *
 * The per-source table has a fixed number of slots (direct-mapped by a hash
 * of the address): a source whose slot is taken by another starts afresh, so
 * memory is bounded whatever the number of sources. Thread-safe: every event
 * loop of a daemon shares one limiter.
 */
#ifndef ONRAMP_RATE_LIMIT_H
#define ONRAMP_RATE_LIMIT_H

#include <stdint.h>

struct config;
struct http_ctx;
struct rate_limiter;

struct rate_limit_policy {
	unsigned long source_rate;  /* requests per second one source may sustain; 0: no limit */
	unsigned long source_burst; /* requests one source may send at once */
	unsigned long global_rate;  /* requests per second for all sources together; 0: no limit */
	unsigned long global_burst;
};

/* Defaults (docs/architecture.md, the daemons' man pages). */
#define RATE_LIMIT_SOURCE_RATE 50
#define RATE_LIMIT_SOURCE_BURST 200
#define RATE_LIMIT_GLOBAL_RATE 500
#define RATE_LIMIT_GLOBAL_BURST 2000

/*
 * Reads source-rate, source-burst, global-rate and global-burst of section
 * into *p, with the defaults above; -1 with the key named on a bad value.
 */
int rate_limit_config(struct config *cfg, const char *section, struct rate_limit_policy *p);

int rate_limiter_new(const struct rate_limit_policy *p, struct rate_limiter **out);
void rate_limiter_free(struct rate_limiter *);

/*
 * One request from source (an address, no port) at now_ms (a monotonic
 * clock, milliseconds): 0 when it may go on, else 1 with *retry_after_s (at
 * least 1) the seconds until it may.
 */
int rate_limit_take(struct rate_limiter *, const char *source, uint64_t now_ms,
		    unsigned long *retry_after_s);

/*
 * rate_limit_take for this request's peer address, now: 0 when it may go on;
 * -1 after replying 429 rate-limited with Retry-After. A NULL limiter limits
 * nothing.
 */
int rate_limit_request(struct http_ctx *ctx, struct rate_limiter *);

#endif
