/*
 * onrampctl probe: one HTTPS request through the router's real client, for
 * an operator asking "can this router reach the redirector through its
 * proxy?", and for the integration tests. Prints the status or the
 * classified error; exit 0 when an answer below 500 arrived, 1 on a network
 * or server error, 2 on bad input. Secrets come from files only and are
 * never printed: the proxy password and the bearer token are zeroed after use.
 */
#include "onrampctl.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/secret.h"
#include "net/http_client.h"
#include "net/http_parse.h"
#include "net/http_retry.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char probe_usage[] =
	"usage: onrampctl probe URL --ca FILE [--proxy HOST:PORT]\n"
	"                       [--proxy-user USER --proxy-password-file FILE]\n"
	"                       [--proxy-auth basic|digest|any] [--exporter LABEL]\n"
	"                       [--exporter-length N] [--connect-timeout MS] [--timeout MS]\n"
	"                       [--repeat N] [--retries N] [--method METHOD] [--data FILE]\n"
	"                       [--bearer-file FILE] [--show-body] [--json]\n"
	"\n"
	"Makes an HTTPS request to URL with onramp's client and prints the status, or\n"
	"what went wrong (proxy-auth, proxy-forbidden, tls-untrusted, dns, ...).\n"
	"  --ca FILE                  PEM trust anchor(s) for URL; nothing else is trusted\n"
	"  --proxy HOST:PORT          explicit web proxy, used with CONNECT (default: direct)\n"
	"  --proxy-user USER          proxy user; the password is read from\n"
	"  --proxy-password-file FILE (first line)\n"
	"  --proxy-auth SCHEME        basic, digest or any (default: any)\n"
	"  --exporter LABEL           print the TLS exporter (RFC 5705) of the connection\n"
	"  --exporter-length N        exporter bytes (default 32)\n"
	"  --connect-timeout MS       to connect, CONNECT and handshake (default 10000)\n"
	"  --timeout MS               for each whole request (default 30000)\n"
	"  --repeat N                 N requests over the same connection (default 1)\n"
	"  --retries N                attempts per request with backoff (default 1)\n"
	"  --method METHOD            GET (default), POST, PUT, PATCH or DELETE\n"
	"  --data FILE                JSON object to send as the body\n"
	"  --bearer-file FILE         bearer token to send (first line)\n"
	"  --show-body                print the response body too\n"
	"  --json                     one JSON object on stdout\n"
	"Exit status: 0 an answer arrived (below 500), 1 network or server error, 2 bad input.\n";

struct probe {
	const char *url, *ca_file, *proxy, *user, *password_file, *auth, *label, *data_file,
		*bearer_file, *method;
	long connect_ms, total_ms, exporter_len, repeat, retries;
	bool json, show_body;
};

/* The result of a probe, printed once at the end (or as JSON). */
struct outcome {
	json_t *statuses;
	long status, retry_after;
	enum http_err err;
	char message[OR_ERRMSG_MAX];
	char *exporter_hex;
	char *body;
	size_t body_len;
	unsigned connections;
};

/* Zeroes and frees a buffer that held a secret (a file's line, a response body). */
static void
clear_free(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

/* A decimal number of the command line within [min, max]. */
static int
parse_long(const char *text, const char *what, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (text[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return or_error("%s must be a number from %ld to %ld, not '%s'", what, min, max,
				text);
	*out = v;
	return 0;
}

/* Reads the first line of a small secret file (no newline kept) into a NUL-terminated buffer. */
static int
read_secret_line(const char *path, const char *what, char **out, size_t *len)
{
	uint8_t *data = NULL;
	size_t n;

	*out = NULL;
	if (file_read_all(path, 4096, &data, &n) == -1)
		return or_error_prefix("%s", what);
	if (n > 0 && data[n - 1] == '\n')
		n--;
	if (n > 0 && data[n - 1] == '\r')
		n--;
	data[n] = '\0';
	if (n == 0 || memchr(data, '\n', n) != NULL || memchr(data, '\0', n) != NULL) {
		clear_free((char *)data, n);
		return or_error("%s %s must hold exactly one non-empty line", what, path);
	}
	*out = (char *)data;
	*len = n;
	return 0;
}

/* The command line into p; returns 1 after --help. */
static int
parse_args(int argc, char **argv, struct probe *p)
{
	static const struct option options[] = {
		{"ca", required_argument, NULL, 'c'},
		{"proxy", required_argument, NULL, 'x'},
		{"proxy-user", required_argument, NULL, 'u'},
		{"proxy-password-file", required_argument, NULL, 'P'},
		{"proxy-auth", required_argument, NULL, 'a'},
		{"exporter", required_argument, NULL, 'e'},
		{"exporter-length", required_argument, NULL, 'l'},
		{"connect-timeout", required_argument, NULL, 'C'},
		{"timeout", required_argument, NULL, 'T'},
		{"repeat", required_argument, NULL, 'r'},
		{"retries", required_argument, NULL, 'R'},
		{"method", required_argument, NULL, 'm'},
		{"data", required_argument, NULL, 'd'},
		{"bearer-file", required_argument, NULL, 'b'},
		{"show-body", no_argument, NULL, 'B'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt, rc = 0;

	*p = (struct probe){.exporter_len = 32, .repeat = 1, .retries = 1, .method = "GET"};
	optind = 1;
	opterr = 0;
	while (rc == 0 && (opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			p->ca_file = optarg;
			break;
		case 'x':
			p->proxy = optarg;
			break;
		case 'u':
			p->user = optarg;
			break;
		case 'P':
			p->password_file = optarg;
			break;
		case 'a':
			p->auth = optarg;
			break;
		case 'e':
			p->label = optarg;
			break;
		case 'm':
			p->method = optarg;
			break;
		case 'd':
			p->data_file = optarg;
			break;
		case 'b':
			p->bearer_file = optarg;
			break;
		case 'B':
			p->show_body = true;
			break;
		case 'j':
			p->json = true;
			break;
		case 'l':
			rc = parse_long(optarg, "--exporter-length", 1, 255, &p->exporter_len);
			break;
		case 'C':
			rc = parse_long(optarg, "--connect-timeout", 1, 3600000, &p->connect_ms);
			break;
		case 'T':
			rc = parse_long(optarg, "--timeout", 1, 3600000, &p->total_ms);
			break;
		case 'r':
			rc = parse_long(optarg, "--repeat", 1, 100, &p->repeat);
			break;
		case 'R':
			rc = parse_long(optarg, "--retries", 1, 10, &p->retries);
			break;
		case 'h':
			fputs(probe_usage, stdout);
			return 1;
		default:
			return or_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (rc == -1)
		return -1;
	if (optind != argc - 1)
		return or_error(optind < argc ? "one URL expected, found more"
					      : "a URL is required");
	p->url = argv[optind];
	if (p->ca_file == NULL)
		return or_error("--ca FILE is required: the trust anchor for the URL");
	if ((p->user == NULL) != (p->password_file == NULL))
		return or_error("--proxy-user and --proxy-password-file go together");
	if (p->user != NULL && p->proxy == NULL)
		return or_error("--proxy-user needs --proxy");
	if (p->auth != NULL && p->user == NULL)
		return or_error("--proxy-auth needs --proxy-user");
	return 0;
}

/* The statuses, exporter and error as lines or as one JSON object. */
static void
print_outcome(const struct probe *p, const struct outcome *o)
{
	json_t *doc;
	char *text;

	if (!p->json) {
		if (o->exporter_hex != NULL)
			printf("exporter %s\n", o->exporter_hex);
		if (p->repeat > 1)
			printf("connections %u\n", o->connections);
		if (p->show_body && o->body != NULL)
			fputs(o->body, stdout);
		if (o->err != HTTP_OK)
			ctl_fail(EXIT_FAILURE_RUNTIME, "probe: %s: %s", http_err_name(o->err),
				 o->message);
		return;
	}
	doc = json_pack("{s:s, s:s?, s:O, s:I, s:s?, s:s?, s:i}", "url", p->url, "proxy", p->proxy,
			"statuses", o->statuses, "connections", (json_int_t)o->connections, "error",
			o->err == HTTP_OK ? NULL : http_err_name(o->err), "message",
			o->err == HTTP_OK ? NULL : o->message, "exporter_length",
			(int)p->exporter_len);
	if (doc == NULL)
		return;
	json_object_set_new(doc, "status", o->status ? json_integer(o->status) : json_null());
	json_object_set_new(doc, "retry_after",
			    o->retry_after >= 0 ? json_integer(o->retry_after) : json_null());
	if (o->exporter_hex != NULL)
		json_object_set_new(doc, "exporter", json_string(o->exporter_hex));
	if (p->show_body && o->body != NULL)
		json_object_set_new(doc, "body", json_string(o->body));
	if ((text = json_dump_compact(doc)) != NULL)
		puts(text);
	free(text);
	json_decref(doc);
}

/* Takes the exporter of the connection the first request used, as hex. */
static int
take_exporter(struct http_session *s, const struct probe *p, struct outcome *o)
{
	uint8_t km[255];
	char hex[2 * sizeof(km) + 1];

	if (http_session_exporter(s, p->label, km, (size_t)p->exporter_len) == -1)
		return -1;
	hex_encode(km, (size_t)p->exporter_len, hex);
	OPENSSL_cleanse(km, sizeof(km));
	o->exporter_hex = strdup(hex);
	return o->exporter_hex ? 0 : or_error("out of memory");
}

/* The requests themselves; fills o and returns the exit status. */
static int
run(struct http_session *s, const struct probe *p, const char *path, const char *bearer,
    const json_t *body, struct outcome *o)
{
	struct http_retry retry = {.max_attempts = (unsigned)p->retries};
	struct http_response resp = {0};
	int rc;

	for (long i = 0; i < p->repeat; i++) {
		rc = http_session_request_retry(s, &retry, p->method, path, bearer, body, &resp,
						&o->err);
		if (rc == -1)
			break;
		o->status = resp.status;
		o->retry_after = resp.retry_after_s;
		json_array_append_new(o->statuses, json_integer(resp.status));
		if (!p->json)
			printf("status %ld\n", resp.status);
		clear_free(o->body, o->body_len);
		o->body = resp.body;
		o->body_len = resp.body_len;
		resp.body = NULL;
		if (o->err != HTTP_OK)
			break;
		if (i == 0 && p->label != NULL && take_exporter(s, p, o) == -1) {
			o->err = HTTP_ERR_PROTOCOL;
			break;
		}
	}
	o->connections = http_session_connects(s);
	if (o->err != HTTP_OK)
		snprintf(o->message, sizeof(o->message), "%s", or_errmsg());
	if (o->err == HTTP_ERR_INTERNAL)
		return EXIT_BAD_INPUT; /* a method, path or token the client refused to send */
	return o->err == HTTP_OK ? EXIT_OK : EXIT_FAILURE_RUNTIME;
}

/*
 * Reads the CA, the proxy settings and the secrets from files, makes the
 * requests and reports; secrets are wiped.
 */
int
cmd_probe(int argc, char **argv)
{
	struct probe p;
	struct outcome o = {.retry_after = -1, .err = HTTP_OK};
	struct http_proxy proxy = {0};
	struct http_client_opts opts = {0};
	struct http_session *s = NULL;
	struct secret password = {0};
	char *base = NULL, *path = NULL, *pw = NULL, *bearer = NULL;
	uint8_t *ca = NULL;
	size_t ca_len, pw_len = 0, bearer_len = 0;
	json_t *body = NULL;
	int rc = EXIT_BAD_INPUT, parsed;

	if ((parsed = parse_args(argc, argv, &p)) == 1)
		return EXIT_OK;
	if (parsed == -1)
		goto bad;
	if (http_url_origin_and_path(p.url, &base, &path) == -1)
		goto bad;
	if (file_read_all(p.ca_file, 1024 * 1024, &ca, &ca_len) == -1) {
		or_error_prefix("--ca");
		goto bad;
	}
	if (p.proxy != NULL) {
		if (http_proxy_parse(p.proxy, &proxy) == -1 ||
		    (p.auth != NULL && proxy_auth_parse(p.auth, &proxy.auth) == -1))
			goto bad;
		opts.proxy = &proxy;
	}
	if (p.user != NULL) {
		if (read_secret_line(p.password_file, "--proxy-password-file", &pw, &pw_len) ==
			    -1 ||
		    secret_from(&password, pw, pw_len) == -1)
			goto bad;
		proxy.user = p.user;
		proxy.password = &password;
	}
	if (p.bearer_file != NULL &&
	    read_secret_line(p.bearer_file, "--bearer-file", &bearer, &bearer_len) == -1)
		goto bad;
	if (p.data_file != NULL && json_load_object_file(p.data_file, 1024 * 1024, &body) == -1)
		goto bad;
	opts.ca_pem = (const char *)ca;
	opts.connect_timeout_ms = p.connect_ms;
	opts.total_timeout_ms = p.total_ms;
	if (http_session_open(base, &opts, &s) == -1)
		goto bad;
	if ((o.statuses = json_array()) == NULL)
		goto bad;
	if ((rc = run(s, &p, path, bearer, body, &o)) == EXIT_BAD_INPUT)
		goto bad;
	print_outcome(&p, &o);
	goto out;
bad:
	ctl_fail(EXIT_BAD_INPUT, "probe: %s", or_errmsg());
out:
	http_session_close(s);
	secret_free(&password);
	clear_free(pw, pw_len);
	clear_free(bearer, bearer_len);
	json_decref(body);
	json_decref(o.statuses);
	free(o.exporter_hex);
	clear_free(o.body, o.body_len);
	free(ca);
	free(base);
	free(path);
	return rc;
}
