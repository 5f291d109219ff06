/*
 * Rate-limited log lines, for what outsiders can cause at will (a phone-home
 * of a serial nobody claimed, a refused claim): at most `burst` lines of a
 * kind in each `period` seconds; past that one line says the rest are not
 * logged, and the first line of the next period says how many were not.
 * Safe from several threads.
 */
#ifndef ONRAMP_CORE_LOG_LIMIT_H
#define ONRAMP_CORE_LOG_LIMIT_H

#include "core/log.h"

#include <pthread.h>
#include <time.h>

struct log_limit {
	const char *what; /* "phone-homes of unclaimed serials", for the summary lines */
	unsigned burst;
	unsigned period_s;
	/* state */
	pthread_mutex_t lock;
	time_t period_start;
	unsigned written, suppressed;
};

#define LOG_LIMIT_INIT(what, burst, period_s)                                                      \
	{                                                                                          \
		(what), (burst), (period_s), PTHREAD_MUTEX_INITIALIZER, 0, 0, 0                    \
	}

/* Writes the line at level unless this kind's limit is reached (see above). */
void log_limited(struct log_limit *lim, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
