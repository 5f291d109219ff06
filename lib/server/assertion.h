/*
 * Onboarding assertions (issue 12, docs/protocol.md "Onboarding assertion"):
 * the organisation cloud's signed statement that the device SERIAL, known to
 * the conductor CONDUCTOR as ASSET_ID, holds the certificate key whose
 * SubjectPublicKeyInfo hashes to KEY_SHA256, until EXPIRES.
 *
 * Format: CMS SignedData (RFC 5652) with the payload embedded, signed by the
 * organisation's assertion key (EC P-256, SHA-256), no certificates inside,
 * DER, then base64. The payload is a JSON object:
 *   {"v":1, "type":"onramp-onboarding-assertion", "serial":..., "asset_id":...,
 *    "key_sha256":<64 hex>, "conductor":<64 hex>, "issued":<epoch>, "expires":<epoch>}
 * CMS is made and checked by OpenSSL (CMS_sign / CMS_verify): no hand-made
 * signature encoding. A verifier pins the one certificate it trusts (the
 * signature must verify with that certificate's key; no chain is built).
 *
 * The cloud signs (cloudd); a conductor verifies. Neither trusts anything in
 * an assertion before its signature checks out.
 */
#ifndef ONRAMP_SERVER_ASSERTION_H
#define ONRAMP_SERVER_ASSERTION_H

#include "core/secret.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define ASSERTION_TEXT_MAX 4096 /* base64 text of one assertion */
#define ASSERTION_ASSET_MAX 128
#define ASSERTION_SERIAL_MAX 64
#define ASSERTION_TTL_MAX (7 * 86400L)

/* What an assertion says. */
struct assertion_claims {
	char serial[ASSERTION_SERIAL_MAX + 1];
	char asset_id[ASSERTION_ASSET_MAX + 1];
	char key_sha256[65]; /* hex SHA-256 of the device's certificate key (SPKI DER) */
	char conductor[65];  /* hex SHA-256 of the conductor's root CA key (SPKI DER) */
	time_t issued, expires;
};

struct assertion_signer; /* the assertion certificate and its private key */

/*
 * Loads the signer: the certificate and its private key (PEM). Refuses a key
 * that is not the certificate's, or a certificate out of its validity.
 */
int assertion_signer_load(const char *cert_pem, const char *key_pem, struct assertion_signer **out);
void assertion_signer_free(struct assertion_signer *s);

/* Signs claims; *out (malloc'd) is the base64 text. */
int assertion_sign(const struct assertion_signer *s, const struct assertion_claims *claims,
		   char **out);

/*
 * Checks an assertion's signature against trusted_cert_pem (the pinned
 * assertion certificate, which must be within its validity at now), parses
 * its payload strictly, and refuses it when expired at now or issued in the
 * future (beyond 300 s of clock skew). The claims are filled only on success.
 */
int assertion_verify(const char *trusted_cert_pem, const char *text, time_t now,
		     struct assertion_claims *out);

/*
 * Checks verified claims against what the caller expects: the asset ID
 * presented, the key that signed the device CSR, this conductor. The error
 * names the first that differs.
 */
int assertion_match(const struct assertion_claims *c, const char *asset_id, const char *key_sha256,
		    const char *conductor);

#endif
