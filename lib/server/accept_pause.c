/*
 * A listener whose accept() fails is paused with backoff instead of retried
 * at once (see accept_pause.h). Trusts libevent to call the error callback on
 * the listener's own loop thread.
 */
#include "server/accept_pause.h"

#include "core/backoff.h"
#include "core/error.h"
#include "core/log.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAUSE_FIRST_MS 100u
#define PAUSE_MAX_MS 1000u
/* A failure this long after the previous one starts the backoff over. */
#define PAUSE_FORGET_S 10

struct accept_pause {
	struct evconnlistener *lev;
	const char *what;
	struct event *resume;
	struct backoff wait;
	time_t last_failure;
	struct accept_pause *next;
};

/*
 * The listener's callback argument belongs to evhttp, so the error callback
 * finds its pause by listener here.
 */
static pthread_mutex_t watched_mu = PTHREAD_MUTEX_INITIALIZER;
static struct accept_pause *watched;

/* The pause is over: accept again (a new failure pauses again). */
static void
resume_accepting(evutil_socket_t fd, short what, void *arg)
{
	struct accept_pause *ap = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(ap->lev);
}

/* libevent's listener could not accept: pause it, retry after the next wait. */
static void
accept_failed(struct evconnlistener *lev, void *arg)
{
	int err = errno;
	struct accept_pause *ap;
	struct timeval tv;
	time_t now = time(NULL);
	unsigned ms;

	(void)arg;
	pthread_mutex_lock(&watched_mu);
	for (ap = watched; ap != NULL && ap->lev != lev; ap = ap->next)
		;
	pthread_mutex_unlock(&watched_mu);
	if (ap == NULL)
		return;
	if (now - ap->last_failure > PAUSE_FORGET_S)
		backoff_reset(&ap->wait);
	ap->last_failure = now;
	ms = backoff_next_ms(&ap->wait, -1);
	/* the same words every time, so that log.h folds a long outage into a count */
	log_warn("%s: cannot accept connections (%s): pausing, retrying with backoff up to %u ms",
		 ap->what, strerror(err), PAUSE_MAX_MS);
	evconnlistener_disable(lev);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	if (evtimer_add(ap->resume, &tv) != 0)
		evconnlistener_enable(lev); /* never leave a listener off for good */
}

/* See accept_pause.h. */
int
accept_pause_watch(struct evconnlistener *lev, const char *what, struct accept_pause **out)
{
	struct accept_pause *ap;

	*out = NULL;
	if ((ap = calloc(1, sizeof(*ap))) == NULL)
		return or_error("out of memory");
	ap->lev = lev;
	ap->what = what;
	ap->wait.base_ms = PAUSE_FIRST_MS;
	ap->wait.cap_ms = PAUSE_MAX_MS;
	ap->resume = evtimer_new(evconnlistener_get_base(lev), resume_accepting, ap);
	if (ap->resume == NULL) {
		free(ap);
		return or_error("out of memory");
	}
	pthread_mutex_lock(&watched_mu);
	ap->next = watched;
	watched = ap;
	pthread_mutex_unlock(&watched_mu);
	evconnlistener_set_error_cb(lev, accept_failed);
	*out = ap;
	return 0;
}

/* See accept_pause.h. */
void
accept_pause_free(struct accept_pause *ap)
{
	struct accept_pause **p;

	if (ap == NULL)
		return;
	pthread_mutex_lock(&watched_mu);
	for (p = &watched; *p != NULL; p = &(*p)->next)
		if (*p == ap) {
			*p = ap->next;
			break;
		}
	pthread_mutex_unlock(&watched_mu);
	event_free(ap->resume);
	free(ap);
}
