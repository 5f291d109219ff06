"""The device half (lib/cloud_client) against a redirector that lies or fails:
a Python HTTPS server in the test answers phone-home as told, and the device
(onramp-test-device) must refuse every answer that breaks docs/protocol.md."""
import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cloud_env import Pki, by_step, openssl, remove, tempdir
from conftest import run


class Liar(BaseHTTPRequestHandler):
    answer = None  # function(request JSON) -> (status, headers, body bytes)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, headers, data = Liar.answer(body)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def world():
    d = tempdir()
    pki = Pki(d, "liar")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert, pki.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    inv = os.path.join(d, "inventory.key")
    openssl("genrsa", "-out", inv, "2048")
    openssl("rsa", "-in", inv, "-pubout", "-out", inv + ".pub")
    state = os.path.join(d, "device")
    assert run("onrampctl", "factory", "init-device", "--serial", "LIAR-TEST-1", "--model", "M",
               "--state-dir", state, "--software", "--cloud-key", inv + ".pub", "--out",
               os.path.join(d, "record.json")).returncode == 0
    with open(pki.ca) as f:
        ca_pem = f.read()
    try:
        yield {"url": f"https://127.0.0.1:{server.server_address[1]}", "ca": pki.ca,
               "ca_pem": ca_pem, "state": state}
    finally:
        server.shutdown()
        server.server_close()
        remove(d)


def phone_home(world, answer):
    Liar.answer = answer
    proc = run("onramp-test-device", "--state-dir", world["state"], "--redirector", world["url"],
               "--redirector-ca", world["ca"], "phone-home")
    assert proc.returncode == 0, proc.stderr
    return by_step([json.loads(l) for l in proc.stdout.splitlines()], "phone-home")[0]


def good(world, **changes):
    def answer(req):
        doc = {"serial": req["serial"], "nonce": req["nonce"],
               "cloud_url": "https://127.0.0.1:9443", "cloud_ca_pem": world["ca_pem"]}
        doc.update(changes)
        return 200, {"Content-Type": "application/json"}, json.dumps(doc).encode()
    return answer


def test_honest_answer_is_taken(world):
    got = phone_home(world, good(world))
    assert got["ok"] and got["cloud_url"] == "https://127.0.0.1:9443"


@pytest.mark.parametrize("changes", [
    {"nonce": "00000000000000000000000000000000"},
    {"serial": "SOMEONE-ELSE"},
    {"cloud_url": "https://127.0.0.1:9443/evil"},
    {"cloud_url": "http://127.0.0.1:9443"},
    {"cloud_url": 5},
    {"cloud_ca_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
    {"cloud_ca_pem": None},
])
def test_answers_breaking_the_protocol_are_refused(world, changes):
    got = phone_home(world, good(world, **changes))
    assert not got["ok"] and got["status"] == "protocol", got
    assert "cloud_url" not in got


def test_not_json_and_server_errors(world):
    got = phone_home(world, lambda req: (200, {}, b"<html>hello</html>"))
    assert got["status"] == "protocol"
    got = phone_home(world, lambda req: (503, {"Retry-After": "9"}, b'{"error":{"code":'
                                                                    b'"internal","message":"x"}}'))
    assert got["status"] == "server-error" and got["http_status"] == 503
    got = phone_home(world, lambda req: (404, {"Retry-After": "7"},
                                         b'{"error":{"code":"not-claimed","message":"wait"}}'))
    assert got["status"] == "not-claimed" and got["retry_after"] == 7
    got = phone_home(world, lambda req: (400, {}, b'{"error":{"code":"bad-request",'
                                                  b'"message":"\\u0007bell"}}'))
    assert got["status"] == "refused" and "\x07" not in got["error"]


def test_untrusted_redirector_is_refused(world):
    other = tempdir()
    try:
        pki = Pki(other, "other")
        proc = run("onramp-test-device", "--state-dir", world["state"], "--redirector",
                   world["url"], "--redirector-ca", pki.ca, "phone-home")
        got = json.loads(proc.stdout.splitlines()[0])
        assert got["status"] == "transport" and got["http_err"] == "tls-untrusted"
    finally:
        remove(other)
