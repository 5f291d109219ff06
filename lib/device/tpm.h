/*
 * The device's TPM 2.0, through tpm2-tss ESYS.
 *
 * One struct tpm is one ESYS context over one TCTI. Every key onramp keeps in
 * the TPM is an ordinary (non-persistent) object under a primary key that is
 * derived again, from the same template, for every operation: the owner seed
 * makes it the same key each time, so the blobs kept on disk load after a
 * restart, and on no other TPM. Every transient handle is flushed before a
 * function returns, on every path, because a TPM without a resource manager
 * (swtpm, /dev/tpm0) has only three object slots for all its clients.
 *
 * A blob (struct tpm_blob) is an object's public and wrapped private part,
 * marshalled as the TPM defines them; the private part is encrypted and
 * integrity-protected by the TPM under the primary key and is useless
 * elsewhere.
 */
#ifndef ONRAMP_TPM_H
#define ONRAMP_TPM_H

#include <stddef.h>
#include <stdint.h>

#include "core/secret.h"
#include "device/ocra.h"

struct tpm; /* one ESYS context; swtpm serves ONE client at a time */

/* Longest payload tpm_seal() takes: the TPM's sealed-data limit. */
#define TPM_SEAL_MAX 128
/* Largest key tpm_hmac_key_create() takes: one block of the hash. */
#define TPM_HMAC_KEY_MAX 128

#define TPM_BLOB_MAX 4096

struct tpm_blob {
	uint8_t data[TPM_BLOB_MAX]; /* TPM2B_PUBLIC then TPM2B_PRIVATE, marshalled */
	size_t len;
};

/*
 * Connects to the TPM named by tcti: "device:/dev/tpmrm0", "device",
 * "swtpm:host=127.0.0.1,port=N", "swtpm", "tabrmd", "tabrmd:CONF" or
 * "mssim:host=...,port=N". Other TCTI names are refused, because tctildr
 * would load any shared library named there.
 */
int tpm_open(const char *tcti, struct tpm **out);

/* Checks a TCTI string's name against the list above, without connecting. */
int tpm_check_tcti(const char *tcti);
void tpm_close(struct tpm *);

/* Fills buf with len bytes from the TPM's random number generator. */
int tpm_random(struct tpm *, uint8_t *buf, size_t len);

/* Makes an HMAC key object for hash holding key (at most one hash block). */
int tpm_hmac_key_create(struct tpm *, enum ocra_hash hash, const struct secret *key,
			struct tpm_blob *out);

/* HMAC of msg (at most 1024 bytes) computed inside the TPM with the key in blob. */
int tpm_hmac(struct tpm *, const struct tpm_blob *key, enum ocra_hash hash, const uint8_t *msg,
	     size_t msg_len, uint8_t *mac, size_t *mac_len);

/* Seals data (at most TPM_SEAL_MAX bytes) into a sealed-data object. */
int tpm_seal(struct tpm *, const uint8_t *data, size_t len, struct tpm_blob *out);

/* Gives back the data of a sealed object; fails clearly under another TPM. */
int tpm_unseal(struct tpm *, const struct tpm_blob *sealed, struct secret *out);

/* Makes an EC P-256 ECDSA-SHA256 signing key; its private part never leaves the TPM. */
int tpm_ec_key_create(struct tpm *, struct tpm_blob *out);

/*
 * The public key of an EC blob as an OpenSSL EVP_PKEY (declared as void so
 * that this header needs no OpenSSL include; the caller frees it with
 * EVP_PKEY_free).
 */
int tpm_ec_public(const struct tpm_blob *key, void **evp_pkey_out);

/* Signs a SHA-256 digest (32 bytes) in the TPM; *sig_der is DER ECDSA-Sig-Value (malloc'd). */
int tpm_ec_sign(struct tpm *, const struct tpm_blob *key, const uint8_t digest[32],
		uint8_t **sig_der, size_t *sig_len);

/* Base64 text of a blob (malloc'd) and back; the decoder checks the blob's structure. */
char *tpm_blob_to_base64(const struct tpm_blob *);
int tpm_blob_from_base64(const char *text, const char *what, struct tpm_blob *out);

#endif
