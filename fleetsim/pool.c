/*
 * The worker threads of the fleet (see pool.h). Each index is handed out
 * once, under the mutex; what a job writes for its index is read by the
 * caller after every thread ended.
 */
#include "pool.h"

#include "core/error.h"
#include "core/log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct pool {
	const struct fleet_job *job;
	size_t n, next;
	volatile sig_atomic_t *stop;
	pthread_mutex_t mu;
};

/* The next index to run; false when all were handed out or the fleet stops. */
static bool
take(struct pool *p, size_t *index)
{
	bool got = false;

	pthread_mutex_lock(&p->mu);
	if (p->next < p->n && !*p->stop) {
		*index = p->next++;
		got = true;
	}
	pthread_mutex_unlock(&p->mu);
	return got;
}

/* One worker: jobs one after the other until none is left. */
static void *
worker(void *arg)
{
	struct pool *p = arg;
	void *state = NULL;
	size_t i;

	while (take(p, &i))
		p->job->run(p->job->arg, i, &state);
	if (p->job->done != NULL)
		p->job->done(state);
	return NULL;
}

int
fleet_pool_run(const struct fleet_job *job, size_t n, unsigned concurrency,
	       volatile sig_atomic_t *stop)
{
	struct pool p = {.job = job, .n = n, .stop = stop};
	pthread_t *threads;
	pthread_attr_t attr;
	size_t started = 0;

	if (concurrency > n)
		concurrency = (unsigned)n;
	if (concurrency == 0)
		return 0;
	if ((threads = calloc(concurrency, sizeof(*threads))) == NULL)
		return or_error("out of memory");
	pthread_mutex_init(&p.mu, NULL);
	/* 1 MiB stacks, so that thousands of workers fit; the library keeps big buffers on the
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
