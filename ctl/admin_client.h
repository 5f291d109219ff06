/*
 * What `onrampctl cloud` and `onrampctl redirect` share: their command-line
 * options, the connection to a daemon's admin API (URL, trust anchor, token
 * file, or the environment), one request with its answer sorted into an exit
 * status, and printing.
 */
#ifndef ONRAMP_ADMIN_CLIENT_H
#define ONRAMP_ADMIN_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/secret.h"
#include "proto/cloud_proto.h"

/* Options, as bits: which a command allows, which were given. */
enum admin_opt {
	OPT_JSON = 1 << 0,
	OPT_CONDUCTOR = 1 << 1,
	OPT_PORT = 1 << 2,
	OPT_PSK_FILE = 1 << 3,
	OPT_CA_FILE = 1 << 4,
	OPT_NO_CA = 1 << 5,
	OPT_CLAIM_CODE = 1 << 6,
	OPT_SERIAL = 1 << 7,
	OPT_ORG = 1 << 8,
	OPT_SITE = 1 << 9,
	OPT_ROLE = 1 << 10,
	OPT_CLOUD_URL = 1 << 11,
	OPT_CLOUD_CA = 1 << 12,
	OPT_CLAIM_SECRET_FILE = 1 << 13,
	OPT_SINCE = 1 << 14,
	OPT_VERIFY = 1 << 15,
	OPT_WATCH = 1 << 16, /* any reading command: ask again every 2 s */
	OPT_ASSET_ID = 1 << 17,
	OPT_HISTORY = 1 << 18,
};

#define ADMIN_POS_MAX 6

/*
 * The largest admin answer onrampctl takes: a fleet's listings (a conductor's
 * assets and routers, a cloud's devices) outgrow the devices' 1 MiB cap at
 * a few thousand routers.
 */
#define ADMIN_ANSWER_MAX ((size_t)64 * 1024 * 1024)

struct admin_args {
	const char *url, *ca, *token_file; /* the connection */
	unsigned given;			   /* enum admin_opt bits */
	const char *conductors[CLOUD_CONDUCTORS_MAX];
	size_t n_conductors;
	const char *port, *psk_file, *ca_file, *claim_code, *serial, *org, *site, *role;
	const char *cloud_url, *cloud_ca, *claim_secret_file, *since, *asset_id;
	const char *pos[ADMIN_POS_MAX]; /* the words: "device", "events", "SERIAL" */
	size_t n_pos;
};

/* Parses options anywhere among the words. -1 (or_error) on an unknown, repeated or empty one. */
int admin_args_parse(int argc, char **argv, struct admin_args *a);

/* Checks that only `allowed` options were given and that there are min..max words. */
int admin_args_check(const struct admin_args *a, unsigned allowed, size_t min_words,
		     size_t max_words);

struct admin_conn {
	const char *url;
	char *ca_pem;
	struct secret token; /* NUL-terminated */
};

/*
 * The connection from the options, else from the environment variables
 * PREFIX_URL, PREFIX_CA and PREFIX_TOKEN_FILE (PREFIX "ONRAMP_CLOUD" say).
 */
int admin_conn_open(const struct admin_args *a, const char *env_prefix, struct admin_conn *c);
void admin_conn_close(struct admin_conn *c);

/*
 * One request (body may be NULL). Returns the exit status: 0 with *doc for a
 * 2xx answer, 3 when the server refused the token or its role (401, 403), 2
 * when it refused the input (other 4xx), 1 when it failed or could not be
 * reached; the message is printed on stderr.
 */
int admin_call(struct admin_conn *c, const char *method, const char *path, const json_t *body,
	       json_t **doc);

/* The request a command makes: method, path, body and how to print the answer. */
struct admin_request {
	const char *method;
	char path[256];
	json_t *body;	  /* NULL: none */
	const char *kind; /* the printer's kind; "new-token": the token alone; NULL: `done` */
	char done[160];	  /* the line printed when kind is NULL (and no --json) */
};

/* One command-line front end of an admin API. */
struct admin_cli {
	const char *usage;
	const char *env_prefix; /* "ONRAMP_CLOUD" */
	/* Checks the words and options and fills the request; -1 (or_error) on bad input. */
	int (*build)(const struct admin_args *, struct admin_request *);
	/* Prints a 2xx answer of `kind` (as JSON with --json). */
	void (*print)(const struct admin_args *, const char *kind, const json_t *doc);
};

/* The whole command: parse, build, connect, call, print. Returns the exit status. */
int admin_command(int argc, char **argv, const struct admin_cli *cli);

/*
 * `audit [--since TIME] [--json]` and `audit --verify`, the same on every
 * daemon's admin API (GET /v1/admin/audit): fills the request.
 */
int admin_audit_build(const struct admin_args *a, struct admin_request *req);

/* Prints the audit entries as a table, or the chain's verdict; 1 for a broken chain. */
int admin_print_audit(const struct admin_args *a, const char *kind, const json_t *doc);

/* Prints a token list as a table. */
void admin_print_tokens(const json_t *doc);

/* Prints a JSON value on one line, keys sorted. */
void admin_print_json(const json_t *v);

/* The string field, or "-" when missing or null (for tables). */
const char *admin_str(const json_t *obj, const char *key);

/* Reads a small text file (PEM, record, secret) into a malloc'd string. */
int admin_read_file(const char *path, size_t max, char **out);

#endif
