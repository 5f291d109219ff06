/*
 * The router's certificate key: an EC P-256 key that signs the PKCS#10
 * certificate signing requests (CSRs) for the certificates the conductor
 * issues to the router.
 *
 * With a TPM the key is generated inside the TPM and its private part never
 * leaves it: state_dir/certkey.json holds only the TPM's wrapped blob, and the
 * CSR's signature is made by the TPM (TPM2_Sign over the SHA-256 of the
 * request's to-be-signed part). Without one, the key is a PEM file,
 * state_dir/certkey.pem, mode 0600.
 */
#ifndef ONRAMP_CERTKEY_H
#define ONRAMP_CERTKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpm;
struct certkey; /* EC P-256 key for the router's certificate */

#define CERTKEY_TPM_FILE "certkey.json"
#define CERTKEY_SOFTWARE_FILE "certkey.pem"

/* Opens the key of state_dir, generating it on first use (in the TPM when tpm != NULL). */
int certkey_open_or_create(const char *state_dir, struct tpm *tpm /* NULL = software */,
			   struct certkey **out);

/*
 * A PEM CSR (malloc'd) with subject CN=common_name and the URIs as
 * subjectAltName entries, signed by the key (SHA-256 ECDSA). The CN has 1 to
 * 64 characters; each URI is an absolute URI of at most 1024 characters.
 */
int certkey_csr(struct certkey *, const char *common_name, const char *const *uri_sans,
		size_t n_sans, char **csr_pem_out);

/* The public key as PEM SubjectPublicKeyInfo (malloc'd). */
int certkey_public_pem(struct certkey *, char **pem_out);

/*
 * The key's identity (hex SHA-256 of its SubjectPublicKeyInfo, as
 * pki_spki_sha256 and pki_csr_check name it); out has PKI_KEY_ID_LEN + 1 bytes.
 */
int certkey_key_id(struct certkey *, char *out);

/* A DER ECDSA signature (malloc'd) of SHA-256(data), made by the key. */
int certkey_sign(struct certkey *, const void *data, size_t len, uint8_t **sig_der,
		 size_t *sig_len);

/* True when the private key lives in a TPM. */
bool certkey_in_tpm(const struct certkey *);

void certkey_close(struct certkey *);

#endif
