/*
 * X.509 checks that every layer uses, on OpenSSL 3: certificates and CSRs
 * parsed with size bounds, key identities, chain verification against given
 * anchors, and the name rules for routers and servers. The conductor's CA
 * (which signs) is server/ca.h.
 *
 * A key's identity (key id) is the hex SHA-256 of its DER
 * SubjectPublicKeyInfo: the same for a CSR and the certificate issued for it.
 */
#ifndef ONRAMP_CORE_X509_H
#define ONRAMP_CORE_X509_H

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define PKI_PEERING_URI_PREFIX "urn:onramp:peering:"
#define PKI_KEY_ID_LEN 64	/* hex SHA-256 of a SubjectPublicKeyInfo */
#define PKI_SERIAL_HEX_MAX 41	/* a certificate serial of 20 bytes in hex, NUL */
#define PKI_MAX_PEM (64 * 1024) /* the largest certificate, key or CSR accepted */

/*
 * Checks a PKCS#10 CSR: one PEM CSR, its signature valid, its key EC
 * (P-256 or P-384) or RSA of 2048 bits or more. When required_uri is not
 * NULL the CSR must also carry that URI in a subjectAltName extension (used
 * to bind a CSR to a fresh nonce). On success key_id gets the hex SHA-256
 * of the CSR's SubjectPublicKeyInfo: the device key's identity.
 */
int pki_csr_check(const char *csr_pem, const char *required_uri, char key_id[PKI_KEY_ID_LEN + 1]);

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

/* The most certificates an anchor text (a trust bundle) may hold. */
#define PKI_ANCHOR_CERTS_MAX 64

/*
 * Verifies that cert_pem (a leaf, optionally followed by intermediates)
 * chains to one of the certificates in anchor_pem (1 to PKI_ANCHOR_CERTS_MAX
 * valid PEM certificates), for TLS client and server use, now. -1 with the
 * verifier's reason when it does not. When key_id is not NULL it gets the
 * leaf's key id.
 */
int pki_verify_chain(const char *cert_pem, const char *anchor_pem, char key_id[PKI_KEY_ID_LEN + 1]);

/*
 * Checks that the first len bytes of pem are 1 to max_certs PEM certificates,
 * every block a valid X.509 certificate (text between blocks is ignored, as
 * OpenSSL ignores it). `what` names the value in the error. Leaves OpenSSL's
 * error queue empty.
 */
int pki_check_certificates(const char *pem, size_t len, size_t max_certs, const char *what);

/* The certificates pki_check_certificates accepts, in order; the caller frees the stack. */
STACK_OF(X509) * pki_certs_parse(const char *pem, size_t len, size_t max_certs, const char *what);

/*
 * Building blocks for server/ca.c, which signs what these parsed and checked.
 * pki_ssl_error records `what` with OpenSSL's last error text (clearing the
 * queue) and returns -1; pki_pem_source is a read-only BIO over PEM text of at
 * most PKI_MAX_PEM bytes; pki_cert_from_pem the first certificate of a PEM
 * text; pki_spki_sha256 a key's id (pki_der_key_id that of a SubjectPublicKeyInfo's
 * DER as given); pki_asn1_time seconds since the epoch
 * (-1 when it cannot be read); pki_csr_load parses and checks a CSR as
 * pki_csr_check does and hands it over (the caller frees it; its key is kept
 * as SubjectPublicKeyInfo bytes only, not decoded: X509_REQ_get0_pubkey gives
 * NULL, core/key_id.h's pki_public_key_from_der decodes it); pki_spki_copy
 * copies a SubjectPublicKeyInfo's algorithm, parameter and key bits into
 * another without OpenSSL 3.0's encoder and decoder round trip (0; 1 when the
 * parameter is neither an OID nor NULL, nothing copied; -1 on failure);
 * pki_named_curve_spki is an EC key's SubjectPublicKeyInfo as OpenSSL's encoder
 * writes it, made without OpenSSL 3.0's per-call encoder chain, for a key on a
 * named curve (NULL for any other key, or out of memory: encode it as before).
 */
int pki_ssl_error(const char *what);
BIO *pki_pem_source(const char *pem, const char *what);
X509 *pki_cert_from_pem(const char *pem, const char *what);
int pki_spki_sha256(EVP_PKEY *key, char out[PKI_KEY_ID_LEN + 1]);
int pki_der_key_id(const unsigned char *der, size_t len, char out[PKI_KEY_ID_LEN + 1]);
time_t pki_asn1_time(const ASN1_TIME *t);
bool pki_is_ip_literal(const char *name);
int pki_csr_load(const char *csr_pem, const char *required_uri, X509_REQ **req_out,
		 char key_id[PKI_KEY_ID_LEN + 1]);
int pki_spki_copy(X509_PUBKEY *to, X509_PUBKEY *from);
X509_PUBKEY *pki_named_curve_spki(EVP_PKEY *key);

#endif
