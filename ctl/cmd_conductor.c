/*
 * onrampctl conductor: the operator's side of a conductor, over its admin
 * API (HTTPS, bearer token; docs/conductor.md). The connection comes from
 * options or the environment: --url (ONRAMP_CONDUCTOR_URL), --ca
 * (ONRAMP_CONDUCTOR_CA: the conductor's root CA, the only anchor trusted) and
 * --token-file (ONRAMP_CONDUCTOR_TOKEN_FILE). Local input (names, files, the
 * peering configuration against its schema) is checked before anything is
 * sent: bad input exits 2 and changes nothing.
 */
#include "onrampctl.h"

#include "admin_client.h"

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/rfc3339.h"
#include "core/secret.h"
#include "core/x509.h"
#include "net/http_client.h"
#include "proto/conductor_psk.h"
#include "proto/peering_config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ADDRESSES 4

static const char conductor_usage[] =
	"usage: onrampctl conductor [--url URL] [--ca FILE] [--token-file FILE] COMMAND ...\n"
	"\n"
	"  ca export                         print the conductor's root CA (for the cloud's\n"
	"                                    site settings)\n"
	"  psk create [--name N]             make a pre-shared secret; printed once\n"
	"  psk list [--json]                 the secrets: id, name, created, revoked\n"
	"  psk revoke NAME                   the secret onboards no new device (routers\n"
	"                                    onboarded with it keep working)\n"
	"  router add NAME --asset-id ID --config FILE\n"
	"                                    add a router before it arrives; FILE is its\n"
	"                                    peering configuration (docs/router-config-schema.md)\n"
	"  router set NAME [--asset-id ID] [--config FILE]\n"
	"                                    correct the asset ID (before a device is bound)\n"
	"                                    and/or send a new configuration\n"
	"  router delete NAME [--force]      remove a router; refused while it is connected\n"
	"                                    unless --force (which ends its session)\n"
	"  router production NAME --address HOST:PORT [--address HOST:PORT]\n"
	"         --psk-file FILE --root-ca FILE\n"
	"                                    tell the router its production conductor\n"
	"  router renew NAME                 issue the router a new certificate\n"
	"  router show NAME [--json]         a router's record, certificates, commands\n"
	"  show assets [--json]              every asset ID and its state\n"
	"  show alarms [--history] [--json]  active alarms (duplicate, unknown or unproven\n"
	"                                    asset IDs) with their ids; --history: cleared ones\n"
	"  alarm ack ID                      acknowledge an alarm (it stays listed, marked)\n"
	"  alarm clear ID                    clear an alarm (it moves to the history)\n"
	"  asset forget ASSET-ID             dismiss an unknown asset ID and its alarm\n"
	"  trust-cloud --cert FILE [--optional]\n"
	"                                    trust the cloud's onboarding assertion certificate\n"
	"                                    (onrampctl cloud assertion-cert export): a first\n"
	"                                    claim of an asset ID then needs an assertion\n"
	"  trust-cloud show                  the trusted certificate, if any\n"
	"  migrate conductor ADDR [ADDR] router NAME [--skip-validation] [--force]\n"
	"         [--revert-window SECONDS] [--wait]\n"
	"                                    move the router to the conductor at ADDR\n"
	"  audit [--since TIME] [--json] | audit --verify\n"
	"                                    the admin API's audit trail, and its chain\n"
	"  Reading commands (show, router show, psk list, audit) take --watch: again\n"
	"  every 2 s until interrupted.\n"
	"  Exit status: 0 done, 1 failed, 2 bad input (nothing changed), 3 the token\n"
	"  refused.\n"
	"\n"
	"Connection: --url https://HOST:PORT of the admin API (or ONRAMP_CONDUCTOR_URL),\n"
	"--ca the conductor's root CA file (ONRAMP_CONDUCTOR_CA), --token-file the admin\n"
	"token (ONRAMP_CONDUCTOR_TOKEN_FILE). Exit 0 ok, 2 bad input, 1 failure.\n";

struct admin {
	struct http_session *s;
	char *token;
	int bad_status; /* exit code of the last failed call */
};

/* ---- connection ---------------------------------------------------------- */

/* A whole small file, NUL-terminated; what names it in errors. */
static char *
read_small_file(const char *path, size_t max, const char *what)
{
	uint8_t *data = NULL;
	size_t len = 0;

	if (file_read_all(path, max, &data, &len) == -1) {
		or_error_prefix("%s", what);
		return NULL;
	}
	return (char *)data;
}

/* The admin session: URL, CA and token from options or the environment. */
static int
admin_open(struct admin *a, const char *url, const char *ca_file, const char *token_file)
{
	struct http_client_opts o = {0};
	char *ca = NULL;
	size_t len;
	int rc = -1;

	url = url ? url : getenv("ONRAMP_CONDUCTOR_URL");
	ca_file = ca_file ? ca_file : getenv("ONRAMP_CONDUCTOR_CA");
	token_file = token_file ? token_file : getenv("ONRAMP_CONDUCTOR_TOKEN_FILE");
	if (url == NULL || ca_file == NULL || token_file == NULL)
		return or_error("conductor: --url, --ca and --token-file (or ONRAMP_CONDUCTOR_URL, "
				"_CA, _TOKEN_FILE) are required");
	if ((ca = read_small_file(ca_file, PKI_MAX_PEM, "--ca")) == NULL ||
	    (a->token = read_small_file(token_file, 256, "--token-file")) == NULL)
		goto out;
	len = strlen(a->token);
	while (len > 0 && (a->token[len - 1] == '\n' || a->token[len - 1] == '\r'))
		a->token[--len] = '\0';
	if (len == 0) {
		or_error("--token-file: empty");
		goto out;
	}
	o.ca_pem = ca;
	o.connect_timeout_ms = 10000;
	o.total_timeout_ms = 120000; /* a migrate validates against the new conductor first */
	o.body_max = ADMIN_ANSWER_MAX;
	rc = http_session_open(url, &o, &a->s);
out:
	free(ca);
	return rc;
}

/* Closes the session; the token is zeroed. */
static void
admin_close(struct admin *a)
{
	http_session_close(a->s);
	if (a->token != NULL) {
		secure_zero(a->token, strlen(a->token));
		free(a->token);
	}
}

/*
 * One admin request; 0 with *answer on 2xx. On an error answer, -1 with the
 * server's message and a->bad_status set: 2 when the conductor refused our
 * input (400, 404, 413), 1 otherwise.
 */
static int
conductor_admin_call(struct admin *a, const char *method, const char *path, json_t *body,
		     json_t **answer)
{
	struct http_response resp = {0};
	enum http_err err;
	json_t *parsed = NULL, *e;
	const char *code, *message;
	int rc = -1;

	*answer = NULL;
	a->bad_status = EXIT_FAILURE_RUNTIME;
	if (http_session_request(a->s, method, path, a->token, body, &resp, &err) == -1)
		return -1;
	if (resp.body_len > 0 &&
	    json_parse_object(resp.body, resp.body_len, ADMIN_ANSWER_MAX, &parsed) == -1) {
		or_error_prefix("the conductor's answer (%ld)", resp.status);
		goto out;
	}
	if (resp.status >= 200 && resp.status <= 299) {
		*answer = parsed ? parsed : json_object();
		parsed = NULL;
		rc = 0;
		goto out;
	}
	e = json_object_get(parsed, "error");
	code = json_string_value(json_object_get(e, "code"));
	message = json_string_value(json_object_get(e, "message"));
	or_error("%s (%s, %ld)", message ? message : "the conductor refused", code ? code : "error",
		 resp.status);
	if (resp.status == 401 || resp.status == 403)
		a->bad_status = EXIT_AUTH_REFUSED;
	else if (resp.status == 400 || resp.status == 404 || resp.status == 413)
		a->bad_status = EXIT_BAD_INPUT;
out:
	json_decref(parsed);
	http_response_free(&resp);
	return rc;
}

/* ---- commands ------------------------------------------------------------ */

/* ca export: prints the root CA. */
static int
ca_export(struct admin *a)
{
	json_t *answer;
	const char *pem;

	if (conductor_admin_call(a, "GET", "/admin/v1/ca", NULL, &answer) == -1)
		return -1;
	pem = json_string_value(json_object_get(answer, "certificate"));
	if (pem != NULL)
		fputs(pem, stdout);
	json_decref(answer);
	return pem ? 0 : or_error("the conductor sent no certificate");
}

/* psk create: prints the new secret alone on stdout. */
static int
psk_create(struct admin *a, const char *name)
{
	json_t *body = name ? json_pack("{s:s}", "name", name) : json_object(), *answer = NULL;
	const char *secret, *id, *given;
	int rc = -1;

	if (conductor_admin_call(a, "POST", "/admin/v1/psks", body, &answer) == -1)
		goto out;
	secret = json_string_value(json_object_get(answer, "secret"));
	id = json_string_value(json_object_get(answer, "id"));
	given = json_string_value(json_object_get(answer, "name"));
	if (secret == NULL || id == NULL || given == NULL) {
		or_error("the conductor's answer lacks the secret");
		goto out;
	}
	/* The secret alone on stdout, for scripts; it is not shown again. */
	puts(secret);
	fprintf(stderr, "onrampctl: pre-shared secret %s (id %s) created; it is shown only once\n",
		given, id);
	rc = 0;
out:
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* Checks a router name and (unless NULL) an asset ID given on the command line. */
static int
check_router_input(const char *name, const char *asset_id)
{
	if (!pki_valid_router_name(name))
		return or_error("router name '%s': 1 to 63 of A-Z a-z 0-9 . _ - starting with a "
				"letter or digit",
				name);
	if (asset_id != NULL && !conductor_valid_subject(asset_id))
		return or_error("asset ID: 1 to %d printable characters without spaces",
				CONDUCTOR_SUBJECT_MAX);
	return 0;
}

/* router add: name, asset ID and configuration checked here before sending. */
static int
router_add(struct admin *a, const char *name, const char *asset_id, const char *config_file)
{
	json_t *config = NULL, *body = NULL, *answer = NULL;
	int rc = -1;

	a->bad_status = EXIT_BAD_INPUT;
	if (check_router_input(name, asset_id) == -1 ||
	    peering_config_load(config_file, name, &config) == -1)
		return -1;
	body = json_pack("{s:s, s:s, s:O}", "name", name, "asset_id", asset_id, "config", config);
	if (conductor_admin_call(a, "POST", "/admin/v1/routers", body, &answer) == -1)
		goto out;
	printf("router %s added (asset ID %s, configuration sha256 %s); state %s\n", name, asset_id,
	       json_string_value(json_object_get(answer, "config_sha256")),
	       json_string_value(json_object_get(answer, "state")));
	rc = 0;
out:
	json_decref(config);
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* psk revoke: the secret named NAME binds no new device. */
static int
psk_revoke(struct admin *a, const char *name)
{
	json_t *body = json_object(), *answer = NULL;
	char path[160];
	int rc = -1;

	if (!pki_valid_router_name(name)) {
		json_decref(body);
		return or_error("secret name '%s': 1 to 63 of A-Z a-z 0-9 . _ - starting with a "
				"letter or digit",
				name);
	}
	snprintf(path, sizeof(path), "/admin/v1/psks/%s/revoke", name);
	if (conductor_admin_call(a, "POST", path, body, &answer) == 0) {
		printf("pre-shared secret %s (id %s) revoked at %s\n", name,
		       json_string_value(json_object_get(answer, "id")),
		       json_string_value(json_object_get(answer, "revoked")));
		rc = 0;
	}
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* router set: a new asset ID and/or configuration, checked here before sending. */
static int
router_set(struct admin *a, const char *name, const char *asset_id, const char *config_file)
{
	json_t *config = NULL, *body = NULL, *answer = NULL;
	char path[160];
	int rc = -1;

	a->bad_status = EXIT_BAD_INPUT;
	if (asset_id == NULL && config_file == NULL)
		return or_error("router set NAME needs --asset-id, --config or both");
	if (check_router_input(name, asset_id) == -1 ||
	    (config_file != NULL && peering_config_load(config_file, name, &config) == -1))
		return -1;
	body = json_object();
	if (asset_id != NULL)
		json_object_set_new(body, "asset_id", json_string(asset_id));
	if (config != NULL)
		json_object_set(body, "config", config);
	snprintf(path, sizeof(path), "/admin/v1/routers/%s/set", name);
	if (conductor_admin_call(a, "POST", path, body, &answer) == -1)
		goto out;
	printf("router %s: asset ID %s%s, configuration sha256 %s%s\n", name,
	       json_string_value(json_object_get(answer, "asset_id")),
	       json_is_true(json_object_get(answer, "asset_id_changed")) ? " (changed)" : "",
	       json_string_value(json_object_get(answer, "config_sha256")),
	       json_is_true(json_object_get(answer, "config_changed")) ? " (sent to the router)"
								       : "");
	rc = 0;
out:
	json_decref(config);
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* router delete: refused by the conductor while the router is connected, unless force. */
static int
router_delete(struct admin *a, const char *name, bool force)
{
	json_t *answer = NULL;
	char path[160];

	a->bad_status = EXIT_BAD_INPUT;
	if (check_router_input(name, NULL) == -1)
		return -1;
	snprintf(path, sizeof(path), "/admin/v1/routers/%s%s", name, force ? "?force=true" : "");
	if (conductor_admin_call(a, "DELETE", path, NULL, &answer) == -1)
		return -1;
	printf("router %s (asset ID %s) deleted%s\n", name,
	       json_string_value(json_object_get(answer, "asset_id")),
	       json_is_true(json_object_get(answer, "session_ended")) ? "; its session is ended"
								      : "");
	json_decref(answer);
	return 0;
}

/* asset forget: dismisses an unknown asset ID (its rows and alarm). */
static int
asset_forget(struct admin *a, const char *asset_id)
{
	json_t *body = NULL, *answer = NULL;
	int rc = -1;

	a->bad_status = EXIT_BAD_INPUT;
	if (!conductor_valid_subject(asset_id))
		return or_error("asset ID: 1 to %d printable characters without spaces",
				CONDUCTOR_SUBJECT_MAX);
	body = json_pack("{s:s}", "asset_id", asset_id);
	if (conductor_admin_call(a, "POST", "/admin/v1/assets/forget", body, &answer) == 0) {
		printf("unknown asset ID %s forgotten\n", asset_id);
		rc = 0;
	}
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* The addresses as a JSON array; each must be host:port. */
static json_t *
address_array(const char *const *addresses, size_t n)
{
	json_t *array = json_array();

	for (size_t i = 0; i < n; i++) {
		const char *colon = strrchr(addresses[i], ':');
		const char *bracket = strrchr(addresses[i], ']');

		if (colon == NULL || (bracket != NULL && colon < bracket)) {
			or_error("address '%s' needs a port (host:port)", addresses[i]);
			json_decref(array);
			return NULL;
		}
		if (peering_check_address(addresses[i], "address") == -1) {
			json_decref(array);
			return NULL;
		}
		json_array_append_new(array, json_string(addresses[i]));
	}
	return array;
}

/* router production: addresses, secret and CA checked here before sending. */
static int
router_production(struct admin *a, const char *name, const char *const *addresses, size_t n,
		  const char *psk_file, const char *ca_file)
{
	char *psk = NULL, *ca = NULL, id[PSK_ID_LEN + 1], key_id[PKI_KEY_ID_LEN + 1], path[160];
	json_t *addrs = NULL, *body = NULL, *answer = NULL;
	size_t len;
	int rc = -1;

	a->bad_status = EXIT_BAD_INPUT;
	if (n == 0 || psk_file == NULL || ca_file == NULL)
		return or_error("router production needs --address, --psk-file and --root-ca");
	if ((addrs = address_array(addresses, n)) == NULL ||
	    (psk = read_small_file(psk_file, 256, "--psk-file")) == NULL ||
	    (ca = read_small_file(ca_file, PKI_MAX_PEM, "--root-ca")) == NULL)
		goto out;
	len = strlen(psk);
	while (len > 0 && (psk[len - 1] == '\n' || psk[len - 1] == '\r'))
		psk[--len] = '\0';
	if (psk_parse_id(psk, len, id) == -1 || pki_cert_key_id(ca, key_id) == -1)
		goto out;
	body = json_pack("{s:O, s:s, s:s}", "addresses", addrs, "psk", psk, "ca", ca);
	snprintf(path, sizeof(path), "/admin/v1/routers/%s/production", name);
	if (conductor_admin_call(a, "POST", path, body, &answer) == -1)
		goto out;
	printf("router %s: production conductor sent (command %lld)\n", name,
	       (long long)json_integer_value(json_object_get(answer, "command_id")));
	rc = 0;
out:
	if (psk != NULL) {
		secure_zero(psk, strlen(psk));
		free(psk);
	}
	free(ca);
	json_decref(addrs);
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* router renew. */
static int
router_renew(struct admin *a, const char *name)
{
	json_t *body = json_object(), *answer = NULL;
	char path[160];
	int rc = -1;

	snprintf(path, sizeof(path), "/admin/v1/routers/%s/renew", name);
	if (conductor_admin_call(a, "POST", path, body, &answer) == 0) {
		printf("router %s: new certificate requested (command %lld)\n", name,
		       (long long)json_integer_value(json_object_get(answer, "command_id")));
		rc = 0;
	}
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* Key-sorted JSON on stdout, one object a line (so --watch gives one a line). */
static void
print_json(json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);

	if (text != NULL)
		puts(text);
	free(text);
}

/* A string field or "-". */
static const char *
field(json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));

	return v ? v : "-";
}

/* Any field as text for a table (numbers, lists joined by commas), "-" when absent. */
static const char *
text_of(json_t *obj, const char *key, char *buf, size_t cap)
{
	json_t *v = json_object_get(obj, key), *e;
	size_t i, used = 0;

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	if (json_is_array(v) && cap > 0) {
		buf[0] = '\0';
		json_array_foreach(v, i, e) if (json_is_string(e) && used < cap) used +=
			(size_t)snprintf(buf + used, cap - used, "%s%s", i ? "," : "",
					 json_string_value(e));
		return buf;
	}
	return "-";
}

/* psk list: the secrets' names and ids, never their text. */
static int
psk_list(struct admin *a, bool as_json)
{
	json_t *answer = NULL, *list, *e;
	size_t i;

	if (conductor_admin_call(a, "GET", "/admin/v1/psks", NULL, &answer) == -1)
		return -1;
	if (as_json) {
		print_json(answer);
	} else {
		printf("%-24s %-10s %-22s %s\n", "NAME", "ID", "CREATED", "REVOKED");
		list = json_object_get(answer, "psks");
		json_array_foreach(list, i, e)
			printf("%-24s %-10s %-22s %s\n", field(e, "name"), field(e, "id"),
			       field(e, "created"), field(e, "revoked"));
	}
	json_decref(answer);
	return 0;
}

/* router show: a summary, or the whole record with --json. */
static int
router_show(struct admin *a, const char *name, bool as_json)
{
	json_t *answer = NULL, *list, *e;
	char path[160];
	size_t i;

	snprintf(path, sizeof(path), "/admin/v1/routers/%s", name);
	if (conductor_admin_call(a, "GET", path, NULL, &answer) == -1)
		return -1;
	if (as_json) {
		print_json(answer);
	} else {
		char a1[32], a2[256];

		printf("router:        %s\nasset ID:      %s\nstate:         %s\n",
		       field(answer, "name"), field(answer, "asset_id"), field(answer, "state"));
		printf("last contact:  %s\nlast error:    %s\n", field(answer, "last_contact"),
		       field(answer, "last_error"));
		printf("\n%-42s %-20s %s\n", "CERTIFICATE", "VALID FROM", "VALID UNTIL");
		list = json_object_get(answer, "certificates");
		json_array_foreach(list, i, e)
			printf("%-42s %-20s %s\n", field(e, "serial"), field(e, "not_before"),
			       field(e, "not_after"));
		printf("\n%-6s %-26s %-10s %-20s %s\n", "COMMAND", "TYPE", "STATE", "CREATED",
		       "ACKNOWLEDGED");
		list = json_object_get(answer, "commands");
		json_array_foreach(list, i, e)
			printf("%-6s %-26s %-10s %-20s %s\n", text_of(e, "id", a1, sizeof(a1)),
			       field(e, "type"), field(e, "state"), field(e, "created"),
			       field(e, "acked"));
		printf("\n%-9s %-24s %-10s %-20s %s\n", "MIGRATION", "TO", "STATE", "STARTED",
		       "REASON");
		list = json_object_get(answer, "migrations");
		json_array_foreach(list, i, e)
			printf("%-9s %-24s %-10s %-20s %s\n", text_of(e, "id", a1, sizeof(a1)),
			       text_of(e, "addresses", a2, sizeof(a2)), field(e, "state"),
			       field(e, "started"), field(e, "reason"));
		printf("\n%-20s %-18s %-8s %s\n", "REPORTED", "STEP", "OUTCOME", "REASON");
		list = json_object_get(answer, "events");
		json_array_foreach(list, i, e)
			printf("%-20s %-18s %-8s %s\n", field(e, "time"), field(e, "step"),
			       field(e, "outcome"), field(e, "reason"));
	}
	json_decref(answer);
	return 0;
}

/* "BY TIME" of an {"by", "at"} object, or "-" when it is null. */
static const char *
who_when(json_t *alarm, const char *key, char *buf, size_t cap)
{
	json_t *v = json_object_get(alarm, key);

	if (!json_is_object(v))
		return "-";
	snprintf(buf, cap, "%s %s", field(v, "by"), field(v, "at"));
	return buf;
}

/*
 * show alarms [--history]: the active alarms (or the cleared ones) as a table, each message on
 * the line under its row.
 */
static int
show_alarms(struct admin *a, bool history, bool as_json)
{
	json_t *answer = NULL, *e;
	char id[24], count[24], acked[100], cleared[100];
	size_t i;

	if (conductor_admin_call(a, "GET",
				 history ? "/admin/v1/alarms/history" : "/admin/v1/alarms", NULL,
				 &answer) == -1)
		return -1;
	if (as_json) {
		print_json(answer);
		json_decref(answer);
		return 0;
	}
	printf("%-6s %-9s %-16s %-24s %-6s %-21s %-28s%s\n", "ID", "SEVERITY", "KIND", "SUBJECT",
	       "COUNT", "LAST", "ACKNOWLEDGED", history ? " CLEARED" : "");
	json_array_foreach(json_object_get(answer, "alarms"), i, e)
	{
		printf("%-6s %-9s %-16s %-24s %-6s %-21s %-28s%s%s\n",
		       text_of(e, "id", id, sizeof(id)), field(e, "severity"), field(e, "kind"),
		       field(e, "subject"), text_of(e, "count", count, sizeof(count)),
		       field(e, "last"), who_when(e, "acknowledged", acked, sizeof(acked)),
		       history ? " " : "",
		       history ? who_when(e, "cleared", cleared, sizeof(cleared)) : "");
		printf("       %s\n", field(e, "message"));
	}
	json_decref(answer);
	return 0;
}

/* alarm ack ID, alarm clear ID: an operator acknowledges or clears an active alarm. */
static int
alarm_action(struct admin *a, const char *action, const char *id)
{
	json_t *body = json_object(), *answer = NULL;
	char path[80], when[100];
	size_t len = strspn(id, "0123456789");

	a->bad_status = EXIT_BAD_INPUT;
	if (len == 0 || len > 18 || id[len] != '\0') {
		json_decref(body);
		return or_error(
			"alarm %s: '%s' is no alarm id (a number; 'show alarms' lists them)",
			action, id);
	}
	snprintf(path, sizeof(path), "/admin/v1/alarms/%s/%s", id, action);
	if (conductor_admin_call(a, "POST", path, body, &answer) == -1) {
		json_decref(body);
		return -1;
	}
	if (strcmp(action, "ack") == 0)
		printf("alarm %s (%s [%s]) acknowledged by %s\n", id, field(answer, "kind"),
		       field(answer, "subject"),
		       who_when(answer, "acknowledged", when, sizeof(when)));
	else
		printf("alarm %s (%s [%s]) cleared by %s; 'show alarms --history' keeps it\n", id,
		       field(answer, "kind"), field(answer, "subject"),
		       who_when(answer, "cleared", when, sizeof(when)));
	json_decref(body);
	json_decref(answer);
	return 0;
}

/* show assets. */
static int
show_assets(struct admin *a, bool as_json)
{
	json_t *answer = NULL, *list, *e;
	size_t i;

	if (conductor_admin_call(a, "GET", "/admin/v1/assets", NULL, &answer) == -1)
		return -1;
	if (as_json) {
		print_json(answer);
	} else {
		printf("%-20s %-24s %-12s %-20s %s\n", "ROUTER", "ASSET-ID", "STATE",
		       "LAST-CONTACT", "LAST-ERROR");
		list = json_object_get(answer, "assets");
		json_array_foreach(list, i, e) printf(
			"%-20s %-24s %-12s %-20s %s\n", field(e, "name"), field(e, "asset_id"),
			field(e, "state"), field(e, "last_contact"), field(e, "last_error"));
	}
	json_decref(answer);
	return 0;
}

/* Waits for the migration's outcome (the router reports it to this conductor). */
static int
wait_migration(struct admin *a, const char *name, json_int_t id, unsigned seconds)
{
	char path[160];
	time_t end = time(NULL) + seconds;

	snprintf(path, sizeof(path), "/admin/v1/routers/%s", name);
	while (time(NULL) < end) {
		json_t *answer = NULL, *list, *e;
		size_t i;
		int done = 0;

		if (conductor_admin_call(a, "GET", path, NULL, &answer) == -1)
			return -1;
		list = json_object_get(answer, "migrations");
		json_array_foreach(list, i, e)
		{
			if (json_integer_value(json_object_get(e, "id")) != id ||
			    strcmp(field(e, "state"), "pending") == 0)
				continue;
			if (strcmp(field(e, "state"), "succeeded") == 0) {
				printf("router %s migrated\n", name);
				done = 1;
			} else {
				or_error("router %s did not migrate: %s", name, field(e, "reason"));
				done = -1;
			}
		}
		json_decref(answer);
		if (done != 0)
			return done == 1 ? 0 : -1;
		sleep(1);
	}
	return or_error("no outcome of migration %lld within %u seconds", (long long)id, seconds);
}

/* migrate: sends it, then (with --wait) waits for the router's report. */
static int
migrate(struct admin *a, const char *const *addresses, size_t n, const char *name, bool skip,
	bool force, long window, bool wait)
{
	json_t *addrs = NULL, *body = NULL, *answer = NULL;
	char path[160];
	json_int_t id;
	int rc = -1;

	a->bad_status = EXIT_BAD_INPUT;
	if (!pki_valid_router_name(name))
		return or_error("router name '%s' is not valid", name);
	if ((addrs = address_array(addresses, n)) == NULL)
		return -1;
	body = json_pack("{s:O, s:b, s:b}", "addresses", addrs, "skip_validation", skip, "force",
			 force);
	if (window > 0)
		json_object_set_new(body, "revert_window", json_integer(window));
	snprintf(path, sizeof(path), "/admin/v1/routers/%s/migrate", name);
	if (conductor_admin_call(a, "POST", path, body, &answer) == -1)
		goto out;
	id = json_integer_value(json_object_get(answer, "migration_id"));
	printf("migration %lld of router %s to %s sent (%s)\n", (long long)id, name, addresses[0],
	       skip ? "validation skipped" : "the new conductor has the router");
	fflush(stdout);
	rc = wait ? wait_migration(a, name, id, (unsigned)(window > 0 ? window : 300) + 60) : 0;
out:
	json_decref(addrs);
	json_decref(body);
	json_decref(answer);
	return rc;
}

/*
 * trust-cloud --cert FILE [--optional]: pins the cloud's assertion certificate (checked here
 * first); without a file, shows the one pinned.
 */
static int
trust_cloud(struct admin *a, const char *cert_file, bool optional)
{
	char *pem = NULL, key_id[PKI_KEY_ID_LEN + 1];
	json_t *body = NULL, *answer = NULL;
	int rc = -1;

	if (cert_file == NULL) {
		if (conductor_admin_call(a, "GET", "/admin/v1/trust-cloud", NULL, &answer) == -1)
			return -1;
		if (json_string_value(json_object_get(answer, "certificate")) == NULL)
			printf("no cloud assertion certificate is trusted\n");
		else
			printf("assertions %s; certificate:\n%s",
			       json_is_true(json_object_get(answer, "required")) ? "required"
										 : "optional",
			       json_string_value(json_object_get(answer, "certificate")));
		json_decref(answer);
		return 0;
	}
	if ((pem = read_small_file(cert_file, PKI_MAX_PEM, "--cert")) == NULL ||
	    pki_check_certificates(pem, strlen(pem), 1, cert_file) == -1 ||
	    pki_cert_key_id(pem, key_id) == -1)
		goto out;
	body = json_pack("{s:s, s:b}", "certificate", pem, "required", !optional);
	if (conductor_admin_call(a, "PUT", "/admin/v1/trust-cloud", body, &answer) == -1)
		goto out;
	printf("trusting the cloud's assertion key %.16s...; assertions %s\n", key_id,
	       optional ? "optional" : "required");
	rc = 0;
out:
	free(pem);
	json_decref(body);
	json_decref(answer);
	return rc;
}

/* ---- argument parsing ------------------------------------------------------ */

struct args {
	const char *asset_id, *config, *name, *psk_file, *ca, *addresses[MAX_ADDRESSES], *cert;
	const char *since;
	size_t n_addresses;
	bool json, skip, force, wait, optional, verify, watch, history;
	long window;
};

/* Parses the options after the command words; positional words stay in argv. */
static int
parse_options(int argc, char **argv, struct args *a)
{
	static const struct option options[] = {
		{"asset-id", required_argument, NULL, 'a'},
		{"config", required_argument, NULL, 'c'},
		{"name", required_argument, NULL, 'n'},
		{"psk-file", required_argument, NULL, 'p'},
		{"root-ca", required_argument, NULL, 'C'},
		{"address", required_argument, NULL, 'A'},
		{"json", no_argument, NULL, 'j'},
		{"skip-validation", no_argument, NULL, 's'},
		{"force", no_argument, NULL, 'f'},
		{"wait", no_argument, NULL, 'w'},
		{"revert-window", required_argument, NULL, 'r'},
		{"cert", required_argument, NULL, 'k'},
		{"optional", no_argument, NULL, 'o'},
		{"since", required_argument, NULL, 'S'},
		{"verify", no_argument, NULL, 'V'},
		{"watch", no_argument, NULL, 'W'},
		{"history", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	char *end;
	int opt;

	optind = 0; /* a fresh scan of a new argv, permuting words to the end */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'a':
			a->asset_id = optarg;
			break;
		case 'c':
			a->config = optarg;
			break;
		case 'n':
			a->name = optarg;
			break;
		case 'p':
			a->psk_file = optarg;
			break;
		case 'C':
			a->ca = optarg;
			break;
		case 'A':
			if (a->n_addresses == MAX_ADDRESSES)
				return or_error("at most %d --address", MAX_ADDRESSES);
			a->addresses[a->n_addresses++] = optarg;
			break;
		case 'j':
			a->json = true;
			break;
		case 's':
			a->skip = true;
			break;
		case 'f':
			a->force = true;
			break;
		case 'w':
			a->wait = true;
			break;
		case 'k':
			a->cert = optarg;
			break;
		case 'o':
			a->optional = true;
			break;
		case 'S':
			a->since = optarg;
			break;
		case 'V':
			a->verify = true;
			break;
		case 'W':
			a->watch = true;
			break;
		case 'H':
			a->history = true;
			break;
		case 'r':
			a->window = strtol(optarg, &end, 10);
			if (*end != '\0' || a->window < 1 || a->window > 86400)
				return or_error("--revert-window must be 1 to 86400 seconds");
			break;
		default:
			return or_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	return 0;
}

/* audit [--since TIME] [--json] | audit --verify: the admin API's audit trail. */
static int
audit(struct admin *adm, const struct args *a)
{
	struct admin_args shown = {.given = a->json ? OPT_JSON : 0};
	char path[128];
	json_t *doc = NULL;
	time_t t;
	int rc;

	if (a->verify && a->since != NULL)
		return or_error("--verify checks the whole chain: it takes no --since");
	if (a->since != NULL && rfc3339_parse(a->since, &t) == -1)
		return or_error_prefix("--since");
	if (a->verify)
		snprintf(path, sizeof(path), "/admin/v1/audit?verify=1");
	else if (a->since != NULL)
		snprintf(path, sizeof(path), "/admin/v1/audit?since=%s", a->since);
	else
		snprintf(path, sizeof(path), "/admin/v1/audit");
	if (conductor_admin_call(adm, "GET", path, NULL, &doc) == -1)
		return -1;
	rc = admin_print_audit(&shown, a->verify ? "audit-verify" : "audit", doc);
	json_decref(doc);
	if (rc != EXIT_OK) {
		adm->bad_status = rc;
		return or_error("the audit chain does not verify");
	}
	return 0;
}

/* The positional words (argv after getopt_long permuted them). */
static int
words(int argc, char **argv, char ***out)
{
	*out = argv + optind;
	return argc - optind;
}

/* "migrate conductor ADDR [ADDR] router NAME" */
static int
parse_migrate(char **w, int n, const char **addrs, size_t *n_addrs, const char **name)
{
	int i = 2;

	*n_addrs = 0;
	if (n < 5 || strcmp(w[1], "conductor") != 0)
		return or_error("usage: migrate conductor ADDR [ADDR] router NAME");
	while (i < n && strcmp(w[i], "router") != 0) {
		if (*n_addrs == 2)
			return or_error("migrate takes one or two conductor addresses");
		addrs[(*n_addrs)++] = w[i++];
	}
	if (*n_addrs == 0 || i != n - 2)
		return or_error("usage: migrate conductor ADDR [ADDR] router NAME");
	*name = w[n - 1];
	return 0;
}

/* Runs the command named by the words. */
static int
dispatch(struct admin *adm, char **w, int n, struct args *a)
{
	const char *addrs[2], *name = NULL;
	size_t n_addrs;

	adm->bad_status = EXIT_BAD_INPUT;
	if (a->history && !(n == 2 && strcmp(w[0], "show") == 0 && strcmp(w[1], "alarms") == 0))
		return or_error("--history is for 'show alarms'");
	if (n == 2 && strcmp(w[0], "ca") == 0 && strcmp(w[1], "export") == 0)
		return ca_export(adm);
	if (n == 2 && strcmp(w[0], "psk") == 0 && strcmp(w[1], "create") == 0)
		return psk_create(adm, a->name);
	if (n == 2 && strcmp(w[0], "psk") == 0 && strcmp(w[1], "list") == 0)
		return psk_list(adm, a->json);
	if (n == 3 && strcmp(w[0], "psk") == 0 && strcmp(w[1], "revoke") == 0)
		return psk_revoke(adm, w[2]);
	if (n == 3 && strcmp(w[0], "router") == 0 && strcmp(w[1], "set") == 0)
		return router_set(adm, w[2], a->asset_id, a->config);
	if (n == 3 && strcmp(w[0], "router") == 0 && strcmp(w[1], "delete") == 0)
		return router_delete(adm, w[2], a->force);
	if (n == 3 && strcmp(w[0], "asset") == 0 && strcmp(w[1], "forget") == 0)
		return asset_forget(adm, w[2]);
	if (n == 3 && strcmp(w[0], "router") == 0 && strcmp(w[1], "add") == 0) {
		if (a->asset_id == NULL || a->config == NULL)
			return or_error("router add NAME needs --asset-id and --config");
		return router_add(adm, w[2], a->asset_id, a->config);
	}
	if (n == 3 && strcmp(w[0], "router") == 0 && strcmp(w[1], "production") == 0)
		return router_production(adm, w[2], a->addresses, a->n_addresses, a->psk_file,
					 a->ca);
	if (n == 3 && strcmp(w[0], "router") == 0 && strcmp(w[1], "renew") == 0)
		return router_renew(adm, w[2]);
	if (n == 3 && strcmp(w[0], "router") == 0 && strcmp(w[1], "show") == 0)
		return router_show(adm, w[2], a->json);
	if (n == 2 && strcmp(w[0], "show") == 0 && strcmp(w[1], "assets") == 0)
		return show_assets(adm, a->json);
	if (n == 2 && strcmp(w[0], "show") == 0 && strcmp(w[1], "alarms") == 0)
		return show_alarms(adm, a->history, a->json);
	if (n == 3 && strcmp(w[0], "alarm") == 0 &&
	    (strcmp(w[1], "ack") == 0 || strcmp(w[1], "clear") == 0))
		return alarm_action(adm, w[1], w[2]);
	if (n == 1 && strcmp(w[0], "trust-cloud") == 0) {
		if (a->cert == NULL)
			return or_error("trust-cloud needs --cert FILE");
		return trust_cloud(adm, a->cert, a->optional);
	}
	if (n == 2 && strcmp(w[0], "trust-cloud") == 0 && strcmp(w[1], "show") == 0)
		return trust_cloud(adm, NULL, false);
	if (n == 1 && strcmp(w[0], "audit") == 0)
		return audit(adm, a);
	if (n >= 1 && strcmp(w[0], "migrate") == 0) {
		if (parse_migrate(w, n, addrs, &n_addrs, &name) == -1)
			return -1;
		return migrate(adm, addrs, n_addrs, name, a->skip, a->force, a->window, a->wait);
	}
	return or_error("unknown conductor command (try 'onrampctl conductor --help')");
}

static volatile sig_atomic_t stop_watching;

/* SIGINT, SIGTERM while watching: leave after the current answer. */
static void
on_stop(int sig)
{
	(void)sig;
	stop_watching = 1;
}

/* Whether the words name a command that only reads (--watch repeats it). */
static bool
watchable(char **w, int n)
{
	return (n == 2 && strcmp(w[0], "show") == 0) || (n == 1 && strcmp(w[0], "audit") == 0) ||
	       (n == 3 && strcmp(w[0], "router") == 0 && strcmp(w[1], "show") == 0) ||
	       (n == 2 && strcmp(w[0], "psk") == 0 && strcmp(w[1], "list") == 0) ||
	       (n == 2 && strcmp(w[0], "trust-cloud") == 0 && strcmp(w[1], "show") == 0);
}

/* Connection options, command options, then the command. */
int
cmd_conductor(int argc, char **argv)
{
	static const struct option conn_options[] = {
		{"url", required_argument, NULL, 'u'},
		{"ca", required_argument, NULL, 'C'},
		{"token-file", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *url = NULL, *ca = NULL, *token_file = NULL;
	struct admin adm = {0};
	struct args a = {0};
	char **w;
	int opt, n, rc;

	/* --help anywhere, after the words too ("conductor router add --help"). */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(conductor_usage, stdout);
			return EXIT_OK;
		}
	/* Connection options come first, before the command words ("+": stop at the first). */
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+", conn_options, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'C':
			ca = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'h':
			fputs(conductor_usage, stdout);
			return EXIT_OK;
		default:
			return ctl_fail(EXIT_BAD_INPUT,
					"conductor: unknown or incomplete option '%s'",
					argv[optind - 1]);
		}
	}
	argc -= optind - 1;
	argv += optind - 1;
	if (argc < 2)
		return ctl_fail(EXIT_BAD_INPUT, "conductor: a command is required (try --help)");
	if (parse_options(argc, argv, &a) == -1)
		return ctl_fail(EXIT_BAD_INPUT, "conductor: %s", or_errmsg());
	n = words(argc, argv, &w);
	if (n == 0)
		return ctl_fail(EXIT_BAD_INPUT, "conductor: a command is required (try --help)");
	if (admin_open(&adm, url, ca, token_file) == -1) {
		admin_close(&adm);
		return ctl_fail(EXIT_BAD_INPUT, "conductor: %s", or_errmsg());
	}
	if (a.watch && !watchable(w, n)) {
		admin_close(&adm);
		return ctl_fail(EXIT_BAD_INPUT, "conductor: --watch is for commands that read "
						"(show, router show, psk list, audit)");
	}
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	do {
		if (a.watch && isatty(STDOUT_FILENO) && !a.json)
			fputs("\033[H\033[2J", stdout);
		rc = dispatch(&adm, w, n, &a) == 0 ? EXIT_OK : adm.bad_status;
		fflush(stdout);
		/* --watch: again every 2 s until SIGINT or SIGTERM, which end it with 0. */
		for (int i = 0; a.watch && rc == EXIT_OK && i < 20 && !stop_watching; i++)
			usleep(100000);
	} while (a.watch && rc == EXIT_OK && !stop_watching);
	if (rc != EXIT_OK)
		ctl_fail(rc, "conductor: %s", or_errmsg());
	admin_close(&adm);
	return rc;
}
