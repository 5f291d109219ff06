/*
 * One storage API over SQLite and PostgreSQL, so that every daemon works with
 * zero setup (a SQLite file) and scales out on a shared PostgreSQL with the
 * same code and the same behaviour.
 *
 * - URLs: "sqlite:/path/file.db" (the file is created, mode 0600; WAL, busy
 *   timeout, foreign keys on), "postgresql://..." / "postgres://..." or a libpq
 *   "key=value ..." conninfo.
 * - SQL uses $1..$n placeholders on both backends; each of $1..$n must appear
 *   and no other placeholder may. Parameters are text (NULL = SQL NULL); one
 *   statement per store_exec.
 * - Results are text: integers in decimal, NULL as NULL. Use INTEGER 0/1 for
 *   booleans and TEXT for times (RFC 3339 UTC) in portable schemas.
 * - A failed statement inside a transaction fails the transaction on both
 *   backends: later statements and store_commit() fail until store_rollback().
 * - Errors name the backend and the statement's first words, never parameter
 *   values (they may be secrets) and never the connection string.
 * - A struct store is one connection: use it from one thread at a time.
 */
#ifndef ONRAMP_STORE_H
#define ONRAMP_STORE_H

#include <stdbool.h>
#include <stddef.h>

struct store;
struct store_result;

int store_open(const char *url, struct store **out);
void store_close(struct store *);

/* Runs one statement. res may be NULL (result discarded); else *res is set on
 * success and must be freed with store_result_free. */
int store_exec(struct store *, const char *sql, const char *const *params, size_t n_params,
	       struct store_result **res);
size_t store_rows(const struct store_result *);
size_t store_cols(const struct store_result *);
/* Value at row/col; NULL for SQL NULL or out of range. */
const char *store_value(const struct store_result *, size_t row, size_t col);
/* Rows changed by INSERT/UPDATE/DELETE (0 for other statements). */
long store_changes(const struct store_result *);
void store_result_free(struct store_result *);

/*
 * Transactions. One begun while another is open joins it (the admin API's
 * audit wraps each change in one, and handlers keep their own): the inner
 * commit leaves the decision to the outer one, an inner rollback dooms it.
 */
int store_begin(struct store *);
int store_commit(struct store *);
int store_rollback(struct store *);
/* Whether a transaction is open on this connection. */
bool store_in_transaction(const struct store *);

/* What the last failure of store_exec/commit was, for mapping to HTTP codes. */
enum store_errkind {
	STORE_ERR_NONE = 0,
	STORE_ERR_CONSTRAINT, /* unique, foreign key, not null, check: the caller's input */
	STORE_ERR_OTHER,
};
enum store_errkind store_last_error(const struct store *);

/* "sqlite" or "postgresql". */
const char *store_backend(const struct store *);

/*
 * Versioned schema per component, in the table schema_migrations(component,
 * version, applied_at). Versions must be positive and increasing. Each
 * migration not yet applied runs in its own transaction with its row in
 * schema_migrations; concurrent migrators (several daemons starting on one
 * PostgreSQL) are serialised. A database whose version for the component is
 * newer than the newest migration given is refused.
 * A migration gives `sql` (portable), or both sqlite_sql and postgres_sql;
 * these may hold several statements separated by ';'.
 */
struct store_migration {
	int version;
	const char *sql;
	const char *sqlite_sql, *postgres_sql;
};
int store_migrate(struct store *, const char *component, const struct store_migration *, size_t n);

/* The component's schema version (0 when none was applied). */
int store_schema_version(struct store *, const char *component, int *version);

#endif
