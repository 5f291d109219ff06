/*
 * Log lines to stderr (with a UTC timestamp, for daemons run in the
 * foreground and for tests) or to syslog (for routers and services). When
 * stderr is systemd's journal stream (JOURNAL_STREAM names its device and
 * inode), a line carries a "<N>" syslog priority prefix instead, which
 * journald reads, and no timestamp of ours: the journal has its own.
 * A line repeated in a flood is written once, then as a count (see log.h).
 */
#include "core/log.h"

#include "core/error.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "onramp";
static enum log_target log_to = LOG_TARGET_STDERR;
static enum log_level log_threshold = LOG_LEVEL_INFO;
static bool log_journal; /* stderr is the journal: "<N>" prefixes, no timestamp */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* A repeat closer than this to the previous one is part of a flood. */
#define REPEAT_GAP_S 1
/* During a flood, the count is written at most this often. */
#define REPEAT_REPORT_S 10

/* The last line written, and the repeats of it not written yet (under log_mu). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char line[2048];
	enum log_level level;
	time_t last_seen, reported_at;
	unsigned long pending;
} last;

/*
 * Whether stderr is the stream systemd connected to the journal: it sets
 * JOURNAL_STREAM to "DEVICE:INODE" of that stream. A stderr redirected
 * elsewhere by the service (a file, a pipe) no longer matches, and gets the
 * plain format.
 */
static bool
stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (env == NULL || sscanf(env, "%llu:%llu%c", &dev, &ino, &end) != 2 ||
	    fstat(STDERR_FILENO, &st) == -1)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* Sets where lines go and the lowest level written; opens syslog when asked. */
void
log_init(const char *progname, enum log_target target, enum log_level level)
{
	log_progname = progname;
	log_to = target;
	log_threshold = level;
	log_journal = target == LOG_TARGET_STDERR && stderr_is_journal();
	if (target == LOG_TARGET_SYSLOG)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

/* Parses a level name from configuration or the command line. */
int
log_level_parse(const char *text, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return or_error("unknown log level '%s' (expected error, warn, info or debug)", text);
}

/* Writes one formatted line where log_init said, stamped now. */
static void
emit(enum log_level level, const char *line, time_t now)
{
	static const int syslog_priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char stamp[32];
	struct tm tm;

	if (log_to == LOG_TARGET_SYSLOG) {
		syslog(syslog_priority[level], "%s", line);
		return;
	}
	if (log_journal) {
		fprintf(stderr, "<%d>%s\n", syslog_priority[level], line);
		return;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s %s[%s]: %s\n", stamp, log_progname, level_names[level], line);
}

/* Writes the count of repeats held back, if any (log_mu held). */
static void
flush_repeats(time_t now)
{
	char note[64];

	if (last.pending == 0)
		return;
	snprintf(note, sizeof(note), "last message repeated %lu times", last.pending);
	emit(last.level, note, now);
	last.pending = 0;
	last.reported_at = now;
}

/*
 * Writes one line at level; callers pass identifiers, never secrets (see
 * log.h). A line equal to the previous one and less than REPEAT_GAP_S after
 * it is held back and counted: a flood (a failing accept, say) costs one
 * line, then "last message repeated N times" when it ends or every
 * REPEAT_REPORT_S seconds while it lasts.
 */
void
log_msg(enum log_level level, const char *fmt, ...)
{
	char line[sizeof(last.line)];
	time_t now;
	va_list ap;

	if (level > log_threshold)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	now = time(NULL);
	pthread_mutex_lock(&log_mu);
	if (level == last.level && now - last.last_seen <= REPEAT_GAP_S &&
	    strcmp(line, last.line) == 0) {
		last.pending++;
		last.last_seen = now;
		if (now - last.reported_at >= REPEAT_REPORT_S)
			flush_repeats(now);
		pthread_mutex_unlock(&log_mu);
		return;
	}
	flush_repeats(now);
	emit(level, line, now);
	memcpy(last.line, line, sizeof(line));
	last.level = level;
	last.last_seen = last.reported_at = now;
	pthread_mutex_unlock(&log_mu);
}
