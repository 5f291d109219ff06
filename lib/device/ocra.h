/*
 * RFC 6287 OCRA: OATH Challenge-Response Algorithm.
 *
 * The suite is parsed into struct ocra_suite; the inputs a computation needs
 * are given in struct ocra_input; the HMAC itself is done through struct
 * ocra_hmac, so that the key may live in software or inside a TPM. See
 * docs/ocra.md for the exact input rules, including where onramp is stricter
 * than the RFC's reference code.
 */
#ifndef ONRAMP_OCRA_H
#define ONRAMP_OCRA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/secret.h"

enum ocra_hash { OCRA_HASH_SHA1 = 0, OCRA_HASH_SHA256, OCRA_HASH_SHA512 };

#define OCRA_SUITE_MAX 64
#define OCRA_HASH_MAX 64
#define OCRA_QUESTION_FIELD 128
/* Longest response: the untruncated SHA-512 HMAC in hex. */
#define OCRA_RESPONSE_MAX (2 * OCRA_HASH_MAX + 1)

struct ocra_suite {
	char text[OCRA_SUITE_MAX + 1];
	enum ocra_hash hash;
	unsigned digits; /* 0 means no truncation: the whole HMAC, in hex */
	bool counter;
	char question_format;  /* 'A' alphanumeric, 'N' numeric, 'H' hex */
	unsigned question_max; /* 4 to 64 */
	bool password;
	enum ocra_hash password_hash;
	unsigned session_len; /* bytes of session information; 0 for none */
	bool timestamp;
	unsigned long time_step; /* seconds per time step; 0 only for T0H */
};

struct ocra_input {
	bool has_counter;
	uint64_t counter;
	const char *question;
	const uint8_t *password_hash; /* NULL when not given */
	size_t password_hash_len;
	const uint8_t *session; /* NULL when not given */
	size_t session_len;
	bool has_timestamp;
	uint64_t timestamp; /* in time steps of the suite */
};

/* Computes HMAC-<hash>(key, msg) into mac (OCRA_HASH_MAX bytes), setting mac_len. */
struct ocra_hmac {
	int (*compute)(void *ctx, enum ocra_hash hash, const uint8_t *msg, size_t msg_len,
		       uint8_t *mac, size_t *mac_len);
	void *ctx;
};

/* Look-ahead windows for verification: how far past the expected values to try. */
struct ocra_window {
	unsigned counter_ahead;
	unsigned time_behind;
	unsigned time_ahead;
};

int ocra_suite_parse(const char *text, struct ocra_suite *suite);

size_t ocra_hash_size(enum ocra_hash hash);
const char *ocra_hash_name(enum ocra_hash hash);

/* Checks that question fits the suite's format and length (see docs/ocra.md). */
int ocra_check_question(const struct ocra_suite *suite, const char *question);

/* Builds the RFC's DataInput; *msg is OPENSSL_malloc'd, free with OPENSSL_clear_free. */
int ocra_data_input(const struct ocra_suite *suite, const struct ocra_input *in, uint8_t **msg,
		    size_t *msg_len);

/* Computes the response into out (at least OCRA_RESPONSE_MAX bytes). */
int ocra_compute(const struct ocra_suite *suite, const struct ocra_input *in,
		 const struct ocra_hmac *hmac, char *out, size_t out_cap);

/*
 * Verifies response against the inputs, also trying counters up to
 * counter_ahead past in->counter and time steps within the time window.
 * Sets *ok; when ok, *matched_counter / *matched_time say which values matched
 * (so a server can move its counter past them). Returns -1 only on bad input.
 */
int ocra_verify(const struct ocra_suite *suite, const struct ocra_input *in,
		const struct ocra_hmac *hmac, const char *response, const struct ocra_window *win,
		bool *ok, uint64_t *matched_counter, uint64_t *matched_time);

/* The number of the suite's time steps since the epoch at `now`. */
int ocra_time_steps(const struct ocra_suite *suite, time_t now, uint64_t *steps);

/* A random question of the suite's format and maximum length. */
int ocra_random_question(const struct ocra_suite *suite, char *out, size_t out_cap);

/* The software HMAC: ctx is a struct secret holding the key. */
int ocra_hmac_software(void *ctx, enum ocra_hash hash, const uint8_t *msg, size_t msg_len,
		       uint8_t *mac, size_t *mac_len);

#endif
