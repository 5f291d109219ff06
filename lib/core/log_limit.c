/*
 * Rate-limited log lines: a fixed window per kind, counted under a mutex.
 * The format and arguments are the caller's (identifiers only, as for every
 * log line: see log.h).
 */
#include "core/log_limit.h"

#include <stdarg.h>
#include <stdio.h>

/* See log_limit.h. */
void
log_limited(struct log_limit *lim, enum log_level level, const char *fmt, ...)
{
	time_t now = time(NULL);
	unsigned missed = 0;
	bool write, announce = false;
	char line[1024];
	va_list ap;

	pthread_mutex_lock(&lim->lock);
	if (now - lim->period_start >= (time_t)lim->period_s) {
		missed = lim->suppressed;
		lim->period_start = now;
		lim->written = lim->suppressed = 0;
	}
	write = lim->written < lim->burst;
	if (write) {
		lim->written++;
	} else {
		announce = lim->suppressed == 0;
		lim->suppressed++;
	}
	pthread_mutex_unlock(&lim->lock);

	if (missed > 0)
		log_msg(level, "%u more %s were not logged in the last period", missed, lim->what);
	if (announce)
		log_msg(level, "more than %u %s in %u s: the rest are counted, not logged",
			lim->burst, lim->what, lim->period_s);
	if (!write)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_msg(level, "%s", line);
}
