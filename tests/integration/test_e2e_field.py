"""End to end (issue 11): the flow survives what operators and sites really
do. All real: squid, the redirector, the cloud, two conductors, the agent.

1. Router-side migrates run again and again under CPU load: every one ends,
   on production or back on staging with its reason (the hand-off of the
   migrate job to the worker was lost about one time in three).
2. The cloud's site settings corrected by the operator reach a router that
   already fetched the wrong ones (pre-shared secret, port, root CA), with the
   default retry settings and nothing done on the router.
7. `onrampctl retry` makes the agent try its step now instead of waiting for
   its backoff; `show onboarding` says what the router waits for."""
import os
import re
import subprocess
import sys
import time

from conftest import free_port
from e2elab import Agent, Lab, hold_port, release, wait_until

SERIAL = "SSR1000-E2E-0011"
MIGRATES = 24
BURNERS = 3


def burners(n=BURNERS):
    """n bounded CPU burners (the test kills them by PID)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_burners(procs):
    for p in procs:
        p.kill()
        p.wait()


def on_staging(agent):
    s = agent.show()
    return s is not None and s["connection"] == "up" and s["conductor"]["which"] == "staging" \
        and next(x["done"] for x in s["steps"] if x["step"] == "staging-connect")


def test_router_side_migrates_under_cpu_load_all_end_with_an_outcome(tmp_path):
    lab = Lab(tmp_path, revert_window=2)
    procs = []
    try:
        agent = lab.router(SERIAL)
        agent.wait_done("production-info", timeout=60)
        lab.production.stop()  # its port held: every attempt there is refused
        procs = burners()
        for i in range(MIGRATES):
            wait_until(f"the router on staging before migrate {i + 1}",
                       lambda: on_staging(agent), timeout=60)
            proc = agent.ctl("migrate", "conductor", lab.production.address, "--timeout", "40",
                             timeout=60)
            # Never "no outcome": the revert window closed and it is back on staging.
            assert proc.returncode == 1, (i, proc.stdout, proc.stderr)
            assert "failed, back on the staging conductor: could not reach the production " \
                "conductor" in proc.stderr, (i, proc.stderr)
            show = agent.show()
            assert show["router_migration"]["state"] == "failed"
            assert show["router_migration"]["id"] == i + 1
            assert "could not reach the production conductor" in \
                show["router_migration"]["reason"]
            assert show["migrations_failed"] == i + 1
        # The last one, under the same load, reaches production.
        lab.production.start()
        wait_until("the router on staging again", lambda: on_staging(agent), timeout=60)
        proc = agent.ctl("migrate", "conductor", lab.production.address, "--timeout", "60",
                         timeout=90)
        assert proc.returncode == 0, proc.stderr
        assert f"production conductor {lab.production.address}" in proc.stdout
        agent.wait_done("running", timeout=60)
        show = agent.show()
        assert show["router_migration"] == {"id": MIGRATES + 1, "state": "succeeded",
                                            "reason": ""}
        assert show["conductor"]["which"] == "production"
        assert "a migration is under way already" not in agent.log()
        states = [m["state"] for m in lab.staging.router()["migrations"]]
        assert states.count("failed") == MIGRATES and states[-1] == "succeeded"
    finally:
        stop_burners(procs)
        lab.close()
