/*
 * onrampctl redirect: the redirector's admin API (docs/protocol.md section
 * 5): tokens (an admin's, one per organisation cloud, or a factory's),
 * device registrations (a serial and the hash of its claim secret, taken
 * from the factory record) and claims.
 * Arguments are checked before anything is sent; bad input exits 2.
 */
#include "onrampctl.h"

#include "admin_client.h"
#include "core/error.h"
#include "core/json.h"
#include "core/secret.h"
#include "device/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char redirect_usage[] =
	"usage: onrampctl redirect [--url URL --ca FILE --token-file FILE] COMMAND\n"
	"\n"
	"  token add NAME [--role cloud|admin|factory] | token list | token delete NAME\n"
	"  audit [--since TIME] [--json] | audit --verify\n"
	"  device register RECORD.json | device show SERIAL | device delete SERIAL\n"
	"  claim list | claim show SERIAL | claim delete SERIAL\n"
	"  claim set SERIAL --cloud-url URL --cloud-ca PEM --claim-secret-file FILE\n"
	"\n"
	"The redirector's admin API: --url https://host:port, --ca its trust anchor (PEM),\n"
	"--token-file a file holding a token; or ONRAMP_REDIRECT_URL, ONRAMP_REDIRECT_CA,\n"
	"ONRAMP_REDIRECT_TOKEN_FILE. A cloud token (the default role) is what an\n"
	"organisation cloud pushes its claims with; a factory token only registers\n"
	"devices: device register sends the serial and claim hash of a factory record\n"
	"(onrampctl factory init-device), never its secrets. A claim is accepted only\n"
	"with the device's claim secret. list and show take --json.\n"
	"Exit status: 0 done, 1 the redirector failed or could not be reached, 2 bad\n"
	"input or refused (nothing changed), 3 the token or its role refused.\n";

/* Prints a device registration as one line (serial, claim hash, registrar, registered). */
static void
print_device(const json_t *d)
{
	printf("%-24s %s %-16s %s\n", admin_str(d, "serial"), admin_str(d, "claim_hash"),
	       admin_str(d, "registrar"), admin_str(d, "registered"));
}

/* Prints a CLAIM as one table line (serial, cloud, owner, updated). */
static void
print_claim(const json_t *c)
{
	printf("%-24s %-32s %-16s %s\n", admin_str(c, "serial"), admin_str(c, "cloud_url"),
	       admin_str(c, "owner"), admin_str(c, "updated"));
}

/* Prints an answer: JSON with --json, else by kind. */
static void
print_answer(const struct admin_args *a, const char *kind, const json_t *doc)
{
	json_t *v;
	size_t i;

	if (a->given & OPT_JSON)
		admin_print_json(doc);
	else if (strcmp(kind, "tokens") == 0)
		admin_print_tokens(doc);
	else if (strcmp(kind, "claim") == 0)
		print_claim(doc);
	else if (strcmp(kind, "device") == 0)
		print_device(doc);
	else
		json_array_foreach(json_object_get(doc, "claims"), i, v) print_claim(v);
}

/*
 * device register RECORD | show SERIAL | delete SERIAL: the record is read and
 * checked; only its serial and claim hash are sent.
 */
static int
build_device(const struct admin_args *a, const char *w2, const char *x, struct admin_request *req)
{
	bool reg = strcmp(w2, "register") == 0, show = strcmp(w2, "show") == 0;
	struct record rec = {0};
	const char *serial = x;

	if (!reg && !show && strcmp(w2, "delete") != 0)
		return or_error("unknown command 'redirect device %s' (try 'onrampctl redirect "
				"--help')",
				w2);
	if (admin_args_check(a, show ? OPT_JSON : 0, 3, 3) == -1)
		return -1;
	if (reg) {
		if (record_read(x, &rec) == -1)
			return -1;
		if (rec.claim_hash[0] == '\0') {
			record_free(&rec);
			return or_error("%s is a version 1 record: it has no claim secret; make "
					"the record again with this onrampctl",
					x);
		}
		serial = rec.serial;
	}
	if (cloud_check_serial(serial) == -1) {
		record_free(&rec);
		return -1;
	}
	snprintf(req->path, sizeof(req->path), "/v1/admin/devices/%s", serial);
	req->method = reg ? "PUT" : show ? "GET" : "DELETE";
	req->kind = reg || show ? "device" : NULL;
	req->body = reg ? json_pack("{s:s}", "claim_hash", rec.claim_hash) : NULL;
	snprintf(req->done, sizeof(req->done), "registration of %s deleted", serial);
	record_free(&rec);
	return 0;
}

/* The claim secret from FILE: its first line, 64 lower-case hex digits. */
static int
read_claim_secret(const char *path, char **out)
{
	char *text = NULL;

	*out = NULL;
	if (admin_read_file(path, 1024, &text) == -1)
		return -1;
	text[strcspn(text, "\r\n")] = '\0';
	if (cloud_check_claim_hex("claim secret", text) == -1) {
		secure_zero(text, strlen(text));
		free(text);
		return or_error_prefix("%s", path);
	}
	*out = text;
	return 0;
}

/* Fills req from the words and options; -1 on bad input (nothing is sent). */
static int
build(const struct admin_args *a, struct admin_request *req)
{
	const char *w1 = a->pos[0], *w2 = a->n_pos > 1 ? a->pos[1] : "";
	const char *x = a->n_pos > 2 ? a->pos[2] : "";
	bool token = strcmp(w1, "token") == 0, claim = strcmp(w1, "claim") == 0;
	bool list = strcmp(w2, "list") == 0;
	char *pem = NULL, *secret = NULL;

	req->method = "GET";
	if (strcmp(w1, "device") == 0)
		return build_device(a, w2, x, req);
	if ((token || claim) && list) {
		if (admin_args_check(a, OPT_JSON, 2, 2) == -1)
			return -1;
		snprintf(req->path, sizeof(req->path), "/v1/admin/%s", token ? "tokens" : "claims");
		req->kind = token ? "tokens" : "claims";
		return 0;
	}
	if (token && (strcmp(w2, "add") == 0 || strcmp(w2, "delete") == 0)) {
		bool add = strcmp(w2, "add") == 0;
		if (admin_args_check(a, add ? OPT_ROLE : 0, 3, 3) == -1 ||
		    cloud_check_name("token name", x) == -1)
			return -1;
		if (a->role && strcmp(a->role, "cloud") != 0 && strcmp(a->role, "admin") != 0 &&
		    strcmp(a->role, "factory") != 0)
			return or_error("--role must be cloud, admin or factory");
		req->method = add ? "POST" : "DELETE";
		snprintf(req->path, sizeof(req->path), "/v1/admin/tokens%s%s", add ? "" : "/",
			 add ? "" : x);
		req->body =
			add ? json_pack("{s:s,s:s}", "name", x, "role", a->role ? a->role : "cloud")
			    : NULL;
		req->kind = add ? "new-token" : NULL;
		snprintf(req->done, sizeof(req->done), "token %s deleted", x);
		return 0;
	}
	if (claim &&
	    (strcmp(w2, "show") == 0 || strcmp(w2, "delete") == 0 || strcmp(w2, "set") == 0)) {
		bool set = strcmp(w2, "set") == 0, show = strcmp(w2, "show") == 0;
		if (admin_args_check(a,
				     show  ? OPT_JSON
				     : set ? OPT_CLOUD_URL | OPT_CLOUD_CA | OPT_CLAIM_SECRET_FILE
					   : 0,
				     3, 3) == -1 ||
		    cloud_check_serial(x) == -1)
			return -1;
		snprintf(req->path, sizeof(req->path), "/v1/admin/claims/%s", x);
		req->method = show ? "GET" : set ? "PUT" : "DELETE";
		req->kind = set || show ? "claim" : NULL;
		snprintf(req->done, sizeof(req->done), "claim of %s deleted", x);
		if (!set)
			return 0;
		if (a->cloud_url == NULL || a->cloud_ca == NULL || a->claim_secret_file == NULL)
			return or_error(
				"--cloud-url, --cloud-ca and --claim-secret-file are required");
		if (cloud_check_url("--cloud-url", a->cloud_url) == -1 ||
		    admin_read_file(a->cloud_ca, CLOUD_PEM_MAX, &pem) == -1 ||
		    cloud_check_pem(a->cloud_ca, pem) == -1 ||
		    read_claim_secret(a->claim_secret_file, &secret) == -1) {
			free(pem);
			return -1;
		}
		req->body = json_pack("{s:s,s:s,s:s}", "cloud_url", a->cloud_url, "cloud_ca_pem",
				      pem, "claim_secret", secret);
		secure_zero(secret, strlen(secret));
		free(secret);
		free(pem);
		return 0;
	}
	return or_error("unknown command 'redirect %s%s%s' (try 'onrampctl redirect --help')", w1,
			w2[0] ? " " : "", w2);
}

/* onrampctl redirect: the redirector's admin API through admin_command(). */
int
cmd_redirect(int argc, char **argv)
{
	static const struct admin_cli cli = {redirect_usage, "ONRAMP_REDIRECT", build,
					     print_answer};

	return admin_command(argc, argv, &cli);
}
