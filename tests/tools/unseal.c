/*
 * unseal: opens one value a server sealed under its master key, with the real
 * lib/server/masterkey code, so an integration test can learn a secret the
 * server keeps (the cloud's assertion key, say) and grep logs, state and
 * databases for it.
 *
 *   unseal MASTER_KEY_FILE CONTEXT < SEALED_TEXT     prints the plaintext
 */
#include "core/error.h"
#include "core/secret.h"
#include "server/masterkey.h"

#include <stdio.h>
#include <string.h>

/* Reads the sealed text from stdin, opens it, writes the plaintext to stdout. */
int
main(int argc, char **argv)
{
	static char sealed[65536 + 2];
	struct masterkey *mk = NULL;
	struct secret plain = {0};
	size_t n;
	int rc = 1;

	if (argc != 3) {
		fputs("usage: unseal MASTER_KEY_FILE CONTEXT < SEALED\n", stderr);
		return 2;
	}
	n = fread(sealed, 1, sizeof(sealed) - 1, stdin);
	sealed[n] = '\0';
	while (n > 0 && (sealed[n - 1] == '\n' || sealed[n - 1] == '\r'))
		sealed[--n] = '\0';
	if (masterkey_load(argv[1], &mk) == -1 ||
	    masterkey_open(mk, argv[2], sealed, &plain) == -1) {
		fprintf(stderr, "unseal: %s\n", or_errmsg());
		goto out;
	}
	fwrite(plain.data, 1, plain.len, stdout);
	rc = 0;
out:
	secret_free(&plain);
	masterkey_free(mk);
	return rc;
}
