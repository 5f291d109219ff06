/*
 * Secrets in memory: a buffer that is zeroed before it is freed, constant-time
 * comparison. There is deliberately no way to format a secret for printing.
 */
#ifndef ONRAMP_SECRET_H
#define ONRAMP_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct secret {
	uint8_t *data;
	size_t len;
};

/* Allocates len zeroed bytes. */
int secret_alloc(struct secret *s, size_t len);

/* Copies len bytes into a new secret. */
int secret_from(struct secret *s, const void *data, size_t len);

/* Zeroes and frees; safe on an empty or already freed secret. */
void secret_free(struct secret *s);

/* Zeroes memory in a way the compiler may not remove. */
void secure_zero(void *p, size_t len);

/* Compares in time that depends only on len. */
bool ct_equal(const void *a, const void *b, size_t len);

/* Compares two strings in time that depends only on their lengths. */
bool ct_equal_str(const char *a, const char *b);

/*
 * Keeps the secrets this process will hold out of core dumps: no core file
 * (RLIMIT_CORE 0, soft and hard) and not dumpable (which also keeps other
 * users' ptrace and /proc/PID/mem away). Every program that reads a key, a
 * password or a token calls it before it does.
 */
int secret_disable_core_dumps(void);

#endif
