/*
 * The agent's configuration (agent.conf, documented key by key in
 * docs/agent.conf.md) and the bootstrap file, read into one struct. Loading
 * refuses unknown keys and bad values with FILE:LINE; nothing is half-read.
 */
#ifndef ONRAMP_AGENT_CONF_H
#define ONRAMP_AGENT_CONF_H

#include "dhcp_packet.h"
#include "log.h"
#include "proxy_book.h"
#include "secret.h"

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>

#define AGENT_CONF_DEFAULT "/etc/onramp/agent.conf"
#define AGENT_STATE_DIR_DEFAULT "/var/lib/onramp"
#define AGENT_MAX_IFACES BOOK_MAX_IFACES

enum agent_dhcp { AGENT_DHCP_OFF = 0, AGENT_DHCP_CLIENT, AGENT_DHCP_HOOK };

struct agent_iface_conf {
	char name[IFNAMSIZ];
	enum agent_dhcp dhcp;
	bool discovery;
	char vendor_class[DHCP_VENDOR_CLASS_MAX + 1];
	unsigned route_metric;
	unsigned lease_divisor; /* test aid; 1 */
};

struct agent_conf {
	char state_dir[PATH_MAX];
	char control_socket[PATH_MAX];
	char bootstrap_file[PATH_MAX];
	bool bootstrap_loaded; /* the bootstrap file existed */
	enum log_level log_level;

	enum proxy_mode mode;
	struct proxy_addr statics[BOOK_MAX_STATIC];
	size_t n_static;
	struct proxy_addr bootstrap[BOOK_MAX_STATIC];
	size_t n_bootstrap;
	char proxy_user[128]; /* "" when the proxy needs no credentials */
	struct secret proxy_password;
	char proxy_auth[8];	  /* "any", "basic" or "digest" */
	unsigned health_interval; /* seconds */
	unsigned health_timeout;

	struct agent_iface_conf iface[AGENT_MAX_IFACES];
	size_t n_iface;
};

/* Reads path, then the bootstrap file and the password file it names. */
int agent_conf_load(const char *path, struct agent_conf *out);

/* The same from text (for tests); files it names are still read. */
int agent_conf_parse(const char *path, const char *text, struct agent_conf *out);

/* Zeroes the password. */
void agent_conf_free(struct agent_conf *conf);

const char *agent_dhcp_name(enum agent_dhcp dhcp);

#endif
