/*
 * An operator's mark on an alarm as JSON (alarm_mark.h). What it trusts: the
 * row, read from the daemon's own database.
 */
#include "server/alarm_mark.h"

#include "core/rfc3339.h"
#include "server/store.h"

#include <stdlib.h>

/* See alarm_mark.h. */
json_t *
alarm_mark_json(const struct store_result *res, size_t row, int at_col, int by_col)
{
	char at[RFC3339_LEN + 1];

	if (store_value(res, row, at_col) == NULL)
		return json_null();
	rfc3339_format((time_t)strtoll(store_value(res, row, at_col), NULL, 10), at);
	return json_pack("{s:s, s:s}", "by", store_value(res, row, by_col), "at", at);
}
