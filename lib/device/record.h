/*
 * The factory's registration record: what the cloud's inventory learns about
 * a device made in the factory. JSON:
 *
 *   {"version":2,"serial":"S","model":"M","ocra_suite":"OCRA-1:HOTP-SHA256-0:QA10-S064",
 *    "ocra_key_cms":"<base64 DER CMS EnvelopedData of the raw OCRA key>",
 *    "claim_secret_cms":"<base64 DER CMS EnvelopedData of the claim secret>",
 *    "claim_hash":"<SHA-256 hex of the claim secret>",
 *    "created":"<RFC 3339 UTC>"}
 *
 * The claim secret (64 lower-case hex digits, 256 random bits) proves a claim
 * at the redirector: the factory registers only its hash there (onrampctl
 * redirect device register RECORD), and only the inventory that can decrypt
 * the secret can claim the serial. Version 1 records (no claim secret) are
 * still read; their devices cannot be claimed through a redirector.
 *
 * The OCRA key is encrypted to the inventory's RSA key (RSA-OAEP key
 * transport, AES-256-CBC content, the recipient named by its key identifier:
 * the SHA-1 of the public key, as RFC 5280 4.2.1.2 (1)), so the key never
 * rests or travels in clear. The factory writes records; cloudd reads them
 * and decrypts the key with the inventory private key.
 */
#ifndef ONRAMP_RECORD_H
#define ONRAMP_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/secret.h"
#include "device/ocra.h"

#define RECORD_VERSION 2
#define RECORD_DEFAULT_SUITE "OCRA-1:HOTP-SHA256-0:QA10-S064" /* the factory's default */
#define RECORD_CLAIM_SECRET_HEX 64 /* the claim secret: 32 random bytes in hex */
#define RECORD_CLAIM_HASH_HEX 64   /* its SHA-256 in hex */
#define RECORD_SERIAL_MAX 64
#define RECORD_MODEL_MAX 64
#define RECORD_MAX_BYTES 65536

struct record {
	char serial[RECORD_SERIAL_MAX + 1];
	char model[RECORD_MODEL_MAX + 1];
	char ocra_suite[OCRA_SUITE_MAX + 1];
	char created[32];
	uint8_t *ocra_key_cms; /* DER, malloc'd */
	size_t ocra_key_cms_len;
	uint8_t *claim_secret_cms; /* DER, malloc'd; NULL in a version 1 record */
	size_t claim_secret_cms_len;
	char claim_hash[RECORD_CLAIM_HASH_HEX + 1]; /* "" in a version 1 record */
};

/* Serial: 1-64 of letters, digits, '.', '_', ':', '-'. Model: 1-64 printable ASCII. */
int record_check_serial(const char *serial);
int record_check_model(const char *model);

/*
 * Loads the inventory's public key from PEM text: an RSA public key
 * (SubjectPublicKeyInfo or PKCS#1) or an X.509 certificate holding one.
 * *pkey_out is an EVP_PKEY (void so that this header needs no OpenSSL).
 */
int record_load_inventory_key(const char *pem, size_t len, void **pkey_out);

/* A fresh claim secret: RECORD_CLAIM_SECRET_HEX lower-case hex digits, NUL-terminated. */
int record_claim_secret_new(struct secret *out);

/* SHA-256 (lower-case hex) of a claim secret's text: what the redirector keeps. */
int record_claim_hash(const char *claim_secret, char out[RECORD_CLAIM_HASH_HEX + 1]);

/*
 * Builds a record, encrypting key and the claim secret (from
 * record_claim_secret_new) to inventory_pkey (from record_load_inventory_key).
 */
int record_create(const char *serial, const char *model, const char *suite,
		  const struct secret *key, const struct secret *claim_secret, void *inventory_pkey,
		  struct record *out);

/* The record as JSON (new reference) / from JSON, every field checked. */
json_t *record_to_json(const struct record *);
int record_from_json(json_t *doc, struct record *out);

/* Writes the record to path atomically (0600); reads and checks one. */
int record_write(const char *path, const struct record *);
int record_read(const char *path, struct record *out);

/*
 * Decrypts the OCRA key with the inventory private key (PEM text). A record
 * made for another inventory key fails with an error that says so; the key's
 * length must fit the suite's hash.
 */
int record_decrypt_key(const struct record *, const char *inventory_private_key_pem,
		       struct secret *key_out);

/*
 * Decrypts the claim secret with the inventory private key; it must be well
 * formed and match the record's claim_hash. A version 1 record has none.
 */
int record_decrypt_claim_secret(const struct record *, const char *inventory_private_key_pem,
				struct secret *secret_out);

void record_free(struct record *);

#endif
