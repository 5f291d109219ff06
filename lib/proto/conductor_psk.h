/*
 * Pre-shared secrets of a conductor, and the proof a router (or a peer
 * conductor) gives that it holds one, bound to its TLS connection.
 *
 * A secret's text is "orpsk-<id>-<secret>": an 8-hex-digit identifier the
 * conductor looks the secret up by (not secret), then 64 hex digits of
 * randomness. The HMAC key is the whole text, so a router treats it as one
 * opaque string.
 *
 * proof = HMAC-SHA256(key = secret text,
 *                     conductor nonce (32 bytes) || subject || TLS exporter (32 bytes))
 * where subject is the asset ID (router) or "peer:" + router name (peer query),
 * and the exporter is RFC 5705's with label CONDUCTOR_EXPORTER_LABEL and no
 * context. Nonce and exporter have fixed lengths, so the concatenation is
 * unambiguous. A proof cannot be replayed (single-use nonce) nor relayed to
 * another TLS connection (the exporter differs).
 */
#ifndef ONRAMP_CONDUCTOR_PSK_H
#define ONRAMP_CONDUCTOR_PSK_H

#include "core/secret.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONDUCTOR_EXPORTER_LABEL "EXPORTER-onramp-conductor"
#define CONDUCTOR_EXPORTER_LEN 32
#define CONDUCTOR_NONCE_LEN 32
#define CONDUCTOR_PROOF_LEN 32
#define PSK_ID_LEN 8
#define PSK_TEXT_LEN (6 + PSK_ID_LEN + 1 + 64) /* "orpsk-" id "-" 64 hex */
#define CONDUCTOR_SUBJECT_MAX 128	       /* longest asset ID or peer subject */

/* A new random secret: its identifier, and its text (NUL-terminated) in text. */
int psk_generate(char id[PSK_ID_LEN + 1], struct secret *text);

/* Checks the form of a secret's text and copies its identifier out. */
int psk_parse_id(const char *text, size_t len, char id[PSK_ID_LEN + 1]);

/* True for an asset ID: 1..128 printable ASCII characters other than space. */
bool conductor_valid_subject(const char *subject);

/* Computes the proof (CONDUCTOR_PROOF_LEN bytes) described above. */
int psk_proof(const struct secret *psk, const uint8_t nonce[CONDUCTOR_NONCE_LEN],
	      const char *subject, const uint8_t exporter[CONDUCTOR_EXPORTER_LEN],
	      uint8_t out[CONDUCTOR_PROOF_LEN]);

/* Recomputes the proof and compares in constant time; false on any error. */
bool psk_proof_check(const struct secret *psk, const uint8_t nonce[CONDUCTOR_NONCE_LEN],
		     const char *subject, const uint8_t exporter[CONDUCTOR_EXPORTER_LEN],
		     const uint8_t proof[CONDUCTOR_PROOF_LEN]);

#endif
