/*
 * Token buckets per source address and for the whole daemon (see
 * rate_limit.h). Tokens are counted in thousandths, so a rate of r requests
 * per second refills r thousandths per millisecond with integers only.
 * Trusts: the peer address the server saw; nothing from the request itself.
 */
#include "server/rate_limit.h"

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "server/http_server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 4096
#define SOURCE_MAX 64 /* an IPv6 address in text fits */
#define MILLI 1000

struct bucket {
	uint64_t tokens; /* thousandths of a request */
	uint64_t last_ms;
};

struct slot {
	char source[SOURCE_MAX];
	struct bucket b;
};

struct rate_limiter {
	struct rate_limit_policy p;
	pthread_mutex_t lock;
	struct bucket global;
	struct slot slots[SLOTS];
};

/* See rate_limit.h. */
int
rate_limit_config(struct config *cfg, const char *section, struct rate_limit_policy *p)
{
	if (config_get_uint(cfg, section, "source-rate", RATE_LIMIT_SOURCE_RATE, 0, 1000000,
			    &p->source_rate) == -1 ||
	    config_get_uint(cfg, section, "source-burst", RATE_LIMIT_SOURCE_BURST, 1, 1000000,
			    &p->source_burst) == -1 ||
	    config_get_uint(cfg, section, "global-rate", RATE_LIMIT_GLOBAL_RATE, 0, 10000000,
			    &p->global_rate) == -1 ||
	    config_get_uint(cfg, section, "global-burst", RATE_LIMIT_GLOBAL_BURST, 1, 10000000,
			    &p->global_burst) == -1)
		return -1;
	return 0;
}

/* See rate_limit.h: every bucket starts full. */
int
rate_limiter_new(const struct rate_limit_policy *p, struct rate_limiter **out)
{
	struct rate_limiter *rl = calloc(1, sizeof(*rl));

	*out = NULL;
	if (rl == NULL)
		return or_error("out of memory");
	if (pthread_mutex_init(&rl->lock, NULL) != 0) {
		free(rl);
		return or_error("cannot make a mutex");
	}
	rl->p = *p;
	rl->global.tokens = (uint64_t)p->global_burst * MILLI;
	*out = rl;
	return 0;
}

/* See rate_limit.h. */
void
rate_limiter_free(struct rate_limiter *rl)
{
	if (rl == NULL)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

/*
 * Refills b for the time since its last use and takes one request; 0 when it
 * had one, else the milliseconds until it will. rate 0 never limits.
 */
static uint64_t
take(struct bucket *b, unsigned long rate, unsigned long burst, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)burst * MILLI;

	if (rate == 0)
		return 0;
	if (now_ms > b->last_ms) {
		uint64_t gain = (now_ms - b->last_ms) * rate;
		b->tokens = gain >= cap - b->tokens ? cap : b->tokens + gain;
	}
	b->last_ms = now_ms > b->last_ms ? now_ms : b->last_ms;
	if (b->tokens >= MILLI) {
		b->tokens -= MILLI;
		return 0;
	}
	return (MILLI - b->tokens + rate - 1) / rate;
}

/* FNV-1a of the address: which slot it uses. */
static size_t
slot_of(const char *source)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *c = (const unsigned char *)source; *c; c++)
		h = (h ^ *c) * 16777619u;
	return h % SLOTS;
}

/* See rate_limit.h: the source's bucket first, so a flooding source never drains the rest. */
int
rate_limit_take(struct rate_limiter *rl, const char *source, uint64_t now_ms,
		unsigned long *retry_after_s)
{
	struct slot *s = &rl->slots[slot_of(source)];
	uint64_t wait_ms;

	pthread_mutex_lock(&rl->lock);
	if (strncmp(s->source, source, sizeof(s->source)) != 0) {
		/* A new source, or another one's slot: it starts with a full bucket. */
		snprintf(s->source, sizeof(s->source), "%s", source);
		s->b.tokens = (uint64_t)rl->p.source_burst * MILLI;
		s->b.last_ms = now_ms;
	}
	wait_ms = take(&s->b, rl->p.source_rate, rl->p.source_burst, now_ms);
	if (wait_ms == 0)
		wait_ms = take(&rl->global, rl->p.global_rate, rl->p.global_burst, now_ms);
	pthread_mutex_unlock(&rl->lock);
	if (wait_ms == 0)
		return 0;
	*retry_after_s = (unsigned long)((wait_ms + 999) / 1000);
	return 1;
}

/* "ip:port" or "[ip]:port" (http_ctx_peer) to the address alone. */
static void
peer_address(const char *peer, char *out, size_t cap)
{
	const char *end;

	if (peer[0] == '[' && (end = strchr(peer, ']')) != NULL) {
		snprintf(out, cap, "%.*s", (int)(end - peer - 1), peer + 1);
		return;
	}
	end = strrchr(peer, ':');
	snprintf(out, cap, "%.*s", end != NULL ? (int)(end - peer) : (int)strlen(peer), peer);
}

/* See rate_limit.h. */
int
rate_limit_request(struct http_ctx *ctx, struct rate_limiter *rl)
{
	char source[SOURCE_MAX], retry[24];
	unsigned long retry_after = 0;
	struct timespec ts;

	if (rl == NULL)
		return 0;
	peer_address(http_ctx_peer(ctx), source, sizeof(source));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (rate_limit_take(rl, source, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
			    &retry_after) == 0)
		return 0;
	log_debug("request from %s rate-limited (retry after %lu s)", source, retry_after);
	snprintf(retry, sizeof(retry), "%lu", retry_after);
	http_reply_header(ctx, "Retry-After", retry);
	http_reply_error(ctx, 429, "rate-limited", "too many requests; try again in %lu s",
			 retry_after);
	return -1;
}
