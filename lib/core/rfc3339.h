/*
 * Times as text: RFC 3339 UTC with whole seconds, "2026-11-29T16:00:00Z",
 * the one form onramp writes on the wire, in state files and in output.
 */
#ifndef ONRAMP_CORE_RFC3339_H
#define ONRAMP_CORE_RFC3339_H

#include <time.h>

#define RFC3339_LEN 20 /* "YYYY-MM-DDTHH:MM:SSZ" */

/* Writes t into out (RFC3339_LEN + 1 bytes); "" for t <= 0 (never set). */
void rfc3339_format(time_t t, char out[RFC3339_LEN + 1]);

/* Parses exactly that form, refusing out-of-range fields (Feb 31); -1 with a message. */
int rfc3339_parse(const char *text, time_t *t);

#endif
