/*
 * What the factory tells the device about itself: its serial, model and OCRA
 * suite, in state_dir/device.json (no secret). The agent reads it to phone
 * home under the right serial and to answer challenges with the right suite.
 */
#ifndef ONRAMP_DEVICE_H
#define ONRAMP_DEVICE_H

#include "device/ocra.h"
#include "device/record.h"

#define DEVICE_FILE "device.json"

struct device_info {
	char serial[RECORD_SERIAL_MAX + 1];
	char model[RECORD_MODEL_MAX + 1];
	char ocra_suite[OCRA_SUITE_MAX + 1];
};

/* Writes state_dir/device.json atomically (0600), checking every field first. */
int device_info_write(const char *state_dir, const struct device_info *);

/* Reads and checks state_dir/device.json. */
int device_info_read(const char *state_dir, struct device_info *out);

/* 1 when state_dir holds device.json, 0 when not, -1 on error. */
int device_info_exists(const char *state_dir);

/* Removes device.json (the factory's undo). */
int device_info_remove(const char *state_dir);

#endif
