/*
 * A fresh temporary directory per test group, for the unit tests of files
 * that write state: setup/teardown functions for cmocka_run_group_tests.
 */
#ifndef ONRAMP_TESTDIR_H
#define ONRAMP_TESTDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char testdir[64];

static int
testdir_make(void **state)
{
	(void)state;
	strcpy(testdir, "/tmp/onramp-unit-XXXXXX");
	return mkdtemp(testdir) ? 0 : -1;
}

static int
testdir_remove(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", testdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* testdir/name, in a static buffer (one at a time). */
static const char *
testpath(const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", testdir, name);
	return path;
}

#endif
