/*
 * Unit tests for lib/log.c: level filtering, line format, level parsing,
 * floods folded into a count.
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

static void
log_flood(void)
{
	for (int i = 0; i < 500; i++)
		log_warn("accept failed: Too many open files");
	log_info("a different line");
	log_info("a different line, again");
}

/* Counts the lines of text that contain needle. */
static int
lines_with(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void
folds_a_flood_into_one_line_and_a_count(void **state)
{
	char out[4096];

	(void)state;
	log_init("test-log", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	capture_stderr(log_flood, out, sizeof(out));
	assert_int_equal(lines_with(out, "Too many open files"), 1);
	/* the count comes before the next different line, at the flood's level */
	assert_non_null(strstr(out, "test-log[warn]: last message repeated 499 times\n"));
	assert_true(strstr(out, "repeated 499") < strstr(out, "a different line\n"));
	/* lines that differ are all written */
	assert_int_equal(lines_with(out, "a different line"), 2);
	assert_int_equal(lines_with(out, "\n"), 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(filters_by_level),
		cmocka_unit_test(parses_levels),
		cmocka_unit_test(folds_a_flood_into_one_line_and_a_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
