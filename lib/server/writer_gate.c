/*
 * Writers' gates (see writer_gate.h). What it trusts: paths from the store's
 * own URL; a gate is found by the file's device and inode, so two spellings of
 * one file share it.
 */
#include "server/writer_gate.h"

#include "core/error.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct writer_gate {
	dev_t dev;
	ino_t ino;
	sem_t turn; /* 1: open; a semaphore, not a mutex: it belongs to no thread */
	struct writer_gate *next;
};

static pthread_mutex_t gates_lock = PTHREAD_MUTEX_INITIALIZER;
static struct writer_gate *gates;

/* See writer_gate.h: looked up under gates_lock, made once, never freed. */
struct writer_gate *
writer_gate_of(const char *path)
{
	struct writer_gate *g;
	struct stat sb;

	if (strcmp(path, ":memory:") == 0 || stat(path, &sb) == -1)
		return NULL;
	pthread_mutex_lock(&gates_lock);
	for (g = gates; g != NULL; g = g->next)
		if (g->dev == sb.st_dev && g->ino == sb.st_ino)
			break;
	if (g == NULL && (g = calloc(1, sizeof(*g))) != NULL) {
		if (sem_init(&g->turn, 0, 1) == -1) {
			free(g);
			g = NULL;
		} else {
			g->dev = sb.st_dev;
			g->ino = sb.st_ino;
			g->next = gates;
			gates = g;
		}
	}
	pthread_mutex_unlock(&gates_lock);
	return g;
}

/* See writer_gate.h: a monotonic deadline, so a clock step neither shortens nor stretches it. */
int
writer_gate_enter(struct writer_gate *gate, unsigned timeout_ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (sem_clockwait(&gate->turn, CLOCK_MONOTONIC, &until) == -1)
		if (errno != EINTR)
			return or_error("database is locked: another transaction of this process "
					"held it for %u ms",
					timeout_ms);
	return 0;
}

/* See writer_gate.h. */
void
writer_gate_leave(struct writer_gate *gate)
{
	sem_post(&gate->turn);
}
