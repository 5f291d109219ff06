/*
 * The device's identity: its OCRA key (RFC 6287), by which the cloud knows it.
 *
 * With a TPM the key is an HMAC object of the TPM: the agent holds only the
 * TPM's wrapped blob (state_dir/identity.json) and every OCRA HMAC is
 * computed inside the TPM. Without one (software identity, only when the
 * configuration asks for it) the key is in that file, mode 0600, and opening
 * it logs a warning. Both give the same struct ocra_hmac.
 *
 * See docs/device-trust.md for the file format.
 */
#ifndef ONRAMP_IDENTITY_H
#define ONRAMP_IDENTITY_H

#include <stdbool.h>

#include "core/secret.h"
#include "device/ocra.h"

struct tpm;
struct identity; /* the device's OCRA key: in the TPM, or software */

#define IDENTITY_FILE "identity.json"

/*
 * Makes a new OCRA key of the hash's output size, from the TPM's random
 * number generator (RAND_priv_bytes in software), and stores it, replacing
 * any identity in state_dir (created 0700 if missing). key_out (the factory's
 * only) receives the key so that it can be sent to the cloud encrypted; pass
 * NULL anywhere else.
 */
int identity_create(const char *state_dir, struct tpm *tpm /* NULL = software */,
		    enum ocra_hash hash, struct secret *key_out /* NULL: not wanted */);

/* Stores a given key as the identity (for tests and for moving an existing key into a TPM). */
int identity_import(const char *state_dir, struct tpm *tpm /* NULL = software */,
		    enum ocra_hash hash, const struct secret *key);

/* Opens the identity; a TPM identity needs tpm, a software one needs tpm == NULL. */
int identity_open(const char *state_dir, struct tpm *tpm /* NULL = software */,
		  struct identity **out);

/* The HMAC of the OCRA computation: done in the TPM when the identity is a TPM one. */
struct ocra_hmac identity_ocra_hmac(struct identity *);

/* The hash the key was made for; a suite with another hash is refused. */
enum ocra_hash identity_hash(const struct identity *);

/* True when the key lives in a TPM. */
bool identity_in_tpm(const struct identity *);

void identity_close(struct identity *);

/* 1 when state_dir holds an identity, 0 when not, -1 on error. */
int identity_exists(const char *state_dir);

/* Removes state_dir's identity (the factory's undo when its record cannot be written). */
int identity_remove(const char *state_dir);

#endif
