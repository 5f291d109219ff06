/*
 * HTTPS servers for onramp's daemons: libevent 2.1 evhttp over
 * bufferevent_openssl, one event loop per thread, JSON in and out.
 *
 * What it trusts: nothing that comes from the network. Requests are parsed by
 * evhttp under header and body size limits; TLS is 1.2 or newer only; every
 * error answer our code gives is JSON: {"error":{"code":"...","message":"..."}}.
 *
 * Threads: http_server_start() starts `threads` event loops, each with its own
 * event_base and evhttp, all accepting from one listening socket. A handler
 * runs on the loop that accepted the connection; everything it gets from the
 * http_ctx belongs to that loop. thread_init/thread_fini give each loop its own
 * state (a store connection, say), reachable with http_ctx_thread_state().
 *
 * Lifetime of a request (struct http_ctx):
 *  - the handler replies (http_reply_json / http_reply_error) exactly once; if it
 *    returns without replying and without http_ctx_hold(), the server answers
 *    500 "handler gave no answer";
 *  - after the reply the ctx is gone (it stays readable until the handler
 *    returns, so a handler may reply and then read its own fields);
 *  - long poll: the handler calls http_ctx_hold() and returns; later, on the SAME
 *    loop thread (a timer or event on http_ctx_base()), it replies. If the client
 *    goes away first, the function given to http_ctx_on_close() runs once on that
 *    loop and the ctx is gone when it returns: never reply to it afterwards.
 *    The server stopping counts as the client going away.
 * libevent's pthread locking is turned on, so another thread may wake a loop
 * with event_active() on an event created on that loop's base.
 */
#ifndef ONRAMP_HTTP_SERVER_H
#define ONRAMP_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_server;
struct http_ctx;

typedef void (*http_handler)(struct http_ctx *, void *arg);

struct http_route {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* exact, or a prefix when it ends in a star: "/api/devices/" + star */
	http_handler fn;
	void *arg;
};

struct http_server_opts {
	const char *address;		  /* numeric IPv4/IPv6 address to listen on, NULL: all */
	unsigned port;			  /* 0: any free port (see http_server_port) */
	const char *cert_file, *key_file; /* PEM: certificate chain, private key */
	unsigned threads;		  /* 0: one event loop per core */
	size_t max_body;		  /* request body limit in bytes, 0: 64 KiB */
	const struct http_route *routes;
	size_t n_routes;
	/* Called on each loop thread before it serves / after it stopped. */
	int (*thread_init)(void *arg, void **thread_state);
	void (*thread_fini)(void *thread_state);
	void *arg;
	/* Additions to the agreed contract (0 = default). */
	size_t max_headers; /* request line + headers, 0: 16 KiB */
	unsigned timeout_s; /* idle/read/write timeout of a connection, 0: 60 s */
	/* From a request's first byte (a connection's first request: from the
	 * accept, TLS handshake included) to its last, 0: 30 s. */
	unsigned request_timeout_s;
};

/* Binds, listens and starts the loops; listening when it returns 0. */
int http_server_start(const struct http_server_opts *, struct http_server **out);

/* The port actually listened on. */
unsigned http_server_port(const struct http_server *);

/*
 * Graceful drain (SIGTERM): http_server_stop_accepting() makes every loop stop accepting and
 * closes the listening socket (new connections are refused); requests on open connections
 * are still served, each answered with "Connection: close". The program then answers what it
 * holds (long polls), and http_server_wait_idle() waits until every dispatched request has
 * been answered and written, at most timeout_ms; it returns how many are still in flight
 * (http_server_stop then cuts them). Call both from a thread that is not a loop.
 */
void http_server_stop_accepting(struct http_server *);
unsigned http_server_wait_idle(struct http_server *, unsigned timeout_ms);

/* Stops every loop, closes all connections (held requests see on_close), runs
 * thread_fini on each loop, joins the threads and frees the server. Call it
 * from a thread that is not one of the server's loops. NULL is fine. */
void http_server_stop(struct http_server *);

void *http_ctx_thread_state(struct http_ctx *);
const char *http_ctx_method(struct http_ctx *);
/* The request path as sent (percent-encoding kept), without the query. */
const char *http_ctx_path(struct http_ctx *);
/* A query parameter, decoded, or NULL. */
const char *http_ctx_query(struct http_ctx *, const char *key);
const char *http_ctx_header(struct http_ctx *, const char *name);
/* The token of "Authorization: Bearer TOKEN", or NULL. */
const char *http_ctx_bearer(struct http_ctx *);
/* "ip:port" ("[ip]:port" for IPv6) of the client. */
const char *http_ctx_peer(struct http_ctx *);

/* The body as one JSON object. On -1 the server has already answered (400 with
 * the parse error, e.g. "malformed JSON at line 1 column 2: ..."); the handler
 * just returns. */
int http_ctx_json_body(struct http_ctx *, json_t **out);
/* The raw request body (not NUL-terminated; NULL when empty), left for the handler. */
const char *http_ctx_body(struct http_ctx *, size_t *len);

/* RFC 5705 / RFC 8446 exporter of this request's TLS connection, no context
 * (what `openssl s_client -keymatexport LABEL` prints). */
int http_ctx_exporter(struct http_ctx *, const char *label, uint8_t *out, size_t len);

/* Adds a response header; call before the reply. */
void http_reply_header(struct http_ctx *, const char *name, const char *value);
/* Sends status with body (may be NULL: no body); the reference is stolen. */
void http_reply_json(struct http_ctx *, int status, json_t *body);
/*
 * Deferred answers, for a caller that must finish work after the handler
 * answered and before the answer leaves (a transaction to commit, an audit
 * entry): after http_ctx_defer, replies are kept; http_ctx_reply_status says
 * the kept status (0: none yet) and http_ctx_reply_body its body (not
 * NUL-terminated), http_ctx_replace_reply swaps it for an
 * error, and http_ctx_flush sends it (500 when the handler gave none). Not
 * for a ctx that a handler holds.
 */
void http_ctx_defer(struct http_ctx *);
int http_ctx_reply_status(const struct http_ctx *);
const char *http_ctx_reply_body(const struct http_ctx *, size_t *len);
void http_ctx_replace_reply(struct http_ctx *, int status, const char *code, const char *message);
void http_ctx_flush(struct http_ctx *);

/* Answers with len bytes of data as content_type (never a secret; no-store unless set). */
void http_reply_body(struct http_ctx *, int status, const char *content_type, const void *data,
		     size_t len);
/* Sends {"error":{"code":code,"message":...}}. Never put a secret in it. */
void http_reply_error(struct http_ctx *, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Inside thread_init, thread_fini or a handler: the calling loop's event_base
 * (NULL on other threads). Lets thread_init create per-loop events. */
struct event_base *http_server_thread_base(void);

/* Long poll: see the top of this file. */
struct event_base *http_ctx_base(struct http_ctx *);
void http_ctx_hold(struct http_ctx *);
void http_ctx_on_close(struct http_ctx *, void (*fn)(void *arg), void *arg);

#endif
