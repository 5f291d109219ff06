/*
 * The admin-API client of onrampctl. Trusts nothing typed on the command
 * line; the daemon is trusted only through the anchor given (--ca), and its
 * answers only for printing. The token is read from a file (never an
 * argument, which other users could see) and never printed.
 */
#include "admin_client.h"

#include "core/error.h"
#include "core/file.h"
#include "core/json.h"
#include "core/rfc3339.h"
#include "net/http_client.h"
#include "onrampctl.h"
#include "server/admin_tokens.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
	const char *name;
	enum admin_opt bit;
	size_t offset; /* of the const char * in struct admin_args; 0 for flags */
} options[] = {
	{"--json", OPT_JSON, 0},
	{"--no-ca", OPT_NO_CA, 0},
	{"--conductor", OPT_CONDUCTOR, 0},
	{"--port", OPT_PORT, offsetof(struct admin_args, port)},
	{"--psk-file", OPT_PSK_FILE, offsetof(struct admin_args, psk_file)},
	{"--ca-file", OPT_CA_FILE, offsetof(struct admin_args, ca_file)},
	{"--claim-code", OPT_CLAIM_CODE, offsetof(struct admin_args, claim_code)},
	{"--serial", OPT_SERIAL, offsetof(struct admin_args, serial)},
	{"--org", OPT_ORG, offsetof(struct admin_args, org)},
	{"--site", OPT_SITE, offsetof(struct admin_args, site)},
	{"--role", OPT_ROLE, offsetof(struct admin_args, role)},
	{"--cloud-url", OPT_CLOUD_URL, offsetof(struct admin_args, cloud_url)},
	{"--cloud-ca", OPT_CLOUD_CA, offsetof(struct admin_args, cloud_ca)},
	{"--claim-secret-file", OPT_CLAIM_SECRET_FILE,
	 offsetof(struct admin_args, claim_secret_file)},
	{"--since", OPT_SINCE, offsetof(struct admin_args, since)},
	{"--verify", OPT_VERIFY, 0},
	{"--watch", OPT_WATCH, 0},
	{"--asset-id", OPT_ASSET_ID, offsetof(struct admin_args, asset_id)},
	{"--history", OPT_HISTORY, 0},
};

/* See admin_client.h. */
int
admin_args_parse(int argc, char **argv, struct admin_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], **slot = NULL;
		size_t k;

		if (strcmp(arg, "--url") == 0)
			slot = &a->url;
		else if (strcmp(arg, "--ca") == 0)
			slot = &a->ca;
		else if (strcmp(arg, "--token-file") == 0)
			slot = &a->token_file;
		if (slot != NULL) {
			if (i + 1 >= argc || argv[i + 1][0] == '\0')
				return or_error("%s needs a value", arg);
			*slot = argv[++i];
			continue;
		}
		if (strncmp(arg, "--", 2) != 0) {
			if (a->n_pos == ADMIN_POS_MAX)
				return or_error("too many arguments");
			a->pos[a->n_pos++] = arg;
			continue;
		}
		for (k = 0; k < sizeof(options) / sizeof(options[0]); k++)
			if (strcmp(arg, options[k].name) == 0)
				break;
		if (k == sizeof(options) / sizeof(options[0]))
			return or_error("unknown option '%s'", arg);
		if ((a->given & options[k].bit) && options[k].bit != OPT_CONDUCTOR)
			return or_error("%s given twice", arg);
		a->given |= options[k].bit;
		if (options[k].bit == OPT_JSON || options[k].bit == OPT_NO_CA ||
		    options[k].bit == OPT_VERIFY || options[k].bit == OPT_WATCH ||
		    options[k].bit == OPT_HISTORY)
			continue;
		if (i + 1 >= argc || argv[i + 1][0] == '\0')
			return or_error("%s needs a value", arg);
		if (options[k].bit == OPT_CONDUCTOR) {
			if (a->n_conductors == CLOUD_CONDUCTORS_MAX)
				return or_error("at most %d --conductor", CLOUD_CONDUCTORS_MAX);
			a->conductors[a->n_conductors++] = argv[++i];
		} else {
			*(const char **)((char *)a + options[k].offset) = argv[++i];
		}
	}
	return 0;
}

/* See admin_client.h. */
int
admin_args_check(const struct admin_args *a, unsigned allowed, size_t min_words, size_t max_words)
{
	allowed |= OPT_WATCH; /* every command; admin_command refuses it for changes */
	for (size_t k = 0; k < sizeof(options) / sizeof(options[0]); k++)
		if ((a->given & options[k].bit) && !(allowed & options[k].bit))
			return or_error("%s is not an option of this command", options[k].name);
	if (a->n_pos < min_words)
		return or_error("missing arguments");
	if (a->n_pos > max_words)
		return or_error("unexpected argument '%s'", a->pos[max_words]);
	return 0;
}

/* See admin_client.h. */
int
admin_read_file(const char *path, size_t max, char **out)
{
	size_t len;

	return file_read_all(path, max, (uint8_t **)out, &len);
}

/* See admin_client.h: the URL, anchor and token are checked before use. */
int
admin_conn_open(const struct admin_args *a, const char *env_prefix, struct admin_conn *c)
{
	char name[64];
	const char *ca = a->ca, *token_file = a->token_file;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	c->url = a->url;
	snprintf(name, sizeof(name), "%s_URL", env_prefix);
	if (c->url == NULL)
		c->url = getenv(name);
	snprintf(name, sizeof(name), "%s_CA", env_prefix);
	if (ca == NULL)
		ca = getenv(name);
	snprintf(name, sizeof(name), "%s_TOKEN_FILE", env_prefix);
	if (token_file == NULL)
		token_file = getenv(name);
	if (c->url == NULL || ca == NULL || token_file == NULL)
		return or_error("the server is not given: --url, --ca and --token-file (or %s_URL, "
				"%s_CA, %s_TOKEN_FILE)",
				env_prefix, env_prefix, env_prefix);
	if (cloud_check_url("--url", c->url) == -1)
		return -1;
	if (admin_read_file(ca, CLOUD_PEM_MAX, &c->ca_pem) == -1 ||
	    cloud_check_pem("--ca", c->ca_pem) == -1)
		goto out;
	if (admin_token_read_file(token_file, &c->token) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		admin_conn_close(c);
	return rc;
}

/* Frees the connection; the token is zeroed. */
void
admin_conn_close(struct admin_conn *c)
{
	free(c->ca_pem);
	secret_free(&c->token);
	c->ca_pem = NULL;
}

/* See admin_client.h. The server is trusted through the given anchor only. */
int
admin_call(struct admin_conn *c, const char *method, const char *path, const json_t *body,
	   json_t **doc)
{
	struct http_client_opts opts = {0};
	struct http_response resp = {0};
	struct http_session *s = NULL;
	enum http_err err = HTTP_OK;
	json_t *answer = NULL, *e;
	int rc = EXIT_FAILURE_RUNTIME;

	*doc = NULL;
	opts.ca_pem = c->ca_pem;
	opts.body_max = ADMIN_ANSWER_MAX;
	if (http_session_open(c->url, &opts, &s) == -1 ||
	    http_session_request(s, method, path, (const char *)c->token.data, body, &resp, &err) ==
		    -1) {
		ctl_fail(0, "%s", or_errmsg());
		goto out;
	}
	if (json_parse_object(resp.body ? resp.body : "", resp.body_len, ADMIN_ANSWER_MAX,
			      &answer) == -1) {
		ctl_fail(0, "the server answered HTTP %ld with no JSON object", resp.status);
		goto out;
	}
	if (resp.status >= 200 && resp.status <= 299) {
		*doc = answer;
		answer = NULL;
		rc = EXIT_OK;
		goto out;
	}
	e = json_object_get(answer, "error");
	ctl_fail(0, "%s (HTTP %ld %s)", admin_str(e, "message"), resp.status, admin_str(e, "code"));
	rc = resp.status == 401 || resp.status == 403	? EXIT_AUTH_REFUSED
	     : resp.status >= 400 && resp.status <= 499 ? EXIT_BAD_INPUT
							: EXIT_FAILURE_RUNTIME;
out:
	json_decref(answer);
	http_response_free(&resp);
	http_session_close(s);
	return rc;
}

/* See admin_client.h. */
void
admin_print_json(const json_t *v)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);

	if (text != NULL)
		puts(text);
	free(text);
}

/* See admin_client.h. */
const char *
admin_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "-";
}

/* See admin_client.h. */
void
admin_print_tokens(const json_t *doc)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(doc, "tokens"), i, v)
		printf("%-24s %-8s %s\n", admin_str(v, "name"), admin_str(v, "role"),
		       admin_str(v, "created"));
}

static volatile sig_atomic_t stop_watching;

/* SIGINT, SIGTERM while watching: leave after the current answer. */
static void
on_stop(int sig)
{
	(void)sig;
	stop_watching = 1;
}

/* See admin_client.h. */
int
admin_command(int argc, char **argv, const struct admin_cli *cli)
{
	struct admin_args a;
	struct admin_conn c = {0};
	struct admin_request req = {0};
	json_t *doc = NULL;
	int rc = EXIT_BAD_INPUT;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(cli->usage, stdout);
			return EXIT_OK;
		}
	if (admin_args_parse(argc, argv, &a) == -1) {
		ctl_fail(rc, "%s", or_errmsg());
		goto out;
	}
	if (a.n_pos == 0) {
		ctl_fail(rc, "a command is needed (try --help)");
		goto out;
	}
	/* The audit is the same on every daemon: its words are handled here. */
	if ((strcmp(a.pos[0], "audit") == 0 ? admin_audit_build(&a, &req) : cli->build(&a, &req)) ==
		    -1 ||
	    admin_conn_open(&a, cli->env_prefix, &c) == -1) {
		ctl_fail(rc, "%s", or_errmsg());
		goto out;
	}
	if ((a.given & OPT_WATCH) && strcmp(req.method, "GET") != 0) {
		ctl_fail(rc, "--watch is for commands that read (list, show, events, audit)");
		goto out;
	}
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	do {
		if ((a.given & OPT_WATCH) && isatty(STDOUT_FILENO) && !(a.given & OPT_JSON))
			fputs("\033[H\033[2J", stdout);
		json_decref(doc);
		doc = NULL;
		rc = admin_call(&c, req.method, req.path, req.body, &doc);
		if (rc != EXIT_OK)
			goto out;
		if (req.kind != NULL && strncmp(req.kind, "audit", 5) == 0)
			rc = admin_print_audit(&a, req.kind, doc);
		else if (req.kind != NULL && strcmp(req.kind, "new-token") == 0)
			printf("%s\n", admin_str(doc, "token")); /* alone, for scripts; once */
		else if (req.kind != NULL)
			cli->print(&a, req.kind, doc);
		else if (a.given & OPT_JSON)
			admin_print_json(doc);
		else
			printf("%s\n", req.done);
		fflush(stdout);
		/* --watch: again every 2 s until SIGINT or SIGTERM, which end it with 0. */
		for (int i = 0; (a.given & OPT_WATCH) && i < 20 && !stop_watching; i++)
			usleep(100000);
	} while ((a.given & OPT_WATCH) && !stop_watching);
out:
	json_decref(doc);
	json_decref(req.body);
	admin_conn_close(&c);
	return rc;
}

/* See admin_client.h: the words and options checked before anything is sent. */
int
admin_audit_build(const struct admin_args *a, struct admin_request *req)
{
	time_t t;

	if (admin_args_check(a, OPT_JSON | OPT_SINCE | OPT_VERIFY, 1, 1) == -1)
		return -1;
	if ((a->given & OPT_VERIFY) && (a->given & OPT_SINCE))
		return or_error("--verify checks the whole chain: it takes no --since");
	if (a->since != NULL && rfc3339_parse(a->since, &t) == -1)
		return or_error_prefix("--since");
	req->method = "GET";
	if (a->given & OPT_VERIFY)
		snprintf(req->path, sizeof(req->path), "/v1/admin/audit?verify=1");
	else if (a->since != NULL)
		snprintf(req->path, sizeof(req->path), "/v1/admin/audit?since=%s", a->since);
	else
		snprintf(req->path, sizeof(req->path), "/v1/admin/audit");
	req->kind = (a->given & OPT_VERIFY) ? "audit-verify" : "audit";
	return 0;
}

/* See admin_client.h. */
int
admin_print_audit(const struct admin_args *a, const char *kind, const json_t *doc)
{
	const json_t *e;
	size_t i;

	if (strcmp(kind, "audit-verify") == 0) {
		bool ok = json_is_true(json_object_get(doc, "verified"));

		if (a->given & OPT_JSON)
			admin_print_json(doc);
		else if (ok)
			printf("audit chain verified: %lld entries\n",
			       (long long)json_integer_value(json_object_get(doc, "entries")));
		else
			printf("audit chain BROKEN at entry %lld: that entry or one before it was "
			       "changed, removed or inserted\n",
			       (long long)json_integer_value(json_object_get(doc, "broken_at")));
		return ok ? EXIT_OK : EXIT_FAILURE_RUNTIME;
	}
	if (a->given & OPT_JSON) {
		admin_print_json(doc);
		return EXIT_OK;
	}
	printf("%-6s %-20s %-16s %-15s %-6s %-40s %s\n", "ID", "TIME", "WHO", "FROM", "STATUS",
	       "ACTION", "RESULT");
	json_array_foreach(json_object_get(doc, "entries"), i, e)
	{
		char action[512];

		snprintf(action, sizeof(action), "%s %s", admin_str(e, "action"),
			 admin_str(e, "object"));
		printf("%-6lld %-20s %-16s %-15s %-6lld %-40s %s\n",
		       (long long)json_integer_value(json_object_get(e, "id")),
		       admin_str(e, "time"), admin_str(e, "actor"), admin_str(e, "peer"),
		       (long long)json_integer_value(json_object_get(e, "status")), action,
		       admin_str(e, "result"));
	}
	return EXIT_OK;
}
