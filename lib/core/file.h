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

/*
 * A small text file (a token, a secret, a PEM) of at most max bytes, without
 * its trailing newlines (CR or LF), NUL-terminated in *out (malloc'd). The
 * caller zeroes it after use when it holds a secret.
 */
int file_read_text(const char *path, size_t max, char **out);

/* Creates dir with mode if it does not exist (one level); refuses a non-directory. */
int file_ensure_dir(const char *dir, mode_t mode);

/* Writes "dir/name" into out (cap bytes); refuses a path that does not fit. */
int file_path(char *out, size_t cap, const char *dir, const char *name);

/* 1 when path exists (as anything), 0 when it does not, -1 when it cannot be told. */
int file_exists(const char *path);

/* file_exists() of dir/name. */
int file_exists_in(const char *dir, const char *name);

/* Removes dir/name if it exists (a missing file is not an error). */
int file_remove_in(const char *dir, const char *name);

/* Removes path and makes the removal durable (fsync of its directory). */
int file_remove(const char *path);

#endif
