/*
 * Files that must never be torn: written to a temporary file in the same
 * directory, fsync'd, renamed over the target, and the directory fsync'd, so
 * that a crash or kill -9 at any moment leaves the old content or the new.
 */
#ifndef ONRAMP_FILE_H
#define ONRAMP_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Replaces path with data atomically; the file gets mode (e.g. 0600). */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Reads a whole file of at most max bytes into a malloc'd, NUL-terminated buffer. */
int file_read_all(const char *path, size_t max, uint8_t **out, size_t *len);

/* Creates dir with mode if it does not exist (one level); refuses a non-directory. */
int file_ensure_dir(const char *dir, mode_t mode);

#endif
