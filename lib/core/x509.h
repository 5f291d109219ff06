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
#ifndef ONRAMP_PKI_H
#define ONRAMP_PKI_H

#include "core/secret.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define PKI_PEERING_URI_PREFIX "urn:onramp:peering:"
#define PKI_KEY_ID_LEN 64	/* hex SHA-256 of a SubjectPublicKeyInfo */
#define PKI_SERIAL_HEX_MAX 41	/* 20 bytes in hex, NUL */
#define PKI_MAX_DAYS_LEAF 825	/* the longest a router or server certificate may live */
#define PKI_MAX_DAYS_CA 7305	/* 20 years */
#define PKI_MAX_PEM (64 * 1024) /* the largest certificate, key or CSR accepted */

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
 * Checks a PKCS#10 CSR: one PEM CSR, its signature valid, its key EC
 * (P-256 or P-384) or RSA of 2048 bits or more. When required_uri is not
 * NULL the CSR must also carry that URI in a subjectAltName extension (used
 * to bind a CSR to a fresh nonce). On success key_id gets the hex SHA-256
 * of the CSR's SubjectPublicKeyInfo: the device key's identity.
 */
int pki_csr_check(const char *csr_pem, const char *required_uri, char key_id[PKI_KEY_ID_LEN + 1]);

/*
 * Signs a router's CSR (checked as by pki_csr_check): subject CN=router_name,
 * SAN URI urn:onramp:peering:<router_name>, EKU serverAuth and clientAuth,
 * CA:FALSE, valid for days (1..PKI_MAX_DAYS_LEAF) but never past the CA's
 * own expiry, a fresh random serial.
 */
int pki_sign_router_csr(struct pki_ca *ca, const char *csr_pem, const char *router_name,
			unsigned days, struct pki_issued *out);

void pki_issued_free(struct pki_issued *issued);

/* True for a router name usable in a certificate: 1..63 of [A-Za-z0-9._-], starting alnum. */
bool pki_valid_router_name(const char *name);

/* True for a DNS name usable in a SAN: 1..253 of [A-Za-z0-9.-], not starting with '.' or '-'. */
bool pki_valid_dns_name(const char *name);

/* The hex SHA-256 of a PEM certificate's public key (the same identity as pki_csr_check's). */
int pki_cert_key_id(const char *cert_pem, char key_id[PKI_KEY_ID_LEN + 1]);

/*
 * Whether a PEM certificate still serves: it names every one of names (IP or
 * DNS SANs) and is valid for at least min_days more days. *not_after is set
 * when the certificate parses. A certificate that does not parse gives -1.
 */
int pki_cert_serves(const char *cert_pem, const char *const *names, size_t n_names,
		    unsigned min_days, bool *serves, time_t *not_after);

/*
 * Verifies that cert_pem (a leaf, optionally followed by intermediates)
 * chains to one of the certificates in anchor_pem, for TLS client and server
 * use, now. -1 with the verifier's reason when it does not.
 */
int pki_verify_chain(const char *cert_pem, const char *anchor_pem);

/*
 * Checks that the first len bytes of pem are 1 to max_certs PEM certificates,
 * every block a valid X.509 certificate (text between blocks is ignored, as
 * OpenSSL ignores it). `what` names the value in the error. Leaves OpenSSL's
 * error queue empty.
 */
int pki_check_certificates(const char *pem, size_t len, size_t max_certs, const char *what);

#endif
