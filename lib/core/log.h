/*
 * Logging for every onramp program: levels, to stderr or syslog.
 *
 * Secrets never reach a log: callers pass identifiers (serial, asset ID,
 * key names), never key material, pre-shared secrets or OCRA responses. The
 * secret type in secret.h has no formatting function on purpose.
 *
 * Floods are cut: a line equal to the one before it, less than a second after
 * it, is not written but counted; the count is written as "last message
 * repeated N times" before the next different line, and every 10 s while the
 * flood lasts. Safe from several threads.
 */
#ifndef ONRAMP_LOG_H
#define ONRAMP_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

enum log_target { LOG_TARGET_STDERR = 0, LOG_TARGET_SYSLOG };

/* Sets the program name, where lines go and the lowest level written. */
void log_init(const char *progname, enum log_target target, enum log_level level);

/* Parses "error", "warn", "info" or "debug"; returns -1 (with or_error) otherwise. */
int log_level_parse(const char *text, enum log_level *level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
