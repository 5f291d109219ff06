/*
 * The conductor's certificate authority, on OpenSSL 3: a root CA made here
 * or imported, the conductor's own TLS server certificate, and router
 * certificates signed from the routers' CSRs.
 *
 * What a router certificate says is decided here, never by the CSR: the
 * subject is CN=<router name>, the one SAN is the peering identity
 * urn:onramp:peering:<router name>, the CSR's own subject and extensions are
 * ignored. The CSR contributes only its public key, and only after its
 * signature (proof of possession) checks out. Serials are 20 bytes, 158 of their bits random;
 * the caller records every certificate issued (the conductor's database
 * refuses a repeated serial, so a collision can never go unnoticed).
 */
#ifndef ONRAMP_SERVER_CA_H
#define ONRAMP_SERVER_CA_H

#include "core/secret.h"
#include "core/x509.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define PKI_MAX_DAYS_LEAF 825 /* the longest a router or server certificate may live */
#define PKI_MAX_DAYS_CA 7305  /* 20 years */

struct pki_ca; /* a CA certificate and its private key */

/* One certificate just issued, with what the caller records about it. */
struct pki_issued {
	char *cert_pem; /* malloc'd */
	char serial[PKI_SERIAL_HEX_MAX];
	char sha256[65];		 /* fingerprint of the DER certificate, hex */
	char key_id[PKI_KEY_ID_LEN + 1]; /* hex SHA-256 of the certified public key */
	time_t not_before, not_after;
};

/*
 * Makes a new self-signed root CA: an EC P-256 key, CN common_name, valid
 * for days (1..PKI_MAX_DAYS_CA). cert_pem is malloc'd; key_pem is a secret
 * holding NUL-terminated PEM (free with secret_free).
 */
int pki_ca_create(const char *common_name, unsigned days, char **cert_pem, struct secret *key_pem);

/*
 * Loads a CA for signing. Refuses a certificate that is not a CA
 * (basicConstraints CA:TRUE, keyCertSign when key usage is present), one that
 * is expired or not yet valid, and a key that is not the certificate's.
 */
int pki_ca_load(const char *cert_pem, const char *key_pem, struct pki_ca **out);
void pki_ca_free(struct pki_ca *ca);

/* The CA certificate in PEM, as the CA holds it (owned by ca). */
const char *pki_ca_cert_pem(const struct pki_ca *ca);

/*
 * Issues a TLS server certificate for a new EC P-256 key: CN common_name,
 * a SAN for each of names (an IPv4/IPv6 literal becomes an IP SAN, anything
 * else must be a DNS name), EKU serverAuth, valid for days (never past the
 * CA's expiry). The key comes
 * back in key_pem (secret, NUL-terminated PEM).
 */
int pki_issue_server(struct pki_ca *ca, const char *common_name, const char *const *names,
		     size_t n_names, unsigned days, struct pki_issued *out, struct secret *key_pem);

/*
 * Signs a router's CSR (checked as by pki_csr_check): subject CN=router_name,
 * SAN URI urn:onramp:peering:<router_name>, EKU serverAuth and clientAuth,
 * CA:FALSE, valid for days (1..PKI_MAX_DAYS_LEAF) but never past the CA's
 * own expiry, a fresh random serial.
 */
int pki_sign_router_csr(struct pki_ca *ca, const char *csr_pem, const char *router_name,
			unsigned days, struct pki_issued *out);

/*
 * The same for a request already loaded and checked by pki_csr_load, whose
 * key identity it gave as key_id (a request parsed once for both).
 */
int pki_sign_router_req(struct pki_ca *ca, X509_REQ *req, const char *key_id,
			const char *router_name, unsigned days, struct pki_issued *out);

void pki_issued_free(struct pki_issued *issued);

#endif
