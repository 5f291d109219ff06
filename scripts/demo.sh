#!/bin/sh
# The end-to-end demo: redirector, cloud, staging and production conductors,
# squid and swtpm on 127.0.0.1, and one router agent onboarding through them.
# The programs it needs are not written yet (see docs/status.md).
echo "demo: not available yet: the end-to-end flow (agent, cloud, conductors) has not landed;" >&2
echo "demo: see docs/status.md for what is done" >&2
exit 1
