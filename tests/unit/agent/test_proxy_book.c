/*
 * Unit tests for agent/proxy_book.c and agent/alarm.c: candidates from every
 * source per mode, the exact JSON of `show management-proxy` and `show dhcp
 * learned-proxies`, failover and the "Management Proxy is unreachable" alarm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "alarm.h"
#include "core/log.h"
#include "proxy_book.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct proxy_addr
A(const char *text) {
	struct proxy_addr a;

	assert_int_equal(proxy_addr_parse(text, strlen(text), &a), 0);
	return a;
}

/* Compares the compact JSON of value (reference stolen) with want. */
static void
assert_json(json_t *value, const char *want)
{
	char *text;

	assert_non_null(value);
	text = json_dumps(value, JSON_COMPACT);
	assert_string_equal(text, want);
	free(text);
	json_decref(value);
}

static int
setup(void **state)
{
	(void)state;
	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_ERROR);
	return 0;
}

static void
learned_mode_uses_every_source(void **state)
{
	static struct proxy_book b;
	struct alarms al;
	struct proxy_addr eth0[] = {A("10.92.53.8:3128"), A("10.92.53.10:80")};
	struct proxy_addr eth1[] = {A("10.92.53.9:3128")};
	struct proxy_addr stat = A("10.100.0.1:8080");

	(void)state;
	alarms_init(&al);
	proxy_book_init(&b, PROXY_MODE_LEARNED, &al);
	assert_json(proxy_book_status_json(&b),
		    "{\"mode\":\"learned\",\"active\":null,\"state\":\"none\",\"candidates\":[]}");
	assert_int_equal(proxy_book_add_static(&b, &stat, false), 0);
	assert_int_equal(proxy_book_add_iface(&b, "eth0", true), 0);
	assert_int_equal(proxy_book_add_iface(&b, "eth1", true), 0);
	assert_int_equal(proxy_book_add_iface(&b, "eth1", true), -1);
	proxy_book_set_lease(&b, "eth0", "bound");
	proxy_book_set_learned(&b, "eth0", eth0, 2, 1);
	proxy_book_set_learned(&b, "eth1", eth1, 1, 1);
	assert_json(
		proxy_book_status_json(&b),
		"{\"mode\":\"learned\",\"active\":\"10.92.53.8:3128\",\"state\":\"unreachable\","
		"\"candidates\":["
		"{\"proxy\":\"10.92.53.8:3128\",\"source\":\"dhcp:eth0\",\"reachable\":false},"
		"{\"proxy\":\"10.92.53.9:3128\",\"source\":\"dhcp:eth1\",\"reachable\":false},"
		"{\"proxy\":\"10.92.53.10:80\",\"source\":\"dhcp:eth0\",\"reachable\":false},"
		"{\"proxy\":\"10.100.0.1:8080\",\"source\":\"static\",\"reachable\":false}]}");
	assert_json(proxy_book_learned_json(&b),
		    "{\"interfaces\":["
		    "{\"name\":\"eth0\",\"discovery\":true,\"lease\":\"bound\","
		    "\"proxies\":[\"10.92.53.8:3128\",\"10.92.53.10:80\"],\"rejected\":[],"
		    "\"rejected_more\":0},"
		    "{\"name\":\"eth1\",\"discovery\":true,\"lease\":\"none\","
		    "\"proxies\":[\"10.92.53.9:3128\"],\"rejected\":[],\"rejected_more\":0}]}");
	/* the lease on eth0 ends: its proxies go */
	proxy_book_set_learned(&b, "eth0", NULL, 0, 2);
	assert_string_equal(proxy_book_active(&b)->source, "dhcp:eth1");
	assert_int_equal(b.n_cand, 2);
}

static void
discovery_off_and_static_mode_ignore_dhcp(void **state)
{
	static struct proxy_book b;
	struct alarms al;
	struct proxy_addr low[] = {A("10.0.0.1:3128")};
	struct proxy_addr high[] = {A("10.0.0.9:3128")};

	(void)state;
	alarms_init(&al);
	proxy_book_init(&b, PROXY_MODE_LEARNED, &al);
	proxy_book_add_iface(&b, "eth0", false);
	proxy_book_add_iface(&b, "eth1", true);
	proxy_book_set_learned(&b, "eth0", low, 1, 1);
	proxy_book_set_learned(&b, "eth1", high, 1, 1);
	assert_string_equal(proxy_book_active(&b)->source, "dhcp:eth1");
	assert_json(proxy_book_learned_json(&b),
		    "{\"interfaces\":["
		    "{\"name\":\"eth0\",\"discovery\":false,\"lease\":\"none\",\"proxies\":[],"
		    "\"rejected\":[],\"rejected_more\":0},"
		    "{\"name\":\"eth1\",\"discovery\":true,\"lease\":\"none\","
		    "\"proxies\":[\"10.0.0.9:3128\"],\"rejected\":[],\"rejected_more\":0}]}");

	proxy_book_init(&b, PROXY_MODE_STATIC, &al);
	proxy_book_add_static(&b, &high[0], false);
	proxy_book_add_iface(&b, "eth0", true);
	proxy_book_set_learned(&b, "eth0", low, 1, 1);
	assert_json(proxy_book_status_json(&b),
		    "{\"mode\":\"static\",\"active\":\"10.0.0.9:3128\",\"state\":\"unreachable\","
		    "\"candidates\":[{\"proxy\":\"10.0.0.9:3128\",\"source\":\"static\","
		    "\"reachable\":false}]}");

	proxy_book_init(&b, PROXY_MODE_DISABLED, &al);
	proxy_book_add_static(&b, &high[0], false);
	proxy_book_add_iface(&b, "eth0", true);
	proxy_book_set_learned(&b, "eth0", low, 1, 1);
	assert_json(proxy_book_status_json(&b),
		    "{\"mode\":\"disabled\",\"active\":null,\"state\":\"none\",\"candidates\":[]}");
}

static void
fails_over_with_alarms(void **state)
{
	static struct proxy_book b;
	struct alarms al;
	struct proxy_addr learned[] = {A("10.0.0.2:3128"), A("10.0.0.1:3128")};
	struct proxy_addr targets[8];

	(void)state;
	alarms_init(&al);
	proxy_book_init(&b, PROXY_MODE_LEARNED, &al);
	proxy_book_add_iface(&b, "eth0", true);
	proxy_book_add_iface(&b, "eth1", true);
	proxy_book_set_learned(&b, "eth0", learned, 2, 10);
	proxy_book_set_learned(&b, "eth1", learned + 1, 1, 10);
	/* the same proxy from two interfaces is probed once */
	assert_int_equal(proxy_book_targets(&b, targets, 8), 2);
	proxy_book_report(&b, &learned[0], true, 11);
	proxy_book_report(&b, &learned[1], true, 11);
	assert_string_equal(proxy_book_state(&b), "reachable");
	assert_int_equal(proxy_book_active(&b)->addr.ip, learned[1].ip);

	proxy_book_report(&b, &learned[1], false, 20);
	assert_true(alarm_is_active(&al, ALARM_PROXY_UNREACHABLE, "10.0.0.1:3128"));
	assert_int_equal(proxy_book_active(&b)->addr.ip, learned[0].ip);
	assert_string_equal(proxy_book_state(&b), "reachable");
	/* a second failure raises nothing new */
	proxy_book_report(&b, &learned[1], false, 21);
	assert_int_equal(al.count, 1);

	proxy_book_report(&b, &learned[0], false, 22);
	assert_string_equal(proxy_book_state(&b), "unreachable");
	assert_int_equal(proxy_book_active(&b)->addr.ip, learned[1].ip); /* all down: lowest */
	assert_int_equal(al.count, 2);

	proxy_book_report(&b, &learned[1], true, 30);
	assert_false(alarm_is_active(&al, ALARM_PROXY_UNREACHABLE, "10.0.0.1:3128"));
	assert_int_equal(proxy_book_active(&b)->addr.ip, learned[1].ip);
	assert_string_equal(proxy_book_state(&b), "reachable");

	/* a proxy that stops being a candidate takes its alarm with it */
	proxy_book_set_learned(&b, "eth0", learned + 1, 1, 40);
	assert_false(alarm_is_active(&al, ALARM_PROXY_UNREACHABLE, "10.0.0.2:3128"));
	assert_json(
		alarms_json(&al),
		"{\"alarms\":["
		"{\"id\":1,\"severity\":\"critical\",\"message\":\"Management Proxy is "
		"unreachable\",\"subject\":\"10.0.0.1:3128\",\"raised\":\"1970-01-01T00:00:20Z\","
		"\"cleared\":\"1970-01-01T00:00:30Z\",\"reported\":false},"
		"{\"id\":2,\"severity\":\"critical\",\"message\":\"Management Proxy is "
		"unreachable\",\"subject\":\"10.0.0.2:3128\",\"raised\":\"1970-01-01T00:00:22Z\","
		"\"cleared\":\"1970-01-01T00:00:40Z\",\"reported\":false}]}");
	/* a late probe of a proxy no longer there changes nothing */
	proxy_book_report(&b, &learned[0], false, 41);
	assert_int_equal(al.count, 2);
}

/* The bootstrap file's entries are candidates with their own source, and stay. */
static void
bootstrap_stays_until_a_conductor_gives_settings(void **state)
{
	static struct proxy_book b;
	struct alarms al;
	struct proxy_addr boot = A("10.0.0.7:3128"), stat = A("10.0.0.8:3128");
	struct proxy_addr given[] = {A("10.0.0.9:3128"), A("10.0.0.6:8080")};

	(void)state;
	alarms_init(&al);
	proxy_book_init(&b, PROXY_MODE_STATIC, &al);
	proxy_book_add_static(&b, &boot, true);
	proxy_book_add_static(&b, &stat, false);
	assert_json(proxy_book_status_json(&b),
		    "{\"mode\":\"static\",\"active\":\"10.0.0.7:3128\",\"state\":\"unreachable\","
		    "\"candidates\":["
		    "{\"proxy\":\"10.0.0.7:3128\",\"source\":\"bootstrap\",\"reachable\":false},"
		    "{\"proxy\":\"10.0.0.8:3128\",\"source\":\"static\",\"reachable\":false}]}");
	proxy_book_report(&b, &boot, false, 5);
	assert_true(alarm_is_active(&al, ALARM_PROXY_UNREACHABLE, "10.0.0.7:3128"));
	/* A configuration without the section changes nothing. */
	proxy_book_set_conductor(&b, false, PROXY_MODE_DISABLED, NULL, 0, 6);
	assert_int_equal(b.n_cand, 2);
	/* One with it replaces the local entries, bootstrap and static alike. */
	proxy_book_set_conductor(&b, true, PROXY_MODE_STATIC, given, 2, 7);
	assert_json(proxy_book_status_json(&b),
		    "{\"mode\":\"static\",\"active\":\"10.0.0.6:8080\",\"state\":\"unreachable\","
		    "\"candidates\":["
		    "{\"proxy\":\"10.0.0.6:8080\",\"source\":\"conductor\",\"reachable\":false},"
		    "{\"proxy\":\"10.0.0.9:3128\",\"source\":\"conductor\",\"reachable\":false}]}");
	assert_false(alarm_is_active(&al, ALARM_PROXY_UNREACHABLE, "10.0.0.7:3128"));
	/* Gone again (a later configuration without it): the local settings are back. */
	proxy_book_set_conductor(&b, false, PROXY_MODE_DISABLED, NULL, 0, 8);
	assert_int_equal(b.n_cand, 2);
	assert_string_equal(proxy_book_active(&b)->source, "bootstrap");
	/* A conductor's mode disabled: direct, no candidate and no alarm. */
	proxy_book_set_conductor(&b, true, PROXY_MODE_DISABLED, NULL, 0, 9);
	assert_string_equal(proxy_book_state(&b), "none");
	proxy_book_tick(&b, 10);
	proxy_book_tick(&b, 100);
	assert_false(alarm_is_active(&al, ALARM_NO_PROXY, "mode disabled, by the conductor"));
}

/* A conductor's mode learned uses what the interfaces kept, even when agent.conf's is static. */
static void
conductor_mode_learned_uses_dhcp(void **state)
{
	static struct proxy_book b;
	struct alarms al;
	struct proxy_addr stat = A("10.0.0.8:3128"), learned[] = {A("10.0.0.5:3128")};

	(void)state;
	alarms_init(&al);
	proxy_book_init(&b, PROXY_MODE_STATIC, &al);
	proxy_book_add_static(&b, &stat, false);
	proxy_book_add_iface(&b, "eth0", true);
	proxy_book_set_learned(&b, "eth0", learned, 1, 1);
	assert_int_equal(b.n_cand, 1);
	proxy_book_set_conductor(&b, true, PROXY_MODE_LEARNED, NULL, 0, 2);
	assert_json(proxy_book_status_json(&b),
		    "{\"mode\":\"learned\",\"active\":\"10.0.0.5:3128\",\"state\":\"unreachable\","
		    "\"candidates\":["
		    "{\"proxy\":\"10.0.0.5:3128\",\"source\":\"dhcp:eth0\",\"reachable\":false}]}");
	assert_json(proxy_book_learned_json(&b),
		    "{\"interfaces\":[{\"name\":\"eth0\",\"discovery\":true,\"lease\":\"none\","
		    "\"proxies\":[\"10.0.0.5:3128\"],\"rejected\":[],\"rejected_more\":0}]}");
}

/* No candidate for the grace period raises the critical alarm; a candidate clears it. */
static void
no_proxy_at_all_raises_the_critical_alarm(void **state)
{
	static struct proxy_book b;
	struct alarms al;
	struct proxy_addr learned[] = {A("10.0.0.5:3128")};

	(void)state;
	alarms_init(&al);
	proxy_book_init(&b, PROXY_MODE_LEARNED, &al);
	proxy_book_add_iface(&b, "eth0", true);
	proxy_book_tick(&b, 100);
	proxy_book_tick(&b, 100 + BOOK_NO_PROXY_GRACE_S - 1);
	assert_int_equal(al.count, 0); /* a first lease may still come */
	proxy_book_tick(&b, 100 + BOOK_NO_PROXY_GRACE_S);
	assert_true(alarm_is_active(&al, ALARM_NO_PROXY, "mode learned"));
	assert_int_equal(al.list[0].severity, ALARM_CRITICAL);
	proxy_book_tick(&b, 200);
	assert_int_equal(al.count, 1);
	proxy_book_set_learned(&b, "eth0", learned, 1, 201);
	assert_false(alarm_is_active(&al, ALARM_NO_PROXY, "mode learned"));
	assert_int_equal(al.list[0].cleared, 201);
	/* lost again: the grace starts over */
	proxy_book_set_learned(&b, "eth0", NULL, 0, 300);
	proxy_book_tick(&b, 301);
	proxy_book_tick(&b, 305);
	assert_int_equal(al.count, 1);
	proxy_book_tick(&b, 301 + BOOK_NO_PROXY_GRACE_S);
	assert_int_equal(al.count, 2);
	assert_true(alarm_is_active(&al, ALARM_NO_PROXY, "mode learned"));

	/* disabled needs no proxy */
	alarms_init(&al);
	proxy_book_init(&b, PROXY_MODE_DISABLED, &al);
	proxy_book_tick(&b, 1);
	proxy_book_tick(&b, 1000);
	assert_int_equal(al.count, 0);
}

static void
alarm_history_is_bounded(void **state)
{
	struct alarms al;
	char subject[32];

	(void)state;
	alarms_init(&al);
	for (int i = 0; i < ALARM_KEEP + 10; i++) {
		unsigned long id;

		snprintf(subject, sizeof(subject), "s%d", i);
		id = alarm_raise(&al, ALARM_CRITICAL, "m", subject, i + 1);
		assert_int_equal(alarm_raise(&al, ALARM_CRITICAL, "m", subject, i + 1), id);
		alarm_clear(&al, "m", subject, i + 2);
		if (i % 2)
			alarm_mark_reported(&al, id);
	}
	assert_int_equal(al.count, ALARM_KEEP);
	/* reported, cleared ones went first: every unreported one is still there */
	for (size_t i = 0; i < al.count; i++)
		if (al.list[i].id <= 20)
			assert_false(al.list[i].reported);
	assert_false(alarm_clear(&al, "m", "nothing", 1));
	assert_string_equal(alarm_severity_name(ALARM_MAJOR), "major");
}

/* Logs only what changed: the same proxies again (a renewal) say nothing. */
static void
renewal_with_the_same_proxies_is_quiet(void **state)
{
	static struct proxy_book b;
	struct alarms al;
	struct proxy_addr first[2], again[2];
	char path[] = "/tmp/onramp-test-book-XXXXXX", line[256];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO), said = 0;
	FILE *log;

	(void)state;
	assert_true(fd != -1 && saved != -1);
	/* The same addresses with other bytes in the struct's padding, as two DHCP
	 * replies parsed into different stack memory give them. */
	memset(first, 0x00, sizeof(first));
	memset(again, 0xA5, sizeof(again));
	for (size_t i = 0; i < 2; i++) {
		first[i].ip = again[i].ip = 0x0A5C3508u + (uint32_t)i;
		first[i].port = again[i].port = 3128;
	}
	alarms_init(&al);
	proxy_book_init(&b, PROXY_MODE_LEARNED, &al);
	assert_int_equal(proxy_book_add_iface(&b, "eth0", true), 0);
	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_INFO);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	proxy_book_set_learned(&b, "eth0", first, 2, 100);
	proxy_book_set_learned(&b, "eth0", again, 2, 200);
	fflush(stderr);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	log_init("test", LOG_TARGET_STDERR, LOG_LEVEL_ERROR);
	log = fdopen(fd, "r");
	assert_non_null(log);
	rewind(log);
	while (fgets(line, sizeof(line), log) != NULL)
		said += strstr(line, "eth0: learned proxies") != NULL;
	fclose(log);
	close(saved);
	unlink(path);
	assert_int_equal(said, 1);
}

/* Issue 14 point 7: an option 43 whose every entry was bad must not look like none. */
static void
rejected_entries_are_shown_bounded_and_replaced(void **state)
{
	static struct proxy_book b;
	struct alarms al;
	struct book_rejected bad[BOOK_MAX_REJECTED + 2];

	(void)state;
	memset(bad, 0, sizeof(bad));
	for (size_t i = 0; i < BOOK_MAX_REJECTED + 2; i++) {
		snprintf(bad[i].entry, sizeof(bad[i].entry), "sub-option 128 \"10.0.0.%zu:0\"", i);
		snprintf(bad[i].reason, sizeof(bad[i].reason), "port 0");
	}
	alarms_init(&al);
	proxy_book_init(&b, PROXY_MODE_LEARNED, &al);
	assert_int_equal(proxy_book_add_iface(&b, "eth0", true), 0);
	proxy_book_set_rejected(&b, "eth0", bad, 1);
	assert_json(proxy_book_iface_json(&b.iface[0]),
		    "{\"name\":\"eth0\",\"discovery\":true,\"lease\":\"none\",\"proxies\":[],"
		    "\"rejected\":[{\"entry\":\"sub-option 128 \\\"10.0.0.0:0\\\"\",\"reason\":"
		    "\"port 0\"}],\"rejected_more\":0}");
	/* more than are kept: the first ones, and how many more */
	proxy_book_set_rejected(&b, "eth0", bad, BOOK_MAX_REJECTED + 2);
	assert_int_equal(b.iface[0].n_rejected, BOOK_MAX_REJECTED);
	assert_int_equal(b.iface[0].n_rejected_more, 2);
	assert_string_equal(b.iface[0].rejected[BOOK_MAX_REJECTED - 1].entry,
			    "sub-option 128 \"10.0.0.7:0\"");
	/* the next option 43 (or none) replaces them */
	proxy_book_set_rejected(&b, "eth0", NULL, 0);
	assert_int_equal(b.iface[0].n_rejected, 0);
	assert_int_equal(b.iface[0].n_rejected_more, 0);
	/* an unknown interface changes nothing */
	proxy_book_set_rejected(&b, "eth9", bad, 1);
}

/*
 * Issue 14 point 7: an alarm cleared within one probe interval (settle_s)
 * never leaves the router; a lasting one is reported once it has lived that long.
 */
static void
alarms_settle_for_one_probe_interval(void **state)
{
	static struct proxy_book b;
	struct alarms al;
	struct proxy_addr p = A("10.0.0.1:3128");

	(void)state;
	alarms_init(&al);
	al.settle_s = 10;
	proxy_book_init(&b, PROXY_MODE_STATIC, &al);
	assert_int_equal(proxy_book_add_static(&b, &p, false), 0);
	/* the first probe fails (no route yet), the next one 2 s later succeeds */
	proxy_book_report(&b, &p, false, 100);
	assert_true(alarm_is_active(&al, ALARM_PROXY_UNREACHABLE, "10.0.0.1:3128"));
	assert_false(alarm_due(&al, &al.list[0], 100));
	assert_false(alarm_due(&al, &al.list[0], 109));
	proxy_book_report(&b, &p, true, 102);
	assert_false(alarm_is_active(&al, ALARM_PROXY_UNREACHABLE, "10.0.0.1:3128"));
	assert_int_equal(al.count, 0);
	assert_json(alarms_json(&al), "{\"alarms\":[]}");

	/* a dead proxy: its raise is due after one interval, then its clear at once */
	proxy_book_report(&b, &p, false, 200);
	assert_false(alarm_due(&al, &al.list[0], 209));
	assert_true(alarm_due(&al, &al.list[0], 210));
	alarm_mark_reported(&al, al.list[0].id);
	assert_false(alarm_due(&al, &al.list[0], 211));
	proxy_book_report(&b, &p, true, 215);
	assert_int_equal(al.count, 1);
	assert_int_equal(al.list[0].cleared, 215);
	assert_true(alarm_due(&al, &al.list[0], 215));

	/* raised and cleared exactly one interval apart: both reported (raise not yet sent) */
	proxy_book_report(&b, &p, false, 300);
	proxy_book_report(&b, &p, true, 310);
	assert_int_equal(al.count, 2);
	assert_true(alarm_due(&al, &al.list[1], 310));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(learned_mode_uses_every_source),
		cmocka_unit_test(discovery_off_and_static_mode_ignore_dhcp),
		cmocka_unit_test(fails_over_with_alarms),
		cmocka_unit_test(bootstrap_stays_until_a_conductor_gives_settings),
		cmocka_unit_test(conductor_mode_learned_uses_dhcp),
		cmocka_unit_test(no_proxy_at_all_raises_the_critical_alarm),
		cmocka_unit_test(alarm_history_is_bounded),
		cmocka_unit_test(renewal_with_the_same_proxies_is_quiet),
		cmocka_unit_test(rejected_entries_are_shown_bounded_and_replaced),
		cmocka_unit_test(alarms_settle_for_one_probe_interval),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
