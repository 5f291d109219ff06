/*
 * The store: one API, two backends (SQLite, PostgreSQL through libpq). See
 * store.h for the behaviour both give. Statements and parameters come from our
 * own code; parameter values may be secrets and never reach a message.
 */
#include "server/store.h"

#include "core/backoff.h"
#include "core/error.h"
#include "server/writer_gate.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum store_kind { STORE_SQLITE, STORE_POSTGRES };

/*
 * Statements prepared once per connection and kept, keyed by their SQL text,
 * the least recently used one dropped when the cache is full: the daemons run
 * a few dozen distinct statements, each many times (docs/benchmarks.md).
 */
#define STMT_CACHE_MAX 64

struct cached_stmt {
	char *sql;	    /* NULL: a free slot */
	sqlite3_stmt *stmt; /* SQLite */
	char name[16];	    /* PostgreSQL: the prepared statement's name */
	unsigned long used; /* the cache's clock when last used */
};

struct store {
	enum store_kind kind;
	sqlite3 *db;
	PGconn *pg;
	struct writer_gate *gate; /* SQLite: this process's writers of the file take turns */
	bool gate_held;		  /* for the open transaction */
	bool in_tx;
	bool tx_failed;	   /* a statement failed inside the open transaction */
	unsigned tx_depth; /* transactions begun inside the open one (they join it) */
	enum store_errkind last_err;
	/* PostgreSQL: reconnection attempts after the connection broke */
	struct backoff reconnect;
	struct timespec next_reconnect; /* CLOCK_MONOTONIC; zero: try at once */
	struct cached_stmt cache[STMT_CACHE_MAX];
	unsigned long clock;
	unsigned long pg_names; /* prepared statements named so far on this connection */
};

struct store_result {
	size_t rows, cols;
	long changes;
	PGresult *pg;  /* PostgreSQL: values read from here */
	char **values; /* SQLite: rows*cols strings, NULL for SQL NULL */
};

#define BUSY_TIMEOUT_MS 5000
/* A fixed key for pg_advisory_lock: serialises migrations across processes. */
#define MIGRATION_LOCK_KEY "7262137451"

/*
 * The first words of a statement, for error messages: enough to say which
 * statement failed ("INSERT INTO devices"), never the values it carries.
 */
static void
statement_words(const char *sql, char *out, size_t outlen)
{
	size_t n = 0, words = 0;
	bool in_space = true;

	while (*sql != '\0' && isspace((unsigned char)*sql))
		sql++;
	for (; *sql != '\0' && n + 1 < outlen; sql++) {
		char c = *sql;

		if (c == '\'' || c == '$' || c == '(' || c == ';')
			break;
		if (isspace((unsigned char)c)) {
			if (!in_space && ++words == 3)
				break;
			in_space = true;
			c = ' ';
			if (n > 0 && out[n - 1] == ' ')
				continue;
		} else
			in_space = false;
		out[n++] = c;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

static int store_fail(struct store *st, enum store_errkind kind, const char *sql, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));

/* Records an error "BACKEND: FIRST WORDS: message" and the kind of failure. */
static int
store_fail(struct store *st, enum store_errkind kind, const char *sql, const char *fmt, ...)
{
	char words[64], msg[OR_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st->last_err = kind;
	if (st->in_tx)
		st->tx_failed = true;
	if (sql == NULL)
		return or_error("%s: %s", store_backend(st), msg);
	statement_words(sql, words, sizeof(words));
	return or_error("%s: %s: %s", store_backend(st), words, msg);
}

const char *
store_backend(const struct store *st)
{
	return st->kind == STORE_SQLITE ? "sqlite" : "postgresql";
}

enum store_errkind
store_last_error(const struct store *st)
{
	return st->last_err;
}

/* ---- SQLite ---- */

/* Runs pragmas or other fixed SQL that takes no parameters. */
static int
sqlite_exec_fixed(struct store *st, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		store_fail(st, STORE_ERR_OTHER, sql, "%s", err ? err : sqlite3_errmsg(st->db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/*
 * Opens (creating if needed) the database file; "sqlite::memory:" is a private
 * in-memory database (tests). The file is created 0600
 * before SQLite sees it because SQLite gives its WAL and shm files the
 * database file's mode, and the store holds hashed tokens and sealed secrets.
 */
static int
sqlite_open(struct store *st, const char *path)
{
	int fd;

	if (path[0] == '\0')
		return or_error("sqlite: the URL names no file (expected sqlite:/path/file.db)");
	if (strcmp(path, ":memory:") != 0) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd == -1)
			return or_error("sqlite: cannot open %s: %s", path, strerror(errno));
		close(fd);
	}
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		or_error("sqlite: cannot open %s: %s", path,
			 st->db ? sqlite3_errmsg(st->db) : "out of memory");
		return -1;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	/*
	 * WAL lets readers run beside the one writer; synchronous=NORMAL in WAL
	 * keeps the database consistent on power loss (the last commits may be
	 * lost) without an fsync per commit.
	 */
	if (sqlite_exec_fixed(st, "PRAGMA journal_mode=WAL") == -1 ||
	    sqlite_exec_fixed(st, "PRAGMA synchronous=NORMAL") == -1 ||
	    sqlite_exec_fixed(st, "PRAGMA foreign_keys=ON") == -1 ||
	    /*
	     * Pages read with pread, not through a mapping: whenever another connection
	     * of the file has written, SQLite drops its whole mapping and maps it again,
	     * and with a loop per core writing all the time that was a munmap (its TLB
	     * shootdown across the process's threads) and page faults about every other
	     * request (docs/benchmarks.md).
	     */
	    sqlite_exec_fixed(st, "PRAGMA mmap_size=0") == -1)
		return or_error_prefix("%s", path);
	st->gate = writer_gate_of(path);
	return 0;
}

/* Whether a SQLite error code is a constraint (the caller's input) or something else. */
static enum store_errkind
sqlite_errkind(int rc)
{
	return (rc & 0xff) == SQLITE_CONSTRAINT ? STORE_ERR_CONSTRAINT : STORE_ERR_OTHER;
}

/*
 * Checks that the statement's placeholders are exactly $1..$n and binds them
 * by name. A value that is a canonical decimal integer is bound as an integer,
 * as PostgreSQL would infer it for "LIMIT $1" or "$1 + 1"; in a TEXT column
 * SQLite's affinity turns it back into the same text.
 */
static int
sqlite_bind(struct store *st, sqlite3_stmt *stmt, const char *sql, const char *const *params,
	    size_t n)
{
	int count = sqlite3_bind_parameter_count(stmt);

	for (int i = 1; i <= count; i++) {
		const char *name = sqlite3_bind_parameter_name(stmt, i);
		char *end;
		unsigned long k;

		if (name == NULL || name[0] != '$' || !isdigit((unsigned char)name[1]))
			return store_fail(st, STORE_ERR_OTHER, sql,
					  "placeholder %s is not of the form $N",
					  name ? name : "?");
		errno = 0;
		k = strtoul(name + 1, &end, 10);
		if (*end != '\0' || errno != 0 || k < 1 || k > n)
			return store_fail(st, STORE_ERR_OTHER, sql,
					  "placeholder %s has no parameter (%zu given)", name, n);
	}
	for (size_t k = 1; k <= n; k++) {
		char name[24];
		int idx, rc;
		const char *v = params[k - 1];

		snprintf(name, sizeof(name), "$%zu", k);
		idx = sqlite3_bind_parameter_index(stmt, name);
		if (idx == 0)
			return store_fail(st, STORE_ERR_OTHER, sql,
					  "parameter $%zu is not used by the statement", k);
		if (v == NULL) {
			rc = sqlite3_bind_null(stmt, idx);
		} else {
			char *end;
			long long iv;

			errno = 0;
			iv = strtoll(v, &end, 10);
			char canon[32];
			snprintf(canon, sizeof(canon), "%lld", iv);
			if (v[0] != '\0' && *end == '\0' && errno == 0 && strcmp(canon, v) == 0)
				rc = sqlite3_bind_int64(stmt, idx, iv);
			else
				rc = sqlite3_bind_text(stmt, idx, v, -1, SQLITE_TRANSIENT);
		}
		if (rc != SQLITE_OK)
			return store_fail(st, STORE_ERR_OTHER, sql, "cannot bind $%zu: %s", k,
					  sqlite3_errstr(rc));
	}
	return 0;
}

/* Appends one row of the statement's current result to res. */
static int
sqlite_take_row(struct store_result *res, sqlite3_stmt *stmt, size_t *cap)
{
	if ((res->rows + 1) * res->cols > *cap) {
		size_t ncap = *cap ? *cap * 2 : res->cols * 8;
		char **nv = realloc(res->values, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		res->values = nv;
		*cap = ncap;
	}
	for (size_t c = 0; c < res->cols; c++) {
		char **slot = &res->values[res->rows * res->cols + c];
		const unsigned char *text;

		*slot = NULL;
		if (sqlite3_column_type(stmt, (int)c) == SQLITE_NULL)
			continue;
		text = sqlite3_column_text(stmt, (int)c);
		if (text == NULL || (*slot = strdup((const char *)text)) == NULL) {
			/* keep the row count consistent for store_result_free */
			for (size_t j = c + 1; j < res->cols; j++)
				res->values[res->rows * res->cols + j] = NULL;
			res->rows++;
			return -1;
		}
	}
	res->rows++;
	return 0;
}

/* The cached entry for sql, or NULL; a hit becomes the most recently used. */
static struct cached_stmt *
cache_find(struct store *st, const char *sql)
{
	for (size_t i = 0; i < STMT_CACHE_MAX; i++) {
		struct cached_stmt *c = &st->cache[i];
		if (c->sql != NULL && strcmp(c->sql, sql) == 0) {
			c->used = ++st->clock;
			return c;
		}
	}
	return NULL;
}

/* Forgets one entry; the SQLite statement is finalized (PostgreSQL's: pg_forget). */
static void
cache_drop(struct cached_stmt *c)
{
	if (c->stmt != NULL)
		sqlite3_finalize(c->stmt);
	free(c->sql);
	*c = (struct cached_stmt){0};
}

/* Forgets every cached statement (a reset connection lost its prepared statements). */
static void
cache_clear(struct store *st)
{
	for (size_t i = 0; i < STMT_CACHE_MAX; i++)
		cache_drop(&st->cache[i]);
}

/* A free slot, or the least recently used one (the caller releases what it held). */
static struct cached_stmt *
cache_victim(struct store *st)
{
	struct cached_stmt *v = &st->cache[0];

	for (size_t i = 0; i < STMT_CACHE_MAX; i++) {
		if (st->cache[i].sql == NULL)
			return &st->cache[i];
		if (st->cache[i].used < v->used)
			v = &st->cache[i];
	}
	return v;
}

/*
 * The prepared statement for sql: from the cache, or prepared now (checked to
 * be one statement) and cached. NULL with the failure recorded.
 */
static sqlite3_stmt *
sqlite_statement(struct store *st, const char *sql)
{
	struct cached_stmt *c = cache_find(st, sql);
	sqlite3_stmt *stmt = NULL;
	const char *tail = NULL;
	char *copy;
	int rc;

	if (c != NULL)
		return c->stmt;
	rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
	if (rc != SQLITE_OK) {
		store_fail(st, STORE_ERR_OTHER, sql, "%s", sqlite3_errmsg(st->db));
		goto fail;
	}
	if (stmt == NULL) {
		store_fail(st, STORE_ERR_OTHER, sql, "no statement");
		goto fail;
	}
	while (tail != NULL && isspace((unsigned char)*tail))
		tail++;
	if (tail != NULL && *tail != '\0' && strcmp(tail, ";") != 0) {
		store_fail(st, STORE_ERR_OTHER, sql, "more than one statement");
		goto fail;
	}
	if ((copy = strdup(sql)) == NULL) {
		store_fail(st, STORE_ERR_OTHER, sql, "out of memory");
		goto fail;
	}
	c = cache_victim(st);
	cache_drop(c);
	*c = (struct cached_stmt){.sql = copy, .stmt = stmt, .used = ++st->clock};
	return stmt;
fail:
	sqlite3_finalize(stmt);
	return NULL;
}

/* Prepares (or takes from the cache), binds and steps one statement, copying rows into res. */
static int
sqlite_exec(struct store *st, const char *sql, const char *const *params, size_t n,
	    struct store_result *res)
{
	sqlite3_stmt *stmt;
	sqlite3_int64 before;
	size_t cap = 0;
	int rc, ret = -1;

	if ((stmt = sqlite_statement(st, sql)) == NULL)
		return -1;
	if (sqlite_bind(st, stmt, sql, params, n) == -1)
		goto out;
	before = sqlite3_total_changes64(st->db);
	rc = sqlite3_step(stmt);
	/* after the first step: a cached statement is prepared again there if the schema changed */
	res->cols = (size_t)sqlite3_column_count(stmt);
	for (; rc == SQLITE_ROW; rc = sqlite3_step(stmt)) {
		if (res->cols > 0 && sqlite_take_row(res, stmt, &cap) == -1) {
			store_fail(st, STORE_ERR_OTHER, sql, "out of memory");
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		store_fail(st, sqlite_errkind(sqlite3_extended_errcode(st->db)), sql, "%s",
			   sqlite3_errmsg(st->db));
		goto out;
	}
	res->changes =
		sqlite3_total_changes64(st->db) != before ? (long)sqlite3_changes64(st->db) : 0;
	ret = 0;
out:
	/* back to the start for its next use; no bound value is kept */
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return ret;
}

/* Runs a script of several statements without parameters (migrations). */
static int
sqlite_exec_script(struct store *st, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &err);

	if (rc != SQLITE_OK) {
		store_fail(st, sqlite_errkind(sqlite3_extended_errcode(st->db)), sql, "%s",
			   err ? err : sqlite3_errmsg(st->db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/* ---- PostgreSQL ---- */

/* libpq prints notices (e.g. "relation already exists, skipping") to stderr. */
static void
pg_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Connects with libpq; the error never repeats the connection string. */
static int
pg_open(struct store *st, const char *conninfo)
{
	st->pg = PQconnectdb(conninfo);
	if (st->pg == NULL)
		return or_error("postgresql: out of memory");
	if (PQstatus(st->pg) != CONNECTION_OK) {
		/* libpq's message names host and port, never the password */
		char msg[OR_ERRMSG_MAX];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(st->pg));
		msg[strcspn(msg, "\n")] = '\0';
		return or_error("postgresql: cannot connect: %s", msg);
	}
	PQsetNoticeProcessor(st->pg, pg_quiet, NULL);
	return 0;
}

/*
 * Reports a failed PGresult. Only the primary message and SQLSTATE are used:
 * the DETAIL of a unique violation repeats the key's value, and the primary
 * message of a data exception (class 22) quotes the offending input, so those
 * are replaced by a generic sentence.
 */
static int
pg_fail(struct store *st, const char *sql, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	enum store_errkind kind = STORE_ERR_OTHER;
	char msg[OR_ERRMSG_MAX];

	if (state != NULL && strncmp(state, "23", 2) == 0)
		kind = STORE_ERR_CONSTRAINT;
	if (state != NULL && strncmp(state, "22", 2) == 0)
		primary = "a parameter has a value of the wrong type or out of range";
	if (primary == NULL) {
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(st->pg));
		msg[strcspn(msg, "\n")] = '\0';
		primary = msg;
	}
	if (state != NULL)
		return store_fail(st, kind, sql, "%s (SQLSTATE %s)", primary, state);
	return store_fail(st, kind, sql, "%s", primary);
}

/*
 * An idle connection has nothing to read unless the server spoke on its own: a restart or a
 * failover sends a FATAL message and closes it. Reading that now marks the connection broken
 * before a statement is sent on it, so the statement goes on a new connection instead of
 * failing (never after sending: a statement whose answer was lost may have been applied).
 */
static void
pg_notice_server_gone(struct store *st)
{
	struct pollfd p = {.fd = PQsocket(st->pg), .events = POLLIN};

	/* the FATAL message comes first, the end of the stream after it: read until both are in */
	for (int reads = 0; reads < 4 && p.fd >= 0 && poll(&p, 1, 0) > 0; reads++)
		if (PQconsumeInput(st->pg) == 0 || PQstatus(st->pg) != CONNECTION_OK)
			break;
}

/* Milliseconds from a to b on CLOCK_MONOTONIC (negative when b is earlier). */
static long long
ms_between(const struct timespec *a, const struct timespec *b)
{
	return (long long)(b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

/*
 * A dropped connection is reopened before the next statement, never in the middle of a
 * transaction (its work is gone with the connection). With a multi-host conninfo and
 * target_session_attrs=read-write, libpq finds the primary again after a failover. While the
 * server cannot be reached, attempts are spaced with backoff (100 ms doubling to 5 s, with
 * jitter) and statements in between fail at once rather than each waiting for a connect.
 */
static int
pg_ensure_connected(struct store *st, const char *sql)
{
	struct timespec now;
	long long wait_ms;

	if (PQstatus(st->pg) == CONNECTION_OK && !st->in_tx)
		pg_notice_server_gone(st);
	if (PQstatus(st->pg) == CONNECTION_OK)
		return 0;
	if (st->in_tx)
		return store_fail(st, STORE_ERR_OTHER, sql, "connection lost inside a transaction");
	clock_gettime(CLOCK_MONOTONIC, &now);
	wait_ms = ms_between(&now, &st->next_reconnect);
	if (st->next_reconnect.tv_sec != 0 && wait_ms > 0)
		return store_fail(st, STORE_ERR_OTHER, sql,
				  "connection lost; next attempt to reconnect in %lld ms", wait_ms);
	PQreset(st->pg);
	cache_clear(st);
	if (PQstatus(st->pg) != CONNECTION_OK) {
		unsigned delay = backoff_next_ms(&st->reconnect, -1);

		st->next_reconnect = now;
		st->next_reconnect.tv_sec += delay / 1000;
		st->next_reconnect.tv_nsec += (long)(delay % 1000) * 1000000;
		if (st->next_reconnect.tv_nsec >= 1000000000) {
			st->next_reconnect.tv_sec++;
			st->next_reconnect.tv_nsec -= 1000000000;
		}
		return store_fail(st, STORE_ERR_OTHER, sql, "connection lost and not regained");
	}
	backoff_reset(&st->reconnect);
	st->next_reconnect = (struct timespec){0};
	PQsetNoticeProcessor(st->pg, pg_quiet, NULL);
	return 0;
}

/*
 * The name of sql's prepared statement on this connection: from the cache, or
 * PQprepare'd now (the least recently used one deallocated when the cache is
 * full). NULL with the failure recorded.
 */
static const char *
pg_statement(struct store *st, const char *sql, size_t n)
{
	struct cached_stmt *c = cache_find(st, sql);
	char name[16], *copy;
	PGresult *r;

	if (c != NULL)
		return c->name;
	snprintf(name, sizeof(name), "or%lu", ++st->pg_names);
	r = PQprepare(st->pg, name, sql, (int)n, NULL);
	if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
		pg_fail(st, sql, r);
		PQclear(r);
		return NULL;
	}
	PQclear(r);
	if ((copy = strdup(sql)) == NULL) {
		store_fail(st, STORE_ERR_OTHER, sql, "out of memory");
		return NULL;
	}
	c = cache_victim(st);
	if (c->sql != NULL) {
		char drop[32];
		snprintf(drop, sizeof(drop), "DEALLOCATE %s", c->name);
		PQclear(PQexec(st->pg, drop));
	}
	cache_drop(c);
	*c = (struct cached_stmt){.sql = copy, .used = ++st->clock};
	snprintf(c->name, sizeof(c->name), "%s", name);
	return c->name;
}

/* Whether r failed because the statement's result columns changed since it was prepared. */
static bool
pg_plan_changed(const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	return state != NULL && strcmp(state, "0A000") == 0;
}

/* Deallocates sql's prepared statement and forgets it. */
static void
pg_forget(struct store *st, const char *sql)
{
	struct cached_stmt *c = cache_find(st, sql);
	char drop[32];

	if (c == NULL)
		return;
	snprintf(drop, sizeof(drop), "DEALLOCATE %s", c->name);
	PQclear(PQexec(st->pg, drop));
	cache_drop(c);
}

/* One statement, prepared once per connection: text parameters, text results. */
static int
pg_exec(struct store *st, const char *sql, const char *const *params, size_t n,
	struct store_result *res)
{
	PGresult *r;
	ExecStatusType status;
	const char *name;

	if (n > 65535)
		return store_fail(st, STORE_ERR_OTHER, sql, "too many parameters");
	if (pg_ensure_connected(st, sql) == -1)
		return -1;
	if ((name = pg_statement(st, sql, n)) == NULL)
		return -1;
	r = PQexecPrepared(st->pg, name, (int)n, params, NULL, NULL, 0);
	status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (status == PGRES_FATAL_ERROR && !st->in_tx && pg_plan_changed(r)) {
		/* a table changed under a cached SELECT *: prepare it again, once */
		PQclear(r);
		pg_forget(st, sql);
		if ((name = pg_statement(st, sql, n)) == NULL)
			return -1;
		r = PQexecPrepared(st->pg, name, (int)n, params, NULL, NULL, 0);
		status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	}
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		pg_fail(st, sql, r);
		PQclear(r);
		return -1;
	}
	res->pg = r;
	res->rows = (size_t)PQntuples(r);
	res->cols = (size_t)PQnfields(r);
	res->changes = PQcmdTuples(r)[0] != '\0' ? atol(PQcmdTuples(r)) : 0;
	/* a SELECT reports its row count in cmdTuples; only DML counts as change */
	if (status == PGRES_TUPLES_OK && strncmp(PQcmdStatus(r), "SELECT", 6) == 0)
		res->changes = 0;
	return 0;
}

/* Runs a script of several statements without parameters (migrations). */
static int
pg_exec_script(struct store *st, const char *sql)
{
	PGresult *r;
	ExecStatusType status;

	if (pg_ensure_connected(st, sql) == -1)
		return -1;
	r = PQexec(st->pg, sql);
	status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		pg_fail(st, sql, r);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

/* ---- common ---- */

/* Picks the backend from the URL form and connects; never echoes the URL. */
int
store_open(const char *url, struct store **out)
{
	struct store *st;
	int rc;

	*out = NULL;
	if (url == NULL || url[0] == '\0')
		return or_error("store: no database URL given");
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return or_error("store: out of memory");
	if (strncmp(url, "sqlite:", 7) == 0) {
		st->kind = STORE_SQLITE;
		rc = sqlite_open(st, url + 7);
	} else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0 ||
		   strchr(url, '=') != NULL) {
		st->kind = STORE_POSTGRES;
		st->reconnect = (struct backoff){.base_ms = 100, .cap_ms = 5000};
		rc = pg_open(st, url);
	} else {
		/* the URL itself is not repeated: it may carry a password */
		rc = or_error("store: unrecognised database URL (expected sqlite:/path/file.db, "
			      "postgresql://... or a key=value conninfo)");
	}
	if (rc == -1) {
		store_close(st);
		return -1;
	}
	*out = st;
	return 0;
}

/* Opens the writers' gate the open transaction took, if it took one. */
static void
gate_release(struct store *st)
{
	if (st->gate_held)
		writer_gate_leave(st->gate);
	st->gate_held = false;
}

/* Closes the connection (a transaction left open is rolled back by SQLite); NULL is fine. */
void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	cache_clear(st);
	if (st->db != NULL)
		sqlite3_close_v2(st->db);
	if (st->pg != NULL)
		PQfinish(st->pg);
	gate_release(st);
	free(st);
}

/* One statement; refused while the open transaction has failed. */
int
store_exec(struct store *st, const char *sql, const char *const *params, size_t n_params,
	   struct store_result **res)
{
	struct store_result *r;
	int rc;

	if (res != NULL)
		*res = NULL;
	st->last_err = STORE_ERR_NONE;
	if (st->in_tx && st->tx_failed)
		return store_fail(st, STORE_ERR_OTHER, sql,
				  "the transaction failed earlier; roll it back");
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return store_fail(st, STORE_ERR_OTHER, sql, "out of memory");
	if (st->kind == STORE_SQLITE)
		rc = sqlite_exec(st, sql, params, n_params, r);
	else
		rc = pg_exec(st, sql, params, n_params, r);
	if (rc == -1 || res == NULL) {
		store_result_free(r);
		return rc;
	}
	*res = r;
	return 0;
}

size_t
store_rows(const struct store_result *r)
{
	return r ? r->rows : 0;
}

size_t
store_cols(const struct store_result *r)
{
	return r ? r->cols : 0;
}

/* The text of a value, NULL for SQL NULL or outside the result. */
const char *
store_value(const struct store_result *r, size_t row, size_t col)
{
	if (r == NULL || row >= r->rows || col >= r->cols)
		return NULL;
	if (r->pg != NULL) {
		if (PQgetisnull(r->pg, (int)row, (int)col))
			return NULL;
		return PQgetvalue(r->pg, (int)row, (int)col);
	}
	return r->values[row * r->cols + col];
}

long
store_changes(const struct store_result *r)
{
	return r ? r->changes : 0;
}

/* Frees a result; NULL is fine. */
void
store_result_free(struct store_result *r)
{
	if (r == NULL)
		return;
	if (r->pg != NULL)
		PQclear(r->pg);
	if (r->values != NULL) {
		for (size_t i = 0; i < r->rows * r->cols; i++)
			free(r->values[i]);
		free(r->values);
	}
	free(r);
}

/* Runs BEGIN/COMMIT/ROLLBACK outside the transaction bookkeeping. */
static int
tx_statement(struct store *st, const char *sql)
{
	struct store_result r = {0};
	int rc;

	if (st->kind == STORE_SQLITE) {
		rc = sqlite_exec(st, sql, NULL, 0, &r);
		free(r.values);
	} else {
		rc = pg_exec(st, sql, NULL, 0, &r);
		PQclear(r.pg);
	}
	return rc;
}

/* Opens a transaction (no nesting). */
int
store_begin(struct store *st)
{
	st->last_err = STORE_ERR_NONE;
	/* A transaction begun inside another joins it: both commit, or neither. */
	if (st->in_tx) {
		st->tx_depth++;
		return 0;
	}
	/* This process's writers wait at the gate, woken when it opens (writer_gate.h). */
	if (st->gate != NULL) {
		if (writer_gate_enter(st->gate, BUSY_TIMEOUT_MS) == -1)
			return store_fail(st, STORE_ERR_OTHER, NULL, "%s", or_errmsg());
		st->gate_held = true;
	}
	/* IMMEDIATE takes SQLite's write lock now, under the busy timeout, rather
	 * than failing with SQLITE_BUSY at the first write of the transaction. */
	if (tx_statement(st, st->kind == STORE_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN") == -1) {
		gate_release(st);
		return -1;
	}
	st->in_tx = true;
	st->tx_failed = false;
	return 0;
}

/* Commits; a failed transaction or failed COMMIT is rolled back. */
int
store_commit(struct store *st)
{
	st->last_err = STORE_ERR_NONE;
	if (!st->in_tx)
		return store_fail(st, STORE_ERR_OTHER, NULL, "commit without a transaction");
	if (st->tx_depth > 0) {
		st->tx_depth--;
		return st->tx_failed
			       ? or_error("%s: the transaction failed earlier", store_backend(st))
			       : 0;
	}
	if (st->tx_failed) {
		store_rollback(st);
		return store_fail(st, STORE_ERR_OTHER, NULL,
				  "the transaction failed earlier and was rolled back");
	}
	if (tx_statement(st, "COMMIT") == -1) {
		enum store_errkind kind = st->last_err;
		char msg[OR_ERRMSG_MAX];

		/* a failed COMMIT (deferred constraint, busy) leaves nothing applied */
		snprintf(msg, sizeof(msg), "%s", or_errmsg());
		st->tx_failed = false;
		store_rollback(st);
		st->last_err = kind;
		return or_error("%s", msg);
	}
	st->in_tx = false;
	gate_release(st);
	return 0;
}

/* See store.h. */
bool
store_in_transaction(const struct store *st)
{
	return st->in_tx;
}

/* Rolls back and forgets a failed state; the store is usable again. */
int
store_rollback(struct store *st)
{
	int rc;

	if (!st->in_tx)
		return store_fail(st, STORE_ERR_OTHER, NULL, "rollback without a transaction");
	/* An inner transaction's rollback dooms the one it joined. */
	if (st->tx_depth > 0) {
		st->tx_depth--;
		st->tx_failed = true;
		return 0;
	}
	st->in_tx = false;
	st->tx_failed = false;
	rc = tx_statement(st, "ROLLBACK");
	/* SQLite may already have rolled back (e.g. after SQLITE_FULL) */
	if (rc == -1 && st->kind == STORE_SQLITE && sqlite3_get_autocommit(st->db))
		rc = 0;
	gate_release(st);
	return rc;
}

/* ---- migrations ---- */

/* Highest applied version of the component (schema_migrations must exist). */
int
store_schema_version(struct store *st, const char *component, int *version)
{
	struct store_result *r = NULL;
	const char *params[1] = {component};
	const char *v;

	*version = 0;
	if (store_exec(st, "SELECT MAX(version) FROM schema_migrations WHERE component = $1",
		       params, 1, &r) == -1)
		return -1;
	v = store_value(r, 0, 0);
	if (v != NULL)
		*version = atoi(v);
	store_result_free(r);
	return 0;
}

/* Runs several parameterless statements (a migration) on either backend. */
static int
exec_script(struct store *st, const char *sql)
{
	if (st->kind == STORE_SQLITE)
		return sqlite_exec_script(st, sql);
	return pg_exec_script(st, sql);
}

/* Applies one migration in its own transaction unless another process did. */
static int
apply_migration(struct store *st, const char *component, const struct store_migration *m)
{
	const char *sql = st->kind == STORE_SQLITE ? m->sqlite_sql : m->postgres_sql;
	char vtext[16], now[32], msg[OR_ERRMSG_MAX];
	const char *params[3] = {component, vtext, now};
	time_t t = time(NULL);
	struct tm tm;
	int current;

	if (sql == NULL)
		sql = m->sql;
	snprintf(vtext, sizeof(vtext), "%d", m->version);
	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (store_begin(st) == -1)
		return -1;
	/* read again under the lock: another process may have just applied it */
	if (store_schema_version(st, component, &current) == -1)
		goto fail;
	if (current >= m->version)
		return store_commit(st);
	if (exec_script(st, sql) == -1)
		goto fail;
	if (store_exec(st,
		       "INSERT INTO schema_migrations (component, version, applied_at) "
		       "VALUES ($1, $2, $3)",
		       params, 3, NULL) == -1)
		goto fail;
	if (store_commit(st) == -1)
		return or_error_prefix("migration %s version %d", component, m->version);
	return 0;
fail:
	or_error_prefix("migration %s version %d", component, m->version);
	snprintf(msg, sizeof(msg), "%s", or_errmsg());
	store_rollback(st);
	return or_error("%s", msg);
}

/* Checks the list, serialises with other migrators, refuses a newer database,
 * applies what is missing. */
int
store_migrate(struct store *st, const char *component, const struct store_migration *m, size_t n)
{
	int current, newest = 0, ret = -1;
	bool locked = false;

	for (size_t i = 0; i < n; i++) {
		bool has_both = m[i].sqlite_sql != NULL && m[i].postgres_sql != NULL;

		if (m[i].version <= newest)
			return or_error("store: migrations of %s must have increasing positive "
					"versions (entry %zu has %d)",
					component, i, m[i].version);
		if (m[i].sql == NULL && !has_both)
			return or_error("store: migration %s version %d gives neither sql nor "
					"both sqlite_sql and postgres_sql",
					component, m[i].version);
		newest = m[i].version;
	}
	if (st->in_tx)
		return or_error("store: cannot migrate inside a transaction");
	if (st->kind == STORE_POSTGRES) {
		if (exec_script(st, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")") == -1)
			return -1;
		locked = true;
	}
	if (exec_script(st, "CREATE TABLE IF NOT EXISTS schema_migrations ("
			    "component TEXT NOT NULL, version INTEGER NOT NULL, "
			    "applied_at TEXT NOT NULL, PRIMARY KEY (component, version))") == -1)
		goto out;
	if (store_schema_version(st, component, &current) == -1)
		goto out;
	if (current > newest) {
		or_error("store: the database schema of %s is at version %d, newer than this "
			 "program knows (%d); refusing to use it: upgrade the program",
			 component, current, newest);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (m[i].version <= current)
			continue;
		if (apply_migration(st, component, &m[i]) == -1)
			goto out;
	}
	ret = 0;
out:
	if (locked) {
		char msg[OR_ERRMSG_MAX];

		snprintf(msg, sizeof(msg), "%s", or_errmsg());
		exec_script(st, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")");
		if (ret == -1)
			or_error("%s", msg);
	}
	return ret;
}
