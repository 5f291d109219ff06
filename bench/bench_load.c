/*
 * onramp-bench-load: the load generator of `make bench` (docs/benchmarks.md).
 *
 * N threads, each one device at a time, for S seconds. One operation is what a
 * router does on its way to the cloud, on the real device code
 * (lib/proto/cloud_client.c over lib/net/http_client.c: libcurl, OpenSSL,
 * TLS verified against the destination's anchor with the name checked, one
 * new connection per session, no session reuse):
 *
 *   phone-home  a new connection to the redirector, POST /v1/phone-home
 *   exchange    phone-home; then on one new kept-alive connection to the
 *               cloud: auth/start, check R_S, auth/finish, onboarding info
 *
 * --target nginx does the same connections and requests as static GETs
 * (/phone-home.json on the first origin; /auth-start.json, /auth-finish.json,
 * /onboarding.json on the second), through the same client code, so that the
 * two servers are compared for the same client work.
 *
 * Prints one JSON line: operations done and failed, the rate, latency
 * percentiles, and the time of one request on a kept-alive connection (the
 * last one of each exchange).
 */
#include "bench_clock.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "device/certkey.h"
#include "device/device.h"
#include "device/identity.h"
#include "net/http_client.h"
#include "proto/cloud_client.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
	"usage: onramp-bench-load --target onramp|nginx --what phone-home|exchange\n"
	"         --redirector URL --redirector-ca FILE [--cloud URL --cloud-ca FILE]\n"
	"         [--devices FILE] [--concurrency N] [--seconds S]\n"
	"  --redirector  onramp: the redirector; nginx: the origin serving /phone-home.json\n"
	"  --cloud       nginx only: the origin serving the three cloud answers\n"
	"  --devices     onramp only: a file of device state directories, one a line\n"
	"                (made by onrampctl factory init-device --software, claimed)\n";

#define DEVICES_MAX 4096

struct bench {
	const char *target, *what, *redirector_url, *cloud_url;
	char *redirector_ca, *cloud_ca;
	char *devices[DEVICES_MAX];
	char *cert_key_pems[DEVICES_MAX]; /* each device's certificate key (public PEM) */
	size_t n_devices;
	unsigned concurrency;
	double seconds;
	bool nginx, exchange;
	pthread_mutex_t lock;
	char first_error[512];
};

struct worker {
	struct bench *b;
	unsigned index;
	double *latency, *keepalive; /* milliseconds, one per operation done */
	size_t n, n_keepalive, cap, failed;
};

/* Keeps the first failure's message, for the report. */
static void
note_failure(struct bench *b, const char *step)
{
	pthread_mutex_lock(&b->lock);
	if (b->first_error[0] == '\0')
		snprintf(b->first_error, sizeof(b->first_error), "%s: %s", step, or_errmsg());
	pthread_mutex_unlock(&b->lock);
}

/* GET path on s; 0 when the answer is 200 with a JSON object. */
static int
static_get(struct http_session *s, const char *path)
{
	struct http_response resp = {0};
	enum http_err err;
	json_t *doc = NULL;
	int rc = -1;

	if (http_session_request(s, "GET", path, NULL, NULL, &resp, &err) == -1)
		goto out;
	if (resp.status != 200) {
		or_error("%s: HTTP %ld", path, resp.status);
		goto out;
	}
	if ((doc = json_loadb(resp.body, resp.body_len, 0, NULL)) == NULL || !json_is_object(doc)) {
		or_error("%s: not a JSON object", path);
		goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	http_response_free(&resp);
	return rc;
}

/* One operation against nginx; *keepalive_ms: the last request's time. */
static int
nginx_op(struct bench *b, double *keepalive_ms)
{
	struct http_client_opts ropts = {.ca_pem = b->redirector_ca};
	struct http_client_opts copts = {.ca_pem = b->cloud_ca};
	struct http_session *s = NULL;
	double t;
	int rc = -1;

	if (http_session_open(b->redirector_url, &ropts, &s) == -1 ||
	    static_get(s, "/phone-home.json") == -1)
		goto out;
	http_session_close(s);
	s = NULL;
	if (!b->exchange)
		return 0;
	if (http_session_open(b->cloud_url, &copts, &s) == -1 ||
	    static_get(s, "/auth-start.json") == -1 || static_get(s, "/auth-finish.json") == -1)
		goto out;
	t = bench_now_s();
	if (static_get(s, "/onboarding.json") == -1)
		goto out;
	*keepalive_ms = (bench_now_s() - t) * 1e3;
	rc = 0;
out:
	http_session_close(s);
	return rc;
}

/* One operation of a real device against the redirector and the cloud. */
static int
onramp_op(struct bench *b, const struct cloud_device *dev, double *keepalive_ms)
{
	struct http_client_opts ropts = {.ca_pem = b->redirector_ca};
	struct http_client_opts copts = {0};
	struct cloud_redirect redirect = {0};
	struct cloud_onboarding ob = {0};
	struct cloud_outcome oc;
	struct secret token = {0};
	struct http_session *s = NULL;
	double t;
	int rc = -1;

	if (cloud_phone_home(b->redirector_url, &ropts, dev, &redirect, &oc) == -1) {
		or_error_prefix("phone-home (%s)", cloud_status_name(oc.status));
		goto out;
	}
	if (!b->exchange) {
		rc = 0;
		goto out;
	}
	copts.ca_pem = redirect.cloud_ca_pem;
	if (http_session_open(redirect.cloud_url, &copts, &s) == -1)
		goto out;
	if (cloud_authenticate(s, dev, &token, &oc) == -1) {
		or_error_prefix("authenticate (%s)", cloud_status_name(oc.status));
		goto out;
	}
	t = bench_now_s();
	if (cloud_get_onboarding(s, dev, &token, &ob, &oc) == -1) {
		or_error_prefix("onboarding (%s)", cloud_status_name(oc.status));
		goto out;
	}
	*keepalive_ms = (bench_now_s() - t) * 1e3;
	cloud_onboarding_free(&ob);
	rc = 0;
out:
	secret_free(&token);
	http_session_close(s);
	cloud_redirect_free(&redirect);
	return rc;
}

/* Appends one operation's times; -1 when out of memory. */
static int
record(struct worker *w, double ms, double keepalive_ms)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 256;
		double *l = realloc(w->latency, cap * sizeof(*l));
		double *k = l ? realloc(w->keepalive, cap * sizeof(*k)) : NULL;
		if (l != NULL)
			w->latency = l;
		if (k == NULL)
			return -1;
		w->keepalive = k;
		w->cap = cap;
	}
	w->latency[w->n++] = ms;
	if (keepalive_ms >= 0)
		w->keepalive[w->n_keepalive++] = keepalive_ms;
	return 0;
}

/* A worker thread: its device (shared with workers index + k * n_devices), ops until the end. */
static void *
work(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	struct identity *id = NULL;
	struct device_info info;
	struct cloud_device dev = {0};
	double end = bench_now_s() + b->seconds, t, keepalive;

	if (!b->nginx) {
		const char *dir = b->devices[w->index % b->n_devices];
		if (device_info_read(dir, &info) == -1 || identity_open(dir, NULL, &id) == -1) {
			note_failure(b, dir);
			w->failed++;
			return NULL;
		}
		dev.serial = info.serial;
		dev.model = info.model;
		dev.software_version = "bench-1";
		dev.suite = info.ocra_suite;
		dev.hmac = identity_ocra_hmac(id);
		/* as the agent: the onboarding request names the certificate key (assertion) */
		dev.cert_key_pem = b->cert_key_pems[w->index % b->n_devices];
	}
	while ((t = bench_now_s()) < end) {
		keepalive = -1;
		if ((b->nginx ? nginx_op(b, &keepalive) : onramp_op(b, &dev, &keepalive)) == -1) {
			note_failure(b, b->what);
			w->failed++;
			continue;
		}
		if (record(w, (bench_now_s() - t) * 1e3, keepalive) == -1)
			break;
	}
	identity_close(id);
	return NULL;
}

/* Ascending order of doubles, for qsort. */
static int
by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The p-th percentile (0..100) of n sorted values; -1 when there are none. */
static double
percentile(const double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return -1;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* Reads the device list: one state directory a line. */
static int
read_devices(struct bench *b, const char *path)
{
	char *text = NULL, *line, *save = NULL;
	size_t len;

	if (file_read_all(path, 1 << 20, (uint8_t **)&text, &len) == -1)
		return -1;
	text = realloc(text, len + 1);
	text[len] = '\0';
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (*line == '\0')
			continue;
		if (b->n_devices == DEVICES_MAX) {
			free(text);
			return or_error("%s: more than %d devices", path, DEVICES_MAX);
		}
		b->devices[b->n_devices++] = strdup(line);
	}
	free(text);
	if (b->n_devices == 0)
		return or_error("%s: no devices", path);
	return 0;
}

/*
 * Each device's certificate key, made once here as the agent makes it
 * (software), before the workers share the directories.
 */
static int
load_cert_keys(struct bench *b)
{
	for (size_t i = 0; i < b->n_devices; i++) {
		struct certkey *ck = NULL;
		int rc = certkey_open_or_create(b->devices[i], NULL, &ck) == -1 ||
					 certkey_public_pem(ck, &b->cert_key_pems[i]) == -1
				 ? -1
				 : 0;

		certkey_close(ck);
		if (rc == -1)
			return or_error_prefix("%s", b->devices[i]);
	}
	return 0;
}

/* Reads a PEM file as text. */
static int
read_pem(const char *path, char **out)
{
	size_t len;

	return file_read_all(path, CLOUD_PEM_MAX, (uint8_t **)out, &len);
}

/* Parses the command line, runs the workers, prints the result line. */
int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"target", required_argument, NULL, 't'},
		{"what", required_argument, NULL, 'w'},
		{"redirector", required_argument, NULL, 'r'},
		{"redirector-ca", required_argument, NULL, 'R'},
		{"cloud", required_argument, NULL, 'c'},
		{"cloud-ca", required_argument, NULL, 'C'},
		{"devices", required_argument, NULL, 'd'},
		{"concurrency", required_argument, NULL, 'n'},
		{"seconds", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct bench b = {.concurrency = 1, .seconds = 5};
	const char *devices = NULL, *rca = NULL, *cca = NULL;
	struct worker *w = NULL;
	pthread_t *threads = NULL;
	double *all = NULL, *keep = NULL, started, elapsed;
	size_t n = 0, nk = 0, failed = 0;
	json_t *line;
	char *text;
	int c, rc = 2;

	log_init("onramp-bench-load", LOG_TARGET_STDERR, LOG_LEVEL_ERROR);
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 't':
			b.target = optarg;
			break;
		case 'w':
			b.what = optarg;
			break;
		case 'r':
			b.redirector_url = optarg;
			break;
		case 'R':
			rca = optarg;
			break;
		case 'c':
			b.cloud_url = optarg;
			break;
		case 'C':
			cca = optarg;
			break;
		case 'd':
			devices = optarg;
			break;
		case 'n':
			b.concurrency = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			b.seconds = strtod(optarg, NULL);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (b.target == NULL || b.what == NULL || b.redirector_url == NULL || rca == NULL ||
	    optind != argc || b.concurrency < 1 || b.concurrency > 4096 || !(b.seconds > 0)) {
		fputs(usage, stderr);
		return 2;
	}
	b.nginx = strcmp(b.target, "nginx") == 0;
	b.exchange = strcmp(b.what, "exchange") == 0;
	if ((!b.nginx && strcmp(b.target, "onramp") != 0) ||
	    (!b.exchange && strcmp(b.what, "phone-home") != 0) ||
	    (b.nginx && b.exchange && (b.cloud_url == NULL || cca == NULL)) ||
	    (!b.nginx && devices == NULL)) {
		fputs(usage, stderr);
		return 2;
	}
	pthread_mutex_init(&b.lock, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "onramp-bench-load: libcurl could not be initialised\n");
		return 1;
	}
	if (read_pem(rca, &b.redirector_ca) == -1 || (cca && read_pem(cca, &b.cloud_ca) == -1) ||
	    (devices && (read_devices(&b, devices) == -1 || load_cert_keys(&b) == -1))) {
		fprintf(stderr, "onramp-bench-load: %s\n", or_errmsg());
		goto out;
	}
	w = calloc(b.concurrency, sizeof(*w));
	threads = calloc(b.concurrency, sizeof(*threads));
	if (w == NULL || threads == NULL)
		goto out;
	started = bench_now_s();
	for (unsigned i = 0; i < b.concurrency; i++) {
		w[i] = (struct worker){.b = &b, .index = i};
		if (pthread_create(&threads[i], NULL, work, &w[i]) != 0) {
			fprintf(stderr, "onramp-bench-load: cannot start thread %u\n", i);
			exit(1);
		}
	}
	for (unsigned i = 0; i < b.concurrency; i++)
		pthread_join(threads[i], NULL);
	elapsed = bench_now_s() - started;
	for (unsigned i = 0; i < b.concurrency; i++) {
		n += w[i].n;
		nk += w[i].n_keepalive;
		failed += w[i].failed;
	}
	all = calloc(n + 1, sizeof(*all));
	keep = calloc(nk + 1, sizeof(*keep));
	n = nk = 0;
	for (unsigned i = 0; i < b.concurrency; i++) {
		memcpy(all + n, w[i].latency, w[i].n * sizeof(*all));
		memcpy(keep + nk, w[i].keepalive, w[i].n_keepalive * sizeof(*keep));
		n += w[i].n;
		nk += w[i].n_keepalive;
		free(w[i].latency);
		free(w[i].keepalive);
	}
	qsort(all, n, sizeof(*all), by_value);
	qsort(keep, nk, sizeof(*keep), by_value);
	line = json_pack("{s:s,s:s,s:i,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f}", "target", b.target,
			 "what", b.what, "concurrency", (int)b.concurrency, "ops", (json_int_t)n,
			 "failed", (json_int_t)failed, "seconds", elapsed, "per_s",
			 (double)n / elapsed, "p50_ms", percentile(all, n, 50), "p99_ms",
			 percentile(all, n, 99), "keepalive_ms", percentile(keep, nk, 50),
			 "keepalive_p99_ms", percentile(keep, nk, 99));
	if (b.first_error[0] != '\0')
		json_object_set_new(line, "first_error", json_string(b.first_error));
	text = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
	puts(text ? text : "{}");
	free(text);
	json_decref(line);
	rc = failed == 0 ? 0 : 1;
out:
	free(all);
	free(keep);
	free(w);
	free(threads);
	for (size_t i = 0; i < b.n_devices; i++) {
		free(b.devices[i]);
		free(b.cert_key_pems[i]);
	}
	free(b.redirector_ca);
	free(b.cloud_ca);
	curl_global_cleanup();
	return rc;
}
