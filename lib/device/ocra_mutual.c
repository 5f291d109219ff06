/*
 * Mutual OCRA: the question of each role, then lib/ocra.c does the rest.
 * Trusts nothing about the challenges: ocra.c checks the question.
 */
#include "device/ocra_mutual.h"

#include "core/error.h"
#include "core/secret.h"

#include <stdio.h>
#include <string.h>

/*
 * Fills in for the role: the client answers QS || QC, the server QC || QS;
 * q (2 * OCRA_QUESTION_FIELD + 1 bytes) holds the question.
 */
static int
role_input(enum ocra_role role, const char *client_q, const char *server_q, const uint8_t *session,
	   size_t session_len, char *q, struct ocra_input *in)
{
	const char *first = role == OCRA_ROLE_SERVER ? client_q : server_q;
	const char *second = role == OCRA_ROLE_SERVER ? server_q : client_q;
	int n = snprintf(q, 2 * OCRA_QUESTION_FIELD + 1, "%s%s", first, second);

	if (n < 0 || n > 2 * OCRA_QUESTION_FIELD)
		return or_error("challenges are too long");
	memset(in, 0, sizeof(*in));
	in->question = q;
	in->session = session;
	in->session_len = session_len;
	return 0;
}

/* See ocra_mutual.h. */
int
ocra_mutual_response(const struct ocra_suite *suite, const struct ocra_hmac *hmac,
		     enum ocra_role role, const char *client_q, const char *server_q,
		     const uint8_t *session, size_t session_len, char *out, size_t out_cap)
{
	char q[2 * OCRA_QUESTION_FIELD + 1];
	struct ocra_input in;

	if (role_input(role, client_q, server_q, session, session_len, q, &in) == -1)
		return -1;
	return ocra_compute(suite, &in, hmac, out, out_cap);
}

/* See ocra_mutual.h; ocra_verify compares in constant time. */
int
ocra_mutual_check(const struct ocra_suite *suite, const struct ocra_hmac *hmac, enum ocra_role role,
		  const char *client_q, const char *server_q, const uint8_t *session,
		  size_t session_len, const char *response, bool *ok)
{
	char q[2 * OCRA_QUESTION_FIELD + 1];
	struct ocra_input in;

	*ok = false;
	if (role_input(role, client_q, server_q, session, session_len, q, &in) == -1)
		return -1;
	return ocra_verify(suite, &in, hmac, response, NULL, ok, NULL, NULL);
}
