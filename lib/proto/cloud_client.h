/*
 * The device half of the router <-> redirector <-> cloud protocol
 * (docs/protocol.md): phone home, mutual OCRA authentication bound to the TLS
 * session, onboarding information, progress reports. The agent calls these;
 * the integration tests drive them through tests/tools/onramp-test-device.
 *
 * Transport is lib/http_client.h (libcurl, through the proxy when there is
 * one). Every answer is checked against the protocol before it is used; the
 * cloud is believed only after its OCRA response checks out.
 *
 * Each call returns 0 on success, or -1 with or_error() and *oc saying what
 * kind of failure it was, so the caller can back off (retry_after_s), report
 * the reason, or give up.
 */
#ifndef ONRAMP_CLOUD_CLIENT_H
#define ONRAMP_CLOUD_CLIENT_H

#include <stddef.h>
#include <time.h>

#include "core/secret.h"
#include "device/ocra.h"
#include "net/http_client.h"
#include "proto/cloud_proto.h"

/* Who the device is. */
struct cloud_device {
	const char *serial;
	const char *model;	      /* NULL: not sent */
	const char *software_version; /* NULL: not sent */
	const char *suite;	      /* its OCRA suite, as in its factory record */
	struct ocra_hmac hmac;	      /* its OCRA key: identity_ocra_hmac() (TPM or software) */
	const char *cert_key_pem;     /* its certificate key's public key (PEM); NULL: not sent */
};

enum cloud_status {
	CLOUD_OK = 0,
	CLOUD_TRANSPORT,	 /* no answer: oc->http_err says why (proxy, DNS, TLS, timeout) */
	CLOUD_NOT_CLAIMED,	 /* redirector: not claimed yet; retry after retry_after_s */
	CLOUD_LOCKED_OUT,	 /* cloud: too many failed authentications; retry_after_s */
	CLOUD_NOT_READY,	 /* cloud: the site's onboarding settings are incomplete */
	CLOUD_REFUSED,		 /* the server refused (4xx): oc->code says why */
	CLOUD_SERVER_NOT_PROVEN, /* the cloud's OCRA response is wrong: not our cloud */
	CLOUD_SERVER_ERROR,	 /* the server failed (5xx) */
	CLOUD_PROTOCOL,		 /* an answer that breaks docs/protocol.md */
};

struct cloud_outcome {
	enum cloud_status status;
	enum http_err http_err; /* for CLOUD_TRANSPORT */
	long http_status;	/* 0 when no answer */
	long retry_after_s;	/* -1 when the server gave none */
	char code[32];		/* the server's error code, "" when none */
};

/* "ok", "transport", "not-claimed", "locked-out", ...: stable names for reports. */
const char *cloud_status_name(enum cloud_status);

/* The answer of phone home: the device's cloud and the anchor to trust it by. */
struct cloud_redirect {
	char cloud_url[CLOUD_URL_MAX + 1];
	char *cloud_ca_pem; /* malloc'd */
};

/*
 * POST /v1/phone-home to the redirector (opts->ca_pem: the redirector's
 * anchor from the factory configuration). Checks the echoed serial and nonce.
 */
int cloud_phone_home(const char *redirector_url, const struct http_client_opts *opts,
		     const struct cloud_device *dev, struct cloud_redirect *out,
		     struct cloud_outcome *oc);
void cloud_redirect_free(struct cloud_redirect *);

/* One challenge exchange, between begin and finish. */
struct cloud_challenge {
	char id[CLOUD_ID_HEX + 1];
	char client_q[OCRA_QUESTION_FIELD + 1];
	char server_q[OCRA_QUESTION_FIELD + 1];
	struct ocra_suite suite;
};

/*
 * POST /v1/device/auth/start with a fresh random QC, then checks the cloud's
 * R_S = OCRA(K, QC || QS, S) with S the exporter of session's connection. A
 * wrong R_S is CLOUD_SERVER_NOT_PROVEN: nothing more may be sent to it.
 */
int cloud_auth_begin(struct http_session *session, const struct cloud_device *dev,
		     struct cloud_challenge *ch, struct cloud_outcome *oc);

/*
 * R_C = OCRA(K, QS || QC, S), S the exporter of `binding`: the session the
 * response will travel on, which must have carried a request already (its TLS
 * connection exists). response: OCRA_RESPONSE_MAX bytes; zero it after use.
 */
int cloud_auth_response(struct http_session *binding, const struct cloud_device *dev,
			const struct cloud_challenge *ch, char *response);

/* POST /v1/device/auth/finish; *token (NUL-terminated) is the device token. */
int cloud_auth_finish(struct http_session *session, const struct cloud_device *dev,
		      const struct cloud_challenge *ch, const char *response, struct secret *token,
		      struct cloud_outcome *oc);

/* begin, response and finish over one session: what the agent does. */
int cloud_authenticate(struct http_session *session, const struct cloud_device *dev,
		       struct secret *token, struct cloud_outcome *oc);

struct cloud_onboarding {
	char organization[CLOUD_NAME_MAX + 1];
	char site[CLOUD_NAME_MAX + 1];
	char addresses[CLOUD_CONDUCTORS_MAX][CLOUD_HOST_MAX + 1];
	size_t n_addresses;
	unsigned port;
	struct secret psk;	/* NUL-terminated; psk.len counts the NUL */
	char *conductor_ca_pem; /* malloc'd; NULL when the site has none */
	char *assertion;	/* malloc'd onboarding assertion (base64 CMS); NULL: none */
	time_t assertion_expires;
	char asset_id[CLOUD_ASSET_ID_MAX + 1]; /* the asset ID the cloud knows it by; "" */
};

/*
 * The device's onboarding information with the device token; checks every
 * field. With dev->cert_key_pem, a POST that names the certificate key and
 * gets the cloud's onboarding assertion for it (issue 12); else a GET.
 */
int cloud_get_onboarding(struct http_session *session, const struct cloud_device *dev,
			 const struct secret *token, struct cloud_onboarding *out,
			 struct cloud_outcome *oc);
void cloud_onboarding_free(struct cloud_onboarding *);

struct cloud_event {
	const char *step; /* e.g. "phone-home" */
	time_t time;
	const char *outcome; /* "started", "ok" or "failed" */
	const char *reason;  /* NULL: none */
};

/* POST /v1/device/events: 1 to CLOUD_EVENTS_MAX events, all checked before sending. */
int cloud_report(struct http_session *session, const struct secret *token,
		 const struct cloud_event *events, size_t n, struct cloud_outcome *oc);

#endif
