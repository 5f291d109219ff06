/*
 * Trust anchors parsed once per process (see anchors.h). What it trusts:
 * nothing in an anchor text until pki_certs_parse accepted all of it; the
 * memo keeps only texts that parsed, keyed by the whole text, so a changed
 * anchor is a new entry and never a stale hit.
 */
#include "core/anchors.h"

#include "core/error.h"
#include "core/x509.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MEMO_SLOTS 8

static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *pem;
	size_t max_certs;
	STACK_OF(X509) * certs;
} memo[MEMO_SLOTS];
static size_t memo_next;

/*
 * See anchors.h: a hit hands out new references; a miss parses outside the
 * lock (another thread's hit does not wait for it) and takes the next slot
 * round the memo. A text is remembered with the bound it was checked
 * against: a caller with a smaller bound parses it again.
 */
STACK_OF(X509) * pki_anchors_get(const char *pem, size_t max_certs, const char *what)
{
	STACK_OF(X509) *certs = NULL, *kept;
	char *copy;

	if (pem == NULL) {
		or_error("%s is empty", what);
		return NULL;
	}
	pthread_mutex_lock(&memo_lock);
	for (size_t i = 0; i < MEMO_SLOTS && certs == NULL; i++)
		if (memo[i].pem != NULL && memo[i].max_certs <= max_certs &&
		    strcmp(memo[i].pem, pem) == 0 &&
		    (certs = X509_chain_up_ref(memo[i].certs)) == NULL)
			break;
	pthread_mutex_unlock(&memo_lock);
	if (certs != NULL)
		return certs;
	if ((certs = pki_certs_parse(pem, strlen(pem), max_certs, what)) == NULL)
		return NULL;
	/* Out of memory it is not remembered: the next call parses it again. */
	if ((copy = strdup(pem)) == NULL || (kept = X509_chain_up_ref(certs)) == NULL) {
		free(copy);
		return certs;
	}
	pthread_mutex_lock(&memo_lock);
	free(memo[memo_next].pem);
	sk_X509_pop_free(memo[memo_next].certs, X509_free);
	memo[memo_next].pem = copy;
	memo[memo_next].max_certs = max_certs;
	memo[memo_next].certs = kept;
	memo_next = (memo_next + 1) % MEMO_SLOTS;
	pthread_mutex_unlock(&memo_lock);
	return certs;
}

/* See anchors.h. X509_STORE_add_cert takes its own reference to each. */
X509_STORE *
pki_anchors_store(STACK_OF(X509) * anchors)
{
	X509_STORE *store = X509_STORE_new();

	if (store == NULL)
		return NULL;
	for (int i = 0; i < sk_X509_num(anchors); i++)
		if (X509_STORE_add_cert(store, sk_X509_value(anchors, i)) != 1) {
			X509_STORE_free(store);
			return NULL;
		}
	return store;
}
