/*
 * Pausing a listener that cannot accept (out of file descriptors, say).
 *
 * libevent's listener retries a failed accept() as soon as the socket is
 * readable again, which it stays while connections wait in the backlog: out
 * of descriptors (EMFILE, ENFILE) that is a busy loop writing "Error from
 * accept() call" without end. With accept_pause_watch() a failed accept
 * instead stops the listener for a short, growing wait (lib/core/backoff.h,
 * 100 ms to 1 s), then it tries again; waiting connections stay in the
 * backlog and are served once descriptors are free. The failure is logged
 * (log.h cuts the repeats to one line and a count).
 */
#ifndef ONRAMP_ACCEPT_PAUSE_H
#define ONRAMP_ACCEPT_PAUSE_H

struct evconnlistener;
struct accept_pause;

/* Watches lev (on its base's thread); what: names the server in the log. */
int accept_pause_watch(struct evconnlistener *lev, const char *what, struct accept_pause **out);

/* Stops watching; call before the listener's event_base is freed. NULL is fine. */
void accept_pause_free(struct accept_pause *);

#endif
