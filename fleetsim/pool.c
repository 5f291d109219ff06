/*
 * The worker threads of the fleet (see pool.h). The routers' array is shared:
 * each index is handed out once, under the mutex, and written only by the
 * thread that took it; the main thread reads it after every thread ended.
 */
#include "pool.h"

#include "core/error.h"
#include "core/log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pool {
	const struct fleet_conf *conf;
	const char *state_dir;
	struct fleet_router *routers;
	size_t n, next;
	volatile sig_atomic_t *stop;
	pthread_mutex_t mu;
};

/* The next router to run, or NULL when all were handed out or the fleet stops. */
static struct fleet_router *
take(struct pool *p)
{
	struct fleet_router *r = NULL;

	pthread_mutex_lock(&p->mu);
	if (p->next < p->n && !*p->stop)
		r = &p->routers[p->next++];
	pthread_mutex_unlock(&p->mu);
	return r;
}

/* One worker: routers one after the other until none is left. */
static void *
worker(void *arg)
{
	struct pool *p = arg;
	struct fleet_router *r;

	while ((r = take(p)) != NULL) {
		fleet_router_run(p->conf, p->state_dir, r, p->stop);
		log_info("%s: %s%s", r->serial,
			 r->running ? "running" : "failed: ", r->running ? "" : r->reason);
	}
	return NULL;
}

int
fleet_pool_run(const struct fleet_conf *conf, const char *state_dir, struct fleet_router *routers,
	       size_t n, unsigned concurrency, volatile sig_atomic_t *stop)
{
	struct pool p = {
		.conf = conf, .state_dir = state_dir, .routers = routers, .n = n, .stop = stop};
	pthread_t *threads;
	pthread_attr_t attr;
	size_t started = 0;

	if (concurrency > n)
		concurrency = (unsigned)n;
	if ((threads = calloc(concurrency, sizeof(*threads))) == NULL)
		return or_error("out of memory");
	pthread_mutex_init(&p.mu, NULL);
	/* Small stacks, so that thousands of workers fit; the library keeps big buffers on the
	 * heap. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1024 * 1024);
	for (size_t i = 0; i < concurrency; i++) {
		if (pthread_create(&threads[i], &attr, worker, &p) != 0)
			break;
		started++;
	}
	pthread_attr_destroy(&attr);
	if (started < concurrency)
		log_warn("only %zu of %u worker threads started", started, concurrency);
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&p.mu);
	free(threads);
	return started > 0 ? 0 : or_error("no worker thread could start");
}
