/*
 * lib/store.h on a real database: a fresh SQLite file per test by default, or
 * the database named by ONRAMP_TEST_STORE_URL (the integration tests run this
 * program against a throw-away PostgreSQL). Every check is the same on both
 * backends; each test drops and creates its own tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "server/store.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
	char dir[PATH_MAX];
	char url[PATH_MAX + 16];
	struct store *st;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *env = getenv("ONRAMP_TEST_STORE_URL");

	assert_non_null(f);
	if (env != NULL && env[0] != '\0') {
		snprintf(f->url, sizeof(f->url), "%s", env);
	} else {
		snprintf(f->dir, sizeof(f->dir), "/tmp/onramp-store-XXXXXX");
		assert_non_null(mkdtemp(f->dir));
		snprintf(f->url, sizeof(f->url), "sqlite:%s/test.db", f->dir);
	}
	if (store_open(f->url, &f->st) == -1)
		fail_msg("store_open: %s", or_errmsg());
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 32];

	store_close(f->st);
	if (f->dir[0] != '\0') {
		static const char *const files[] = {"test.db", "test.db-wal", "test.db-shm"};

		for (size_t i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
			unlink(path);
		}
		rmdir(f->dir);
	}
	free(f);
	return 0;
}

static bool
is_sqlite(struct fixture *f)
{
	return strcmp(store_backend(f->st), "sqlite") == 0;
}

/* Runs SQL that must succeed. */
static void
ok(struct store *st, const char *sql, const char *const *p, size_t n)
{
	if (store_exec(st, sql, p, n, NULL) == -1)
		fail_msg("%s: %s", sql, or_errmsg());
}

/* Runs a one-value query and returns its value as a malloc'd string (or NULL). */
static char *
one(struct store *st, const char *sql, const char *const *p, size_t n)
{
	struct store_result *r;
	char *v;

	if (store_exec(st, sql, p, n, &r) == -1)
		fail_msg("%s: %s", sql, or_errmsg());
	assert_int_equal(store_rows(r), 1);
	v = store_value(r, 0, 0) ? strdup(store_value(r, 0, 0)) : NULL;
	store_result_free(r);
	return v;
}

static void
assert_one(struct store *st, const char *sql, const char *const *p, size_t n, const char *expected)
{
	char *v = one(st, sql, p, n);

	if (expected == NULL)
		assert_null(v);
	else
		assert_string_equal(v, expected);
	free(v);
}

/* Generated keys are the one thing spelled differently by the two backends. */
static void
make_people(struct store *st)
{
	bool lite = strcmp(store_backend(st), "sqlite") == 0;

	ok(st, "DROP TABLE IF EXISTS pets", NULL, 0);
	ok(st, "DROP TABLE IF EXISTS people", NULL, 0);
	ok(st,
	   lite ? "CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, "
		  "name TEXT NOT NULL UNIQUE, note TEXT, CHECK (length(name) < 20))"
		: "CREATE TABLE people (id BIGSERIAL PRIMARY KEY, "
		  "name TEXT NOT NULL UNIQUE, note TEXT, CHECK (length(name) < 20))",
	   NULL, 0);
}

static void
test_crud(void **state)
{
	struct fixture *f = *state;
	struct store_result *r;
	const char *a[] = {"1", "alice", "first"}, *b[] = {"2", "bob", "second"};
	const char *upd[] = {"changed", "bob"}, *del[] = {"alice"};

	make_people(f->st);
	assert_int_equal(store_exec(f->st,
				    "INSERT INTO people (id, name, note) VALUES ($1, $2, $3)", a, 3,
				    &r),
			 0);
	assert_int_equal(store_changes(r), 1);
	assert_int_equal(store_rows(r), 0);
	store_result_free(r);
	ok(f->st, "INSERT INTO people (id, name, note) VALUES ($1, $2, $3)", b, 3);

	assert_int_equal(
		store_exec(f->st, "SELECT id, name, note FROM people ORDER BY id", NULL, 0, &r), 0);
	assert_int_equal(store_rows(r), 2);
	assert_int_equal(store_cols(r), 3);
	assert_int_equal(store_changes(r), 0);
	assert_string_equal(store_value(r, 0, 0), "1");
	assert_string_equal(store_value(r, 0, 1), "alice");
	assert_string_equal(store_value(r, 1, 2), "second");
	assert_null(store_value(r, 2, 0)); /* out of range */
	assert_null(store_value(r, 0, 3));
	store_result_free(r);

	assert_int_equal(
		store_exec(f->st, "UPDATE people SET note = $1 WHERE name = $2", upd, 2, &r), 0);
	assert_int_equal(store_changes(r), 1);
	store_result_free(r);
	assert_int_equal(
		store_exec(f->st, "UPDATE people SET note = 'x' WHERE id > 100", NULL, 0, &r), 0);
	assert_int_equal(store_changes(r), 0);
	store_result_free(r);
	assert_int_equal(store_exec(f->st, "DELETE FROM people WHERE name = $1", del, 1, &r), 0);
	assert_int_equal(store_changes(r), 1);
	store_result_free(r);
	assert_one(f->st, "SELECT COUNT(*) FROM people", NULL, 0, "1");
	assert_one(f->st, "SELECT note FROM people WHERE id = 2", NULL, 0, "changed");

	/* RETURNING gives the row and counts as a change on both */
	const char *c[] = {"carol"};
	assert_int_equal(store_exec(f->st,
				    "INSERT INTO people (id, name) VALUES (3, $1) RETURNING id", c,
				    1, &r),
			 0);
	assert_int_equal(store_rows(r), 1);
	assert_string_equal(store_value(r, 0, 0), "3");
	assert_int_equal(store_changes(r), 1);
	store_result_free(r);
}

static void
test_nulls(void **state)
{
	struct fixture *f = *state;
	const char *p[] = {"n1", NULL}, *q[] = {"n2", ""};

	make_people(f->st);
	ok(f->st, "INSERT INTO people (name, note) VALUES ($1, $2)", p, 2);
	ok(f->st, "INSERT INTO people (name, note) VALUES ($1, $2)", q, 2);
	assert_one(f->st, "SELECT note FROM people WHERE name = 'n1'", NULL, 0, NULL);
	assert_one(f->st, "SELECT note FROM people WHERE name = 'n2'", NULL, 0, "");
	assert_one(f->st, "SELECT COUNT(*) FROM people WHERE note IS NULL", NULL, 0, "1");
	assert_one(f->st, "SELECT NULL", NULL, 0, NULL);
}

static void
test_placeholders(void **state)
{
	struct fixture *f = *state;
	struct store_result *r;
	const char *two[] = {"a", "b"}, *lim[] = {"1"}, *zero[] = {"007"};
	char *v;

	/* reused, out of order, and a "$1" inside a string literal is text */
	assert_int_equal(store_exec(f->st, "SELECT $2 || $1 || $2, '$1'", two, 2, &r), 0);
	assert_string_equal(store_value(r, 0, 0), "bab");
	assert_string_equal(store_value(r, 0, 1), "$1");
	store_result_free(r);

	make_people(f->st);
	ok(f->st, "INSERT INTO people (name) VALUES ('x'), ('y')", NULL, 0);
	assert_int_equal(
		store_exec(f->st, "SELECT name FROM people ORDER BY name LIMIT $1", lim, 1, &r), 0);
	assert_int_equal(store_rows(r), 1);
	store_result_free(r);
	/* text that looks like a number keeps its form in a TEXT column */
	ok(f->st, "INSERT INTO people (name) VALUES ($1)", zero, 1);
	assert_one(f->st, "SELECT name FROM people WHERE name = $1", zero, 1, "007");
	assert_one(f->st, "SELECT COUNT(*) + $1 FROM people", lim, 1, "4");

	/* a placeholder without a parameter, and a parameter not used */
	assert_int_equal(store_exec(f->st, "SELECT $1, $2", lim, 1, NULL), -1);
	assert_int_equal(store_exec(f->st, "SELECT $1", two, 2, NULL), -1);
	/* one statement per call */
	assert_int_equal(store_exec(f->st, "SELECT 1; SELECT 2", NULL, 0, NULL), -1);
	v = one(f->st, "SELECT 1;", NULL, 0);
	assert_string_equal(v, "1");
	free(v);
}

static void
test_transactions(void **state)
{
	struct fixture *f = *state;
	const char *p[] = {"t1"}, *q[] = {"t2"}, *dup[] = {"t2"};

	make_people(f->st);
	/* A transaction begun inside another joins it: its rollback dooms both. */
	assert_int_equal(store_begin(f->st), 0);
	ok(f->st, "INSERT INTO people (name) VALUES ($1)", p, 1);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_rollback(f->st), 0);
	assert_int_equal(store_exec(f->st, "SELECT 1", NULL, 0, NULL), -1);
	assert_int_equal(store_commit(f->st), -1);
	assert_one(f->st, "SELECT COUNT(*) FROM people", NULL, 0, "0");
	/* ...and its commit leaves the decision to the outer one. */
	assert_int_equal(store_begin(f->st), 0);
	ok(f->st, "INSERT INTO people (name) VALUES ($1)", p, 1);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_rollback(f->st), 0);
	assert_one(f->st, "SELECT COUNT(*) FROM people", NULL, 0, "0");

	assert_int_equal(store_begin(f->st), 0);
	ok(f->st, "INSERT INTO people (name) VALUES ($1)", q, 1);
	assert_int_equal(store_commit(f->st), 0);
	assert_one(f->st, "SELECT COUNT(*) FROM people", NULL, 0, "1");

	assert_int_equal(store_commit(f->st), -1);
	assert_int_equal(store_rollback(f->st), -1);

	/* a failed statement fails the whole transaction on both backends */
	assert_int_equal(store_begin(f->st), 0);
	ok(f->st, "INSERT INTO people (name) VALUES ($1)", p, 1);
	assert_int_equal(store_exec(f->st, "INSERT INTO people (name) VALUES ($1)", dup, 1, NULL),
			 -1);
	assert_int_equal(store_exec(f->st, "SELECT 1", NULL, 0, NULL), -1);
	assert_non_null(strstr(or_errmsg(), "roll it back"));
	assert_int_equal(store_commit(f->st), -1);
	assert_one(f->st, "SELECT COUNT(*) FROM people", NULL, 0, "1");
	/* the store is usable again afterwards */
	assert_int_equal(store_begin(f->st), 0);
	ok(f->st, "INSERT INTO people (name) VALUES ($1)", p, 1);
	assert_int_equal(store_commit(f->st), 0);
	assert_one(f->st, "SELECT COUNT(*) FROM people", NULL, 0, "2");
}

/*
 * Statements are prepared once per connection and cached: more distinct
 * statements than the cache holds, twice over; bound values never carried to
 * the next use; a statement that failed is usable again; a table changed
 * under a cached SELECT * still answers with its new columns.
 */
static void
test_statement_cache(void **state)
{
	struct fixture *f = *state;
	const char *both[] = {"c1", "note"}, *nonote[] = {"c2", NULL}, *dup[] = {"c1", "x"};
	char sql[64], want[16];

	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < 150; i++) {
			snprintf(sql, sizeof(sql), "SELECT %d + 1", i);
			snprintf(want, sizeof(want), "%d", i + 1);
			assert_one(f->st, sql, NULL, 0, want);
		}
	}
	make_people(f->st);
	ok(f->st, "INSERT INTO people (name, note) VALUES ($1, $2)", both, 2);
	ok(f->st, "INSERT INTO people (name, note) VALUES ($1, $2)", nonote, 2);
	assert_one(f->st, "SELECT note FROM people WHERE name = $1", nonote, 1, NULL);
	assert_one(f->st, "SELECT note FROM people WHERE name = $1", both, 1, "note");
	assert_int_equal(
		store_exec(f->st, "INSERT INTO people (name, note) VALUES ($1, $2)", dup, 2, NULL),
		-1);
	assert_int_equal(store_last_error(f->st), STORE_ERR_CONSTRAINT);
	dup[0] = "c3";
	ok(f->st, "INSERT INTO people (name, note) VALUES ($1, $2)", dup, 2);
	assert_one(f->st, "SELECT COUNT(*) FROM people", NULL, 0, "3");

	struct store_result *r;
	assert_int_equal(store_exec(f->st, "SELECT * FROM people WHERE name = $1", both, 1, &r), 0);
	assert_int_equal(store_cols(r), 3);
	store_result_free(r);
	ok(f->st, "ALTER TABLE people ADD COLUMN extra TEXT", NULL, 0);
	if (store_exec(f->st, "SELECT * FROM people WHERE name = $1", both, 1, &r) == -1)
		fail_msg("after ALTER TABLE: %s", or_errmsg());
	assert_int_equal(store_cols(r), 4);
	store_result_free(r);
}

static const struct store_migration migs[] = {
	{1, "CREATE TABLE mig_a (id INTEGER PRIMARY KEY, v TEXT)", NULL, NULL},
	{2, NULL,
	 "CREATE TABLE mig_b (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT); "
	 "INSERT INTO mig_b (v) VALUES ('sqlite')",
	 "CREATE TABLE mig_b (id BIGSERIAL PRIMARY KEY, v TEXT); "
	 "INSERT INTO mig_b (v) VALUES ('postgresql')"},
	{5, "ALTER TABLE mig_a ADD COLUMN w TEXT", NULL, NULL},
};

static void
test_migrations(void **state)
{
	struct fixture *f = *state;
	int version;
	char *v;

	ok(f->st, "DROP TABLE IF EXISTS mig_a", NULL, 0);
	ok(f->st, "DROP TABLE IF EXISTS mig_b", NULL, 0);
	ok(f->st, "DROP TABLE IF EXISTS mig_c", NULL, 0);
	ok(f->st, "DROP TABLE IF EXISTS schema_migrations", NULL, 0);

	/* fresh: the first two */
	if (store_migrate(f->st, "test", migs, 2) == -1)
		fail_msg("migrate: %s", or_errmsg());
	assert_int_equal(store_schema_version(f->st, "test", &version), 0);
	assert_int_equal(version, 2);
	v = one(f->st, "SELECT v FROM mig_b", NULL, 0);
	assert_string_equal(v, store_backend(f->st));
	free(v);
	/* again: nothing to do, nothing changes */
	assert_int_equal(store_migrate(f->st, "test", migs, 2), 0);
	assert_one(f->st, "SELECT COUNT(*) FROM mig_b", NULL, 0, "1");
	/* a newer program adds version 5 */
	assert_int_equal(store_migrate(f->st, "test", migs, 3), 0);
	assert_int_equal(store_schema_version(f->st, "test", &version), 0);
	assert_int_equal(version, 5);
	ok(f->st, "INSERT INTO mig_a (id, v, w) VALUES (1, 'a', 'b')", NULL, 0);
	/* the older program is refused, with a clear message */
	assert_int_equal(store_migrate(f->st, "test", migs, 2), -1);
	assert_non_null(strstr(or_errmsg(), "newer than this program knows"));
	/* components are independent */
	assert_int_equal(store_schema_version(f->st, "other", &version), 0);
	assert_int_equal(version, 0);
	assert_one(f->st, "SELECT COUNT(*) FROM schema_migrations", NULL, 0, "3");
}

static void
test_migration_failure(void **state)
{
	struct fixture *f = *state;
	const struct store_migration bad[] = {
		{1, "CREATE TABLE mig_c (id INTEGER)", NULL, NULL},
		{2, "CREATE TABLE mig_d (id INTEGER); INSERT INTO no_such_table VALUES (1)", NULL,
		 NULL},
	};
	const struct store_migration unordered[] = {{2, "SELECT 1", NULL, NULL},
						    {1, "SELECT 1", NULL, NULL}};
	const struct store_migration half[] = {{1, NULL, "SELECT 1", NULL}};
	int version;
	struct store_result *r;

	ok(f->st, "DROP TABLE IF EXISTS mig_c", NULL, 0);
	ok(f->st, "DROP TABLE IF EXISTS mig_d", NULL, 0);
	ok(f->st, "DROP TABLE IF EXISTS schema_migrations", NULL, 0);
	assert_int_equal(store_migrate(f->st, "bad", bad, 2), -1);
	assert_non_null(strstr(or_errmsg(), "migration bad version 2"));
	/* version 1 stays applied, version 2 left nothing behind */
	assert_int_equal(store_schema_version(f->st, "bad", &version), 0);
	assert_int_equal(version, 1);
	assert_int_equal(store_exec(f->st, "SELECT COUNT(*) FROM mig_c", NULL, 0, &r), 0);
	store_result_free(r);
	assert_int_equal(store_exec(f->st, "SELECT COUNT(*) FROM mig_d", NULL, 0, NULL), -1);

	assert_int_equal(store_migrate(f->st, "x", unordered, 2), -1);
	assert_non_null(strstr(or_errmsg(), "increasing"));
	assert_int_equal(store_migrate(f->st, "x", half, 1), -1);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_migrate(f->st, "x", migs, 1), -1);
	assert_int_equal(store_rollback(f->st), 0);
}

struct migrator {
	const char *url;
	int rc;
	char err[OR_ERRMSG_MAX];
};

static const struct store_migration conc[] = {
	{1, "CREATE TABLE conc_a (id INTEGER)", NULL, NULL},
	{2, "INSERT INTO conc_a (id) VALUES (1)", NULL, NULL},
	{3, "INSERT INTO conc_a (id) VALUES (2)", NULL, NULL},
};

static void *
migrate_thread(void *arg)
{
	struct migrator *m = arg;
	struct store *st;

	m->rc = store_open(m->url, &st);
	if (m->rc == 0) {
		m->rc = store_migrate(st, "conc", conc, 3);
		store_close(st);
	}
	if (m->rc != 0)
		snprintf(m->err, sizeof(m->err), "%s", or_errmsg());
	return NULL;
}

/* Several daemons starting at once on one database: each migration once. */
static void
test_concurrent_migrations(void **state)
{
	struct fixture *f = *state;
	struct migrator m[4];
	pthread_t t[4];
	int version;

	ok(f->st, "DROP TABLE IF EXISTS conc_a", NULL, 0);
	ok(f->st, "DROP TABLE IF EXISTS schema_migrations", NULL, 0);
	for (int i = 0; i < 4; i++) {
		m[i].url = f->url;
		assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, &m[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		if (m[i].rc != 0)
			fail_msg("migrator %d: %s", i, m[i].err);
	}
	assert_int_equal(store_schema_version(f->st, "conc", &version), 0);
	assert_int_equal(version, 3);
	assert_one(f->st, "SELECT COUNT(*) FROM conc_a", NULL, 0, "2");
	assert_one(f->st, "SELECT COUNT(*) FROM schema_migrations WHERE component = 'conc'", NULL,
		   0, "3");
}

/* Waits until the backend with this pid has gone (its socket closed by its exit). */
static void
wait_backend_gone(struct store *other, const char *pid)
{
	const char *p[1] = {pid};

	for (int i = 0; i < 100; i++) {
		char *n = one(other, "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1", p, 1);
		bool gone = strcmp(n, "0") == 0;

		free(n);
		if (gone)
			break;
		usleep(20 * 1000);
	}
	usleep(50 * 1000); /* the process exits, closing the socket, after leaving the list */
}

/* PostgreSQL: a connection the server dropped while idle is noticed before the next
 * statement, which runs on a new connection; inside a transaction nothing is silently
 * reopened. */
static void
test_reconnect(void **state)
{
	struct fixture *f = *state;
	struct store *other;
	char *pid;
	const char *p[1];

	if (is_sqlite(f))
		return;
	if (store_open(f->url, &other) == -1)
		fail_msg("second store_open: %s", or_errmsg());
	pid = one(f->st, "SELECT pg_backend_pid()", NULL, 0);
	p[0] = pid;
	assert_one(other, "SELECT pg_terminate_backend($1)", p, 1, "t");
	wait_backend_gone(other, pid);
	free(pid);
	assert_one(f->st, "SELECT 1", NULL, 0, "1");

	assert_int_equal(store_begin(f->st), 0);
	pid = one(f->st, "SELECT pg_backend_pid()", NULL, 0);
	p[0] = pid;
	assert_one(other, "SELECT pg_terminate_backend($1)", p, 1, "t");
	free(pid);
	assert_int_equal(store_exec(f->st, "SELECT 1", NULL, 0, NULL), -1);
	assert_int_equal(store_exec(f->st, "SELECT 1", NULL, 0, NULL), -1);
	assert_int_equal(store_commit(f->st), -1);
	assert_one(f->st, "SELECT 1", NULL, 0, "1");
	store_close(other);
}

static void
test_two_connections(void **state)
{
	struct fixture *f = *state;
	struct store *other;
	const char *p[] = {"shared"};

	make_people(f->st);
	if (store_open(f->url, &other) == -1)
		fail_msg("second store_open: %s", or_errmsg());
	ok(f->st, "INSERT INTO people (name) VALUES ($1)", p, 1);
	assert_one(other, "SELECT name FROM people", NULL, 0, "shared");

	/* uncommitted work is invisible to the other connection until commit */
	assert_int_equal(store_begin(f->st), 0);
	ok(f->st, "DELETE FROM people", NULL, 0);
	assert_one(other, "SELECT COUNT(*) FROM people", NULL, 0, "1");
	assert_int_equal(store_commit(f->st), 0);
	assert_one(other, "SELECT COUNT(*) FROM people", NULL, 0, "0");

	/* and the other way round */
	ok(other, "INSERT INTO people (name) VALUES ($1)", p, 1);
	assert_one(f->st, "SELECT COUNT(*) FROM people", NULL, 0, "1");
	store_close(other);
}

static void
test_constraints(void **state)
{
	struct fixture *f = *state;
	const char *secret[] = {"s3cr3t-value-42"}, *longname[] = {"s3cr3t-value-42-but-too-long"};
	const char *orphan[] = {"99", "s3cr3t-value-43"};

	make_people(f->st);
	ok(f->st,
	   "CREATE TABLE pets (owner INTEGER NOT NULL REFERENCES people(id), name TEXT NOT NULL)",
	   NULL, 0);
	ok(f->st, "INSERT INTO people (id, name) VALUES (1, $1)", secret, 1);

	/* unique */
	assert_int_equal(
		store_exec(f->st, "INSERT INTO people (id, name) VALUES (2, $1)", secret, 1, NULL),
		-1);
	assert_int_equal(store_last_error(f->st), STORE_ERR_CONSTRAINT);
	assert_non_null(strstr(or_errmsg(), store_backend(f->st)));
	assert_non_null(strstr(or_errmsg(), "INSERT INTO people"));
	assert_null(strstr(or_errmsg(), "s3cr3t"));
	/* check */
	assert_int_equal(store_exec(f->st, "INSERT INTO people (id, name) VALUES (3, $1)", longname,
				    1, NULL),
			 -1);
	assert_int_equal(store_last_error(f->st), STORE_ERR_CONSTRAINT);
	assert_null(strstr(or_errmsg(), "s3cr3t"));
	/* foreign key (SQLite: PRAGMA foreign_keys is on) */
	assert_int_equal(store_exec(f->st, "INSERT INTO pets (owner, name) VALUES ($1, $2)", orphan,
				    2, NULL),
			 -1);
	assert_int_equal(store_last_error(f->st), STORE_ERR_CONSTRAINT);
	assert_null(strstr(or_errmsg(), "s3cr3t"));
	/* not null */
	assert_int_equal(store_exec(f->st, "INSERT INTO people (id) VALUES (4)", NULL, 0, NULL),
			 -1);
	assert_int_equal(store_last_error(f->st), STORE_ERR_CONSTRAINT);
	/* nothing changed */
	assert_one(f->st, "SELECT COUNT(*) FROM people", NULL, 0, "1");
	assert_one(f->st, "SELECT COUNT(*) FROM pets", NULL, 0, "0");
	/* a syntax error is not a constraint */
	assert_int_equal(store_exec(f->st, "SELEKT 1", NULL, 0, NULL), -1);
	assert_int_equal(store_last_error(f->st), STORE_ERR_OTHER);
	assert_int_equal(store_exec(f->st, "SELECT 1", NULL, 0, NULL), 0);
	assert_int_equal(store_last_error(f->st), STORE_ERR_NONE);
}

static void
test_no_values_in_errors(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"s3cr3t-not-a-number"};

	/* an INTEGER PRIMARY KEY refuses text on SQLite too ("datatype mismatch") */
	make_people(f->st);
	assert_int_equal(
		store_exec(f->st, "INSERT INTO people (id, name) VALUES ($1, 'x')", bad, 1, NULL),
		-1);
	assert_null(strstr(or_errmsg(), "s3cr3t"));
	assert_non_null(strstr(or_errmsg(), "INSERT INTO people"));
	assert_int_equal(strncmp(or_errmsg(), store_backend(f->st), strlen(store_backend(f->st))),
			 0);
}

static void
test_bad_urls(void **state)
{
	struct store *st = NULL;

	(void)state;
	assert_int_equal(store_open("mysql://user:pw@host/db", &st), -1);
	assert_null(st);
	assert_null(strstr(or_errmsg(), "pw@"));
	assert_int_equal(store_open("", &st), -1);
	/* an in-memory database works and leaves no file named ":memory:" */
	assert_int_equal(store_open("sqlite::memory:", &st), 0);
	assert_int_equal(store_exec(st, "SELECT 1", NULL, 0, NULL), 0);
	store_close(st);
	st = NULL;
	assert_int_equal(access(":memory:", F_OK), -1);
	assert_int_equal(store_open("sqlite:", &st), -1);
	assert_int_equal(store_open("sqlite:/nonexistent-onramp-dir/x.db", &st), -1);
	assert_non_null(strstr(or_errmsg(), "nonexistent-onramp-dir"));
	/* nothing listens on port 1; the message must not carry the password */
	assert_int_equal(
		store_open("postgresql://u:hunter2secret@127.0.0.1:1/db?connect_timeout=5", &st),
		-1);
	assert_non_null(strstr(or_errmsg(), "postgresql: cannot connect"));
	assert_null(strstr(or_errmsg(), "hunter2secret"));
	assert_int_equal(store_open("host=127.0.0.1 port=1 password=hunter2secret", &st), -1);
	assert_null(strstr(or_errmsg(), "hunter2secret"));
}

static void
test_sqlite_file(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 32];
	struct stat sb;

	if (!is_sqlite(f) || f->dir[0] == '\0')
		return; /* PostgreSQL, or a SQLite file this test did not create */
	snprintf(path, sizeof(path), "%s/test.db", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_one(f->st, "PRAGMA journal_mode", NULL, 0, "wal");
	assert_one(f->st, "PRAGMA foreign_keys", NULL, 0, "1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nulls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placeholders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statement_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_migrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_constraints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_values_in_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_urls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sqlite_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
