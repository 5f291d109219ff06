/*
 * Classification of failed transfers (see http_classify.h). Trusts the
 * strings it is given to be bounded and printable: http_client.c reduces
 * whatever a proxy sent to printable ASCII before it gets here.
 */
#include "net/http_classify.h"

#include "core/error.h"
#include "core/x509.h"

#include <curl/curl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <string.h>

/*
 * Whether squid's X-Squid-Error says it found no address for the host.
 * squid 5 (Debian 12) answers a name its resolver refuses, or says does not
 * exist, with 500 and ERR_CANNOT_FORWARD: the peer selection found no
 * destination. For an address literal no name was looked up, so the same
 * code means squid could not forward at all (its rules, its parents).
 */
static bool
squid_found_no_address(const struct http_failure *f)
{
	if (strncmp(f->squid_error, "ERR_DNS_FAIL", 12) == 0)
		return true;
	return strncmp(f->squid_error, "ERR_CANNOT_FORWARD", 18) == 0 &&
	       !pki_is_ip_literal(f->host);
}

/* The proxy refused CONNECT (a non-2xx answer): credentials, rules, or the way on. */
static enum http_err
connect_refused(const struct http_failure *f)
{
	const char *offered = f->proxy_schemes[0] ? f->proxy_schemes : "no scheme";

	if (f->connect_code == 407 || f->connect_code == 401) {
		/* tinyproxy answers a wrong password with 401. */
		if (f->proxy_user == NULL)
			or_error("proxy %s requires authentication (%s) and no proxy user is "
				 "configured; it offers %s",
				 f->proxy, f->proxy_reason, offered);
		else
			or_error("proxy %s refused the credentials of user '%s' (%s): check the "
				 "proxy user, password and scheme (it offers %s)",
				 f->proxy, f->proxy_user, f->proxy_reason, offered);
		return HTTP_ERR_PROXY_AUTH;
	}
	if (f->connect_code == 403) {
		/*
		 * squid checks a rule on destination addresses (acl dst) by resolving
		 * the name: one it cannot resolve is refused (ERR_ACCESS_DENIED).
		 */
		if (strncmp(f->squid_error, "ERR_ACCESS_DENIED", 17) == 0 &&
		    !pki_is_ip_literal(f->host))
			or_error("proxy %s refused to open a tunnel to %s (%s): its rules do not "
				 "allow CONNECT to this host or port, or it cannot resolve '%s' "
				 "(squid refuses such a name when a rule is on destination "
				 "addresses)",
				 f->proxy, f->origin, f->proxy_reason, f->host);
		else
			or_error("proxy %s refused to open a tunnel to %s (%s): its rules do not "
				 "allow CONNECT to this host or port",
				 f->proxy, f->origin, f->proxy_reason);
		return HTTP_ERR_PROXY_FORBIDDEN;
	}
	if (squid_found_no_address(f)) {
		or_error("proxy %s cannot resolve the server's name '%s' (%s, %s)", f->proxy,
			 f->host, f->proxy_reason, f->squid_error);
		return HTTP_ERR_DNS;
	}
	if (f->connect_code == 504) {
		or_error("proxy %s timed out reaching %s (%s)", f->proxy, f->origin,
			 f->proxy_reason);
		return HTTP_ERR_TIMEOUT;
	}
	if (f->connect_code >= 500 && f->squid_error[0] == '\0' && !pki_is_ip_literal(f->host)) {
		/* tinyproxy answers "500 Unable to connect" to both, with the same page */
		or_error("proxy %s could not connect to %s (%s): the server is down or "
			 "unreachable from the proxy, or the proxy cannot resolve the name '%s'",
			 f->proxy, f->origin, f->proxy_reason, f->host);
		return HTTP_ERR_CONNECT;
	}
	if (f->connect_code >= 500) {
		or_error("proxy %s could not connect to %s (%s%s%s)", f->proxy, f->origin,
			 f->proxy_reason, f->squid_error[0] ? ", " : "", f->squid_error);
		return HTTP_ERR_CONNECT;
	}
	or_error("proxy %s answered CONNECT to %s with %s", f->proxy, f->origin, f->proxy_reason);
	return HTTP_ERR_PROXY_OTHER;
}

/* Says in which phase a timeout hit, so the operator knows which hop to look at. */
static enum http_err
timed_out(const struct http_failure *f)
{
	long ms = f->elapsed_ms;

	if (f->tunnel_up)
		or_error("timed out after %ld ms waiting for %s to answer", ms, f->origin);
	else if (!f->tcp_connected && f->has_proxy)
		or_error("timed out after %ld ms connecting to proxy %s", ms, f->proxy);
	else if (!f->tcp_connected)
		or_error("timed out after %ld ms connecting to %s", ms, f->origin);
	else if (f->has_proxy && f->connect_code == 0)
		or_error("timed out after %ld ms waiting for proxy %s to open the tunnel to %s", ms,
			 f->proxy, f->origin);
	else
		or_error("timed out after %ld ms in the TLS handshake with %s%s%s", ms, f->origin,
			 f->has_proxy ? " through proxy " : "", f->has_proxy ? f->proxy : "");
	return HTTP_ERR_TIMEOUT;
}

/*
 * The peer's certificate was refused. OpenSSL checks the name too (see
 * on_ssl_ctx in http_client.c); curl leaves X509_V_ERR_UNSPECIFIED when its
 * own, second name check failed. Anything else is a chain that does not lead
 * to the anchor: typically an intercepting proxy.
 */
static enum http_err
certificate_refused(const struct http_failure *f)
{
	long v = f->verify_result;

	if (v == X509_V_OK || v == X509_V_ERR_UNSPECIFIED || v == X509_V_ERR_HOSTNAME_MISMATCH ||
	    v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		or_error("the certificate presented by %s is not valid for the name '%s': it is "
			 "issued under the trust anchor, for other names (check the URL)",
			 f->origin, f->host);
		return HTTP_ERR_TLS;
	}
	or_error("the certificate presented for %s is not trusted: %s (it does not chain to this "
		 "destination's trust anchor; a TLS-intercepting proxy would cause this)",
		 f->origin, X509_verify_cert_error_string(v));
	return HTTP_ERR_TLS_UNTRUSTED;
}

/* No connection at all: a name that does not resolve, or nothing listening. */
static enum http_err
unreachable(const struct http_failure *f)
{
	const char *why = f->os_errno ? strerror((int)f->os_errno) : f->detail;

	if (f->curl_code == CURLE_COULDNT_RESOLVE_PROXY) {
		or_error("cannot resolve the proxy's name in %s (DNS failure)", f->proxy);
		return HTTP_ERR_DNS;
	}
	if (f->curl_code == CURLE_COULDNT_RESOLVE_HOST) {
		or_error("cannot resolve the server's name '%s' (DNS failure)", f->host);
		return HTTP_ERR_DNS;
	}
	if (f->has_proxy) {
		or_error("cannot connect to proxy %s: %s (is the proxy running, and is this its "
			 "address and port?)",
			 f->proxy, why);
		return HTTP_ERR_PROXY_UNREACHABLE;
	}
	or_error("cannot connect to %s: %s (is the server up and reachable from here?)", f->origin,
		 why);
	return HTTP_ERR_CONNECT;
}

static const char *const err_names[] = {
	[HTTP_OK] = "ok",
	[HTTP_ERR_PROXY_UNREACHABLE] = "proxy-unreachable",
	[HTTP_ERR_PROXY_AUTH] = "proxy-auth",
	[HTTP_ERR_PROXY_FORBIDDEN] = "proxy-forbidden",
	[HTTP_ERR_PROXY_OTHER] = "proxy-other",
	[HTTP_ERR_DNS] = "dns",
	[HTTP_ERR_CONNECT] = "connect",
	[HTTP_ERR_TLS_UNTRUSTED] = "tls-untrusted",
	[HTTP_ERR_TLS] = "tls",
	[HTTP_ERR_TIMEOUT] = "timeout",
	[HTTP_ERR_SERVER] = "server",
	[HTTP_ERR_PROTOCOL] = "protocol",
	[HTTP_ERR_INTERNAL] = "internal",
};

/* The stable name of an error class. */
const char *
http_err_name(enum http_err e)
{
	if ((unsigned)e >= sizeof(err_names) / sizeof(err_names[0]))
		return "unknown";
	return err_names[e];
}

/*
 * One class and one sentence for a failed transfer; checks the proxy's CONNECT
 * answer before curl's code.
 */
enum http_err
http_classify(const struct http_failure *f)
{
	if (f->refused_new_conn) {
		or_error(
			"the TLS connection to %s that the exporter was taken from is closed; "
			"the request was not sent over a new connection the exporter does not bind",
			f->origin);
		return HTTP_ERR_PROTOCOL;
	}
	if (f->not_openssl) {
		or_error("libcurl does not expose its OpenSSL connection");
		return HTTP_ERR_INTERNAL;
	}
	if (f->has_proxy && f->connect_code != 0 &&
	    (f->connect_code < 200 || f->connect_code > 299))
		return connect_refused(f);
	switch (f->curl_code) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		return unreachable(f);
	case CURLE_OPERATION_TIMEDOUT:
		return timed_out(f);
	case CURLE_PEER_FAILED_VERIFICATION:
		return certificate_refused(f);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
		or_error("TLS with %s failed: %s", f->origin, f->detail);
		return HTTP_ERR_TLS;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (!f->body_too_big && f->curl_code == CURLE_WRITE_ERROR) {
			or_error("out of memory reading the answer from %s", f->origin);
			return HTTP_ERR_INTERNAL;
		}
		or_error("the answer from %s is larger than %zu bytes", f->origin, f->body_max);
		return HTTP_ERR_PROTOCOL;
	case CURLE_GOT_NOTHING:
		or_error("%s closed the connection without answering", f->origin);
		return HTTP_ERR_PROTOCOL;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
		or_error("%s sent an answer that is not valid HTTP: %s", f->origin, f->detail);
		return HTTP_ERR_PROTOCOL;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		if (f->has_proxy && !f->tunnel_up) {
			or_error("the connection to proxy %s broke while opening the tunnel to %s: "
				 "%s",
				 f->proxy, f->origin, f->detail);
			return HTTP_ERR_PROXY_OTHER;
		}
		or_error("the connection to %s broke: %s", f->origin, f->detail);
		return HTTP_ERR_CONNECT;
	case CURLE_OUT_OF_MEMORY:
		or_error("out of memory");
		return HTTP_ERR_INTERNAL;
	default:
		or_error("request to %s failed: %s", f->origin, f->detail);
		return HTTP_ERR_INTERNAL;
	}
}
