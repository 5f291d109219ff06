/*
 * The onboarding flow's frontend, on the agent's event loop: it drives the
 * pure engine (onboard_engine.c), persists every transition with the data the
 * step produced in STATE_DIR/onboarding.json (lib/state) before acting on it,
 * hands each network step to the worker thread (onboard_worker.c), keeps the
 * progress reports (onboard_events.c) and the connection state, and answers
 * `onrampctl show onboarding`, `onrampctl migrate conductor` and
 * `onrampctl retry` on the control socket. See docs/agent.md, "Onboarding".
 */
#ifndef ONRAMP_ONBOARD_H
#define ONRAMP_ONBOARD_H

#include <stdbool.h>

struct agent;
struct onboard;

#define ONBOARD_STATE_FILE "onboarding.json"

/*
 * Registers the control commands and, when the configuration has a
 * redirector, loads the state and starts the worker and the flow.
 */
int onboard_start(struct agent *agent, struct onboard **out);

/*
 * Stops the flow (the state is saved at every transition, nothing is lost).
 * Returns false when the worker was still inside a request after a few
 * seconds: it is left running and the process should _exit.
 */
bool onboard_stop(struct onboard *ob);

#endif
