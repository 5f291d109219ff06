/*
 * The request deadline of an HTTPS connection: a request must be complete
 * within a bounded time from its first byte.
 *
 * evhttp's own timeout is an idle timeout: it starts again with every byte
 * read, so a client sending one byte a second holds a connection (and its
 * memory and descriptor) for ever. Here each connection gets a timer: it
 * starts when the connection is accepted (so it also bounds the TLS
 * handshake) and, for every later request on a kept-alive connection, with
 * the request's first byte; it stops when evhttp hands the complete request
 * over. When it fires, the connection's socket is shut down and evhttp
 * closes the connection as after any failed read.
 *
 * The timer lives with the connection's SSL (OpenSSL ex_data), which the
 * bufferevent frees with the connection, so it never outlives it.
 */
#ifndef ONRAMP_HTTP_DEADLINE_H
#define ONRAMP_HTTP_DEADLINE_H

#include <openssl/ssl.h>

struct bufferevent;
struct event_base;

/* Process-wide, once, before any other call. */
int http_deadline_init(void);

/* Gives a new connection (its SSL and bufferevent, on base) a deadline of
 * seconds, started now. On -1 the caller frees the bufferevent (and with
 * its SSL whatever was attached). */
int http_deadline_attach(SSL *ssl, struct bufferevent *bev, struct event_base *base,
			 unsigned seconds);

/* The connection's request is complete: no deadline until the next request's
 * first byte (which may already be buffered: then it starts now). */
void http_deadline_request_done(SSL *ssl, struct bufferevent *bev);

#endif
