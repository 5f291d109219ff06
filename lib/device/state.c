/*
 * The crash-safe state file (see state.h). Atomicity comes from
 * file_write_atomic; the checksum catches what atomicity cannot (a disk or
 * an editor that damaged the file). Nothing in the file is trusted until the
 * version and the checksum have been checked.
 */
#include "device/state.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECKSUM_PREFIX "sha256:"
#define CHECKSUM_LEN (sizeof(CHECKSUM_PREFIX) - 1 + 2 * SHA256_DIGEST_LENGTH)

/* "sha256:<hex>" of the canonical (compact, key-sorted) text of state. */
static int
checksum(const json_t *state, char out[CHECKSUM_LEN + 1])
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	char *text = json_dump_compact(state);

	if (text == NULL)
		return or_error("out of memory");
	SHA256((const uint8_t *)text, strlen(text), digest);
	free(text);
	memcpy(out, CHECKSUM_PREFIX, sizeof(CHECKSUM_PREFIX) - 1);
	hex_encode(digest, sizeof(digest), out + sizeof(CHECKSUM_PREFIX) - 1);
	return 0;
}

/*
 * Writes version, checksum and a copy of state atomically (0600); a state over
 * STATE_MAX_BYTES is refused.
 */
int
state_save(const char *path, const json_t *state)
{
	char sum[CHECKSUM_LEN + 1], *text = NULL;
	json_t *doc = NULL;
	int ret = -1;

	if (!json_is_object(state))
		return or_error("%s: the state must be a JSON object", path);
	if (checksum(state, sum) == -1)
		return -1;
	doc = json_pack("{s:i, s:s, s:o}", "version", STATE_VERSION, "checksum", sum, "state",
			json_deep_copy(state));
	text = doc != NULL ? json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	if (text == NULL) {
		or_error("out of memory");
		goto out;
	}
	if (strlen(text) > STATE_MAX_BYTES) {
		or_error("%s: the state (%zu bytes) is larger than %d bytes", path, strlen(text),
			 STATE_MAX_BYTES);
		goto out;
	}
	ret = file_write_atomic(path, text, strlen(text), 0600);
out:
	free(text);
	json_decref(doc);
	return ret;
}

/* Moves a corrupt file aside under a name that says when; never over another file. */
static int
keep_aside(const char *path, const char *reason)
{
	char aside[PATH_MAX], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (unsigned i = 0; i < 100; i++) {
		n = i == 0 ? snprintf(aside, sizeof(aside), "%s.corrupt-%s", path, stamp)
			   : snprintf(aside, sizeof(aside), "%s.corrupt-%s.%u", path, stamp, i);
		if (n < 0 || (size_t)n >= sizeof(aside))
			return or_error("%s: corrupt (%s); its name is too long to keep it aside",
					path, reason);
		if (file_exists(aside) != 0)
			continue;
		if (rename(path, aside) == -1)
			return or_error("%s: corrupt (%s); cannot move it aside: %s", path, reason,
					strerror(errno));
		return or_error("%s: corrupt (%s); kept aside as %s", path, reason, aside);
	}
	return or_error("%s: corrupt (%s); too many corrupt copies already kept", path, reason);
}

/* Removes PATH.tmp.XXXXXX files that an interrupted file_write_atomic left behind. */
static void
remove_stale_temps(const char *path)
{
	char dir_copy[PATH_MAX], base_copy[PATH_MAX], prefix[PATH_MAX], victim[PATH_MAX];
	const char *dir, *base;
	struct dirent *e;
	size_t plen;
	DIR *d;

	if (strlen(path) >= sizeof(dir_copy))
		return;
	strcpy(dir_copy, path);
	strcpy(base_copy, path);
	dir = dirname(dir_copy);
	base = basename(base_copy);
	if (snprintf(prefix, sizeof(prefix), "%s.tmp.", base) >= (int)sizeof(prefix))
		return;
	plen = strlen(prefix);
	d = opendir(dir);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, plen) != 0 || strlen(e->d_name) != plen + 6)
			continue;
		if (file_path(victim, sizeof(victim), dir, e->d_name) == 0)
			unlink(victim);
	}
	closedir(d);
}

/*
 * Removes stale temporary files, then reads and checks the state; a corrupt
 * file is kept aside and reported.
 */
int
state_load(const char *path, json_t **out)
{
	char sum[CHECKSUM_LEN + 1], reason[OR_ERRMSG_MAX];
	const char *stored = NULL;
	json_int_t version = 0;
	json_t *doc = NULL, *state;
	uint8_t *text = NULL;
	size_t len = 0;
	int exists, ret = -1;

	*out = NULL;
	remove_stale_temps(path);
	if ((exists = file_exists(path)) != 1)
		return exists; /* 0: no state yet; -1: cannot tell, error set */
	if (file_read_all(path, STATE_MAX_BYTES, &text, &len) == -1)
		return -1;
	if (json_parse_object((const char *)text, len, STATE_MAX_BYTES, &doc) == -1 ||
	    json_get_int(doc, "version", true, 1, 1000000, &version) == -1)
		goto corrupt;
	if (version > STATE_VERSION) {
		/* Not corrupt, only newer: leave it for the program that wrote it. */
		or_error("%s: state version %" JSON_INTEGER_FORMAT
			 " is newer than this program's (%d); refusing it",
			 path, version, STATE_VERSION);
		goto out;
	}
	if (json_get_string(doc, "checksum", true, CHECKSUM_LEN, &stored) == -1)
		goto corrupt;
	state = json_object_get(doc, "state");
	if (!json_is_object(state)) {
		or_error("field 'state' must be an object");
		goto corrupt;
	}
	if (checksum(state, sum) == -1)
		goto out;
	if (strcmp(sum, stored) != 0) {
		or_error("checksum mismatch");
		goto corrupt;
	}
	*out = json_incref(state);
	ret = 0;
	goto out;
corrupt:
	snprintf(reason, sizeof(reason), "%s", or_errmsg());
	keep_aside(path, reason);
out:
	free(text);
	json_decref(doc);
	return ret;
}
