"""End to end (issue 7): what goes wrong before any server answers is kept
with its reason, shown by `onrampctl show onboarding`, and reported to the
cloud once it is reachable: the proxy unreachable (and its alarm), a proxy
that intercepts TLS (certificate not trusted), the proxy wanting other
credentials (407), and the router not claimed yet."""
import json
import socket
import time

import pytest

from cloud_env import free_port
from e2elab import Agent, Lab, wait_until
from netservices import InterceptingProxy, LocalCA, LocalDns, Netns

SERIAL = "SSR1000-E2E-0003"


def test_squid_cannot_resolve_the_redirector_the_diagnostic_is_dns(tmp_path):
    """squid 5.7 answers a name its resolver refuses with 500 ERR_CANNOT_FORWARD
    (issue 11 point 5): the agent's diagnostic is `dns` with the host name, shown
    by `show onboarding` and reported to the cloud once it is reached. Servers,
    squid and agent share a loopback-only namespace whose only resolver is a
    dnsmasq without upstream: no query leaves the machine."""
    ns = Netns("e2edns")
    dns = LocalDns(ns)
    lab = Lab(tmp_path, ns=ns.name)
    host = "redirect.onramp-test.invalid"
    try:
        lab.start_all()
        state = lab.provision(SERIAL)
        lab.operators(SERIAL)
        lab.start_squid(resolver="127.0.0.1")
        agent = Agent(lab, state, ns=ns.name,
                      redirect_url=f"https://{host}:{lab.redirect_port}").start()
        diag = agent.wait_diagnostic("dns:")
        assert diag["step"] == "phone-home"
        assert diag["reason"].startswith(
            f"dns: phone home: proxy 127.0.0.1:{lab.squid['port']} cannot resolve the "
            f"server's name '{host}'"), diag
        assert "ERR_CANNOT_FORWARD" in diag["reason"]
        assert agent.show()["connection"].startswith("down - dns: ")
        assert host in agent.ctl("show", "onboarding").stdout
        assert host in dns.queries()
        agent.stop()
        # The right address: on it goes, and the cloud learns what happened before.
        agent.write_conf()
        agent.start()
        agent.wait_done("onboarding-info")
        wait_until("the dns diagnostic in the cloud", lambda: [
            e for e in lab.device_events(SERIAL) if e["outcome"] == "failed" and
            e["reason"].startswith("dns: ") and host in e["reason"]])
    finally:
        lab.close()
        dns.stop()
        ns.delete()


@pytest.fixture
def lab(e2e_lab):
    return e2e_lab


def test_diagnostics_before_any_server_answers_reach_the_cloud_later(lab, tmp_path):
    lab.start_all()
    state = lab.provision(SERIAL)
    lab.operators(SERIAL, claim=False)
    port = free_port()
    lab.start_squid(port=port)
    lab.stop_squid()
    lab.release_squid_port()

    # 0. Something accepts on the proxy's address but never answers: the phone home
    #    waits for its connect timeout on the worker thread, and the control socket
    #    answers at once meanwhile.
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", port))
    silent.listen(64)
    try:
        agent = Agent(lab, state).start()
        wait_until("phone home under way", lambda: (agent.show() or {}).get("current") ==
                   "phone-home")
        for _ in range(5):
            started = time.monotonic()
            show = agent.show()
            assert time.monotonic() - started < 1.0
            assert show["activity"] == "in progress"
            time.sleep(0.3)
        agent.wait_diagnostic("timeout:")
    finally:
        silent.close()
    # The agent's proxy is squid's address, and nothing listens there now.
    lab.stop_squid()

    # 1. Proxy unreachable: a diagnostic, and the proxy book's critical alarm.
    diag = agent.wait_diagnostic("proxy-unreachable:")
    assert diag["step"] == "phone-home"
    assert agent.show()["connection"].startswith("down - proxy-unreachable: ")
    alarms = agent.ctl("show", "alarms", "--json").stdout
    assert "Management Proxy is unreachable" in alarms

    # 2. An intercepting proxy on that address: certificate not trusted.
    ca_dir = tmp_path / "rogue"
    ca_dir.mkdir()
    rogue = LocalCA(str(ca_dir), "rogue inspection CA")
    lab.release_squid_port()
    mitm = InterceptingProxy(*rogue.issue("mitm", ["IP:127.0.0.1"]), port=port)
    try:
        agent.wait_diagnostic("tls-untrusted:")
        assert mitm.connects and mitm.intercepted == 0
    finally:
        mitm.stop()

    # 3. squid whose rules refuse the CONNECT: 403.
    lab.start_squid(port=port, forbid_connect=True)
    agent.wait_diagnostic("proxy-forbidden:")
    lab.stop_squid()

    # 4. squid, but it does not know the router's password: 407.
    lab.set_squid_password("not-what-the-router-has")
    lab.start_squid(port=port)
    agent.wait_diagnostic("proxy-auth:")

    # 5. The right password: the redirector answers, the router is not claimed yet.
    lab.set_squid_password("proxy-secret-e2e")
    diag = agent.wait_diagnostic("not claimed yet")
    assert diag["count"] >= 1
    show = agent.show()
    assert show["current"] == "phone-home"
    assert show["connection"].startswith("down - not claimed yet")
    assert show["next_attempt"] is not None
    text = agent.ctl("show", "onboarding").stdout
    assert "diagnostics (newest first):" in text and "proxy-unreachable" in text

    # 6. Claimed: it goes on, and every earlier reason reaches the cloud.
    lab.claim(SERIAL)
    agent.wait_done("onboarding-info")

    def reported():
        events = lab.device_events(SERIAL)
        reasons = " | ".join(e["reason"] or "" for e in events if e["source"] == "device")
        want = ["timeout:", "proxy-unreachable:", "tls-untrusted:", "proxy-forbidden:", "proxy-auth:",
                "not claimed yet",
                "Management Proxy is unreachable"]
        return events if all(w in reasons for w in want) else None
    events = wait_until("the diagnostics in the cloud", reported)
    alarm_events = [e for e in events if e["step"] == "alarm"]
    # Raised, then cleared (again each time the proxy went away between phases).
    outcomes = [e["outcome"] for e in alarm_events]
    assert outcomes[0] == "failed" and outcomes[-1] == "ok", outcomes
    assert all("Management Proxy is unreachable" in e["reason"] for e in alarm_events)
    # The alarm's last change is now reported, as the proxy book keeps it.
    wait_until("the alarm marked reported", lambda: '"reported":true' in
               agent.ctl("show", "alarms", "--json").stdout.replace(" ", ""))
    assert all(d["reported"] for d in agent.show()["diagnostics"])
    # The cloud's device record shows the stage and the last failed step.
    device = lab.cloud_json("device", "show", SERIAL)
    assert device["stage"] != "imported"
    # The proxy password was never logged.
    assert b"proxy-secret-e2e" not in agent.log().encode()


def test_an_alarm_cleared_within_a_probe_interval_never_leaves_the_router(tmp_path):
    """Issue 14 point 7: a critical alarm raised and cleared within one probe
    interval (a probe before the way out was up) is no event: neither the
    cloud nor the conductor hear of it, and `show alarms` forgets it. A dead
    proxy's alarm still reaches both."""
    lab = Lab(tmp_path)
    holders = []
    try:
        agent = lab.router("SSR1000-E2E-0014", start=False)
        # Two more static proxies, bound but not listening: their probes are
        # refused. Higher ports than squid's, so that squid stays in use.
        while len(holders) < 2:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] > lab.squid["port"]:
                holders.append(s)
            else:
                s.close()
        late, dead = (f"127.0.0.1:{h.getsockname()[1]}" for h in holders)
        with open(agent.conf) as f:
            text = f.read()
        with open(agent.conf, "w") as f:
            f.write(text.replace("health-interval = 1\n",
                                 f"health-interval = 8\nstatic = {late}\nstatic = {dead}\n") +
                    "[interface lo]\ndhcp = hook\n")
        agent.start()
        wait_until("the alarm about the late proxy",
                   lambda: late in agent.ctl("show", "alarms", "--json").stdout)
        holders[0].listen(8)
        # a hook event probes at once: the late proxy answers within the interval
        proc = agent.ctl("dhcp-hook", "lo", "bound")
        assert proc.returncode == 0, proc.stderr
        wait_until("the alarm cleared", lambda: f"alarm cleared: critical: Management Proxy "
                   f"is unreachable ({late})" in agent.log())
        # The flow goes on and reports its steps and the dead proxy's alarm; never the other.
        agent.wait_done("production-info")
        raised = f"critical raised: Management Proxy is unreachable ({dead})"
        events = wait_until("the dead proxy's alarm in the cloud",
                            lambda: (lambda ev: ev if any(e["reason"] == raised for e in ev)
                                     else None)(lab.device_events("SSR1000-E2E-0014")),
                            timeout=40)
        wait_until("the dead proxy's alarm on the staging conductor",
                   lambda: raised in json.dumps(lab.staging.router()), timeout=40)
        time.sleep(2)  # two more report ticks
        events = lab.device_events("SSR1000-E2E-0014")
        assert [e["reason"] for e in events if e["step"] == "alarm"] == [raised], events
        assert late not in json.dumps(events)
        assert late not in json.dumps(lab.staging.router())
        alarms = json.loads(agent.ctl("show", "alarms", "--json").stdout)["alarms"]
        assert [(a["subject"], a["cleared"]) for a in alarms] == [(dead, None)]
    finally:
        for h in holders:
            h.close()
        lab.close()
