/*
 * Thread-local error messages: see error.h for the convention.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errmsg[OR_ERRMSG_MAX];

/* Records the formatted sentence as this thread's error; trusts fmt to be ours. */
int
or_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	return -1;
}

/* Puts "context: " before the current message, cutting what does not fit. */
int
or_error_prefix(const char *fmt, ...)
{
	char prefix[OR_ERRMSG_MAX], combined[2 * OR_ERRMSG_MAX + 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	snprintf(combined, sizeof(combined), "%s: %s", prefix, errmsg[0] ? errmsg : "failed");
	/* An over-long message is cut, never overflowed. */
	memcpy(errmsg, combined, sizeof(errmsg) - 1);
	errmsg[sizeof(errmsg) - 1] = '\0';
	return -1;
}

/* The current message of this thread. */
const char *
or_errmsg(void)
{
	return errmsg[0] ? errmsg : "no error";
}

/* Forgets this thread's message. */
void
or_error_clear(void)
{
	errmsg[0] = '\0';
}
