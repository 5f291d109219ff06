"""DHCP servers other than dnsmasq (issue 11 point 9): the configurations
docs/agent.md gives for ISC dhcpd 4.4 and Kea 2.2, one proxy and two, run for
real in network namespaces against the agent's own DHCP client; the natural
ways to give two proxies that lose one; and hook mode with real udhcpc and
dhclient killed by SIGKILL (no script runs): the learned proxies go when the
lease handed over ends."""
import os
import shutil
import signal

import pytest

from agentlab import Lab, wait_for
from conftest import program

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

needs_dhcpd = pytest.mark.skipif(shutil.which("dhcpd") is None,
                                 reason="isc-dhcp-server not installed")
needs_kea = pytest.mark.skipif(shutil.which("kea-dhcp4") is None,
                               reason="kea-dhcp4-server not installed")

# Option 43 for two proxies as raw bytes: sub-option 128 twice, then the end byte.
TWO = bytes([128, 14]) + b"10.77.1.5:3128" + bytes([128, 14]) + b"10.77.1.6:3128" + b"\xff"

# The tested configurations (docs/agent.md shows the same).
DHCPD_ONE = ["vendor-option-space onramp;", 'option onramp.proxy "10.77.1.5:3128";']
DHCPD_TWO = ["option vendor-encapsulated-options " + ":".join(f"{b:02x}" for b in TWO) + ";"]
KEA_DEF_43 = [{"name": "vendor-encapsulated-options", "code": 43, "type": "empty",
               "encapsulate": "onramp"}]
KEA_PROXY_DEF = [{"name": "proxy", "code": 128, "space": "onramp", "type": "string"}]
KEA_ONE = {"name": "JuniperSSR", "option-def": KEA_DEF_43,
           "option-data": [{"name": "vendor-encapsulated-options"},
                           {"name": "proxy", "space": "onramp", "data": "10.77.1.5:3128"}]}
KEA_TWO = {"name": "JuniperSSR",
           "option-data": [{"code": 43, "csv-format": False, "data": TWO.hex().upper()}]}


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path, 1)
    yield lab
    lab.close()


# Two proxies the natural way, each losing one silently: why docs/agent.md gives
# raw bytes. ISC dhcpd keeps only the last of two `option onramp.proxy` lines
# (and refuses `array of text`); Kea sends only the first of two option-data
# entries for the same sub-option.
DHCPD_TWO_LINES = DHCPD_ONE + ['option onramp.proxy "10.77.1.6:3128";']
KEA_TWO_ENTRIES = dict(KEA_ONE, **{"option-data": KEA_ONE["option-data"] + [
    {"name": "proxy", "space": "onramp", "data": "10.77.1.6:3128"}]})

BOTH = ["10.77.1.5:3128", "10.77.1.6:3128"]


@pytest.mark.parametrize("server,config,proxies", [
    pytest.param("dhcpd", DHCPD_ONE, ["10.77.1.5:3128"], marks=needs_dhcpd, id="dhcpd-one"),
    pytest.param("dhcpd", DHCPD_TWO, BOTH, marks=needs_dhcpd, id="dhcpd-two-raw"),
    pytest.param("dhcpd", DHCPD_TWO_LINES, ["10.77.1.6:3128"], marks=needs_dhcpd,
                 id="dhcpd-two-lines-keeps-the-last"),
    pytest.param("kea", KEA_ONE, ["10.77.1.5:3128"], marks=needs_kea, id="kea-one"),
    pytest.param("kea", KEA_TWO, BOTH, marks=needs_kea, id="kea-two-raw"),
    pytest.param("kea", KEA_TWO_ENTRIES, ["10.77.1.5:3128"], marks=needs_kea,
                 id="kea-two-entries-keeps-the-first"),
])
def test_dhcp_server_configuration(lab, server, config, proxies):
    """The agent's own client against a configuration of docs/agent.md."""
    if server == "dhcpd":
        lab.start_dhcpd(0, config)
    else:
        lab.start_kea(0, config, option_defs=KEA_PROXY_DEF)
    agent = lab.start_agent("[interface dh0]\ndhcp = true\n")
    learned = wait_for("a lease", lambda: (lambda i: i if i["lease"] == "bound" else None)(
        agent.learned()["dh0"]), timeout=30)
    assert learned["proxies"] == proxies
    assert [c["proxy"] for c in agent.proxy()["candidates"]] == proxies
    assert [c["source"] for c in agent.proxy()["candidates"]] == ["dhcp:dh0"] * len(proxies)


# --- hook mode: the lease handed over ends ------------------------------------

def hook_script(lab, agent, name, configure):
    """A DHCP client script: notes the event, configures the lease (so that
    renewals can go by unicast), then hands over as docs/examples/ do."""
    path = os.path.join(lab.tmp, name)
    events = os.path.join(lab.tmp, name + ".events")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f"echo \"${{1:-$reason}}\" >> {events}\n"
                f"{configure}\n"
                f"exec {program('onrampctl')} dhcp-hook --socket {agent.socket} "
                "\"$interface\" $1\n")
    os.chmod(path, 0o755)
    return lambda: open(events).read().split() if os.path.exists(events) else []


def assert_expires_after_kill(agent, client, events, renewed, lease_time):
    """While the client runs, renewals keep the proxy past one lease time;
    killed (no script runs), it goes at the lease's end."""
    wait_for("the proxy from the hook", lambda: agent.learned()["dh0"]["proxies"] ==
             ["10.77.1.5:3128"], timeout=30)
    assert f"dh0: dhcp hook: bound, with option 43, lease {lease_time} s" in agent.read_log()
    wait_for("renewals for longer than one lease",
             lambda: len([e for e in events() if e in renewed]) >= 3, timeout=60)
    assert agent.learned()["dh0"]["proxies"] == ["10.77.1.5:3128"]
    assert "ended with no new event" not in agent.read_log()
    client.send_signal(signal.SIGKILL)
    client.wait()
    seen = events()
    assert agent.learned()["dh0"]["lease"] == "bound"
    learned = wait_for("the lease to end", lambda: (lambda i: i if i["lease"] == "expired"
                                                    else None)(agent.learned()["dh0"]),
                       timeout=3 * lease_time)
    assert learned["proxies"] == []
    assert agent.proxy()["candidates"] == []
    assert events() == seen  # no script ran: the agent ended the lease itself
    assert (f"dh0: dhcp hook: the lease of {lease_time} s ended with no new event from the "
            "DHCP client; its proxies are dropped") in agent.read_log()


@needs_kea
@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox (udhcpc) not installed")
def test_hook_mode_udhcpc_killed_lease_ends(lab):
    lab.start_kea(0, KEA_ONE, lease_time=20, option_defs=KEA_PROXY_DEF)
    agent = lab.start_agent("[interface dh0]\ndhcp = hook\n")
    events = hook_script(lab, agent, "udhcpc.script",
                         'case "$1" in bound|renew) ip addr replace "$ip/${mask:-24}" '
                         'dev "$interface";; esac')
    udhcpc = lab.spawn(lab.client, ["busybox", "udhcpc", "-f", "-i", "dh0", "-V", "JuniperSSR",
                                    "-O", "43", "-s", os.path.join(lab.tmp, "udhcpc.script"),
                                    "-t", "20", "-T", "1"],
                       os.path.join(lab.tmp, "udhcpc.out"))
    assert_expires_after_kill(agent, udhcpc, events, ("renew", "bound"), 20)


DHCLIENT_CONF = """\
send vendor-class-identifier "JuniperSSR";
request subnet-mask, routers, vendor-encapsulated-options, dhcp-lease-time;
"""


@needs_dhcpd
@pytest.mark.skipif(shutil.which("dhclient") is None, reason="isc-dhcp-client not installed")
def test_hook_mode_dhclient_killed_lease_ends(lab):
    lab.start_dhcpd(0, DHCPD_ONE, lease_time=6)
    agent = lab.start_agent("[interface dh0]\ndhcp = hook\n")
    events = hook_script(lab, agent, "dhclient.script",
                         'case "$reason" in BOUND|RENEW|REBIND|REBOOT) ip addr replace '
                         '"$new_ip_address/$new_subnet_mask" dev "$interface";; esac')
    conf = os.path.join(lab.tmp, "dhclient.conf")
    with open(conf, "w") as f:
        f.write(DHCLIENT_CONF)
    dhclient = lab.spawn(lab.client, [
        "dhclient", "-d", "-4", "-cf", conf, "-sf", os.path.join(lab.tmp, "dhclient.script"),
        "-lf", os.path.join(lab.tmp, "dhclient.leases"),
        "-pf", os.path.join(lab.tmp, "dhclient.pid"), "dh0"],
        os.path.join(lab.tmp, "dhclient.out"))
    assert_expires_after_kill(agent, dhclient, events, ("RENEW", "REBIND", "BOUND"), 6)
