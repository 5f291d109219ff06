/*
 * HTTPS server: evhttp over bufferevent_openssl, one event loop per thread,
 * all loops accepting from one listening socket. See http_server.h for the
 * contract and docs/http-server.md for the design (memory per connection,
 * long poll, stop).
 *
 * Trust: requests come from anyone who can connect. evhttp parses them under
 * header/body limits, each within a deadline from its first byte
 * (http_deadline.c); one whose body length reads two ways is refused
 * (http_framing.c); routing uses the raw path; handlers get typed access. A
 * listener out of descriptors pauses instead of spinning (accept_pause.c).
 */
#include "server/http_server.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "server/accept_pause.h"
#include "server/http_deadline.h"
#include "server/http_framing.h"
#include "server/tls_exporter.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY (64 * 1024)
/* evhttp itself holds bodies up to this many times max_body (see loop_init). */
#define OVERSIZE_FACTOR 4
#define DEFAULT_MAX_HEADERS (16 * 1024)
#define DEFAULT_TIMEOUT_S 60
#define DEFAULT_REQUEST_TIMEOUT_S 30
#define LISTEN_BACKLOG 4096
#define MAX_LOOPS 256

struct loop {
	struct http_server *srv;
	unsigned index;
	pthread_t thread;
	bool thread_started;
	struct event_base *base;
	struct evhttp *http;
	struct event *stop_ev;
	struct event *drain_ev;		   /* "stop accepting", run on the loop */
	struct evhttp_bound_socket *bound; /* this loop's dup of the listening socket */
	bool accept_stopped;		   /* under srv->mu */
	struct accept_pause *pause;	   /* pauses the listener when accept() fails */
	void *thread_state;
	/* thread_init's outcome, under srv->mu */
	bool init_done;
	int init_rc;
	char init_err[OR_ERRMSG_MAX];
};

struct http_server {
	struct http_server_opts opts;
	SSL_CTX *ssl_ctx;
	int fd;
	unsigned port;
	unsigned n_loops;
	struct loop *loops;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Graceful drain: requests dispatched and not yet answered and written. */
	atomic_uint inflight;
	atomic_bool draining;
};

/*
 * A request in flight, for the graceful drain: from dispatch until evhttp wrote its whole
 * answer (on_complete) or its connection went away (close callback), whichever comes first;
 * that one lowers the count and frees this.
 */
struct req_track {
	struct http_server *srv;
};

struct http_ctx {
	struct evhttp_request *req;
	struct loop *loop;
	const char *method;
	const char *path;
	struct evkeyvalq query;
	bool query_parsed;
	bool in_handler, replied, held;
	/* A deferred answer (http_ctx_defer): kept until http_ctx_flush sends it. */
	bool defer, deferred;
	int deferred_status;
	const char *deferred_type;
	void *deferred_data;
	size_t deferred_len;
	char peer[80];
	void (*on_close)(void *arg);
	void *on_close_arg;
	struct req_track *track; /* counts the request in flight until written or gone */
	struct event *close_ev;	 /* watches the socket while held */
};

/* ---- TLS ---- */

/* Loads the certificate chain and key; TLS 1.2+ with forward-secret AEAD
 * suites only. Buffers are released on idle connections (see the docs). */
static int
tls_server_ctx(const char *cert_file, const char *key_file, SSL_CTX **out)
{
	SSL_CTX *ctx;
	unsigned long e;

	*out = NULL;
	if (cert_file == NULL || key_file == NULL)
		return or_error("http server: cert_file and key_file are required");
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return or_error("http server: cannot create a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/*
	 * No session resumption: routers open a new session for each exchange and
	 * never resume, so TLS 1.3 session tickets (two per handshake by default,
	 * each encrypted and sent) and a session cache would be work for nothing.
	 */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_set_num_tickets(ctx, 0) != 1)
		goto tls_fail;
	if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL") != 1)
		goto tls_fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		e = ERR_peek_last_error();
		SSL_CTX_free(ctx);
		return or_error("http server: cannot load certificate %s: %s", cert_file,
				ERR_reason_error_string(e) ? ERR_reason_error_string(e)
							   : "bad PEM");
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		e = ERR_peek_last_error();
		SSL_CTX_free(ctx);
		return or_error("http server: cannot load private key %s: %s", key_file,
				ERR_reason_error_string(e) ? ERR_reason_error_string(e)
							   : "bad PEM");
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		return or_error("http server: private key %s does not match certificate %s",
				key_file, cert_file);
	}
	ERR_clear_error();
	*out = ctx;
	return 0;
tls_fail:
	SSL_CTX_free(ctx);
	return or_error("http server: cannot configure TLS");
}

/* Responses up to this size go out as one TLS record (see coalesce_output). */
#define COALESCE_MAX (16 * 1024)

/*
 * The output buffer's callback: evhttp adds a response's headers and then its
 * body as separate chains, and bufferevent_openssl writes each chain as its own
 * TLS record (two records, two TCP segments per answer). Made contiguous here,
 * before the write event runs, a small answer is one record. Trusts nothing: it
 * only moves bytes already queued.
 */
static void
coalesce_output(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	size_t len = evbuffer_get_length(out);

	(void)arg;
	if (info->n_added > 0 && len > info->n_added && len <= COALESCE_MAX)
		evbuffer_pullup(out, -1);
}

/* evhttp's bevcb: every accepted connection gets its own SSL in accept state. */
static struct bufferevent *
make_tls_bev(struct event_base *base, void *arg)
{
	struct loop *lp = arg;
	struct bufferevent *bev;
	SSL *ssl = SSL_new(lp->srv->ssl_ctx);

	/*
	 * On NULL evhttp would fall back to a plain socket bufferevent; dispatch()
	 * refuses to serve a request on a connection without TLS, so that case
	 * only ever drops the connection.
	 */
	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* a client that closes TCP without close_notify is a normal close */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	if (http_deadline_attach(ssl, bev, base, lp->srv->opts.request_timeout_s) == -1) {
		log_error("%s", or_errmsg());
		bufferevent_free(bev);
		return NULL;
	}
	if (evbuffer_add_cb(bufferevent_get_output(bev), coalesce_output, NULL) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}

/* The TLS object of the request's connection, or NULL. */
static SSL *
request_ssl(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (evcon == NULL)
		return NULL;
	return bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(evcon));
}

/* ---- replies ---- */

/* Frees a ctx whose request is answered or gone. */
static void
ctx_free(struct http_ctx *ctx)
{
	if (ctx->query_parsed)
		evhttp_clear_headers(&ctx->query);
	if (ctx->close_ev != NULL)
		event_free(ctx->close_ev);
	free(ctx->deferred_data);
	free(ctx);
}

/* Sends a JSON error without a ctx (out of memory, no route). */
static void
send_error_raw(struct evhttp_request *req, int status, const char *code, const char *msg,
	       const char *allow)
{
	json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (allow != NULL)
		evhttp_add_header(h, "Allow", allow);
	if (buf != NULL && text != NULL)
		evbuffer_add(buf, text, strlen(text));
	evhttp_send_reply(req, status, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
	free(text);
	json_decref(body);
}

/* A counted request is done with (written, or its connection gone). NULL: not counted. */
static void
track_done(struct req_track *t)
{
	if (t == NULL)
		return;
	atomic_fetch_sub(&t->srv->inflight, 1);
	free(t);
}

/* The connection of a counted request went away before its answer was written. */
static void
request_gone(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	track_done(arg);
}

/* Stops watching a held request's connection: it is about to be answered. */
static void
unhold(struct http_ctx *ctx)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(ctx->req);

	if (!ctx->held)
		return;
	if (evcon != NULL)
		evhttp_connection_set_closecb(evcon, ctx->track ? request_gone : NULL, ctx->track);
	if (ctx->close_ev != NULL) {
		event_free(ctx->close_ev);
		ctx->close_ev = NULL;
	}
	ctx->held = false;
}

/* Adds a header to the answer; evhttp refuses CR/LF in names and values. */
void
http_reply_header(struct http_ctx *ctx, const char *name, const char *value)
{
	if (ctx->replied)
		return;
	if (evhttp_add_header(evhttp_request_get_output_headers(ctx->req), name, value) != 0)
		log_warn("http: response header %s refused (invalid characters)", name);
}

/*
 * Sends the one answer of a request: status, and len bytes of data as
 * content_type (no body when data is NULL). A held ctx is freed here
 * (outside its handler): after this call it is gone.
 */
static void
send_reply(struct http_ctx *ctx, int status, const char *content_type, const void *data, size_t len)
{
	struct evkeyvalq *h;
	struct evbuffer *buf = NULL;
	bool was_held = ctx->held;

	if (ctx->replied || ctx->deferred) {
		log_error("http: second reply to %s %s ignored", ctx->method, ctx->path);
		return;
	}
	if (ctx->defer) {
		ctx->deferred = true;
		ctx->deferred_status = status;
		ctx->deferred_type = content_type;
		if (data != NULL && (ctx->deferred_data = malloc(len ? len : 1)) != NULL)
			memcpy(ctx->deferred_data, data, len);
		ctx->deferred_len = len;
		if (data != NULL && ctx->deferred_data == NULL) {
			ctx->deferred_status = 500;
			ctx->deferred_type = NULL;
		}
		return;
	}
	ctx->replied = true;
	unhold(ctx);
	h = evhttp_request_get_output_headers(ctx->req);
	if (data != NULL) {
		buf = evbuffer_new();
		if (buf == NULL || evbuffer_add(buf, data, len) != 0) {
			log_error("http: out of memory answering %s %s", ctx->method, ctx->path);
			status = 500;
			if (buf != NULL)
				evbuffer_drain(buf, evbuffer_get_length(buf));
		}
		evhttp_add_header(h, "Content-Type", content_type);
	}
	if (evhttp_find_header(h, "Cache-Control") == NULL)
		evhttp_add_header(h, "Cache-Control", "no-store");
	/* A draining server serves no further request on this connection. */
	if (atomic_load(&ctx->loop->srv->draining))
		evhttp_add_header(h, "Connection", "close");
	if (status >= 500)
		log_warn("http: %s %s from %s -> %d", ctx->method, ctx->path, ctx->peer, status);
	else
		log_debug("http: %s %s from %s -> %d (loop %u)", ctx->method, ctx->path, ctx->peer,
			  status, ctx->loop->index);
	evhttp_send_reply(ctx->req, status, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
	/* inside the handler, dispatch() frees the ctx when the handler returns */
	if (was_held && !ctx->in_handler)
		ctx_free(ctx);
}

/* See http_server.h. */
void
http_ctx_defer(struct http_ctx *ctx)
{
	ctx->defer = true;
}

/* See http_server.h: 0 until an answer was given. */
int
http_ctx_reply_status(const struct http_ctx *ctx)
{
	return ctx->deferred ? ctx->deferred_status : 0;
}

/* See http_server.h: the kept answer's body (NULL when none). */
const char *
http_ctx_reply_body(const struct http_ctx *ctx, size_t *len)
{
	*len = ctx->deferred ? ctx->deferred_len : 0;
	return ctx->deferred ? ctx->deferred_data : NULL;
}

/* See http_server.h. */
void
http_ctx_replace_reply(struct http_ctx *ctx, int status, const char *code, const char *message)
{
	free(ctx->deferred_data);
	ctx->deferred_data = NULL;
	ctx->deferred = false;
	http_reply_error(ctx, status, code, "%s", message);
}

/* See http_server.h: sends what was deferred (500 when nothing was). */
void
http_ctx_flush(struct http_ctx *ctx)
{
	void *data = ctx->deferred_data;

	if (!ctx->defer)
		return;
	ctx->defer = false;
	if (!ctx->deferred) {
		http_reply_error(ctx, 500, "internal", "the request was not answered");
		return;
	}
	ctx->deferred = false;
	ctx->deferred_data = NULL;
	send_reply(ctx, ctx->deferred_status, ctx->deferred_type, data, ctx->deferred_len);
	free(data);
}

/* Sends a JSON answer; the body is ours to free. */
void
http_reply_json(struct http_ctx *ctx, int status, json_t *body)
{
	char *text = NULL;

	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (text == NULL) {
			log_error("http: out of memory answering %s %s", ctx->method, ctx->path);
			send_reply(ctx, 500, NULL, NULL, 0);
			return;
		}
	}
	send_reply(ctx, status, "application/json", text, text ? strlen(text) : 0);
	free(text);
}

/* Sends len bytes of data as content_type (a page, a script, a style sheet). */
void
http_reply_body(struct http_ctx *ctx, int status, const char *content_type, const void *data,
		size_t len)
{
	send_reply(ctx, status, content_type, data, len);
}

/* The JSON error answer: the message is formatted by our code, never a secret. */
void
http_reply_error(struct http_ctx *ctx, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_reply_json(ctx, status,
			json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

/* ---- request accessors ---- */

void *
http_ctx_thread_state(struct http_ctx *ctx)
{
	return ctx->loop->thread_state;
}

const char *
http_ctx_method(struct http_ctx *ctx)
{
	return ctx->method;
}

const char *
http_ctx_path(struct http_ctx *ctx)
{
	return ctx->path;
}

/* Parses the query string on first use; a malformed one has no parameters. */
const char *
http_ctx_query(struct http_ctx *ctx, const char *key)
{
	if (!ctx->query_parsed) {
		const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(ctx->req));

		TAILQ_INIT(&ctx->query);
		ctx->query_parsed = true;
		if (q != NULL && evhttp_parse_query_str(q, &ctx->query) != 0) {
			/* a malformed query string has no parameters */
			evhttp_clear_headers(&ctx->query);
			TAILQ_INIT(&ctx->query);
		}
	}
	return evhttp_find_header(&ctx->query, key);
}

const char *
http_ctx_header(struct http_ctx *ctx, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(ctx->req), name);
}

/* The token after "Bearer " (scheme case-insensitive); not checked here. */
const char *
http_ctx_bearer(struct http_ctx *ctx)
{
	const char *v = http_ctx_header(ctx, "Authorization");

	if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
		return NULL;
	v += 7;
	while (*v == ' ')
		v++;
	return *v != '\0' ? v : NULL;
}

const char *
http_ctx_peer(struct http_ctx *ctx)
{
	return ctx->peer;
}

struct event_base *
http_ctx_base(struct http_ctx *ctx)
{
	return ctx->loop->base;
}

/* Parses the body (at most max_body, as evhttp enforced) as one JSON object;
 * on failure the 400/413 answer is sent here. */
int
http_ctx_json_body(struct http_ctx *ctx, json_t **out)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(ctx->req);
	size_t len = evbuffer_get_length(in);
	const char *data;

	*out = NULL;
	if (len > ctx->loop->srv->opts.max_body) {
		http_reply_error(ctx, 413, "body-too-large",
				 "request body of %zu bytes is larger than the %zu allowed", len,
				 ctx->loop->srv->opts.max_body);
		return -1;
	}
	if (len == 0) {
		http_reply_error(ctx, 400, "bad-json", "a JSON object is expected as the body");
		return -1;
	}
	data = (const char *)evbuffer_pullup(in, -1);
	if (data == NULL ||
	    json_parse_object(data, len, ctx->loop->srv->opts.max_body, out) == -1) {
		http_reply_error(ctx, 400, "bad-json", "%s",
				 data ? or_errmsg() : "out of memory reading the body");
		return -1;
	}
	return 0;
}

/* See http_server.h: the raw body, left in place for the handler. */
const char *
http_ctx_body(struct http_ctx *ctx, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(ctx->req);

	*len = evbuffer_get_length(in);
	return *len ? (const char *)evbuffer_pullup(in, -1) : NULL;
}

/* Keying material of this request's own TLS connection (no context value). */
int
http_ctx_exporter(struct http_ctx *ctx, const char *label, uint8_t *out, size_t len)
{
	SSL *ssl = request_ssl(ctx->req);

	if (ssl == NULL)
		return or_error("http: the request has no TLS connection");
	return tls_exporter(ssl, label, out, len);
}

/* ---- long poll ---- */

/* evhttp frees a held request's connection (client gone, server stopping). */
static void
held_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct http_ctx *ctx = arg;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	ctx->held = false;
	ctx->replied = true; /* a reply from on_close is ignored */
	track_done(ctx->track);
	if (ctx->on_close != NULL)
		ctx->on_close(ctx->on_close_arg);
	ctx_free(ctx);
}

/*
 * Something happened on a held request's socket: a FIN (EV_CLOSED), a reset
 * (libevent's epoll reports EPOLLHUP/EPOLLERR as EV_READ, never EV_CLOSED), or
 * bytes. evhttp does not read while a request is being answered (it would
 * abort on data in that state), so it would only notice at the reply. A
 * long-poll client sends nothing while it waits except a TLS close_notify, so
 * any of these means the client is gone: freeing the connection runs
 * held_conn_closed. (A client pipelining a request behind a long poll loses
 * its connection; documented in docs/http-server.md.)
 */
static void
held_peer_closed(evutil_socket_t fd, short what, void *arg)
{
	struct http_ctx *ctx = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(ctx->req);

	(void)fd;
	log_debug("http: client %s of held %s %s went away (%s)", ctx->peer, ctx->method, ctx->path,
		  (what & EV_CLOSED) ? "closed" : "reset or sent data");
	if (evcon != NULL)
		evhttp_connection_free(evcon);
}

void
http_ctx_hold(struct http_ctx *ctx)
{
	if (!ctx->replied)
		ctx->held = true;
}

void
http_ctx_on_close(struct http_ctx *ctx, void (*fn)(void *arg), void *arg)
{
	ctx->on_close = fn;
	ctx->on_close_arg = arg;
}

/* Called when a handler returned holding its request: watch for hang-up. */
static int
start_hold(struct http_ctx *ctx)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(ctx->req);
	evutil_socket_t fd;

	if (evcon == NULL)
		return -1;
	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	ctx->close_ev = event_new(ctx->loop->base, fd, EV_READ | EV_CLOSED, held_peer_closed, ctx);
	if (ctx->close_ev == NULL || event_add(ctx->close_ev, NULL) != 0)
		return -1;
	evhttp_connection_set_closecb(evcon, held_conn_closed, ctx);
	return 0;
}

/* ---- dispatch ---- */

/* The method's name as routes spell it. */
static const char *
method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "UNKNOWN";
}

/* Exact match, or prefix match when the route ends in a star. */
static bool
path_matches(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);

	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, path, n - 1) == 0;
	return strcmp(pattern, path) == 0;
}

/* Finds the route; *allow lists the methods of routes whose path matched. */
static const struct http_route *
find_route(const struct http_server_opts *o, const char *method, const char *path, char *allow,
	   size_t allow_len)
{
	allow[0] = '\0';
	for (size_t i = 0; i < o->n_routes; i++) {
		const struct http_route *r = &o->routes[i];

		if (!path_matches(r->path, path))
			continue;
		if (strcmp(r->method, method) == 0)
			return r;
		if (strstr(allow, r->method) == NULL) {
			size_t used = strlen(allow);

			snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "",
				 r->method);
		}
	}
	return NULL;
}

/* "ip:port" of the client, from the address evhttp got at accept. */
static void
set_peer(struct http_ctx *ctx)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(ctx->req);
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &addr, &port);
	if (addr == NULL)
		snprintf(ctx->peer, sizeof(ctx->peer), "unknown");
	else if (strchr(addr, ':') != NULL)
		snprintf(ctx->peer, sizeof(ctx->peer), "[%s]:%u", addr, port);
	else
		snprintf(ctx->peer, sizeof(ctx->peer), "%s:%u", addr, port);
}

/* evhttp wrote the whole answer to a request counted in flight. */
static void
request_complete(struct evhttp_request *req, void *arg)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (evcon != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	track_done(arg);
}

/* evhttp's generic callback: every complete request arrives here. */
static void
dispatch(struct evhttp_request *req, void *arg)
{
	struct loop *lp = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *method = method_name(evhttp_request_get_command(req));
	const struct http_route *route;
	struct http_ctx *ctx;
	const char *framing;
	char allow[128];

	if (request_ssl(req) == NULL) {
		/* only when make_tls_bev failed: never serve HTTP in clear */
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);

		log_error("http: connection without TLS dropped");
		if (evcon != NULL)
			evhttp_connection_free(evcon);
		return;
	}
	http_deadline_request_done(request_ssl(req), evhttp_connection_get_bufferevent(
							     evhttp_request_get_connection(req)));
	if (http_framing_check(evhttp_request_get_input_headers(req), &framing) == -1) {
		/* Which bytes were its body is in doubt: read nothing more. */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		send_error_raw(req, 400, "bad-request", framing, NULL);
		return;
	}
	if (path == NULL || path[0] != '/') {
		send_error_raw(req, 400, "bad-request", "the request target must be a path", NULL);
		return;
	}
	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > lp->srv->opts.max_body) {
		char msg[96];

		snprintf(msg, sizeof(msg), "request body is larger than the %zu bytes allowed",
			 lp->srv->opts.max_body);
		/* The client sent what we will not read: do not keep its connection. */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		send_error_raw(req, 413, "body-too-large", msg, NULL);
		return;
	}
	route = find_route(&lp->srv->opts, method, path, allow, sizeof(allow));
	if (route == NULL) {
		if (allow[0] != '\0')
			send_error_raw(req, 405, "method-not-allowed",
				       "method not allowed on this path", allow);
		else
			send_error_raw(req, 404, "not-found", "no such path", NULL);
		return;
	}
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		send_error_raw(req, 503, "internal", "out of memory", NULL);
		return;
	}
	ctx->req = req;
	ctx->loop = lp;
	if (evhttp_request_get_connection(req) != NULL &&
	    (ctx->track = calloc(1, sizeof(*ctx->track))) != NULL) {
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);

		ctx->track->srv = lp->srv;
		atomic_fetch_add(&lp->srv->inflight, 1);
		evhttp_request_set_on_complete_cb(req, request_complete, ctx->track);
		evhttp_connection_set_closecb(evcon, request_gone, ctx->track);
	}
	ctx->method = method;
	ctx->path = path;
	set_peer(ctx);

	/* in_handler stays set until dispatch is done with the ctx: a reply
	 * before that must not free it under our feet */
	ctx->in_handler = true;
	route->fn(ctx, route->arg);
	if (ctx->held && !ctx->replied) {
		if (start_hold(ctx) == 0) {
			ctx->in_handler = false;
			return;
		}
		http_reply_error(ctx, 500, "internal", "cannot hold the request");
	}
	if (!ctx->replied) {
		log_error("http: handler of %s %s gave no answer", method, path);
		http_reply_error(ctx, 500, "internal", "handler gave no answer");
	}
	ctx_free(ctx);
}

/* ---- loops ---- */

/* Runs on the loop when http_server_stop activated its stop event. */
static void
stop_loop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop *lp = arg;

	(void)fd;
	(void)what;
	event_base_loopbreak(lp->base);
}

/*
 * The second half of a loop's drain, one loop iteration after the first: by
 * then the base's changelist has taken the listener out of epoll, so closing
 * this loop's dup of the listening socket leaves no interest behind. (Closed
 * first, the queued removal would fail on a closed descriptor while the other
 * loops' dups keep the socket open in the kernel, and a drained loop would be
 * woken for every connection waiting in the backlog.)
 */
static void
drain_close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop *lp = arg;

	(void)fd;
	(void)what;
	if (lp->bound != NULL)
		evhttp_del_accept_socket(lp->http, lp->bound);
	lp->bound = NULL;
	pthread_mutex_lock(&lp->srv->mu);
	lp->accept_stopped = true;
	pthread_cond_broadcast(&lp->srv->cv);
	pthread_mutex_unlock(&lp->srv->mu);
}

/* Runs on the loop when http_server_stop_accepting activated its drain event. */
static void
drain_loop_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval next_iteration = {0, 0};
	struct loop *lp = arg;

	(void)fd;
	(void)what;
	/* its resume timer would enable the listener freed below */
	accept_pause_free(lp->pause);
	lp->pause = NULL;
	if (lp->bound != NULL)
		evconnlistener_disable(evhttp_bound_socket_get_listener(lp->bound));
	if (event_base_once(lp->base, -1, EV_TIMEOUT, drain_close_cb, lp, &next_iteration) == -1)
		drain_close_cb(-1, EV_TIMEOUT, lp);
}

static _Thread_local struct event_base *current_base;

struct event_base *
http_server_thread_base(void)
{
	return current_base;
}

/* A loop thread: thread_init, serve until stopped, close all, thread_fini. */
static void *
loop_main(void *arg)
{
	struct loop *lp = arg;
	struct http_server *srv = lp->srv;
	int rc = 0;

	or_error_clear();
	current_base = lp->base;
	if (srv->opts.thread_init != NULL)
		rc = srv->opts.thread_init(srv->opts.arg, &lp->thread_state);
	pthread_mutex_lock(&srv->mu);
	lp->init_done = true;
	lp->init_rc = rc;
	if (rc != 0)
		snprintf(lp->init_err, sizeof(lp->init_err), "%s", or_errmsg());
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);

	if (rc == 0) {
		event_base_dispatch(lp->base);
		accept_pause_free(lp->pause);
		lp->pause = NULL;
		/* closes every connection; held requests get their on_close here */
		evhttp_free(lp->http);
		lp->http = NULL;
		/*
		 * A connection's bufferevent is freed by a finalizer that runs on the
		 * loop; one more pass runs those of the connections just closed.
		 */
		event_base_loop(lp->base, EVLOOP_NONBLOCK);
		if (srv->opts.thread_fini != NULL)
			srv->opts.thread_fini(lp->thread_state);
	}
	return NULL;
}

/*
 * A loop's event base. With epoll's changelist, the interest changes made while
 * handling events (bufferevent_openssl and evhttp enable and disable a
 * connection's reading and writing several times per request) are folded into
 * at most one epoll_ctl per descriptor before the next epoll_wait, instead of
 * one system call each. libevent warns that the changelist is not safe with
 * descriptors cloned by dup(), and each loop listens on its own dup of the
 * listening socket: epoll keeps a registration until every dup is closed, so a
 * removal queued in the changelist must reach the kernel before the loop
 * closes its dup (drain_loop_cb waits one iteration for that).
 */
static struct event_base *
loop_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base = NULL;

	if (cfg == NULL)
		return NULL;
	if (event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0)
		base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

/* Creates a loop's base and evhttp, accepting on a dup of the shared socket. */
static int
loop_setup(struct http_server *srv, struct loop *lp)
{
	const struct http_server_opts *o = &srv->opts;
	struct timeval tv = {.tv_sec = o->timeout_s};
	int fd;

	lp->srv = srv;
	if ((lp->base = loop_base_new()) == NULL || (lp->http = evhttp_new(lp->base)) == NULL)
		return or_error("http server: cannot create event loop %u", lp->index);
	lp->stop_ev = event_new(lp->base, -1, 0, stop_loop_cb, lp);
	lp->drain_ev = event_new(lp->base, -1, 0, drain_loop_cb, lp);
	if (lp->stop_ev == NULL || lp->drain_ev == NULL)
		return or_error("http server: cannot create event loop %u", lp->index);
	evhttp_set_bevcb(lp->http, make_tls_bev, lp);
	evhttp_set_gencb(lp->http, dispatch, lp);
	/*
	 * evhttp answers an over-limit body itself, with an HTML page (libevent
	 * 2.1 has no hook for it). So it holds up to OVERSIZE_FACTOR times
	 * max_body, bounded memory still, and dispatch() refuses anything past
	 * max_body with our JSON 413; only bodies past that bound get evhttp's page.
	 */
	evhttp_set_max_body_size(lp->http, (ev_ssize_t)(o->max_body * OVERSIZE_FACTOR));
	evhttp_set_max_headers_size(lp->http, (ev_ssize_t)o->max_headers);
	evhttp_set_timeout_tv(lp->http, &tv);
	/* every method reaches dispatch(), which answers 405 itself */
	evhttp_set_allowed_methods(lp->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						     EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	if ((fd = fcntl(srv->fd, F_DUPFD_CLOEXEC, 0)) == -1)
		return or_error("http server: dup: %s", strerror(errno));
	if ((lp->bound = evhttp_accept_socket_with_handle(lp->http, fd)) == NULL) {
		close(fd);
		return or_error("http server: cannot accept on the listening socket");
	}
	return accept_pause_watch(evhttp_bound_socket_get_listener(lp->bound), "http server",
				  &lp->pause);
}

/* Binds and listens on address:port (numeric), non-blocking. */
static int
listen_socket(const char *address, unsigned port, int *fd_out, unsigned *port_out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char portstr[16];
	int fd = -1, one = 1, rc;

	*fd_out = -1;
	if (port > 65535)
		return or_error("http server: port %u is out of range", port);
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((rc = getaddrinfo(address, portstr, &hints, &ai)) != 0)
		return or_error("http server: bad listen address '%s': %s",
				address ? address : "(any)", gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		rc = or_error("http server: socket: %s", strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/*
	 * Accepted sockets inherit TCP_NODELAY on Linux. evhttp writes a response's
	 * headers and body as two TLS records; with Nagle the second waits for the
	 * client's delayed ACK (~40 ms) on a kept-alive connection.
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(fd, LISTEN_BACKLOG) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		rc = or_error("http server: cannot listen on %s port %u: %s",
			      address ? address : "(any)", port, strerror(errno));
		goto out;
	}
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	fd = -1;
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static int threads_rc;

/* libevent's own messages (a failing accept, say) go to our log, which folds floods. */
static void
libevent_log(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_DEBUG:
		log_debug("libevent: %s", msg);
		break;
	case EVENT_LOG_MSG:
		log_info("libevent: %s", msg);
		break;
	case EVENT_LOG_WARN:
		log_warn("libevent: %s", msg);
		break;
	default:
		log_error("libevent: %s", msg);
		break;
	}
}

/*
 * Process-wide setup, once: libevent locking (other threads may event_active()
 * a loop's events), SIGPIPE ignored (OpenSSL writes to sockets with write(),
 * and a client gone mid-reply must not kill the daemon), and the descriptor
 * limit raised to its hard maximum (a conductor holds 10,000 connections).
 */
static void
process_setup(void)
{
	struct rlimit rl;

	threads_rc = evthread_use_pthreads();
	if (threads_rc == 0)
		threads_rc = http_deadline_init();
	event_set_log_callback(libevent_log);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Undoes a partial start, keeping the error message of what failed. */
static int
start_failed(struct http_server *srv)
{
	char msg[OR_ERRMSG_MAX];

	snprintf(msg, sizeof(msg), "%s", or_errmsg());
	http_server_stop(srv);
	return or_error("%s", msg);
}

/*
 * Checks the routes, loads the certificate, listens, starts the loops and
 * waits for every thread_init; any failure undoes the start.
 */
int
http_server_start(const struct http_server_opts *opts, struct http_server **out)
{
	struct http_server *srv;
	long cores;

	*out = NULL;
	pthread_once(&threads_once, process_setup);
	if (threads_rc != 0)
		return or_error(
			"http server: cannot enable libevent threads or the request deadline");
	for (size_t i = 0; i < opts->n_routes; i++)
		if (opts->routes[i].method == NULL || opts->routes[i].path == NULL ||
		    opts->routes[i].path[0] != '/' || opts->routes[i].fn == NULL)
			return or_error("http server: route %zu is incomplete", i);
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return or_error("http server: out of memory");
	srv->opts = *opts;
	srv->fd = -1;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	if (srv->opts.max_body == 0)
		srv->opts.max_body = DEFAULT_MAX_BODY;
	if (srv->opts.max_headers == 0)
		srv->opts.max_headers = DEFAULT_MAX_HEADERS;
	if (srv->opts.timeout_s == 0)
		srv->opts.timeout_s = DEFAULT_TIMEOUT_S;
	if (srv->opts.request_timeout_s == 0)
		srv->opts.request_timeout_s = DEFAULT_REQUEST_TIMEOUT_S;
	srv->n_loops = opts->threads;
	if (srv->n_loops == 0) {
		cores = sysconf(_SC_NPROCESSORS_ONLN);
		srv->n_loops = cores > 0 ? (unsigned)cores : 1;
	}
	if (srv->n_loops > MAX_LOOPS) {
		or_error("http server: %u threads asked for, at most %d", srv->n_loops, MAX_LOOPS);
		goto fail;
	}
	if (tls_server_ctx(opts->cert_file, opts->key_file, &srv->ssl_ctx) == -1 ||
	    listen_socket(opts->address, opts->port, &srv->fd, &srv->port) == -1)
		goto fail;
	if ((srv->loops = calloc(srv->n_loops, sizeof(*srv->loops))) == NULL) {
		or_error("http server: out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < srv->n_loops; i++) {
		srv->loops[i].index = i;
		if (loop_setup(srv, &srv->loops[i]) == -1)
			goto fail;
	}
	for (unsigned i = 0; i < srv->n_loops; i++) {
		if (pthread_create(&srv->loops[i].thread, NULL, loop_main, &srv->loops[i]) != 0) {
			or_error("http server: cannot start thread %u", i);
			goto fail;
		}
		srv->loops[i].thread_started = true;
	}
	/* wait for every thread_init; the first failure fails the start */
	pthread_mutex_lock(&srv->mu);
	for (unsigned i = 0; i < srv->n_loops; i++) {
		while (!srv->loops[i].init_done)
			pthread_cond_wait(&srv->cv, &srv->mu);
		if (srv->loops[i].init_rc != 0) {
			or_error("http server: thread %u: %s", i, srv->loops[i].init_err);
			pthread_mutex_unlock(&srv->mu);
			goto fail;
		}
	}
	pthread_mutex_unlock(&srv->mu);
	log_info("https server listening on %s port %u with %u event loops",
		 opts->address ? opts->address : "(any)", srv->port, srv->n_loops);
	*out = srv;
	return 0;
fail:
	return start_failed(srv);
}

unsigned
http_server_port(const struct http_server *srv)
{
	return srv->port;
}

/*
 * Graceful drain, first half: every loop stops accepting and the listening socket is closed,
 * so new connections are refused (a balancer sends them elsewhere). Requests on connections
 * already open are still served, each answer with "Connection: close".
 */
void
http_server_stop_accepting(struct http_server *srv)
{
	if (srv == NULL || atomic_exchange(&srv->draining, true))
		return;
	for (unsigned i = 0; i < srv->n_loops; i++)
		event_active(srv->loops[i].drain_ev, 0, 0);
	pthread_mutex_lock(&srv->mu);
	for (unsigned i = 0; i < srv->n_loops; i++)
		while (!srv->loops[i].accept_stopped)
			pthread_cond_wait(&srv->cv, &srv->mu);
	pthread_mutex_unlock(&srv->mu);
	close(srv->fd);
	srv->fd = -1;
}

/*
 * Graceful drain, second half: waits until every request dispatched so far is answered and
 * its answer written, at most timeout_ms; returns how many are still in flight.
 */
unsigned
http_server_wait_idle(struct http_server *srv, unsigned timeout_ms)
{
	const struct timespec step = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
	unsigned waited = 0, left;

	if (srv == NULL)
		return 0;
	while ((left = atomic_load(&srv->inflight)) > 0 && waited < timeout_ms) {
		nanosleep(&step, NULL);
		waited += 20;
	}
	return left;
}

/* Stops and joins every loop, then frees what start made; safe on a partial start. */
void
http_server_stop(struct http_server *srv)
{
	if (srv == NULL)
		return;
	for (unsigned i = 0; srv->loops != NULL && i < srv->n_loops; i++)
		if (srv->loops[i].thread_started)
			event_active(srv->loops[i].stop_ev, 0, 0);
	for (unsigned i = 0; srv->loops != NULL && i < srv->n_loops; i++) {
		struct loop *lp = &srv->loops[i];

		if (lp->thread_started)
			pthread_join(lp->thread, NULL);
		accept_pause_free(lp->pause);
		if (lp->http != NULL)
			evhttp_free(lp->http);
		if (lp->stop_ev != NULL)
			event_free(lp->stop_ev);
		if (lp->drain_ev != NULL)
			event_free(lp->drain_ev);
		if (lp->base != NULL)
			event_base_free(lp->base);
	}
	free(srv->loops);
	if (srv->fd != -1)
		close(srv->fd);
	SSL_CTX_free(srv->ssl_ctx);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cv);
	free(srv);
}
