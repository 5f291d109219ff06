/*
 * The alarms a conductor's refusal of the router's asset ID calls for, as a
 * pure engine (no I/O besides the alarms' log): `403 duplicate-asset`
 * (another device holds the asset ID there) raises the critical alarm
 * ALARM_ASSET_DUPLICATE, `403 unknown-asset` (no router has it there) the
 * major alarm ALARM_ASSET_UNKNOWN, both about "asset ID X at conductor
 * HOST:PORT". They travel like the agent's other alarms: `onrampctl show
 * alarms`, and the progress reports to the cloud (its fleet dashboard and
 * `onrampctl cloud alarm list`). A conductor that accepts the router clears
 * them; a refusal of another kind or about another asset ID or conductor
 * clears the ones it replaces.
 */
#ifndef ONRAMP_ASSET_ALARM_H
#define ONRAMP_ASSET_ALARM_H

#include "alarm.h"

#include <jansson.h>
#include <time.h>

#define ALARM_ASSET_DUPLICATE "asset ID is held by another device"
#define ALARM_ASSET_UNKNOWN                                                                        \
	"conductor does not know the asset ID: add the router there with onrampctl conductor "     \
	"router add NAME --asset-id ID"

/*
 * The conductor at address answered the router's authentication with error
 * code (e.g. "unknown-asset") for asset_id: raises the alarm that code calls
 * for, clearing the other asset alarms; any other code changes nothing (the
 * asset ID was not what was refused).
 */
void asset_alarm_refused(struct alarms *a, const char *code, const char *address,
			 const char *asset_id, time_t now);

/* A conductor accepted the router: the asset alarms are cleared. */
void asset_alarm_accepted(struct alarms *a, time_t now);

/*
 * The asset alarms that must outlive a restart, for the onboarding state file:
 * the active ones, and those whose latest change has not reached the cloud
 * (so that a router accepted after a restart still clears at the cloud the
 * alarm it raised before). A JSON array of alarm_state_json.
 */
json_t *asset_alarm_state_json(const struct alarms *a);

/*
 * Puts back what asset_alarm_state_json wrote (NULL: nothing), all or
 * nothing: -1 (with or_error, the alarms unchanged) when it is malformed or
 * holds another kind of alarm.
 */
int asset_alarm_restore(struct alarms *a, json_t *list);

#endif
