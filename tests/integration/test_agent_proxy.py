"""The agent's proxy modes without DHCP (issue 4 points 2, 5, 6): static
entries and the bootstrap file with real tinyproxy instances on 127.0.0.1,
disabled mode, configuration errors, the control socket's protocol and
permissions, and the proxy password kept out of logs and status."""
import json
import os
import socket
import stat

import pytest

from agentlab import Lab, stop, wait_for
from conftest import ROOT, free_port, run


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path, links=None)
    yield lab
    lab.close()



def two_ports():
    a = free_port()
    b = free_port()
    while b == a:
        b = free_port()
    return sorted((a, b))


def test_static_mode_lowest_port_failover_and_back(lab):
    low, high = two_ports()
    low_proxy = lab.start_tinyproxy(None, "127.0.0.1", low)
    lab.start_tinyproxy(None, "127.0.0.1", high)
    agent = lab.start_agent(f"[proxy]\nmode = static\nstatic = 127.0.0.1:{high}\n"
                            f"static = 127.0.0.1:{low}\nhealth-interval = 1\n")
    proxy = agent.wait_active(f"127.0.0.1:{low}")
    assert proxy == {"mode": "static", "active": f"127.0.0.1:{low}", "state": "reachable",
                     "candidates": [
                         {"proxy": f"127.0.0.1:{low}", "source": "static", "reachable": True},
                         {"proxy": f"127.0.0.1:{high}", "source": "static",
                          "reachable": True}]}
    assert agent.show("dhcp", "learned-proxies") == {"interfaces": []}
    stop(low_proxy)
    agent.wait_active(f"127.0.0.1:{high}")
    assert [a["subject"] for a in agent.alarms() if a["cleared"] is None] == [
        f"127.0.0.1:{low}"]
    lab.start_tinyproxy(None, "127.0.0.1", low)
    agent.wait_active(f"127.0.0.1:{low}")
    assert all(a["cleared"] is not None for a in agent.alarms())
    out = agent.ctl("show", "alarms").stdout
    assert "Management Proxy is unreachable" in out and f"127.0.0.1:{low}" in out


def test_disabled_mode_has_no_proxy(lab):
    agent = lab.start_agent("[proxy]\nmode = disabled\nstatic = 127.0.0.1:3128\n")
    assert agent.proxy() == {"mode": "disabled", "active": None, "state": "none",
                             "candidates": []}
    out = agent.ctl("show", "management-proxy")
    assert out.returncode == 0
    assert "mode:    disabled\nactive:  N/A\nstate:   none\n" in out.stdout


def test_bootstrap_file_proxy_is_a_candidate(lab, tmp_path):
    port = free_port()
    lab.start_tinyproxy(None, "127.0.0.1", port)
    state = tmp_path / "agent" / "state"
    state.mkdir(parents=True)
    (state / "bootstrap.conf").write_text(f"[proxy]\nstatic = 127.0.0.1:{port}\n")
    agent = lab.start_agent("[proxy]\nmode = static\nhealth-interval = 1\n")
    proxy = agent.wait_active(f"127.0.0.1:{port}")
    # issue 11 point 8: its source is "bootstrap", as docs/agent.conf.md says
    assert proxy["candidates"] == [{"proxy": f"127.0.0.1:{port}", "source": "bootstrap",
                                    "reachable": True}]
    out = agent.ctl("show", "management-proxy").stdout
    assert f"127.0.0.1:{port}" in out and "bootstrap" in out


def test_unreachable_proxy_raises_the_alarm(lab):
    port = free_port()  # nothing listens there
    agent = lab.start_agent(f"[proxy]\nstatic = 127.0.0.1:{port}\nhealth-interval = 1\n")
    agent.wait_active(f"127.0.0.1:{port}", state="unreachable")
    [alarm] = wait_for("the alarm", agent.alarms)
    assert alarm["severity"] == "critical"
    assert alarm["message"] == "Management Proxy is unreachable"
    assert alarm["cleared"] is None
    out = agent.ctl("show", "management-proxy").stdout
    assert "state:   unreachable" in out
    assert f"critical: Management Proxy is unreachable (127.0.0.1:{port})" in out
    # issue 11 point 8: the text of show alarms says whether it reached the cloud too
    # (no onboarding here, so it never does)
    header, row = agent.ctl("show", "alarms").stdout.splitlines()
    assert header.split() == ["SEVERITY", "MESSAGE", "SUBJECT", "RAISED", "CLEARED",
                              "REPORTED"]
    assert row.startswith("critical") and f"127.0.0.1:{port}" in row
    assert row.split()[-2:] == ["active", "no"]
    # the next success clears it
    lab.start_tinyproxy(None, "127.0.0.1", port)
    agent.wait_active(f"127.0.0.1:{port}")
    [alarm] = agent.alarms()
    assert alarm["cleared"] is not None


def test_bad_configuration_is_refused_with_file_and_line(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text("[proxy]\nmode = static\nstatic = 10.0.0.1:0\n")
    proc = run("onramp-agent", "-c", str(conf), "--check-config")
    assert proc.returncode == 2
    assert proc.stderr == f"onramp-agent: {conf}:3: static proxy '10.0.0.1:0': port 0\n"
    conf.write_text("[proxy]\nhealth-intervall = 5\n")
    proc = run("onramp-agent", "-c", str(conf))
    assert proc.returncode == 2
    assert "agent.conf:2: unknown setting 'health-intervall' in [proxy]" in proc.stderr
    conf.write_text(f"[agent]\nstate-dir = {tmp_path}\n[proxy]\nmode = static\n")
    proc = run("onramp-agent", "-c", str(conf))
    assert proc.returncode == 2 and "mode is static but there is no static entry" in proc.stderr
    proc = run("onramp-agent", "-c", str(tmp_path / "missing.conf"))
    assert proc.returncode == 2 and "missing.conf" in proc.stderr
    conf.write_text(f"[agent]\nstate-dir = {tmp_path}\n[proxy]\nstatic = 10.0.0.1:3128\n")
    proc = run("onramp-agent", "-c", str(conf), "--check-config")
    assert proc.returncode == 0, proc.stderr
    assert run("onramp-agent", "--help").returncode == 0
    assert run("onramp-agent", "--bogus").returncode == 2
    # a DHCP interface that does not exist: the agent does not start (no namespace
    # needed: nothing is sent anywhere)
    conf.write_text(f"[agent]\nstate-dir = {tmp_path}\ncontrol-socket = {tmp_path}/a.sock\n"
                    "[interface nosuch0]\ndhcp = true\n")
    proc = run("onramp-agent", "-c", str(conf))
    assert proc.returncode == 1
    assert "interface nosuch0: No such device" in proc.stderr
    assert not os.path.exists(tmp_path / "a.sock")


def test_documented_sample_configuration_is_valid():
    sample = os.path.join(ROOT, "docs", "examples", "agent.conf")
    proc = run("onramp-agent", "-c", sample, "--check-config")
    assert proc.returncode == 0, proc.stderr


def test_onrampctl_show_errors(tmp_path):
    proc = run("onrampctl", "show", "management-proxy", "--socket", str(tmp_path / "none.sock"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("onrampctl: show: cannot reach the agent at ")
    proc = run("onrampctl", "show", "everything")
    assert proc.returncode == 2
    assert proc.stderr == ("onrampctl: show: unknown topic 'everything' "
                           "(try 'onrampctl show --help')\n")
    proc = run("onrampctl", "show", "dhcp", "leases")
    assert proc.returncode == 2
    proc = run("onrampctl", "show", "alarms", "--jsn")
    assert proc.returncode == 2 and "unknown or incomplete option '--jsn'" in proc.stderr
    assert run("onrampctl", "show", "--help").returncode == 0


def request(path, data):
    """Sends raw bytes on the control socket and returns the answer lines."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    return [json.loads(line) for line in out.decode().splitlines()]


def test_control_socket_protocol_and_permissions(lab):
    agent = lab.start_agent("[proxy]\nmode = disabled\n")
    mode = os.stat(agent.socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    answers = request(agent.socket, b'{"command":"show alarms"}\n'
                      b'not json\n'
                      b'{"command":"reboot"}\n'
                      b'{"cmd":"show alarms"}\n'
                      b'{"command":"dhcp-hook","interface":"x","event":"bound"}\n')
    assert answers[0] == {"ok": True, "result": {"alarms": []}}
    assert answers[1]["ok"] is False and answers[1]["error"].startswith("bad request: malformed")
    assert answers[2] == {"ok": False, "error": "unknown command 'reboot'"}
    assert answers[3] == {"ok": False, "error": "bad request: field 'command' is required"}
    assert answers[4] == {"ok": False,
                          "error": "interface x is not configured with dhcp = hook"}
    # an endless line is refused and the connection closed
    answers = request(agent.socket, b"x" * (300 * 1024))
    assert answers == [{"ok": False, "error": "request longer than 262144 bytes"}]
    # the agent still answers afterwards; a second agent on the same socket is refused
    assert agent.proxy()["mode"] == "disabled"
    conf = os.path.join(lab.tmp, "second.conf")
    with open(conf, "w") as f:
        f.write(f"[agent]\nstate-dir = {lab.tmp}/second\ncontrol-socket = {agent.socket}\n")
    proc = run("onramp-agent", "-c", conf)
    assert proc.returncode == 1
    assert f"another agent is listening on {agent.socket}" in proc.stderr
    # a clean stop removes the socket
    agent.stop()
    assert not os.path.exists(agent.socket)


def test_proxy_password_never_logged_or_shown(lab, tmp_path):
    secret = "pw-9f3c2e1d7b"
    pw = tmp_path / "proxy.pw"
    pw.write_text(secret + "\n")
    pw.chmod(0o600)
    port = free_port()
    lab.start_tinyproxy(None, "127.0.0.1", port)
    agent = lab.start_agent(f"[proxy]\nmode = static\nstatic = 127.0.0.1:{port}\n"
                            f"user = router\npassword-file = {pw}\nauth = basic\n"
                            "health-interval = 1\n")
    agent.wait_active(f"127.0.0.1:{port}")
    # no core dump of the agent can carry the password
    with open(f"/proc/{agent.proc.pid}/limits") as f:
        core = [line.split() for line in f if line.startswith("Max core file size")]
    assert core == [["Max", "core", "file", "size", "0", "0", "bytes"]]
    shown = "".join(agent.ctl(*args).stdout for args in [
        ("show", "management-proxy"), ("show", "management-proxy", "--json"),
        ("show", "alarms", "--json"), ("show", "dhcp", "learned-proxies", "--json")])
    agent.stop()
    assert secret not in shown
    assert secret not in agent.read_log()
    for root, _, files in os.walk(agent.dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert secret.encode() not in f.read()


def test_applied_configuration_management_proxy_section_is_in_force_at_start(lab, tmp_path):
    """Issue 11 point 3: peering.json (as the conductor client stored it) with a
    management-proxy section replaces agent.conf's static entries and the bootstrap
    file at start; a damaged one leaves the local settings in force, logged."""
    state = tmp_path / "agent" / "state"
    state.mkdir(parents=True)
    (state / "bootstrap.conf").write_text("[proxy]\nstatic = 10.0.0.7:3128\n")
    peering = {"version": 1, "router": {"name": "r1"},
               "hub": {"name": "hub-east", "addresses": ["127.0.0.1:1280"]},
               "neighborhoods": [{"name": "mpls-core"}],
               "management-proxy": {"mode": "static",
                                    "static": ["10.0.0.9:3128", "10.0.0.5:8080"]}}
    (state / "peering.json").write_text(json.dumps(peering, sort_keys=True))
    agent = lab.start_agent("[proxy]\nmode = learned\nstatic = 10.0.0.8:3128\n")
    proxy = agent.proxy()
    assert proxy["mode"] == "static"
    assert [(c["proxy"], c["source"]) for c in proxy["candidates"]] == [
        ("10.0.0.5:8080", "conductor"), ("10.0.0.9:3128", "conductor")]
    assert "the conductor's configuration is in force: mode static, 2 static entries" in \
        agent.read_log()
    agent.stop()

    # damaged (fails the schema): the local settings, and the reason in the log
    peering["management-proxy"] = {"mode": "static"}
    (state / "peering.json").write_text(json.dumps(peering))
    agent = lab.start_agent("[proxy]\nmode = learned\nstatic = 10.0.0.8:3128\n")
    proxy = agent.proxy()
    assert proxy["mode"] == "learned"
    assert [(c["proxy"], c["source"]) for c in proxy["candidates"]] == [
        ("10.0.0.7:3128", "bootstrap"), ("10.0.0.8:3128", "static")]
    assert "management-proxy.static: mode static needs 1 to 16 proxies; the local " \
        "settings stay in force" in agent.read_log()
