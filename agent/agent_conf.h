/*
 * The agent's configuration (agent.conf, documented key by key in
 * docs/agent.conf.md) and the bootstrap file, read into one struct. Loading
 * refuses unknown keys and bad values with FILE:LINE; nothing is half-read.
 */
#ifndef ONRAMP_AGENT_CONF_H
#define ONRAMP_AGENT_CONF_H

#include "core/log.h"
#include "core/secret.h"
#include "dhcp_packet.h"
#include "proxy_book.h"

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>

#define AGENT_CONF_DEFAULT "/etc/onramp/agent.conf"
#define AGENT_STATE_DIR_DEFAULT "/var/lib/onramp"
#define AGENT_MAX_IFACES BOOK_MAX_IFACES
#define AGENT_ASSET_ID_MAX 64
#define AGENT_URL_MAX 255

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

	/* [device]: where the factory's identity lives */
	char tcti[256];			       /* "" with software_identity */
	bool software_identity;		       /* no TPM: keys in files (a warning at start) */
	char asset_id[AGENT_ASSET_ID_MAX + 1]; /* "": the device's serial */

	/* [onboarding]: on when a redirector is configured */
	bool onboarding;
	char redirector_url[AGENT_URL_MAX + 1];
	char redirector_ca[PATH_MAX];
	unsigned revert_window;	  /* seconds, router-side migrate */
	unsigned retry_base;	  /* seconds: backoff ceiling of the first retry */
	unsigned retry_cap;	  /* seconds: largest backoff ceiling */
	unsigned connect_timeout; /* seconds, every HTTPS connection */
	unsigned poll_wait;	  /* seconds a conductor command poll may be held */
	char test_kill_after[48]; /* test aid: SIGKILL itself once this event is saved */
};

/* Reads path, then the bootstrap file and the password file it names. */
int agent_conf_load(const char *path, struct agent_conf *out);

/* The same from text (for tests); files it names are still read. */
int agent_conf_parse(const char *path, const char *text, struct agent_conf *out);

/* Zeroes the password. */
void agent_conf_free(struct agent_conf *conf);

#endif
