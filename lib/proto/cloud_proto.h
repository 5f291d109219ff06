/*
 * What both ends of the router <-> redirector <-> cloud protocols accept
 * (docs/protocol.md): limits, the checks every field goes through, the
 * device suites allowed, times on the wire. The daemons, the device half
 * (cloud_client.c) and onrampctl share these, so a value one side accepts is a
 * value the other side accepts too.
 */
#ifndef ONRAMP_CLOUD_PROTO_H
#define ONRAMP_CLOUD_PROTO_H

#include <stddef.h>
#include <time.h>

#include "device/ocra.h"

/* RFC 5705 exporter label for the OCRA session information; no context. */
#define CLOUD_EXPORTER_LABEL "EXPORTER-onramp-ocra"
#define CLOUD_DEFAULT_SUITE "OCRA-1:HOTP-SHA256-0:QA10-S064"

#define CLOUD_SERIAL_MAX 64
#define CLOUD_NAME_MAX 64 /* organisation, site, model, token names */
#define CLOUD_CLAIM_CODE_MAX 32
#define CLOUD_URL_MAX 256
#define CLOUD_ASSERTION_MAX 4096 /* an onboarding assertion, base64 */
#define CLOUD_ASSET_ID_MAX 128
#define CLOUD_PEM_MAX 65536 /* a trust anchor or root CA bundle */
#define CLOUD_PEM_CERTS_MAX 16
#define CLOUD_NONCE_MIN 16 /* hex digits */
#define CLOUD_NONCE_MAX 64
#define CLOUD_STEP_MAX 32
#define CLOUD_REASON_MAX 256
#define CLOUD_PSK_MIN 8
#define CLOUD_PSK_MAX 512
#define CLOUD_HOST_MAX 253
#define CLOUD_CONDUCTORS_MAX 8
#define CLOUD_EVENTS_MAX 64  /* events in one report */
#define CLOUD_TOKEN_BYTES 32 /* bearer tokens: 64 hex digits */
#define CLOUD_TOKEN_HEX (2 * CLOUD_TOKEN_BYTES)
#define CLOUD_ID_HEX 32 /* challenge identifiers */

/* Each check returns 0, or -1 with a message naming `what` and the rule broken. */

/* 1 to 64 of A-Z a-z 0-9 . _ - : (as factory records allow), not starting with . or - */
int cloud_check_serial(const char *serial);
/* 1 to 64 of A-Z a-z 0-9 . _ -, not starting with . or -: organisations, sites, tokens. */
int cloud_check_name(const char *what, const char *name);
/* 4 to 32 of A-Z a-z 0-9 - */
int cloud_check_claim_code(const char *code);
/* 16 to 64 hex digits. */
int cloud_check_nonce(const char *nonce);
/* An origin: https://host[:port], nothing after it; at most 256 characters. */
int cloud_check_url(const char *what, const char *url);
/* PEM text of 1 to 16 X.509 certificates and nothing else. */
int cloud_check_pem(const char *what, const char *pem);
/* A DNS name, an IPv4 address or an IPv6 address. */
int cloud_check_host(const char *host);
/* Printable text (no control characters) of at most max bytes; empty allowed when min is 0. */
int cloud_check_text(const char *what, const char *text, size_t min, size_t max);
/* A pre-shared secret: 8 to 512 printable ASCII characters, no space at either end. */
int cloud_check_psk(const char *psk);
/* A progress step: 1 to 32 of a-z 0-9 -, starting with a letter. */
int cloud_check_step(const char *step);
/* A progress outcome: "started", "ok" or "failed". */
int cloud_check_outcome(const char *outcome);
/* A bearer token as issued: exactly 64 lower-case hex digits. */
int cloud_check_token(const char *token);
/* A challenge identifier: exactly 32 lower-case hex digits. */
int cloud_check_id(const char *id);
/* A claim secret, or its SHA-256 (what names it): exactly 64 lower-case hex digits. */
#define CLOUD_CLAIM_SECRET_HEX 64
int cloud_check_claim_hex(const char *what, const char *text);

/*
 * Parses a device suite and checks it fits the mutual exchange: session
 * information (the TLS exporter) required; no counter, password or time step,
 * which would need per-device state beyond the key.
 */
int cloud_device_suite(const char *text, struct ocra_suite *suite);

/* A challenge of the suite: exactly question_max characters of its format. */
int cloud_check_challenge(const struct ocra_suite *suite, const char *challenge);

/* Fills out with `bytes` random bytes in lower-case hex (out: 2 * bytes + 1). */
int cloud_random_hex(size_t bytes, char *out);

/* SHA-256 of text, in lower-case hex (out: 65 bytes): how bearer tokens are stored. */
int cloud_token_hash(const char *token, char *out);

#endif
