/*
 * TPM 2.0 operations on tpm2-tss ESYS. See tpm.h for the key hierarchy.
 *
 * Each operation derives the primary key, loads what it needs, does its one
 * command and flushes every handle it made before it returns. Nothing here
 * trusts a blob read from disk: it is unmarshalled with bounds and the TPM
 * checks its integrity when it is loaded.
 */
#include "device/tpm.h"

#include "core/encoding.h"
#include "core/error.h"
#include "core/log.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_sys.h>
#include <tss2/tss2_tctildr.h>

_Static_assert(sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE) <= TPM_BLOB_MAX,
	       "TPM_BLOB_MAX must hold a marshalled public and private part");

struct tpm {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
};

#define EC_COORD 32 /* bytes of a P-256 coordinate */
/* The headers' TPM2_*_FIRST, without their signed shift that UBSan flags. */
#define TRANSIENT_FIRST ((TPM2_HANDLE)TPM2_HT_TRANSIENT << TPM2_HR_SHIFT)
#define LOADED_SESSION_FIRST ((TPM2_HANDLE)TPM2_HT_LOADED_SESSION << TPM2_HR_SHIFT)

/* Records "TPM <what> failed: <decoded code>"; returns -1. */
static int
tss_fail(TSS2_RC rc, const char *what)
{
	return or_error("TPM %s failed: %s (0x%x)", what, Tss2_RC_Decode(rc), (unsigned)rc);
}

/* The TPM's algorithm ID of an OCRA hash. */
static TPMI_ALG_HASH
tpm_hash_alg(enum ocra_hash hash)
{
	switch (hash) {
	case OCRA_HASH_SHA1:
		return TPM2_ALG_SHA1;
	case OCRA_HASH_SHA256:
		return TPM2_ALG_SHA256;
	case OCRA_HASH_SHA512:
		return TPM2_ALG_SHA512;
	}
	return TPM2_ALG_NULL;
}

/* Gives back a transient handle; a failure only leaks a slot, so it is logged, not returned. */
static void
flush(struct tpm *t, ESYS_TR *handle)
{
	TSS2_RC rc;

	if (*handle == ESYS_TR_NONE)
		return;
	rc = Esys_FlushContext(t->esys, *handle);
	if (rc != TSS2_RC_SUCCESS)
		log_warn("TPM: flushing a transient object failed: %s", Tss2_RC_Decode(rc));
	*handle = ESYS_TR_NONE;
}

/*
 * Without a resource manager, objects and sessions a killed client left
 * loaded stay in the TPM and take its few slots. swtpm and a raw /dev/tpm0
 * serve one client at a time, so whatever is loaded when we connect is a
 * leftover; through /dev/tpmrm0 or tabrmd we only ever see our own (none).
 * They are flushed by raw handle (SAPI): ESYS knows nothing of them.
 */
static void
flush_leftovers(struct tpm *t)
{
	static const TPM2_HANDLE ranges[] = {TRANSIENT_FIRST, LOADED_SESSION_FIRST};
	TSS2_SYS_CONTEXT *sys = NULL;
	unsigned flushed = 0;

	if (Esys_GetSysContext(t->esys, &sys) != TSS2_RC_SUCCESS)
		return;
	for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
		TPMS_CAPABILITY_DATA *cap = NULL;
		TPMI_YES_NO more = TPM2_NO;

		if (Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				       TPM2_CAP_HANDLES, ranges[r], TPM2_MAX_CAP_HANDLES, &more,
				       &cap) != TSS2_RC_SUCCESS)
			continue;
		for (UINT32 i = 0; i < cap->data.handles.count; i++)
			if (Tss2_Sys_FlushContext(sys, cap->data.handles.handle[i]) ==
			    TSS2_RC_SUCCESS)
				flushed++;
		Esys_Free(cap);
	}
	if (flushed > 0)
		log_warn("TPM: flushed %u object(s) or session(s) left by an earlier client",
			 flushed);
}

/* Accepts only the TCTI names tpm.h lists, so tctildr never loads another library. */
int
tpm_check_tcti(const char *tcti)
{
	static const char *const allowed[] = {"device", "swtpm", "tabrmd", "mssim"};
	size_t name_len = strcspn(tcti, ":");

	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (strlen(allowed[i]) == name_len && strncmp(tcti, allowed[i], name_len) == 0)
			return 0;
	return or_error("TCTI '%s' is not one of device, swtpm, tabrmd or mssim", tcti);
}

/* Connects through the TCTI, starts the TPM if needed and flushes what killed clients left. */
int
tpm_open(const char *tcti, struct tpm **out)
{
	struct tpm *t = NULL;
	TSS2_RC rc;

	*out = NULL;
	if (tpm_check_tcti(tcti) == -1)
		return -1;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return or_error("out of memory");
	/*
	 * tpm2-tss logs every TPM error on stderr by itself; ours say the same
	 * with context, so its own lines stay off unless the operator sets TSS2_LOG.
	 */
	setenv("TSS2_LOG", "all+none", 0);
	rc = Tss2_TctiLdr_Initialize(tcti, &t->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		or_error("cannot reach the TPM through '%s': %s", tcti, Tss2_RC_Decode(rc));
		goto fail;
	}
	rc = Esys_Initialize(&t->esys, t->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		tss_fail(rc, "initialisation");
		goto fail;
	}
	/* A TPM already started (by firmware, the kernel or swtpm's flag) answers INITIALIZE. */
	rc = Esys_Startup(t->esys, TPM2_SU_CLEAR);
	if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) {
		tss_fail(rc, "startup");
		goto fail;
	}
	flush_leftovers(t);
	*out = t;
	return 0;
fail:
	tpm_close(t);
	return -1;
}

/* Finalises ESYS and the TCTI; NULL is fine. */
void
tpm_close(struct tpm *t)
{
	if (t == NULL)
		return;
	if (t->esys != NULL)
		Esys_Finalize(&t->esys);
	if (t->tcti != NULL)
		Tss2_TctiLdr_Finalize(&t->tcti);
	free(t);
}

/*
 * The storage primary: an ECC P-256 restricted decryption key under the owner
 * hierarchy. The template never changes, so the TPM derives the same key from
 * its owner seed every time; that is what lets blobs load after a restart.
 */
static int
primary(struct tpm *t, ESYS_TR *out)
{
	const TPM2B_SENSITIVE_CREATE sens = {0};
	const TPM2B_PUBLIC tmpl = {
		.publicArea =
			{
				.type = TPM2_ALG_ECC,
				.nameAlg = TPM2_ALG_SHA256,
				.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
						    TPMA_OBJECT_SENSITIVEDATAORIGIN |
						    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
						    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
				.parameters.eccDetail =
					{
						.symmetric = {.algorithm = TPM2_ALG_AES,
							      .keyBits.aes = 128,
							      .mode.aes = TPM2_ALG_CFB},
						.scheme = {.scheme = TPM2_ALG_NULL},
						.curveID = TPM2_ECC_NIST_P256,
						.kdf = {.scheme = TPM2_ALG_NULL},
					},
			},
	};
	const TPM2B_DATA outside = {0};
	const TPML_PCR_SELECTION pcrs = {0};
	TSS2_RC rc;

	*out = ESYS_TR_NONE;
	rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, out, NULL, NULL, NULL,
				NULL);
	if (rc != TSS2_RC_SUCCESS) {
		*out = ESYS_TR_NONE;
		return tss_fail(rc, "primary key creation");
	}
	return 0;
}

/*
 * A salted HMAC session for parameter encryption: what crosses the bus
 * between us and the TPM (a key being put in, an unsealed value, random
 * bytes, an HMAC) is AES-128-CFB encrypted under a session key that only we
 * and the TPM know, salted with the primary. flags says which way: DECRYPT
 * for the command's first parameter, ENCRYPT for the response's.
 */
static int
start_session(struct tpm *t, ESYS_TR salt_key, TPMA_SESSION flags, ESYS_TR *out)
{
	const TPMT_SYM_DEF sym = {
		.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB};
	TSS2_RC rc;

	rc = Esys_StartAuthSession(t->esys, salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, NULL, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, out);
	if (rc != TSS2_RC_SUCCESS) {
		*out = ESYS_TR_NONE;
		return tss_fail(rc, "session start");
	}
	/* CONTINUESESSION: the session stays until we flush it, on every path alike. */
	rc = Esys_TRSess_SetAttributes(t->esys, *out, flags | TPMA_SESSION_CONTINUESESSION, 0xff);
	if (rc != TSS2_RC_SUCCESS) {
		flush(t, out);
		return tss_fail(rc, "session setup");
	}
	return 0;
}

/* Marshals a created object's public and private parts into one blob. */
static int
blob_join(const TPM2B_PUBLIC *pub, const TPM2B_PRIVATE *priv, struct tpm_blob *out)
{
	size_t off = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, out->data, sizeof(out->data), &off) !=
		    TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PRIVATE_Marshal(priv, out->data, sizeof(out->data), &off) !=
		    TSS2_RC_SUCCESS)
		return or_error("cannot marshal a TPM key blob");
	out->len = off;
	return 0;
}

/* Unmarshals a blob read from disk, with bounds; the whole blob must be used. */
static int
blob_split(const struct tpm_blob *b, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv)
{
	size_t off = 0;

	memset(pub, 0, sizeof(*pub));
	memset(priv, 0, sizeof(*priv));
	if (b->len > sizeof(b->data) ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(b->data, b->len, &off, pub) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PRIVATE_Unmarshal(b->data, b->len, &off, priv) != TSS2_RC_SUCCESS ||
	    off != b->len)
		return or_error("the TPM key blob is damaged (it does not unmarshal)");
	return 0;
}

/* Creates an object under the primary from a template and sensitive part. */
static int
create(struct tpm *t, const TPM2B_PUBLIC *tmpl, const TPM2B_SENSITIVE_CREATE *sens,
       struct tpm_blob *out, const char *what)
{
	const TPM2B_DATA outside = {0};
	const TPML_PCR_SELECTION pcrs = {0};
	ESYS_TR parent = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc;
	int ret = -1;

	if (primary(t, &parent) == -1 ||
	    start_session(t, parent, TPMA_SESSION_DECRYPT, &sess) == -1)
		goto out;
	rc = Esys_Create(t->esys, parent, sess, ESYS_TR_NONE, ESYS_TR_NONE, sens, tmpl, &outside,
			 &pcrs, &priv, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		tss_fail(rc, what);
		goto out;
	}
	ret = blob_join(pub, priv, out);
out:
	flush(t, &sess);
	flush(t, &parent);
	if (priv != NULL)
		secure_zero(priv, sizeof(*priv));
	Esys_Free(priv);
	Esys_Free(pub);
	return ret;
}

/*
 * A blob that fails the TPM's integrity check was wrapped by another TPM (or
 * under another owner seed) or altered on disk: say so rather than a code.
 */
static int
load_fail(TSS2_RC rc)
{
	bool fmt1 = (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1);

	if (fmt1 && (rc & 0x3f) == (TPM2_RC_INTEGRITY & 0x3f))
		return or_error("the TPM refuses the key blob: it was made by another TPM (or "
				"before the TPM was cleared), or it was altered (%s)",
				Tss2_RC_Decode(rc));
	return or_error("the TPM refuses the key blob: %s (0x%x)", Tss2_RC_Decode(rc),
			(unsigned)rc);
}

/*
 * Loads a blob under the primary; the primary is flushed again at once. With
 * sess != NULL also starts a session for the command to come (see
 * start_session) while the primary is there to salt it.
 */
static int
load(struct tpm *t, const struct tpm_blob *b, TPM2B_PUBLIC *pub, ESYS_TR *obj, ESYS_TR *sess,
     TPMA_SESSION flags)
{
	ESYS_TR parent = ESYS_TR_NONE;
	TPM2B_PRIVATE priv;
	TSS2_RC rc;
	int ret = -1;

	*obj = ESYS_TR_NONE;
	if (sess != NULL)
		*sess = ESYS_TR_NONE;
	if (blob_split(b, pub, &priv) == -1)
		return -1;
	if (primary(t, &parent) == -1)
		goto out;
	rc = Esys_Load(t->esys, parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, pub,
		       obj);
	if (rc != TSS2_RC_SUCCESS) {
		*obj = ESYS_TR_NONE;
		load_fail(rc);
		goto out;
	}
	if (sess != NULL && start_session(t, parent, flags, sess) == -1) {
		flush(t, obj);
		goto out;
	}
	ret = 0;
out:
	flush(t, &parent);
	secure_zero(&priv, sizeof(priv));
	return ret;
}

/* Random bytes from the TPM, encrypted on the bus; asks again when it gives fewer. */
int
tpm_random(struct tpm *t, uint8_t *buf, size_t len)
{
	ESYS_TR parent = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	int ret = -1;

	/* The bytes become keys: they come back encrypted (see start_session). */
	if (primary(t, &parent) == -1 ||
	    start_session(t, parent, TPMA_SESSION_ENCRYPT, &sess) == -1)
		goto out;
	flush(t, &parent);
	while (len > 0) {
		TPM2B_DIGEST *rnd = NULL;
		UINT16 want = len > sizeof(rnd->buffer) ? sizeof(rnd->buffer) : (UINT16)len;
		TSS2_RC rc = Esys_GetRandom(t->esys, sess, ESYS_TR_NONE, ESYS_TR_NONE, want, &rnd);
		if (rc != TSS2_RC_SUCCESS) {
			tss_fail(rc, "random number generation");
			goto out;
		}
		/* The TPM may give fewer bytes than asked; take what came and ask again. */
		if (rnd->size == 0 || rnd->size > want) {
			or_error("TPM random number generation gave %u bytes for %u", rnd->size,
				 (unsigned)want);
			Esys_Free(rnd);
			goto out;
		}
		memcpy(buf, rnd->buffer, rnd->size);
		buf += rnd->size;
		len -= rnd->size;
		secure_zero(rnd, sizeof(*rnd));
		Esys_Free(rnd);
	}
	ret = 0;
out:
	flush(t, &sess);
	flush(t, &parent);
	return ret;
}

/*
 * Wraps a given HMAC key (at most one hash block) as a TPM object; the copy of
 * the key on the stack is wiped.
 */
int
tpm_hmac_key_create(struct tpm *t, enum ocra_hash hash, const struct secret *key,
		    struct tpm_blob *out)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPM2B_PUBLIC tmpl = {
		.publicArea =
			{
				.type = TPM2_ALG_KEYEDHASH,
				.nameAlg = TPM2_ALG_SHA256,
				/*
				 * The key bytes come from outside the Create
				 * command, so SENSITIVEDATAORIGIN must be clear.
				 */
				.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
						    TPMA_OBJECT_USERWITHAUTH |
						    TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_NODA,
				.parameters.keyedHashDetail.scheme =
					{
						.scheme = TPM2_ALG_HMAC,
						.details.hmac.hashAlg = tpm_hash_alg(hash),
					},
			},
	};
	size_t block = hash == OCRA_HASH_SHA512 ? 128 : 64;
	int rc;

	if (key->len == 0 || key->len > block || key->len > sizeof(sens.sensitive.data.buffer))
		return or_error("an HMAC-%s key in the TPM must be 1 to %zu bytes, not %zu",
				ocra_hash_name(hash), block, key->len);
	sens.sensitive.data.size = (UINT16)key->len;
	memcpy(sens.sensitive.data.buffer, key->data, key->len);
	rc = create(t, &tmpl, &sens, out, "HMAC key creation");
	secure_zero(&sens, sizeof(sens));
	return rc;
}

/*
 * HMAC in the TPM with a loaded key blob, after checking that the blob is an
 * HMAC key of that hash; the result comes back encrypted.
 */
int
tpm_hmac(struct tpm *t, const struct tpm_blob *key, enum ocra_hash hash, const uint8_t *msg,
	 size_t msg_len, uint8_t *mac, size_t *mac_len)
{
	TPM2B_MAX_BUFFER in = {0};
	TPM2B_DIGEST *digest = NULL;
	TPM2B_PUBLIC pub;
	ESYS_TR obj = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	TPMI_ALG_HASH alg = tpm_hash_alg(hash);
	TSS2_RC rc;
	int ret = -1;

	if (msg_len > sizeof(in.buffer))
		return or_error("HMAC input of %zu bytes is more than the TPM's %zu", msg_len,
				sizeof(in.buffer));
	if (load(t, key, &pub, &obj, &sess, TPMA_SESSION_ENCRYPT) == -1)
		goto out;
	if (pub.publicArea.type != TPM2_ALG_KEYEDHASH ||
	    pub.publicArea.parameters.keyedHashDetail.scheme.scheme != TPM2_ALG_HMAC ||
	    pub.publicArea.parameters.keyedHashDetail.scheme.details.hmac.hashAlg != alg) {
		or_error("the TPM key is not an HMAC-%s key", ocra_hash_name(hash));
		goto out;
	}
	in.size = (UINT16)msg_len;
	memcpy(in.buffer, msg, msg_len);
	rc = Esys_HMAC(t->esys, obj, sess, ESYS_TR_NONE, ESYS_TR_NONE, &in, alg, &digest);
	if (rc != TSS2_RC_SUCCESS) {
		tss_fail(rc, "HMAC");
		goto out;
	}
	if (digest->size != ocra_hash_size(hash)) {
		or_error("the TPM's HMAC-%s has %u bytes", ocra_hash_name(hash), digest->size);
		goto out;
	}
	memcpy(mac, digest->buffer, digest->size);
	*mac_len = digest->size;
	ret = 0;
out:
	flush(t, &sess);
	flush(t, &obj);
	secure_zero(&in, sizeof(in));
	if (digest != NULL)
		secure_zero(digest, sizeof(*digest));
	Esys_Free(digest);
	return ret;
}

/* Seals up to TPM_SEAL_MAX bytes into a sealed-data object of this TPM. */
int
tpm_seal(struct tpm *t, const uint8_t *data, size_t len, struct tpm_blob *out)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	const TPM2B_PUBLIC tmpl = {
		.publicArea =
			{
				.type = TPM2_ALG_KEYEDHASH,
				.nameAlg = TPM2_ALG_SHA256,
				/* Neither sign nor decrypt: a sealed-data object. */
				.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
						    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA,
				.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
			},
	};
	int rc;

	if (len == 0 || len > TPM_SEAL_MAX)
		return or_error("the TPM seals 1 to %d bytes, not %zu", TPM_SEAL_MAX, len);
	sens.sensitive.data.size = (UINT16)len;
	memcpy(sens.sensitive.data.buffer, data, len);
	rc = create(t, &tmpl, &sens, out, "sealing");
	secure_zero(&sens, sizeof(sens));
	return rc;
}

/*
 * Loads a sealed blob and gives back its data (encrypted on the bus); another
 * TPM's blob fails to load.
 */
int
tpm_unseal(struct tpm *t, const struct tpm_blob *sealed, struct secret *out)
{
	TPM2B_SENSITIVE_DATA *data = NULL;
	TPM2B_PUBLIC pub;
	ESYS_TR obj = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	TSS2_RC rc;
	int ret = -1;

	if (load(t, sealed, &pub, &obj, &sess, TPMA_SESSION_ENCRYPT) == -1)
		goto out;
	rc = Esys_Unseal(t->esys, obj, sess, ESYS_TR_NONE, ESYS_TR_NONE, &data);
	if (rc != TSS2_RC_SUCCESS) {
		tss_fail(rc, "unsealing");
		goto out;
	}
	ret = secret_from(out, data->buffer, data->size);
out:
	flush(t, &sess);
	flush(t, &obj);
	if (data != NULL)
		secure_zero(data, sizeof(*data));
	Esys_Free(data);
	return ret;
}

/* An EC P-256 ECDSA-SHA256 signing key generated inside the TPM. */
int
tpm_ec_key_create(struct tpm *t, struct tpm_blob *out)
{
	const TPM2B_SENSITIVE_CREATE sens = {0};
	const TPM2B_PUBLIC tmpl = {
		.publicArea =
			{
				.type = TPM2_ALG_ECC,
				.nameAlg = TPM2_ALG_SHA256,
				.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
						    TPMA_OBJECT_SENSITIVEDATAORIGIN |
						    TPMA_OBJECT_USERWITHAUTH |
						    TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_NODA,
				.parameters.eccDetail =
					{
						.symmetric = {.algorithm = TPM2_ALG_NULL},
						.scheme = {.scheme = TPM2_ALG_ECDSA,
							   .details.ecdsa.hashAlg =
								   TPM2_ALG_SHA256},
						.curveID = TPM2_ECC_NIST_P256,
						.kdf = {.scheme = TPM2_ALG_NULL},
					},
			},
	};

	return create(t, &tmpl, &sens, out, "EC key creation");
}

/* Left-pads a TPM big-endian coordinate to EC_COORD bytes. */
static int
coord(const TPM2B_ECC_PARAMETER *p, uint8_t out[EC_COORD])
{
	if (p->size == 0 || p->size > EC_COORD)
		return or_error("the TPM key blob has a %u-byte P-256 coordinate", p->size);
	memset(out, 0, EC_COORD);
	memcpy(out + EC_COORD - p->size, p->buffer, p->size);
	return 0;
}

/* The public point of an EC blob as an EVP_PKEY, checked to be on P-256 by OpenSSL. */
int
tpm_ec_public(const struct tpm_blob *key, void **evp_pkey_out)
{
	uint8_t point[1 + 2 * EC_COORD];
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	int ret = -1;

	*evp_pkey_out = NULL;
	if (blob_split(key, &pub, &priv) == -1)
		return -1;
	secure_zero(&priv, sizeof(priv));
	if (pub.publicArea.type != TPM2_ALG_ECC ||
	    pub.publicArea.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256)
		return or_error("the TPM key blob is not an EC P-256 key");
	point[0] = POINT_CONVERSION_UNCOMPRESSED;
	if (coord(&pub.publicArea.unique.ecc.x, point + 1) == -1 ||
	    coord(&pub.publicArea.unique.ecc.y, point + 1 + EC_COORD) == -1)
		return -1;
	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		or_error("the TPM key's public point is not a valid P-256 key");
		goto out;
	}
	*evp_pkey_out = pkey;
	ret = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return ret;
}

/* Signs a SHA-256 digest with the blob's key in the TPM; DER ECDSA-Sig-Value out. */
int
tpm_ec_sign(struct tpm *t, const struct tpm_blob *key, const uint8_t digest[32], uint8_t **sig_der,
	    size_t *sig_len)
{
	const TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_ECDSA,
					.details.ecdsa.hashAlg = TPM2_ALG_SHA256};
	/* A NULL ticket: the key is not restricted, so the TPM signs any digest. */
	const TPMT_TK_HASHCHECK validation = {.tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL};
	TPM2B_DIGEST in = {.size = 32};
	TPMT_SIGNATURE *sig = NULL;
	TPM2B_PUBLIC pub;
	ESYS_TR obj = ESYS_TR_NONE;
	ECDSA_SIG *esig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	TSS2_RC rc;
	int der_len, ret = -1;

	*sig_der = NULL;
	*sig_len = 0;
	memcpy(in.buffer, digest, 32);
	if (load(t, key, &pub, &obj, NULL, 0) == -1)
		goto out;
	rc = Esys_Sign(t->esys, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &in, &scheme,
		       &validation, &sig);
	if (rc != TSS2_RC_SUCCESS) {
		tss_fail(rc, "signing");
		goto out;
	}
	if (sig->sigAlg != TPM2_ALG_ECDSA) {
		or_error("the TPM answered with a signature of another kind");
		goto out;
	}
	esig = ECDSA_SIG_new();
	r = BN_bin2bn(sig->signature.ecdsa.signatureR.buffer, sig->signature.ecdsa.signatureR.size,
		      NULL);
	s = BN_bin2bn(sig->signature.ecdsa.signatureS.buffer, sig->signature.ecdsa.signatureS.size,
		      NULL);
	if (esig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(esig, r, s)) {
		or_error("out of memory");
		goto out;
	}
	r = s = NULL; /* owned by esig now */
	der_len = i2d_ECDSA_SIG(esig, &der);
	if (der_len <= 0) {
		or_error("cannot encode the TPM's signature");
		goto out;
	}
	*sig_der = malloc((size_t)der_len);
	if (*sig_der == NULL) {
		or_error("out of memory");
		goto out;
	}
	memcpy(*sig_der, der, (size_t)der_len);
	*sig_len = (size_t)der_len;
	ret = 0;
out:
	flush(t, &obj);
	Esys_Free(sig);
	ECDSA_SIG_free(esig);
	BN_free(r);
	BN_free(s);
	OPENSSL_free(der);
	return ret;
}

/* Base64 of a blob for a JSON file. */
char *
tpm_blob_to_base64(const struct tpm_blob *b)
{
	return base64_encode(b->data, b->len);
}

/* Decodes base64 from a file into a blob that must unmarshal; the decoded bytes are wiped. */
int
tpm_blob_from_base64(const char *text, const char *what, struct tpm_blob *out)
{
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
	uint8_t *raw = NULL;
	size_t len;
	int ret = -1;

	if (base64_decode(text, what, &raw, &len) == -1)
		return -1;
	if (len > sizeof(out->data)) {
		or_error("%s is longer than any TPM key blob", what);
		goto out;
	}
	memcpy(out->data, raw, len);
	out->len = len;
	if (blob_split(out, &pub, &priv) == -1) {
		or_error_prefix("%s", what);
		goto out;
	}
	ret = 0;
out:
	secure_zero(&priv, sizeof(priv));
	if (raw != NULL)
		secure_zero(raw, len);
	free(raw);
	return ret;
}
