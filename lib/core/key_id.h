/*
 * Key identities (the hex SHA-256 of a DER SubjectPublicKeyInfo, as
 * core/x509.h defines them) of PEM texts, for servers that compute one on
 * every request. OpenSSL 3.0 builds a decoder chain (every provider's
 * decoders and key managers, looked up under locks) for each
 * PEM_read_bio_PUBKEY and an encoder chain for each i2d_PUBKEY: about half
 * a millisecond per key here. These do that work once per process.
 */
#ifndef ONRAMP_CORE_KEY_ID_H
#define ONRAMP_CORE_KEY_ID_H

#include "core/x509.h"

/*
 * The key id of a PEM "PUBLIC KEY" (one SubjectPublicKeyInfo): the SHA-256 of
 * its DER as sent, once OpenSSL decodes that DER, with nothing after it, as a
 * public key. For a key OpenSSL wrote (PEM_write_bio_PUBKEY) that is the same
 * id pki_spki_sha256 gives. Any other PEM type, or DER that is not a public
 * key, is refused with `what` in the error. Thread-safe: one decoder made on
 * first use and kept, used under a lock.
 */
int pki_public_key_id(const char *pem, const char *what, char out[PKI_KEY_ID_LEN + 1]);

/*
 * The public key of a DER SubjectPublicKeyInfo (exactly one, nothing after
 * it), decoded by the same kept decoder; the caller frees it. NULL with `what`
 * and OpenSSL's reason in the error. Thread-safe.
 */
EVP_PKEY *pki_public_key_from_der(const unsigned char *der, size_t len, const char *what);

/*
 * pki_cert_key_id of a certificate text parsed once per process: the
 * text must be 1 to PKI_ANCHOR_CERTS_MAX valid PEM certificates (it comes
 * from core/anchors.h); the first one's key is named. For a server that
 * reads the same few certificates (a site's conductor CA) on every request.
 * Thread-safe.
 */
int pki_cert_key_id_cached(const char *cert_pem, char out[PKI_KEY_ID_LEN + 1]);

#endif
