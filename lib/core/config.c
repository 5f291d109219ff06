/*
 * A small INI-style parser. It trusts nothing in the file: every line is
 * checked, lengths are bounded, and the first error stops the load.
 *
 * Keys are spelled with hyphens in every program (docs/cli.md). The older
 * spelling with underscores (`state_dir`) still means the same key, with a
 * deprecation warning naming FILE:LINE, so that no configuration written
 * for an earlier release stops a daemon.
 */
#include "core/config.h"

#include "core/error.h"
#include "core/file.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (1024 * 1024)

/* Strips leading and trailing white space in place. */
static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* A section or key name: letters, digits, '-', '_' and '.'. */
static int
valid_name(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return 0;
	return 1;
}

/* Whether two key names are the same key: '_' and '-' are one character. */
static bool
same_key(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++)
		if (*a != *b && !((*a == '_' || *a == '-') && (*b == '_' || *b == '-')))
			return false;
	return *a == *b;
}

/* Appends one key = value with its section and line. */
static int
add_entry(struct config *cfg, const char *section, const char *key, const char *value, int line)
{
	struct config_entry *grown, *e;

	grown = realloc(cfg->entries, (cfg->count + 1) * sizeof(*grown));
	if (grown == NULL)
		return or_error("out of memory");
	cfg->entries = grown;
	e = &cfg->entries[cfg->count];
	memset(e, 0, sizeof(*e));
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value);
	e->line = line;
	cfg->count++;
	if (e->section == NULL || e->key == NULL || e->value == NULL)
		return or_error("out of memory");
	return 0;
}

/* Remembers a section header and its line, repeats included. */
static int
add_section(struct config *cfg, const char *name, int line)
{
	char **names = realloc(cfg->sections, (cfg->section_count + 1) * sizeof(*names));
	int *lines;

	if (names == NULL)
		return or_error("out of memory");
	cfg->sections = names;
	lines = realloc(cfg->section_lines, (cfg->section_count + 1) * sizeof(*lines));
	if (lines == NULL)
		return or_error("out of memory");
	cfg->section_lines = lines;
	cfg->sections[cfg->section_count] = strdup(name);
	cfg->section_lines[cfg->section_count] = line;
	cfg->section_count++;
	return cfg->sections[cfg->section_count - 1] ? 0 : or_error("out of memory");
}

/* Parses one "[name]" or "[name arg]" header into section; normalises inner spaces. */
static int
parse_header(const char *path, int lineno, char *line, char *section, size_t cap)
{
	char *close = strchr(line, ']'), *name, *arg;

	if (close == NULL || *trim(close + 1) != '\0')
		return or_error("%s:%d: section header must look like [name] or [name argument]",
				path, lineno);
	*close = '\0';
	name = trim(line + 1);
	arg = name;
	while (*arg && !isspace((unsigned char)*arg))
		arg++;
	if (*arg) {
		*arg++ = '\0';
		arg = trim(arg);
	}
	if (!valid_name(name) || (*arg && !valid_name(arg)))
		return or_error("%s:%d: bad section name (letters, digits, '-', '_', '.')", path,
				lineno);
	if ((size_t)snprintf(section, cap, "%s%s%s", name, *arg ? " " : "", arg) >= cap)
		return or_error("%s:%d: section name too long", path, lineno);
	return 0;
}

/*
 * Parses untrusted text line by line; the first bad line stops it with
 * FILE:LINE and nothing is kept.
 */
int
config_parse(const char *path, const char *text, struct config *cfg)
{
	char section[256] = "", *copy = NULL, *cursor, *line;
	int lineno = 0, rc = -1;

	memset(cfg, 0, sizeof(*cfg));
	cfg->path = strdup(path);
	copy = strdup(text);
	if (cfg->path == NULL || copy == NULL) {
		or_error("out of memory");
		goto out;
	}
	for (cursor = copy; cursor != NULL;) {
		char *eq, *key, *value;

		line = cursor;
		cursor = strchr(cursor, '\n');
		if (cursor != NULL)
			*cursor++ = '\0';
		lineno++;
		line = trim(line);
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			if (parse_header(path, lineno, line, section, sizeof(section)) == -1 ||
			    add_section(cfg, section, lineno) == -1)
				goto out;
			continue;
		}
		eq = strchr(line, '=');
		if (eq == NULL) {
			or_error("%s:%d: expected 'key = value', found '%.40s'", path, lineno,
				 line);
			goto out;
		}
		*eq = '\0';
		key = trim(line);
		value = trim(eq + 1);
		if (!valid_name(key)) {
			or_error("%s:%d: bad key name '%.40s'", path, lineno, key);
			goto out;
		}
		if (strchr(key, '_') != NULL) {
			char old[64];

			snprintf(old, sizeof(old), "%s", key);
			for (char *p = key; *p != '\0'; p++)
				if (*p == '_')
					*p = '-';
			log_warn("%s:%d: '%s' is deprecated: write '%s'", path, lineno, old, key);
		}
		if (add_entry(cfg, section, key, value, lineno) == -1)
			goto out;
	}
	rc = 0;
out:
	free(copy);
	if (rc == -1)
		config_free(cfg);
	return rc;
}

/* Reads a text file of at most CONFIG_MAX_BYTES (no NUL byte) and parses it. */
int
config_load(const char *path, struct config *cfg)
{
	uint8_t *text = NULL;
	size_t len;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (file_read_all(path, CONFIG_MAX_BYTES, &text, &len) == -1)
		return -1;
	if (memchr(text, '\0', len) != NULL) {
		free(text);
		return or_error("%s: contains a NUL byte; not a text file", path);
	}
	rc = config_parse(path, (const char *)text, cfg);
	free(text);
	return rc;
}

/* Frees everything config_parse made. */
void
config_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->count; i++) {
		free(cfg->entries[i].section);
		free(cfg->entries[i].key);
		free(cfg->entries[i].value);
	}
	for (size_t i = 0; i < cfg->section_count; i++)
		free(cfg->sections[i]);
	free(cfg->entries);
	free(cfg->sections);
	free(cfg->section_lines);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

/* The last entry of section/key (a later value wins), marking every one used. */
static struct config_entry *
find_last(struct config *cfg, const char *section, const char *key)
{
	struct config_entry *found = NULL;

	for (size_t i = 0; i < cfg->count; i++) {
		struct config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, section) == 0 && same_key(e->key, key)) {
			e->used = true;
			found = e;
		}
	}
	return found;
}

/* The value of section/key, or NULL. */
const char *
config_get(struct config *cfg, const char *section, const char *key)
{
	struct config_entry *e = find_last(cfg, section, key);

	return e ? e->value : NULL;
}

/* The line of the value config_get() gives; 0 when absent. Marks nothing used. */
int
config_line(const struct config *cfg, const char *section, const char *key)
{
	int line = 0;

	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, section) == 0 && same_key(e->key, key))
			line = e->line;
	}
	return line;
}

/* Prefixes the error with FILE:LINE of section/key, or of its section's header. */
int
config_error_at(const struct config *cfg, const char *section, const char *key)
{
	int line = config_line(cfg, section, key);

	for (size_t i = 0; line == 0 && i < cfg->section_count; i++)
		if (strcmp(cfg->sections[i], section) == 0)
			line = cfg->section_lines[i];
	if (line == 0)
		return or_error_prefix("%s", cfg->path);
	return or_error_prefix("%s:%d", cfg->path, line);
}

/* Calls fn with every value of a repeated key and its FILE:LINE. */
int
config_each(struct config *cfg, const char *section, const char *key,
	    int (*fn)(void *arg, const char *value, const char *where), void *arg)
{
	char where[300];

	for (size_t i = 0; i < cfg->count; i++) {
		struct config_entry *e = &cfg->entries[i];
		if (strcmp(e->section, section) != 0 || !same_key(e->key, key))
			continue;
		e->used = true;
		snprintf(where, sizeof(where), "%s:%d", cfg->path, e->line);
		if (fn(arg, e->value, where) == -1)
			return -1;
	}
	return 0;
}

/* A non-empty string value, or def when absent. */
int
config_get_string(struct config *cfg, const char *section, const char *key, const char *def,
		  const char **out)
{
	struct config_entry *e = find_last(cfg, section, key);

	*out = e ? e->value : def;
	if (e != NULL && e->value[0] == '\0')
		return or_error("%s:%d: %s is empty", cfg->path, e->line, key);
	return 0;
}

/* A decimal value within [min, max] (no sign, no junk), or def when absent. */
int
config_get_uint(struct config *cfg, const char *section, const char *key, unsigned long def,
		unsigned long min, unsigned long max, unsigned long *out)
{
	struct config_entry *e = find_last(cfg, section, key);
	unsigned long v;
	char *end;

	*out = def;
	if (e == NULL)
		return 0;
	errno = 0;
	v = strtoul(e->value, &end, 10);
	if (!isdigit((unsigned char)e->value[0]) || *end != '\0' || errno != 0 || v < min ||
	    v > max)
		return or_error("%s:%d: %s must be a whole number from %lu to %lu, not '%.40s'",
				cfg->path, e->line, key, min, max, e->value);
	*out = v;
	return 0;
}

/* true/yes or false/no, or def when absent. */
int
config_get_bool(struct config *cfg, const char *section, const char *key, bool def, bool *out)
{
	struct config_entry *e = find_last(cfg, section, key);

	*out = def;
	if (e == NULL)
		return 0;
	if (strcmp(e->value, "true") == 0 || strcmp(e->value, "yes") == 0)
		*out = true;
	else if (strcmp(e->value, "false") == 0 || strcmp(e->value, "no") == 0)
		*out = false;
	else
		return or_error("%s:%d: %s must be true or false, not '%.40s'", cfg->path, e->line,
				key, e->value);
	return 0;
}

/* Refuses the first key no getter asked for, so a typo is never ignored. */
int
config_check_unused(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->count; i++) {
		const struct config_entry *e = &cfg->entries[i];
		if (!e->used)
			return or_error("%s:%d: unknown setting '%s'%s%s%s", cfg->path, e->line,
					e->key, e->section[0] ? " in [" : "", e->section,
					e->section[0] ? "]" : "");
	}
	return 0;
}
