/*
 * Exporters kept per connection (see tls_exporter.h). What it trusts: the SSL
 * object is a live connection of the caller's loop thread, so its kept value
 * is read and written by that thread only.
 */
#include "server/tls_exporter.h"

#include "core/error.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <pthread.h>
#include <string.h>

struct kept_exporter {
	char label[TLS_EXPORTER_LABEL_MAX + 1];
	size_t len;
	uint8_t value[TLS_EXPORTER_LEN_MAX];
};

static pthread_once_t index_once = PTHREAD_ONCE_INIT;
static int kept_index = -1;

/* OpenSSL frees the kept value with its connection: wiped, as keying material. */
static void
free_kept(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (ptr != NULL)
		OPENSSL_clear_free(ptr, sizeof(struct kept_exporter));
}

static void
make_index(void)
{
	kept_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_kept);
}

/* Takes the exporter from OpenSSL. */
static int
take(SSL *ssl, const char *label, uint8_t *out, size_t len)
{
	ERR_clear_error();
	if (SSL_export_keying_material(ssl, out, len, label, strlen(label), NULL, 0, 0) != 1) {
		ERR_clear_error();
		return or_error("http: TLS exporter '%s' of %zu bytes failed", label, len);
	}
	return 0;
}

/* See tls_exporter.h: the connection's one kept value is for the last label taken. */
int
tls_exporter(SSL *ssl, const char *label, uint8_t *out, size_t len)
{
	struct kept_exporter *kept;

	pthread_once(&index_once, make_index);
	if (kept_index < 0 || strlen(label) > TLS_EXPORTER_LABEL_MAX || len > TLS_EXPORTER_LEN_MAX)
		return take(ssl, label, out, len);
	kept = SSL_get_ex_data(ssl, kept_index);
	if (kept != NULL && kept->len == len && strcmp(kept->label, label) == 0) {
		memcpy(out, kept->value, len);
		return 0;
	}
	if (take(ssl, label, out, len) == -1)
		return -1;
	if (kept == NULL) {
		if ((kept = OPENSSL_zalloc(sizeof(*kept))) == NULL)
			return 0; /* not kept: taken again next time */
		if (SSL_set_ex_data(ssl, kept_index, kept) != 1) {
			OPENSSL_free(kept);
			return 0;
		}
	}
	memcpy(kept->label, label, strlen(label) + 1);
	kept->len = len;
	memcpy(kept->value, out, len);
	return 0;
}
