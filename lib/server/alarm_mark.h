/*
 * An operator's mark on an alarm (acknowledged or cleared: by whom, when),
 * as the admin APIs answer it: {"by": NAME, "at": RFC 3339} or null. The
 * conductor's and the cloud's alarms keep a mark as two columns of a row,
 * the time (seconds since the epoch, NULL when unmarked) and the name.
 */
#ifndef ONRAMP_SERVER_ALARM_MARK_H
#define ONRAMP_SERVER_ALARM_MARK_H

#include <jansson.h>
#include <stddef.h>

struct store_result;

/* The mark in columns at_col (time) and by_col (name) of row, or JSON null when at is NULL. */
json_t *alarm_mark_json(const struct store_result *res, size_t row, int at_col, int by_col);

#endif
