/*
 * Unit tests for agent/onboard_worker.c's hand-off (issue 11 point 1): once
 * the main thread has read a job's result, the worker takes the next job at
 * once. Before, the worker told the result and only then became free, so a
 * job handed over in between was refused and, in the frontend, lost. The jobs
 * here end at once: the state directory holds no device, so nothing goes to
 * the network or a TPM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "onboard_worker.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 3000

/* Waits for the worker's messages and returns the job result among them (freeing the rest). */
static struct ob_msg *
next_result(struct ob_worker *w)
{
	struct pollfd p = {.fd = onboard_worker_fd(w), .events = POLLIN};
	struct ob_msg *result = NULL;

	while (result == NULL) {
		struct ob_msg *m, *next;

		assert_int_equal(poll(&p, 1, 10000), 1);
		for (m = onboard_worker_take(w); m != NULL; m = next) {
			next = m->next;
			if (m->kind == OB_MSG_JOB_DONE && result == NULL)
				result = m;
			else
				ob_msg_free(m);
		}
	}
	return result;
}

static void
a_told_result_means_the_worker_is_free(void **state)
{
	struct ob_worker_conf conf;
	struct ob_worker *w = NULL;
	struct ob_job job = {.kind = OB_JOB_REPORT};

	(void)state;
	memset(&conf, 0, sizeof(conf));
	strcpy(conf.state_dir, "/nonexistent/onramp-test-onboard-worker");
	conf.redirector_ca_pem = strdup("");
	assert_int_equal(onboard_worker_start(&conf, &w), 0);
	assert_int_equal(onboard_worker_submit(w, &job), 0);
	for (int i = 0; i < ROUNDS; i++) {
		struct ob_msg *m = next_result(w);

		assert_int_equal(m->job, OB_JOB_REPORT);
		assert_false(m->ok);
		ob_msg_free(m);
		/* What the frontend's dispatch does right after reading the result. */
		assert_int_equal(onboard_worker_submit(w, &job), 0);
	}
	ob_msg_free(next_result(w));
	assert_true(onboard_worker_stop(w, 5));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_told_result_means_the_worker_is_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
