/*
 * Notifications between the instances of a daemon that share one PostgreSQL
 * (LISTEN/NOTIFY), so that an event on one instance (a command queued) reaches
 * whichever instance holds what waits for it (the router's held poll).
 *
 * - store_notify() sends on the caller's store connection; outside a
 *   transaction it is delivered at once, inside one at COMMIT (PostgreSQL's
 *   rule), never when the transaction rolls back.
 * - store_listen() keeps one dedicated connection per process on its own
 *   thread, waiting on the connection's socket. When the connection breaks it
 *   reconnects with backoff; notifications sent while it was away are lost,
 *   so after a reconnection the callback is called once with payload NULL:
 *   "anything may have happened, look again".
 * - SQLite has no such thing and needs none (one process owns the file):
 *   store_listen() then starts nothing and store_notify() is refused.
 * Channel names are ours: lower-case letters and '_' only.
 */
#ifndef ONRAMP_STORE_LISTEN_H
#define ONRAMP_STORE_LISTEN_H

#include <stdbool.h>

struct store;
struct store_listener;

/* Called on the listener's thread; payload NULL after a reconnection (see above). */
typedef void (*store_notify_fn)(const char *payload, void *arg);

/* Whether the store's backend carries notifications between processes. */
bool store_can_notify(const struct store *);

/* Sends payload (at most 7999 bytes, PostgreSQL's limit) on channel. */
int store_notify(struct store *, const char *channel, const char *payload);

/*
 * Connects once (so that a bad URL fails here), listens on channel and starts
 * the listener's thread. For a SQLite URL *out is NULL and 0 is returned.
 */
int store_listen(const char *url, const char *channel, store_notify_fn fn, void *arg,
		 struct store_listener **out);

/* Stops the thread and closes the connection; NULL is fine. */
void store_listen_stop(struct store_listener *);

#endif
