/*
 * Thin checks around jansson. Nothing here trusts the text it is given.
 */
#include "core/json.h"

#include "core/error.h"
#include "core/file.h"
#include "core/secret.h"

#include <stdlib.h>
#include <string.h>

/*
 * Parses at most max bytes of untrusted text that must be one JSON object
 * (duplicate keys refused).
 */
int
json_parse_object(const char *text, size_t len, size_t max, json_t **out)
{
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	if (len > max)
		return or_error("JSON document of %zu bytes is larger than the %zu allowed", len,
				max);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return or_error("malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
				jerr.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return or_error("JSON document must be an object");
	}
	*out = root;
	return 0;
}

/* A file of at most max bytes that must hold one JSON object; errors name the file. */
int
json_load_object_file(const char *path, size_t max, json_t **out)
{
	uint8_t *data = NULL;
	size_t len;
	int rc;

	*out = NULL;
	if (file_read_all(path, max, &data, &len) == -1)
		return -1;
	rc = json_parse_object((const char *)data, len, max, out);
	free(data);
	return rc == -1 ? or_error_prefix("%s", path) : 0;
}

/* The value of key, or NULL when missing or null; *rc is -1 for a missing required field. */
static json_t *
field(json_t *obj, const char *key, bool required, int *rc)
{
	json_t *v = json_object_get(obj, key);

	*rc = 0;
	if (v == NULL || json_is_null(v)) {
		if (required)
			*rc = or_error("field '%s' is required", key);
		return NULL;
	}
	return v;
}

/* A string field of at most max_len bytes without a NUL inside. */
int
json_get_string(json_t *obj, const char *key, bool required, size_t max_len, const char **out)
{
	int rc;
	json_t *v = field(obj, key, required, &rc);

	if (v == NULL)
		return rc;
	if (!json_is_string(v))
		return or_error("field '%s' must be a string", key);
	if (json_string_length(v) > max_len)
		return or_error("field '%s' is longer than %zu characters", key, max_len);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return or_error("field '%s' contains a NUL character", key);
	*out = json_string_value(v);
	return 0;
}

/* An integer field within [min, max]. */
int
json_get_int(json_t *obj, const char *key, bool required, json_int_t min, json_int_t max,
	     json_int_t *out)
{
	int rc;
	json_t *v = field(obj, key, required, &rc);

	if (v == NULL)
		return rc;
	if (!json_is_integer(v))
		return or_error("field '%s' must be an integer", key);
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return or_error("field '%s' must be from %" JSON_INTEGER_FORMAT
				" to %" JSON_INTEGER_FORMAT,
				key, min, max);
	*out = json_integer_value(v);
	return 0;
}

/* A true/false field. */
int
json_get_bool(json_t *obj, const char *key, bool required, bool *out)
{
	int rc;
	json_t *v = field(obj, key, required, &rc);

	if (v == NULL)
		return rc;
	if (!json_is_boolean(v))
		return or_error("field '%s' must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

/* Compact, key-sorted text of value (malloc'd). */
char *
json_dump_compact(const json_t *value)
{
	return json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
}

/* Indented, key-sorted text of doc written atomically; the text is wiped after. */
int
json_write_atomic(const char *path, const json_t *doc, unsigned mode)
{
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	int ret;

	if (text == NULL)
		return or_error("%s: out of memory", path);
	ret = file_write_atomic(path, text, strlen(text), (mode_t)mode);
	secure_zero(text, strlen(text));
	free(text);
	return ret;
}
