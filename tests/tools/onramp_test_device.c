/*
 * onramp-test-device: a device for the cloud integration tests, built on the
 * real device code (lib/cloud_client.h over lib/http_client.h, the identity
 * made by `onrampctl factory init-device`). It phones home, then runs one
 * scenario against the cloud, honest or not, and prints one JSON line per
 * step: {"step":..,"ok":..,"status":..,"http_status":..,"code":..,
 * "retry_after":..,"error":..} plus what the step returned. A test program:
 * it prints what a real device would keep secret (token, pre-shared secret)
 * so that the tests can check them.
 */
#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "device/device.h"
#include "device/identity.h"
#include "net/http_client.h"
#include "net/http_parse.h"
#include "proto/cloud_client.h"

#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: onramp-test-device --state-dir DIR --redirector URL --redirector-ca FILE\n"
	"         [--proxy HOST:PORT [--proxy-user U --proxy-password-file F]]\n"
	"         [--as SERIAL] [--cloud URL] [--second-cloud URL] [--wait S]\n"
	"         [--attempts N] [--cert-key PUBLIC_KEY.pem] ACTION\n"
	"  --cloud URL  talk to this cloud instance instead of the one phone home named\n"
	"actions: phone-home onboard wrong-response replay expired relay brute alternate\n"
	"         raise-alarm (authenticates, reports one alarm raised)\n";

struct run {
	struct cloud_device dev;
	struct http_client_opts redirector_opts, cloud_opts;
	struct http_proxy proxy;
	struct secret proxy_password;
	const char *redirector_url, *cloud, *second_cloud;
	struct cloud_redirect redirect;
	unsigned wait_s, attempts;
};

/* Prints one step's line; extra (may be NULL) is merged in. Returns 0 when ok. */
static int
step(const char *name, int rc, const struct cloud_outcome *oc, json_t *extra)
{
	json_t *line = json_pack("{s:s,s:b}", "step", name, "ok", rc == 0);
	char *text;

	if (oc != NULL) {
		json_object_set_new(line, "status", json_string(cloud_status_name(oc->status)));
		json_object_set_new(line, "http_status", json_integer(oc->http_status));
		json_object_set_new(line, "code", json_string(oc->code));
		json_object_set_new(line, "retry_after", json_integer(oc->retry_after_s));
		if (oc->status == CLOUD_TRANSPORT)
			json_object_set_new(line, "http_err",
					    json_string(http_err_name(oc->http_err)));
	}
	if (rc != 0)
		json_object_set_new(line, "error", json_string(or_errmsg()));
	if (extra != NULL)
		json_object_update(line, extra);
	text = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
	puts(text ? text : "{}");
	fflush(stdout);
	free(text);
	json_decref(line);
	json_decref(extra);
	return rc;
}

/* A session to the cloud at url, through the proxy when there is one. */
static int
open_cloud(struct run *r, const char *url, struct http_session **s)
{
	if (http_session_open(url, &r->cloud_opts, s) == -1)
		return step("open", -1, NULL, json_pack("{s:s}", "url", url));
	return 0;
}

/* How an attempt departs from the honest one. */
enum twist { HONEST = 0, SPOIL = 1, WAIT = 2, REPLAY = 4 };

/*
 * begin on one session, the response computed over `binding`, the finish sent
 * on a third: all the same for an honest device.
 */
static int
attempt(struct run *r, struct http_session *begin_on, struct http_session *binding,
	struct http_session *finish_on, unsigned twist, struct secret *token)
{
	struct cloud_challenge ch;
	struct cloud_outcome oc;
	char response[OCRA_RESPONSE_MAX];
	int rc;

	rc = cloud_auth_begin(begin_on, &r->dev, &ch, &oc);
	step("auth-begin", rc, &oc, rc == 0 ? json_pack("{s:s}", "challenge_id", ch.id) : NULL);
	if (rc == -1)
		return -1;
	if (cloud_auth_response(binding, &r->dev, &ch, response) == -1)
		return step("auth-response", -1, NULL, NULL);
	if (twist & SPOIL)
		response[strlen(response) - 1] = response[strlen(response) - 1] == '0' ? '1' : '0';
	if (twist & WAIT)
		sleep(r->wait_s);
	rc = cloud_auth_finish(finish_on, &r->dev, &ch, response, token, &oc);
	step("auth-finish", rc, &oc,
	     rc == 0 ? json_pack("{s:s}", "token", (const char *)token->data) : NULL);
	if (rc == 0 && (twist & REPLAY)) {
		struct secret again = {0};
		rc = cloud_auth_finish(finish_on, &r->dev, &ch, response, &again, &oc);
		step("auth-replay", rc, &oc, NULL);
		secret_free(&again);
		rc = 0;
	}
	OPENSSL_cleanse(response, sizeof(response));
	return rc;
}

/* Gets the onboarding information with token and prints it as a step. */
static int
onboarding(struct run *r, struct http_session *s, const struct secret *token)
{
	struct cloud_onboarding ob;
	struct cloud_outcome oc;
	json_t *addrs = json_array();
	int rc;

	rc = cloud_get_onboarding(s, &r->dev, token, &ob, &oc);
	if (rc == -1) {
		json_decref(addrs);
		return step("onboarding", rc, &oc, NULL);
	}
	for (size_t i = 0; i < ob.n_addresses; i++)
		json_array_append_new(addrs, json_string(ob.addresses[i]));
	step("onboarding", 0, &oc,
	     json_pack("{s:s,s:s,s:o,s:i,s:s,s:s?,s:s?,s:s,s:I}", "organization", ob.organization,
		       "site", ob.site, "addresses", addrs, "port", (int)ob.port, "psk",
		       (const char *)ob.psk.data, "conductor_ca_pem", ob.conductor_ca_pem,
		       "assertion", ob.assertion, "asset_id", ob.asset_id, "assertion_expires",
		       (json_int_t)ob.assertion_expires));
	cloud_onboarding_free(&ob);
	return 0;
}

/* Sends four progress events (a failure among them) with token; prints it as a step. */
static int
report(struct http_session *s, const struct secret *token)
{
	time_t now = time(NULL);
	const struct cloud_event ev[] = {
		{"phone-home", now - 2, "failed", "not claimed yet (retry after 1 s)"},
		{"phone-home", now - 1, "ok", NULL},
		{"cloud-auth", now, "ok", NULL},
		{"staging-conductor", now, "started", "connecting to the staging conductor"},
	};
	struct cloud_outcome oc;
	int rc = cloud_report(s, token, ev, sizeof(ev) / sizeof(ev[0]), &oc);

	return step("report", rc, &oc, NULL);
}

/* Reports one alarm raised (the text a real agent sends for a dead proxy); prints a step. */
static int
report_alarm(struct http_session *s, const struct secret *token)
{
	const struct cloud_event ev = {"alarm", time(NULL), "failed",
				       "critical raised: Management Proxy is unreachable "
				       "(192.0.2.10:3128)"};
	struct cloud_outcome oc;
	int rc = cloud_report(s, token, &ev, 1, &oc);

	return step("report-alarm", rc, &oc, NULL);
}

/*
 * Connects a fresh session (a request it may refuse), so that its TLS exporter
 * exists before a response is bound to it.
 */
static int
touch(struct http_session *s)
{
	struct http_response resp = {0};
	enum http_err err;
	int rc = http_session_request(s, "GET", "/v1/device/onboarding", NULL, NULL, &resp, &err);

	http_response_free(&resp);
	return rc == 0 ? 0 : step("connect", -1, NULL, NULL);
}

/* Runs the action on the cloud the redirector named. */
static int
act(struct run *r, const char *action)
{
	struct http_session *a = NULL, *b = NULL;
	struct secret token = {0};
	int rc = -1;

	if (r->cloud != NULL)
		snprintf(r->redirect.cloud_url, sizeof(r->redirect.cloud_url), "%s", r->cloud);
	if (open_cloud(r, r->redirect.cloud_url, &a) == -1)
		goto out;
	if (strcmp(action, "onboard") == 0) {
		if (attempt(r, a, a, a, HONEST, &token) == -1)
			goto out;
		rc = onboarding(r, a, &token) == 0 && report(a, &token) == 0 ? 0 : -1;
	} else if (strcmp(action, "raise-alarm") == 0) {
		if (attempt(r, a, a, a, HONEST, &token) == -1)
			goto out;
		rc = report_alarm(a, &token);
	} else if (strcmp(action, "replay") == 0) {
		rc = attempt(r, a, a, a, REPLAY, &token);
	} else if (strcmp(action, "wrong-response") == 0) {
		rc = attempt(r, a, a, a, SPOIL, &token);
	} else if (strcmp(action, "expired") == 0) {
		rc = attempt(r, a, a, a, WAIT, &token);
	} else if (strcmp(action, "relay") == 0) {
		/* The response is computed for connection a and sent over connection b. */
		if (open_cloud(r, r->redirect.cloud_url, &b) == -1)
			goto out;
		rc = attempt(r, a, a, b, HONEST, &token);
	} else if (strcmp(action, "brute") == 0) {
		for (unsigned i = 0; i < r->attempts; i++) {
			http_session_close(a);
			if (open_cloud(r, r->redirect.cloud_url, &a) == -1)
				goto out;
			attempt(r, a, a, a, SPOIL, &token);
		}
		http_session_close(a);
		if (open_cloud(r, r->redirect.cloud_url, &a) == -1)
			goto out;
		rc = attempt(r, a, a, a, HONEST, &token);
	} else if (strcmp(action, "alternate") == 0) {
		/*
		 * Steps served by two instances: authentication on b (a challenge is
		 * bound to the connection it was issued on), then a, then b.
		 */
		if (r->second_cloud == NULL || open_cloud(r, r->second_cloud, &b) == -1 ||
		    touch(b) == -1)
			goto out;
		if (attempt(r, b, b, b, HONEST, &token) == -1)
			goto out;
		rc = onboarding(r, a, &token) == 0 && report(b, &token) == 0 ? 0 : -1;
	} else {
		fprintf(stderr, "onramp-test-device: unknown action '%s'\n%s", action, usage);
		rc = -2;
	}
out:
	secret_free(&token);
	http_session_close(a);
	http_session_close(b);
	return rc;
}

/* Opens the device identity, phones home, then runs the action named on the command line. */
int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"state-dir", required_argument, NULL, 's'},
		{"redirector", required_argument, NULL, 'r'},
		{"redirector-ca", required_argument, NULL, 'c'},
		{"proxy", required_argument, NULL, 'p'},
		{"proxy-user", required_argument, NULL, 'u'},
		{"proxy-password-file", required_argument, NULL, 'w'},
		{"as", required_argument, NULL, 'a'},
		{"cloud", required_argument, NULL, 'C'},
		{"second-cloud", required_argument, NULL, '2'},
		{"wait", required_argument, NULL, 'W'},
		{"attempts", required_argument, NULL, 'n'},
		{"cert-key", required_argument, NULL, 'k'},
		{NULL, 0, NULL, 0},
	};
	const char *state_dir = NULL, *ca_file = NULL, *as = NULL, *pw_file = NULL,
		   *key_file = NULL;
	char *cert_key = NULL;
	struct run r = {0};
	struct device_info info;
	struct identity *id = NULL;
	struct cloud_outcome oc;
	char *redirector_ca = NULL;
	size_t len;
	int c, rc = 1;

	log_init("onramp-test-device", LOG_TARGET_STDERR, LOG_LEVEL_WARN);
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 's':
			state_dir = optarg;
			break;
		case 'r':
			r.redirector_url = optarg;
			break;
		case 'c':
			ca_file = optarg;
			break;
		case 'p':
			if (http_proxy_parse(optarg, &r.proxy) == -1)
				goto bad;
			r.redirector_opts.proxy = r.cloud_opts.proxy = &r.proxy;
			break;
		case 'u':
			r.proxy.user = optarg;
			break;
		case 'w':
			pw_file = optarg;
			break;
		case 'a':
			as = optarg;
			break;
		case 'C':
			r.cloud = optarg;
			break;
		case '2':
			r.second_cloud = optarg;
			break;
		case 'W':
			r.wait_s = (unsigned)atoi(optarg);
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'n':
			r.attempts = (unsigned)atoi(optarg);
			break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (state_dir == NULL || r.redirector_url == NULL || ca_file == NULL ||
	    optind != argc - 1) {
		fputs(usage, stderr);
		return 2;
	}
	if (pw_file != NULL) {
		uint8_t *pw;
		if (file_read_all(pw_file, 256, &pw, &len) == -1)
			goto bad;
		while (len > 0 && pw[len - 1] == '\n')
			pw[--len] = '\0';
		secret_from(&r.proxy_password, pw, len);
		free(pw);
		r.proxy.password = &r.proxy_password;
		r.proxy.auth = PROXY_AUTH_BASIC;
	}
	if (file_read_all(ca_file, CLOUD_PEM_MAX, (uint8_t **)&redirector_ca, &len) == -1 ||
	    device_info_read(state_dir, &info) == -1 || identity_open(state_dir, NULL, &id) == -1)
		goto bad;
	r.redirector_opts.ca_pem = redirector_ca;
	r.dev.serial = as ? as : info.serial;
	r.dev.model = info.model;
	r.dev.software_version = "test-0.1";
	r.dev.suite = info.ocra_suite;
	r.dev.hmac = identity_ocra_hmac(id);
	if (key_file != NULL) {
		if (file_read_all(key_file, CLOUD_PEM_MAX, (uint8_t **)&cert_key, &len) == -1)
			goto bad;
		r.dev.cert_key_pem = cert_key;
	}

	c = cloud_phone_home(r.redirector_url, &r.redirector_opts, &r.dev, &r.redirect, &oc);
	step("phone-home", c, &oc,
	     c == 0 ? json_pack("{s:s}", "cloud_url", r.redirect.cloud_url) : NULL);
	if (c == 0 && strcmp(argv[optind], "phone-home") != 0) {
		r.cloud_opts.ca_pem = r.redirect.cloud_ca_pem;
		c = act(&r, argv[optind]);
		if (c == -2)
			goto out;
	}
	rc = 0;
	goto out;
bad:
	fprintf(stderr, "onramp-test-device: %s\n", or_errmsg());
	rc = 2;
out:
	cloud_redirect_free(&r.redirect);
	identity_close(id);
	secret_free(&r.proxy_password);
	free(redirector_ca);
	free(cert_key);
	return rc;
}
