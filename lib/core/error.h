/*
 * One error convention for all of libonramp.
 *
 * A function that can fail returns 0 on success and -1 on failure. Before it
 * returns -1 it records one human-readable sentence with or_error(), saying
 * what was wrong (never a secret). The caller either handles the failure or
 * adds its own context with or_error_prefix() and returns -1 in turn; the
 * program's top level prints or_errmsg() once.
 *
 * The message lives in thread-local storage, so threads never mix messages.
 */
#ifndef ONRAMP_ERROR_H
#define ONRAMP_ERROR_H

#include <stddef.h>

#define OR_ERRMSG_MAX 512

/* Records the message and returns -1, so that "return or_error(...)" reads well. */
int or_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Puts "context: " in front of the current message; returns -1. */
int or_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The current message, or "no error" when none was recorded. */
const char *or_errmsg(void);

/* Forgets the current message. */
void or_error_clear(void);

#endif
