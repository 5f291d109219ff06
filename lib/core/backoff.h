/*
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential
 * Backoff And Jitter"): the n-th wait is uniform in [0, min(cap, base * 2^n)],
 * never below BACKOFF_MIN_MS so that no caller can spin, and never shorter
 * than a server's Retry-After (itself capped at BACKOFF_RETRY_AFTER_MAX_S).
 */
#ifndef ONRAMP_BACKOFF_H
#define ONRAMP_BACKOFF_H

#include <stdint.h>

struct backoff {
	unsigned base_ms; /* 0: BACKOFF_DEFAULT_BASE_MS */
	unsigned cap_ms;  /* 0: BACKOFF_DEFAULT_CAP_MS */
	unsigned attempt; /* waits handed out since the last reset */
};

#define BACKOFF_MIN_MS 100u
#define BACKOFF_DEFAULT_BASE_MS 1000u
#define BACKOFF_DEFAULT_CAP_MS 300000u	/* 5 minutes */
#define BACKOFF_RETRY_AFTER_MAX_S 3600L /* a server may make us wait at most an hour */

/* The next wait in milliseconds; counts one attempt. retry_after_s: -1 none. */
unsigned backoff_next_ms(struct backoff *, long retry_after_s);

/* Back to the first attempt, e.g. after a success. */
void backoff_reset(struct backoff *);

/* The ceiling of the current attempt: min(cap, base * 2^attempt), at least BACKOFF_MIN_MS. */
unsigned backoff_ceiling_ms(const struct backoff *);

/* backoff_next_ms without the randomness or the count: random is any 64-bit value. */
unsigned backoff_delay_ms(const struct backoff *, long retry_after_s, uint64_t random);

#endif
