/*
 * The open OCRA challenges of this process (see challenges.h): kept in
 * memory, not in the database, because a challenge is bound to the TLS
 * connection it was issued on and a connection ends at one instance (the
 * balancer runs in TCP mode), so no other instance could ever use it, and a
 * restart that loses them also closed their connections. Trusts its callers:
 * serial, id and questions were checked before they get here.
 */
#include "challenges.h"

#include "core/error.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096
/* Records a device keeps, open and answered: answered ones say "replay" to a second finish. */
#define RECORDS_MAX (2 * CHALLENGES_OPEN_MAX)
/* The whole table is swept for old records at most this often (seconds). */
#define SWEEP_EVERY_S 60

struct record {
	char id[CLOUD_ID_HEX + 1];
	char qc[OCRA_QUESTION_FIELD + 1], qs[OCRA_QUESTION_FIELD + 1];
	uint8_t binding[CHALLENGES_BINDING_LEN];
	time_t expires;
	uint64_t issued; /* order of issue in this process: the oldest open one is evicted */
	bool used;
};

struct device {
	struct device *next;
	char serial[CLOUD_SERIAL_MAX + 1];
	size_t n, cap;
	struct record *records;
};

struct challenges {
	pthread_mutex_t lock;
	unsigned long keep_s;
	uint64_t issued;
	time_t swept;
	struct device *buckets[BUCKETS];
};

/* See challenges.h. */
int
challenges_new(unsigned long keep_s, struct challenges **out)
{
	struct challenges *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (t == NULL)
		return or_error("out of memory");
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		return or_error("cannot make a lock for the challenges");
	}
	t->keep_s = keep_s;
	*out = t;
	return 0;
}

/* Drops record i of d; its questions and binding are zeroed. */
static void
drop_record(struct device *d, size_t i)
{
	OPENSSL_cleanse(&d->records[i], sizeof(d->records[i]));
	d->records[i] = d->records[d->n - 1];
	d->n--;
}

/* Frees a device entry and what it holds. */
static void
free_device(struct device *d)
{
	if (d->records != NULL)
		OPENSSL_cleanse(d->records, d->cap * sizeof(*d->records));
	free(d->records);
	free(d);
}

/* See challenges.h. */
void
challenges_free(struct challenges *t)
{
	struct device *d, *next;
	size_t b;

	if (t == NULL)
		return;
	for (b = 0; b < BUCKETS; b++)
		for (d = t->buckets[b]; d != NULL; d = next) {
			next = d->next;
			free_device(d);
		}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* FNV-1a of the serial: its bucket. */
static size_t
bucket_of(const char *serial)
{
	uint32_t h = 2166136261u;

	for (; *serial != '\0'; serial++)
		h = (h ^ (uint8_t)*serial) * 16777619u;
	return h % BUCKETS;
}

/* The device's entry, or NULL; with prev set to the link that points at it. */
static struct device *
find(struct challenges *t, const char *serial, struct device ***link)
{
	struct device **p = &t->buckets[bucket_of(serial)];

	for (; *p != NULL; p = &(*p)->next)
		if (strcmp((*p)->serial, serial) == 0)
			break;
	if (link != NULL)
		*link = p;
	return *p;
}

/* Drops d's records expired more than keep_s ago (a late finish hears "expired" until then). */
static void
drop_old(const struct challenges *t, struct device *d, time_t now)
{
	size_t i = 0;

	while (i < d->n)
		if ((long long)d->records[i].expires < (long long)now - (long long)t->keep_s)
			drop_record(d, i);
		else
			i++;
}

/* Once a minute: old records of every device go, and devices left with none. */
static void
sweep(struct challenges *t, time_t now)
{
	struct device **p, *d;
	size_t b;

	if (now - t->swept < SWEEP_EVERY_S)
		return;
	t->swept = now;
	for (b = 0; b < BUCKETS; b++)
		for (p = &t->buckets[b]; (d = *p) != NULL;) {
			drop_old(t, d, now);
			if (d->n == 0) {
				*p = d->next;
				free_device(d);
			} else {
				p = &d->next;
			}
		}
}

/*
 * Makes room for one record in d: beyond CHALLENGES_OPEN_MAX open ones the
 * oldest open one goes (a flood never refuses the newest); with every slot
 * taken, the oldest answered or expired one goes.
 */
static void
make_room(struct device *d, time_t now)
{
	size_t i, open = 0, oldest_open = SIZE_MAX, oldest_done = SIZE_MAX;

	for (i = 0; i < d->n; i++) {
		const struct record *r = &d->records[i];
		if (!r->used && r->expires > now) {
			open++;
			if (oldest_open == SIZE_MAX || r->issued < d->records[oldest_open].issued)
				oldest_open = i;
		} else if (oldest_done == SIZE_MAX || r->issued < d->records[oldest_done].issued) {
			oldest_done = i;
		}
	}
	if (open >= CHALLENGES_OPEN_MAX)
		drop_record(d, oldest_open);
	else if (d->n >= RECORDS_MAX)
		drop_record(d, oldest_done);
}

/* See challenges.h. */
int
challenges_put(struct challenges *t, const char *serial, const char *id, const char *qc,
	       const char *qs, time_t expires, const uint8_t binding[CHALLENGES_BINDING_LEN],
	       time_t now)
{
	struct device *d, **link;
	struct record *r;
	int rc = -1;

	pthread_mutex_lock(&t->lock);
	sweep(t, now);
	d = find(t, serial, &link);
	if (d == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL) {
			or_error("out of memory");
			goto out;
		}
		snprintf(d->serial, sizeof(d->serial), "%s", serial);
		*link = d;
	}
	drop_old(t, d, now);
	make_room(d, now);
	if (d->n == d->cap) {
		size_t cap = d->cap == 0 ? 2 : 2 * d->cap;
		struct record *grown = calloc(cap, sizeof(*grown));
		if (grown == NULL) {
			or_error("out of memory");
			goto out;
		}
		if (d->n > 0) {
			memcpy(grown, d->records, d->n * sizeof(*grown));
			OPENSSL_cleanse(d->records, d->cap * sizeof(*d->records));
		}
		free(d->records);
		d->records = grown;
		d->cap = cap;
	}
	r = &d->records[d->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->qc, sizeof(r->qc), "%s", qc);
	snprintf(r->qs, sizeof(r->qs), "%s", qs);
	memcpy(r->binding, binding, CHALLENGES_BINDING_LEN);
	r->expires = expires;
	r->issued = ++t->issued;
	rc = 0;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* See challenges.h. */
int
challenges_take(struct challenges *t, const char *serial, const char *id,
		const uint8_t binding[CHALLENGES_BINDING_LEN], time_t now, char *qc, char *qs,
		const char **code, const char **reason)
{
	struct record *r = NULL;
	struct device *d;
	size_t i;
	int rc = -1;

	pthread_mutex_lock(&t->lock);
	d = find(t, serial, NULL);
	for (i = 0; d != NULL && i < d->n; i++)
		if (strcmp(d->records[i].id, id) == 0 &&
		    CRYPTO_memcmp(d->records[i].binding, binding, CHALLENGES_BINDING_LEN) == 0) {
			r = &d->records[i];
			break;
		}
	if (r == NULL) {
		*code = "unknown-challenge";
		*reason = "no such challenge for this device on this connection";
	} else if (r->used) {
		*code = "challenge-used";
		*reason = "challenge was answered already (replay)";
	} else {
		/* Used up whatever follows: of two concurrent finishes, one gets it. */
		r->used = true;
		if (r->expires <= now) {
			*code = "challenge-expired";
			*reason = "challenge expired";
		} else {
			snprintf(qc, OCRA_QUESTION_FIELD + 1, "%s", r->qc);
			snprintf(qs, OCRA_QUESTION_FIELD + 1, "%s", r->qs);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* See challenges.h. */
void
challenges_forget(struct challenges *t, const char *serial)
{
	struct device *d, **link;

	pthread_mutex_lock(&t->lock);
	d = find(t, serial, &link);
	if (d != NULL) {
		*link = d->next;
		free_device(d);
	}
	pthread_mutex_unlock(&t->lock);
}
