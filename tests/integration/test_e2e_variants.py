"""End to end (issue 7), variants of the flow: no proxy (servers and agent in
a namespace of their own, with DNS and certificate diagnostics first), the
proxy learned by DHCP from dnsmasq in network namespaces, and the production
conductor down at migrate (back on staging with the reason, then a later
migrate succeeds, once from the staging conductor and once from the router)."""
import os
import re

import pytest

from agentlab import Lab as NetLab
from e2elab import Agent, Lab, wait_until
from netservices import Netns

SERIAL = "SSR1000-E2E-0002"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def asan_agent():
    path = os.path.join(ROOT, "build-asan", "agent", "onramp-agent")
    if not os.path.exists(path):
        pytest.skip("no ASan build (make asan)")
    return path


def cloud_failures(lab):
    return [e["reason"] for e in lab.device_events(SERIAL) if e["outcome"] == "failed"]


def test_no_proxy_with_dns_and_untrusted_certificate_diagnostics_first(tmp_path):
    """Proxy mode disabled; everything on the loopback of a namespace with no
    route out, so a DNS query fails at once. The ASan+UBSan agent."""
    ns = Netns("e2enp")
    lab = Lab(tmp_path, ns=ns.name)
    try:
        lab.start_all()
        state = lab.provision(SERIAL)
        lab.operators(SERIAL)
        # 1. A redirector name that does not resolve.
        agent = Agent(lab, state, proxy=None, ns=ns.name, binary=asan_agent(),
                      redirect_url=f"https://onramp-test.invalid:{lab.redirect_port}")
        agent.start()
        diag = agent.wait_diagnostic("dns:")
        assert diag["step"] == "phone-home" and not diag["reported"]
        show = agent.show()
        assert show["connection"].startswith("down - dns: ")
        assert show["current"] == "phone-home"
        assert show["steps"][0]["done"] and not show["steps"][1]["done"]
        assert "onramp-test.invalid" in agent.ctl("show", "onboarding").stdout
        agent.stop()
        # 2. The right address, but an anchor the redirector's certificate does not chain to
        #    (what an intercepting proxy looks like).
        agent.write_conf(proxy=None, redirect_ca=lab.cloud_pki.ca)
        agent.start()
        agent.wait_diagnostic("tls-untrusted:")
        assert agent.show()["connection"].startswith("down - tls-untrusted: ")
        agent.stop()
        # 3. Right: it goes through, and the cloud learns what happened before.
        agent.write_conf(proxy=None)
        agent.start()
        agent.wait_done("production-info")
        failures = wait_until("the earlier failures reported to the cloud",
                              lambda: (lambda f: f if any(r.startswith("dns:") for r in f) and
                                       any(r.startswith("tls-untrusted:") for r in f) else None)
                              (cloud_failures(lab)))
        assert all(d["reported"] for d in agent.show()["diagnostics"])
        # The router-side migrate, direct.
        proc = agent.ctl("migrate", "conductor", lab.production.address)
        assert proc.returncode == 0, proc.stderr
        assert f"production conductor {lab.production.address}" in proc.stdout
        agent.wait_done("running")
        assert agent.show()["connection"] == "up"
        agent.stop()
        assert agent.proc.returncode == 0
        log = agent.log()
        assert "AddressSanitizer" not in log and "runtime error" not in log, log[-3000:]
        assert failures
    finally:
        lab.close()
        ns.delete()


def test_proxy_learned_by_dhcp_from_dnsmasq_in_namespaces(tmp_path):
    """The servers and squid in one namespace, the agent in another; its only
    link is a veth on which dnsmasq offers option 43 with squid's address."""
    net = NetLab(tmp_path, links=1)
    lab = Lab(tmp_path, ns=net.servers[0])
    try:
        lab.start_squid(port=3128, listen="10.77.1.1")
        lab.start_all()
        net.start_dnsmasq(0, ["dhcp-vendorclass=set:ssr,JuniperSSR",
                              "dhcp-option=tag:ssr,43,80:0e:" +
                              ":".join(f"{b:02x}" for b in b"10.77.1.1:3128")])
        state = lab.provision(SERIAL)
        lab.operators(SERIAL)
        agent = Agent(lab, state, proxy="dhcp", ns=net.client,
                      interfaces="[interface dh0]\ndhcp = true\n")
        agent.start()
        agent.wait_done("production-info")
        # Before the first lease there is no proxy yet: kept as a diagnostic, then found.
        find = [e for e in agent.show()["diagnostics"] if e["step"] == "find-proxy"]
        assert all(e["reason"] == "no management proxy found yet (mode learned)" and
                   e["reported"] for e in find)
        learned = agent.ctl("show", "dhcp", "learned-proxies", "--json").stdout
        assert "10.77.1.1:3128" in learned
        proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router", "r1",
                               "--wait")
        assert proc.returncode == 0, proc.stderr
        agent.wait_done("running")
        events = lab.device_events(SERIAL)
        find_ok = [e for e in events if e["step"] == "find-proxy" and e["outcome"] == "ok"]
        assert find_ok and "10.77.1.1:3128 (dhcp:dh0)" in find_ok[0]["reason"]
        # The agent's way out was squid in the other namespace, with its credentials.
        connects = " ".join(lab.squid_connects())
        assert f"CONNECT 127.0.0.1:{lab.cloud_port} " in connects
        assert f"CONNECT 127.0.0.1:{lab.production.port} " in connects
        assert " router " in connects or "router" in connects
    finally:
        lab.close()
        net.close()


def test_production_down_at_migrate_then_a_later_migrate_succeeds(tmp_path):
    lab = Lab(tmp_path, revert_window=4)
    try:
        agent = lab.router(SERIAL)
        agent.wait_done("production-info")
        lab.production.stop()

        # From the staging conductor, with a short revert window.
        proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router", "r1",
                               "--skip-validation", "--revert-window", "3", "--wait")
        assert proc.returncode == 1 and "did not migrate" in proc.stderr
        show = wait_until("back on staging", lambda: (lambda s: s if s["connection"] == "up"
                          and s["migrate_fallback_reason"] else None)(agent.show()))
        assert "could not reach the production conductor" in show["migrate_fallback_reason"]
        assert show["current"] == "migrate" and show["migrations_failed"] == 1
        assert show["conductor"]["which"] == "staging"
        assert not show["steps"][8]["done"]
        text = agent.ctl("show", "onboarding").stdout
        assert "back on staging after a failed migrate: could not reach" in text
        wait_until("the failed migrate reported to the cloud",
                   lambda: any("could not reach the production conductor" in r
                               for r in cloud_failures(lab)))

        # From the router: refused while production is down, and bad input changes nothing.
        for bad in (["migrate", "conductor"], ["migrate", "conductor", "127.0.0.1"],
                    ["migrate", "conductor", "127.0.0.1:0"], ["migrate", "somewhere", "x:1"],
                    ["migrate", "conductor", "a:1", "b:1", "c:1", "d:1", "e:1"]):
            proc = agent.ctl(*bad)
            assert proc.returncode == 2 and proc.stderr.startswith("onrampctl: "), bad
        proc = agent.ctl("migrate", "conductor", lab.production.address, "--timeout", "60")
        assert proc.returncode == 1
        assert "failed, back on the staging conductor" in proc.stderr
        # While it waited, it said what for (docs/cli.md).
        assert re.search(r"migrate #\d+: \w+, to 127\.0\.0\.1:\d+ \(giving up in \d+ s\)",
                         proc.stderr), proc.stderr
        assert agent.show()["migrations_failed"] == 2

        # Production comes back on the same address: the router-side migrate succeeds.
        lab.production.start()
        wait_until("the router on staging again",
                   lambda: agent.show()["connection"] == "up")
        proc = agent.ctl("migrate", "conductor", lab.production.address)
        assert proc.returncode == 0, proc.stderr
        agent.wait_done("running")
        wait_until("running on production",
                   lambda: lab.production.asset_state(SERIAL) == "running")
        show = agent.show()
        assert show["connection"] == "up" and show["current"] == "running"
        assert show["router_migration"]["state"] == "succeeded"
        proc = agent.ctl("migrate", "conductor", lab.production.address)
        assert proc.returncode == 1 and "already runs on its production" in proc.stderr
        migrations = [m["state"] for m in lab.staging.router()["migrations"]]
        assert migrations[-1] == "succeeded" and migrations.count("failed") == 2
    finally:
        lab.close()
