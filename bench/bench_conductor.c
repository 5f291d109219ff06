/*
 * onramp-bench-conductor: N routers on one conductor, each holding its long
 * poll, for `make bench` (docs/benchmarks.md): the conductor's memory per
 * connected router and its setup rate.
 *
 * Each router is a thread (256 KiB stack) running the router's side on
 * libonramp's code (lib/proto/conductor_client.c). First, before the clock,
 * what a router in the field has done before it ever talks to the conductor:
 * its own state directory with a software device key and vault, the staging
 * conductor stored (secret and CA in the vault) and read back. When all are
 * prepared, one JSON line {"prepared","failed"} goes to stdout; with
 * --wait-start the routers then wait for a line on stdin. The clock then
 * starts: TLS, hello and PSK proof with a device CSR, then the long poll,
 * executing the commands it gets (certificate, configuration) and polling
 * again. At most --setup-concurrency routers are preparing or setting up at
 * once; a router is set up when its first commands are acknowledged (its
 * next poll, held by the conductor, follows at once). When all are set up (or
 * failed), one JSON line goes to stdout: {"routers","set_up","failed",
 * "setup_s","setup_per_s"}; the routers then keep their polls until the
 * process is stopped (SIGTERM).
 */
#include "bench_clock.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/secret.h"
#include "device/certkey.h"
#include "device/vault.h"
#include "proto/conductor_client.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"usage: onramp-bench-conductor --state-dir DIR --conductor HOST:PORT --root-ca FILE\n"
	"         --psk-file FILE --routers N [--first I] [--prefix P]\n"
	"         [--setup-concurrency C] [--poll-wait S] [--wait-start]\n"
	"  routers P-(I+1) ... P-(I+N), numbered with 6 digits, must exist on the\n"
	"  conductor (asset ID = name); --wait-start: after the preparation, the\n"
	"  clock starts on a line read from stdin\n";

struct fleet {
	const char *state_dir, *address, *prefix;
	char *ca_pem, *psk;
	unsigned routers, first, poll_wait_s;
	sem_t setup_slots;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* main waits on it for the counts */
	pthread_cond_t start;	/* the routers wait on it for go */
	unsigned prepared, set_up, failed;
	bool go, wait_start;
	char first_error[512];
};

struct router {
	struct fleet *f;
	unsigned index;
};

static volatile sig_atomic_t stop;

/* Counts one router as set up (ok) or failed, keeping the first failure's message. */
static void
count(struct fleet *f, bool ok, const char *serial)
{
	pthread_mutex_lock(&f->lock);
	if (ok) {
		f->set_up++;
	} else {
		f->failed++;
		if (f->first_error[0] == '\0')
			snprintf(f->first_error, sizeof(f->first_error), "%s: %s", serial,
				 or_errmsg());
	}
	pthread_cond_signal(&f->changed);
	pthread_mutex_unlock(&f->lock);
}

/* Counts one router as prepared and waits until the clock starts. */
static void
wait_for_start(struct fleet *f)
{
	pthread_mutex_lock(&f->lock);
	f->prepared++;
	pthread_cond_signal(&f->changed);
	while (!f->go)
		pthread_cond_wait(&f->start, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

/* Runs the commands of one poll's answer; -1 when one failed. */
static int
execute_all(struct conductor_conn *c, json_t *commands)
{
	size_t i;
	json_t *cmd;

	json_array_foreach(commands, i, cmd)
	{
		if (conductor_execute(c, cmd) == -1)
			return -1;
	}
	return 0;
}

/*
 * One router: prepared under a slot (device key, vault, the conductor stored),
 * then, once the clock started, set up under a slot, then hold polls until
 * stopped.
 */
static void *
router_main(void *arg)
{
	struct router *r = arg;
	struct fleet *f = r->f;
	char serial[64], dir[4096];
	const char *addresses[1] = {f->address};
	struct conductor_client_opts o = {0};
	struct conductor_target t = {0};
	struct conductor_conn *c = NULL;
	struct certkey *ck = NULL;
	struct vault *vault = NULL;
	json_t *commands = NULL;
	bool slot = true, counted = false, prepared = false;

	snprintf(serial, sizeof(serial), "%s-%06u", f->prefix, f->first + r->index + 1);
	snprintf(dir, sizeof(dir), "%s/%s", f->state_dir, serial);
	sem_wait(&f->setup_slots);
	if (file_ensure_dir(dir, 0700) == -1 || certkey_open_or_create(dir, NULL, &ck) == -1 ||
	    vault_open(dir, NULL, &vault) == -1)
		goto out;
	o.state_dir = dir;
	o.asset_id = serial;
	o.certkey = ck;
	o.vault = vault;
	o.poll_wait_s = f->poll_wait_s;
	if (conductor_set_target(&o, "staging", addresses, 1, f->psk, strlen(f->psk), f->ca_pem) ==
		    -1 ||
	    conductor_get_target(&o, "staging", &t) == -1)
		goto out;
	sem_post(&f->setup_slots);
	prepared = true;
	wait_for_start(f);
	sem_wait(&f->setup_slots);
	if (conductor_connect(&o, &t, &c) == -1)
		goto out;
	/* The first answer is immediate: the commands queued for a new router. */
	if (conductor_poll(c, &commands) == -1 || execute_all(c, commands) == -1)
		goto out;
	json_decref(commands);
	commands = NULL;
	count(f, true, serial);
	counted = true;
	sem_post(&f->setup_slots);
	slot = false;
	while (!stop) {
		if (conductor_poll(c, &commands) == -1 || execute_all(c, commands) == -1)
			break;
		json_decref(commands);
		commands = NULL;
	}
out:
	if (!counted)
		count(f, false, serial);
	if (slot)
		sem_post(&f->setup_slots);
	if (!prepared)
		wait_for_start(f); /* failed, but done preparing: the clock may start */
	json_decref(commands);
	conductor_close(c);
	conductor_target_free(&t);
	vault_close(vault);
	certkey_close(ck);
	return NULL;
}

/* SIGTERM/SIGINT: the process ends (the held polls with it). */
static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Reads a text file whole. */
static char *
read_text(const char *path)
{
	uint8_t *data = NULL;
	size_t len;

	if (file_read_all(path, 65536, &data, &len) == -1)
		return NULL;
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		data[--len] = '\0';
	return (char *)data;
}

/* Parses the command line, starts the routers, reports when all are set up, holds. */
int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"state-dir", required_argument, NULL, 's'},
		{"conductor", required_argument, NULL, 'c'},
		{"root-ca", required_argument, NULL, 'r'},
		{"psk-file", required_argument, NULL, 'p'},
		{"routers", required_argument, NULL, 'n'},
		{"first", required_argument, NULL, 'f'},
		{"prefix", required_argument, NULL, 'P'},
		{"setup-concurrency", required_argument, NULL, 'C'},
		{"poll-wait", required_argument, NULL, 'w'},
		{"wait-start", no_argument, NULL, 'W'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct fleet f = {.prefix = "BENCH", .poll_wait_s = 0};
	const char *ca_file = NULL, *psk_file = NULL;
	unsigned concurrency = 16;
	struct router *routers = NULL;
	pthread_attr_t attr;
	pthread_t tid;
	double started, elapsed;
	char line[64];
	int opt, rc = 2;

	log_init("onramp-bench-conductor", LOG_TARGET_STDERR, LOG_LEVEL_ERROR);
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			f.state_dir = optarg;
			break;
		case 'c':
			f.address = optarg;
			break;
		case 'r':
			ca_file = optarg;
			break;
		case 'p':
			psk_file = optarg;
			break;
		case 'n':
			f.routers = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			f.first = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'P':
			f.prefix = optarg;
			break;
		case 'C':
			concurrency = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			f.poll_wait_s = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'W':
			f.wait_start = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (f.state_dir == NULL || f.address == NULL || ca_file == NULL || psk_file == NULL ||
	    f.routers < 1 || f.routers > 100000 || concurrency < 1 || optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    file_ensure_dir(f.state_dir, 0700) == -1 || (f.ca_pem = read_text(ca_file)) == NULL ||
	    (f.psk = read_text(psk_file)) == NULL) {
		fprintf(stderr, "onramp-bench-conductor: %s\n", or_errmsg());
		goto out;
	}
	sem_init(&f.setup_slots, 0, concurrency);
	pthread_mutex_init(&f.lock, NULL);
	pthread_cond_init(&f.changed, NULL);
	pthread_cond_init(&f.start, NULL);
	if ((routers = calloc(f.routers, sizeof(*routers))) == NULL)
		goto out;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (unsigned i = 0; i < f.routers; i++) {
		routers[i] = (struct router){.f = &f, .index = i};
		if (pthread_create(&tid, &attr, router_main, &routers[i]) != 0) {
			fprintf(stderr, "onramp-bench-conductor: cannot start router thread %u\n",
				i);
			exit(1);
		}
	}
	pthread_mutex_lock(&f.lock);
	while (f.prepared < f.routers && !stop)
		pthread_cond_wait(&f.changed, &f.lock);
	printf("{\"prepared\":%u,\"failed\":%u}\n", f.prepared - f.failed, f.failed);
	fflush(stdout);
	pthread_mutex_unlock(&f.lock);
	if (f.wait_start && fgets(line, sizeof(line), stdin) == NULL) {
		fprintf(stderr, "onramp-bench-conductor: no start line on stdin\n");
		goto out;
	}
	/* The clock starts: from here on, only what a router does with the conductor. */
	pthread_mutex_lock(&f.lock);
	started = bench_now_s();
	f.go = true;
	pthread_cond_broadcast(&f.start);
	while (f.set_up + f.failed < f.routers && !stop)
		pthread_cond_wait(&f.changed, &f.lock);
	elapsed = bench_now_s() - started;
	printf("{\"routers\":%u,\"set_up\":%u,\"failed\":%u,\"setup_s\":%.3f,\"setup_per_s\":%.2f",
	       f.routers, f.set_up, f.failed, elapsed, (double)f.set_up / elapsed);
	if (f.first_error[0] != '\0') {
		json_t *e = json_string(f.first_error);
		char *text = json_dumps(e, JSON_ENCODE_ANY);
		printf(",\"first_error\":%s", text ? text : "null");
		free(text);
		json_decref(e);
	}
	printf("}\n");
	fflush(stdout);
	pthread_mutex_unlock(&f.lock);
	while (!stop)
		pause();
	rc = 0;
out:
	/* Router threads still hold their polls: the process ends with them. */
	_exit(rc);
}
