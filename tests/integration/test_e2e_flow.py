"""End to end (issue 7): a factory-fresh router onboards itself through squid,
all real: redirector, cloud, staging and production conductors, swtpm, the
agent. The flow of `make demo`, the same on PostgreSQL, and the agent killed
with -9 at every step boundary."""
import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

from conductorlib import PEERING
from e2elab import STEPS, Lab, wait_until

SERIAL = "SSR1000-E2E-0001"


@pytest.fixture
def lab(e2e_lab):
    return e2e_lab


def migrate_on_staging(lab, *extra):
    return lab.staging.ctl("migrate", "conductor", lab.production.address, "router", "r1",
                           *extra)


def run_to_running(lab, agent):
    """The operators' migrate once the router has its production details."""
    agent.wait_done("production-info")
    proc = migrate_on_staging(lab, "--wait")
    assert proc.returncode == 0, proc.stderr
    agent.wait_done("running")
    wait_until("the production conductor to show the router running",
               lambda: lab.production.asset_state(SERIAL) == "running")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_demo_flow_through_squid_with_the_key_in_swtpm(lab, swtpm):
    agent = lab.router(SERIAL, tcti=swtpm.tcti)
    state = agent.state
    run_to_running(lab, agent)

    show = agent.show()
    assert show["current"] == "running" and show["done"] is True
    assert show["connection"] == "up"
    assert [s["step"] for s in show["steps"]] == STEPS
    assert all(s["done"] for s in show["steps"])
    assert show["device"]["serial"] == SERIAL and show["device"]["tpm"] is True
    assert show["site"] == {"organization": "acme", "site": "paris",
                            "conductor": [lab.staging.address]}
    assert show["conductor"]["which"] == "production"
    assert show["conductor"]["address"] == lab.production.address
    assert show["conductor"]["router"] == "r1"
    text = agent.ctl("show", "onboarding").stdout
    assert "connection:    up" in text and "current step:  running" in text
    assert f"production {lab.production.address}, router r1" in text

    # Every step reached the cloud, with its time and outcome.
    def cloud_steps():
        events = lab.device_events(SERIAL)
        steps = {e["step"] for e in events if e["outcome"] == "ok" and e["source"] == "device"}
        return events if set(STEPS) <= steps else None
    events = wait_until("every step reported to the cloud", cloud_steps)
    assert all(e["time"].endswith("Z") for e in events)
    # The operator sees it running, even after the production conductor's own
    # certificate and configuration reports, which come later.
    wait_until("production's certificate reported",
               lambda: [e for e in lab.device_events(SERIAL)
                        if e["step"] == "certificate" and e["time"] >=
                        next(r["time"] for r in lab.device_events(SERIAL)
                             if r["step"] == "running")] or None)
    assert lab.cloud_json("device", "show", SERIAL)["stage"] == "running"
    # ... and to the conductors once connected.
    wait_until("reports on the staging conductor",
               lambda: {"staging-connect", "certificate", "configuration"} <=
               {e["step"] for e in lab.staging.router().get("events", [])})
    wait_until("reports on the production conductor",
               lambda: "running" in {e["step"] for e in lab.production.router().get("events", [])})
    assert lab.staging.asset_state(SERIAL) == "migrated"

    # Only through squid: each server was reached with CONNECT.
    connects = " ".join(lab.squid_connects())
    for port in (lab.redirect_port, lab.cloud_port, lab.staging.port, lab.production.port):
        assert f"CONNECT 127.0.0.1:{port} " in connects, port

    # The certificate key is in the TPM and the certificate is production's.
    assert os.path.exists(os.path.join(state, "certkey.json"))
    assert not os.path.exists(os.path.join(state, "certkey.pem"))
    proc = subprocess.run(["openssl", "verify", "-CAfile", lab.production.ca_export(),
                           os.path.join(state, "conductor-cert.pem")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    # No secret in the agent's log or anywhere in the router's state, nor in show.
    agent.stop()
    assert agent.proc.returncode == 0, agent.log()[-2000:]
    secrets = lab.secrets()
    assert len(secrets) >= 5
    for secret in secrets:
        assert secret not in agent.log().encode()
        assert secret not in text.encode()
        for root, _, files in os.walk(state):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    assert secret not in f.read(), (name, secret[:4])
    # The claim secret is in no server's log, database or state either (issue 12 point 5).
    with open(os.path.join(lab.dir, f"{SERIAL}.claim-secret"), "rb") as f:
        claim = f.read().strip()
    assert claim in secrets
    for role in ("redirectd", "cloudd"):
        assert claim not in lab.log(role).encode()
        for root, _, files in os.walk(os.path.join(lab.dir, f"{role}-state")):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    assert claim not in f.read(), (role, name)


def steps_of(events):
    """A conductor's reports of a router as (step, outcome), in the order received."""
    return [(e["step"], e["outcome"]) for e in events]


def test_steps_done_at_staging_reach_staging_before_the_router_leaves_it(lab):
    """A router offline at staging while its operator gives it its production
    details, a new configuration and a --force migrate gets the three commands in
    one poll answer when it is back. Every step it did at staging is reported to
    staging before it leaves (staging's view of the router is complete), and none
    to production or twice. Before, the agent sent its reports only before its
    next poll: there was none on staging, so they all went to production."""
    agent = lab.router(SERIAL, operators={"production_info": False})
    agent.wait_done("configuration")
    wait_until("the first configuration reported to staging",
               lambda: ("configuration", "ok") in steps_of(
                   lab.staging.router().get("events", [])))
    agent.stop()
    assert agent.proc.returncode == 0, agent.log()[-3000:]

    lab.give_production_info()
    config = dict(PEERING, hub={"name": "hub-west", "addresses": ["127.0.0.1:1281"]})
    path = os.path.join(lab.dir, "r1-west.json")
    with open(path, "w") as f:
        json.dump(config, f)
    lab.staging.ok("router", "set", "r1", "--config", path)
    proc = migrate_on_staging(lab, "--force")
    assert proc.returncode == 0, proc.stderr
    queued = [c["type"] for c in lab.staging.router()["commands"] if c["state"] == "queued"]
    assert queued == ["set-production-conductor", "apply-config", "migrate"], queued

    agent.start()
    agent.wait_done("running")
    wait_until("the production conductor to show the router running",
               lambda: lab.production.asset_state(SERIAL) == "running")
    assert lab.staging.asset_state(SERIAL) == "migrated"
    wait_until("production's own reports", lambda: ("running", "ok") in steps_of(
        lab.production.router().get("events", [])))

    staging = steps_of(lab.staging.router()["events"])
    production = steps_of(lab.production.router()["events"])
    # Each step once, where it was done (production sends its own certificate and
    # configuration, whose reports may follow).
    for step, times in (("staging-connect", 2), ("certificate", 1), ("configuration", 2),
                        ("production-info", 1)):
        assert staging.count((step, "ok")) == times, (step, staging)
    for step in ("staging-connect", "production-info"):
        assert (step, "ok") not in production, production
    assert production.count(("migrate", "started")) == 1, production
    assert production.count(("running", "ok")) == 1, production
    agent.stop()
    assert agent.proc.returncode == 0, agent.log()[-3000:]


def on_staging(agent):
    s = agent.show()
    return s is not None and s["connection"] == "up" and s["conductor"]["which"] == "staging"


def migrate_on_router(lab, agent, timeout=60):
    """onrampctl migrate conductor on the router: the migration its operator starts there."""
    return agent.ctl("migrate", "conductor", lab.production.address, "--timeout", str(timeout),
                     timeout=timeout + 30)


def test_router_side_migrate_reports_the_steps_done_at_staging_to_staging(lab):
    """A migration started on the router (`onrampctl migrate conductor`) cancels the
    held poll on staging; the reports of the steps done there, its own `migrate
    started` among them, still go to staging before the router leaves, as for the
    conductor's migrate, and none to production. Before, the reports recorded since
    that poll began went to production."""
    agent = lab.router(SERIAL)
    agent.wait_done("production-info")
    wait_until("the router on staging", lambda: on_staging(agent))
    proc = migrate_on_router(lab, agent)
    assert proc.returncode == 0, proc.stderr
    agent.wait_done("running")
    wait_until("production's own reports", lambda: ("running", "ok") in steps_of(
        lab.production.router().get("events", [])))
    assert lab.staging.router()["migrations"][-1]["state"] == "succeeded"

    staging = lab.staging.router()["events"]
    production = lab.production.router()["events"]
    for step in ("staging-connect", "certificate", "configuration", "production-info"):
        assert (step, "ok") in steps_of(staging), (step, staging)
    started = [e for e in staging if (e["step"], e["outcome"]) == ("migrate", "started")]
    assert len(started) == 1 and "requested on the router" in started[0]["reason"], staging
    for step in ("staging-connect", "production-info"):
        assert (step, "ok") not in steps_of(production), production
    assert ("migrate", "started") not in steps_of(production), production
    assert steps_of(production).count(("running", "ok")) == 1, production
    agent.stop()
    assert agent.proc.returncode == 0, agent.log()[-3000:]


def test_router_side_migrate_goes_on_when_staging_does_not_answer(lab):
    """The staging conductor stopped (SIGSTOP: its port still takes connections, nothing
    answers) when the router's operator migrates: the router does not wait for it past
    a short bound, it migrates; the reports for staging keep their fallback (they go
    to production)."""
    agent = lab.router(SERIAL)
    agent.wait_done("production-info")
    wait_until("the router on staging", lambda: on_staging(agent))
    os.kill(lab.staging.proc.pid, signal.SIGSTOP)
    try:
        proc = migrate_on_router(lab, agent, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert f"production conductor {lab.production.address}" in proc.stdout
        wait_until("the router on production", lambda: (agent.show() or {}).get(
            "conductor", {}).get("which") == "production" and agent.done("running"), timeout=60)
        wait_until("the router's migrate started at production", lambda: ("migrate", "started")
                   in steps_of(lab.production.router().get("events", [])))
        assert "what the staging conductor is owed was not delivered to it before leaving" in agent.log()
    finally:
        os.kill(lab.staging.proc.pid, signal.SIGCONT)
    agent.stop()
    assert agent.proc.returncode == 0, agent.log()[-3000:]


def test_a_stop_while_staging_gets_its_reports_resumes_the_migration_at_the_next_start(lab):
    """The agent stopped while a router-side migrate delivers staging's reports (staging
    does not answer: SIGSTOP): the migration was recorded before that delivery, so the
    next start resumes it to production. Before, it was given up as "restarted during
    the migration; on staging" and the router stayed on staging."""
    agent = lab.router(SERIAL)
    agent.wait_done("production-info")
    wait_until("the router on staging", lambda: on_staging(agent))
    os.kill(lab.staging.proc.pid, signal.SIGSTOP)
    try:
        proc = agent.ctl("migrate", "conductor", lab.production.address, "--no-wait")
        assert proc.returncode == 0, proc.stderr
        # Staging's delivery waits up to 5 s for a conductor that does not answer.
        time.sleep(1.5)
        agent.stop()
        assert agent.proc.returncode == 0, agent.log()[-3000:]
    finally:
        os.kill(lab.staging.proc.pid, signal.SIGCONT)
    agent.start()
    wait_until("the router on production", lambda: (agent.show() or {}).get(
        "conductor", {}).get("which") == "production" and agent.done("running"), timeout=90)
    show = agent.show()
    assert "restarted during the migration" not in (show.get("last_error") or ""), show
    wait_until("staging told of the migration", lambda: (lab.staging.router().get(
        "migrations") or [{}])[-1].get("state") == "succeeded")
    assert "stopped before the migration began" not in agent.log()
    agent.stop()
    assert agent.proc.returncode == 0, agent.log()[-3000:]


def test_same_flow_on_postgresql(tmp_path, postgres):
    lab = Lab(tmp_path, database_for=lambda name: postgres.new_database(f"e2e_{name}"))
    try:
        agent = lab.router(SERIAL)
        run_to_running(lab, agent)
        assert agent.show()["connection"] == "up"
        events = wait_until("the running report in the cloud",
                            lambda: [e for e in lab.device_events(SERIAL)
                                     if e["step"] == "running"])
        assert events[0]["outcome"] == "ok"
        for role in ("redirectd", "cloudd"):
            assert "sqlite" not in open(os.path.join(lab.dir, f"{role}.conf")).read()
    finally:
        lab.close()


BOUNDARIES = ["find-proxy", "phone-home", "authenticate", "onboarding-info", "staging-connect",
              "certificate", "configuration", "production-info", "migrate:started", "migrate",
              "running"]


def test_killed_with_9_at_every_step_boundary_it_still_ends_running(lab, swtpm):
    agent = lab.router(SERIAL, tcti=swtpm.tcti, start=False)
    state = agent.state
    identity = sha256(os.path.join(state, "identity.json"))
    certkey = None
    crossed_together = []
    for boundary in BOUNDARIES:
        step = boundary.split(":")[0]
        # The conductor's commands (certificate, configuration, production-info)
        # may complete in one save with the step before; that boundary was then
        # crossed in the previous run and cannot be killed at on its own.
        if boundary != "migrate:started" and os.path.exists(os.path.join(state,
                                                                         "onboarding.json")):
            with open(os.path.join(state, "onboarding.json")) as f:
                if step in json.load(f)["state"]["engine"]["done"]:
                    crossed_together.append(boundary)
                    continue
        agent.write_conf(tcti=swtpm.tcti, extra=f"test-kill-after = {boundary}\n")
        agent.start()
        if boundary == "migrate:started":
            # The staging conductor migrates a router that is online again.
            wait_until("the router on staging", lambda: (agent.show() or {}).get("connection")
                       == "up")
            wait_until("the staging conductor to migrate the router",
                       lambda: migrate_on_staging(lab).returncode == 0, interval=0.5)
        try:
            agent.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"not killed at {boundary}: {agent.log()[-3000:]}")
        assert agent.proc.returncode == -9, (boundary, agent.log()[-3000:])
        assert f"test-kill-after {boundary}: killing myself" in agent.log()
        if boundary != "migrate:started":
            # The state file says the step is done: the kill came after the save.
            with open(os.path.join(state, "onboarding.json")) as f:
                assert step in json.load(f)["state"]["engine"]["done"], boundary
        if os.path.exists(os.path.join(state, "certkey.json")):
            certkey = certkey or sha256(os.path.join(state, "certkey.json"))
            assert sha256(os.path.join(state, "certkey.json")) == certkey
    agent.write_conf(tcti=swtpm.tcti)
    agent.start()
    # "running" was saved before the last kill: wait for this run's connection.
    show = wait_until("the router connected to production again",
                      lambda: (lambda s: s if s and s["connection"] == "up" and
                               s["conductor"]["which"] == "production" else None)
                      (agent.show()), timeout=40)
    assert show["current"] == "running" and show["conductor"]["which"] == "production"
    wait_until("the production conductor to show the router running",
               lambda: lab.production.asset_state(SERIAL) == "running")
    # Same TPM keys all along; one certificate from each conductor, no more.
    assert sha256(os.path.join(state, "identity.json")) == identity
    assert sha256(os.path.join(state, "certkey.json")) == certkey
    assert len(lab.staging.router()["certificates"]) == 1
    assert len(lab.production.router()["certificates"]) == 1
    assert [m["state"] for m in lab.staging.router()["migrations"]] == ["succeeded"]
    # Each restart resumed where the last one stopped (none started over).
    assert set(crossed_together) <= {"configuration", "production-info"}, crossed_together
    assert agent.log().count("onboarding: resuming at step") == \
        len(BOUNDARIES) - len(crossed_together)
    assert "starting over" not in agent.log()
    agent.stop()
    assert agent.proc.returncode == 0
