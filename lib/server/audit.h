/*
 * The audit trail of a daemon's admin API (docs/audit.md): every change an
 * operator makes, and every refused attempt, as one row of the daemon's own
 * database, written in the same transaction as the change itself. Each row
 * carries the SHA-256 of the row before it, so a row edited, removed or
 * inserted afterwards breaks the chain, which `audit --verify` finds.
 *
 * A row: who (the admin token's name; "-" when no token was accepted, and
 * never the token), from which address, what (method and path), on which
 * object, when, and the result (HTTP status and "ok" or the error code).
 */
#ifndef ONRAMP_SERVER_AUDIT_H
#define ONRAMP_SERVER_AUDIT_H

#include <stdbool.h>
#include <time.h>

struct admin_who;
struct http_ctx;
struct store;

#define AUDIT_COLUMNS                                                                              \
	"time BIGINT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL, peer TEXT NOT NULL, "      \
	"action TEXT NOT NULL, object TEXT NOT NULL, status INTEGER NOT NULL, "                    \
	"result TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"

/* The table, by backend (the rows are numbered each backend's own way). */
#define AUDIT_SCHEMA_SQLITE                                                                        \
	"CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, " AUDIT_COLUMNS
#define AUDIT_SCHEMA_POSTGRES "CREATE TABLE audit (id BIGSERIAL PRIMARY KEY, " AUDIT_COLUMNS

/* One entry before it is chained. */
struct audit_entry {
	time_t time;
	const char *actor, *role, *peer, *action, *object, *result;
	int status;
};

/*
 * Appends e to the chain inside the caller's open transaction (on
 * PostgreSQL an advisory lock orders concurrent writers; SQLite's
 * write lock does). -1 on a database error: the caller rolls back.
 */
int audit_append(struct store *st, const struct audit_entry *e);

/*
 * Walks the chain: 0 with *entries counted and *broken_at 0 when every row
 * holds; *broken_at the id of the first row that does not; -1 on a
 * database error.
 */
int audit_verify(struct store *st, long long *entries, long long *broken_at);

/*
 * The admin API around its handler. audit_request_begin keeps the answer
 * back and, for a change (any method but GET), opens the transaction the
 * handler's own transactions join. audit_request_end records a change that
 * succeeded in that transaction and commits (a failure to record or commit
 * turns the answer into 500, with nothing changed), rolls back one that did
 * not, records refused attempts (401, 403) of any method in a transaction
 * of their own, then sends the answer. who is NULL when no token was
 * accepted. When the transaction cannot be opened (the database busy past
 * its timeout), audit_request_begin answers 503 with Retry-After, sends it
 * and returns -1: the caller returns without running the handler.
 */
int audit_request_begin(struct http_ctx *ctx, struct store *st);
void audit_request_end(struct http_ctx *ctx, struct store *st, const struct admin_who *who);

/*
 * GET /v1/admin/audit[?since=RFC3339][&verify=1]: the entries, oldest
 * first (at most the last 1000 when no since is given), or the chain's
 * verdict. The caller has checked that who may read the audit.
 */
void audit_serve(struct http_ctx *ctx, struct store *st);

#endif
