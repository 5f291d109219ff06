/*
 * Unit tests for lib/server/writer_gate.c: one gate per file whatever the
 * path's spelling, none for ":memory:"; a writer waiting at the gate enters
 * once the one before leaves (in that order), and gives up with an error
 * after its timeout when the gate stays closed; a gate entered twice by one
 * thread times out rather than hanging. Two SQLite connections of one file
 * in two threads, both writing in transactions, lose no write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "server/store.h"
#include "server/writer_gate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dir {
	char path[64];
	char file[96];
};

static int
setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));
	FILE *f;

	if (d == NULL)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/onramp-unit-XXXXXX");
	if (mkdtemp(d->path) == NULL)
		return -1;
	snprintf(d->file, sizeof(d->file), "%s/gate.db", d->path);
	if ((f = fopen(d->file, "w")) == NULL)
		return -1;
	fclose(f);
	*state = d;
	return 0;
}

static int
teardown(void **state)
{
	struct dir *d = *state;
	char wal[128];

	unlink(d->file);
	snprintf(wal, sizeof(wal), "%s-wal", d->file);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", d->file);
	unlink(wal);
	rmdir(d->path);
	free(d);
	return 0;
}

static void
one_gate_per_file(void **state)
{
	struct dir *d = *state;
	char other_spelling[128];

	snprintf(other_spelling, sizeof(other_spelling), "%s/./gate.db", d->path);
	assert_non_null(writer_gate_of(d->file));
	assert_ptr_equal(writer_gate_of(d->file), writer_gate_of(other_spelling));
	assert_null(writer_gate_of(":memory:"));
	assert_null(writer_gate_of("/nonexistent/onramp/gate.db"));
}

struct holder {
	struct writer_gate *gate;
	atomic_int step; /* 1: entered, 2: told to leave, 3: left */
};

static void *
hold_until_told(void *arg)
{
	struct holder *h = arg;

	if (writer_gate_enter(h->gate, 5000) != 0)
		return NULL;
	atomic_store(&h->step, 1);
	while (atomic_load(&h->step) != 2)
		usleep(1000);
	atomic_store(&h->step, 3);
	writer_gate_leave(h->gate);
	return NULL;
}

static void
the_next_writer_enters_after_the_one_before_leaves(void **state)
{
	struct dir *d = *state;
	struct holder h = {.gate = writer_gate_of(d->file)};
	pthread_t t;

	assert_non_null(h.gate);
	assert_int_equal(pthread_create(&t, NULL, hold_until_told, &h), 0);
	while (atomic_load(&h.step) != 1)
		usleep(1000);
	/* Closed: a short wait gives up and says why. */
	assert_int_equal(writer_gate_enter(h.gate, 50), -1);
	assert_non_null(strstr(or_errmsg(), "database is locked"));
	atomic_store(&h.step, 2);
	/* Open again once the holder leaves: entered, and only after it left. */
	assert_int_equal(writer_gate_enter(h.gate, 5000), 0);
	assert_int_equal(atomic_load(&h.step), 3);
	writer_gate_leave(h.gate);
	assert_int_equal(pthread_join(t, NULL), 0);
}

static void
entered_twice_by_one_thread_times_out(void **state)
{
	struct dir *d = *state;
	struct writer_gate *gate = writer_gate_of(d->file);

	assert_int_equal(writer_gate_enter(gate, 1000), 0);
	assert_int_equal(writer_gate_enter(gate, 50), -1);
	writer_gate_leave(gate);
	assert_int_equal(writer_gate_enter(gate, 50), 0);
	writer_gate_leave(gate);
}

struct writer {
	const char *url;
	int id, failures;
};

/* 200 transactions of two statements each on its own connection. */
static void *
write_many(void *arg)
{
	struct writer *w = arg;
	struct store *st;
	char id[16];

	if (store_open(w->url, &st) == -1) {
		w->failures = -1;
		return NULL;
	}
	snprintf(id, sizeof(id), "%d", w->id);
	for (int i = 0; i < 200; i++) {
		const char *params[1] = {id};

		if (store_begin(st) == -1 ||
		    store_exec(st, "INSERT INTO t (writer) VALUES ($1)", params, 1, NULL) == -1 ||
		    store_exec(st, "UPDATE n SET count = count + 1", NULL, 0, NULL) == -1 ||
		    store_commit(st) == -1)
			w->failures++;
		if (store_in_transaction(st))
			store_rollback(st);
	}
	store_close(st);
	return NULL;
}

static void
two_connections_in_two_threads_lose_no_write(void **state)
{
	struct dir *d = *state;
	char url[128];
	struct store *st;
	struct store_result *res;
	struct writer w[2];
	pthread_t t[2];

	snprintf(url, sizeof(url), "sqlite:%s", d->file);
	assert_int_equal(store_open(url, &st), 0);
	assert_int_equal(store_exec(st, "CREATE TABLE t (writer INTEGER)", NULL, 0, NULL), 0);
	assert_int_equal(store_exec(st, "CREATE TABLE n (count INTEGER)", NULL, 0, NULL), 0);
	assert_int_equal(store_exec(st, "INSERT INTO n (count) VALUES (0)", NULL, 0, NULL), 0);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct writer){.url = url, .id = i};
		assert_int_equal(pthread_create(&t[i], NULL, write_many, &w[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	assert_int_equal(store_exec(st, "SELECT count FROM n", NULL, 0, &res), 0);
	assert_string_equal(store_value(res, 0, 0), "400");
	store_result_free(res);
	assert_int_equal(store_exec(st, "SELECT COUNT(*) FROM t", NULL, 0, &res), 0);
	assert_string_equal(store_value(res, 0, 0), "400");
	store_result_free(res);
	store_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(one_gate_per_file, setup, teardown),
		cmocka_unit_test_setup_teardown(the_next_writer_enters_after_the_one_before_leaves,
						setup, teardown),
		cmocka_unit_test_setup_teardown(entered_twice_by_one_thread_times_out, setup,
						teardown),
		cmocka_unit_test_setup_teardown(two_connections_in_two_threads_lose_no_write, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
