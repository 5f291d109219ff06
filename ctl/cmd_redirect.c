/*
 * onrampctl redirect: the redirector's admin API (docs/protocol.md section
 * 5): tokens (an admin's, or one per organisation cloud) and claims.
 * Arguments are checked before anything is sent; bad input exits 2.
 */
#include "onrampctl.h"

#include "admin_client.h"
#include "core/error.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char redirect_usage[] =
	"usage: onrampctl redirect [--url URL --ca FILE --token-file FILE] COMMAND\n"
	"\n"
	"  token add NAME [--role cloud|admin] | token list | token delete NAME\n"
	"  claim list | claim show SERIAL | claim delete SERIAL\n"
	"  claim set SERIAL --cloud-url URL --cloud-ca PEM\n"
	"\n"
	"The redirector's admin API: --url https://host:port, --ca its trust anchor (PEM),\n"
	"--token-file a file holding a token; or ONRAMP_REDIRECT_URL, ONRAMP_REDIRECT_CA,\n"
	"ONRAMP_REDIRECT_TOKEN_FILE. A cloud token (the default role) is what an\n"
	"organisation cloud pushes its claims with. list and show take --json.\n"
	"Exit status: 0 done, 2 bad input or refused (nothing changed), 1 the redirector\n"
	"failed or could not be reached.\n";

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
	else
		json_array_foreach(json_object_get(doc, "claims"), i, v) print_claim(v);
}

/* Fills req from the words and options; -1 on bad input (nothing is sent). */
static int
build(const struct admin_args *a, struct admin_request *req)
{
	const char *w1 = a->pos[0], *w2 = a->n_pos > 1 ? a->pos[1] : "";
	const char *x = a->n_pos > 2 ? a->pos[2] : "";
	bool token = strcmp(w1, "token") == 0, claim = strcmp(w1, "claim") == 0;
	bool list = strcmp(w2, "list") == 0;
	char *pem = NULL;

	req->method = "GET";
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
		if (a->role && strcmp(a->role, "cloud") != 0 && strcmp(a->role, "admin") != 0)
			return or_error("--role must be cloud or admin");
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
				     : set ? OPT_CLOUD_URL | OPT_CLOUD_CA
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
		if (a->cloud_url == NULL || a->cloud_ca == NULL)
			return or_error("--cloud-url and --cloud-ca are required");
		if (cloud_check_url("--cloud-url", a->cloud_url) == -1 ||
		    admin_read_file(a->cloud_ca, CLOUD_PEM_MAX, &pem) == -1 ||
		    cloud_check_pem(a->cloud_ca, pem) == -1) {
			free(pem);
			return -1;
		}
		req->body = json_pack("{s:s,s:s}", "cloud_url", a->cloud_url, "cloud_ca_pem", pem);
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
