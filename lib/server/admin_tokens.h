/*
 * Admin bearer tokens of the onramp daemons (redirector, cloud): random
 * 32-byte tokens shown once when made, kept only as their SHA-256 in the
 * daemon's database, each with a name and a role. Serves the
 * /v1/admin/tokens endpoints (docs/protocol.md) for both daemons.
 */
#ifndef ONRAMP_ADMIN_TOKENS_H
#define ONRAMP_ADMIN_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/secret.h"
#include "proto/cloud_proto.h"

struct http_ctx;
struct store;

/* The table, created by each daemon's first migration. */
#define ADMIN_TOKENS_SCHEMA                                                                        \
	"CREATE TABLE admin_tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "            \
	"role TEXT NOT NULL, created BIGINT NOT NULL);"

#define ADMIN_ROLE_MAX 16

struct admin_who {
	char name[CLOUD_NAME_MAX + 1];
	char role[ADMIN_ROLE_MAX + 1];
};

/*
 * Makes a token named name with role; token_out (CLOUD_TOKEN_HEX + 1 bytes)
 * receives it. A name in use: -1 with *exists set (nothing written).
 */
int admin_token_create(struct store *st, const char *name, const char *role, char *token_out,
		       bool *exists);

/*
 * Reads a token file (one line: 64 hex digits) into out, NUL-terminated, as
 * onrampctl and cloudd (its token at the redirector) keep them.
 */
int admin_token_read_file(const char *path, struct secret *out);

/*
 * Checks the request's bearer token. 0 with *who filled; otherwise replies
 * 401 and returns -1. Logs refusals with the peer, never the token.
 */
int admin_authenticate(struct http_ctx *ctx, struct store *st, struct admin_who *who);

/*
 * Looks a token up (untrusted text: malformed is simply not found): 1 with
 * *who filled, 0 when no admin token is this one, -1 on a database error.
 */
int admin_token_lookup(struct store *st, const char *token, struct admin_who *who);

/*
 * Serves GET/POST /v1/admin/tokens (name NULL) and DELETE /v1/admin/tokens/NAME.
 * roles lists the roles a new token may have; the first is the default. The
 * caller has checked that who may manage tokens.
 */
void admin_tokens_serve(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
			const char *name, const char *const *roles, size_t n_roles);

#endif
