/*
 * A small HTTPS server over lib/http_server.h for the integration tests: it
 * exercises routing, JSON bodies, the TLS exporter, long polls (held requests
 * answered later from a timer or from another loop), close callbacks, and a
 * rendezvous that proves several loops serve at once.
 *
 * Prints "listening PORT" when ready; SIGTERM/SIGINT stop it, then it prints
 * "stopped closed=N" (N: held requests whose on_close ran) and exits 0. With
 * --drain MS it drains first: stops accepting, prints "draining", waits at most
 * MS for the requests in flight, prints "drained left=N".
 */
#include "core/encoding.h"
#include "core/error.h"
#include "core/log.h"
#include "server/http_server.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LOOPS 64

struct waiter {
	struct http_ctx *ctx;
	struct tstate *ts;
	struct event *timer; /* for /hold */
	struct waiter *next;
};

struct tstate {
	unsigned index;
	struct event_base *base;
	struct event *release_ev;
	struct waiter *waiters; /* /wait requests held on this loop */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tstate *registry[MAX_LOOPS];
static unsigned n_registered;
static int fail_init_index = -1;

static atomic_int n_waiting, n_closed;

static pthread_mutex_t rv_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rv_cv = PTHREAD_COND_INITIALIZER;
static int rv_inside, rv_needed = 2;

static void release_all(evutil_socket_t fd, short what, void *arg);

static int
thread_init(void *arg, void **state)
{
	struct tstate *ts = calloc(1, sizeof(*ts));

	(void)arg;
	if (ts == NULL)
		return or_error("out of memory");
	ts->base = http_server_thread_base();
	ts->release_ev = event_new(ts->base, -1, 0, release_all, ts);
	pthread_mutex_lock(&reg_mu);
	ts->index = n_registered;
	if (n_registered < MAX_LOOPS)
		registry[n_registered++] = ts;
	pthread_mutex_unlock(&reg_mu);
	if ((int)ts->index == fail_init_index) {
		event_free(ts->release_ev);
		free(ts);
		return or_error("thread_init refused on purpose for the test");
	}
	*state = ts;
	return 0;
}

static void
thread_fini(void *state)
{
	struct tstate *ts = state;

	pthread_mutex_lock(&reg_mu);
	for (unsigned i = 0; i < n_registered; i++)
		if (registry[i] == ts)
			registry[i] = NULL;
	pthread_mutex_unlock(&reg_mu);
	event_free(ts->release_ev);
	free(ts);
}

static unsigned
loop_index(struct http_ctx *ctx)
{
	return ((struct tstate *)http_ctx_thread_state(ctx))->index;
}

static void
h_hello(struct http_ctx *ctx, void *arg)
{
	(void)arg;
	http_reply_json(ctx, 200,
			json_pack("{s:s,s:i}", "hello", "world", "loop", loop_index(ctx)));
}

static void
h_echo(struct http_ctx *ctx, void *arg)
{
	json_t *body;

	(void)arg;
	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	http_reply_json(ctx, 200, json_pack("{s:o}", "got", body));
}

static void
h_exporter(struct http_ctx *ctx, void *arg)
{
	const char *label = http_ctx_query(ctx, "label");
	uint8_t out[64];
	char hex[129];

	(void)arg;
	if (label == NULL)
		label = "EXPORTER-onramp-test";
	if (http_ctx_exporter(ctx, label, out, 32) == -1) {
		http_reply_error(ctx, 500, "internal", "%s", or_errmsg());
		return;
	}
	hex_encode(out, 32, hex);
	http_reply_json(ctx, 200, json_pack("{s:s,s:s}", "label", label, "exporter", hex));
}

static void
h_items(struct http_ctx *ctx, void *arg)
{
	const char *q = http_ctx_query(ctx, "q");

	(void)arg;
	http_reply_json(ctx, 200,
			json_pack("{s:s,s:s?,s:s}", "path", http_ctx_path(ctx), "q", q, "method",
				  http_ctx_method(ctx)));
}

static void
h_info(struct http_ctx *ctx, void *arg)
{
	(void)arg;
	http_reply_header(ctx, "X-Reply", "yes");
	http_reply_json(ctx, 200,
			json_pack("{s:s?,s:s,s:s?}", "bearer", http_ctx_bearer(ctx), "peer",
				  http_ctx_peer(ctx), "x_test", http_ctx_header(ctx, "X-Test")));
}

static void
h_noreply(struct http_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
}

static void
h_error(struct http_ctx *ctx, void *arg)
{
	(void)arg;
	http_reply_error(ctx, 409, "conflict", "thing %s exists", "x");
}

/* ---- long polls ---- */

static void
unlink_waiter(struct waiter *w)
{
	for (struct waiter **p = &w->ts->waiters; *p != NULL; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
}

static void
waiter_closed(void *arg)
{
	struct waiter *w = arg;

	unlink_waiter(w);
	if (w->timer != NULL)
		event_free(w->timer);
	atomic_fetch_sub(&n_waiting, 1);
	atomic_fetch_add(&n_closed, 1);
	free(w);
}

static void
hold_timer(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	(void)fd;
	(void)what;
	unlink_waiter(w);
	atomic_fetch_sub(&n_waiting, 1);
	http_reply_json(w->ctx, 200, json_pack("{s:b,s:i}", "held", 1, "loop", w->ts->index));
	event_free(w->timer);
	free(w);
}

static struct waiter *
new_waiter(struct http_ctx *ctx)
{
	struct waiter *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->ctx = ctx;
	w->ts = http_ctx_thread_state(ctx);
	w->next = w->ts->waiters;
	w->ts->waiters = w;
	atomic_fetch_add(&n_waiting, 1);
	http_ctx_hold(ctx);
	http_ctx_on_close(ctx, waiter_closed, w);
	return w;
}

/* GET /hold?ms=N: answered by a timer on the same loop. */
static void
h_hold(struct http_ctx *ctx, void *arg)
{
	const char *ms = http_ctx_query(ctx, "ms");
	long v = ms ? strtol(ms, NULL, 10) : 100;
	struct timeval tv = {.tv_sec = v / 1000, .tv_usec = (v % 1000) * 1000};
	struct waiter *w;

	(void)arg;
	if ((w = new_waiter(ctx)) == NULL) {
		http_reply_error(ctx, 500, "internal", "out of memory");
		return;
	}
	w->timer = evtimer_new(http_ctx_base(ctx), hold_timer, w);
	evtimer_add(w->timer, &tv);
}

/* GET /wait: answered when any loop gets POST /release. */
static void
h_wait(struct http_ctx *ctx, void *arg)
{
	(void)arg;
	if (new_waiter(ctx) == NULL)
		http_reply_error(ctx, 500, "internal", "out of memory");
}

/* Runs on each loop (event_active from the loop that got /release). */
static void
release_all(evutil_socket_t fd, short what, void *arg)
{
	struct tstate *ts = arg;
	struct waiter *w;

	(void)fd;
	(void)what;
	while ((w = ts->waiters) != NULL) {
		ts->waiters = w->next;
		atomic_fetch_sub(&n_waiting, 1);
		http_reply_json(w->ctx, 200,
				json_pack("{s:b,s:i}", "released", 1, "loop", ts->index));
		free(w);
	}
}

static void
h_release(struct http_ctx *ctx, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&reg_mu);
	for (unsigned i = 0; i < n_registered; i++)
		if (registry[i] != NULL)
			event_active(registry[i]->release_ev, 0, 0);
	pthread_mutex_unlock(&reg_mu);
	http_reply_json(ctx, 200, json_pack("{s:b}", "ok", 1));
}

static void
h_stats(struct http_ctx *ctx, void *arg)
{
	int inside;

	(void)arg;
	pthread_mutex_lock(&rv_mu);
	inside = rv_inside;
	pthread_mutex_unlock(&rv_mu);
	http_reply_json(ctx, 200,
			json_pack("{s:i,s:i,s:i,s:i}", "waiting", atomic_load(&n_waiting), "closed",
				  atomic_load(&n_closed), "rendezvous", inside, "loop",
				  loop_index(ctx)));
}

/*
 * GET /rendezvous blocks its loop until rv_needed handlers are inside at once
 * (or 10 s pass): "met" is true only when that many loops ran at the same time.
 */
static void
h_rendezvous(struct http_ctx *ctx, void *arg)
{
	struct timespec deadline;
	bool met;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&rv_mu);
	rv_inside++;
	pthread_cond_broadcast(&rv_cv);
	while (rv_inside < rv_needed)
		if (pthread_cond_timedwait(&rv_cv, &rv_mu, &deadline) == ETIMEDOUT)
			break;
	met = rv_inside >= rv_needed;
	pthread_mutex_unlock(&rv_mu);
	http_reply_json(ctx, 200, json_pack("{s:b,s:i}", "met", met, "loop", loop_index(ctx)));
}

static const struct http_route routes[] = {
	{"GET", "/hello", h_hello, NULL},   {"POST", "/echo", h_echo, NULL},
	{"PUT", "/echo", h_echo, NULL},	    {"GET", "/exporter", h_exporter, NULL},
	{"GET", "/items/*", h_items, NULL}, {"DELETE", "/items/*", h_items, NULL},
	{"GET", "/info", h_info, NULL},	    {"GET", "/noreply", h_noreply, NULL},
	{"GET", "/error", h_error, NULL},   {"GET", "/hold", h_hold, NULL},
	{"GET", "/wait", h_wait, NULL},	    {"POST", "/release", h_release, NULL},
	{"GET", "/stats", h_stats, NULL},   {"GET", "/rendezvous", h_rendezvous, NULL},
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: http_test_server --cert FILE --key FILE [--address A] [--port N]\n"
		   "       [--threads N] [--max-body N] [--fail-init I] [--rendezvous N]\n"
		   "       [--timeout S] [--drain MS] [--request-timeout S]\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {{"cert", required_argument, NULL, 'c'},
						 {"key", required_argument, NULL, 'k'},
						 {"address", required_argument, NULL, 'a'},
						 {"port", required_argument, NULL, 'p'},
						 {"threads", required_argument, NULL, 't'},
						 {"max-body", required_argument, NULL, 'b'},
						 {"fail-init", required_argument, NULL, 'f'},
						 {"rendezvous", required_argument, NULL, 'r'},
						 {"timeout", required_argument, NULL, 'T'},
						 {"drain", required_argument, NULL, 'd'},
						 {"request-timeout", required_argument, NULL, 'R'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	struct http_server_opts o = {.address = "127.0.0.1",
				     .routes = routes,
				     .n_routes = sizeof(routes) / sizeof(routes[0]),
				     .thread_init = thread_init,
				     .thread_fini = thread_fini};
	struct http_server *srv = NULL;
	unsigned drain_ms = 0;
	sigset_t set;
	int c, sig;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o.cert_file = optarg;
			break;
		case 'k':
			o.key_file = optarg;
			break;
		case 'a':
			o.address = optarg;
			break;
		case 'p':
			o.port = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			o.threads = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			o.max_body = strtoul(optarg, NULL, 10);
			break;
		case 'f':
			fail_init_index = atoi(optarg);
			break;
		case 'r':
			rv_needed = atoi(optarg);
			break;
		case 'T':
			o.timeout_s = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			drain_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'R':
			o.request_timeout_s = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	log_init("http_test_server", LOG_TARGET_STDERR, LOG_LEVEL_DEBUG);
	/* the loops inherit this mask, so only sigwait below sees the signals */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (http_server_start(&o, &srv) == -1) {
		fprintf(stderr, "http_test_server: %s\n", or_errmsg());
		return 1;
	}
	printf("listening %u\n", http_server_port(srv));
	fflush(stdout);
	sigwait(&set, &sig);
	if (drain_ms > 0) {
		http_server_stop_accepting(srv);
		printf("draining\n");
		fflush(stdout);
		printf("drained left=%u\n", http_server_wait_idle(srv, drain_ms));
		fflush(stdout);
	}
	http_server_stop(srv);
	printf("stopped closed=%d\n", atomic_load(&n_closed));
	return 0;
}
