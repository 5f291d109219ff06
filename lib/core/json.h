/*
 * JSON through jansson, with the checks every caller needs: a size limit,
 * typed fields with bounds, and error messages that name the field.
 */
#ifndef ONRAMP_JSON_H
#define ONRAMP_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Parses text (len bytes, at most max) that must be one JSON object. */
int json_parse_object(const char *text, size_t len, size_t max, json_t **out);

/* Reads a file of at most max bytes holding one JSON object. */
int json_load_object_file(const char *path, size_t max, json_t **out);

/*
 * Field getters. A missing optional field leaves *out untouched and returns 0;
 * a missing required field, a wrong type or a value out of bounds returns -1
 * with a message naming the field.
 */
int json_get_string(json_t *obj, const char *key, bool required, size_t max_len, const char **out);
int json_get_int(json_t *obj, const char *key, bool required, json_int_t min, json_int_t max,
		 json_int_t *out);
int json_get_bool(json_t *obj, const char *key, bool required, bool *out);

/* Compact, key-sorted serialisation (malloc'd), or NULL when out of memory. */
char *json_dump_compact(const json_t *value);

/*
 * Writes doc (indented, key-sorted) to path with file_write_atomic and mode;
 * the text is zeroed before it is freed, as doc may hold a secret.
 */
int json_write_atomic(const char *path, const json_t *doc, unsigned mode);

#endif
