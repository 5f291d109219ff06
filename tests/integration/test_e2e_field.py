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


def assert_clean_exit(agent):
    """Stops the agent: a clean exit, and no sanitizer report (ASan builds)."""
    agent.stop()
    log = agent.log()
    assert agent.proc.returncode == 0, log[-3000:]
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-3000:]


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
        assert_clean_exit(agent)
    finally:
        stop_burners(procs)
        lab.close()


def default_retry(agent):
    """The agent's configuration with the default retry-base and retry-cap."""
    with open(agent.conf) as f:
        lines = [line for line in f if not line.startswith(("retry-base", "retry-cap"))]
    with open(agent.conf, "w") as f:
        f.writelines(lines)
    return agent


def staging_connect_failures(agent):
    return [d for d in (agent.show() or {"diagnostics": []})["diagnostics"]
            if d["step"] == "staging-connect"]


def test_corrected_cloud_settings_reach_a_router_that_fetched_wrong_ones(tmp_path):
    """Three sites whose staging settings the operator got wrong at the cloud:
    the secret (bad-proof), the port (connect), the root CA (tls-untrusted)."""
    lab = Lab(tmp_path)
    held = None
    try:
        lab.start_squid()
        lab.start_all()
        lab.cloud("org", "add", "acme")
        right = {"psk": lab.staging.psk("sites"), "port": str(lab.staging.port),
                 "ca": lab.staging.ca_export()}
        held_port = free_port()
        held = hold_port(held_port)
        wrong = {"paris": ("--psk-file", lab.production.psk("not-staging")),
                 "lyon": ("--port", str(held_port)),
                 "nice": ("--ca-file", lab.production.ca_export())}
        expect = {"paris": "bad-proof", "lyon": "connect:", "nice": "tls-untrusted:"}
        agents = {}
        for n, site in enumerate(wrong, 1):
            serial = f"{SERIAL}-{n}"
            lab.cloud("site", "add", "acme", site)
            settings = dict(zip(("--psk-file", "--port", "--ca-file"),
                                (right["psk"], right["port"], right["ca"])))
            settings.update([wrong[site]])
            lab.cloud("site", "set", "acme", site, "--conductor", "127.0.0.1",
                      *[x for kv in settings.items() for x in kv])
            state = lab.provision(serial)
            lab.staging.add_router(f"r{n}", serial)
            lab.production.add_router(f"r{n}", serial)
            lab.give_production_info(f"r{n}")
            lab.cloud("claim", "--serial", serial, "--org", "acme", "--site", site)
            agents[site] = default_retry(Agent(lab, state, name=f"agent-{site}")).start()

        for site, agent in agents.items():
            diag = agent.wait_diagnostic(expect[site], timeout=60)
            assert diag["step"] == "staging-connect", diag
            show = agent.show()
            assert show["current"] == "staging-connect"
            assert show["waiting_for"]["what"] == "operator", show["waiting_for"]
            assert "onrampctl cloud site set" in show["waiting_for"]["text"]
        assert "waiting for:   an operator: the staging conductor refuses" in \
            agents["paris"].ctl("show", "onboarding").stdout
        # A restart does not cure it: the stored secret is still the wrong one.
        agents["paris"].stop()
        agents["paris"].start()
        wait_until("bad-proof again after the restart",
                   lambda: "401 bad-proof" in
                   agents["paris"].log().split("onboarding: resuming at step")[-1], timeout=60)

        # The operator corrects the cloud; nothing is done on the routers.
        for site in wrong:
            lab.cloud("site", "set", "acme", site, "--conductor", "127.0.0.1",
                      "--port", right["port"], "--psk-file", right["psk"],
                      "--ca-file", right["ca"])
        corrected = time.monotonic()
        # Within 90 s: connected to staging and given everything up to the production
        # details (a bound on the retry schedule, not a speed).
        for site, agent in agents.items():
            agent.wait_done("production-info", timeout=max(1.0, corrected + 90 -
                                                           time.monotonic()))
        for site, agent in agents.items():
            show = agent.show()
            assert show["conductor"]["which"] == "staging"
            # The cloud learns why the router asked again.
            wait_until(f"{site}: the new fetch reported to the cloud",
                       lambda: [e for e in lab.device_events(show["device"]["serial"])
                                if e["step"] == "onboarding-info" and e["outcome"] == "started"
                                and "fetching the site's settings again" in e["reason"]])
        # And on to running with the operators' migrate, as any router.
        for n, (site, agent) in enumerate(agents.items(), 1):
            proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router",
                                   f"r{n}", "--wait")
            assert proc.returncode == 0, proc.stderr
            agent.wait_done("running", timeout=60)
            assert agent.show()["waiting_for"]["what"] == "done"
        for agent in agents.values():
            assert_clean_exit(agent)
    finally:
        release(held)
        lab.close()


def long_backoff(agent):
    """The agent's configuration with a backoff of minutes: only a retry is quick."""
    with open(agent.conf) as f:
        text = f.read().replace("retry-base = 1\nretry-cap = 2\n",
                                "retry-base = 120\nretry-cap = 600\n")
    with open(agent.conf, "w") as f:
        f.write(text)
    return agent


def set_proxy_password(lab, password, generation):
    """What squid accepts for the router; basic_ncsa_auth rereads its file when the
    file's mtime (whole seconds) changed, so each generation gets its own."""
    lab.set_squid_password(password)
    os.utime(lab.squid["htpasswd"], (time.time(), int(time.time()) + 10 * generation))


def rfc3339(text):
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def waiting_long(agent, what):
    """show onboarding once it waits for `what` with its next try a minute or more away."""
    def check():
        s = agent.show()
        w = s and s["waiting_for"]
        if w and w["what"] == what and w["until"] and \
                rfc3339(w["until"]) - time.time() >= 60:
            return s
        return None
    return wait_until(f"the router waiting for {what}, its next try a minute away", check,
                      timeout=150)


def done_at(show, step):
    return next(s["done"] for s in show["steps"] if s["step"] == step)


def test_retry_tries_now_and_show_says_what_the_router_waits_for(tmp_path, ctl):
    lab = Lab(tmp_path)
    try:
        lab.start_squid()
        lab.start_all()
        state = lab.provision(SERIAL)
        lab.operators(SERIAL, claim=False)
        # squid no longer takes the router's password; the serial is not claimed yet.
        set_proxy_password(lab, "changed-at-the-proxy", 1)
        agent = long_backoff(Agent(lab, state)).start()

        show = waiting_long(agent, "proxy")
        assert show["current"] == "phone-home"
        assert show["last_error"]["reason"].startswith("proxy-auth: ")
        until = show["waiting_for"]["until"]
        text = agent.ctl("show", "onboarding").stdout
        assert "waiting for:   the management proxy" in text
        assert f"(next try at {until})" in text

        # The proxy's operator puts the password back; the router's operator retries.
        set_proxy_password(lab, "proxy-secret-e2e", 2)
        proc = agent.ctl("retry")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("retrying step phone-home now")
        # Now the redirector says: not claimed yet.
        show = waiting_long(agent, "claim")
        assert show["last_error"]["reason"].startswith("not claimed yet")
        assert rfc3339(show["last_error"]["time"]) < rfc3339(until)
        assert "a claim" in agent.ctl("show", "onboarding").stdout
        until = show["waiting_for"]["until"]

        lab.claim(SERIAL)
        proc = agent.ctl("retry")
        assert proc.returncode == 0, proc.stderr
        assert f"(it was waiting until {until})" in proc.stdout
        agent.wait_done("phone-home", timeout=60)
        # Tried again well before the backoff would have: an order, not a speed.
        assert rfc3339(done_at(agent.show(), "phone-home")) < rfc3339(until)

        agent.wait_done("production-info", timeout=60)
        show = agent.show()
        assert show["waiting_for"]["what"] == "conductor"
        assert "migrate" in show["waiting_for"]["text"]
        assert show["waiting_for"]["until"] is None
        proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router", "r1",
                               "--wait")
        assert proc.returncode == 0, proc.stderr
        agent.wait_done("running", timeout=60)
        assert agent.show()["waiting_for"]["what"] == "done"
        proc = agent.ctl("retry")
        assert proc.returncode == 1 and "nothing to retry" in proc.stderr

        # The command line: documented, and bad input refused.
        assert "usage: onrampctl retry" in ctl("retry", "--help").stdout
        assert "retry" in ctl("--help").stdout
        assert "what the router waits" in ctl("show", "--help").stdout
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__)))), "docs", "man", "onrampctl.1")) as f:
            assert ".SS retry" in f.read()
        proc = agent.ctl("retry", "now")
        assert proc.returncode == 2 and proc.stderr.startswith("onrampctl: retry: ")
        proc = ctl("retry", "--socket", os.path.join(lab.dir, "no-agent.sock"))
        assert proc.returncode == 1 and proc.stderr.startswith("onrampctl: retry: ")
        assert_clean_exit(agent)
    finally:
        lab.close()
