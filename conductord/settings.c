/*
 * The conductor's configuration file. Every key is checked for form and
 * range here, with FILE:LINE in the message; an unknown key is an error.
 */
#include "conductor.h"

#include "core/config.h"
#include "core/error.h"
#include "server/ca.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One server-name entry: an IP address or a DNS name, at most CONDUCTOR_MAX_NAMES. */
static int
add_server_name(void *arg, const char *value, const char *where)
{
	struct conductor_settings *s = arg;
	unsigned char buf[16];

	if (s->n_server_names == CONDUCTOR_MAX_NAMES)
		return or_error("%s: at most %d server-name entries", where, CONDUCTOR_MAX_NAMES);
	if (inet_pton(AF_INET, value, buf) != 1 && inet_pton(AF_INET6, value, buf) != 1 &&
	    !pki_valid_dns_name(value))
		return or_error("%s: server-name '%s' is neither an IP address nor a DNS name",
				where, value);
	s->server_names[s->n_server_names++] = value;
	return 0;
}

/* A listen address must be numeric: the servers bind it without name lookups. */
static int
check_listen(struct config *cfg, const char *section, const char *value)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, value, buf) != 1 && inet_pton(AF_INET6, value, buf) != 1) {
		or_error("[%s] listen must be a numeric IP address, not '%.60s'", section, value);
		return config_error_at(cfg, section, "listen");
	}
	return 0;
}

/* Reads every key with its default and range; the first bad one stops with FILE:LINE. */
static int
load_values(struct config *cfg, struct conductor_settings *s)
{
	const char *role, *level;
	unsigned long v;

	if (config_get_string(cfg, "conductor", "role", "staging", &role) == -1)
		return -1;
	if (strcmp(role, "staging") == 0)
		s->role = ROLE_STAGING;
	else if (strcmp(role, "production") == 0)
		s->role = ROLE_PRODUCTION;
	else {
		or_error("role must be staging or production, not '%.40s'", role);
		return config_error_at(cfg, "conductor", "role");
	}
	if (config_get_string(cfg, "conductor", "name", NULL, &s->name) == -1 ||
	    config_get_string(cfg, "conductor", "state-dir", NULL, &s->state_dir) == -1 ||
	    config_get_string(cfg, "conductor", "database", NULL, &s->database) == -1 ||
	    config_get_string(cfg, "conductor", "listen", "127.0.0.1", &s->listen) == -1 ||
	    config_get_string(cfg, "conductor", "ports-file", NULL, &s->admin_port_file) == -1 ||
	    config_get_string(cfg, "conductor", "log-level", "info", &level) == -1 ||
	    config_get_string(cfg, "admin", "listen", "127.0.0.1", &s->admin_listen) == -1 ||
	    config_get_string(cfg, "ca", "import-certificate", NULL, &s->ca_import_cert) == -1 ||
	    config_get_string(cfg, "ca", "import-key", NULL, &s->ca_import_key) == -1)
		return -1;
	if (s->name == NULL || !pki_valid_router_name(s->name)) {
		or_error("[conductor] name is required: 1 to 63 of A-Z a-z 0-9 . _ -");
		return config_error_at(cfg, "conductor", "name");
	}
	if (s->state_dir == NULL || s->state_dir[0] != '/') {
		or_error("[conductor] state-dir is required and must be absolute");
		return config_error_at(cfg, "conductor", "state-dir");
	}
	if (check_listen(cfg, "conductor", s->listen) == -1 ||
	    check_listen(cfg, "admin", s->admin_listen) == -1)
		return -1;
	if (log_level_parse(level, &s->log_level) == -1) {
		or_error_prefix("log-level");
		return config_error_at(cfg, "conductor", "log-level");
	}
	if ((s->ca_import_cert == NULL) != (s->ca_import_key == NULL)) {
		or_error("[ca] import-certificate and import-key go together");
		return config_error_at(cfg, "ca",
				       s->ca_import_cert ? "import-certificate" : "import-key");
	}
	if (config_each(cfg, "conductor", "server-name", add_server_name, s) == -1)
		return -1;
	if (s->n_server_names == 0)
		s->server_names[s->n_server_names++] = s->listen;
	if (config_get_uint(cfg, "conductor", "port", 8443, 0, 65535, &v) == -1)
		return -1;
	s->port = (unsigned)v;
	if (config_get_uint(cfg, "admin", "port", 8444, 0, 65535, &v) == -1)
		return -1;
	s->admin_port = (unsigned)v;
	if (config_get_uint(cfg, "conductor", "threads", 0, 0, 256, &v) == -1)
		return -1;
	s->threads = (unsigned)v;
	if (config_get_uint(cfg, "conductor", "poll-timeout", 25, 1, 300, &v) == -1)
		return -1;
	s->poll_timeout_s = (unsigned)v;
	if (config_get_uint(cfg, "conductor", "drain-timeout", 10, 0, 3600, &v) == -1)
		return -1;
	s->drain_timeout_s = (unsigned)v;
	if (config_get_uint(cfg, "conductor", "request-timeout", 30, 1, 3600, &v) == -1)
		return -1;
	s->request_timeout_s = (unsigned)v;
	if (config_get_uint(cfg, "conductor", "revert-window", 300, 1, 86400, &v) == -1)
		return -1;
	s->revert_window_s = (unsigned)v;
	if (config_get_uint(cfg, "conductor", "certificate-days", 365, 1, PKI_MAX_DAYS_LEAF, &v) ==
	    -1)
		return -1;
	s->cert_days = (unsigned)v;
	if (config_get_uint(cfg, "conductor", "renew-before-days", 30, 0, PKI_MAX_DAYS_LEAF, &v) ==
	    -1)
		return -1;
	s->renew_before_days = (unsigned)v;
	if (s->renew_before_days > s->cert_days) {
		or_error("renew-before-days (%u) must not exceed certificate-days (%u)",
			 s->renew_before_days, s->cert_days);
		return config_error_at(cfg, "conductor", "renew-before-days");
	}
	if (config_get_uint(cfg, "ca", "days", 3650, 1, PKI_MAX_DAYS_CA, &v) == -1 ||
	    rate_limit_config(cfg, "conductor", &s->rate) == -1)
		return -1;
	s->ca_days = (unsigned)v;
	return config_check_unused(cfg);
}

/* Loads and checks the configuration file; on failure nothing is kept. */
int
settings_load(const char *path, struct conductor_settings *out)
{
	memset(out, 0, sizeof(*out));
	out->cfg = calloc(1, sizeof(*out->cfg));
	if (out->cfg == NULL)
		return or_error("out of memory");
	if (config_load(path, out->cfg) == -1 || load_values(out->cfg, out) == -1)
		goto fail;
	if (out->database == NULL) {
		if (asprintf(&out->database_owned, "sqlite:%s/conductor.db", out->state_dir) < 0) {
			out->database_owned = NULL;
			or_error("out of memory");
			goto fail;
		}
		out->database = out->database_owned;
	}
	return 0;
fail:
	settings_free(out);
	return -1;
}

/* Frees the configuration and every string that came from it. */
void
settings_free(struct conductor_settings *s)
{
	if (s->cfg != NULL) {
		config_free(s->cfg);
		free(s->cfg);
	}
	free(s->database_owned);
	memset(s, 0, sizeof(*s));
}

/* STATE_DIR/file into out; refuses a path that does not fit. */
int
state_path(const struct conductor_settings *s, const char *file, char *out, size_t len)
{
	if ((size_t)snprintf(out, len, "%s/%s", s->state_dir, file) >= len)
		return or_error("%s: state directory path too long", s->state_dir);
	return 0;
}
