/*
 * The bench programs' one clock: seconds on the monotonic clock, for rates
 * and latencies (never the wall clock, which may step).
 */
#ifndef ONRAMP_BENCH_CLOCK_H
#define ONRAMP_BENCH_CLOCK_H

#include <time.h>

/* Seconds since an arbitrary start, monotonic. */
static inline double
bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
