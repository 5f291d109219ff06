/*
 * Held command polls. A router's GET /v1/commands with nothing queued is held
 * open on the loop that accepted it until a command is queued for that router
 * (any thread may wake it), its wait runs out, or the router goes away.
 *
 * Cost of an idle router: one small struct and one libevent event, in a hash
 * table keyed by router name; no thread, no timer wheel of our own.
 */
#ifndef ONRAMP_POLL_H
#define ONRAMP_POLL_H

#include <stdbool.h>

struct http_ctx;
struct poll_registry;

/* Called once on the holding loop: reply to ctx now (woken or timed out). */
typedef void (*poll_answer_fn)(struct http_ctx *ctx, const char *router, bool timed_out, void *arg);
/* Called once on the holding loop when the router went away; ctx is gone. */
typedef void (*poll_gone_fn)(const char *router, void *arg);

int poll_registry_new(struct poll_registry **out);
/* Call after the servers stopped (every held poll has then seen its client go away). */
void poll_registry_free(struct poll_registry *reg);

/* Holds ctx (from its handler) for at most timeout_s seconds. */
int poll_hold(struct poll_registry *reg, struct http_ctx *ctx, const char *router,
	      unsigned timeout_s, poll_answer_fn answer, poll_gone_fn gone, void *arg);

/* Wakes every poll held for router; safe from any thread, a no-op when none is held. */
void poll_wake(struct poll_registry *reg, const char *router);

/* Wakes every held poll (after notifications may have been lost); safe from any thread. */
void poll_wake_all(struct poll_registry *reg);

/*
 * Graceful drain: answers every held poll now (with what is queued, usually nothing) and every
 * later one at once; safe from any thread.
 */
void poll_release_all(struct poll_registry *reg);

/* Whether the polls are being released (the instance drains). */
bool poll_releasing(struct poll_registry *reg);

/* How many polls are held now (status and tests). */
unsigned poll_held_count(struct poll_registry *reg);

#endif
