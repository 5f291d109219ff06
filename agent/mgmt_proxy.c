/*
 * Reads the applied peering configuration for its management-proxy section
 * and hands it to the proxy book. The file is the agent's own state, written
 * only after the schema check, but it is checked again here: a damaged file
 * leaves the local settings in force rather than none.
 */
#include "mgmt_proxy.h"

#include "agent.h"
#include "core/error.h"
#include "core/log.h"
#include "proto/peering_config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

/* See mgmt_proxy.h. */
void
mgmt_proxy_apply_stored(struct agent *a, time_t now)
{
	struct peering_mgmt_proxy mp = {0};
	enum proxy_mode mode = PROXY_MODE_DISABLED;
	char path[PATH_MAX + sizeof(PEERING_STATE_FILE) + 1];
	json_t *config = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", a->conf.state_dir, PEERING_STATE_FILE);
	if (stat(path, &st) == -1 && errno == ENOENT)
		goto apply;
	if (peering_config_load(path, NULL, &config) == -1 ||
	    peering_config_mgmt_proxy(config, &mp) == -1 ||
	    (mp.present && proxy_mode_parse(mp.mode, &mode) == -1)) {
		log_error("management proxy: %s; the local settings stay in force", or_errmsg());
		mp.present = false;
	}
apply:
	proxy_book_set_conductor(&a->book, mp.present, mode, mp.statics, mp.n_static, now);
	if (a->health != NULL)
		health_kick(a->health);
	json_decref(config);
}
