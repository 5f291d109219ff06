/*
 * Secret buffers on OpenSSL's cleansing allocator and CRYPTO_memcmp.
 */
#include "core/secret.h"

#include "core/error.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

/* A zeroed buffer of len bytes from OpenSSL's allocator (at least one byte). */
int
secret_alloc(struct secret *s, size_t len)
{
	s->len = len;
	s->data = OPENSSL_zalloc(len ? len : 1);
	if (s->data == NULL) {
		s->len = 0;
		return or_error("out of memory");
	}
	return 0;
}

/* A new secret holding a copy of data. */
int
secret_from(struct secret *s, const void *data, size_t len)
{
	if (secret_alloc(s, len) == -1)
		return -1;
	memcpy(s->data, data, len);
	return 0;
}

/* Zeroes and frees; an empty or already freed secret is fine. */
void
secret_free(struct secret *s)
{
	if (s->data != NULL)
		OPENSSL_clear_free(s->data, s->len ? s->len : 1);
	s->data = NULL;
	s->len = 0;
}

/* Zeroes memory in a way the compiler cannot drop (OPENSSL_cleanse). */
void
secure_zero(void *p, size_t len)
{
	OPENSSL_cleanse(p, len);
}

/* Compares len bytes in time that does not depend on where they differ. */
bool
ct_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* Compares two strings; only their lengths may show in the time taken. */
bool
ct_equal_str(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	/* Lengths are not secret (responses have a known digit count). */
	if (la != lb)
		return false;
	return CRYPTO_memcmp(a, b, la) == 0;
}

/* No core file and not dumpable: see secret.h. Trusts nothing. */
int
secret_disable_core_dumps(void)
{
	const struct rlimit none = {0, 0};

	if (setrlimit(RLIMIT_CORE, &none) == -1)
		return or_error("cannot turn core dumps off: %s", strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		return or_error("cannot make the process non-dumpable: %s", strerror(errno));
	return 0;
}
