/*
 * The agent's control socket: a Unix stream socket, mode 0600, one JSON
 * object per line each way (the protocol is in lib/control_client.h and
 * docs/agent.md). Engines register named commands; this file does the I/O.
 */
#ifndef ONRAMP_CONTROL_H
#define ONRAMP_CONTROL_H

#include <event2/event.h>
#include <jansson.h>

/*
 * Handles one request (borrowed). 0: *result is a new object sent as
 * "result". -1: the or_error() sentence is sent as "error".
 */
typedef int (*control_fn)(void *arg, json_t *request, json_t **result);

struct control;

/* Listens on path; refuses when another agent answers there. */
int control_open(struct event_base *base, const char *path, struct control **out);

/* Adds a command such as "show management-proxy". */
int control_register(struct control *ctl, const char *command, control_fn fn, void *arg);

/* Stops listening, closes every connection and removes the socket file. */
void control_close(struct control *ctl);

#endif
