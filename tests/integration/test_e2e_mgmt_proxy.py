"""Issue 11 point 3: the management proxy after onboarding, end to end and all
real (squid with Basic auth, redirector, cloud, staging and production
conductors, the agent).

- A site with no DHCP option 43 whose only proxy is the bootstrap file's
  reaches `running` and keeps its connection: the bootstrap entries stay in
  force until a conductor's configuration gives management-proxy settings.
- A configuration with a management-proxy section is in force once applied,
  and after a restart.
- No proxy at all raises the critical alarm "no management proxy is
  available", reported to the conductor once a way out is back."""
import json
import os
import time

import pytest

from agentlab import Lab as NetLab
from e2elab import Agent, Lab, wait_until

SERIAL = "SSR1000-E2E-0011"


@pytest.fixture
def lab(e2e_lab):
    return e2e_lab


def squid_address(lab):
    return f"{lab.squid['listen']}:{lab.squid['port']}"


def write_bootstrap(state, address):
    with open(os.path.join(state, "bootstrap.conf"), "w") as f:
        f.write(f"[proxy]\nstatic = {address}\n")


def proxy(agent):
    proc = agent.ctl("show", "management-proxy", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def alarms(agent):
    return json.loads(agent.ctl("show", "alarms", "--json").stdout)["alarms"]


def run_to_running(lab, agent, timeout=60):
    agent.wait_done("production-info", timeout=timeout)
    proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router", "r1",
                           "--wait")
    assert proc.returncode == 0, proc.stderr
    agent.wait_done("running")
    wait_until("the production conductor to show the router running",
               lambda: lab.production.asset_state(SERIAL) == "running")


def stays_up(agent, seconds):
    """show onboarding says running and up on every look for that long (several
    command polls of 2 s): a bound on what it shows, not a speed."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        show = agent.show()
        assert show["current"] == "running", show
        assert show["connection"] == "up", (show["connection"], agent.log()[-3000:])
        time.sleep(0.5)


def test_bootstrap_file_proxy_only_site_keeps_its_way_out_in_running(lab):
    lab.start_squid()
    lab.start_all()
    state = lab.provision(SERIAL)
    lab.operators(SERIAL)
    squid = squid_address(lab)
    write_bootstrap(state, squid)
    # mode learned, no interface: no DHCP option 43, the bootstrap file is the way out
    agent = Agent(lab, state, proxy="dhcp").start()
    run_to_running(lab, agent)

    stays_up(agent, 8)
    shown = proxy(agent)
    assert shown["active"] == squid and shown["state"] == "reachable"
    assert shown["candidates"] == [{"proxy": squid, "source": "bootstrap",
                                    "reachable": True}]
    text = agent.ctl("show", "management-proxy").stdout
    assert f"{squid}" in text and "bootstrap" in text
    log = agent.log()
    assert "management proxy: using none" not in log
    assert "no management proxy is available" not in log
    assert alarms(agent) == []

    # A restart in running keeps it: still the bootstrap entry, still up.
    agent.stop()
    agent.start()
    wait_until("the restarted agent up again", lambda: (agent.show() or {}).get(
        "connection") == "up" and agent.show()["current"] == "running", timeout=40)
    stays_up(agent, 4)
    assert proxy(agent)["candidates"][0]["source"] == "bootstrap"


def test_configuration_management_proxy_section_replaces_the_bootstrap_entries(lab):
    lab.start_squid()
    lab.start_all()
    state = lab.provision(SERIAL)
    squid = squid_address(lab)
    peering = {"version": 1, "router": {"name": "r1"},
               "hub": {"name": "hub-east", "addresses": ["127.0.0.1:1280"]},
               "neighborhoods": [{"name": "mpls-core"}],
               "management-proxy": {"mode": "static", "static": [squid]}}
    lab.operators(SERIAL, production_peering=peering)
    write_bootstrap(state, squid)
    agent = Agent(lab, state, proxy="dhcp").start()
    # Until a configuration gives settings, the bootstrap entry is in force
    # (staging's configuration has no management-proxy section).
    agent.wait_done("configuration")
    assert proxy(agent)["candidates"] == [{"proxy": squid, "source": "bootstrap",
                                           "reachable": True}]
    run_to_running(lab, agent)

    # The production conductor applies its configuration: its section is in force.
    def by_conductor():
        p = proxy(agent)
        return p if [c["source"] for c in p["candidates"]] == ["conductor"] else None
    shown = wait_until("the conductor's management-proxy settings in force", by_conductor,
                       timeout=45)
    assert shown["mode"] == "static" and shown["active"] == squid
    with open(os.path.join(state, "peering.json")) as f:
        assert json.load(f)["management-proxy"] == {"mode": "static", "static": [squid]}
    assert "the conductor's configuration is in force: mode static, 1 static entry" in \
        agent.log()
    wait_until("the proxy reachable", lambda: proxy(agent)["state"] == "reachable")
    stays_up(agent, 4)

    # Persisted: a restarted agent has them in force before it connects anywhere.
    agent.stop()
    lab.stop_squid()
    agent.start()
    shown = proxy(agent)
    assert shown["mode"] == "static"
    assert [(c["proxy"], c["source"]) for c in shown["candidates"]] == [(squid, "conductor")]
    lab.release_squid_port()
    lab.start_squid()
    wait_until("the restarted agent up again", lambda: (agent.show() or {}).get(
        "connection") == "up", timeout=40)


def test_a_bad_management_proxy_section_is_refused_before_it_is_sent(lab, tmp_path):
    """The section is checked like the rest of the configuration: onrampctl exits 2
    naming the field, and the router is not added."""
    conductor = lab.start_conductor("staging")
    base = {"version": 1, "router": {"name": "r1"},
            "hub": {"name": "hub-east", "addresses": ["127.0.0.1:1280"]},
            "neighborhoods": [{"name": "mpls-core"}]}
    cases = [({"mode": "static"}, "management-proxy.static: mode static needs 1 to 16"),
             ({"mode": "dhcp"}, "management-proxy.mode: 'dhcp' is not disabled, static or"),
             ({"mode": "static", "static": ["10.0.0.1:0"]},
              "management-proxy.static[0]: '10.0.0.1:0'"),
             ({"mode": "static", "static": ["10.0.0.1:3128"], "password": "x"},
              "management-proxy: unknown field 'password'")]
    for section, message in cases:
        path = tmp_path / "r1.json"
        path.write_text(json.dumps(dict(base, **{"management-proxy": section})))
        proc = conductor.ctl("router", "add", "r1", "--asset-id", "A-1", "--config",
                             str(path))
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert conductor.ctl("router", "show", "r1").returncode != 0
    path.write_text(json.dumps(dict(base, **{"management-proxy": {"mode": "learned"}})))
    conductor.ok("router", "add", "r1", "--asset-id", "A-1", "--config", str(path))


def no_proxy_alarm(agent, active=True):
    for a in alarms(agent):
        if a["message"] == "no management proxy is available" and \
                (a["cleared"] is None) == active:
            return a
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_no_management_proxy_raises_the_critical_alarm_reported_to_the_conductor(tmp_path):
    """The servers and squid in one namespace, the agent in another; its only way
    out is the proxy dnsmasq offers in option 43 on the veth between them."""
    net = NetLab(tmp_path, links=1)
    lab = Lab(tmp_path, ns=net.servers[0])
    dnsmasq = ["dhcp-vendorclass=set:ssr,JuniperSSR",
               "dhcp-option=tag:ssr,43,80:0e:" + ":".join(f"{b:02x}" for b in b"10.77.1.1:3128")]
    try:
        lab.start_squid(port=3128, listen="10.77.1.1")
        lab.start_all()
        state = lab.provision(SERIAL)
        lab.operators(SERIAL)
        # a test aid: dnsmasq's 2-minute lease runs 20 times faster (ends 6 s after
        # the server goes)
        agent = Agent(lab, state, proxy="dhcp", ns=net.client,
                      interfaces="[interface dh0]\ndhcp = true\ntest-lease-divisor = 20\n")
        agent.start()

        # No DHCP server yet, so no proxy at all: after its grace, the critical alarm.
        alarm = wait_until("the no-proxy alarm", lambda: no_proxy_alarm(agent), timeout=45)
        assert alarm["severity"] == "critical" and alarm["subject"] == "mode learned"
        assert "alarm raised: critical: no management proxy is available (mode learned)" \
            in agent.log()
        assert agent.show()["current"] == "find-proxy"

        # A lease with option 43: cleared, and the flow goes on to running.
        net.start_dnsmasq(0, dnsmasq)
        wait_until("the no-proxy alarm cleared", lambda: no_proxy_alarm(agent, active=False),
                   timeout=45)
        run_to_running(lab, agent)

        # In running the lease ends and nothing replaces it: the alarm again, and the
        # connection down.
        net.stop_dnsmasq(0)
        wait_until("the connection down",
                   lambda: agent.show()["connection"].startswith("down"), timeout=60)
        wait_until("the no-proxy alarm in running", lambda: no_proxy_alarm(agent), timeout=45)
        assert agent.show()["current"] == "running"

        # Back: cleared, and both changes reach the production conductor and the cloud.
        net.start_dnsmasq(0, dnsmasq)
        wait_until("connected again", lambda: agent.show()["connection"] == "up", timeout=60)
        assert no_proxy_alarm(agent) is None

        def conductor_alarms():
            events = [e for e in lab.production.router().get("events", [])
                      if e["step"] == "alarm" and "no management proxy is available" in
                      (e.get("reason") or "")]
            outcomes = [e["outcome"] for e in events]
            return events if "failed" in outcomes and outcomes[-1] == "ok" else None
        events = wait_until("the alarm reported to the production conductor",
                            conductor_alarms, timeout=40)
        assert any("critical raised: no management proxy is available (mode learned)" in
                   e["reason"] for e in events)

        def cloud_alarms():
            return [e for e in lab.device_events(SERIAL) if e["step"] == "alarm" and
                    "no management proxy is available" in (e["reason"] or "")] or None
        wait_until("the alarm reported to the cloud", cloud_alarms, timeout=40)
        # ... which show alarms says, in its text too (REPORTED, issue 11 point 8)
        def reported_row():
            return [line for line in agent.ctl("show", "alarms").stdout.splitlines()
                    if "no management proxy is available" in line and
                    line.split()[-1] == "yes"] or None
        wait_until("show alarms: the no-proxy alarms reported", reported_row, timeout=45)
    finally:
        lab.close()
        net.close()
