/*
 * Log lines to stderr (with a UTC timestamp, for daemons run in the
 * foreground and for tests) or to syslog (for routers and services). When
 * stderr is systemd's journal stream (JOURNAL_STREAM names its device and
 * inode), a line carries a "<N>" syslog priority prefix instead, which
 * journald reads, and no timestamp of ours: the journal has its own.
 */
#include "core/log.h"

#include "core/error.h"

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

/* Writes one line at level; callers pass identifiers, never secrets (see log.h). */
void
log_msg(enum log_level level, const char *fmt, ...)
{
	static const int syslog_priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[2048], stamp[32];
	struct tm tm;
	time_t now;
	va_list ap;

	if (level > log_threshold)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	if (log_to == LOG_TARGET_SYSLOG) {
		syslog(syslog_priority[level], "%s", line);
		return;
	}
	if (log_journal) {
		fprintf(stderr, "<%d>%s\n", syslog_priority[level], line);
		return;
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s %s[%s]: %s\n", stamp, log_progname, level_names[level], line);
}
