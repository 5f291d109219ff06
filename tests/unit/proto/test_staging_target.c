/* Unit tests for lib/proto/staging_target.c: the cloud's staging conductor, stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/secret.h"
#include "device/vault.h"
#include "proto/staging_target.h"
#include "server/ca.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char psk_text[] =
	"orpsk-0123abcd-abababababababababababababababababababababababababababababababab";

struct fixture {
	char dir[64];
	struct vault *vault;
	struct conductor_client_opts o;
	struct cloud_onboarding info;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct secret key = {0};

	strcpy(f->dir, "/tmp/onramp-test-staging-XXXXXX");
	if (mkdtemp(f->dir) == NULL || vault_open(f->dir, NULL, &f->vault) == -1 ||
	    pki_ca_create("test staging CA", 30, &f->info.conductor_ca_pem, &key) == -1)
		return -1;
	secret_free(&key);
	f->o.state_dir = f->dir;
	f->o.asset_id = "SIM-1";
	f->o.vault = f->vault;
	f->info.port = 8443;
	strcpy(f->info.addresses[0], "127.0.0.1");
	strcpy(f->info.addresses[1], "2001:db8::1");
	f->info.n_addresses = 2;
	if (secret_from(&f->info.psk, psk_text, sizeof(psk_text)) == -1) /* with its NUL */
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	vault_close(f->vault);
	cloud_onboarding_free(&f->info);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	free(f);
	return system(cmd) == 0 ? 0 : -1;
}

static void
stores_addresses_secret_and_root_ca(void **state)
{
	struct fixture *f = *state;
	char addr[CONDUCTOR_MAX_TARGET_ADDRESSES][PEERING_ADDRESS_MAX], current[16];
	struct conductor_target t;
	size_t n;

	assert_int_equal(staging_target_store(&f->o, &f->info, addr, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(addr[0], "127.0.0.1:8443");
	assert_string_equal(addr[1], "[2001:db8::1]:8443");
	assert_int_equal(conductor_current(&f->o, current), 0);
	assert_string_equal(current, "staging");
	assert_int_equal(conductor_get_target(&f->o, "staging", &t), 0);
	assert_int_equal(t.n_addresses, 2);
	assert_string_equal(t.addresses[1], "[2001:db8::1]:8443");
	assert_int_equal(t.psk.len, strlen(psk_text));
	assert_memory_equal(t.psk.data, psk_text, t.psk.len);
	assert_string_equal(t.ca_pem, f->info.conductor_ca_pem);
	conductor_target_free(&t);
}

static void
keeps_the_first_four_addresses(void **state)
{
	struct fixture *f = *state;
	size_t n;

	for (size_t i = 0; i < 6; i++)
		snprintf(f->info.addresses[i], sizeof(f->info.addresses[i]), "10.0.0.%zu", i + 1);
	f->info.n_addresses = 6;
	assert_int_equal(staging_target_store(&f->o, &f->info, NULL, &n), 0);
	assert_int_equal(n, CONDUCTOR_MAX_TARGET_ADDRESSES);
}

static void
refuses_a_site_without_root_ca_or_with_a_bad_address(void **state)
{
	struct fixture *f = *state;
	char current[16], *ca = f->info.conductor_ca_pem;
	size_t n = 7;

	f->info.conductor_ca_pem = NULL;
	assert_int_equal(staging_target_store(&f->o, &f->info, NULL, &n), -1);
	assert_non_null(strstr(or_errmsg(), "cannot be trusted"));
	assert_int_equal(n, 0);
	f->info.conductor_ca_pem = ca;
	strcpy(f->info.addresses[1], "not a host");
	assert_int_equal(staging_target_store(&f->o, &f->info, NULL, NULL), -1);
	assert_non_null(strstr(or_errmsg(), "staging conductor address"));
	/* Nothing was stored. */
	assert_int_equal(conductor_current(&f->o, current), 0);
	assert_string_equal(current, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(stores_addresses_secret_and_root_ca, setup,
						teardown),
		cmocka_unit_test_setup_teardown(keeps_the_first_four_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(
			refuses_a_site_without_root_ca_or_with_a_bad_address, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
