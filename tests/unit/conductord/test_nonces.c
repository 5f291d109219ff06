/*
 * Unit tests for conductord/nonces.c: a nonce is used up once, by its own
 * subject on its own connection, before it expires; a wrong subject or
 * connection does not take it (and burns it); the last NONCES_MAX issued are
 * kept, an older one is forgotten; hellos on other connections do not evict a
 * connection's nonce before that; two threads taking one nonce: one wins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../conductord/nonces.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* Bytes that differ for every seed (the seed itself first). */
static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = i < 4 ? (uint8_t)(seed >> (8 * i)) : (uint8_t)(i * 7 + 1);
}

static void
used_once_by_its_subject_on_its_connection(void **state)
{
	struct nonces *t;
	uint8_t nonce[CONDUCTOR_NONCE_LEN], conn[NONCES_BINDING_LEN], other[NONCES_BINDING_LEN];

	(void)state;
	fill(nonce, sizeof(nonce), 1);
	fill(conn, sizeof(conn), 2);
	fill(other, sizeof(other), 3);
	assert_int_equal(nonces_new(&t), 0);
	assert_int_equal(nonces_put(t, nonce, "ASSET-1", conn, 1060), 0);
	assert_true(nonces_take(t, nonce, "ASSET-1", conn, 1000));
	assert_false(nonces_take(t, nonce, "ASSET-1", conn, 1000)); /* used */
	/* Another connection or subject does not take it, and burns it. */
	assert_int_equal(nonces_put(t, nonce, "ASSET-1", conn, 1060), 0);
	assert_false(nonces_take(t, nonce, "ASSET-1", other, 1000));
	assert_false(nonces_take(t, nonce, "ASSET-1", conn, 1000));
	assert_int_equal(nonces_put(t, nonce, "ASSET-1", conn, 1060), 0);
	assert_false(nonces_take(t, nonce, "peer:ASSET-1", conn, 1000));
	/* Expired: the second after its last valid one. */
	fill(nonce, sizeof(nonce), 4);
	assert_int_equal(nonces_put(t, nonce, "ASSET-1", conn, 1060), 0);
	assert_false(nonces_take(t, nonce, "ASSET-1", conn, 1061));
	fill(nonce, sizeof(nonce), 5);
	assert_int_equal(nonces_put(t, nonce, "ASSET-1", conn, 1060), 0);
	assert_true(nonces_take(t, nonce, "ASSET-1", conn, 1060));
	/* Never issued. */
	fill(nonce, sizeof(nonce), 6);
	assert_false(nonces_take(t, nonce, "ASSET-1", conn, 1000));
	nonces_free(t);
}

static void
a_flood_on_other_connections_evicts_only_past_the_ring(void **state)
{
	struct nonces *t;
	uint8_t mine[CONDUCTOR_NONCE_LEN], flood[CONDUCTOR_NONCE_LEN], conn[NONCES_BINDING_LEN],
		attacker[NONCES_BINDING_LEN];

	(void)state;
	fill(conn, sizeof(conn), 7);
	fill(attacker, sizeof(attacker), 8);
	assert_int_equal(nonces_new(&t), 0);
	fill(mine, sizeof(mine), 9);
	assert_int_equal(nonces_put(t, mine, "ASSET-1", conn, 1060), 0);
	for (unsigned i = 0; i < NONCES_MAX - 1; i++) {
		fill(flood, sizeof(flood), 100000 + i);
		assert_int_equal(nonces_put(t, flood, "ASSET-1", attacker, 1060), 0);
	}
	assert_true(nonces_take(t, mine, "ASSET-1", conn, 1000));
	/* One more than the ring holds: the oldest is forgotten. */
	assert_int_equal(nonces_put(t, mine, "ASSET-1", conn, 1060), 0);
	for (unsigned i = 0; i < NONCES_MAX; i++) {
		fill(flood, sizeof(flood), 200000 + i);
		assert_int_equal(nonces_put(t, flood, "ASSET-1", attacker, 1060), 0);
	}
	assert_false(nonces_take(t, mine, "ASSET-1", conn, 1000));
	nonces_free(t);
}

struct race {
	struct nonces *t;
	uint8_t nonce[CONDUCTOR_NONCE_LEN], conn[NONCES_BINDING_LEN];
	atomic_int wins;
};

static void *
take_it(void *arg)
{
	struct race *r = arg;

	if (nonces_take(r->t, r->nonce, "ASSET-1", r->conn, 1000))
		atomic_fetch_add(&r->wins, 1);
	return NULL;
}

static void
of_two_concurrent_takes_one_wins(void **state)
{
	struct race r = {0};
	pthread_t th[2];

	(void)state;
	assert_int_equal(nonces_new(&r.t), 0);
	for (unsigned round = 0; round < 200; round++) {
		fill(r.nonce, sizeof(r.nonce), 300000 + round);
		fill(r.conn, sizeof(r.conn), 11);
		atomic_store(&r.wins, 0);
		assert_int_equal(nonces_put(r.t, r.nonce, "ASSET-1", r.conn, 1060), 0);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&th[i], NULL, take_it, &r), 0);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(atomic_load(&r.wins), 1);
	}
	nonces_free(r.t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(used_once_by_its_subject_on_its_connection),
		cmocka_unit_test(a_flood_on_other_connections_evicts_only_past_the_ring),
		cmocka_unit_test(of_two_concurrent_takes_one_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
