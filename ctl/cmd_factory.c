/*
 * onrampctl factory init-device: provisions a device on the factory line.
 * It makes the device's OCRA key inside its TPM (or, with --software, in a
 * key file), stores the device's serial, model and suite in its state
 * directory, and writes the registration record for the cloud's inventory,
 * with the key and a fresh claim secret encrypted to the inventory's RSA
 * key; the record also carries the claim secret's hash, which the factory
 * registers with the redirector (onrampctl redirect device register).
 *
 * Every input is checked before anything is written: bad input exits 2 and
 * changes nothing; so does a device already provisioned (without --force).
 * Trusts: nothing on the command line or in the files it names.
 */
#include "onrampctl.h"

#include "core/error.h"
#include "core/file.h"
#include "core/secret.h"
#include "device/device.h"
#include "device/identity.h"
#include "device/ocra.h"
#include "device/record.h"
#include "device/tpm.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLOUD_KEY_MAX 65536

static const char factory_usage[] =
	"usage: onrampctl factory init-device --serial S --model M --state-dir DIR\n"
	"                 (--tcti TCTI | --software) --cloud-key INVENTORY.pem\n"
	"                 --out RECORD.json [--suite SUITE] [--force]\n"
	"\n"
	"Creates the device's OCRA key inside its TPM and writes the registration\n"
	"record for the cloud's inventory: the key and a fresh claim secret encrypted\n"
	"to the inventory key, and the claim secret's hash, which the factory registers\n"
	"with the redirector: onrampctl redirect device register RECORD.json.\n"
	"  --serial S         the device's serial (letters, digits, . _ : -)\n"
	"  --model M          the device's model\n"
	"  --state-dir DIR    the device's state directory (created 0700 if missing)\n"
	"  --tcti TCTI        the TPM: device:/dev/tpmrm0, swtpm:host=H,port=P, tabrmd\n"
	"  --software         no TPM: keep the key in a file (weaker; warns)\n"
	"  --cloud-key FILE   the inventory's RSA public key or certificate (PEM)\n"
	"  --out FILE         where to write the registration record (JSON)\n"
	"  --suite SUITE      the OCRA suite (default " RECORD_DEFAULT_SUITE ")\n"
	"  --force            replace an existing identity and record\n"
	"\n"
	"Exit status: 0 done, 2 bad input or already provisioned (nothing written),\n"
	"1 the TPM or the disk failed.\n";

struct factory_args {
	const char *serial, *model, *state_dir, *tcti, *cloud_key, *out, *suite;
	bool software, force;
};

/*
 * Checks that path's directory exists and that path, if it exists, is a file
 * the record may replace, so that the write at the end cannot fail for that
 * (with --force the identity is replaced before the record is written).
 */
static int
check_out(const char *path)
{
	char copy[PATH_MAX];
	struct stat st;

	if (strlen(path) >= sizeof(copy))
		return or_error("%s: path too long", path);
	strcpy(copy, path);
	if (stat(dirname(copy), &st) == -1 || !S_ISDIR(st.st_mode))
		return or_error("%s: its directory does not exist", path);
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return or_error("%s exists and is not a regular file", path);
	return 0;
}

/* Everything that can be checked before a byte is written; -1 means bad input. */
static int
check_input(const struct factory_args *a, struct ocra_suite *suite, EVP_PKEY **inventory)
{
	uint8_t *pem = NULL;
	size_t len = 0;
	struct stat st;
	int provisioned, rc;

	if (record_check_serial(a->serial) == -1 || record_check_model(a->model) == -1)
		return -1;
	if (ocra_suite_parse(a->suite, suite) == -1)
		return or_error_prefix("--suite");
	if (a->tcti != NULL && tpm_check_tcti(a->tcti) == -1)
		return or_error_prefix("--tcti");
	if (a->state_dir[0] == '\0')
		return or_error("--state-dir is empty");
	if (stat(a->state_dir, &st) == 0 && !S_ISDIR(st.st_mode))
		return or_error("%s is not a directory", a->state_dir);
	if (file_read_all(a->cloud_key, CLOUD_KEY_MAX, &pem, &len) == -1)
		return or_error_prefix("--cloud-key");
	rc = record_load_inventory_key((const char *)pem, len, (void **)inventory);
	free(pem);
	if (rc == -1)
		return or_error_prefix("--cloud-key %s", a->cloud_key);
	if (check_out(a->out) == -1)
		return -1;
	if (!a->force) {
		if (file_exists(a->out) != 0)
			return or_error("%s exists (another device's record?); use --force to "
					"replace it",
					a->out);
		provisioned = identity_exists(a->state_dir);
		if (provisioned == 0)
			provisioned = device_info_exists(a->state_dir);
		if (provisioned != 0)
			return provisioned == -1
				       ? -1
				       : or_error("%s: the device is already provisioned; use "
						  "--force to replace its identity",
						  a->state_dir);
	}
	return 0;
}

/* Undoes a half-done provisioning, so that a rerun starts clean. */
static void
undo(const struct factory_args *a, bool record_written)
{
	identity_remove(a->state_dir);
	device_info_remove(a->state_dir);
	if (record_written)
		unlink(a->out);
}

/*
 * Checks everything first, then makes the identity, the record and
 * device.json; a failure after the identity undoes what was written.
 */
static int
init_device(const struct factory_args *a)
{
	struct ocra_suite suite;
	struct device_info info = {0};
	struct record rec = {0};
	struct secret key = {0}, claim_secret = {0};
	EVP_PKEY *inventory = NULL;
	struct tpm *tpm = NULL;
	bool record_written = false;
	int rc = EXIT_BAD_INPUT;

	if (check_input(a, &suite, &inventory) == -1) {
		ctl_fail(EXIT_BAD_INPUT, "factory: %s", or_errmsg());
		goto out;
	}
	rc = EXIT_FAILURE_RUNTIME;
	if (a->tcti != NULL && tpm_open(a->tcti, &tpm) == -1)
		goto fail;
	if (identity_create(a->state_dir, tpm, suite.hash, &key) == -1)
		goto fail;
	if (record_claim_secret_new(&claim_secret) == -1 ||
	    record_create(a->serial, a->model, suite.text, &key, &claim_secret, inventory, &rec) ==
		    -1)
		goto undo;
	/* From here on the key exists only in the TPM and in the record, the claim secret only
	 * in the record. */
	secret_free(&key);
	secret_free(&claim_secret);
	if (record_write(a->out, &rec) == -1)
		goto undo;
	record_written = true;
	snprintf(info.serial, sizeof(info.serial), "%s", a->serial);
	snprintf(info.model, sizeof(info.model), "%s", a->model);
	snprintf(info.ocra_suite, sizeof(info.ocra_suite), "%s", suite.text);
	if (device_info_write(a->state_dir, &info) == -1)
		goto undo;
	if (tpm == NULL)
		fprintf(stderr,
			"onrampctl: warning: software identity: the OCRA key is in a file "
			"in %s, not in a TPM\n",
			a->state_dir);
	printf("provisioned %s (%s): OCRA key for %s %s; record written to %s\n", a->serial,
	       a->model, suite.text, tpm != NULL ? "created in the TPM" : "in software", a->out);
	printf("claim hash %s: register it with onrampctl redirect device register %s\n",
	       rec.claim_hash, a->out);
	rc = EXIT_OK;
	goto out;
undo:
	or_error_prefix("provisioning undone");
	undo(a, record_written);
fail:
	ctl_fail(rc, "factory: %s", or_errmsg());
out:
	secret_free(&key);
	secret_free(&claim_secret);
	record_free(&rec);
	EVP_PKEY_free(inventory);
	tpm_close(tpm);
	return rc;
}

/* Parses "factory init-device" and its options; see factory_usage. */
int
cmd_factory(int argc, char **argv)
{
	static const struct option options[] = {
		{"serial", required_argument, NULL, 's'},
		{"model", required_argument, NULL, 'm'},
		{"state-dir", required_argument, NULL, 'd'},
		{"tcti", required_argument, NULL, 't'},
		{"software", no_argument, NULL, 'S'},
		{"cloud-key", required_argument, NULL, 'k'},
		{"out", required_argument, NULL, 'o'},
		{"suite", required_argument, NULL, 'u'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct factory_args a = {.suite = RECORD_DEFAULT_SUITE};
	int opt;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(factory_usage, stdout);
		return EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "init-device") != 0)
		return ctl_fail(EXIT_BAD_INPUT, "factory: expected 'init-device' (try 'onrampctl "
						"factory --help')");
	argc--;
	argv++;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			a.serial = optarg;
			break;
		case 'm':
			a.model = optarg;
			break;
		case 'd':
			a.state_dir = optarg;
			break;
		case 't':
			a.tcti = optarg;
			break;
		case 'S':
			a.software = true;
			break;
		case 'k':
			a.cloud_key = optarg;
			break;
		case 'o':
			a.out = optarg;
			break;
		case 'u':
			a.suite = optarg;
			break;
		case 'f':
			a.force = true;
			break;
		case 'h':
			fputs(factory_usage, stdout);
			return EXIT_OK;
		default:
			return ctl_fail(EXIT_BAD_INPUT,
					"factory: unknown or incomplete option '%s'",
					argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ctl_fail(EXIT_BAD_INPUT, "factory: unexpected argument '%s'", argv[optind]);
	if (a.serial == NULL || a.model == NULL || a.state_dir == NULL || a.cloud_key == NULL ||
	    a.out == NULL)
		return ctl_fail(EXIT_BAD_INPUT, "factory: --serial, --model, --state-dir, "
						"--cloud-key and --out are required");
	if ((a.tcti != NULL) == a.software)
		return ctl_fail(EXIT_BAD_INPUT,
				"factory: give exactly one of --tcti TCTI and --software");
	return init_device(&a);
}
