/*
 * The router's one outbound HTTPS client, on libcurl.
 *
 * A session talks to one origin (https://host:port) over one TLS connection,
 * either direct or through an explicit web proxy with CONNECT, so that TLS
 * stays end to end. The peer is verified against the trust anchor given for
 * that destination only (never the system store, never unverified), with the
 * host name or IP address always checked, TLS 1.2 or later. Proxy credentials
 * come from the caller (configuration or the vault) and are never logged.
 *
 * Every failure is classified (enum http_err) and described in one sentence
 * that tells an operator what to check. See docs/http-client.md.
 */
#ifndef ONRAMP_HTTP_CLIENT_H
#define ONRAMP_HTTP_CLIENT_H

#include "core/secret.h"

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum proxy_auth { PROXY_AUTH_ANY = 0, PROXY_AUTH_BASIC, PROXY_AUTH_DIGEST };

struct http_proxy {
	char host[64]; /* IPv4 address, name, or IPv6 address without brackets */
	unsigned port;
	const char *user;	       /* NULL: no proxy credentials */
	const struct secret *password; /* with user; copied by http_session_open */
	enum proxy_auth auth;	       /* ANY: Basic or Digest, whichever the proxy asks for */
};

struct http_client_opts {
	const struct http_proxy *proxy; /* NULL: direct */
	const char *ca_pem; /* PEM text of the trust anchor(s) for this destination; required */
	long connect_timeout_ms; /* 0: 10000; covers proxy, CONNECT and TLS handshake */
	long total_timeout_ms;	 /* 0: 30000; one whole request */
	size_t body_max;	 /* 0: HTTP_BODY_MAX; the largest answer body taken */
	/*
	 * Optional: once *cancel is non-zero, a request in progress ends within
	 * about a second with HTTP_ERR_INTERNAL ("cancelled"), so that a thread
	 * blocked in a long poll can be stopped.
	 */
	volatile sig_atomic_t *cancel;
};

enum http_err {
	HTTP_OK = 0,
	HTTP_ERR_PROXY_UNREACHABLE, /* no TCP connection to the proxy */
	HTTP_ERR_PROXY_AUTH,	    /* the proxy wants credentials or refused them (407, or 401) */
	HTTP_ERR_PROXY_FORBIDDEN,   /* the proxy refused the CONNECT (403) */
	HTTP_ERR_PROXY_OTHER,	    /* the proxy answered CONNECT with something else */
	HTTP_ERR_DNS,		    /* a name (server's or proxy's) does not resolve */
	HTTP_ERR_CONNECT,	    /* the server cannot be reached (directly or by the proxy) */
	HTTP_ERR_TLS_UNTRUSTED,	    /* the certificate does not chain to the trust anchor */
	HTTP_ERR_TLS,		    /* other TLS failure, including a wrong host name */
	HTTP_ERR_TIMEOUT,	    /* connect or total timeout */
	HTTP_ERR_SERVER,	    /* the server answered 5xx */
	HTTP_ERR_PROTOCOL,	    /* a broken or oversized answer; a connection not allowed */
	HTTP_ERR_INTERNAL,	    /* bad arguments, out of memory */
};

struct http_response {
	long status;
	char *body; /* NUL-terminated (the NUL is not counted in body_len), "" when empty */
	size_t body_len;
	long retry_after_s; /* -1 none */
};

/* The largest response body accepted; a longer one fails with HTTP_ERR_PROTOCOL. */
#define HTTP_BODY_MAX (1024 * 1024)

/* Retry-After values are clamped to this many seconds (one day). */
#define HTTP_RETRY_AFTER_MAX_S 86400L

struct http_session; /* one origin (https://host:port), one reused TLS connection */

/* base_url is "https://host[:port]" (a trailing "/" is allowed, nothing else). */
int http_session_open(const char *base_url, const struct http_client_opts *,
		      struct http_session **out);

/*
 * 0 when an HTTP response arrived (any status; 5xx also sets *err =
 * HTTP_ERR_SERVER and or_error()); -1 with *err and or_error() when none did.
 * method is GET, POST, PUT, PATCH or DELETE; path starts with '/'.
 * body may be NULL (sent as JSON otherwise); bearer may be NULL.
 */
int http_session_request(struct http_session *, const char *method, const char *path,
			 const char *bearer, const json_t *body, struct http_response *resp,
			 enum http_err *err);

/*
 * RFC 5705 exporter of the session's TLS connection (no context). The last
 * request's connection must still be open. After it is taken, a request that
 * would need a NEW connection fails with HTTP_ERR_PROTOCOL instead of
 * silently reconnecting, and is never sent.
 */
int http_session_exporter(struct http_session *, const char *label, uint8_t *out, size_t len);

/* TCP connections the session opened so far (a proxy that closes after its 407 adds one). */
unsigned http_session_connects(const struct http_session *);

/* Sets (or, with NULL, removes) the session's cancel flag, as http_client_opts.cancel. */
void http_session_set_cancel(struct http_session *, volatile sig_atomic_t *cancel);

void http_session_close(struct http_session *);
/* Zeroes the body (it may carry a secret) and frees it. */
void http_response_free(struct http_response *);

/* "proxy-auth", "tls-untrusted", ...: stable names for logs, JSON and tests. */
const char *http_err_name(enum http_err);

#endif
