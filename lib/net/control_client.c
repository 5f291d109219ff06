/*
 * A blocking control-socket client for onrampctl. It trusts the agent no
 * more than any peer: the answer is bounded, must be one JSON object, and is
 * read within a timeout.
 */
#include "net/control_client.h"

#include "core/error.h"
#include "core/json.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Connects to the socket at path; returns the descriptor. */
static int
connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return or_error("control socket path '%s' is too long", path);
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return or_error("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int e = errno;
		close(fd);
		return or_error("cannot reach the agent at %s: %s", path, strerror(e));
	}
	return fd;
}

/* Milliseconds until deadline (negative when past). */
static long
ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Waits for fd to be ready for events before the deadline. */
static int
wait_for(int fd, short events, const struct timespec *deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	long left = ms_left(deadline);
	int rc;

	if (left <= 0)
		return or_error("the agent did not answer within %d ms", CONTROL_TIMEOUT_MS);
	do {
		rc = poll(&pfd, 1, (int)left);
	} while (rc == -1 && errno == EINTR);
	if (rc == 0)
		return or_error("the agent did not answer within %d ms", CONTROL_TIMEOUT_MS);
	return rc < 0 ? or_error("poll: %s", strerror(errno)) : 0;
}

/* Sends all of text before the deadline. */
static int
send_line(int fd, const char *text, size_t len, const struct timespec *deadline)
{
	while (len > 0) {
		ssize_t n;

		if (wait_for(fd, POLLOUT, deadline) == -1)
			return -1;
		n = send(fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return or_error("sending to the agent: %s", strerror(errno));
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads up to the first newline into a malloc'd buffer (the newline excluded). */
static int
read_line(int fd, char **out, size_t *out_len, const struct timespec *deadline)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *nl;

	if (buf == NULL)
		return or_error("out of memory");
	for (;;) {
		ssize_t n;

		if (wait_for(fd, POLLIN, deadline) == -1)
			goto fail;
		if (len == cap) {
			char *grown = cap >= CONTROL_LINE_MAX ? NULL : realloc(buf, cap * 2);
			if (grown == NULL) {
				or_error("the agent's answer is longer than %d bytes",
					 CONTROL_LINE_MAX);
				goto fail;
			}
			buf = grown;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			or_error("reading from the agent: %s", strerror(errno));
			goto fail;
		}
		if (n == 0) {
			or_error("the agent closed the connection without answering");
			goto fail;
		}
		nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
		if (nl != NULL) {
			*out = buf;
			*out_len = (size_t)(nl - buf);
			return 0;
		}
	}
fail:
	free(buf);
	return -1;
}

/* One request, one answer, one connection. */
int
control_call(const char *socket_path, const json_t *request, json_t **result)
{
	struct timespec deadline;
	char *text = NULL, *line = NULL;
	json_t *answer = NULL;
	const char *message = NULL;
	bool ok = false;
	size_t len;
	int fd, rc = -1;

	*result = NULL;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += CONTROL_TIMEOUT_MS / 1000;
	fd = connect_unix(socket_path);
	if (fd == -1)
		return -1;
	text = json_dumps(request, JSON_COMPACT);
	if (text == NULL) {
		or_error("out of memory");
		goto out;
	}
	len = strlen(text);
	if (send_line(fd, text, len, &deadline) == -1 || send_line(fd, "\n", 1, &deadline) == -1 ||
	    read_line(fd, &line, &len, &deadline) == -1)
		goto out;
	if (json_parse_object(line, len, CONTROL_LINE_MAX, &answer) == -1 ||
	    json_get_bool(answer, "ok", true, &ok) == -1) {
		or_error_prefix("malformed answer from the agent");
		goto out;
	}
	if (!ok) {
		if (json_get_string(answer, "error", true, 1024, &message) == -1)
			or_error_prefix("malformed answer from the agent");
		else
			or_error("%s", message);
		goto out;
	}
	*result = json_object_get(answer, "result");
	if (!json_is_object(*result)) {
		*result = NULL;
		or_error("malformed answer from the agent: no result object");
		goto out;
	}
	json_incref(*result);
	rc = 0;
out:
	json_decref(answer);
	free(line);
	free(text);
	close(fd);
	return rc;
}
