/*
 * agent.conf and the bootstrap file. Both are operator input: every value is
 * checked and every error names FILE:LINE. The proxy password is read from
 * its own file into a secret and never printed.
 */
#include "agent_conf.h"

#include "core/config.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "net/control_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PASSWORD_MAX 1024

/* Copies an absolute path that fits. */
static int
copy_path(char *dst, size_t cap, const char *value, const char *what)
{
	if (value[0] != '/')
		return or_error("%s must be an absolute path, not '%.60s'", what, value);
	if ((size_t)snprintf(dst, cap, "%s", value) >= cap)
		return or_error("%s is too long", what);
	return 0;
}

struct static_list {
	struct proxy_addr *addrs;
	size_t *n;
};

/* config_each callback: one "static = ADDR:PORT" line. */
static int
add_static(void *arg, const char *value, const char *where)
{
	struct static_list *l = arg;
	struct proxy_addr a;
	char why[128];

	if (proxy_addr_parse(value, strlen(value), &a) == -1) {
		snprintf(why, sizeof(why), "%s", or_errmsg()); /* or_error() reuses its buffer */
		return or_error("%s: static proxy '%.60s': %s", where, value, why);
	}
	for (size_t i = 0; i < *l->n; i++)
		if (proxy_addr_cmp(&l->addrs[i], &a) == 0)
			return or_error("%s: static proxy %s given twice", where, value);
	if (*l->n == BOOK_MAX_STATIC)
		return or_error("%s: more than %d static proxies", where, BOOK_MAX_STATIC);
	l->addrs[(*l->n)++] = a;
	return 0;
}

/* Reads the bootstrap file: a [proxy] section with static entries, nothing else. */
static int
load_bootstrap(struct agent_conf *c, bool must_exist)
{
	struct config cfg;
	struct static_list list = {c->bootstrap, &c->n_bootstrap};
	struct stat st;
	int rc = -1;

	if (!must_exist && stat(c->bootstrap_file, &st) == -1 && errno == ENOENT)
		return 0;
	if (config_load(c->bootstrap_file, &cfg) == -1)
		return or_error_prefix("bootstrap file");
	for (size_t i = 0; i < cfg.section_count; i++) {
		if (strcmp(cfg.sections[i], "proxy") != 0) {
			or_error(
				"%s:%d: unknown section [%s] (the bootstrap file has only [proxy])",
				cfg.path, cfg.section_lines[i], cfg.sections[i]);
			goto out;
		}
	}
	if (config_each(&cfg, "proxy", "static", add_static, &list) == -1 ||
	    config_check_unused(&cfg) == -1)
		goto out;
	if (c->n_bootstrap == 0) {
		or_error("%s: no [proxy] static entry", cfg.path);
		goto out;
	}
	c->bootstrap_loaded = true;
	log_info("%s: %zu bootstrap proxy entr%s, used until a conductor gives proxy settings",
		 cfg.path, c->n_bootstrap, c->n_bootstrap == 1 ? "y" : "ies");
	rc = 0;
out:
	config_free(&cfg);
	return rc;
}

/* Reads the proxy password: one line, not empty, newline stripped. */
static int
load_password(struct agent_conf *c, const char *path)
{
	uint8_t *data = NULL;
	size_t len;
	struct stat st;
	int rc = -1;

	if (file_read_all(path, PASSWORD_MAX, &data, &len) == -1)
		return or_error_prefix("password-file");
	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (len > 0 && data[len - 1] == '\r')
		len--;
	if (len == 0) {
		or_error("password-file %s is empty", path);
		goto out;
	}
	if (memchr(data, '\n', len) != NULL || memchr(data, '\0', len) != NULL) {
		or_error("password-file %s must hold one line", path);
		goto out;
	}
	if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
		log_warn("password-file %s can be read by other users; chmod 600 it", path);
	rc = secret_from(&c->proxy_password, data, len);
out:
	secure_zero(data, len);
	free(data);
	return rc;
}

/* The [agent] keys; *bootstrap is the bootstrap-file key when given. */
static int
load_agent_section(struct config *cfg, struct agent_conf *c, const char **bootstrap)
{
	const char *state_dir, *socket, *level;

	if (config_get_string(cfg, "agent", "state-dir", AGENT_STATE_DIR_DEFAULT, &state_dir) ==
		    -1 ||
	    config_get_string(cfg, "agent", "control-socket", ONRAMP_AGENT_SOCKET, &socket) == -1 ||
	    config_get_string(cfg, "agent", "bootstrap-file", NULL, bootstrap) == -1 ||
	    config_get_string(cfg, "agent", "log-level", "info", &level) == -1)
		return -1;
	if (copy_path(c->state_dir, sizeof(c->state_dir), state_dir, "state-dir") == -1)
		return config_error_at(cfg, "agent", "state-dir");
	if (copy_path(c->control_socket, sizeof(c->control_socket), socket, "control-socket") == -1)
		return config_error_at(cfg, "agent", "control-socket");
	if (log_level_parse(level, &c->log_level) == -1)
		return config_error_at(cfg, "agent", "log-level");
	if (*bootstrap != NULL)
		return copy_path(c->bootstrap_file, sizeof(c->bootstrap_file), *bootstrap,
				 "bootstrap-file") == -1
			       ? config_error_at(cfg, "agent", "bootstrap-file")
			       : 0;
	if ((size_t)snprintf(c->bootstrap_file, sizeof(c->bootstrap_file), "%s/bootstrap.conf",
			     c->state_dir) >= sizeof(c->bootstrap_file)) {
		or_error("state-dir is too long");
		return config_error_at(cfg, "agent", "state-dir");
	}
	return 0;
}

/* The [proxy] keys, and the password file they name. */
static int
load_proxy_section(struct config *cfg, struct agent_conf *c)
{
	struct static_list list = {c->statics, &c->n_static};
	const char *mode, *user, *password_file, *auth;
	unsigned long interval, timeout;

	if (config_get_string(cfg, "proxy", "mode", "learned", &mode) == -1 ||
	    config_each(cfg, "proxy", "static", add_static, &list) == -1 ||
	    config_get_string(cfg, "proxy", "user", NULL, &user) == -1 ||
	    config_get_string(cfg, "proxy", "password-file", NULL, &password_file) == -1 ||
	    config_get_string(cfg, "proxy", "auth", "any", &auth) == -1 ||
	    config_get_uint(cfg, "proxy", "health-interval", 60, 1, 86400, &interval) == -1 ||
	    config_get_uint(cfg, "proxy", "health-timeout", 3, 1, 60, &timeout) == -1)
		return -1;
	if (proxy_mode_parse(mode, &c->mode) == -1)
		return config_error_at(cfg, "proxy", "mode");
	if (strcmp(auth, "any") != 0 && strcmp(auth, "basic") != 0 && strcmp(auth, "digest") != 0) {
		or_error("auth must be any, basic or digest, not '%.40s'", auth);
		return config_error_at(cfg, "proxy", "auth");
	}
	snprintf(c->proxy_auth, sizeof(c->proxy_auth), "%s", auth);
	if ((user == NULL) != (password_file == NULL)) {
		or_error("user and password-file go together");
		return config_error_at(cfg, "proxy", user != NULL ? "user" : "password-file");
	}
	if (user != NULL) {
		if (strlen(user) >= sizeof(c->proxy_user) || strchr(user, ':') != NULL) {
			or_error("user must be shorter than %zu characters and have no ':'",
				 sizeof(c->proxy_user));
			return config_error_at(cfg, "proxy", "user");
		}
		snprintf(c->proxy_user, sizeof(c->proxy_user), "%s", user);
		if (load_password(c, password_file) == -1)
			return config_error_at(cfg, "proxy", "password-file");
	}
	/* A probe that may outlast its interval overlaps the next one: said, not refused. */
	if (timeout > interval)
		log_warn("%s:%d: health-timeout (%lu s) is longer than health-interval (%lu s): a "
			 "proxy that does not answer is probed again before its last probe ends",
			 cfg->path,
			 config_line(cfg, "proxy", "health-timeout")
				 ? config_line(cfg, "proxy", "health-timeout")
				 : config_line(cfg, "proxy", "health-interval"),
			 timeout, interval);
	c->health_interval = (unsigned)interval;
	c->health_timeout = (unsigned)timeout;
	return 0;
}

/* Option 60 must be 1-255 printable ASCII bytes. */
static int
valid_vendor_class(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > DHCP_VENDOR_CLASS_MAX)
		return 0;
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7E)
			return 0;
	return 1;
}

/* One [interface NAME] section; names are unique and fit IFNAMSIZ. */
static int
load_iface_section(struct config *cfg, const char *section, int line, struct agent_conf *c)
{
	struct agent_iface_conf *f;
	const char *name = section + strlen("interface "), *dhcp, *vendor;
	unsigned long metric, divisor;
	int key_line;

	if (strlen(name) >= IFNAMSIZ)
		return or_error("%s:%d: interface name '%s' is longer than %d characters",
				cfg->path, line, name, IFNAMSIZ - 1);
	for (size_t i = 0; i < c->n_iface; i++)
		if (strcmp(c->iface[i].name, name) == 0)
			return or_error("%s:%d: [interface %s] given twice", cfg->path, line, name);
	if (c->n_iface == AGENT_MAX_IFACES)
		return or_error("%s:%d: more than %d interfaces", cfg->path, line,
				AGENT_MAX_IFACES);
	f = &c->iface[c->n_iface++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	if (config_get_string(cfg, section, "dhcp", "false", &dhcp) == -1 ||
	    config_get_bool(cfg, section, "enable-proxy-discovery", true, &f->discovery) == -1 ||
	    config_get_string(cfg, section, "vendor-class", "JuniperSSR", &vendor) == -1 ||
	    config_get_uint(cfg, section, "route-metric", 100 + c->n_iface - 1, 0, 65535,
			    &metric) == -1 ||
	    config_get_uint(cfg, section, "test-lease-divisor", 1, 1, 3600, &divisor) == -1)
		return -1;
	if (strcmp(dhcp, "true") == 0 || strcmp(dhcp, "yes") == 0)
		f->dhcp = AGENT_DHCP_CLIENT;
	else if (strcmp(dhcp, "hook") == 0)
		f->dhcp = AGENT_DHCP_HOOK;
	else if (strcmp(dhcp, "false") == 0 || strcmp(dhcp, "no") == 0)
		f->dhcp = AGENT_DHCP_OFF;
	else {
		or_error("[%s] dhcp must be true, false or hook, not '%.40s'", section, dhcp);
		return config_error_at(cfg, section, "dhcp");
	}
	if (!valid_vendor_class(vendor)) {
		or_error("[%s] vendor-class must be 1 to %d printable ASCII characters", section,
			 DHCP_VENDOR_CLASS_MAX);
		return config_error_at(cfg, section, "vendor-class");
	}
	/* Discovery learns from DHCP: said for an interface without DHCP, it does nothing. */
	key_line = config_line(cfg, section, "enable-proxy-discovery");
	if (f->dhcp == AGENT_DHCP_OFF && f->discovery && key_line > 0)
		log_warn("%s:%d: enable-proxy-discovery does nothing on [%s]: it has dhcp = false "
			 "(set dhcp = true or hook, or remove the key)",
			 cfg->path, key_line, section);
	snprintf(f->vendor_class, sizeof(f->vendor_class), "%s", vendor);
	f->route_metric = (unsigned)metric;
	f->lease_divisor = (unsigned)divisor;
	return 0;
}

/*
 * Two default routes with the same metric would replace each other, so each
 * DHCP interface needs its own (the default is 100 plus the section's index).
 */
static int
check_metrics(const struct config *cfg, const struct agent_conf *c)
{
	char second[sizeof("interface ") + IFNAMSIZ];

	for (size_t i = 0; i < c->n_iface; i++) {
		for (size_t j = i + 1; j < c->n_iface; j++) {
			if (c->iface[i].dhcp != AGENT_DHCP_CLIENT ||
			    c->iface[j].dhcp != AGENT_DHCP_CLIENT ||
			    c->iface[i].route_metric != c->iface[j].route_metric)
				continue;
			or_error("[interface %s] and [interface %s] have the same route-metric %u",
				 c->iface[i].name, c->iface[j].name, c->iface[i].route_metric);
			snprintf(second, sizeof(second), "interface %s", c->iface[j].name);
			return config_error_at(cfg, second, "route-metric");
		}
	}
	return 0;
}

/* The [device] keys: the TPM (or an explicit software identity) and the asset ID. */
static int
load_device_section(struct config *cfg, struct agent_conf *c)
{
	const char *tcti, *asset;

	if (config_get_string(cfg, "device", "tcti", NULL, &tcti) == -1 ||
	    config_get_bool(cfg, "device", "software-identity", false, &c->software_identity) ==
		    -1 ||
	    config_get_string(cfg, "device", "asset-id", NULL, &asset) == -1)
		return -1;
	if (tcti != NULL && c->software_identity) {
		or_error("tcti and software-identity = true exclude each other");
		return config_error_at(cfg, "device", "software-identity");
	}
	if (tcti != NULL && (tcti[0] == '\0' || strlen(tcti) >= sizeof(c->tcti))) {
		or_error("tcti must have 1 to %zu characters", sizeof(c->tcti) - 1);
		return config_error_at(cfg, "device", "tcti");
	}
	snprintf(c->tcti, sizeof(c->tcti), "%s", tcti ? tcti : "");
	if (asset != NULL) {
		size_t len = strlen(asset);
		bool printable = len > 0 && len <= AGENT_ASSET_ID_MAX;

		for (const char *p = asset; *p; p++)
			printable = printable && *p > 0x20 && *p <= 0x7e;
		if (!printable) {
			or_error("asset-id must be 1 to %d printable ASCII characters without "
				 "spaces",
				 AGENT_ASSET_ID_MAX);
			return config_error_at(cfg, "device", "asset-id");
		}
		snprintf(c->asset_id, sizeof(c->asset_id), "%s", asset);
	}
	return 0;
}

/* The [onboarding] redirector: an https origin and its trust anchor, and a device to onboard. */
static int
load_redirector(struct config *cfg, struct agent_conf *c, const char *url, const char *ca)
{
	if (url == NULL) {
		if (ca == NULL)
			return 0;
		or_error("redirector-ca needs redirector-url");
		return config_error_at(cfg, "onboarding", "redirector-ca");
	}
	if (strncmp(url, "https://", 8) != 0 || url[8] == '\0' || strlen(url) > AGENT_URL_MAX) {
		or_error("redirector-url must be https://HOST[:PORT] (at most %d characters), not "
			 "'%.60s'",
			 AGENT_URL_MAX, url);
		return config_error_at(cfg, "onboarding", "redirector-url");
	}
	if (ca == NULL) {
		or_error("redirector-url needs redirector-ca (the redirector's trust anchor)");
		return config_error_at(cfg, "onboarding", "redirector-url");
	}
	if (copy_path(c->redirector_ca, sizeof(c->redirector_ca), ca, "redirector-ca") == -1)
		return config_error_at(cfg, "onboarding", "redirector-ca");
	if (c->tcti[0] == '\0' && !c->software_identity) {
		or_error("onboarding needs [device] tcti (the TPM) or software-identity = true");
		return config_error_at(cfg, "onboarding", "redirector-url");
	}
	snprintf(c->redirector_url, sizeof(c->redirector_url), "%s", url);
	c->onboarding = true;
	return 0;
}

/* The [onboarding] keys; onboarding runs only when redirector-url is given. */
static int
load_onboarding_section(struct config *cfg, struct agent_conf *c)
{
	const char *url, *ca, *kill;
	unsigned long window, base, cap, connect, wait;

	if (config_get_string(cfg, "onboarding", "redirector-url", NULL, &url) == -1 ||
	    config_get_string(cfg, "onboarding", "redirector-ca", NULL, &ca) == -1 ||
	    config_get_uint(cfg, "onboarding", "revert-window", 300, 1, 86400, &window) == -1 ||
	    config_get_uint(cfg, "onboarding", "retry-base", 2, 1, 3600, &base) == -1 ||
	    config_get_uint(cfg, "onboarding", "retry-cap", 300, 1, 86400, &cap) == -1 ||
	    config_get_uint(cfg, "onboarding", "connect-timeout", 10, 1, 300, &connect) == -1 ||
	    config_get_uint(cfg, "onboarding", "poll-wait", 25, 1, 300, &wait) == -1 ||
	    config_get_string(cfg, "onboarding", "test-kill-after", NULL, &kill) == -1)
		return -1;
	if (kill != NULL) {
		if (strlen(kill) >= sizeof(c->test_kill_after)) {
			or_error("test-kill-after is too long");
			return config_error_at(cfg, "onboarding", "test-kill-after");
		}
		snprintf(c->test_kill_after, sizeof(c->test_kill_after), "%s", kill);
	}
	if (base > cap) {
		or_error("retry-base must not exceed retry-cap");
		return config_error_at(cfg, "onboarding", "retry-base");
	}
	c->revert_window = (unsigned)window;
	c->retry_base = (unsigned)base;
	c->retry_cap = (unsigned)cap;
	c->connect_timeout = (unsigned)connect;
	c->poll_wait = (unsigned)wait;
	return load_redirector(cfg, c, url, ca);
}

/* Fills c from a parsed configuration; frees cfg. */
static int
from_config(struct config *cfg, struct agent_conf *c)
{
	const char *bootstrap = NULL;
	int rc = -1;

	for (size_t i = 0; i < cfg->section_count; i++) {
		const char *s = cfg->sections[i];

		if (strncmp(s, "interface ", 10) == 0) {
			if (load_iface_section(cfg, s, cfg->section_lines[i], c) == -1)
				goto out;
		} else if (strcmp(s, "agent") != 0 && strcmp(s, "proxy") != 0 &&
			   strcmp(s, "device") != 0 && strcmp(s, "onboarding") != 0) {
			or_error("%s:%d: unknown section [%s]", cfg->path, cfg->section_lines[i],
				 s);
			goto out;
		}
	}
	if (load_agent_section(cfg, c, &bootstrap) == -1 || load_proxy_section(cfg, c) == -1 ||
	    load_device_section(cfg, c) == -1 || load_onboarding_section(cfg, c) == -1 ||
	    config_check_unused(cfg) == -1)
		goto out;
	if (check_metrics(cfg, c) == -1)
		goto out;
	if (c->mode != PROXY_MODE_DISABLED && load_bootstrap(c, bootstrap != NULL) == -1)
		goto out;
	if (c->mode == PROXY_MODE_STATIC && c->n_static == 0 && c->n_bootstrap == 0) {
		or_error("%s: [proxy] mode is static but there is no static entry (nor a bootstrap "
			 "file %s)",
			 cfg->path, c->bootstrap_file);
		goto out;
	}
	rc = 0;
out:
	config_free(cfg);
	if (rc == -1)
		agent_conf_free(c);
	return rc;
}

/* Parses text as if it were the file path. */
int
agent_conf_parse(const char *path, const char *text, struct agent_conf *c)
{
	struct config cfg;

	memset(c, 0, sizeof(*c));
	if (config_parse(path, text, &cfg) == -1)
		return -1;
	return from_config(&cfg, c);
}

/* Reads and parses path. */
int
agent_conf_load(const char *path, struct agent_conf *c)
{
	struct config cfg;

	memset(c, 0, sizeof(*c));
	if (config_load(path, &cfg) == -1)
		return -1;
	return from_config(&cfg, c);
}

/* Zeroes and frees the password. */
void
agent_conf_free(struct agent_conf *c)
{
	secret_free(&c->proxy_password);
}
