/*
 * LISTEN/NOTIFY between the instances of a daemon on one PostgreSQL (see
 * store_listen.h). The listener is one thread with one libpq connection that
 * sleeps in poll() on the connection's socket and on a pipe that says "stop";
 * it trusts nothing it receives beyond handing the payload to the callback,
 * which treats it as a hint to look in the database again.
 */
#include "server/store_listen.h"

#include "core/backoff.h"
#include "core/error.h"
#include "core/log.h"
#include "server/store.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHANNEL_MAX 63	       /* PostgreSQL's identifier limit */
#define RECONNECT_BASE_MS 200  /* first wait after a lost connection */
#define RECONNECT_CAP_MS 10000 /* longest wait between attempts */

struct store_listener {
	char *url;
	char channel[CHANNEL_MAX + 1];
	store_notify_fn fn;
	void *arg;
	PGconn *pg;
	int stop_pipe[2];
	pthread_t thread;
	bool thread_started;
};

/* Channel names are ours; checking them keeps LISTEN free of any quoting. */
static bool
valid_channel(const char *channel)
{
	size_t n = strlen(channel);

	if (n == 0 || n > CHANNEL_MAX)
		return false;
	return strspn(channel, "abcdefghijklmnopqrstuvwxyz_") == n;
}

/* See store_listen.h. */
bool
store_can_notify(const struct store *st)
{
	return strcmp(store_backend(st), "postgresql") == 0;
}

/* See store_listen.h: pg_notify takes the channel as a value, so nothing is spliced in. */
int
store_notify(struct store *st, const char *channel, const char *payload)
{
	const char *params[2] = {channel, payload};

	if (!store_can_notify(st))
		return or_error("store: %s carries no notifications", store_backend(st));
	if (!valid_channel(channel))
		return or_error("store: bad notification channel name");
	return store_exec(st, "SELECT pg_notify($1, $2)", params, 2, NULL);
}

/* libpq prints notices to stderr otherwise. */
static void
quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Connects and runs LISTEN; the error never repeats the URL (it may hold a password). */
static int
connect_and_listen(struct store_listener *l)
{
	char sql[16 + CHANNEL_MAX], msg[OR_ERRMSG_MAX];
	PGresult *r;

	l->pg = PQconnectdb(l->url);
	if (l->pg == NULL)
		return or_error("postgresql: out of memory");
	if (PQstatus(l->pg) != CONNECTION_OK) {
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(l->pg));
		msg[strcspn(msg, "\n")] = '\0';
		goto fail;
	}
	PQsetNoticeProcessor(l->pg, quiet, NULL);
	snprintf(sql, sizeof(sql), "LISTEN %s", l->channel);
	r = PQexec(l->pg, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(l->pg));
		msg[strcspn(msg, "\n")] = '\0';
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	return 0;
fail:
	PQfinish(l->pg);
	l->pg = NULL;
	return or_error("postgresql: cannot listen for notifications: %s", msg);
}

/* Sleeps ms unless told to stop; true when told to stop. */
static bool
sleep_or_stop(struct store_listener *l, unsigned ms)
{
	struct pollfd p = {.fd = l->stop_pipe[0], .events = POLLIN};

	return poll(&p, 1, (int)ms) > 0;
}

/* Hands every notification that arrived to the callback; -1 when the connection broke. */
static int
drain_notifications(struct store_listener *l)
{
	PGnotify *n;

	if (PQconsumeInput(l->pg) == 0 || PQstatus(l->pg) != CONNECTION_OK)
		return -1;
	while ((n = PQnotifies(l->pg)) != NULL) {
		l->fn(n->extra, l->arg);
		PQfreemem(n);
	}
	return 0;
}

/* The listener's thread: wait, hand over, reconnect with backoff when the connection breaks. */
static void *
listen_main(void *arg)
{
	struct store_listener *l = arg;
	struct backoff b = {.base_ms = RECONNECT_BASE_MS, .cap_ms = RECONNECT_CAP_MS};

	for (;;) {
		struct pollfd p[2] = {
			{.fd = l->stop_pipe[0], .events = POLLIN},
			{.fd = l->pg != NULL ? PQsocket(l->pg) : -1, .events = POLLIN}};

		if (l->pg == NULL) {
			if (sleep_or_stop(l, backoff_next_ms(&b, -1)))
				break;
			if (connect_and_listen(l) == -1) {
				log_warn("%s; trying again", or_errmsg());
				continue;
			}
			backoff_reset(&b);
			log_info("postgresql: listening for notifications again");
			/* what was sent while we were away is lost: look at everything */
			l->fn(NULL, l->arg);
			continue;
		}
		if (poll(p, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			log_error("postgresql: notification listener: poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents != 0)
			break;
		if (p[1].revents != 0 && drain_notifications(l) == -1) {
			log_warn("postgresql: notification connection lost; reconnecting");
			PQfinish(l->pg);
			l->pg = NULL;
		}
	}
	return NULL;
}

/* See store_listen.h. */
int
store_listen(const char *url, const char *channel, store_notify_fn fn, void *arg,
	     struct store_listener **out)
{
	struct store_listener *l;

	*out = NULL;
	if (strncmp(url, "sqlite:", 7) == 0)
		return 0;
	if (!valid_channel(channel))
		return or_error("store: bad notification channel name");
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return or_error("out of memory");
	l->stop_pipe[0] = l->stop_pipe[1] = -1;
	l->fn = fn;
	l->arg = arg;
	snprintf(l->channel, sizeof(l->channel), "%s", channel);
	if ((l->url = strdup(url)) == NULL) {
		or_error("out of memory");
		goto fail;
	}
	if (pipe2(l->stop_pipe, O_CLOEXEC) == -1) {
		or_error("pipe: %s", strerror(errno));
		goto fail;
	}
	if (connect_and_listen(l) == -1)
		goto fail;
	if (pthread_create(&l->thread, NULL, listen_main, l) != 0) {
		or_error("cannot start the notification listener");
		goto fail;
	}
	l->thread_started = true;
	*out = l;
	return 0;
fail:
	store_listen_stop(l);
	return -1;
}

/* See store_listen.h. */
void
store_listen_stop(struct store_listener *l)
{
	if (l == NULL)
		return;
	if (l->thread_started) {
		while (write(l->stop_pipe[1], "x", 1) == -1 && errno == EINTR)
			;
		pthread_join(l->thread, NULL);
	}
	if (l->pg != NULL)
		PQfinish(l->pg);
	for (int i = 0; i < 2; i++)
		if (l->stop_pipe[i] != -1)
			close(l->stop_pipe[i]);
	free(l->url);
	free(l);
}
