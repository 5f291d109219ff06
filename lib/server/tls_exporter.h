/*
 * Keying material of a server-side TLS connection (RFC 5705 / RFC 8446 7.5,
 * no context value), kept with the connection once taken. A request's
 * binding to its connection (the conductor's sessions and nonces, the cloud's
 * challenges) takes the same exporter on every request of a kept-alive
 * connection, and each taking is two HKDF expansions with their algorithm
 * fetches. The value of one connection, label and length never changes, so
 * the kept copy is the value; it is wiped when the connection is freed.
 */
#ifndef ONRAMP_SERVER_TLS_EXPORTER_H
#define ONRAMP_SERVER_TLS_EXPORTER_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

/* Longest label and value kept (longer ones are taken every time). */
#define TLS_EXPORTER_LABEL_MAX 64
#define TLS_EXPORTER_LEN_MAX 64

/* Fills out with len bytes exported under label from ssl. Returns 0, or -1 with an error. */
int tls_exporter(SSL *ssl, const char *label, uint8_t *out, size_t len);

#endif
