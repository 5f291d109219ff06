/*
 * `onrampctl show onboarding` as text: the agent's "show onboarding" answer
 * (docs/agent.md) laid out for a person. The answer is checked like any
 * input: a field of the wrong type prints as "?" or "-".
 */
#include "onrampctl.h"

#include "core/json.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* The string at key, or def when absent, null or not a string. */
static const char *
text(json_t *obj, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : def;
}

/* What the router waits for, and until when. */
static void
print_waiting(json_t *r)
{
	json_t *w = json_object_get(r, "waiting_for");

	if (!json_is_object(w))
		return;
	printf("waiting for:   %s", text(w, "text", "?"));
	if (json_is_string(json_object_get(w, "until")))
		printf(" (next try at %s)", text(w, "until", "?"));
	printf("\n");
}

/* The device, cloud and conductor lines, when known. */
static void
print_where(json_t *r)
{
	json_t *dev = json_object_get(r, "device"), *site = json_object_get(r, "site");
	json_t *cond = json_object_get(r, "conductor"), *cloud = json_object_get(r, "cloud");

	if (json_is_object(dev))
		printf("device:        %s (model %s), asset ID %s, keys %s\n",
		       text(dev, "serial", "?"), text(dev, "model", "?"),
		       text(dev, "asset_id", "?"),
		       json_is_true(json_object_get(dev, "tpm")) ? "in the TPM" : "in software");
	if (json_is_object(cloud))
		printf("cloud:         %s\n", text(cloud, "url", "?"));
	if (json_is_object(site))
		printf("site:          organisation %s, site %s\n", text(site, "organization", "?"),
		       text(site, "site", "?"));
	if (json_is_object(cond))
		printf("conductor:     %s %s, router %s\n", text(cond, "which", "?"),
		       text(cond, "address", "?"), text(cond, "router", "?"));
}

/* The steps with the time each was done. */
static void
print_steps(json_t *r)
{
	json_t *steps = json_object_get(r, "steps"), *s;
	size_t i;

	printf("\n%-18s %s\n", "STEP", "DONE");
	json_array_foreach(steps, i, s)
		printf("%-18s %s\n", text(s, "step", "?"), text(s, "done", "-"));
}

/* What went wrong, newest first, and whether a server has it. */
static void
print_problems(json_t *r)
{
	json_t *err = json_object_get(r, "last_error"), *diag = json_object_get(r, "diagnostics");
	json_t *mig = json_object_get(r, "router_migration"), *pending, *d;
	size_t i;

	printf("\n");
	if (json_is_object(err))
		printf("last error:    %s at %s: %s\n", text(err, "step", "?"),
		       text(err, "time", "?"), text(err, "reason", "?"));
	if (json_is_string(json_object_get(r, "migrate_fallback_reason")))
		printf("back on staging after a failed migrate: %s\n",
		       text(r, "migrate_fallback_reason", "?"));
	if (json_is_object(json_object_get(r, "migration")))
		printf("migrating:     revert to staging at %s\n",
		       text(json_object_get(r, "migration"), "revert_at", "?"));
	if (json_is_object(mig))
		printf("router-side migrate #%lld: %s%s%s\n",
		       (long long)json_integer_value(json_object_get(mig, "id")),
		       text(mig, "state", "?"), *text(mig, "reason", "") ? ": " : "",
		       text(mig, "reason", ""));
	if (json_is_string(json_object_get(r, "next_attempt")))
		printf("next attempt:  %s\n", text(r, "next_attempt", "?"));
	pending = json_object_get(r, "reports_pending");
	printf("reports waiting for delivery: cloud %lld, conductor %lld\n",
	       (long long)json_integer_value(json_object_get(pending, "cloud")),
	       (long long)json_integer_value(json_object_get(pending, "conductor")));
	if (json_array_size(diag) == 0)
		return;
	printf("\ndiagnostics (newest first):\n");
	json_array_foreach(diag, i, d)
	{
		json_int_t count = json_integer_value(json_object_get(d, "count"));

		printf("  %s %s: %s", text(d, "time", "?"), text(d, "step", "?"),
		       text(d, "reason", "?"));
		if (count > 1)
			printf(" (%lld times)", (long long)count);
		printf("%s\n", json_is_true(json_object_get(d, "reported")) ? " [reported]" : "");
	}
}

void
print_onboarding(const char *socket_path, struct json_t *r)
{
	(void)socket_path;
	if (!json_is_true(json_object_get(r, "enabled"))) {
		printf("onboarding: not configured (agent.conf has no [onboarding] "
		       "redirector-url)\n");
		return;
	}
	printf("current step:  %s\n", text(r, "current", "?"));
	printf("activity:      %s\n", text(r, "activity", "?"));
	printf("connection:    %s\n", text(r, "connection", "?"));
	print_waiting(r);
	print_where(r);
	print_steps(r);
	print_problems(r);
}
