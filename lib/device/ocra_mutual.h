/*
 * Mutual OCRA challenge-response (RFC 6287 section 7.3) as onramp uses it
 * between a device and its cloud (docs/protocol.md):
 *
 *   device -> cloud   QC                      (the client's challenge)
 *   cloud  -> device  QS, R_S = OCRA(K, QC || QS, S)
 *   device -> cloud   R_C = OCRA(K, QS || QC, S)
 *
 * S is the session information: the TLS exporter of the connection that
 * carries the response, so a response is good on that connection only.
 * Both roles use the same two functions; the order of the challenges is
 * what tells the responses apart.
 */
#ifndef ONRAMP_OCRA_MUTUAL_H
#define ONRAMP_OCRA_MUTUAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device/ocra.h"

enum ocra_role {
	OCRA_ROLE_SERVER, /* R_S: question QC || QS */
	OCRA_ROLE_CLIENT, /* R_C: question QS || QC */
};

/* Computes the response of `role` into out (OCRA_RESPONSE_MAX bytes). */
int ocra_mutual_response(const struct ocra_suite *suite, const struct ocra_hmac *hmac,
			 enum ocra_role role, const char *client_q, const char *server_q,
			 const uint8_t *session, size_t session_len, char *out, size_t out_cap);

/* Checks a response of `role` in constant time; *ok says whether it matched. */
int ocra_mutual_check(const struct ocra_suite *suite, const struct ocra_hmac *hmac,
		      enum ocra_role role, const char *client_q, const char *server_q,
		      const uint8_t *session, size_t session_len, const char *response, bool *ok);

#endif
