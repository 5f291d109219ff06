/*
 * Exponential backoff with full jitter (see backoff.h). Trusts nothing: a
 * zero or inverted base and cap fall back to sane values, the doubling
 * cannot overflow, and a Retry-After of any size is capped.
 */
#include "core/backoff.h"

#include <openssl/rand.h>

/* base doubled once per attempt, capped; zero or inverted settings fall back to the defaults. */
unsigned
backoff_ceiling_ms(const struct backoff *b)
{
	uint64_t cap = b->cap_ms ? b->cap_ms : BACKOFF_DEFAULT_CAP_MS;
	uint64_t ceiling = b->base_ms ? b->base_ms : BACKOFF_DEFAULT_BASE_MS;

	if (cap < BACKOFF_MIN_MS)
		cap = BACKOFF_MIN_MS;
	for (unsigned i = 0; i < b->attempt && ceiling < cap; i++)
		ceiling *= 2;
	if (ceiling > cap)
		ceiling = cap;
	return ceiling < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : (unsigned)ceiling;
}

/*
 * Full jitter: random within [0, ceiling], at least BACKOFF_MIN_MS and at
 * least Retry-After (capped).
 */
unsigned
backoff_delay_ms(const struct backoff *b, long retry_after_s, uint64_t random)
{
	uint64_t ceiling = backoff_ceiling_ms(b), delay, floor;

	/* Modulo bias is below 2^-32 with a 64-bit random value and a 32-bit range. */
	delay = random % (ceiling + 1);
	if (delay < BACKOFF_MIN_MS)
		delay = BACKOFF_MIN_MS;
	if (retry_after_s >= 0) {
		floor = (uint64_t)(retry_after_s > BACKOFF_RETRY_AFTER_MAX_S
					   ? BACKOFF_RETRY_AFTER_MAX_S
					   : retry_after_s) *
			1000;
		if (delay < floor)
			delay = floor;
	}
	return (unsigned)delay;
}

/* The delay before the next attempt, from OpenSSL's generator; counts the attempt. */
unsigned
backoff_next_ms(struct backoff *b, long retry_after_s)
{
	uint64_t random;
	unsigned delay;

	/* Without randomness, wait the longest this attempt allows rather than spin. */
	if (RAND_bytes((unsigned char *)&random, sizeof(random)) != 1)
		random = backoff_ceiling_ms(b);
	delay = backoff_delay_ms(b, retry_after_s, random);
	if (b->attempt < 64)
		b->attempt++;
	return delay;
}

/* Starts over from the base delay (after a success). */
void
backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}
