/*
 * The hello nonces this instance issued (docs/protocol-conductor.md, "Proof
 * of the secret"), in memory. A nonce is bound to the TLS connection its
 * hello came on: the proof that uses it binds that connection's exporter, so
 * it can only ever be used there, and a connection ends at one instance, so
 * no other instance needs it (a restart that forgets it also closes the
 * connection). The last NONCES_MAX issued are kept, in the order issued;
 * hellos on other connections never evict a router's nonce before that many
 * more were issued, which the rate limits keep far from the seconds between a
 * hello and its auth. Safe from every event-loop thread (one lock).
 */
#ifndef ONRAMP_CONDUCTOR_NONCES_H
#define ONRAMP_CONDUCTOR_NONCES_H

#include "proto/conductor_psk.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define NONCES_MAX 4096
/* SHA-256 of the connection's exporter (CONDUCTOR_EXPORTER_LABEL). */
#define NONCES_BINDING_LEN 32

struct nonces;

int nonces_new(struct nonces **out);
void nonces_free(struct nonces *);

/* Keeps a nonce issued to subject on the connection of binding until expires. */
int nonces_put(struct nonces *, const uint8_t nonce[CONDUCTOR_NONCE_LEN], const char *subject,
	       const uint8_t binding[NONCES_BINDING_LEN], time_t expires);

/*
 * Uses up a nonce: true when it was issued here to subject on the connection
 * of binding, is not used yet and has not expired at now; false otherwise
 * (unknown here, given to another subject or connection, used, expired).
 */
bool nonces_take(struct nonces *, const uint8_t nonce[CONDUCTOR_NONCE_LEN], const char *subject,
		 const uint8_t binding[NONCES_BINDING_LEN], time_t now);

#endif
