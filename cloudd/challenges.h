/*
 * The OCRA challenges this process issued (docs/protocol.md section 2), in
 * memory: a challenge is bound to the TLS connection it was issued on, and a
 * connection ends at one instance, so no other instance needs it. A device
 * keeps at most CHALLENGES_OPEN_MAX open ones (a newer one evicts the
 * oldest); a challenge is used up by the first finish that names it on its
 * connection. Safe from every event-loop thread (one lock).
 */
#ifndef ONRAMP_CLOUD_CHALLENGES_H
#define ONRAMP_CLOUD_CHALLENGES_H
#include "device/ocra.h"
#include "proto/cloud_proto.h"
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CHALLENGES_OPEN_MAX 16
/* Expired challenges are kept this long (seconds), so a late finish hears "expired". */
#define CHALLENGES_KEEP_S 600
/* The exporter of the challenge's connection under its own label (device_auth.c). */
#define CHALLENGES_BINDING_LEN 32

struct challenges;

/* An empty table; expired challenges are kept keep_s seconds, so a late finish hears why. */
int challenges_new(unsigned long keep_s, struct challenges **out);
void challenges_free(struct challenges *);

/* Keeps a new challenge of serial (evicting its oldest open one beyond the cap). */
int challenges_put(struct challenges *, const char *serial, const char *id, const char *qc,
		   const char *qs, time_t expires, const uint8_t binding[CHALLENGES_BINDING_LEN],
		   time_t now);

/*
 * Uses up challenge id of serial issued on the connection of binding: 0 with
 * its questions in qc and qs (OCRA_QUESTION_FIELD + 1 each); -1 with *code
 * and *reason when refused (unknown here, used already, or expired).
 */
int challenges_take(struct challenges *, const char *serial, const char *id,
		    const uint8_t binding[CHALLENGES_BINDING_LEN], time_t now, char *qc, char *qs,
		    const char **code, const char **reason);

/* Drops every challenge of serial (it was unclaimed). */
void challenges_forget(struct challenges *, const char *serial);
#endif
