"""Proxy discovery by DHCP option 43 (issue 4 points 3-6), end to end: real
dnsmasq servers in network namespaces joined by veth pairs, real tinyproxy
instances as proxies, onramp-agent's own DHCPv4 client in the client
namespace, and its status read with `onrampctl show ... --json`."""
import os
import shutil
import subprocess

import pytest

from agentlab import Lab, option43_hex, sh, stop, wait_for
from conftest import program

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

VENDOR = 'dhcp-option=vendor:JuniperSSR,128,"{}"'


@pytest.fixture
def lab(tmp_path, request):
    links = getattr(request, "param", 1)
    lab = Lab(tmp_path, links)
    yield lab
    lab.close()


def iface(name, **keys):
    lines = [f"[interface {name}]", "dhcp = true"] + [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def leased_address(lab, name):
    out = sh("ip", "-n", lab.client, "-4", "-o", "addr", "show", "dev", name)
    return out.split()[3] if out.strip() else None


@pytest.mark.parametrize("lab", [2], indirect=True)
def test_option43_only_for_vendor_class_juniperssr(lab):
    lab.start_dnsmasq(0, [VENDOR.format("10.77.1.5:3128"), "dhcp-option=3,10.77.1.1"])
    lab.start_dnsmasq(1, [VENDOR.format("10.77.2.5:3128")])
    agent = lab.start_agent(iface("dh0") + iface("dh1", **{"vendor-class": "AcmeRouter"}))
    learned = wait_for("both leases", lambda: (lambda l: l if all(
        i["lease"] == "bound" for i in l.values()) else None)(agent.learned()))
    assert learned["dh0"] == {"name": "dh0", "discovery": True, "lease": "bound",
                              "proxies": ["10.77.1.5:3128"], "rejected": [],
                              "rejected_more": 0}
    # another vendor class gets an address but no option 43
    assert learned["dh1"] == {"name": "dh1", "discovery": True, "lease": "bound",
                              "proxies": [], "rejected": [], "rejected_more": 0}
    proxy = agent.proxy()
    assert proxy["mode"] == "learned"
    assert proxy["active"] == "10.77.1.5:3128"
    assert proxy["candidates"] == [{"proxy": "10.77.1.5:3128", "source": "dhcp:dh0",
                                    "reachable": False}]
    # the agent's DHCP client put the lease and the route on the interfaces
    assert leased_address(lab, "dh0").startswith("10.77.1.1")
    assert leased_address(lab, "dh1").startswith("10.77.2.1")
    assert "default via 10.77.1.1 dev dh0 proto dhcp metric 100" in sh(
        "ip", "-n", lab.client, "route")
    # what dnsmasq saw: option 60 and option 55 with 43, in DISCOVER and REQUEST
    log = open(os.path.join(lab.tmp, "dnsmasq0.log")).read()
    assert "vendor class: JuniperSSR" in log
    assert "43:vendor-encap" in log
    assert "DHCPDISCOVER(v0)" in log and "DHCPREQUEST(v0)" in log
    assert "vendor class: AcmeRouter" in open(os.path.join(lab.tmp, "dnsmasq1.log")).read()

    # human-readable tables
    out = agent.ctl("show", "dhcp", "learned-proxies").stdout
    assert "dh0" in out and "10.77.1.5:3128" in out and "bound" in out
    out = agent.ctl("show", "management-proxy").stdout
    assert "active:  10.77.1.5:3128" in out and "dhcp:dh0" in out

    # stopping the agent takes its leases off the interfaces
    agent.stop()
    assert leased_address(lab, "dh0") is None
    assert "default via" not in sh("ip", "-n", lab.client, "route")


@pytest.mark.parametrize("lab", [2], indirect=True)
def test_two_interfaces_pick_the_lowest_and_discovery_off_is_ignored(lab):
    # numerically 10.77.1.9 < 10.77.1.10, though not as text
    lab.start_dnsmasq(0, [VENDOR.format("10.77.1.10:3128")])
    lab.start_dnsmasq(1, [VENDOR.format("10.77.1.9:3128")])
    agent = lab.start_agent(iface("dh0") + iface("dh1"), name="both")
    proxy = wait_for("two candidates",
                     lambda: (lambda p: p if len(p["candidates"]) == 2 else None)(agent.proxy()))
    assert proxy["active"] == "10.77.1.9:3128"
    assert [c["source"] for c in proxy["candidates"]] == ["dhcp:dh1", "dhcp:dh0"]
    agent.stop()

    agent = lab.start_agent(iface("dh0") + iface("dh1", **{"enable-proxy-discovery": "false"}),
                            name="off")
    learned = wait_for("both leases", lambda: (lambda l: l if all(
        i["lease"] == "bound" for i in l.values()) else None)(agent.learned()))
    assert learned["dh1"]["discovery"] is False
    assert learned["dh1"]["proxies"] == []
    proxy = wait_for("the dh0 candidate",
                     lambda: (lambda p: p if p["candidates"] else None)(agent.proxy()))
    assert proxy["active"] == "10.77.1.10:3128"
    assert [c["source"] for c in proxy["candidates"]] == ["dhcp:dh0"]
    # discovery off: option 43 is not even asked for
    log = open(os.path.join(lab.tmp, "dnsmasq1.log")).read()
    last_request = log[log.rindex("DHCPREQUEST(v0)"):]
    assert "43:vendor-encap" not in last_request.split("DHCPACK")[1].split("next server")[0]


def test_proxy_changes_on_renewal_and_goes_at_lease_end(lab):
    lab.start_dnsmasq(0, [VENDOR.format("10.77.1.5:3128")])
    # a test aid: the 2-minute lease (dnsmasq's minimum) runs 20 times faster:
    # renew after 3 s, rebind after 5.25 s, end after 6 s
    agent = lab.start_agent(iface("dh0", **{"test-lease-divisor": 20}))
    wait_for("the first proxy", lambda: agent.learned()["dh0"]["proxies"] == ["10.77.1.5:3128"])
    lab.start_dnsmasq(0, [VENDOR.format("10.77.1.6:3128")])
    wait_for("the renewed proxy",
             lambda: agent.learned()["dh0"]["proxies"] == ["10.77.1.6:3128"], timeout=15)
    assert agent.proxy()["active"] == "10.77.1.6:3128"
    log = agent.read_log()
    assert "dh0: dhcp: renewed 10.77.1.1" in log
    assert leased_address(lab, "dh0") is not None

    # no server any more: renewing, rebinding, then the lease ends
    lab.stop_dnsmasq(0)
    wait_for("the lease to end", lambda: agent.learned()["dh0"]["proxies"] == [], timeout=15)
    assert agent.proxy() == {"mode": "learned", "active": None, "state": "none",
                             "candidates": []}
    assert agent.learned()["dh0"]["lease"] in ("selecting", "init")
    assert leased_address(lab, "dh0") is None
    log = agent.read_log()
    assert "rebinding" in log and "lease of 10.77.1.1" in log and " ended" in log
    assert "active:  N/A" in agent.ctl("show", "management-proxy").stdout


def test_bad_candidates_are_dropped_with_the_interface_and_reason(lab):
    raw = option43_hex(b"10.77.1.7:0", b"proxy.example:3128", b"10.77.1.8:3128",
                       b"10.77.1.9")
    lab.start_dnsmasq(0, ["dhcp-vendorclass=set:ssr,JuniperSSR", f"dhcp-option=tag:ssr,43,{raw}"])
    agent = lab.start_agent(iface("dh0"))
    wait_for("the good proxy", lambda: agent.learned()["dh0"]["proxies"] == ["10.77.1.8:3128"])
    log = agent.read_log()
    assert 'dh0: option 43: dropped sub-option 128 "10.77.1.7:0": port 0' in log
    assert ('dh0: option 43: dropped sub-option 128 "proxy.example:3128": not an IPv4 address'
            in log)
    assert 'dh0: option 43: dropped sub-option 128 "10.77.1.9": missing port' in log


def test_an_option43_whose_every_entry_is_bad_shows_each_rejected_entry_and_why(lab):
    """Issue 14 point 7: it must not look like "no option 43"."""
    raw = option43_hex(b"999.1.1.1:80", b"10.0.0.1:0", b"\x01zz")
    lab.start_dnsmasq(0, ["dhcp-vendorclass=set:ssr,JuniperSSR", f"dhcp-option=tag:ssr,43,{raw}"])
    agent = lab.start_agent(iface("dh0"))
    entry = wait_for("the rejected entries",
                     lambda: (lambda e: e if e["lease"] == "bound" and e.get("rejected") else None)(
                         agent.learned()["dh0"]))
    assert entry["proxies"] == []
    rejected = [(r["entry"], r["reason"]) for r in entry["rejected"]]
    assert len(rejected) == 3 and entry["rejected_more"] == 0
    assert rejected[0][0] == 'sub-option 128 "999.1.1.1:80"'
    assert rejected[1] == ('sub-option 128 "10.0.0.1:0"', "port 0")
    assert rejected[2][0] == 'sub-option 128 "\\x01zz"'
    assert all(reason for _, reason in rejected)
    text = agent.ctl("show", "dhcp", "learned-proxies").stdout
    assert 'rejected: sub-option 128 "10.0.0.1:0": port 0' in text
    assert f"rejected: {rejected[0][0]}: {rejected[0][1]}" in text
    assert f"rejected: {rejected[2][0]}: {rejected[2][1]}" in text


def test_healthy_static_proxy_behind_the_lease_raises_no_alarm_at_start(lab):
    """Issue 14 point 7: the static proxies were probed before the lease put the
    route on, and a critical alarm was raised and cleared within 2 s at every
    start. Probes now wait for the first lease; a dead proxy still alarms."""
    lab.add_address(0, "10.77.1.5")
    lab.start_tinyproxy(0, "10.77.1.5", 3128)
    lab.start_dnsmasq(0, [])
    # 10.77.1.1:3999: the server's own address, where nothing listens
    agent = lab.start_agent("[proxy]\nmode = static\nstatic = 10.77.1.5:3128\n"
                            "static = 10.77.1.1:3999\nhealth-interval = 3\n"
                            "health-timeout = 1\n" + iface("dh0"))
    agent.wait_active("10.77.1.5:3128")
    dead = wait_for("the dead proxy's alarm",
                    lambda: [a for a in agent.alarms() if a["subject"] == "10.77.1.1:3999"])
    assert dead[0]["cleared"] is None and dead[0]["severity"] == "critical"
    # a probe interval on, the healthy proxy never had an alarm, not even a cleared one
    before = agent.alarms()
    wait_for("one more probe interval", lambda: len(agent.read_log().split(
        "probe of 10.77.1.5:3128: connected")) > 2, timeout=10)
    assert [a["subject"] for a in agent.alarms()] == ["10.77.1.1:3999"] == \
        [a["subject"] for a in before]
    assert "alarm raised: critical: Management Proxy is unreachable (10.77.1.5:3128)" not in \
        agent.read_log()
    assert agent.alarms()[0]["cleared"] is None


def test_failover_to_the_next_candidate_and_back(lab):
    lab.add_address(0, "10.77.1.5")
    lab.add_address(0, "10.77.1.6")
    low = lab.start_tinyproxy(0, "10.77.1.5", 3128)
    high = lab.start_tinyproxy(0, "10.77.1.6", 3128)
    raw = option43_hex(b"10.77.1.6:3128", b"10.77.1.5:3128")
    lab.start_dnsmasq(0, ["dhcp-vendorclass=set:ssr,JuniperSSR", f"dhcp-option=tag:ssr,43,{raw}"])
    agent = lab.start_agent("[proxy]\nhealth-interval = 1\nhealth-timeout = 1\n" + iface("dh0"))
    agent.wait_active("10.77.1.5:3128")
    assert agent.alarms() == []

    stop(low)
    proxy = agent.wait_active("10.77.1.6:3128")
    assert proxy["candidates"][0] == {"proxy": "10.77.1.5:3128", "source": "dhcp:dh0",
                                      "reachable": False}
    [alarm] = agent.alarms()
    assert alarm["severity"] == "critical"
    assert alarm["message"] == "Management Proxy is unreachable"
    assert alarm["subject"] == "10.77.1.5:3128"
    assert alarm["cleared"] is None
    out = agent.ctl("show", "management-proxy").stdout
    assert "critical: Management Proxy is unreachable (10.77.1.5:3128)" in out
    assert "alarm raised: critical: Management Proxy is unreachable (10.77.1.5:3128)" in \
        agent.read_log()

    # every proxy down: the lowest stays chosen, unreachable
    stop(high)
    agent.wait_active("10.77.1.5:3128", state="unreachable")
    assert len([a for a in agent.alarms() if a["cleared"] is None]) == 2

    # the lowest recovers: taken back, its alarm cleared
    low = lab.start_tinyproxy(0, "10.77.1.5", 3128)
    agent.wait_active("10.77.1.5:3128")
    alarms = {a["subject"]: a for a in agent.alarms()}
    assert alarms["10.77.1.5:3128"]["cleared"] is not None
    assert alarms["10.77.1.6:3128"]["cleared"] is None
    assert "alarm cleared: critical: Management Proxy is unreachable (10.77.1.5:3128)" in \
        agent.read_log()


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox (udhcpc) not installed")
def test_hook_mode_with_busybox_udhcpc(lab):
    lab.start_dnsmasq(0, [VENDOR.format("10.77.1.5:3128")])
    agent = lab.start_agent("[interface dh0]\ndhcp = hook\n")
    assert agent.learned()["dh0"] == {"name": "dh0", "discovery": True, "lease": "none",
                                      "proxies": [], "rejected": [], "rejected_more": 0}
    script = os.path.join(lab.tmp, "udhcpc.script")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                f"exec {program('onrampctl')} dhcp-hook --socket {agent.socket} "
                "\"$interface\" \"$1\"\n")
    os.chmod(script, 0o755)
    udhcpc = lab.spawn(lab.client, ["busybox", "udhcpc", "-f", "-i", "dh0", "-V", "JuniperSSR",
                                    "-O", "43", "-s", script, "-t", "20", "-T", "1"],
                       os.path.join(lab.tmp, "udhcpc.out"))
    wait_for("the proxy from udhcpc",
             lambda: agent.learned()["dh0"]["proxies"] == ["10.77.1.5:3128"])
    assert agent.learned()["dh0"]["lease"] == "bound"
    assert agent.proxy()["active"] == "10.77.1.5:3128"
    assert "dh0: dhcp hook: bound, with option 43" in agent.read_log()
    # udhcpc releases the lease: "deconfig" drops the proxy
    udhcpc.send_signal(12)  # SIGUSR2: release
    wait_for("the proxy to go", lambda: agent.learned()["dh0"]["proxies"] == [])
    assert agent.learned()["dh0"]["lease"] == "none"
    stop(udhcpc)


@pytest.mark.parametrize("lab", [2], indirect=True)
def test_hook_mode_dhclient_environment_and_bad_input(lab):
    agent = lab.start_agent("[interface dh0]\ndhcp = hook\n[interface dh1]\ndhcp = true\n"
                            "enable-proxy-discovery = false\n")

    def hook(*args, **env):
        full = {k: v for k, v in os.environ.items()
                if k not in ("opt43", "new_vendor_encapsulated_options", "reason", "lease",
                             "new_dhcp_lease_time")}
        full.update(env)
        return subprocess.run([program("onrampctl"), "dhcp-hook", "--socket", agent.socket]
                              + list(args), capture_output=True, text=True, env=full,
                              timeout=30)

    # ISC dhclient: $reason, and hex bytes without leading zeros, ':'-separated
    value = ":".join(f"{b:x}" for b in bytes([128, 14]) + b"10.77.1.5:3128" + b"\xff")
    proc = hook("dh0", reason="BOUND", new_vendor_encapsulated_options=value)
    assert proc.returncode == 0, proc.stderr
    assert agent.learned()["dh0"]["proxies"] == ["10.77.1.5:3128"]
    assert hook("dh0", reason="PREINIT").returncode == 0  # ignored
    assert agent.learned()["dh0"]["proxies"] == ["10.77.1.5:3128"]
    proc = hook("dh0", reason="EXPIRE")
    assert proc.returncode == 0
    assert agent.learned()["dh0"]["proxies"] == []

    proc = hook("dh0", "bogus")
    assert proc.returncode == 2
    assert proc.stderr == "onrampctl: dhcp-hook: unknown event 'bogus'\n"
    proc = hook("dh0")
    assert proc.returncode == 2 and "no EVENT argument and no $reason" in proc.stderr
    proc = hook("dh1", "bound", opt43="800e31302e37372e312e353a33313238ff")
    assert proc.returncode == 1
    assert proc.stderr == ("onrampctl: dhcp-hook: interface dh1 is not configured with "
                           "dhcp = hook\n")
    proc = hook("eth9", "bound")
    assert proc.returncode == 1 and "eth9 is not configured" in proc.stderr
    # udhcpc's plain hex, then hex that is not hex: the lease still clears stale proxies
    assert hook("dh0", "bound", opt43="800e31302e37372e312e353a33313238ff").returncode == 0
    assert agent.learned()["dh0"]["proxies"] == ["10.77.1.5:3128"]
    proc = hook("dh0", "renew", opt43="80zz")
    assert proc.returncode == 2 and "$opt43 is not hex bytes" in proc.stderr
    assert agent.learned()["dh0"]["proxies"] == []

    # the lease time (issue 11 point 9): from the environment or --lease-time, checked
    opt43 = "800e31302e37372e312e353a33313238ff"
    proc = hook("dh0", "bound", opt43=opt43, lease="3600")
    assert proc.returncode == 0, proc.stderr
    assert "dh0: dhcp hook: bound, with option 43, lease 3600 s" in agent.read_log()
    proc = hook("dh0", reason="RENEW", new_vendor_encapsulated_options=value,
                new_dhcp_lease_time="4294967295")
    assert proc.returncode == 0, proc.stderr
    assert "lease 4294967295 s" in agent.read_log()
    for bad in ("0", "-5", "4294967296", "12x", "", " 60"):
        proc = hook("dh0", "bound", "--lease-time", bad, opt43=opt43)
        assert proc.returncode == 2, bad
        assert proc.stderr == ("onrampctl: dhcp-hook: --lease-time must be 1 to 4294967295 "
                               f"seconds, not '{bad}'\n")
    # not a number in the environment: the lease is still handed over, without an end
    assert hook("dh0", "deconfig").returncode == 0
    proc = hook("dh0", "bound", opt43=opt43, lease="soon")
    assert proc.returncode == 2
    assert "$lease is not 1 to 4294967295 seconds" in proc.stderr
    assert agent.learned()["dh0"]["proxies"] == ["10.77.1.5:3128"]
    # the agent checks the field itself; a refused request changes nothing
    bound = {"command": "dhcp-hook", "interface": "dh0", "event": "bound"}
    range_error = "field 'lease_time' must be from 1 to 4294967295"
    for extra, error in (({"lease_time": 0}, range_error),
                         ({"lease_time": 4294967296}, range_error),
                         ({"lease_time": "60"}, "field 'lease_time' must be an "
                          "integer"),
                         ({"event": "unbound", "lease_time": 60},
                          "lease_time goes only with event bound")):
        assert agent.request(dict(bound, **extra)) == {"ok": False, "error": error}
    assert agent.learned()["dh0"] == {"name": "dh0", "discovery": True, "lease": "bound",
                                      "proxies": ["10.77.1.5:3128"], "rejected": [],
                                      "rejected_more": 0}
    answer = agent.request(dict(bound, option43=opt43, lease_time=60))
    assert answer["ok"] and answer["result"]["lease_time"] == 60
    assert hook("--help").returncode == 0
