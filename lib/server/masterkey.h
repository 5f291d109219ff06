/*
 * A server's master key: 32 random bytes in a 0600 file made at
 * initialisation, and AES-256-GCM sealing under it for what a server keeps
 * secret in its database (device OCRA keys, pre-shared secrets). A sealed
 * value is bound to a context string (e.g. "ocra-key:SERIAL"), so a value
 * copied to another row does not open there. A stolen database alone gives
 * nothing away.
 *
 * Sealed text: base64 of 0x01 || nonce (12) || ciphertext || tag (16).
 */
#ifndef ONRAMP_MASTERKEY_H
#define ONRAMP_MASTERKEY_H

#include <stddef.h>

#include "core/secret.h"

#define MASTERKEY_LEN 32

struct masterkey;

/* Writes a new random key to path (mode 0600); refuses to replace an existing file. */
int masterkey_create(const char *path);

/* Loads the key; refuses a file of another size or readable by group or others. */
int masterkey_load(const char *path, struct masterkey **out);

void masterkey_free(struct masterkey *mk);

/* Seals len bytes bound to context; *sealed is malloc'd text. */
int masterkey_seal(const struct masterkey *mk, const char *context, const void *data, size_t len,
		   char **sealed);

/* Opens sealed text bound to context; a tampered, truncated or misplaced value is refused. */
int masterkey_open(const struct masterkey *mk, const char *context, const char *sealed,
		   struct secret *out);

#endif
