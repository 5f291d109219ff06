/*
 * Turns what is known about a failed HTTPS transfer into one class (enum
 * http_err) and one sentence that tells an operator which hop to look at.
 * A pure function of struct http_failure, which http_client.c fills from
 * libcurl, so that every class can be unit-tested without a network.
 */
#ifndef ONRAMP_HTTP_CLASSIFY_H
#define ONRAMP_HTTP_CLASSIFY_H

#include "net/http_client.h"

#include <stdbool.h>

struct http_failure {
	int curl_code;	    /* the CURLcode of curl_easy_perform */
	long connect_code;  /* the proxy's status for CONNECT, 0 when none came */
	long verify_result; /* the X509 verify result curl recorded */
	long os_errno;	    /* errno of the failed connect, 0 when none */
	long elapsed_ms;
	bool has_proxy;
	bool tcp_connected;    /* a TCP connection (to the proxy or server) was made */
	bool tunnel_up;	       /* connected, TLS done: the request was about to go */
	bool refused_new_conn; /* a new connection after the exporter was taken */
	bool not_openssl;      /* curl did not give its OpenSSL connection */
	bool body_too_big;
	size_t body_max;    /* the cap the answer went over */
	const char *origin; /* "host:port" */
	const char *host;
	const char *proxy;	   /* "host:port" */
	const char *proxy_user;	   /* NULL when none is configured */
	const char *proxy_reason;  /* status line of the CONNECT answer ("407 Proxy ...") */
	const char *squid_error;   /* X-Squid-Error of the CONNECT answer, "" when none */
	const char *proxy_schemes; /* schemes offered in Proxy-Authenticate, "" when none */
	const char *detail;	   /* curl's error message */
};

/* The class of the failure; the sentence is set with or_error(). */
enum http_err http_classify(const struct http_failure *);

#endif
