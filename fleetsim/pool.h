/*
 * The fleet's workers: `concurrency` threads, each taking the next index not
 * handed out yet and running the job on it to its end, so that at most
 * `concurrency` jobs are in flight at once. A job may keep what its thread
 * reuses (e.g. HTTPS sessions) in *thread_state; `done` releases it when the
 * thread ends.
 */
#ifndef ONRAMP_FLEETSIM_POOL_H
#define ONRAMP_FLEETSIM_POOL_H

#include <signal.h>
#include <stddef.h>

struct fleet_job {
	void (*run)(void *arg, size_t index, void **thread_state);
	void (*done)(void *thread_state); /* NULL: nothing to release */
	void *arg;
};

/* Runs job on 0..n-1 unless *stop; -1 only when no thread could start. */
int fleet_pool_run(const struct fleet_job *job, size_t n, unsigned concurrency,
		   volatile sig_atomic_t *stop);

#endif
