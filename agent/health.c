/*
 * TCP connect probes in the event loop. A probe trusts only the kernel's
 * verdict on the connection (SO_ERROR); it sends nothing, so a proxy's
 * credentials are never involved.
 */
#include "health.h"

#include "core/error.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct probe {
	struct health *h;
	struct proxy_addr addr;
	int fd;
	struct event *ev;
	struct probe *next;
};

struct health {
	struct event_base *base;
	struct proxy_book *book;
	struct timeval timeout;
	struct event *tick;
	struct probe *running;
};

/* Ends a probe, frees it, and tells the book. */
static void
finish(struct probe *p, bool ok, const char *why)
{
	struct health *h = p->h;
	struct probe **pp;
	char text[PROXY_ADDR_STRLEN];

	proxy_addr_format(&p->addr, text);
	log_debug("probe of %s: %s", text, ok ? "connected" : why);
	for (pp = &h->running; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (p->ev != NULL)
		event_free(p->ev);
	if (p->fd != -1)
		close(p->fd);
	proxy_book_report(h->book, &p->addr, ok, time(NULL));
	free(p);
}

/* The connect finished (SO_ERROR says how) or timed out. */
static void
on_connect(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	if (what & EV_TIMEOUT) {
		finish(p, false, "timed out");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	finish(p, err == 0, strerror(err));
}

/* True when addr is being probed already. */
static bool
running(const struct health *h, const struct proxy_addr *addr)
{
	for (const struct probe *p = h->running; p != NULL; p = p->next)
		if (proxy_addr_cmp(&p->addr, addr) == 0)
			return true;
	return false;
}

/* Starts a non-blocking connect to addr; refusals seen at once finish it. */
static void
start_probe(struct health *h, const struct proxy_addr *addr)
{
	struct sockaddr_in sin;
	struct probe *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		log_error("health probe: out of memory");
		return;
	}
	p->h = h;
	p->addr = *addr;
	p->next = h->running;
	h->running = p;
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd == -1) {
		finish(p, false, strerror(errno));
		return;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(addr->port);
	sin.sin_addr.s_addr = htonl(addr->ip);
	if (connect(p->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		finish(p, true, NULL);
		return;
	}
	if (errno != EINPROGRESS) {
		finish(p, false, strerror(errno));
		return;
	}
	p->ev = event_new(h->base, p->fd, EV_WRITE, on_connect, p);
	if (p->ev == NULL || event_add(p->ev, &h->timeout) == -1)
		finish(p, false, "out of memory");
}

/* Probes every candidate that is not being probed already. */
void
health_kick(struct health *h)
{
	struct proxy_addr targets[BOOK_MAX_CANDIDATES];
	size_t n = proxy_book_targets(h->book, targets, BOOK_MAX_CANDIDATES);

	for (size_t i = 0; i < n; i++)
		if (!running(h, &targets[i]))
			start_probe(h, &targets[i]);
}

/* Every health-interval. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	health_kick(arg);
}

/* Arms the periodic probe and, if told to, probes at once. */
int
health_start(struct event_base *base, struct proxy_book *book, unsigned interval_s,
	     unsigned timeout_s, bool probe_now, struct health **out)
{
	struct timeval every = {.tv_sec = interval_s};
	struct health *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (h == NULL)
		return or_error("out of memory");
	h->base = base;
	h->book = book;
	h->timeout.tv_sec = timeout_s;
	h->tick = event_new(base, -1, EV_PERSIST, on_tick, h);
	if (h->tick == NULL || event_add(h->tick, &every) == -1) {
		health_stop(h);
		return or_error("out of memory");
	}
	*out = h;
	if (probe_now)
		health_kick(h);
	return 0;
}

/* Abandons running probes (nothing reported) and frees all. */
void
health_stop(struct health *h)
{
	if (h == NULL)
		return;
	while (h->running != NULL) {
		struct probe *p = h->running;

		h->running = p->next;
		if (p->ev != NULL)
			event_free(p->ev);
		if (p->fd != -1)
			close(p->fd);
		free(p);
	}
	if (h->tick != NULL)
		event_free(h->tick);
	free(h);
}
