/*
 * The agent's one crash-safe state file: a JSON object, versioned and
 * checksummed, replaced atomically (file_write_atomic), so that a kill -9 or
 * a power cut at any moment leaves the old state or the new one.
 *
 * On disk: {"checksum":"sha256:<hex>","state":{...},"version":1}, where the
 * checksum is SHA-256 over the compact, key-sorted serialisation of "state".
 * A file that fails any check is never silently reset: it is reported and
 * renamed to PATH.corrupt-<UTC time>, so an operator can look at it.
 */
#ifndef ONRAMP_STATE_H
#define ONRAMP_STATE_H

#include <jansson.h>

#define STATE_VERSION 1
#define STATE_MAX_BYTES (4 * 1024 * 1024)

/*
 * Loads the state object. Missing file: *out = NULL, 0. Corrupt file: kept
 * aside as PATH.corrupt-<time>, -1 with an error naming both. A file of a
 * newer version is refused and left in place. Leftover temporary files of
 * interrupted saves are removed (there is one writer: call it at start).
 */
int state_load(const char *path, json_t **out);

/* Saves state (a JSON object) atomically, mode 0600. */
int state_save(const char *path, const json_t *state);

#endif
