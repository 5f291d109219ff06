"""DHCP servers other than dnsmasq (issue 11 point 9): the configurations
docs/agent.md gives for ISC dhcpd 4.4 and Kea 2.2, one proxy and two, run for
real in network namespaces against the agent's own DHCP client; the natural
ways to give two proxies that lose one; and hook mode with real udhcpc and
dhclient killed by SIGKILL (no script runs): the learned proxies go when the
lease handed over ends."""
import json
import os
import re
import shutil
import signal
import subprocess
import textwrap

import pytest

from agentlab import Lab, wait_for
from conftest import ROOT, program

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

needs_dhcpd = pytest.mark.skipif(shutil.which("dhcpd") is None,
                                 reason="isc-dhcp-server not installed")
needs_kea = pytest.mark.skipif(shutil.which("kea-dhcp4") is None,
                               reason="kea-dhcp4-server not installed")


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path, 1)
    yield lab
    lab.close()


def documented(server):
    """The blocks docs/agent.md gives under **server**: [one proxy, two proxies]."""
    with open(os.path.join(ROOT, "docs", "agent.md")) as f:
        text = f.read()
    section = text.split(f"\n**{server}**", 1)[1]
    section = re.split(r"\n\*\*|\n#", section, maxsplit=1)[0]
    blocks = [textwrap.dedent(b).strip("\n") for b in re.findall(r"(?:\n    .*)+", section)]
    assert len(blocks) == 2, blocks
    return blocks


def kea_fragment(block):
    return json.loads("{" + block + "}")


ONE = ["10.92.53.8:3128"]
BOTH = ["10.92.53.8:3128", "10.92.53.9:3128"]
PROXY_SPACE = """\
option space onramp code width 1 length width 1;
option onramp.proxy code 128 = text;
"""

# The natural ways to give two proxies, each losing one silently: why
# docs/agent.md gives raw bytes. ISC dhcpd keeps only the last of two
# `option onramp.proxy` lines; Kea sends only the first of two option-data
# entries for the same sub-option.
DHCPD_TWO_LINES = PROXY_SPACE + """\
class "JuniperSSR" {
  match if option vendor-class-identifier = "JuniperSSR";
  vendor-option-space onramp;
  option onramp.proxy "10.92.53.8:3128";
  option onramp.proxy "10.92.53.9:3128";
}"""


def kea_two_entries():
    fragment = kea_fragment(documented("Kea")[0])
    fragment["client-classes"][0]["option-data"].append(
        {"name": "proxy", "space": "onramp", "data": "10.92.53.9:3128"})
    return fragment


def start_server(lab, server, config, lease_time=600):
    if server == "dnsmasq":
        lab.start_dnsmasq(0, config.splitlines())
    elif server == "dhcpd":
        lab.start_dhcpd(0, config, lease_time)
    else:
        lab.start_kea(0, config, lease_time)


@pytest.mark.parametrize("server,config,proxies", [
    pytest.param("dnsmasq", lambda: documented("dnsmasq")[0], ONE, id="dnsmasq-one"),
    pytest.param("dnsmasq", lambda: documented("dnsmasq")[1], BOTH, id="dnsmasq-two"),
    pytest.param("dhcpd", lambda: documented("ISC dhcpd")[0], ONE, marks=needs_dhcpd,
                 id="dhcpd-one"),
    pytest.param("dhcpd", lambda: documented("ISC dhcpd")[1], BOTH, marks=needs_dhcpd,
                 id="dhcpd-two"),
    pytest.param("dhcpd", lambda: DHCPD_TWO_LINES, ["10.92.53.9:3128"], marks=needs_dhcpd,
                 id="dhcpd-two-lines-keeps-the-last"),
    pytest.param("kea", lambda: kea_fragment(documented("Kea")[0]), ONE, marks=needs_kea,
                 id="kea-one"),
    pytest.param("kea", lambda: kea_fragment(documented("Kea")[1]), BOTH, marks=needs_kea,
                 id="kea-two"),
    pytest.param("kea", kea_two_entries, ONE, marks=needs_kea,
                 id="kea-two-entries-keeps-the-first"),
])
def test_dhcp_server_configuration(lab, server, config, proxies):
    """The agent's own client against a configuration of docs/agent.md (taken
    from the document itself), or against a natural one that loses a proxy."""
    start_server(lab, server, config())
    agent = lab.start_agent("[interface dh0]\ndhcp = true\n")
    learned = wait_for("a lease", lambda: (lambda i: i if i["lease"] == "bound" else None)(
        agent.learned()["dh0"]), timeout=30)
    assert learned["proxies"] == proxies
    assert [c["proxy"] for c in agent.proxy()["candidates"]] == proxies
    assert [c["source"] for c in agent.proxy()["candidates"]] == ["dhcp:dh0"] * len(proxies)


@needs_dhcpd
def test_dhcpd_refuses_an_array_of_text(tmp_path):
    """The other natural way for ISC dhcpd: it does not take the definition
    (`text` alone it does)."""
    def check(kind):
        conf = tmp_path / "dhcpd.conf"
        conf.write_text(f"option space onramp code width 1 length width 1;\n"
                        f"option onramp.proxy code 128 = {kind};\n")
        return subprocess.run(["dhcpd", "-t", "-4", "-cf", str(conf)], capture_output=True,
                              text=True, timeout=30)
    assert check("text").returncode == 0
    proc = check("array of text")
    assert proc.returncode != 0
    assert "arrays of text strings not yet supported" in proc.stderr, proc.stderr


# --- hook mode: the lease handed over ends ------------------------------------

def sample(lab, agent, name, replace=()):
    """A copy of docs/examples/NAME that calls this build's onrampctl with the
    agent's socket, and with the other replacements (old, new) made."""
    with open(os.path.join(ROOT, "docs", "examples", name)) as f:
        text = f.read()
    for old, new in (("/usr/bin/onrampctl dhcp-hook",
                      f"{program('onrampctl')} dhcp-hook --socket {agent.socket}"),
                     *replace):
        assert text.count(old) == 1, (name, old)
        text = text.replace(old, new)
    path = os.path.join(lab.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def hook_script(lab, name, configure, then):
    """A DHCP client script: notes the event, configures the lease (so that
    renewals can go by unicast), then runs `then` (a sample from docs/examples).
    Returns a function giving the events seen so far."""
    path = os.path.join(lab.tmp, name)
    events = os.path.join(lab.tmp, name + ".events")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho \"${{1:-$reason}}\" >> {events}\n{configure}\n{then}\n")
    os.chmod(path, 0o755)
    return lambda: open(events).read().split() if os.path.exists(events) else []


def assert_expires_after_kill(agent, client, events, renewed, lease_time):
    """While the client runs, renewals keep the proxy past one lease time;
    killed (no script runs), it goes at the lease's end."""
    wait_for("the proxy from the hook", lambda: agent.learned()["dh0"]["proxies"] ==
             ONE, timeout=30)
    assert f"dh0: dhcp hook: bound, with option 43, lease {lease_time} s" in agent.read_log()
    wait_for("renewals for longer than one lease",
             lambda: len([e for e in events() if e in renewed]) >= 3, timeout=60)
    assert agent.learned()["dh0"]["proxies"] == ONE
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
    start_server(lab, "kea", kea_fragment(documented("Kea")[0]), lease_time=20)
    agent = lab.start_agent("[interface dh0]\ndhcp = hook\n")
    # docs/examples/udhcpc-onramp.script, chaining to a script that notes the
    # event and configures the lease instead of /etc/udhcpc/default.script
    # (which would write the host's /etc/resolv.conf)
    configure = os.path.join(lab.tmp, "configure.script")
    events = hook_script(lab, "configure.script",
                         'case "$1" in bound|renew) ip addr replace "$ip/${mask:-24}" '
                         'dev "$interface";; esac', "exit 0")
    script = sample(lab, agent, "udhcpc-onramp.script",
                    [('[ -x /etc/udhcpc/default.script ] && /etc/udhcpc/default.script "$@"',
                      f'[ -x {configure} ] && {configure} "$@"')])
    udhcpc = lab.spawn(lab.client, ["busybox", "udhcpc", "-f", "-i", "dh0", "-V", "JuniperSSR",
                                    "-O", "43", "-s", script,
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
    start_server(lab, "dhcpd", documented("ISC dhcpd")[0], lease_time=6)
    agent = lab.start_agent("[interface dh0]\ndhcp = hook\n")
    # dhclient-script sources docs/examples/dhclient-exit-hook at its end
    hook = sample(lab, agent, "dhclient-exit-hook")
    events = hook_script(lab, "dhclient.script",
                         'case "$reason" in BOUND|RENEW|REBIND|REBOOT) ip addr replace '
                         '"$new_ip_address/$new_subnet_mask" dev "$interface";; esac',
                         f". {hook}")
    conf = os.path.join(lab.tmp, "dhclient.conf")
    with open(conf, "w") as f:
        f.write(DHCLIENT_CONF)
    dhclient = lab.spawn(lab.client, [
        "dhclient", "-d", "-4", "-cf", conf, "-sf", os.path.join(lab.tmp, "dhclient.script"),
        "-lf", os.path.join(lab.tmp, "dhclient.leases"),
        "-pf", os.path.join(lab.tmp, "dhclient.pid"), "dh0"],
        os.path.join(lab.tmp, "dhclient.out"))
    assert_expires_after_kill(agent, dhclient, events, ("RENEW", "REBIND", "BOUND"), 6)
