/*
 * state_dir/device.json: the device's serial, model and OCRA suite. Nothing
 * read from it is used before the same checks the factory applied.
 */
#include "device/device.h"

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The factory's checks of serial, model and suite. */
static int
check(const struct device_info *d)
{
	struct ocra_suite suite;

	if (record_check_serial(d->serial) == -1 || record_check_model(d->model) == -1 ||
	    ocra_suite_parse(d->ocra_suite, &suite) == -1)
		return -1;
	return 0;
}

/* Writes device.json (0600, atomically) after the same checks as the factory. */
int
device_info_write(const char *state_dir, const struct device_info *d)
{
	char path[PATH_MAX];
	json_t *doc = NULL;
	int ret;

	if (check(d) == -1 || file_path(path, sizeof(path), state_dir, DEVICE_FILE) == -1)
		return -1;
	doc = json_pack("{s:i, s:s, s:s, s:s}", "version", 1, "serial", d->serial, "model",
			d->model, "ocra_suite", d->ocra_suite);
	ret = doc != NULL ? json_write_atomic(path, doc, 0600) : or_error("out of memory");
	json_decref(doc);
	return ret;
}

/* Reads device.json and checks it as the factory did. */
int
device_info_read(const char *state_dir, struct device_info *out)
{
	char path[PATH_MAX];
	const char *serial = NULL, *model = NULL, *suite = NULL;
	json_int_t version = 0;
	json_t *doc = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (file_path(path, sizeof(path), state_dir, DEVICE_FILE) == -1 ||
	    json_load_object_file(path, 4096, &doc) == -1)
		return -1;
	if (json_get_int(doc, "version", true, 1, 1, &version) == -1 ||
	    json_get_string(doc, "serial", true, RECORD_SERIAL_MAX, &serial) == -1 ||
	    json_get_string(doc, "model", true, RECORD_MODEL_MAX, &model) == -1 ||
	    json_get_string(doc, "ocra_suite", true, OCRA_SUITE_MAX, &suite) == -1)
		goto out;
	snprintf(out->serial, sizeof(out->serial), "%s", serial);
	snprintf(out->model, sizeof(out->model), "%s", model);
	snprintf(out->ocra_suite, sizeof(out->ocra_suite), "%s", suite);
	ret = check(out);
out:
	json_decref(doc);
	return ret == -1 ? or_error_prefix("%s", path) : 0;
}

/* Whether state_dir holds device.json. */
int
device_info_exists(const char *state_dir)
{
	return file_exists_in(state_dir, DEVICE_FILE);
}

/* Removes device.json (the factory's undo). */
int
device_info_remove(const char *state_dir)
{
	return file_remove_in(state_dir, DEVICE_FILE);
}
