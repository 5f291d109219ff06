"""The daemons under systemd's eyes, with systemd's own protocols and no
systemd running here: readiness and stopping through sd_notify (a datagram
socket named by NOTIFY_SOCKET, as the manager makes it for Type=notify units),
and log lines for the journal when stderr is the stream JOURNAL_STREAM names
(a "<N>" syslog priority, no timestamp of ours)."""
import json
import os
import re
import socket
import subprocess

import pytest

from cloud_env import Daemon, Pki, wait_port
from conductorlib import Conductor
from conftest import program
from conftest import stop_process as stop


@pytest.fixture
def redirectd(tmp_path):
    pki = Pki(str(tmp_path), "redirect")
    daemon = Daemon("onramp-redirectd", str(tmp_path), "redirectd", pki)
    daemon.init()
    return daemon


def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(15)
    return sock, path


def messages(sock):
    """One notification as a dict of its KEY=VALUE lines."""
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)


def test_redirectd_tells_the_manager_it_is_ready_then_stopping(tmp_path, redirectd):
    sock, path = notify_socket(tmp_path)
    with open(redirectd.log, "ab") as log:
        proc = subprocess.Popen([program("onramp-redirectd"), "--config", redirectd.conf],
                                stdout=log, stderr=log, env=dict(os.environ, NOTIFY_SOCKET=path))
        try:
            ready = messages(sock)
            assert ready.get("READY") == "1"
            assert ready.get("STATUS") == f"serving on 127.0.0.1 port {redirectd.port}"
            # Ready means serving: the port answers now, without waiting.
            socket.create_connection(("127.0.0.1", redirectd.port), timeout=2).close()
            proc.terminate()
            assert messages(sock).get("STOPPING") == "1"
            assert proc.wait(timeout=15) == 0
        finally:
            stop(proc)
            sock.close()


def test_conductor_notifies_once_serving(tmp_path):
    sock, path = notify_socket(tmp_path)
    conductor = Conductor("staging", "notify-staging")
    conductor.init()
    with open(conductor.log_path, "a") as log:
        proc = subprocess.Popen([program("onramp-conductord"), "run", "--config",
                                 conductor.config], stdout=log, stderr=log,
                                env=dict(os.environ, NOTIFY_SOCKET=path))
    try:
        ready = messages(sock)
        assert ready.get("READY") == "1", ready
        with open(conductor.ports_file) as f:
            port = json.load(f)["port"]
        assert ready.get("STATUS") == f"conductor notify-staging serving routers on port {port}"
        proc.terminate()
        assert messages(sock).get("STOPPING") == "1"
        assert proc.wait(timeout=15) == 0
    finally:
        stop(proc)
        sock.close()
        conductor.cleanup()


def test_agent_notifies_once_started(tmp_path):
    sock, path = notify_socket(tmp_path)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    state = tmp_path / "agent"
    conf = tmp_path / "agent.conf"
    conf.write_text(f"[agent]\nstate-dir = {state}\ncontrol-socket = {tmp_path}/agent.sock\n"
                    "[proxy]\nmode = static\nstatic = 127.0.0.1:9\n")
    proc = subprocess.Popen([program("onramp-agent"), "-c", str(conf)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ready = messages(sock)
        assert ready.get("READY") == "1", ready
        proc.terminate()
        assert messages(sock).get("STOPPING") == "1"
    finally:
        stop(proc)
        sock.close()


def journal_lines(tmp_path, redirectd, matching):
    """Runs redirectd with stderr to a file; JOURNAL_STREAM names that file
    (matching=True) or another one; returns its log lines."""
    out = tmp_path / "stderr.log"
    with open(out, "wb") as f:
        st = os.fstat(f.fileno())
        ino = st.st_ino if matching else st.st_ino + 1
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{ino}")
        proc = subprocess.Popen([program("onramp-redirectd"), "--config", redirectd.conf],
                                stdout=f, stderr=f, env=env)
        try:
            wait_port(redirectd.port, proc, "onramp-redirectd")
        finally:
            stop(proc)
    assert proc.returncode == 0
    return out.read_text().splitlines()


def test_log_lines_carry_a_priority_and_no_timestamp_on_the_journal(tmp_path, redirectd):
    lines = journal_lines(tmp_path, redirectd, matching=True)
    assert lines, "redirectd logged nothing"
    for line in lines:
        assert re.match(r"^<[0-7]>\S", line), line
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line), line
    assert any(line.startswith("<6>") for line in lines)  # info: "signal 15: stopping"


def test_a_stderr_that_is_not_the_journal_keeps_the_plain_format(tmp_path, redirectd):
    lines = journal_lines(tmp_path, redirectd, matching=False)
    assert lines
    for line in lines:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ onramp-redirectd\[\w+\]: ", line), line


def phone_home(port, ca, serial):
    import http.client
    import json as js
    import ssl
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=ssl.create_default_context(cafile=ca))
    conn.request("POST", "/v1/phone-home", js.dumps({"serial": serial, "nonce": "ab" * 16}),
                 {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_redirector_logs_unclaimed_phone_homes_without_bound_to_floods(tmp_path, redirectd):
    redirectd.start()
    try:
        for i in range(30):
            assert phone_home(redirectd.port, redirectd.ca, f"SSR-FLOOD-{i:04d}") == 404
    finally:
        redirectd.stop()
    log = redirectd.log_text()
    lines = [line for line in log.splitlines() if "is not claimed" in line]
    assert len(lines) == 10, log[-2000:]
    assert "SSR-FLOOD-0000" in lines[0] and "127.0.0.1" in lines[0]
    assert log.count("more than 10 phone-homes of unclaimed serials in 60 s: the rest are "
                     "counted, not logged") == 1
