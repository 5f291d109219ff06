/*
 * onrampctl cloud: every operation of an organisation cloud's admin API
 * (docs/protocol.md section 4): organisations, sites and their onboarding
 * settings, inventory import, claims, devices and their events, tokens.
 * Arguments are checked before anything is sent: bad input exits 2 and the
 * server is not contacted. Secrets (the site's pre-shared secret, the token)
 * come from files, never from the command line.
 */
#include "onrampctl.h"

#include "admin_client.h"
#include "core/error.h"
#include "core/json.h"
#include "proto/conductor_psk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_FILE_MAX 65536

static const char cloud_usage[] =
	"usage: onrampctl cloud [--url URL --ca FILE --token-file FILE] COMMAND\n"
	"\n"
	"  org add NAME | org list | org delete NAME\n"
	"  site add ORG SITE | site list ORG | site show ORG SITE | site delete ORG SITE\n"
	"  site set ORG SITE [--conductor ADDR]... [--port N] [--psk-file FILE]\n"
	"                    [--ca-file PEM | --no-ca]\n"
	"  inventory import RECORD.json [--claim-code CODE]\n"
	"  claim (--serial S | --claim-code CODE) --org ORG --site SITE\n"
	"  unclaim SERIAL\n"
	"  device list | device show SERIAL | device events SERIAL | device delete SERIAL\n"
	"  device set SERIAL --asset-id ID   the asset ID its onboarding assertions name\n"
	"  assertion-cert export             print the onboarding assertion certificate (PEM)\n"
	"  alarm list [--history]            the alarms devices raised and nobody cleared,\n"
	"                                    with their ids; --history: those operators cleared\n"
	"  alarm ack ID | alarm clear ID     acknowledge an alarm (it stays listed, marked) or\n"
	"                                    clear it (it moves to the history)\n"
	"  token add NAME | token list | token delete NAME\n"
	"  audit [--since TIME] [--json] | audit --verify\n"
	"\n"
	"The cloud's admin API: --url https://host:port, --ca its trust anchor (PEM),\n"
	"--token-file a file holding an admin token; or ONRAMP_CLOUD_URL, ONRAMP_CLOUD_CA,\n"
	"ONRAMP_CLOUD_TOKEN_FILE. list, show and events take --json.\n"
	"Exit status: 0 done, 1 the cloud failed or could not be reached, 2 bad input\n"
	"or refused by the cloud (nothing changed), 3 the token or its role refused.\n";

/* The path segment checks of a command's words: 'n' a name, 's' a serial, '-' none. */
static int
check_words(const struct admin_args *a, size_t from, const char *kinds)
{
	for (size_t i = 0; kinds[i] != '\0' && from + i < a->n_pos; i++) {
		const char *w = a->pos[from + i];
		if ((kinds[i] == 'o' && cloud_check_name("organisation", w) == -1) ||
		    (kinds[i] == 'n' && cloud_check_name("site", w) == -1) ||
		    (kinds[i] == 't' && cloud_check_name("token name", w) == -1) ||
		    (kinds[i] == 's' && cloud_check_serial(w) == -1))
			return -1;
	}
	return 0;
}

/* Prints a SITE as lines; the secret only as set or not. */
static void
print_site(const json_t *s)
{
	json_t *a = json_object_get(s, "conductor_addresses"), *v;
	size_t i;

	printf("organization: %s\nsite: %s\nconductors:", admin_str(s, "organization"),
	       admin_str(s, "name"));
	json_array_foreach(a, i, v) printf(" %s", json_string_value(v));
	printf("%s\nport: ", json_array_size(a) ? "" : " -");
	if (json_is_integer(json_object_get(s, "conductor_port")))
		printf("%" JSON_INTEGER_FORMAT "\n",
		       json_integer_value(json_object_get(s, "conductor_port")));
	else
		printf("-\n");
	printf("pre-shared secret: %s\nroot CA: %s\ndevices: %" JSON_INTEGER_FORMAT "\nready: %s\n",
	       json_is_true(json_object_get(s, "psk_set")) ? "set" : "not set",
	       json_is_string(json_object_get(s, "conductor_ca_pem")) ? "set" : "none",
	       json_integer_value(json_object_get(s, "devices")),
	       json_is_true(json_object_get(s, "ready")) ? "yes" : "no");
}

/* Prints a DEVICE as lines. */
static void
print_device(const json_t *d)
{
	static const char *const keys[] = {
		"serial",   "model",	    "ocra_suite", "claim_code", "organization",
		"site",	    "stage",	    "last_seen",  "last_error", "last_error_time",
		"imported", "locked_until", "asset_id",
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		printf("%s: %s\n", keys[i], admin_str(d, keys[i]));
	printf("failures: %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(d, "failures")));
}

/* "BY TIME" of an {"by", "at"} object, or "-" when it is null. */
static const char *
who_when(const json_t *alarm, const char *key, char *buf, size_t cap)
{
	const json_t *v = json_object_get(alarm, key);

	if (!json_is_object(v))
		return "-";
	snprintf(buf, cap, "%s %s", admin_str(v, "by"), admin_str(v, "at"));
	return buf;
}

/* Prints ALARMS as a table (with CLEARED for the history), each alarm's text under its row. */
static void
print_alarms(const json_t *doc, bool history)
{
	const json_t *list = json_object_get(doc, "alarms"), *v;
	char acked[CLOUD_NAME_MAX + 40], cleared[CLOUD_NAME_MAX + 40];
	size_t i;

	printf("%-8s %-20s %-9s %-21s %-32s%s\n", "ID", "SERIAL", "SEVERITY", "SINCE",
	       "ACKNOWLEDGED", history ? " CLEARED" : "");
	json_array_foreach(list, i, v)
	{
		printf("%-8" JSON_INTEGER_FORMAT " %-20s %-9s %-21s %-32s%s%s\n",
		       json_integer_value(json_object_get(v, "id")), admin_str(v, "serial"),
		       admin_str(v, "severity"), admin_str(v, "since"),
		       who_when(v, "acknowledged", acked, sizeof(acked)), history ? " " : "",
		       history ? who_when(v, "cleared", cleared, sizeof(cleared)) : "");
		printf("         %s\n", admin_str(v, "alarm"));
	}
}

/* Prints what an ack or a clear did to the alarm. */
static void
print_alarm_change(const json_t *a)
{
	char when[CLOUD_NAME_MAX + 40];
	bool cleared = json_object_get(a, "cleared") != NULL;

	printf("alarm %" JSON_INTEGER_FORMAT " (%s: %s) %s by %s\n",
	       json_integer_value(json_object_get(a, "id")), admin_str(a, "serial"),
	       admin_str(a, "alarm"), cleared ? "cleared" : "acknowledged",
	       who_when(a, cleared ? "cleared" : "acknowledged", when, sizeof(when)));
}

/* Prints the answer: JSON with --json, else by kind. */
static void
print_answer(const struct admin_args *a, const char *kind, const json_t *doc)
{
	json_t *list, *v;
	size_t i;

	if (a->given & OPT_JSON) {
		admin_print_json(doc);
	} else if (strcmp(kind, "organizations") == 0) {
		list = json_object_get(doc, kind);
		json_array_foreach(list, i, v)
			printf("%-24s %s\n", admin_str(v, "name"), admin_str(v, "created"));
	} else if (strcmp(kind, "sites") == 0) {
		printf("%-24s %-6s %-8s %s\n", "SITE", "READY", "DEVICES", "CONDUCTORS");
		list = json_object_get(doc, kind);
		json_array_foreach(list, i, v)
		{
			char *c =
				json_dumps(json_object_get(v, "conductor_addresses"), JSON_COMPACT);
			printf("%-24s %-6s %-8" JSON_INTEGER_FORMAT " %s\n", admin_str(v, "name"),
			       json_is_true(json_object_get(v, "ready")) ? "yes" : "no",
			       json_integer_value(json_object_get(v, "devices")), c ? c : "-");
			free(c);
		}
	} else if (strcmp(kind, "site") == 0) {
		print_site(doc);
	} else if (strcmp(kind, "devices") == 0) {
		printf("%-20s %-12s %-24s %-18s %s\n", "SERIAL", "MODEL", "ORGANIZATION/SITE",
		       "STAGE", "LAST ERROR");
		list = json_object_get(doc, kind);
		json_array_foreach(list, i, v)
		{
			char where[2 * CLOUD_NAME_MAX + 2];
			snprintf(where, sizeof(where), "%s/%s", admin_str(v, "organization"),
				 admin_str(v, "site"));
			printf("%-20s %-12s %-24s %-18s %s\n", admin_str(v, "serial"),
			       admin_str(v, "model"),
			       json_is_string(json_object_get(v, "organization")) ? where : "-",
			       admin_str(v, "stage"), admin_str(v, "last_error"));
		}
	} else if (strcmp(kind, "device") == 0) {
		print_device(doc);
	} else if (strcmp(kind, "alarms") == 0) {
		print_alarms(doc, a->given & OPT_HISTORY);
	} else if (strcmp(kind, "alarm") == 0) {
		print_alarm_change(doc);
	} else if (strcmp(kind, "certificate") == 0) {
		fputs(admin_str(doc, "certificate"), stdout);
	} else if (strcmp(kind, "events") == 0) {
		list = json_object_get(doc, kind);
		json_array_foreach(list, i, v) printf(
			"%s %-6s %-20s %-8s %s\n", admin_str(v, "time"), admin_str(v, "source"),
			admin_str(v, "step"), admin_str(v, "outcome"),
			json_is_string(json_object_get(v, "reason")) ? admin_str(v, "reason") : "");
	} else if (strcmp(kind, "tokens") == 0) {
		admin_print_tokens(doc);
	}
}

/* Builds the settings body of `site set` from the options; -1 on bad input. */
static int
settings_body(const struct admin_args *a, json_t *body)
{
	char *psk = NULL, *pem = NULL;
	json_t *list;
	int rc = -1;

	if (!(a->given & (OPT_CONDUCTOR | OPT_PORT | OPT_PSK_FILE | OPT_CA_FILE | OPT_NO_CA)))
		return or_error("nothing to set: --conductor, --port, --psk-file, --ca-file or "
				"--no-ca");
	if ((a->given & OPT_CA_FILE) && (a->given & OPT_NO_CA))
		return or_error("--ca-file and --no-ca exclude each other");
	if (a->n_conductors > 0) {
		list = json_array();
		json_object_set_new(body, "conductor_addresses", list);
		for (size_t i = 0; i < a->n_conductors; i++) {
			const char *colon = strrchr(a->conductors[i], ':');

			/* HOST:PORT is what one types first: say where the port goes. */
			if (colon != NULL && strchr(a->conductors[i], ':') == colon &&
			    colon[1] != '\0' &&
			    strspn(colon + 1, "0123456789") == strlen(colon + 1))
				return or_error("--conductor takes an address without a port: give "
						"--conductor %.*s --port %s",
						(int)(colon - a->conductors[i]), a->conductors[i],
						colon + 1);
			if (cloud_check_host(a->conductors[i]) == -1)
				return or_error_prefix("--conductor");
			json_array_append_new(list, json_string(a->conductors[i]));
		}
	}
	if (a->port != NULL) {
		char *end;
		long p = strtol(a->port, &end, 10);
		if (*end != '\0' || a->port[0] < '1' || a->port[0] > '9' || p > 65535)
			return or_error("--port must be a number from 1 to 65535");
		json_object_set_new(body, "conductor_port", json_integer(p));
	}
	if (a->psk_file != NULL) {
		size_t n;
		if (admin_read_file(a->psk_file, CLOUD_PSK_MAX + 2, &psk) == -1)
			goto out;
		n = strlen(psk);
		while (n > 0 && (psk[n - 1] == '\n' || psk[n - 1] == '\r'))
			psk[--n] = '\0';
		if (cloud_check_psk(psk) == -1) {
			or_error_prefix("%s", a->psk_file);
			goto out;
		}
		json_object_set_new(body, "psk", json_string(psk));
	}
	if (a->ca_file != NULL) {
		if (admin_read_file(a->ca_file, CLOUD_PEM_MAX, &pem) == -1 ||
		    cloud_check_pem(a->ca_file, pem) == -1)
			goto out;
		json_object_set_new(body, "conductor_ca_pem", json_string(pem));
	}
	if (a->given & OPT_NO_CA)
		json_object_set_new(body, "conductor_ca_pem", json_null());
	rc = 0;
out:
	if (psk != NULL) {
		secure_zero(psk, strlen(psk));
		free(psk);
	}
	free(pem);
	return rc;
}

/* Fills req from the words and options; -1 on bad input. */
static int
build(const struct admin_args *a, struct admin_request *req)
{
	const char *w1 = a->pos[0], *w2 = a->n_pos > 1 ? a->pos[1] : "";
	const char *x = a->n_pos > 2 ? a->pos[2] : NULL, *y = a->n_pos > 3 ? a->pos[3] : NULL;
	bool list = strcmp(w2, "list") == 0, show = strcmp(w2, "show") == 0,
	     add = strcmp(w2, "add") == 0, del = strcmp(w2, "delete") == 0;

#define WANT(opts, n, kinds)                                                                       \
	if (admin_args_check(a, (opts), (n), (n)) == -1 || check_words(a, 2, (kinds)) == -1)       \
		return -1;
	req->method = "GET";
	if (strcmp(w1, "org") == 0 && (add || del)) {
		WANT(0, 3, "o");
		req->method = add ? "POST" : "DELETE";
		snprintf(req->path, sizeof(req->path), "/v1/admin/organizations%s%s",
			 add ? "" : "/", add ? "" : x);
		req->body = add ? json_pack("{s:s}", "name", x) : NULL;
		snprintf(req->done, sizeof(req->done), "organisation %s %s", x,
			 add ? "added" : "deleted");
	} else if (strcmp(w1, "org") == 0 && list) {
		WANT(OPT_JSON, 2, "");
		snprintf(req->path, sizeof(req->path), "/v1/admin/organizations");
		req->kind = "organizations";
	} else if (strcmp(w1, "site") == 0 && list) {
		WANT(OPT_JSON, 3, "o");
		snprintf(req->path, sizeof(req->path), "/v1/admin/organizations/%s/sites", x);
		req->kind = "sites";
	} else if (strcmp(w1, "site") == 0 && (add || del || show)) {
		WANT(show ? OPT_JSON : 0, 4, "on");
		req->method = add ? "POST" : del ? "DELETE" : "GET";
		snprintf(req->path, sizeof(req->path), "/v1/admin/organizations/%s/sites%s%s", x,
			 add ? "" : "/", add ? "" : y);
		req->body = add ? json_pack("{s:s}", "name", y) : NULL;
		req->kind = show ? "site" : NULL;
		snprintf(req->done, sizeof(req->done), "site %s/%s %s", x, y,
			 add ? "added" : "deleted");
	} else if (strcmp(w1, "site") == 0 && strcmp(w2, "set") == 0) {
		WANT(OPT_JSON | OPT_CONDUCTOR | OPT_PORT | OPT_PSK_FILE | OPT_CA_FILE | OPT_NO_CA,
		     4, "on");
		req->method = "PUT";
		snprintf(req->path, sizeof(req->path),
			 "/v1/admin/organizations/%s/sites/%s/settings", x, y);
		req->body = json_object();
		req->kind = "site";
		return settings_body(a, req->body);
	} else if (strcmp(w1, "inventory") == 0 && strcmp(w2, "import") == 0) {
		WANT(OPT_JSON | OPT_CLAIM_CODE, 3, "-");
		json_t *record;
		if (json_load_object_file(x, RECORD_FILE_MAX, &record) == -1)
			return -1;
		req->method = "POST";
		snprintf(req->path, sizeof(req->path), "/v1/admin/inventory");
		req->body = json_pack("{s:o}", "record", record);
		if (a->claim_code != NULL) {
			if (cloud_check_claim_code(a->claim_code) == -1)
				return -1;
			json_object_set_new(req->body, "claim_code", json_string(a->claim_code));
		}
		req->kind = (a->given & OPT_JSON) ? "device" : NULL;
		snprintf(req->done, sizeof(req->done), "device imported from %.120s", x);
	} else if (strcmp(w1, "claim") == 0) {
		if (admin_args_check(a, OPT_JSON | OPT_SERIAL | OPT_CLAIM_CODE | OPT_ORG | OPT_SITE,
				     1, 1) == -1)
			return -1;
		if (!(a->serial == NULL) == !(a->claim_code == NULL))
			return or_error("give exactly one of --serial and --claim-code");
		if (a->org == NULL || a->site == NULL)
			return or_error("--org and --site are required");
		if ((a->serial && cloud_check_serial(a->serial) == -1) ||
		    (a->claim_code && cloud_check_claim_code(a->claim_code) == -1) ||
		    cloud_check_name("organisation", a->org) == -1 ||
		    cloud_check_name("site", a->site) == -1)
			return -1;
		req->method = "POST";
		snprintf(req->path, sizeof(req->path), "/v1/admin/claims");
		req->body = json_pack("{s:s,s:s}", "organization", a->org, "site", a->site);
		json_object_set_new(req->body, a->serial ? "serial" : "claim_code",
				    json_string(a->serial ? a->serial : a->claim_code));
		req->kind = (a->given & OPT_JSON) ? "device" : NULL;
		snprintf(req->done, sizeof(req->done), "claimed for %s/%s", a->org, a->site);
	} else if (strcmp(w1, "unclaim") == 0) {
		if (admin_args_check(a, OPT_JSON, 2, 2) == -1 || check_words(a, 1, "s") == -1)
			return -1;
		req->method = "DELETE";
		snprintf(req->path, sizeof(req->path), "/v1/admin/claims/%s", w2);
		req->kind = (a->given & OPT_JSON) ? "device" : NULL;
		snprintf(req->done, sizeof(req->done), "device %s unclaimed", w2);
	} else if ((strcmp(w1, "device") == 0 && list) || strcmp(w1, "devices") == 0) {
		if (admin_args_check(a, OPT_JSON, strcmp(w1, "devices") == 0 ? 1 : 2,
				     strcmp(w1, "devices") == 0 ? 1 : 2) == -1)
			return -1;
		snprintf(req->path, sizeof(req->path), "/v1/admin/devices");
		req->kind = "devices";
	} else if (strcmp(w1, "device") == 0 && (show || del || strcmp(w2, "events") == 0)) {
		WANT(del ? 0 : OPT_JSON, 3, "s");
		req->method = del ? "DELETE" : "GET";
		snprintf(req->path, sizeof(req->path), "/v1/admin/devices/%s%s", x,
			 show || del ? "" : "/events");
		req->kind = del ? NULL : show ? "device" : "events";
		snprintf(req->done, sizeof(req->done), "device %s removed from the inventory", x);
	} else if (strcmp(w1, "device") == 0 && strcmp(w2, "set") == 0) {
		WANT(OPT_JSON | OPT_ASSET_ID, 3, "s");
		if (a->asset_id == NULL)
			return or_error("device set SERIAL needs --asset-id ID");
		if (!conductor_valid_subject(a->asset_id) || strncmp(a->asset_id, "peer:", 5) == 0)
			return or_error("--asset-id must be 1 to %d printable characters without "
					"spaces, not starting with peer:",
					CONDUCTOR_SUBJECT_MAX);
		req->method = "PUT";
		snprintf(req->path, sizeof(req->path), "/v1/admin/devices/%s", x);
		req->body = json_pack("{s:s}", "asset_id", a->asset_id);
		req->kind = "device";
	} else if (strcmp(w1, "alarm") == 0 && list) {
		WANT(OPT_JSON | OPT_HISTORY, 2, "");
		snprintf(req->path, sizeof(req->path), "/v1/admin/alarms%s",
			 (a->given & OPT_HISTORY) ? "/history" : "");
		req->kind = "alarms";
	} else if (strcmp(w1, "alarm") == 0 &&
		   (strcmp(w2, "ack") == 0 || strcmp(w2, "clear") == 0)) {
		WANT(OPT_JSON, 3, "-");
		if (strspn(x, "0123456789") != strlen(x) || strlen(x) > 18)
			return or_error("'%s' is no alarm id (a number; 'alarm list' lists them)",
					x);
		req->method = "POST";
		snprintf(req->path, sizeof(req->path), "/v1/admin/alarms/%s/%s", x, w2);
		req->body = json_object();
		req->kind = "alarm";
	} else if (strcmp(w1, "assertion-cert") == 0 && strcmp(w2, "export") == 0) {
		WANT(OPT_JSON, 2, "");
		snprintf(req->path, sizeof(req->path), "/v1/admin/assertion-cert");
		req->kind = "certificate";
	} else if (strcmp(w1, "token") == 0 && (add || del)) {
		WANT(0, 3, "t");
		req->method = add ? "POST" : "DELETE";
		snprintf(req->path, sizeof(req->path), "/v1/admin/tokens%s%s", add ? "" : "/",
			 add ? "" : x);
		req->body = add ? json_pack("{s:s}", "name", x) : NULL;
		req->kind = add ? "new-token" : NULL;
		snprintf(req->done, sizeof(req->done), "token %s deleted", x);
	} else if (strcmp(w1, "token") == 0 && list) {
		WANT(OPT_JSON, 2, "");
		snprintf(req->path, sizeof(req->path), "/v1/admin/tokens");
		req->kind = "tokens";
	} else {
		return or_error("unknown command 'cloud %s%s%s' (try 'onrampctl cloud --help')", w1,
				w2[0] ? " " : "", w2);
	}
#undef WANT
	return 0;
}

/* onrampctl cloud: the cloud's admin API through admin_command(). */
int
cmd_cloud(int argc, char **argv)
{
	static const struct admin_cli cli = {cloud_usage, "ONRAMP_CLOUD", build, print_answer};

	return admin_command(argc, argv, &cli);
}
