/*
 * Control socket server on libevent bufferevents. Only root can connect (the
 * socket is 0600 and the agent runs as root), but requests are still checked
 * as untrusted: bounded lines, one JSON object, a known command.
 */
#include "control.h"

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "net/control_client.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONTROL_MAX_COMMANDS 32
#define CONTROL_IDLE_S 30

struct command {
	char name[64];
	control_fn fn;
	void *arg;
};

struct control {
	struct event_base *base;
	struct evconnlistener *listener;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct command commands[CONTROL_MAX_COMMANDS];
	size_t n_commands;
	struct conn *conns;
};

struct conn {
	struct control *ctl;
	struct bufferevent *bev;
	struct conn *next;
	int closing;
};

/* Forgets one client connection and closes it. */
static void
conn_free(struct conn *c)
{
	struct conn **pp;

	for (pp = &c->ctl->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	bufferevent_free(c->bev);
	free(c);
}

/* Runs one request line and returns the answer object. */
static json_t *
handle(struct control *ctl, const char *line, size_t len)
{
	json_t *req = NULL, *result = NULL, *answer;
	const char *name = NULL;
	int rc = -1;

	if (json_parse_object(line, len, CONTROL_LINE_MAX, &req) == -1 ||
	    json_get_string(req, "command", true, 63, &name) == -1) {
		or_error_prefix("bad request");
		goto out;
	}
	for (size_t i = 0; i < ctl->n_commands; i++) {
		if (strcmp(ctl->commands[i].name, name) == 0) {
			rc = ctl->commands[i].fn(ctl->commands[i].arg, req, &result);
			if (rc == 0 && !json_is_object(result))
				rc = or_error("internal error: no result");
			goto out;
		}
	}
	or_error("unknown command '%s'", name);
out:
	if (rc == 0)
		answer = json_pack("{sb so}", "ok", 1, "result", result);
	else
		answer = json_pack("{sb ss}", "ok", 0, "error", or_errmsg());
	json_decref(req);
	return answer;
}

/* Queues one answer line on the connection; consumes answer. */
static void
reply(struct conn *c, json_t *answer)
{
	char *text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (text == NULL)
		evbuffer_add_printf(out, "{\"ok\":false,\"error\":\"out of memory\"}\n");
	else
		evbuffer_add_printf(out, "%s\n", text);
	free(text);
	json_decref(answer);
}

/*
 * Once a connection is being closed for a bad request, its answer is flushed
 * and the write side shut down; what the client still sends is read and
 * dropped until it closes, so that it gets the answer rather than a reset.
 */
static void
on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		shutdown(bufferevent_getfd(bev), SHUT_WR);
}

/* Answers every complete request line; refuses a line that grows too long. */
static void
on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		reply(c, handle(c->ctl, line, len));
		free(line);
	}
	if (evbuffer_get_length(in) > CONTROL_LINE_MAX) {
		or_error("request longer than %d bytes", CONTROL_LINE_MAX);
		reply(c, json_pack("{sb ss}", "ok", 0, "error", or_errmsg()));
		c->closing = 1;
		bufferevent_setwatermark(bev, EV_READ, 0, 0);
		evbuffer_drain(in, evbuffer_get_length(in));
	}
}

/* The client went away, failed, or idled too long. */
static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_free(arg); /* EOF, error or idle timeout */
}

/* A new client: one bufferevent with bounded input and idle timeouts. */
static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
	struct control *ctl = arg;
	struct timeval idle = {.tv_sec = CONTROL_IDLE_S};
	struct conn *c = calloc(1, sizeof(*c));

	(void)l;
	(void)sa;
	(void)socklen;
	if (c == NULL) {
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->bev = bufferevent_socket_new(ctl->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return;
	}
	c->next = ctl->conns;
	ctl->conns = c;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_LINE_MAX + 1);
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Removes a stale socket file at path; refuses when an agent answers there or it is no socket. */
static int
clear_stale(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 0 : or_error("%s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return or_error("%s exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return or_error("socket: %s", strerror(errno));
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0)
		return or_error("another agent is listening on %s", path);
	if (unlink(path) == -1)
		return or_error("removing the stale socket %s: %s", path, strerror(errno));
	return 0;
}

/* Creates the socket 0600 (umask while binding, then chmod) and listens. */
int
control_open(struct event_base *base, const char *path, struct control **out)
{
	struct sockaddr_un sun;
	char dir[PATH_MAX];
	struct control *ctl;
	mode_t old_umask;
	int fd = -1;

	*out = NULL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return or_error("control socket path %s is too long", path);
	strcpy(sun.sun_path, path);
	snprintf(dir, sizeof(dir), "%s", path);
	if (file_ensure_dir(dirname(dir), 0755) == -1 || clear_stale(path, &sun) == -1)
		return or_error_prefix("control socket");
	ctl = calloc(1, sizeof(*ctl));
	if (ctl == NULL)
		return or_error("out of memory");
	ctl->base = base;
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		free(ctl);
		return or_error("socket: %s", strerror(errno));
	}
	old_umask = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int e = errno;
		umask(old_umask);
		close(fd);
		free(ctl);
		return or_error("control socket %s: %s", path, strerror(e));
	}
	umask(old_umask);
	if (chmod(path, 0600) == -1 || listen(fd, 16) == -1) {
		int e = errno;
		close(fd);
		unlink(path);
		free(ctl);
		return or_error("control socket %s: %s", path, strerror(e));
	}
	ctl->listener = evconnlistener_new(base, on_accept, ctl, LEV_OPT_CLOSE_ON_FREE, 0, fd);
	if (ctl->listener == NULL) {
		close(fd);
		unlink(path);
		free(ctl);
		return or_error("control socket %s: cannot listen", path);
	}
	*out = ctl;
	return 0;
}

/* Adds a named command; names are the agent's own. */
int
control_register(struct control *ctl, const char *command, control_fn fn, void *arg)
{
	struct command *c;

	if (ctl->n_commands == CONTROL_MAX_COMMANDS || strlen(command) >= sizeof(c->name))
		return or_error("cannot register control command '%s'", command);
	c = &ctl->commands[ctl->n_commands++];
	snprintf(c->name, sizeof(c->name), "%s", command);
	c->fn = fn;
	c->arg = arg;
	return 0;
}

/* Closes every connection and the listener, removes the socket file. */
void
control_close(struct control *ctl)
{
	if (ctl == NULL)
		return;
	while (ctl->conns != NULL)
		conn_free(ctl->conns);
	evconnlistener_free(ctl->listener);
	unlink(ctl->path);
	free(ctl);
}
