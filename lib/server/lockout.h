/*
 * Lockout of a device after failed authentications: from the threshold-th
 * consecutive failure on, base seconds doubled with each further failure,
 * capped. Pure: the count and the lockout live in the database of whoever
 * uses it, so every server instance applies the same policy to the same count.
 */
#ifndef ONRAMP_LOCKOUT_H
#define ONRAMP_LOCKOUT_H

struct lockout_policy {
	unsigned long threshold; /* failures before the first lockout (>= 1) */
	unsigned long base_s;	 /* first lockout, seconds */
	unsigned long max_s;	 /* longest lockout, seconds */
};

/* Seconds to lock out after the failures-th consecutive failure; 0 below the threshold. */
unsigned long lockout_seconds(const struct lockout_policy *p, unsigned long failures);

#endif
