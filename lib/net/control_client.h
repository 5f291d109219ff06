/*
 * The client half of the agent's control socket: a Unix stream socket
 * carrying one JSON object per line each way. A request is
 * {"command":"show management-proxy", ...arguments}; the answer is
 * {"ok":true,"result":{...}} or {"ok":false,"error":"one sentence"}.
 * docs/agent.md lists the commands.
 */
#ifndef ONRAMP_CONTROL_CLIENT_H
#define ONRAMP_CONTROL_CLIENT_H

#include <jansson.h>

#define ONRAMP_AGENT_SOCKET "/run/onramp/agent.sock"
#define CONTROL_LINE_MAX (256 * 1024)
#define CONTROL_TIMEOUT_MS 5000

/*
 * Sends request (borrowed) to the agent at socket_path and waits for the
 * answer. 0: *result is the "result" object (new reference). -1 with
 * or_error(): no agent there, a timeout, a malformed answer, or the agent's
 * own error sentence.
 */
int control_call(const char *socket_path, const json_t *request, json_t **result);

#endif
