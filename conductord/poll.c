/*
 * The held-poll registry. One mutex guards the hash table; a held poll is
 * only ever freed by its own loop, after it left the table under the mutex,
 * so a waker that found it under the mutex may still activate its event.
 * One event per poll serves both ends: its timeout is the wait running out,
 * and event_active(..., EV_READ) from a waker is "a command was queued"
 * (the event watches no descriptor, so EV_READ cannot mean anything else).
 */
#include "poll.h"

#include "core/error.h"
#include "server/http_server.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096 /* a power of two */
#define ROUTER_NAME_MAX 64

struct held_poll {
	struct held_poll *next;
	struct poll_registry *reg;
	struct http_ctx *ctx;
	struct event *ev;
	poll_answer_fn answer;
	poll_gone_fn gone;
	void *arg;
	char router[ROUTER_NAME_MAX];
};

struct poll_registry {
	pthread_mutex_t lock;
	unsigned count;
	bool releasing; /* draining: every poll is answered at once */
	struct held_poll *buckets[BUCKETS];
};

/* FNV-1a: router names are short; the table only needs spread, not secrecy. */
static size_t
bucket_of(const char *router)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)router; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;
	return h & (BUCKETS - 1);
}

/* An empty registry with its mutex. */
int
poll_registry_new(struct poll_registry **out)
{
	struct poll_registry *reg = calloc(1, sizeof(*reg));

	if (reg == NULL)
		return or_error("out of memory");
	if (pthread_mutex_init(&reg->lock, NULL) != 0) {
		free(reg);
		return or_error("cannot create a mutex");
	}
	*out = reg;
	return 0;
}

/* Frees the registry; every poll has ended by then (the servers stopped). */
void
poll_registry_free(struct poll_registry *reg)
{
	if (reg == NULL)
		return;
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

/* Takes hp out of the table; true when it was there (only one end may finish it). */
static bool
unlink_poll(struct held_poll *hp)
{
	struct poll_registry *reg = hp->reg;
	struct held_poll **pp;
	bool found = false;

	pthread_mutex_lock(&reg->lock);
	for (pp = &reg->buckets[bucket_of(hp->router)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == hp) {
			*pp = hp->next;
			reg->count--;
			found = true;
			break;
		}
	pthread_mutex_unlock(&reg->lock);
	return found;
}

/* Frees a poll that has left the table; only its own loop does this. */
static void
finish(struct held_poll *hp)
{
	event_free(hp->ev);
	free(hp);
}

/* The poll's event fired on its own loop: woken (EV_READ) or timed out. */
static void
on_event(evutil_socket_t fd, short what, void *arg)
{
	struct held_poll *hp = arg;

	(void)fd;
	if (!unlink_poll(hp))
		return;
	hp->answer(hp->ctx, hp->router, !(what & EV_READ), hp->arg);
	finish(hp);
}

/* The router went away while its poll was held: tell the owner, free the poll. */
static void
on_close(void *arg)
{
	struct held_poll *hp = arg;

	if (!unlink_poll(hp))
		return;
	if (hp->gone != NULL)
		hp->gone(hp->router, hp->arg);
	finish(hp);
}

/* Arms the poll's event with its wait, holds the request, and enters it in the table. */
int
poll_hold(struct poll_registry *reg, struct http_ctx *ctx, const char *router, unsigned timeout_s,
	  poll_answer_fn answer, poll_gone_fn gone, void *arg)
{
	struct timeval tv = {.tv_sec = timeout_s, .tv_usec = 0};
	struct held_poll *hp;
	size_t b;

	if (strlen(router) >= ROUTER_NAME_MAX)
		return or_error("router name too long");
	hp = calloc(1, sizeof(*hp));
	if (hp == NULL)
		return or_error("out of memory");
	hp->reg = reg;
	hp->ctx = ctx;
	hp->answer = answer;
	hp->gone = gone;
	hp->arg = arg;
	strcpy(hp->router, router);
	hp->ev = event_new(http_ctx_base(ctx), -1, 0, on_event, hp);
	if (hp->ev == NULL || event_add(hp->ev, &tv) == -1) {
		if (hp->ev != NULL)
			event_free(hp->ev);
		free(hp);
		return or_error("cannot arm the poll timer");
	}
	http_ctx_hold(ctx);
	http_ctx_on_close(ctx, on_close, hp);
	b = bucket_of(router);
	pthread_mutex_lock(&reg->lock);
	hp->next = reg->buckets[b];
	reg->buckets[b] = hp;
	reg->count++;
	if (reg->releasing)
		event_active(hp->ev, EV_READ, 0);
	pthread_mutex_unlock(&reg->lock);
	return 0;
}

/*
 * Activates the event of every poll held for router; under the mutex, so none is freed
 * meanwhile.
 */
void
poll_wake(struct poll_registry *reg, const char *router)
{
	pthread_mutex_lock(&reg->lock);
	for (struct held_poll *hp = reg->buckets[bucket_of(router)]; hp != NULL; hp = hp->next)
		if (strcmp(hp->router, router) == 0)
			event_active(hp->ev, EV_READ, 0);
	pthread_mutex_unlock(&reg->lock);
}

/*
 * Activates the event of every held poll: the instances' notification connection came back and
 * what was queued meanwhile is unknown, so every router looks again.
 */
void
poll_wake_all(struct poll_registry *reg)
{
	pthread_mutex_lock(&reg->lock);
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct held_poll *hp = reg->buckets[b]; hp != NULL; hp = hp->next)
			event_active(hp->ev, EV_READ, 0);
	pthread_mutex_unlock(&reg->lock);
}

/*
 * Draining: answers every held poll now, as if woken, and every poll held from now on at once,
 * so that each router polls again at once, elsewhere.
 */
void
poll_release_all(struct poll_registry *reg)
{
	pthread_mutex_lock(&reg->lock);
	reg->releasing = true;
	pthread_mutex_unlock(&reg->lock);
	poll_wake_all(reg);
}

/* Whether poll_release_all was called: the instance is draining. */
bool
poll_releasing(struct poll_registry *reg)
{
	bool releasing;

	pthread_mutex_lock(&reg->lock);
	releasing = reg->releasing;
	pthread_mutex_unlock(&reg->lock);
	return releasing;
}

/* How many polls are held now. */
unsigned
poll_held_count(struct poll_registry *reg)
{
	unsigned n;

	pthread_mutex_lock(&reg->lock);
	n = reg->count;
	pthread_mutex_unlock(&reg->lock);
	return n;
}
