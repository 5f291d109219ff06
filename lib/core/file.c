/*
 * Atomic replacement and bounded reads. Every failure leaves the target as it
 * was and removes the temporary file.
 */
#include "core/file.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes all of p, retrying short writes and EINTR. */
static int
write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Makes a rename or unlink in path's directory durable. */
static int
fsync_dir_of(const char *path)
{
	char copy[PATH_MAX];
	int fd, rc;

	if (strlen(path) >= sizeof(copy))
		return or_error("%s: path too long", path);
	strcpy(copy, path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return or_error("%s: cannot open its directory: %s", path, strerror(errno));
	rc = fsync(fd);
	close(fd);
	return rc == 0 ? 0 : or_error("%s: fsync of directory failed: %s", path, strerror(errno));
}

/*
 * Temporary file in the same directory (mkstemp, so never through a symlink),
 * mode, data, fsync, rename over path, fsync of the directory. A failure before
 * the rename leaves path untouched and removes the temporary file.
 */
int
file_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd = -1, saved;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return or_error("%s: path too long", path);
	fd = mkstemp(tmp);
	if (fd == -1)
		return or_error("%s: cannot create temporary file: %s", path, strerror(errno));
	if (fchmod(fd, mode) == -1 || write_all(fd, data, len) == -1 || fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	return fsync_dir_of(path);
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return or_error("%s: cannot write: %s", path, strerror(saved));
}

/*
 * Reads a regular file of at most max bytes, NUL-terminated. Trusts nothing in
 * it; the caller zeroes the buffer when it may hold a secret.
 */
int
file_read_all(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return or_error("%s: cannot open: %s", path, strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return or_error("%s: not a regular file", path);
	}
	if ((size_t)st.st_size > max) {
		close(fd);
		return or_error("%s: %lld bytes is more than the %zu allowed", path,
				(long long)st.st_size, max);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return or_error("out of memory");
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != (size_t)st.st_size) {
		free(buf);
		return or_error("%s: short read", path);
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

/* file_read_all, then the trailing newlines dropped (the NUL moves with them). */
int
file_read_text(const char *path, size_t max, char **out)
{
	uint8_t *data = NULL;
	size_t len = 0;

	*out = NULL;
	if (file_read_all(path, max, &data, &len) == -1)
		return -1;
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		data[--len] = '\0';
	*out = (char *)data;
	return 0;
}

/* Creates one directory level with mode; an existing directory is kept as it is. */
int
file_ensure_dir(const char *dir, mode_t mode)
{
	struct stat st;

	if (mkdir(dir, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return or_error("%s: cannot create directory: %s", dir, strerror(errno));
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		return or_error("%s: exists and is not a directory", dir);
	return 0;
}

/* "dir/name" into out, refusing a path that would be cut. */
int
file_path(char *out, size_t cap, const char *dir, const char *name)
{
	if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap)
		return or_error("%s/%s: path too long", dir, name);
	return 0;
}

/* Whether path exists (a dangling symlink counts: lstat). */
int
file_exists(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	return or_error("%s: %s", path, strerror(errno));
}

/* Unlinks path durably (fsync of its directory). */
int
file_remove(const char *path)
{
	if (unlink(path) == -1)
		return or_error("%s: cannot remove: %s", path, strerror(errno));
	return fsync_dir_of(path);
}

/* file_exists() of dir/name. */
int
file_exists_in(const char *dir, const char *name)
{
	char path[PATH_MAX];

	if (file_path(path, sizeof(path), dir, name) == -1)
		return -1;
	return file_exists(path);
}

/* Unlinks dir/name; a missing file is not an error. */
int
file_remove_in(const char *dir, const char *name)
{
	char path[PATH_MAX];

	if (file_path(path, sizeof(path), dir, name) == -1)
		return -1;
	if (unlink(path) == -1 && errno != ENOENT)
		return or_error("%s: cannot remove: %s", path, strerror(errno));
	return 0;
}
