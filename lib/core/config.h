/*
 * Configuration files: INI-like, one "key = value" a line, "[section]" or
 * "[section name]" headers, '#' comments. Every error names the file and the
 * line. Keys are looked up by section and key; a key that no one asked for is
 * reported by config_check_unused(), so a typo never passes silently.
 */
#ifndef ONRAMP_CONFIG_H
#define ONRAMP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct config_entry {
	char *section; /* "" before the first header */
	char *key;
	char *value;
	int line;
	bool used;
};

struct config {
	char *path;
	struct config_entry *entries;
	size_t count;
	char **sections; /* every header in file order, including repeats */
	int *section_lines;
	size_t section_count;
};

/* Reads and parses path; on a syntax error nothing is kept and the error says FILE:LINE. */
int config_load(const char *path, struct config *cfg);

/* Parses text as if it were the file named path (for tests and built-in defaults). */
int config_parse(const char *path, const char *text, struct config *cfg);

void config_free(struct config *cfg);

/* The value of the last section/key, or NULL. Marks the key used. */
const char *config_get(struct config *cfg, const char *section, const char *key);

/*
 * The line of the value config_get() gives for section/key, or 0 when the key
 * is absent, so that a caller's own check of a value can name FILE:LINE too.
 */
int config_line(const struct config *cfg, const char *section, const char *key);

/*
 * Puts "FILE:LINE: " before the current error message and returns -1, LINE
 * being that of section/key, or of the section's header when the key is
 * absent (just "FILE: " when the section is absent too): for a caller's own
 * check of a value, so that every configuration error names where it is.
 */
int config_error_at(const struct config *cfg, const char *section, const char *key);

/* Calls fn for every value of a repeated key, in file order; stops at the first -1. */
int config_each(struct config *cfg, const char *section, const char *key,
		int (*fn)(void *arg, const char *value, const char *where), void *arg);

/* Typed getters: absent keys give the default; bad values give FILE:LINE errors. */
int config_get_string(struct config *cfg, const char *section, const char *key, const char *def,
		      const char **out);
int config_get_uint(struct config *cfg, const char *section, const char *key, unsigned long def,
		    unsigned long min, unsigned long max, unsigned long *out);
int config_get_bool(struct config *cfg, const char *section, const char *key, bool def, bool *out);

/* Fails, naming FILE:LINE, on the first key that no getter asked for. */
int config_check_unused(const struct config *cfg);

#endif
