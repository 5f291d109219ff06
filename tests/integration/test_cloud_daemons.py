"""onramp-redirectd and onramp-cloudd as programs: --help, usage and
configuration errors (FILE:LINE), init once only, key files made 0600 and
refused when others may read them; the redirector under resource
exhaustion, dribbled requests and ambiguous body lengths."""
import http.client
import json
import os
import socket
import ssl
import stat
import subprocess
import time

from cloud_env import Daemon, Pki, remove, tempdir, wait_port
from conftest import program, run, stop_process, wait_until
from test_http_server import cpu_seconds, dribble, lines_with

import pytest


@pytest.fixture
def workdir():
    d = tempdir()
    yield d
    remove(d)


@pytest.mark.parametrize("name", ["onramp-redirectd", "onramp-cloudd"])
def test_help_and_usage(name):
    proc = run(name, "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout and "init" in proc.stdout
    assert run(name, "--version").stdout.startswith(name + " ")
    proc = run(name)
    assert proc.returncode == 2 and "--config FILE is required" in proc.stderr
    proc = run(name, "--frobnicate")
    assert proc.returncode == 2


@pytest.mark.parametrize("name,section", [("onramp-redirectd", "redirectd"),
                                          ("onramp-cloudd", "cloudd")])
def test_configuration_errors_name_file_and_line(workdir, name, section):
    pki = Pki(workdir, "srv")
    d = Daemon(name, workdir, section, pki, "retry_afterr = 5\n")
    proc = run(name, "init", "--config", d.conf)
    assert proc.returncode == 2 and f"{d.conf}:8:" in proc.stderr and "retry_afterr" in proc.stderr
    assert not os.path.exists(d.state)
    d = Daemon(name, workdir, section, pki, "threads = many\n", tag="-b")
    proc = run(name, "init", "--config", d.conf)
    assert proc.returncode == 2 and f"{d.conf}:" in proc.stderr and "threads" in proc.stderr
    proc = run(name, "--config", os.path.join(workdir, "missing.conf"))
    assert proc.returncode == 2 and "missing.conf" in proc.stderr
    # A value the daemon checks itself names its line too; a missing key its section's.
    d = Daemon(name, workdir, section, pki, "log-level = loud\n", tag="-c")
    proc = run(name, "init", "--config", d.conf)
    assert proc.returncode == 2 and f"{d.conf}:8: log-level: unknown log level" in proc.stderr
    conf = os.path.join(workdir, f"{section}-d.conf")
    with open(conf, "w") as f:
        f.write(f"# no state\n[{section}]\ncert-file = {pki.cert}\nkey-file = {pki.key}\n")
    proc = run(name, "init", "--config", conf)
    assert proc.returncode == 2 and f"{conf}:2: [{section}] state-dir is required" in proc.stderr


def test_cloudd_configuration_values_name_file_and_line(workdir):
    pki = Pki(workdir, "srv")
    # The keys of the state directory exist, so only the configuration can be wrong.
    Daemon("onramp-cloudd", workdir, "cloudd", pki).init()
    for n, (extra, message) in enumerate([
            ("public-url = http://cloud.example\n", ":8: public-url must start with https://"),
            ("public-ca-file = /nonexistent/ca.pem\n", ":8: public-ca-file: /nonexistent"),
            (f"public-ca-file = {pki.key}\n", ":8: public-ca-file: "),
            ("[redirector]\nurl = https://127.0.0.1:9\n", ":9: [redirector] needs url"),
            ("[redirector]\nca-file = /x\n", ":8: [redirector] needs url"),
            ("[redirector]\nurl = ftp://x\nca-file = /x\ntoken-file = /y\n",
             ":9: [redirector] url must start"),
            (f"public-url = https://127.0.0.1:9\npublic-ca-file = {pki.ca}\n[redirector]\n"
             f"url = https://127.0.0.1:9\nca-file = /nonexistent/r.pem\ntoken-file = /y\n",
             ":12: ca-file: /nonexistent/r.pem"),
            (f"public-url = https://127.0.0.1:9\npublic-ca-file = {pki.ca}\n[redirector]\n"
             f"url = https://127.0.0.1:9\nca-file = {pki.ca}\ntoken-file = {pki.ca}\n",
             ":13: token-file: "),
    ]):
        d = Daemon("onramp-cloudd", workdir, "cloudd", pki, extra, tag=f"-v{n}")
        proc = run("onramp-cloudd", "--config", d.conf, timeout=10)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert f"{d.conf}{message}" in proc.stderr, (extra, proc.stderr)


def test_cloudd_init_once_keys_private(workdir):
    pki = Pki(workdir, "srv")
    d = Daemon("onramp-cloudd", workdir, "cloudd", pki)
    token = d.init()
    assert stat.S_IMODE(os.stat(d.state).st_mode) == 0o700
    for name in ("master.key", "inventory.key"):
        assert stat.S_IMODE(os.stat(os.path.join(d.state, name)).st_mode) == 0o600
    with open(os.path.join(d.state, "inventory.pub.pem")) as f:
        assert "BEGIN PUBLIC KEY" in f.read()
    # A second init changes nothing and says why.
    with open(os.path.join(d.state, "master.key"), "rb") as f:
        master = f.read()
    with open(os.path.join(d.state, "inventory.pub.pem"), "rb") as f:
        inventory_pub = f.read()
    proc = run("onramp-cloudd", "init", "--config", d.conf)
    assert proc.returncode == 1 and "already initialised" in proc.stderr
    assert proc.stdout == ""
    with open(os.path.join(d.state, "master.key"), "rb") as f:
        assert f.read() == master
    with open(os.path.join(d.state, "inventory.pub.pem"), "rb") as f:
        assert f.read() == inventory_pub
    # The token is kept only as its hash.
    with open(os.path.join(d.state, "cloud.db"), "rb") as f:
        assert token.encode() not in f.read()
    # A master key others may read is refused at start.
    os.chmod(os.path.join(d.state, "master.key"), 0o644)
    proc = run("onramp-cloudd", "--config", d.conf, timeout=10)
    assert proc.returncode == 2 and "master.key" in proc.stderr and "0600" in proc.stderr


def test_cloudd_init_that_failed_half_way_can_run_again(workdir):
    # The inventory public key cannot be written (its directory does not exist):
    # init fails after making the master key. Once fixed, init completes with it.
    pki = Pki(workdir, "srv")
    pub = os.path.join(workdir, "factory", "inventory.pub.pem")
    d = Daemon("onramp-cloudd", workdir, "cloudd", pki, f"inventory-pub-file = {pub}\n")
    proc = run("onramp-cloudd", "init", "--config", d.conf)
    assert proc.returncode == 1 and "factory" in proc.stderr
    with open(os.path.join(d.state, "master.key"), "rb") as f:
        master = f.read()
    os.mkdir(os.path.join(workdir, "factory"))
    d.init()
    with open(os.path.join(d.state, "master.key"), "rb") as f:
        assert f.read() == master
    assert os.path.exists(pub)


def test_cloudd_refuses_incomplete_redirector_section(workdir):
    pki = Pki(workdir, "srv")
    d = Daemon("onramp-cloudd", workdir, "cloudd", pki,
               "[redirector]\nurl = https://127.0.0.1:9\n")
    proc = run("onramp-cloudd", "init", "--config", d.conf)
    assert proc.returncode == 2 and "url, ca_file and token_file together" in proc.stderr


def test_redirectd_init_once(workdir):
    pki = Pki(workdir, "srv")
    d = Daemon("onramp-redirectd", workdir, "redirectd", pki)
    token = d.init()
    proc = run("onramp-redirectd", "init", "--config", d.conf)
    assert proc.returncode == 1 and "already initialised" in proc.stderr
    assert token not in proc.stdout


def test_redirectd_resists_exhaustion_dribbling_and_ambiguous_lengths(workdir):
    """The real daemon (issue 12, point 4) under prlimit --nofile=64, with
    request-timeout = 2 from its configuration: out of descriptors it pauses
    accepting (bounded CPU and log) and serves again afterwards; a request
    dribbled a byte at a time is cut off about 2 s after its first byte; two
    Content-Length headers get 400 before the phone-home handler runs."""
    pki = Pki(workdir, "srv")
    d = Daemon("onramp-redirectd", workdir, "redirectd", pki, "request-timeout = 2\n")
    d.init()
    with open(d.log, "ab") as log:
        proc = subprocess.Popen(["prlimit", "--nofile=64:64", program("onramp-redirectd"),
                                 "--config", d.conf], stdout=log, stderr=log)
    ctx = ssl.create_default_context(cafile=pki.ca)

    def tls():
        return ctx.wrap_socket(socket.create_connection(("127.0.0.1", d.port), timeout=20),
                               server_hostname="127.0.0.1")

    def phone_home(extra=b""):
        s = tls()
        try:
            body = b'{"serial":"SN-ATTACK-1","nonce":"00112233445566778899aabbccddeeff"}'
            s.sendall(b"POST /v1/phone-home HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)
            r = http.client.HTTPResponse(s, method="POST")
            r.begin()
            return r.status, json.loads(r.read())
        finally:
            s.close()
    held = []
    try:
        wait_port(d.port, proc, "onramp-redirectd")
        assert phone_home()[0] == 404  # not claimed: the handler ran
        for _ in range(150):
            held.append(socket.create_connection(("127.0.0.1", d.port), timeout=10))
        time.sleep(0.5)
        before = cpu_seconds(proc.pid)
        time.sleep(3)
        spent = cpu_seconds(proc.pid) - before
        failures = lines_with(d.log, "Too many open files")
        assert failures and len(failures) <= 10, (len(failures), d.log_text()[-2000:])
        assert spent < 0.5, f"{spent:.2f} s of CPU in 3 s out of descriptors"
        for s in held:
            s.close()
        held.clear()

        def serving():
            try:
                return phone_home()[0] == 404
            except (OSError, http.client.HTTPException):
                return False
        wait_until("redirectd serving again", serving)

        s = tls()
        closed_after, got = dribble(s, b"POST /v1/phone-home HTTP/1.1\r\nHost: x\r\n" +
                                    b"X-Pad: " + b"a" * 40, 0.5)
        s.close()
        assert closed_after is not None and 1.5 <= closed_after <= 6, closed_after
        assert got == b""

        status, data = phone_home(b"Content-Length: 3\r\n")
        assert status == 400 and data["error"]["code"] == "bad-request", data
        assert "Content-Length" in data["error"]["message"]
    finally:
        for s in held:
            s.close()
        stop_process(proc)
    assert proc.returncode == 0, d.log_text()[-3000:]


@pytest.mark.parametrize("name,section", [("onramp-redirectd", "redirectd"),
                                          ("onramp-cloudd", "cloudd")])
def test_request_timeout_is_checked(workdir, name, section):
    pki = Pki(workdir, "srv")
    for n, value in enumerate(("0", "3601", "soon")):
        d = Daemon(name, workdir, section, pki, f"request-timeout = {value}\n", tag=f"-t{n}")
        proc = run(name, "init", "--config", d.conf)
        assert proc.returncode == 2, proc.stderr
        assert f"{d.conf}:8:" in proc.stderr and "request-timeout" in proc.stderr, proc.stderr
        assert not os.path.exists(d.state)
