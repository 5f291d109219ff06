/*
 * Hello nonces in memory (see nonces.h): a ring of the last NONCES_MAX
 * issued. What it trusts: nothing in what a take names; nonce, subject and
 * connection all compared in constant time.
 */
#include "nonces.h"

#include "core/error.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct nonce_record {
	uint8_t nonce[CONDUCTOR_NONCE_LEN];
	uint8_t subject[32]; /* SHA-256 of the subject */
	uint8_t binding[NONCES_BINDING_LEN];
	time_t expires;
	bool live; /* issued and not used */
};

struct nonces {
	pthread_mutex_t lock;
	struct nonce_record ring[NONCES_MAX];
	size_t next;  /* where the next nonce goes: the oldest record */
	size_t count; /* records ever filled, up to NONCES_MAX */
};

int
nonces_new(struct nonces **out)
{
	struct nonces *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (t == NULL || pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		return or_error("out of memory");
	}
	*out = t;
	return 0;
}

void
nonces_free(struct nonces *t)
{
	if (t == NULL)
		return;
	OPENSSL_cleanse(t->ring, sizeof(t->ring));
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* The SHA-256 of a subject (asset IDs and peer subjects are short, bounded by the caller). */
static int
subject_digest(const char *subject, uint8_t out[32])
{
	unsigned int len = 0;

	if (EVP_Digest(subject, strlen(subject), out, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return or_error("SHA-256 failed");
	return 0;
}

/* See nonces.h: the oldest record is overwritten. */
int
nonces_put(struct nonces *t, const uint8_t nonce[CONDUCTOR_NONCE_LEN], const char *subject,
	   const uint8_t binding[NONCES_BINDING_LEN], time_t expires)
{
	struct nonce_record r = {.expires = expires, .live = true};

	if (subject_digest(subject, r.subject) == -1)
		return -1;
	memcpy(r.nonce, nonce, sizeof(r.nonce));
	memcpy(r.binding, binding, sizeof(r.binding));
	pthread_mutex_lock(&t->lock);
	t->ring[t->next] = r;
	t->next = (t->next + 1) % NONCES_MAX;
	if (t->count < NONCES_MAX)
		t->count++;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/*
 * See nonces.h: searched from the newest back, as a nonce is taken moments
 * after its hello; every nonce lives as long, so the search stops at the
 * first expired record (all older ones have expired too).
 */
bool
nonces_take(struct nonces *t, const uint8_t nonce[CONDUCTOR_NONCE_LEN], const char *subject,
	    const uint8_t binding[NONCES_BINDING_LEN], time_t now)
{
	uint8_t digest[32];
	bool taken = false;

	if (subject_digest(subject, digest) == -1)
		return false;
	pthread_mutex_lock(&t->lock);
	for (size_t n = 0; n < t->count; n++) {
		struct nonce_record *r = &t->ring[(t->next + NONCES_MAX - 1 - n) % NONCES_MAX];

		if (r->expires < now)
			break;
		if (!r->live || CRYPTO_memcmp(r->nonce, nonce, sizeof(r->nonce)) != 0)
			continue;
		/* The one record with this nonce: used up whether or not the rest matches. */
		r->live = false;
		taken = CRYPTO_memcmp(r->subject, digest, sizeof(digest)) == 0 &&
			CRYPTO_memcmp(r->binding, binding, sizeof(r->binding)) == 0;
		break;
	}
	pthread_mutex_unlock(&t->lock);
	return taken;
}
