/*
 * Request deadlines of HTTPS connections (see http_deadline.h). Trusts
 * bufferevent_openssl to free the SSL (and so the deadline) with its
 * connection, on the connection's loop thread.
 */
#include "server/http_deadline.h"

#include "core/error.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

struct deadline {
	SSL *ssl;
	struct bufferevent *bev;
	struct evbuffer_cb_entry *watch;
	struct event *timer;
	struct timeval limit;
};

static int deadline_index = -1;

/* The client's address (no port: a flood from one host folds in the log). */
static void
peer_address(int sock, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	const void *addr = NULL;

	snprintf(out, len, "unknown");
	if (sock < 0 || getpeername(sock, (struct sockaddr *)&ss, &sslen) == -1)
		return;
	if (ss.ss_family == AF_INET)
		addr = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	if (addr == NULL || inet_ntop(ss.ss_family, addr, out, (socklen_t)len) == NULL)
		snprintf(out, len, "unknown");
}

/*
 * The request is not complete in time. Shutting the socket down, rather than
 * freeing evhttp's objects from here, lets evhttp see an end of stream and
 * close the connection the way it closes any other; the descriptor is still
 * this connection's, as the SSL that owns it is still alive.
 */
static void
deadline_passed(evutil_socket_t fd, short what, void *arg)
{
	struct deadline *d = arg;
	int sock = SSL_get_fd(d->ssl);
	char peer[INET6_ADDRSTRLEN];

	(void)fd;
	(void)what;
	peer_address(sock, peer, sizeof(peer));
	log_info("http: a request from %s was not complete %ld s after its first byte: "
		 "connection closed",
		 peer, (long)d->limit.tv_sec);
	if (sock >= 0)
		shutdown(sock, SHUT_RDWR);
}

/* Bytes came in: the first byte of a request starts its deadline. */
static void
input_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct deadline *d = arg;

	(void)buf;
	if (info->n_added > 0 && !evtimer_pending(d->timer, NULL))
		evtimer_add(d->timer, &d->limit);
}

/* OpenSSL frees the SSL (in the bufferevent's own free, whose input buffer
 * still exists): the deadline goes with it. */
static void
deadline_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct deadline *d = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (d == NULL)
		return;
	if (d->watch != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(d->bev), d->watch);
	if (d->timer != NULL)
		event_free(d->timer);
	free(d);
}

/* See http_deadline.h. */
int
http_deadline_init(void)
{
	deadline_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, deadline_free);
	if (deadline_index < 0)
		return or_error("http server: no OpenSSL ex_data index left");
	return 0;
}

/* See http_deadline.h. */
int
http_deadline_attach(SSL *ssl, struct bufferevent *bev, struct event_base *base, unsigned seconds)
{
	struct deadline *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return or_error("out of memory");
	d->ssl = ssl;
	d->bev = bev;
	d->limit.tv_sec = seconds;
	d->timer = evtimer_new(base, deadline_passed, d);
	if (d->timer == NULL || SSL_set_ex_data(ssl, deadline_index, d) != 1) {
		deadline_free(NULL, d, NULL, 0, 0, NULL);
		return or_error("out of memory");
	}
	/* from here on, SSL_free frees d */
	d->watch = evbuffer_add_cb(bufferevent_get_input(bev), input_changed, d);
	if (d->watch == NULL || evtimer_add(d->timer, &d->limit) != 0)
		return or_error("http server: cannot start a request deadline");
	return 0;
}

/* See http_deadline.h. */
void
http_deadline_request_done(SSL *ssl, struct bufferevent *bev)
{
	struct deadline *d = ssl != NULL ? SSL_get_ex_data(ssl, deadline_index) : NULL;

	if (d == NULL)
		return;
	evtimer_del(d->timer);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		evtimer_add(d->timer, &d->limit);
}
