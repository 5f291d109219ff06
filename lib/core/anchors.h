/*
 * Trust anchors parsed once per process. OpenSSL 3.0 builds a decoder chain
 * (every provider's decoders and key managers, looked up under locks) for the
 * key of every certificate it parses: about a fifth of a millisecond each
 * here, and a router or server checks the same few anchors on every
 * connection and every issued certificate. These keep the parsed
 * certificates of the last few anchor texts and hand out references.
 */
#ifndef ONRAMP_CORE_ANCHORS_H
#define ONRAMP_CORE_ANCHORS_H

#include <openssl/x509.h>
#include <stddef.h>

/*
 * The certificates of an anchor PEM text, as pki_check_certificates accepts
 * them (1 to max_certs blocks, every one a valid certificate; `what` names the
 * text in the error), parsed on the first call for that text (compared whole)
 * and remembered. The caller owns the returned stack and its references
 * (sk_X509_pop_free(certs, X509_free)); NULL with or_error on bad input or out
 * of memory. Thread-safe; the certificates are shared read-only.
 */
STACK_OF(X509) * pki_anchors_get(const char *pem, size_t max_certs, const char *what);

/*
 * A new X509_STORE trusting the certificates of anchors, for one TLS context
 * or one verification. NULL when out of memory.
 */
X509_STORE *pki_anchors_store(STACK_OF(X509) * anchors);

#endif
