/*
 * The selection rule of proxy_select.h. It trusts the candidates it is given
 * to be valid proxy addresses; it reads only c[0..n).
 */
#include "net/proxy_select.h"

#include <stdlib.h>
#include <string.h>

/* qsort order: address, port, then source. */
static int
candidate_cmp(const void *a, const void *b)
{
	const struct proxy_candidate *x = a, *y = b;
	int rc = proxy_addr_cmp(&x->addr, &y->addr);

	return rc != 0 ? rc : strcmp(x->source, y->source);
}

/* Sorts in place. */
void
proxy_candidates_sort(struct proxy_candidate *c, size_t n)
{
	if (n > 1)
		qsort(c, n, sizeof(*c), candidate_cmp);
}

/* True when a is preferred over b: the lower address, then port, then source. */
static int
lower(const struct proxy_candidate *a, const struct proxy_candidate *b)
{
	return candidate_cmp(a, b) < 0;
}

/* One pass: the lowest overall and the lowest not known to be down. */
int
proxy_select(const struct proxy_candidate *c, size_t n)
{
	int lowest = -1, usable = -1;

	for (size_t i = 0; i < n; i++) {
		if (lowest == -1 || lower(&c[i], &c[lowest]))
			lowest = (int)i;
		if (c[i].health != PROXY_HEALTH_DOWN && (usable == -1 || lower(&c[i], &c[usable])))
			usable = (int)i;
	}
	return usable != -1 ? usable : lowest;
}
