/*
 * The outbound HTTPS client on libcurl (see http_client.h).
 *
 * What it trusts: the trust anchor and proxy settings its caller gives it.
 * What it does not: anything from the network. Proxy answers, reason phrases
 * and headers are bounded and reduced to printable ASCII before they reach an
 * error message; response bodies are capped at HTTP_BODY_MAX.
 *
 * Secrets: the proxy password and bearer tokens are handed to libcurl and
 * zeroed in our own buffers after use; CURLOPT_VERBOSE is never set, so curl
 * never prints a header. Custom headers (the bearer) go to the origin only,
 * never in the CONNECT request (CURLHEADER_SEPARATE).
 */
#include "net/http_client.h"

#include "core/anchors.h"
#include "core/error.h"
#include "core/x509.h"
#include "net/http_classify.h"
#include "net/http_parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TOTAL_TIMEOUT_MS 30000L
/* Longest sleep of a transfer with nothing to do; curl's own deadlines come first. */
#define IDLE_WAIT_MAX_MS 30000L
/* With a cancel flag, how often a waiting transfer looks at it (curl_easy_perform's pace). */
#define CANCEL_CHECK_MS 1000L
#define PATH_MAX_LEN 2048
#define BEARER_MAX_LEN 4096
#define LABEL_MAX_LEN 255
#define EXPORTER_MAX_LEN 1024
#define NOTE_MAX 96 /* bounded copies of proxy-supplied text */

/* What one request learned from curl's callbacks; reset before each request. */
struct request_state {
	char *body;
	size_t body_len, body_cap;
	size_t body_max; /* the session's cap */
	bool body_too_big;
	long retry_after_s;
	bool tcp_connected;    /* a socket closed during the request had been connected */
	bool tunnel_up;	       /* the prereq callback ran: connected, TLS done, request next */
	bool refused_new_conn; /* a new connection after the exporter was taken */
	bool not_openssl;
	char reason[NOTE_MAX];	      /* reason phrase of the latest status line */
	char proxy_reason[NOTE_MAX];  /* status line of the proxy's CONNECT answer */
	char squid_error[NOTE_MAX];   /* X-Squid-Error of the CONNECT answer */
	char proxy_schemes[NOTE_MAX]; /* schemes offered in Proxy-Authenticate */
	bool proxy_offered_basic;     /* a proxy answer offered Basic and nothing else */
};

/*
 * Proxies that asked for Basic and nothing else, learned while set to "any":
 * later tunnels through them send the credentials with the first CONNECT
 * instead of waiting for a 407 each time. Process-wide (every session of
 * the agent's threads), small, forgotten when Basic is refused.
 */
#define BASIC_PROXIES_MAX 8
static struct {
	pthread_mutex_t lock;
	char label[BASIC_PROXIES_MAX][80];
	unsigned next;
} basic_proxies = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Whether proxy label is known to take Basic alone. */
static bool
proxy_known_basic(const char *label)
{
	bool found = false;

	pthread_mutex_lock(&basic_proxies.lock);
	for (unsigned i = 0; i < BASIC_PROXIES_MAX && !found; i++)
		found = strcmp(basic_proxies.label[i], label) == 0;
	pthread_mutex_unlock(&basic_proxies.lock);
	return found;
}

/* Remembers (basic) or forgets that proxy label takes Basic alone. */
static void
proxy_set_basic(const char *label, bool basic)
{
	int slot = -1;

	pthread_mutex_lock(&basic_proxies.lock);
	for (unsigned i = 0; i < BASIC_PROXIES_MAX && slot < 0; i++)
		if (strcmp(basic_proxies.label[i], label) == 0)
			slot = (int)i;
	if (!basic && slot >= 0)
		basic_proxies.label[slot][0] = '\0';
	if (basic && slot < 0)
		snprintf(basic_proxies.label[basic_proxies.next++ % BASIC_PROXIES_MAX],
			 sizeof(basic_proxies.label[0]), "%s", label);
	pthread_mutex_unlock(&basic_proxies.lock);
}

struct http_session {
	CURL *curl;
	char *base;		  /* "https://host:port" */
	char *origin;		  /* "host:port", for messages */
	char *host;		  /* as in the URL (IPv6 in brackets) */
	STACK_OF(X509) * anchors; /* references to the process's parsed anchors */
	bool has_proxy;
	char proxy_label[80]; /* "host:port" */
	char *proxy_user;
	char *proxy_password; /* OPENSSL_malloc'd, zeroed on close */
	size_t proxy_password_len;
	enum proxy_auth proxy_auth;
	long connect_timeout_ms, total_timeout_ms;
	size_t body_max;
	char errbuf[CURL_ERROR_SIZE];
	struct request_state cur;
	SSL *ssl; /* the last request's connection; owned by curl */
	bool exporter_taken;
	unsigned connects;
	volatile sig_atomic_t *cancel; /* NULL: never cancelled */
	CURLM *multi;		       /* runs the transfers; holds the kept connection */
	bool in_multi;		       /* the last transfer's handle is still in it */
};

/* Fills the session's base, host and "host:port"; the URL must be https://host[:port][/]. */
static int
parse_base(struct http_session *s, const char *base_url)
{
	char *host, *port, *target;
	int rc = -1;

	if (http_url_host_port_target(base_url, &host, &port, &target) == -1)
		return -1;
	if (strcmp(target, "/") != 0) {
		or_error("'%s' must be only https://host[:port] (no path or query)", base_url);
		goto out;
	}
	if (asprintf(&s->origin, "%s:%s", host, port) < 0) {
		s->origin = NULL;
		or_error("out of memory");
		goto out;
	}
	if (asprintf(&s->base, "https://%s", s->origin) < 0) {
		s->base = NULL;
		or_error("out of memory");
		goto out;
	}
	if ((s->host = strdup(host)) == NULL) {
		or_error("out of memory");
		goto out;
	}
	rc = 0;
out:
	curl_free(host);
	curl_free(port);
	free(target);
	return rc;
}

/* Keeps our own copies of the proxy settings: the caller's may go away after open. */
static int
copy_proxy(struct http_session *s, const struct http_proxy *p)
{
	const char *fmt = strchr(p->host, ':') ? "[%s]:%u" : "%s:%u";

	if (memchr(p->host, '\0', sizeof(p->host)) == NULL || !http_valid_host(p->host))
		return or_error("the proxy host is not a valid name or address");
	if (p->port == 0 || p->port > 65535)
		return or_error("the proxy port must be from 1 to 65535");
	if (p->auth != PROXY_AUTH_ANY && p->auth != PROXY_AUTH_BASIC &&
	    p->auth != PROXY_AUTH_DIGEST)
		return or_error("unknown proxy authentication scheme");
	snprintf(s->proxy_label, sizeof(s->proxy_label), fmt, p->host, p->port);
	s->has_proxy = true;
	s->proxy_auth = p->auth;
	if (p->user == NULL)
		return 0;
	if (p->user[0] == '\0' || strlen(p->user) > 255 || strpbrk(p->user, ":\r\n") != NULL)
		return or_error(
			"the proxy user must be 1 to 255 characters without ':' or line breaks");
	if (p->password == NULL || p->password->data == NULL)
		return or_error("a proxy user needs a password");
	if (memchr(p->password->data, '\0', p->password->len) != NULL ||
	    memchr(p->password->data, '\n', p->password->len) != NULL ||
	    memchr(p->password->data, '\r', p->password->len) != NULL)
		return or_error("the proxy password contains a NUL or line-break character");
	if ((s->proxy_user = strdup(p->user)) == NULL ||
	    (s->proxy_password = OPENSSL_malloc(p->password->len + 1)) == NULL)
		return or_error("out of memory");
	memcpy(s->proxy_password, p->password->data, p->password->len);
	s->proxy_password[p->password->len] = '\0';
	s->proxy_password_len = p->password->len;
	return 0;
}

/* Zeroes and frees a buffer that may have held a secret (a token, a pre-shared key). */
static void
clear_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

/* Collects the response body, refusing more than the session's cap. */
static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct request_state *r = arg;
	size_t len = size * n, cap;
	char *grown;

	if (len > r->body_max - r->body_len) {
		r->body_too_big = true;
		return 0;
	}
	if (r->body_len + len + 1 > r->body_cap) {
		cap = r->body_cap ? r->body_cap : 4096;
		while (cap < r->body_len + len + 1)
			cap *= 2;
		/* Not realloc: the old buffer is zeroed, as bodies may carry secrets. */
		if ((grown = malloc(cap)) == NULL)
			return 0;
		if (r->body != NULL)
			memcpy(grown, r->body, r->body_len);
		clear_free(r->body, r->body_cap);
		r->body = grown;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return len;
}

/* Appends the scheme word of a Proxy-Authenticate value ("Basic", "Digest") to the list. */
static void
note_scheme(struct request_state *r, const char *value)
{
	char word[24];
	size_t len = strcspn(value, " \t,");
	size_t used = strlen(r->proxy_schemes);

	http_printable(word, sizeof(word), value, len);
	if (word[0] == '\0' || strstr(r->proxy_schemes, word) != NULL)
		return;
	snprintf(r->proxy_schemes + used, sizeof(r->proxy_schemes) - used, "%s%s", used ? ", " : "",
		 word);
}

/*
 * Sees every header line, the proxy's CONNECT answer included (it comes before
 * the prereq callback). Keeps what classifies a failed CONNECT and the
 * origin's Retry-After.
 */
static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct http_session *s = arg;
	struct request_state *r = &s->cur;
	size_t len = size * n, name_len;
	const char *colon, *sp;
	char value[NOTE_MAX];
	long ra;

	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* A new response: CONNECT answer, an auth round trip, 1xx, or the final one. */
		sp = memchr(data, ' ', len);
		http_printable(r->reason, sizeof(r->reason), sp ? sp : data,
			       sp ? len - (size_t)(sp - data) : len);
		r->retry_after_s = -1;
		r->body_len = 0;
		if (!r->tunnel_up && s->has_proxy) {
			if (strcmp(r->proxy_schemes, "Basic") == 0)
				r->proxy_offered_basic = true;
			memcpy(r->proxy_reason, r->reason, sizeof(r->reason));
			r->squid_error[0] = r->proxy_schemes[0] = '\0';
		}
		return len;
	}
	if ((colon = memchr(data, ':', len)) == NULL)
		return len;
	name_len = (size_t)(colon - data);
	http_printable(value, sizeof(value), colon + 1, len - name_len - 1);
	if (!r->tunnel_up && s->has_proxy) {
		if (name_len == 13 && strncasecmp(data, "X-Squid-Error", 13) == 0)
			memcpy(r->squid_error, value, sizeof(value));
		else if (name_len == 18 && strncasecmp(data, "Proxy-Authenticate", 18) == 0)
			note_scheme(r, value);
	} else if (r->tunnel_up && name_len == 11 && strncasecmp(data, "Retry-After", 11) == 0) {
		if (http_parse_retry_after(value, time(NULL), &ra) == 0)
			r->retry_after_s = ra;
	}
	return len;
}

/*
 * Runs once the connection (new or reused) is ready and before the request
 * is sent: remembers its TLS object for the exporter, and refuses a new
 * connection once the exporter was taken, so nothing is sent over a
 * connection the exporter does not bind.
 */
static int
on_prereq(void *arg, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	struct http_session *s = arg;
	struct curl_tlssessioninfo *tls = NULL;
	long fresh = 1;

	(void)primary_ip, (void)local_ip, (void)primary_port, (void)local_port;
	s->cur.tunnel_up = true;
	(void)curl_easy_getinfo(s->curl, CURLINFO_NUM_CONNECTS, &fresh);
	if (fresh > 0 && s->exporter_taken) {
		s->cur.refused_new_conn = true;
		return CURL_PREREQFUNC_ABORT;
	}
	if (curl_easy_getinfo(s->curl, CURLINFO_TLS_SSL_PTR, &tls) != CURLE_OK || tls == NULL ||
	    tls->backend != CURLSSLBACKEND_OPENSSL || tls->internals == NULL) {
		s->cur.not_openssl = true;
		return CURL_PREREQFUNC_ABORT;
	}
	s->ssl = tls->internals;
	return CURL_PREREQFUNC_OK;
}

/*
 * Called for each new connection's SSL_CTX, before curl sets up its own
 * store: the peer's chain is verified against a store of the session's
 * anchors only (SSL_CTX_set1_verify_cert_store, which OpenSSL uses for the
 * peer before the context's certificate store, and which curl never touches:
 * no CA of curl's, no fallback to the system's, nothing from curl's CA cache
 * can be trusted), from certificates parsed once per process (core/anchors.h)
 * rather than a CA text curl parsed for every connection. Also makes OpenSSL
 * itself check the host name or IP address during the handshake (curl checks
 * it again after), so a wrong name is reported as
 * X509_V_ERR_HOSTNAME_MISMATCH or X509_V_ERR_IP_ADDRESS_MISMATCH rather than
 * as an unspecified failure.
 */
static CURLcode
on_ssl_ctx(CURL *curl, void *ssl_ctx, void *arg)
{
	struct http_session *s = arg;
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ssl_ctx);
	X509_STORE *store;
	char name[256];
	size_t len = strlen(s->host);
	unsigned char addr[16];
	int ok;

	(void)curl;
	/* curl's flags for the store it would have filled: chains end at an anchor. */
	store = pki_anchors_store(s->anchors);
	ok = store != NULL &&
	     X509_STORE_set_flags(store, X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN) ==
		     1 &&
	     SSL_CTX_set1_verify_cert_store(ssl_ctx, store) == 1;
	X509_STORE_free(store);
	if (!ok)
		return CURLE_OUT_OF_MEMORY;
	if (s->host[0] == '[' && len >= 2 && len - 2 < sizeof(name)) {
		memcpy(name, s->host + 1, len - 2);
		name[len - 2] = '\0';
	} else if (snprintf(name, sizeof(name), "%s", s->host) >= (int)sizeof(name)) {
		return CURLE_SSL_CERTPROBLEM;
	}
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
		ok = X509_VERIFY_PARAM_set1_ip_asc(param, name);
	else
		ok = X509_VERIFY_PARAM_set1_host(param, name, 0);
	return ok == 1 ? CURLE_OK : CURLE_SSL_CERTPROBLEM;
}

/*
 * Closes a socket of curl's, noting first whether it had got connected: when
 * a timeout hits, that tells "cannot reach" from "reached, then stuck".
 */
/* curl's progress callback (also called while idle): non-zero aborts the transfer. */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct http_session *s = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return s->cancel != NULL && *s->cancel ? 1 : 0;
}

static int
on_close_socket(void *arg, curl_socket_t fd)
{
	struct http_session *s = arg;
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0)
		s->cur.tcp_connected = true;
	return close(fd);
}

/* Sets what never changes during a session. Returns the first failing curl code. */
static CURLcode
setup_curl(struct http_session *s)
{
	char proxy_url[96];
	long auth;
	CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(s->curl, opt, val);                                  \
	} while (0)
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, s->errbuf);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_USERAGENT, "onramp/1");
	/* TLS: 1.2 or later, verified against this destination's anchor only. */
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_SSL_OPTIONS, 0L);
	/* No CA file or text for curl, nor its cache of them: on_ssl_ctx sets the anchors. */
	SET(CURLOPT_CAINFO, (char *)NULL);
	SET(CURLOPT_CAPATH, (char *)NULL);
	SET(CURLOPT_CA_CACHE_TIMEOUT, 0L);
	SET(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	SET(CURLOPT_SSL_CTX_DATA, s);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, s->total_timeout_ms);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->body_max);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, &s->cur);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, s);
	SET(CURLOPT_PREREQFUNCTION, on_prereq);
	SET(CURLOPT_PREREQDATA, s);
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, on_progress);
	SET(CURLOPT_XFERINFODATA, s);
	SET(CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
	SET(CURLOPT_CLOSESOCKETDATA, s);
	/* Custom headers (the bearer) never go to the proxy. */
	SET(CURLOPT_HEADEROPT, (long)CURLHEADER_SEPARATE);
	/* "" disables proxies from the environment (https_proxy, no_proxy) as well. */
	SET(CURLOPT_NOPROXY, "");
	if (!s->has_proxy) {
		SET(CURLOPT_PROXY, "");
		return rc;
	}
	snprintf(proxy_url, sizeof(proxy_url), "http://%s", s->proxy_label);
	SET(CURLOPT_PROXY, proxy_url);
	SET(CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTP);
	SET(CURLOPT_HTTPPROXYTUNNEL, 1L);
	if (s->proxy_user != NULL) {
		/* Basic alone goes with the first CONNECT; "any" waits for the proxy's 407. */
		auth = s->proxy_auth == PROXY_AUTH_BASIC    ? CURLAUTH_BASIC
		       : s->proxy_auth == PROXY_AUTH_DIGEST ? CURLAUTH_DIGEST
		       : proxy_known_basic(s->proxy_label)
			       ? CURLAUTH_BASIC
			       : (long)(CURLAUTH_BASIC | CURLAUTH_DIGEST);
		SET(CURLOPT_PROXYAUTH, auth);
		SET(CURLOPT_PROXYUSERNAME, s->proxy_user);
		SET(CURLOPT_PROXYPASSWORD, s->proxy_password);
	}
#undef SET
	return rc;
}

/*
 * Checks the URL, the trust anchor and the proxy settings, copies them, and
 * sets up curl for this one origin.
 */
int
http_session_open(const char *base_url, const struct http_client_opts *opts,
		  struct http_session **out)
{
	struct http_session *s;

	*out = NULL;
	if (opts == NULL || opts->ca_pem == NULL)
		return or_error("a trust anchor is required for %s", base_url);
	if (opts->connect_timeout_ms < 0 || opts->total_timeout_ms < 0)
		return or_error("timeouts must not be negative");
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return or_error("out of memory");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(s);
		return or_error("libcurl could not be initialised");
	}
	s->connect_timeout_ms =
		opts->connect_timeout_ms ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	s->total_timeout_ms =
		opts->total_timeout_ms ? opts->total_timeout_ms : DEFAULT_TOTAL_TIMEOUT_MS;
	s->body_max = opts->body_max ? opts->body_max : HTTP_BODY_MAX;
	s->cancel = opts->cancel;
	if (parse_base(s, base_url) == -1)
		goto fail;
	if ((s->anchors = pki_anchors_get(opts->ca_pem, PKI_ANCHOR_CERTS_MAX,
					  "the trust anchor")) == NULL) {
		or_error_prefix("%s", s->origin);
		goto fail;
	}
	if (opts->proxy != NULL && copy_proxy(s, opts->proxy) == -1)
		goto fail;
	if ((s->curl = curl_easy_init()) == NULL) {
		or_error("out of memory");
		goto fail;
	}
	if (setup_curl(s) != CURLE_OK) {
		or_error("libcurl lacks a feature onramp needs (HTTPS, proxy tunnel or an OpenSSL "
			 "context callback)");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	http_session_close(s);
	return -1;
}

/*
 * Runs the session's one transfer to its end, as curl_easy_perform would, but
 * sleeps until curl's own next deadline or socket activity. curl_easy_perform
 * wakes every second whatever curl waits for, which a simulator holding
 * thousands of long polls pays thousands of times a second. A cancel flag is
 * only read on a wake-up, so with one the wait stays at most a second.
 * *ran says whether a transfer ran (curl's counts are then this transfer's).
 * Trusts: the easy handle is set up (setup_curl).
 */
static CURLcode
perform(struct http_session *s, bool *ran)
{
	CURLcode rc;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left;
	long wait_ms;

	*ran = false;
	if (s->multi == NULL) {
		if ((s->multi = curl_multi_init()) == NULL)
			return CURLE_OUT_OF_MEMORY;
		/* One connection, kept: the exporter binds to it. */
		(void)curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, 1L);
	}
	/* A finished transfer is run again by taking it out and adding it back. */
	if (s->in_multi)
		(void)curl_multi_remove_handle(s->multi, s->curl);
	s->in_multi = false;
	if ((mc = curl_multi_add_handle(s->multi, s->curl)) != CURLM_OK)
		return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
	s->in_multi = true;
	*ran = true;
	for (;;) {
		if ((mc = curl_multi_perform(s->multi, &running)) != CURLM_OK || running == 0)
			break;
		if (curl_multi_timeout(s->multi, &wait_ms) != CURLM_OK || wait_ms < 0 ||
		    wait_ms > IDLE_WAIT_MAX_MS)
			wait_ms = IDLE_WAIT_MAX_MS;
		if (s->cancel != NULL && wait_ms > CANCEL_CHECK_MS)
			wait_ms = CANCEL_CHECK_MS;
		if ((mc = curl_multi_poll(s->multi, NULL, 0, (int)wait_ms, NULL)) != CURLM_OK)
			break;
	}
	/* curl failing, or no DONE message: an internal failure, never a success. */
	rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
	while (mc == CURLM_OK && (msg = curl_multi_info_read(s->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == s->curl)
			rc = msg->data.result;
	/* Left in the multi handle until the next request, so that curl still tells the
	 * kept connection's socket (CURLINFO_ACTIVESOCKET, for the exporter). */
	return rc;
}

/* The flag a request in progress watches (see http_client_opts.cancel). */
void
http_session_set_cancel(struct http_session *s, volatile sig_atomic_t *cancel)
{
	s->cancel = cancel;
}

/* Closes the connection and wipes the proxy password and any body left. */
void
http_session_close(struct http_session *s)
{
	if (s == NULL)
		return;
	if (s->in_multi)
		(void)curl_multi_remove_handle(s->multi, s->curl);
	if (s->curl != NULL)
		curl_easy_cleanup(s->curl);
	/* Closes the kept connection: on_close_socket still has the session. */
	if (s->multi != NULL)
		curl_multi_cleanup(s->multi);
	if (s->proxy_password != NULL)
		OPENSSL_clear_free(s->proxy_password, s->proxy_password_len + 1);
	free(s->proxy_user);
	sk_X509_pop_free(s->anchors, X509_free);
	free(s->base);
	free(s->origin);
	free(s->host);
	clear_free(s->cur.body, s->cur.body_cap);
	free(s);
	curl_global_cleanup();
}

/* Wipes and frees the body (it may carry a secret). */
void
http_response_free(struct http_response *resp)
{
	if (resp == NULL)
		return;
	clear_free(resp->body, resp->body_len);
	resp->body = NULL;
	resp->body_len = 0;
}

/* TCP connections opened so far. */
unsigned
http_session_connects(const struct http_session *s)
{
	return s->connects;
}

/* A path we will put on the request line: starts with '/', visible ASCII only. */
static int
check_path(const char *path)
{
	size_t len = strlen(path);

	if (path[0] != '/' || len > PATH_MAX_LEN)
		return or_error("request path must start with '/' and be at most %d characters",
				PATH_MAX_LEN);
	for (size_t i = 0; i < len; i++)
		if (path[i] <= 0x20 || path[i] >= 0x7f)
			return or_error("request path contains a space or a control character");
	return 0;
}

/* A bearer token as RFC 6750 allows it (token68), so it cannot break the header. */
static int
check_bearer(const char *bearer)
{
	size_t len = strlen(bearer), i = 0;

	if (len == 0 || len > BEARER_MAX_LEN)
		return or_error("bearer token must be 1 to %d characters", BEARER_MAX_LEN);
	while (i < len && (isalnum((unsigned char)bearer[i]) || strchr("-._~+/", bearer[i])))
		i++;
	while (i < len && bearer[i] == '=')
		i++;
	return i == len ? 0 : or_error("bearer token contains characters a token may not have");
}

/* Frees a header list after zeroing it: it may hold a bearer token. */
static void
free_headers(struct curl_slist *list)
{
	for (struct curl_slist *h = list; h != NULL; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(list);
}

/* Puts method, body and headers on the handle for one request. */
static int
prepare_request(struct http_session *s, const char *method, const char *path, const char *bearer,
		const char *body_text, struct curl_slist **headers)
{
	static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
	struct curl_slist *h = NULL, *next;
	char *url = NULL, *auth = NULL;
	const char *lines[4];
	bool known = false;
	CURLcode rc;
	int ret = -1;

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		known = known || strcmp(method, methods[i]) == 0;
	if (!known)
		return or_error("unsupported HTTP method '%s'", method);
	if (check_path(path) == -1 || (bearer != NULL && check_bearer(bearer) == -1))
		return -1;
	if (strcmp(method, "GET") == 0 && body_text != NULL)
		return or_error("a GET request cannot carry a body");
	if (asprintf(&url, "%s%s", s->base, path) < 0)
		return or_error("out of memory");
	if (bearer != NULL && asprintf(&auth, "Authorization: Bearer %s", bearer) < 0) {
		or_error("out of memory");
		goto out;
	}
	lines[0] = "Accept: application/json";
	lines[1] = "Expect:"; /* no 100-continue round trip */
	lines[2] = body_text ? "Content-Type: application/json" : NULL;
	lines[3] = auth;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (lines[i] == NULL)
			continue;
		if ((next = curl_slist_append(h, lines[i])) == NULL) {
			or_error("out of memory");
			goto out;
		}
		h = next;
	}
	rc = curl_easy_setopt(s->curl, CURLOPT_URL, url);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, h);
	if (rc == CURLE_OK && strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0) {
		rc = curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE,
				      (long)(body_text ? strlen(body_text) : 0));
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS,
					      body_text ? body_text : "");
	} else if (rc == CURLE_OK && body_text != NULL) {
		rc = curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body_text));
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body_text);
	} else if (rc == CURLE_OK) {
		rc = curl_easy_setopt(s->curl, CURLOPT_HTTPGET, 1L);
	}
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(
			s->curl, CURLOPT_CUSTOMREQUEST,
			strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0 ? NULL : method);
	if (rc != CURLE_OK) {
		or_error("libcurl refused the request options: %s", curl_easy_strerror(rc));
		goto out;
	}
	*headers = h;
	h = NULL;
	ret = 0;
out:
	free(url);
	if (auth != NULL)
		clear_free(auth, strlen(auth));
	free_headers(h);
	return ret;
}

/* Gathers what curl knows about a failed transfer and classifies it. */
static enum http_err
classify(struct http_session *s, CURLcode rc)
{
	struct http_failure f = {
		.curl_code = rc,
		.has_proxy = s->has_proxy,
		.tcp_connected = s->cur.tcp_connected,
		.tunnel_up = s->cur.tunnel_up,
		.refused_new_conn = s->cur.refused_new_conn,
		.not_openssl = s->cur.not_openssl,
		.body_too_big = s->cur.body_too_big,
		.body_max = s->body_max,
		.origin = s->origin,
		.host = s->host,
		.proxy = s->proxy_label,
		.proxy_user = s->proxy_user,
		.proxy_reason = s->cur.proxy_reason,
		.squid_error = s->cur.squid_error,
		.proxy_schemes = s->cur.proxy_schemes,
		.detail = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc),
	};
	curl_off_t total = 0;

	f.verify_result = X509_V_OK;
	(void)curl_easy_getinfo(s->curl, CURLINFO_HTTP_CONNECTCODE, &f.connect_code);
	(void)curl_easy_getinfo(s->curl, CURLINFO_SSL_VERIFYRESULT, &f.verify_result);
	(void)curl_easy_getinfo(s->curl, CURLINFO_OS_ERRNO, &f.os_errno);
	(void)curl_easy_getinfo(s->curl, CURLINFO_TOTAL_TIME_T, &total);
	f.elapsed_ms = (long)(total / 1000);
	return http_classify(&f);
}

/*
 * One request over the session's connection; on failure the error is
 * classified (see http_classify.c).
 */
int
http_session_request(struct http_session *s, const char *method, const char *path,
		     const char *bearer, const json_t *body, struct http_response *resp,
		     enum http_err *err)
{
	struct curl_slist *headers = NULL;
	char *body_text = NULL;
	long fresh = 0;
	bool ran;
	CURLcode rc;
	int ret = -1;

	*resp = (struct http_response){.status = 0, .retry_after_s = -1};
	*err = HTTP_ERR_INTERNAL;
	if (body != NULL && (body_text = json_dumps(body, JSON_COMPACT)) == NULL)
		return or_error("the request body is not valid JSON");
	if (prepare_request(s, method, path, bearer, body_text, &headers) == -1)
		goto out;
	clear_free(s->cur.body, s->cur.body_cap);
	s->cur = (struct request_state){.retry_after_s = -1, .body_max = s->body_max};
	s->ssl = NULL;
	s->errbuf[0] = '\0';
	rc = perform(s, &ran);
	if (ran)
		(void)curl_easy_getinfo(s->curl, CURLINFO_NUM_CONNECTS, &fresh);
	s->connects += (unsigned)fresh;
	if (rc == CURLE_ABORTED_BY_CALLBACK && s->cancel != NULL && *s->cancel) {
		s->ssl = NULL;
		*err = HTTP_ERR_INTERNAL;
		or_error("request to %s cancelled", s->origin);
		goto out;
	}
	if (rc != CURLE_OK) {
		s->ssl = NULL;
		*err = classify(s, rc);
		/* A Basic learned for "any" that the proxy now refuses is forgotten. */
		if (*err == HTTP_ERR_PROXY_AUTH && s->proxy_auth == PROXY_AUTH_ANY)
			proxy_set_basic(s->proxy_label, false);
		goto out;
	}
	if (s->has_proxy && s->proxy_user != NULL && s->proxy_auth == PROXY_AUTH_ANY &&
	    s->cur.proxy_offered_basic)
		proxy_set_basic(s->proxy_label, true);
	if (s->exporter_taken && fresh > 0) {
		/* Never reached while on_prereq refuses; kept as the last line of defence. */
		*err = HTTP_ERR_PROTOCOL;
		or_error("a new connection to %s was opened after the exporter was taken",
			 s->origin);
		goto out;
	}
	(void)curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	resp->retry_after_s = s->cur.retry_after_s;
	resp->body_len = s->cur.body_len;
	resp->body = s->cur.body ? s->cur.body : strdup("");
	s->cur.body = NULL;
	if (resp->body == NULL) {
		or_error("out of memory");
		goto out;
	}
	*err = HTTP_OK;
	if (resp->status >= 500) {
		*err = HTTP_ERR_SERVER;
		or_error("%s answered %s (server error)", s->origin, s->cur.reason);
	}
	ret = 0;
out:
	if (headers != NULL) {
		(void)curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
		free_headers(headers);
	}
	(void)curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, (char *)NULL);
	if (body_text != NULL)
		clear_free(body_text, strlen(body_text));
	if (ret == -1)
		http_response_free(resp);
	return ret;
}

/*
 * The TLS exporter of the connection the last request used, refused for TLS
 * 1.2 without extended master secret.
 */
int
http_session_exporter(struct http_session *s, const char *label, uint8_t *out, size_t len)
{
	curl_socket_t sock = CURL_SOCKET_BAD;

	if (label == NULL || label[0] == '\0' || strlen(label) > LABEL_MAX_LEN)
		return or_error("exporter label must be 1 to %d characters", LABEL_MAX_LEN);
	if (len == 0 || len > EXPORTER_MAX_LEN)
		return or_error("exporter length must be 1 to %d bytes", EXPORTER_MAX_LEN);
	/* The SSL object belongs to curl: use it only while its connection is still open. */
	if (s->ssl != NULL &&
	    (curl_easy_getinfo(s->curl, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
	     sock == CURL_SOCKET_BAD))
		s->ssl = NULL;
	if (s->ssl == NULL)
		return or_error("no open TLS connection to %s to take an exporter from (make a "
				"request first; the server may have closed the connection)",
				s->origin);
	/* RFC 7627: without extended master secret a TLS 1.2 exporter may repeat across
	 * connections. */
	if (SSL_version(s->ssl) < TLS1_3_VERSION && SSL_get_extms_support(s->ssl) != 1)
		return or_error("the TLS 1.2 connection to %s lacks extended master secret; its "
				"exporter would not be unique to it",
				s->origin);
	if (SSL_export_keying_material(s->ssl, out, len, label, strlen(label), NULL, 0, 0) != 1)
		return or_error("TLS exporter of the connection to %s failed", s->origin);
	s->exporter_taken = true;
	return 0;
}
