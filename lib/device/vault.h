/*
 * The vault: named secrets (pre-shared secrets, passwords, tokens) and trust
 * anchors (root CA certificates), kept under state_dir/vault/ so that a copy
 * of the disk alone gives none of them away and none can be altered unseen.
 *
 * Every entry is one file, mode 0600, written atomically, holding the value
 * encrypted with AES-256-GCM. With a TPM each entry's AES key is a fresh
 * random key sealed to the TPM (a sealed-data object: it unseals on this TPM
 * only); in software mode the AES key is the device key file
 * state_dir/vault/device.key. The entry's kind and name are authenticated
 * with it, so an entry cannot be altered, truncated, renamed or swapped for
 * another without the read failing with a clear error. Values come back in
 * struct secret (zeroed when freed) and are never logged.
 *
 * Names: 1 to 64 characters of letters, digits, '.', '_' and '-', starting
 * with a letter or digit (so never a path). See docs/device-trust.md.
 */
#ifndef ONRAMP_VAULT_H
#define ONRAMP_VAULT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/secret.h"

struct tpm;
struct vault; /* named secrets + trust anchors under state_dir/vault/ */

#define VAULT_NAME_MAX 64
#define VAULT_VALUE_MAX (256 * 1024)

/*
 * Opens (creating on first use) the vault of state_dir. A vault made with a
 * TPM refuses to open without one, and the other way round.
 */
int vault_open(const char *state_dir,
	       struct tpm *tpm /* NULL = software, AES-256-GCM under a device key file */,
	       struct vault **out);

/* Stores (or replaces) a secret of 1 to VAULT_VALUE_MAX bytes. */
int vault_put(struct vault *, const char *name, const void *data, size_t len);

/* Reads a secret; a missing, tampered or truncated entry gives -1 and a clear error. */
int vault_get(struct vault *, const char *name, struct secret *out);

/* Removes a secret; a missing one is an error. */
int vault_delete(struct vault *, const char *name);

/* True when a secret of that name is stored (says nothing of its integrity). */
bool vault_has(struct vault *, const char *name);

/* Stores a trust anchor: PEM text of one or more X.509 certificates, checked before storing. */
int vault_put_anchor(struct vault *, const char *name, const char *pem);

/* Reads a trust anchor into a malloc'd, NUL-terminated PEM string. */
int vault_get_anchor(struct vault *, const char *name, char **pem_out);

/* Removes a trust anchor; a missing one is an error. */
int vault_delete_anchor(struct vault *, const char *name);

void vault_close(struct vault *);

/* Checks a vault name against the rule above. */
int vault_check_name(const char *name);

#endif
