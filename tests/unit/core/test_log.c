/*
 * Unit tests for lib/log.c: level filtering, line format, level parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Runs fn with stderr sent to a buffer; returns what was written. */
static void
capture_stderr(void (*fn)(void), char *out, size_t cap)
{
	int saved = dup(STDERR_FILENO), fds[2];
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	fflush(stderr);
	dup2(fds[1], STDERR_FILENO);
	close(fds[1]);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = read(fds[0], out, cap - 1);
	close(fds[0]);
	out[n > 0 ? n : 0] = '\0';
}

static void
log_some(void)
{
	log_debug("debug line");
	log_info("info line %d", 42);
	log_warn("warn line");
	log_error("error line");
}

static void
filters_by_level(void **state)
{
	char out[2048];

	(void)state;
	log_init("test-log", LOG_TARGET_STDERR, LOG_LEVEL_WARN);
	capture_stderr(log_some, out, sizeof(out));
	assert_null(strstr(out, "debug line"));
	assert_null(strstr(out, "info line"));
	assert_non_null(strstr(out, "test-log[warn]: warn line\n"));
	assert_non_null(strstr(out, "test-log[error]: error line\n"));

	log_init("test-log", LOG_TARGET_STDERR, LOG_LEVEL_DEBUG);
	capture_stderr(log_some, out, sizeof(out));
	assert_non_null(strstr(out, "[debug]: debug line"));
	assert_non_null(strstr(out, "[info]: info line 42"));
	/* Each line starts with a UTC timestamp such as 2026-11-29T12:00:00Z. */
	assert_int_equal(out[4], '-');
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[19], 'Z');
}

static void
parses_levels(void **state)
{
	enum log_level level;

	(void)state;
	assert_int_equal(log_level_parse("debug", &level), 0);
	assert_int_equal(level, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("error", &level), 0);
	assert_int_equal(level, LOG_LEVEL_ERROR);
	assert_int_equal(log_level_parse("verbose", &level), -1);
	assert_non_null(strstr(or_errmsg(), "unknown log level 'verbose'"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(filters_by_level),
		cmocka_unit_test(parses_levels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
