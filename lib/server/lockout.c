/*
 * The lockout schedule. Failure counts come from the database and may be
 * anything: the doubling stops at the cap, so no count overflows it.
 */
#include "server/lockout.h"

/* See lockout.h. */
unsigned long
lockout_seconds(const struct lockout_policy *p, unsigned long failures)
{
	unsigned long s = p->base_s;

	if (failures < p->threshold)
		return 0;
	for (unsigned long n = failures - p->threshold; n > 0 && s < p->max_s; n--)
		s = s > p->max_s / 2 ? p->max_s : s * 2;
	return s < p->max_s ? s : p->max_s;
}
