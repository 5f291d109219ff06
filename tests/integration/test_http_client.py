"""The outbound HTTPS client (lib/net/http_client.c) through `onrampctl probe`,
against real components: squid with Basic and with Digest auth, tinyproxy,
openssl s_server as the origin (certificates from a test CA made with the
openssl CLI), a TLS-intercepting proxy, and network namespaces for DNS
failures. Each failure must come out as its own class with a sentence an
operator can act on; the proxy password must never appear in any output."""
import base64
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, program
from netservices import (HeldPort, InterceptingProxy, LocalCA, LocalDns, Netns, ScriptedOrigin,
                         SilentPort, Squid, Tinyproxy, answer, make_tmpdir, start_s_server_www)

USER = "onramp-router"
PASSWORD = "S3cret-proxy-pass-83f1"
WRONG = "wrong-pass-7c2e9"
BEARER = "tok-4b1d.Zq9_x-7"
LABEL = "EXPORTER-onramp-test"


@pytest.fixture(scope="module")
def work():
    d = make_tmpdir("onramp-httpclient-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Pki:
    pass


@pytest.fixture(scope="module")
def pki(work):
    p = Pki()
    os.makedirs(os.path.join(work, "ca"))
    os.makedirs(os.path.join(work, "rogue"))
    ca = LocalCA(os.path.join(work, "ca"))
    p.ca = ca.cert
    p.server = ca.issue("server", ["DNS:localhost", "IP:127.0.0.1"])
    p.wrong_name = ca.issue("wrongname", ["DNS:wrong.example"])
    p.dns_only = ca.issue("dnsonly", ["DNS:localhost"])
    rogue = LocalCA(os.path.join(work, "rogue"), "Inspection CA")
    p.rogue_ca = rogue.cert
    p.rogue = rogue.issue("intercept", ["DNS:localhost", "IP:127.0.0.1"])
    p.password_file = os.path.join(work, "password")
    p.wrong_file = os.path.join(work, "wrong")
    p.bearer_file = os.path.join(work, "bearer")
    for path, text in ((p.password_file, PASSWORD + "\n"), (p.wrong_file, WRONG + "\n"),
                       (p.bearer_file, BEARER + "\n")):
        with open(path, "w") as f:
            f.write(text)
    return p


def _service(svc):
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def www(pki):
    yield from _service(start_s_server_www(*pki.server))


@pytest.fixture(scope="module")
def squid_basic():
    yield from _service(Squid("basic", {USER: PASSWORD}))


@pytest.fixture(scope="module")
def squid_digest():
    yield from _service(Squid("digest", {USER: PASSWORD}))


@pytest.fixture(scope="module")
def tinyproxy_auth():
    yield from _service(Tinyproxy(USER, PASSWORD))


@pytest.fixture(scope="module")
def tinyproxy_443():
    yield from _service(Tinyproxy(connect_port=443))


@pytest.fixture
def origin(pki):
    """Scripted s_server origins made by a test; all stopped at its end."""
    made = []

    def make(answers, **kw):
        o = ScriptedOrigin(*pki.server, answers, label=LABEL, **kw)
        made.append(o)
        return o
    yield make
    for o in made:
        o.stop()


@pytest.fixture
def held_port():
    """A local port that refuses connections: a server or proxy that is down."""
    port = HeldPort()
    yield port.port
    port.close()


@pytest.fixture
def silent_port():
    """A local port that accepts connections and never answers."""
    port = SilentPort()
    yield port.port
    port.close()


@pytest.fixture
def netns():
    made = []

    def make(tag):
        ns = Netns(tag)
        made.append(ns)
        return ns
    yield make
    for ns in made:
        ns.delete()


def asan_program():
    path = os.path.join(ROOT, "build-asan", "ctl", "onrampctl")
    if not os.access(path, os.X_OK):
        pytest.skip("no ASan build (make asan)")
    return path


def probe(*args, binary=None, prefix=(), env=None):
    """Runs `onrampctl probe`; the proxy password must never be in what it prints."""
    proc = subprocess.run([*prefix, binary or program("onrampctl"), "probe", *args],
                          capture_output=True, text=True, timeout=60, env=env)
    assert PASSWORD not in proc.stdout + proc.stderr
    assert WRONG not in proc.stdout + proc.stderr
    assert BEARER not in proc.stdout + proc.stderr
    return proc


def probe_json(*args, **kw):
    proc = probe(*args, "--json", **kw)
    assert proc.stdout.count("\n") == 1, (proc.stdout, proc.stderr)
    return proc, json.loads(proc.stdout)


def creds(pki, password_file=None):
    return ["--proxy-user", USER, "--proxy-password-file", password_file or pki.password_file]


def url(svc, host="localhost", path="/"):
    return f"https://{host}:{svc.port}{path}"


def assert_error(proc, doc, name, *phrases):
    assert proc.returncode == 1, proc.stderr
    assert doc["error"] == name, doc
    for phrase in phrases:
        assert phrase in doc["message"], doc["message"]


# --- success, direct and through each proxy ---------------------------------

def test_direct(pki, www):
    proc, doc = probe_json(url(www), "--ca", pki.ca)
    assert proc.returncode == 0 and doc["status"] == 200 and doc["error"] is None
    assert doc["connections"] == 1


def test_direct_by_ip_address(pki, www):
    proc = probe(url(www, "127.0.0.1"), "--ca", pki.ca)
    assert proc.returncode == 0 and proc.stdout == "status 200\n"


@pytest.mark.parametrize("builds", ["normal", "asan"])
def test_squid_basic(pki, www, squid_basic, builds):
    binary = asan_program() if builds == "asan" else None
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy", f"127.0.0.1:{squid_basic.port}",
                           *creds(pki), "--proxy-auth", "basic", binary=binary)
    assert proc.returncode == 0 and doc["status"] == 200, proc.stderr
    assert proc.stderr == ""
    assert f"CONNECT localhost:{www.port}" in squid_basic.access_log_text()
    assert USER in squid_basic.access_log_text()


@pytest.mark.parametrize("scheme", ["digest", "any"])
def test_squid_digest(pki, www, squid_digest, scheme):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy",
                           f"127.0.0.1:{squid_digest.port}", *creds(pki), "--proxy-auth", scheme)
    assert proc.returncode == 0 and doc["status"] == 200, doc
    assert f"CONNECT localhost:{www.port}" in squid_digest.access_log_text()


def test_tinyproxy(pki, www, tinyproxy_auth):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy",
                           f"127.0.0.1:{tinyproxy_auth.port}", *creds(pki))
    assert proc.returncode == 0 and doc["status"] == 200, doc


def test_proxies_from_the_environment_are_ignored(pki, www, held_port):
    down = f"http://127.0.0.1:{held_port}"
    env = dict(os.environ, https_proxy=down, HTTPS_PROXY=down, all_proxy=down)
    proc = probe(url(www), "--ca", pki.ca, env=env)
    assert proc.returncode == 0 and proc.stdout == "status 200\n", proc.stderr


# --- proxy authentication ----------------------------------------------------

def test_squid_wrong_password(pki, www, squid_basic):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy", f"127.0.0.1:{squid_basic.port}",
                           *creds(pki, pki.wrong_file))
    assert_error(proc, doc, "proxy-auth", "refused the credentials of user 'onramp-router'",
                 "407", "Basic")


def test_squid_missing_credentials(pki, www, squid_basic):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy", f"127.0.0.1:{squid_basic.port}")
    assert_error(proc, doc, "proxy-auth", "requires authentication", "no proxy user", "407")


def test_squid_digest_wrong_password(pki, www, squid_digest):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy",
                           f"127.0.0.1:{squid_digest.port}", *creds(pki, pki.wrong_file),
                           "--proxy-auth", "digest")
    assert_error(proc, doc, "proxy-auth", "407", "Digest")


def test_scheme_mismatch_names_what_the_proxy_offers(pki, www, squid_digest):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy",
                           f"127.0.0.1:{squid_digest.port}", *creds(pki), "--proxy-auth", "basic")
    assert_error(proc, doc, "proxy-auth", "it offers Digest")


def test_tinyproxy_wrong_password_401(pki, www, tinyproxy_auth):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy",
                           f"127.0.0.1:{tinyproxy_auth.port}", *creds(pki, pki.wrong_file))
    assert_error(proc, doc, "proxy-auth", "401", "refused the credentials")


def test_tinyproxy_missing_credentials(pki, www, tinyproxy_auth):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy",
                           f"127.0.0.1:{tinyproxy_auth.port}")
    assert_error(proc, doc, "proxy-auth", "407", "no proxy user")


# --- CONNECT refused, proxy down ---------------------------------------------

def test_squid_refuses_connect(pki, www, squid_basic):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy",
                           f"127.0.0.1:{squid_basic.restricted_port}", *creds(pki))
    assert_error(proc, doc, "proxy-forbidden", "403", f"localhost:{www.port}",
                 "do not allow CONNECT")


def test_tinyproxy_refuses_connect(pki, www, tinyproxy_443):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy", f"127.0.0.1:{tinyproxy_443.port}")
    assert_error(proc, doc, "proxy-forbidden", "403")


def test_proxy_down(pki, www, held_port):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy", f"127.0.0.1:{held_port}",
                           *creds(pki))
    assert_error(proc, doc, "proxy-unreachable", f"proxy 127.0.0.1:{held_port}",
                 "Connection refused")


def test_plain_output_of_an_error(pki, www, held_port):
    proc = probe(url(www), "--ca", pki.ca, "--proxy", f"127.0.0.1:{held_port}")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("onrampctl: probe: proxy-unreachable: cannot connect")
    assert len(proc.stderr.splitlines()) == 1


# --- certificates ------------------------------------------------------------

@pytest.mark.parametrize("builds", ["normal", "asan"])
def test_intercepting_proxy_is_not_trusted(pki, www, builds):
    binary = asan_program() if builds == "asan" else None
    mitm = InterceptingProxy(*pki.rogue)
    try:
        proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy", f"127.0.0.1:{mitm.port}",
                               *creds(pki), "--proxy-auth", "basic", binary=binary)
        assert_error(proc, doc, "tls-untrusted", "not trusted", "intercepting proxy")
        assert mitm.intercepted == 0
        # The CONNECT carried the proxy credentials, and nothing meant for the origin.
        assert len(mitm.connects) == 1
        assert mitm.connects[0].startswith(f"CONNECT localhost:{www.port} HTTP/1.1")
        assert "Proxy-Authorization: Basic" in mitm.connects[0]
    finally:
        mitm.stop()


def test_the_system_store_is_never_consulted(pki, www):
    # Were the client to fall back to OpenSSL's default locations, these would
    # make the server trusted although --ca names another anchor.
    env = dict(os.environ, SSL_CERT_FILE=pki.ca, SSL_CERT_DIR=os.path.dirname(pki.ca),
               CURL_CA_BUNDLE=pki.ca)
    proc, doc = probe_json(url(www), "--ca", pki.rogue_ca, env=env)
    assert_error(proc, doc, "tls-untrusted")


def test_curls_own_bundle_is_never_consulted(pki, www, work):
    # curl's built-in CA bundle (/etc/ssl/certs/ca-certificates.crt on Debian) and
    # OpenSSL's hashed directory, in a mount namespace of this test only, hold the
    # server's CA: the client, told to trust another anchor, must still refuse it.
    certs = os.path.join(work, "system-certs")
    os.makedirs(certs, exist_ok=True)
    shutil.copy(pki.ca, os.path.join(certs, "ca-certificates.crt"))
    shutil.copy(pki.ca, os.path.join(certs, "onramp-test.pem"))
    subprocess.run(["openssl", "rehash", certs], check=True, capture_output=True)
    script = (f"mount --bind {certs} /etc/ssl/certs && "
              "cmp -s /etc/ssl/certs/ca-certificates.crt " + pki.ca + " && exec \"$@\"")
    proc, doc = probe_json(url(www), "--ca", pki.rogue_ca,
                           prefix=("unshare", "-m", "sh", "-c", script, "sh"))
    assert_error(proc, doc, "tls-untrusted", f"localhost:{www.port}")
    # The same namespace does trust the server for a client that uses the system's store.
    check = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", "openssl", "s_client", "-connect",
         f"localhost:{www.port}", "-verify_return_error", "-CApath", "/etc/ssl/certs",
         "-servername", "localhost"],
        input="", capture_output=True, text=True, timeout=30)
    assert "Verify return code: 0 (ok)" in check.stdout, check.stdout + check.stderr


def test_other_anchor_is_not_trusted(pki, www):
    proc, doc = probe_json(url(www), "--ca", pki.rogue_ca)
    assert_error(proc, doc, "tls-untrusted", f"localhost:{www.port}")


@pytest.mark.parametrize("cert,host", [("wrong_name", "localhost"), ("dns_only", "127.0.0.1")])
def test_wrong_host_name(pki, cert, host):
    svc = start_s_server_www(*getattr(pki, cert))
    try:
        proc, doc = probe_json(url(svc, host), "--ca", pki.ca)
        assert_error(proc, doc, "tls", f"not valid for the name '{host}'")
    finally:
        svc.stop()


def test_tls_1_1_is_refused(pki):
    svc = start_s_server_www(*pki.server, extra=["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
    try:
        proc, doc = probe_json(url(svc), "--ca", pki.ca)
        assert_error(proc, doc, "tls", "TLS with")
    finally:
        svc.stop()


# --- DNS, origin down, timeouts ----------------------------------------------

def test_dns_failure_direct(pki, netns):
    ns = netns("dns")
    proc, doc = probe_json("https://onramp-test.invalid/", "--ca", pki.ca, prefix=ns.prefix())
    assert_error(proc, doc, "dns", "cannot resolve the server's name 'onramp-test.invalid'")


def test_dns_failure_of_the_proxy_name(pki, netns):
    ns = netns("dnsp")
    proc, doc = probe_json("https://localhost/", "--ca", pki.ca, "--proxy",
                           "proxy.onramp-test.invalid:3128", prefix=ns.prefix())
    assert_error(proc, doc, "dns", "proxy's name", "proxy.onramp-test.invalid")


RAW_CONNECT = """
import re, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(b"CONNECT " + sys.argv[2].encode() + b" HTTP/1.1\\r\\nHost: " + sys.argv[2].encode()
          + b"\\r\\n" + sys.argv[3].encode() + b"\\r\\n")
data = b""
while True:
    head, sep, body = data.partition(b"\\r\\n\\r\\n")
    length = re.search(rb"(?im)^content-length: *([0-9]+)", head)
    # Without a Content-Length the body ends when the proxy closes.
    if sep and length is not None and len(body) >= int(length.group(1)):
        break
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode("latin-1"))
"""


def raw_connect(ns, port, target, user=None, password=None):
    """A proxy's answer to CONNECT target, asked from inside ns: the head's
    lines, and the body as text without its HTML tags."""
    auth = ""
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        auth = f"Proxy-Authorization: Basic {token}\r\n"
    proc = subprocess.run([*ns.prefix(), "/usr/bin/python3", "-c", RAW_CONNECT, str(port),
                           target, auth], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    head, _, body = proc.stdout.decode("latin-1").partition("\r\n\r\n")
    return head.split("\r\n"), " ".join(re.sub(r"<[^>]*>", " ", body).split())


UNRESOLVABLE = "redirect.onramp-test.invalid"


@pytest.fixture
def squid_local_dns(pki, netns):
    """squid in a namespace with only loopback, its only resolver a dnsmasq
    without upstream there (REFUSED; NXDOMAIN for .invalid with nxdomain).
    Yields (ns, squid, the head lines and body text of squid's answer to
    CONNECT UNRESOLVABLE, probe's process and JSON for it from the namespace).
    No query leaves the machine."""
    made = []

    def make(nxdomain=False, access=""):
        ns = netns("sqdns")
        made.append(LocalDns(ns, nxdomain=nxdomain))
        made.append(Squid("basic", {USER: PASSWORD}, netns=ns.name,
                          extra_conf="dns_nameservers 127.0.0.1\n", access=access))
        dns, squid = made[-2:]
        head, body = raw_connect(ns, squid.port, f"{UNRESOLVABLE}:443", USER, PASSWORD)
        proc, doc = probe_json(f"https://{UNRESOLVABLE}/", "--ca", pki.ca, "--proxy",
                               f"127.0.0.1:{squid.port}", *creds(pki), prefix=ns.prefix())
        assert UNRESOLVABLE in dns.queries()  # squid asked our resolver
        return ns, squid, head, body, proc, doc
    yield make
    for svc in reversed(made):
        svc.stop()


@pytest.mark.parametrize("nxdomain", [False, True], ids=["refused", "nxdomain"])
def test_squid_cannot_resolve_the_server(pki, squid_local_dns, nxdomain):
    """squid 5.7 (Debian 12) whose resolver refuses the name, or says it does
    not exist: it answers CONNECT with 500 and ERR_CANNOT_FORWARD (not
    ERR_DNS_FAIL). The client says `dns` and names the host."""
    ns, squid, head, body, proc, doc = squid_local_dns(nxdomain=nxdomain)
    assert head[0] == "HTTP/1.1 500 Internal Server Error", head
    assert "X-Squid-Error: ERR_CANNOT_FORWARD 0" in head, head
    assert "Unable to forward this request at this time." in body, body
    assert_error(proc, doc, "dns", f"proxy 127.0.0.1:{squid.port} cannot resolve the "
                 f"server's name '{UNRESOLVABLE}'", "500 Internal Server Error",
                 "ERR_CANNOT_FORWARD")
    # an address needs no name: squid could not connect
    proc, doc = probe_json("https://127.0.0.1:9/", "--ca", pki.ca, "--proxy",
                           f"127.0.0.1:{squid.port}", *creds(pki), prefix=ns.prefix())
    assert_error(proc, doc, "connect", "could not connect to 127.0.0.1:9", "503",
                 "ERR_CONNECT_FAIL")


def test_squid_with_a_destination_rule_cannot_resolve_the_server(squid_local_dns):
    """squid checks `acl ... dst` by resolving the name: one its resolver
    refuses is denied with 403 ERR_ACCESS_DENIED, as a destination the rules
    refuse. The class stays `proxy-forbidden`; the sentence names the host and
    the possible DNS failure."""
    _, _, head, body, proc, doc = squid_local_dns(
        access="acl here dst 127.0.0.1\nhttp_access deny !here")
    assert head[0] == "HTTP/1.1 403 Forbidden", head
    assert "X-Squid-Error: ERR_ACCESS_DENIED 0" in head, head
    assert "Access Denied." in body, body
    assert_error(proc, doc, "proxy-forbidden", "403 Forbidden",
                 f"or it cannot resolve '{UNRESOLVABLE}'")


def test_proxy_cannot_resolve_the_server(pki, netns):
    """tinyproxy 1.11 answers a name its resolver refuses exactly as a server
    that refuses the connection (500 "Unable to connect", the same page): the
    class stays `connect`, and the sentence names both causes and the host."""
    ns = netns("dnst")
    ns.use_local_resolver()
    dns = LocalDns(ns)
    tp = Tinyproxy(netns=ns.name)
    try:
        host = "onramp-test.invalid"
        head, body = raw_connect(ns, tp.port, f"{host}:443")
        assert head[0] == "HTTP/1.1 500 Unable to connect", head
        assert "Tinyproxy was unable to connect to the remote web server." in body, body
        # the same answer, word for word, for a port where nothing listens
        assert (head, body) == raw_connect(ns, tp.port, "127.0.0.1:9")
        proc, doc = probe_json(f"https://{host}/", "--ca", pki.ca, "--proxy",
                               f"127.0.0.1:{tp.port}", prefix=ns.prefix())
        assert_error(proc, doc, "connect", f"proxy 127.0.0.1:{tp.port} could not connect to "
                     f"{host}:443", "500", f"or the proxy cannot resolve the name '{host}'")
        assert host in dns.queries()
    finally:
        tp.stop()
        dns.stop()


def test_origin_down_direct(pki, held_port):
    proc, doc = probe_json(f"https://localhost:{held_port}/", "--ca", pki.ca)
    assert_error(proc, doc, "connect", f"cannot connect to localhost:{held_port}")


def test_origin_down_behind_squid(pki, squid_basic, held_port):
    proc, doc = probe_json(f"https://localhost:{held_port}/", "--ca", pki.ca, "--proxy",
                           f"127.0.0.1:{squid_basic.port}", *creds(pki))
    assert_error(proc, doc, "connect", "could not connect", "503", "ERR_CONNECT_FAIL")


def test_timeout_in_tls_handshake(pki, silent_port):
    proc, doc = probe_json(f"https://localhost:{silent_port}/", "--ca", pki.ca,
                           "--connect-timeout", "300")
    assert_error(proc, doc, "timeout", f"in the TLS handshake with localhost:{silent_port}")


def test_timeout_in_proxy_connect(pki, www, silent_port):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--proxy", f"127.0.0.1:{silent_port}",
                           "--connect-timeout", "300")
    assert_error(proc, doc, "timeout", f"waiting for proxy 127.0.0.1:{silent_port} to open "
                 "the tunnel")


def test_timeout_waiting_for_the_answer(pki, origin):
    o = origin([])  # never answers
    proc, doc = probe_json(url(o), "--ca", pki.ca, "--timeout", "500")
    assert_error(proc, doc, "timeout", "waiting for")


def context_switches(pid):
    """Voluntary and involuntary context switches of all of a process's threads."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def test_a_waiting_request_sleeps_until_its_deadline(pki, origin):
    """With no cancel flag to watch, a request waiting for its answer sleeps until
    curl's own deadline (the 8 s timeout here): curl_easy_perform woke once a
    second, which a fleet simulator holding thousands of long polls paid
    thousands of times a second."""
    o = origin([])  # never answers
    proc = subprocess.Popen([program("onrampctl"), "probe", url(o), "--ca", pki.ca,
                             "--timeout", "8000", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.5)  # connected, the request sent: waiting for the answer
        before = context_switches(proc.pid)
        time.sleep(4)
        after = context_switches(proc.pid)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads(out)["error"] == "timeout", out
    assert after - before <= 1, f"the waiting request woke {after - before} times in 4 s"


# --- answers -----------------------------------------------------------------

def test_server_error_with_retry_after(pki, origin):
    o = origin([answer(503, "Service Unavailable", b"busy", ["Retry-After: 7"])])
    proc, doc = probe_json(url(o), "--ca", pki.ca)
    assert_error(proc, doc, "server", "503 Service Unavailable")
    assert doc["status"] == 503 and doc["retry_after"] == 7


def test_retry_after_http_date_in_the_past(pki, origin):
    o = origin([answer(404, "Not Found", b"", ["Retry-After: Sun, 06 Nov 1994 08:49:37 GMT"])])
    proc, doc = probe_json(url(o), "--ca", pki.ca)
    assert proc.returncode == 0 and doc["status"] == 404 and doc["retry_after"] == 0


def test_retries_honour_retry_after(pki, origin, squid_basic):
    o = origin([answer(503, "Service Unavailable", b"", ["Retry-After: 1"]),
                answer(200, "OK", b"{}")])
    proc, doc = probe_json(url(o), "--ca", pki.ca, "--retries", "3", "--proxy",
                           f"127.0.0.1:{squid_basic.port}", *creds(pki))
    assert proc.returncode == 0 and doc["status"] == 200, doc
    assert len(o.requests) == 2
    assert "server: localhost" in proc.stderr and "attempt 2 of 3" in proc.stderr


def test_client_errors_are_not_retried(pki, www, squid_basic):
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--retries", "3", "--proxy",
                           f"127.0.0.1:{squid_basic.port}", *creds(pki, pki.wrong_file))
    assert_error(proc, doc, "proxy-auth")
    assert "attempt" not in proc.stderr


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_body_limit(pki, origin, framing):
    big = b"x" * (1024 * 1024 + 1)
    if framing == "length":
        a = answer(200, "OK", big)
    else:
        a = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
             b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n")
    o = origin([a])
    proc, doc = probe_json(url(o), "--ca", pki.ca)
    assert_error(proc, doc, "protocol", "larger than 1048576 bytes")


def test_body_at_the_limit_is_accepted(pki, origin):
    o = origin([answer(200, "OK", b"y" * (1024 * 1024))])
    proc, doc = probe_json(url(o), "--ca", pki.ca, "--show-body")
    assert proc.returncode == 0 and len(doc["body"]) == 1024 * 1024


def test_post_json_with_bearer_through_squid(pki, origin, squid_basic, work):
    data = os.path.join(work, "body.json")
    with open(data, "w") as f:
        json.dump({"serial": "SN-42", "nonce": "abc"}, f)
    o = origin([answer(201, "Created", b'{"ok":true}', ["Content-Type: application/json"])])
    proc, doc = probe_json(url(o, path="/v1/phone-home?x=1"), "--ca", pki.ca, "--method", "POST",
                           "--data", data, "--bearer-file", pki.bearer_file, "--show-body",
                           "--proxy", f"127.0.0.1:{squid_basic.port}", *creds(pki))
    assert proc.returncode == 0 and doc["status"] == 201 and doc["body"] == '{"ok":true}'
    assert o.wait_for(lambda s: any('"serial":"SN-42"' in line for line in s.lines))
    head = o.requests[0]
    assert head[0] == "POST /v1/phone-home?x=1 HTTP/1.1"
    assert f"Authorization: Bearer {BEARER}" in head
    assert "Content-Type: application/json" in head
    assert not any(h.startswith("Proxy-Authorization") for h in head)
    # squid logs the CONNECT's headers (log_mime_hdrs): the bearer never went to the proxy.
    log = squid_basic.access_log_text()
    assert f"CONNECT localhost:{o.port}" in log and "Proxy-Authorization" in log
    assert BEARER not in log


# --- one connection, and the exporter bound to it ----------------------------

@pytest.mark.parametrize("via", ["direct", "squid", "tinyproxy"])
def test_exporter_equals_the_servers(pki, origin, squid_basic, tinyproxy_auth, via):
    o = origin([answer(200, "OK", b"{}")] * 3)
    proxy = {"direct": [],
             "squid": ["--proxy", f"127.0.0.1:{squid_basic.port}", *creds(pki)],
             "tinyproxy": ["--proxy", f"127.0.0.1:{tinyproxy_auth.port}", *creds(pki)]}[via]
    proc, doc = probe_json(url(o), "--ca", pki.ca, "--exporter", LABEL, "--repeat", "3", *proxy)
    assert proc.returncode == 0 and doc["statuses"] == [200, 200, 200], doc
    # One TLS connection to the origin served all three. (tinyproxy closes the
    # connection after its 407, so reaching it took two TCP connections.)
    assert len(o.requests) == 3
    assert doc["connections"] == (2 if via == "tinyproxy" else 1)
    assert o.wait_for(lambda s: len(s.exporters) == 1)
    assert doc["exporter"] == o.exporters[0] and len(doc["exporter"]) == 64


def test_exporter_length_and_plain_output(pki, origin):
    o = origin([answer(200, "OK")], length=48)
    proc = probe(url(o), "--ca", pki.ca, "--exporter", LABEL, "--exporter-length", "48")
    assert proc.returncode == 0
    assert o.wait_for(lambda s: len(s.exporters) == 1)
    assert proc.stdout == f"status 200\nexporter {o.exporters[0]}\n"


@pytest.mark.parametrize("builds", ["normal", "asan"])
def test_no_new_connection_after_the_exporter(pki, origin, builds):
    binary = asan_program() if builds == "asan" else None
    o = origin([answer(200, "OK"), answer(200, "OK", headers=["Connection: close"]),
                answer(200, "OK")])
    proc, doc = probe_json(url(o), "--ca", pki.ca, "--exporter", LABEL, "--repeat", "3",
                           binary=binary)
    assert_error(proc, doc, "protocol", "exporter was taken", "not sent")
    assert doc["statuses"] == [200, 200]
    # The third request was never sent: the server saw a second handshake, no third request.
    assert o.wait_for(lambda s: len(s.exporters) == 2)
    assert len(o.requests) == 2


def test_without_exporter_a_closed_connection_is_replaced(pki, origin):
    o = origin([answer(200, "OK", headers=["Connection: close"]), answer(200, "OK")])
    proc, doc = probe_json(url(o), "--ca", pki.ca, "--repeat", "2")
    assert proc.returncode == 0 and doc["statuses"] == [200, 200]
    assert doc["connections"] == 2


def test_exporter_needs_an_open_connection(pki, www):
    # s_server -www closes after each answer: there is nothing left to bind to.
    proc, doc = probe_json(url(www), "--ca", pki.ca, "--exporter", LABEL)
    assert_error(proc, doc, "protocol", "no open TLS connection")


def test_tls12_exporter_with_extended_master_secret(pki, origin):
    o = origin([answer(200, "OK")], extra=["-tls1_2"])
    proc, doc = probe_json(url(o), "--ca", pki.ca, "--exporter", LABEL)
    assert proc.returncode == 0, doc
    assert o.wait_for(lambda s: len(s.exporters) == 1)
    assert doc["exporter"] == o.exporters[0]


def test_tls12_without_extended_master_secret_gives_no_exporter(pki, origin, work):
    conf = os.path.join(work, "no-ems.cnf")
    with open(conf, "w") as f:
        f.write("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = sd\n"
                "[sd]\nOptions = -ExtendedMasterSecret\n")
    o = origin([answer(200, "OK")], extra=["-tls1_2"], env={"OPENSSL_CONF": conf})
    proc, doc = probe_json(url(o), "--ca", pki.ca, "--exporter", LABEL)
    assert_error(proc, doc, "protocol", "extended master secret")


# --- bad input: exit 2, one line, nothing sent -------------------------------

@pytest.mark.parametrize("args,message", [
    ([], "a URL is required"),
    (["https://localhost/"], "--ca FILE is required"),
    (["https://localhost/", "https://x/", "--ca", "CA"], "one URL expected"),
    (["http://localhost/", "--ca", "CA"], "not a valid https:// URL"),
    (["not a url", "--ca", "CA"], "not a valid https:// URL"),
    (["https://u:p@localhost/", "--ca", "CA"], "must not hold a user name"),
    (["https://localhost/", "--ca", "/nonexistent/ca.pem"], "--ca"),
    (["https://localhost/", "--ca", "PWFILE"], "no PEM certificate"),
    (["https://localhost/", "--ca", "CA", "--proxy", "noport"], "not host:port"),
    (["https://localhost/", "--ca", "CA", "--proxy", "h:0"], "1 to 65535"),
    (["https://localhost/", "--ca", "CA", "--proxy", "h:70000"], "1 to 65535"),
    (["https://localhost/", "--ca", "CA", "--proxy", "h:12x"], "1 to 65535"),
    (["https://localhost/", "--ca", "CA", "--proxy", "bad/host:80"], "not a valid name"),
    (["https://localhost/", "--ca", "CA", "--proxy", "h:1", "--proxy-user", "u"], "go together"),
    (["https://localhost/", "--ca", "CA", "--proxy-user", "u", "--proxy-password-file", "PWFILE"],
     "needs --proxy"),
    (["https://localhost/", "--ca", "CA", "--proxy", "h:1", "--proxy-user", "u",
      "--proxy-password-file", "EMPTY"], "one non-empty line"),
    (["https://localhost/", "--ca", "CA", "--proxy", "h:1", "--proxy-user", "u:x",
      "--proxy-password-file", "PWFILE"], "without ':'"),
    (["https://localhost/", "--ca", "CA", "--proxy", "h:1", "--proxy-user", "u",
      "--proxy-password-file", "PWFILE", "--proxy-auth", "ntlm"], "unknown proxy authentication"),
    (["https://localhost/", "--ca", "CA", "--timeout", "0"], "--timeout must be"),
    (["https://localhost/", "--ca", "CA", "--connect-timeout", "x"], "--connect-timeout must"),
    (["https://localhost/", "--ca", "CA", "--repeat", "1000"], "--repeat must"),
    (["https://localhost/", "--ca", "CA", "--exporter-length", "256"], "--exporter-length must"),
    (["https://localhost/", "--ca", "CA", "--method", "HEAD"], "unsupported HTTP method"),
    (["https://localhost/", "--ca", "CA", "--data", "NOTJSON", "--method", "POST"], "malformed JSON"),
    (["https://localhost/", "--ca", "CA", "--bearer-file", "BADBEARER"], "bearer token"),
    (["https://localhost/", "--ca", "CA", "--bogus"], "unknown or incomplete option"),
])
def test_bad_input(pki, work, args, message):
    empty = os.path.join(work, "empty")
    badbearer = os.path.join(work, "badbearer")
    notjson = os.path.join(work, "notjson")
    open(empty, "w").close()
    with open(notjson, "w") as f:
        f.write("not json\n")
    with open(badbearer, "w") as f:
        f.write("a b\n")
    subst = {"CA": pki.ca, "PWFILE": pki.password_file, "EMPTY": empty, "BADBEARER": badbearer,
             "NOTJSON": notjson}
    proc = probe(*[subst.get(a, a) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr, proc.stderr
    assert proc.stderr.startswith("onrampctl: probe: ")


def test_help(pki):
    proc = probe("--help")
    assert proc.returncode == 0 and "--proxy-password-file FILE" in proc.stdout
