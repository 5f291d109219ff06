"""The cloud side, end to end through a real squid (Basic auth): the device
(tests/tools/onramp-test-device, the real lib/cloud_client code) phones home to
onramp-redirectd and authenticates to onramp-cloudd by mutual OCRA bound to its
TLS session. The same suite runs on SQLite and on PostgreSQL; two cloudd
instances on one PostgreSQL serve one device's steps alternately.
"""
import http.client
import json
import os
import re
import secrets
import ssl
import threading

import pytest

from cloud_env import CloudEnv, by_step, openssl, remove, tempdir
from conftest import run


def postgresql(request):
    """The `postgres` fixture of conftest.py (a throw-away PostgreSQL 15 cluster)."""
    try:
        return request.getfixturevalue("postgres")
    except pytest.FixtureLookupError:
        pytest.skip("no postgres fixture in conftest.py yet")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request):
    database = redirect_database = None
    if request.param == "postgresql":
        pg = postgresql(request)
        database = pg.new_database("cloud_suite")
        redirect_database = pg.new_database("redirect_suite")
    directory = tempdir()
    try:
        e = CloudEnv(directory, database=database, redirect_database=redirect_database)
    except BaseException:
        remove(directory)
        raise
    e.backend = request.param
    try:
        yield e
    finally:
        e.stop()
        remove(directory)


def request(url, ca, method, path, body=None, token=None, raw=None):
    """One HTTPS request from the test itself (direct, verified): (status, headers, JSON)."""
    host, port = url[len("https://"):].split(":")
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        doc = {"not-json": text.decode(errors="replace")}
    return resp.status, dict(resp.getheaders()), doc


# A truncated response (8 digits) can be guessed: such suites keep a lockout.
TRUNCATED_SUITE = "OCRA-1:HOTP-SHA256-8:QA10-S064"


def cloud_request(env, method, path, body=None, token=None, raw=None):
    return request(env.cloud.url, env.cloud_pki.ca, method, path, body, token, raw)


def on_connection(conn, path, body):
    """POST body on an open connection (kept for the next request): (status, JSON)."""
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def assert_error(answer, status, code):
    got_status, _, doc = answer
    assert got_status == status, doc
    assert set(doc) == {"error"} and doc["error"]["code"] == code, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]


def test_unclaimed_device_gets_retry_after(env):
    dev = env.device("UNCLAIMED-1")
    before = len(env.squid.connects())
    steps = dev.run("phone-home")
    ph = by_step(steps, "phone-home")[0]
    assert not ph["ok"]
    assert ph["status"] == "not-claimed" and ph["http_status"] == 404
    assert ph["code"] == "not-claimed" and ph["retry_after"] == 7
    # It went through squid, with CONNECT to the redirector.
    assert env.squid.tunnelled(env.redirector.port, before)
    # Nothing further was tried.
    assert [s["step"] for s in steps] == ["phone-home"]


def test_claimed_device_is_redirected_authenticates_and_onboards(env):
    psk = "paris-psk-" + secrets.token_hex(8)
    site = env.site("acme", "paris", psk)
    assert site["ready"] and site["psk_set"] and "psk" not in site
    dev = env.device("SSR-ONBOARD-1")
    dev.claim("acme", "paris")
    before = len(env.squid.connects())
    steps = dev.run("onboard")
    assert all(s["ok"] for s in steps), steps
    assert by_step(steps, "phone-home")[0]["cloud_url"] == env.cloud.url
    ob = by_step(steps, "onboarding")[0]
    assert ob["organization"] == "acme" and ob["site"] == "paris"
    assert ob["addresses"] == ["10.20.0.5", "10.20.0.6"] and ob["port"] == 4505
    assert ob["psk"] == psk
    with open(env.cloud_pki.ca) as f:
        assert ob["conductor_ca_pem"] == f.read()
    assert env.squid.tunnelled(env.redirector.port, before)
    assert env.squid.tunnelled(env.cloud.port, before)
    # The cloud keeps the device's progress and shows it.
    shown = env.ctl_json("device", "show", dev.serial)
    assert shown["organization"] == "acme" and shown["site"] == "paris"
    assert shown["stage"] == "staging-conductor"
    assert shown["last_seen"] is not None and shown["failures"] == 0
    events = env.ctl_json("device", "events", dev.serial)["events"]
    seen = [(e["source"], e["step"], e["outcome"]) for e in events]
    for expected in [("cloud", "import", "ok"), ("cloud", "claim", "ok"),
                     ("cloud", "cloud-auth", "ok"), ("cloud", "onboarding", "ok"),
                     ("device", "phone-home", "failed"), ("device", "phone-home", "ok"),
                     ("device", "staging-conductor", "started")]:
        assert expected in seen, seen
    failed = [e for e in events if e["source"] == "device" and e["outcome"] == "failed"]
    assert failed[0]["reason"] == "not claimed yet (retry after 1 s)"
    text = env.ctl_ok("device", "events", dev.serial)
    assert "staging-conductor" in text and "not claimed yet" in text
    listed = {d["serial"]: d for d in env.ctl_json("device", "list")["devices"]}
    assert listed[dev.serial]["stage"] == "staging-conductor"
    assert dev.serial in env.ctl_ok("device", "list")
    # Secrets stay out of the logs and the database: the pre-shared secret,
    # the device token, the device's OCRA key (hex or raw).
    token = by_step(steps, "auth-finish")[0]["token"]
    with open(os.path.join(dev.state, "identity.json")) as f:
        key_hex = json.load(f)["key"]
    for daemon in (env.cloud, env.redirector):
        log = daemon.log_text()
        assert psk not in log and token not in log and key_hex.lower() not in log.lower()
    if env.backend == "sqlite":
        for name in os.listdir(env.cloud.state):
            with open(os.path.join(env.cloud.state, name), "rb") as f:
                data = f.read()
            for secret in (psk.encode(), token.encode(), key_hex.encode(),
                           bytes.fromhex(key_hex)):
                assert secret not in data, name


def test_wrong_response_is_refused(env):
    dev = env.device("WRONG-1")
    dev.claim("acme", "paris")
    steps = dev.run("wrong-response")
    fin = by_step(steps, "auth-finish")[0]
    assert not fin["ok"] and fin["http_status"] == 403 and fin["code"] == "auth-failed"
    assert "token" not in fin
    shown = env.ctl_json("device", "show", dev.serial)
    assert shown["failures"] == 1 and "wrong response" in shown["last_error"]
    assert "authentication of WRONG-1" in env.cloud.log_text()


def test_a_success_clears_the_stale_last_error(env):
    """Issue 11: the cloud keeps a device's current error only. A refused
    authentication is its last error until an authentication succeeds."""
    env.ensure_site("acme", "paris")
    dev = env.device("STALE-ERR-1")
    dev.claim("acme", "paris")
    dev.run("wrong-response")
    shown = env.ctl_json("device", "show", dev.serial)
    assert shown["last_error"].startswith("cloud-auth: wrong response")
    assert shown["last_error_time"] is not None

    steps = dev.run("onboard")
    assert all(s["ok"] for s in steps), steps
    shown = env.ctl_json("device", "show", dev.serial)
    assert shown["last_error"] is None and shown["last_error_time"] is None
    assert "last_error: -\n" in env.ctl_ok("device", "show", dev.serial)
    listed = {d["serial"]: d for d in env.ctl_json("device", "list")["devices"]}
    assert listed[dev.serial]["last_error"] is None
    # The failures stay in the device's history: the cloud's refusal, and the device's own
    # report of a phone-home that failed before one succeeded (cleared by that success).
    events = env.ctl_json("device", "events", dev.serial)["events"]
    seen = [(e["source"], e["step"], e["outcome"]) for e in events]
    assert ("cloud", "cloud-auth", "failed") in seen
    assert seen.index(("device", "phone-home", "failed")) < seen.index(
        ("device", "phone-home", "ok"))


def test_replayed_challenge_is_refused(env):
    dev = env.device("REPLAY-1")
    dev.claim("acme", "paris")
    steps = dev.run("replay")
    assert by_step(steps, "auth-finish")[0]["ok"]
    replay = by_step(steps, "auth-replay")[0]
    assert not replay["ok"] and replay["http_status"] == 403
    assert replay["code"] == "challenge-used"


def test_expired_challenge_is_refused(env):
    dev = env.device("EXPIRED-1")
    dev.claim("acme", "paris")
    steps = dev.run("expired", "--wait", "3")
    fin = by_step(steps, "auth-finish")[0]
    assert not fin["ok"] and fin["http_status"] == 403 and fin["code"] == "challenge-expired"


def test_response_relayed_from_another_tls_session_is_refused(env):
    dev = env.device("RELAY-1")
    dev.claim("acme", "paris")
    steps = dev.run("relay")
    assert by_step(steps, "auth-begin")[0]["ok"]
    fin = by_step(steps, "auth-finish")[0]
    # A challenge is bound to the connection it was issued on: on another one it is unknown.
    assert not fin["ok"] and fin["http_status"] == 403 and fin["code"] == "unknown-challenge"
    # The honest exchange works for the same device right after.
    assert all(s["ok"] for s in dev.run("onboard"))


def test_brute_force_locks_the_device_out(env):
    dev = env.device("BRUTE-1", suite=TRUNCATED_SUITE)
    dev.claim("acme", "paris")
    steps = dev.run("brute", "--attempts", "3")
    finishes = by_step(steps, "auth-finish")
    assert len(finishes) == 3 and all(f["code"] == "auth-failed" for f in finishes)
    # The right response no longer gets in: locked out, with Retry-After.
    last = by_step(steps, "auth-begin")[-1]
    assert not last["ok"] and last["http_status"] == 429 and last["code"] == "locked-out"
    assert 0 < last["retry_after"] <= 60
    shown = env.ctl_json("device", "show", dev.serial)
    assert shown["failures"] == 3 and shown["locked_until"] is not None
    log = env.cloud.log_text()
    assert "locked out for 60 s" in log
    # Other devices are not affected.
    neighbour = env.device("BRUTE-NEIGHBOUR")
    neighbour.claim("acme", "paris")
    assert all(s["ok"] for s in neighbour.run("onboard"))


def test_concurrent_wrong_responses_get_no_more_tries_than_the_threshold(env):
    # 16 open challenges of a truncated suite answered wrongly at once, each on the
    # TLS connection it was issued on: however the cloud's threads interleave them,
    # only lockout_threshold (3) of them are checked; every other one is locked out
    # before its response is looked at.
    env.ensure_site("acme", "paris")
    dev = env.device("BRUTE-PARALLEL", suite=TRUNCATED_SUITE)
    dev.claim("acme", "paris")
    host, port = env.cloud.url[len("https://"):].split(":")
    tls = ssl.create_default_context(cafile=env.cloud_pki.ca)
    conns = []
    for i in range(16):
        conn = http.client.HTTPSConnection(host, int(port), context=tls, timeout=10)
        status, doc = on_connection(conn, "/v1/device/auth/start",
                                    {"serial": dev.serial,
                                     "client_challenge": f"q{i:02d}" + "x" * 7})
        assert status == 200, doc
        conns.append((conn, doc["challenge_id"]))
    barrier = threading.Barrier(len(conns))
    answers = []

    def finish(conn, challenge_id):
        barrier.wait()
        answers.append(on_connection(conn, "/v1/device/auth/finish",
                                     {"serial": dev.serial, "challenge_id": challenge_id,
                                      "response": "00000000"}) + (None,))
        conn.close()

    threads = [threading.Thread(target=finish, args=c) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [403] * 3 + [429] * 13, statuses
    shown = env.ctl_json("device", "show", dev.serial)
    assert shown["failures"] == 3 and shown["locked_until"] is not None


def test_another_devices_information_is_never_given_out(env):
    psk_a = "site-a-psk-" + secrets.token_hex(6)
    psk_b = "site-b-psk-" + secrets.token_hex(6)
    env.site("acme", "lyon", psk_a, conductors=["10.30.0.1"])
    env.site("acme", "nice", psk_b, conductors=["10.40.0.1"])
    a, b = env.device("OWN-A"), env.device("OWN-B")
    a.claim("acme", "lyon")
    b.claim("acme", "nice")
    # A claiming to be B: the cloud answers with B's key, which A cannot check,
    # so A stops; and A's responses are no good for B.
    steps = a.run("onboard", "--as", "OWN-B")
    begin = by_step(steps, "auth-begin")[0]
    assert not begin["ok"] and begin["status"] == "cloud-not-proven"
    assert not by_step(steps, "onboarding") and not by_step(steps, "auth-finish")
    # Each device gets its own site's information, and nothing names another.
    steps_a = a.run("onboard")
    ob_a = by_step(steps_a, "onboarding")[0]
    assert ob_a["psk"] == psk_a and ob_a["addresses"] == ["10.30.0.1"]
    token_a = by_step(steps_a, "auth-finish")[0]["token"]
    status, _, doc = cloud_request(env, "GET", "/v1/device/onboarding?serial=OWN-B",
                                   token=token_a)
    assert status == 200 and doc["serial"] == "OWN-A" and psk_b not in json.dumps(doc)
    assert_error(cloud_request(env, "GET", "/v1/device/onboarding"), 401, "unauthorized")
    assert_error(cloud_request(env, "GET", "/v1/device/onboarding", token=secrets.token_hex(32)),
                 401, "unauthorized")
    assert_error(cloud_request(env, "GET", "/v1/device/onboarding", token="x" * 10), 401,
                 "unauthorized")
    # A device token is no admin token, and an admin token no device token.
    assert_error(cloud_request(env, "GET", "/v1/admin/devices", token=token_a), 401,
                 "unauthorized")
    assert_error(cloud_request(env, "GET", "/v1/device/onboarding",
                               token=env.cloud_admin_token), 401, "unauthorized")
    # An unclaimed device is unknown to authentication; unclaiming revokes tokens.
    env.ctl_ok("unclaim", "OWN-A")
    assert_error(cloud_request(env, "GET", "/v1/device/onboarding", token=token_a), 401,
                 "unauthorized")
    steps = a.run("phone-home")
    assert by_step(steps, "phone-home")[0]["status"] == "not-claimed"
    assert_error(cloud_request(env, "POST", "/v1/device/auth/start",
                               {"serial": "OWN-A", "client_challenge": "abcdefghij"}),
                 404, "unknown-device")


def test_operator_acknowledges_and_clears_a_device_alarm(env):
    """Issue 14 point 7: an alarm a device raised is acknowledged (it stays listed, marked
    with the token's name and the time) and cleared (it leaves the list for the history);
    both are in the audit trail; the device raising it again makes a new alarm. Bad ids
    exit 2, a refused token 3."""
    env.ensure_site("acme", "paris")
    dev = env.device("ALARM-ACK-1")
    dev.claim("acme", "paris")
    assert by_step(dev.run("raise-alarm"), "report-alarm")[0]["ok"]

    def mine(*words):
        return [a for a in env.ctl_json("alarm", "list", *words)["alarms"]
                if a["serial"] == dev.serial]
    [alarm] = mine()
    assert alarm["severity"] == "critical" and alarm["acknowledged"] is None
    assert alarm["alarm"] == "Management Proxy is unreachable (192.0.2.10:3128)"
    assert isinstance(alarm["id"], int)
    # The fleet shows the same alarm, with its id.
    with open(env.cloud.token_file) as f:
        status, _, doc = cloud_request(env, "GET", "/v1/admin/fleet", token=f.read().strip())
    assert status == 200 and alarm in doc["alarms"]

    out = env.ctl_ok("alarm", "ack", str(alarm["id"]))
    assert f"alarm {alarm['id']} ({dev.serial}: " in out and "acknowledged by admin" in out
    [acked] = mine()
    assert acked["id"] == alarm["id"] and acked["acknowledged"]["by"] == "admin"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", acked["acknowledged"]["at"])
    env.ctl_ok("alarm", "ack", str(alarm["id"]))  # a second ack keeps the first
    assert mine() == [acked]
    assert re.search(rf"(?m)^{alarm['id']}\s+{dev.serial}\s+critical\s", env.ctl_ok(
        "alarm", "list"))

    for words in (["alarm", "ack", "abc"], ["alarm", "clear", "99999999"],
                  ["alarm", "ack"], ["alarm", "list", "--serial", "X"]):
        proc = env.ctl(*words)
        assert proc.returncode == 2, (words, proc.stderr)
    wrong = os.path.join(env.dir, "wrong-alarm.token")
    with open(wrong, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    assert env.ctl("alarm", "clear", str(alarm["id"]), token_file=wrong).returncode == 3
    assert mine() == [acked]

    out = env.ctl_ok("alarm", "clear", str(alarm["id"]))
    assert "cleared by admin" in out
    assert mine() == []
    [kept] = mine("--history")
    assert kept["id"] == alarm["id"] and kept["cleared"]["by"] == "admin"
    assert kept["acknowledged"] == acked["acknowledged"]
    assert env.ctl("alarm", "clear", str(alarm["id"])).returncode == 2  # not active now
    entries = env.ctl_json("audit")["entries"]
    for action in ("ack", "clear"):
        assert any(e["action"] == f"POST /v1/admin/alarms/{alarm['id']}/{action}" and
                   e["actor"] == "admin" and e["result"] == "ok" for e in entries), action

    # Raised again by the device: a new alarm, not acknowledged.
    dev.run("raise-alarm")
    [again] = mine()
    assert again["id"] != alarm["id"] and again["acknowledged"] is None


def test_admin_api_refuses_missing_and_wrong_tokens(env):
    for method, path in [("GET", "/v1/admin/devices"), ("POST", "/v1/admin/organizations"),
                         ("GET", "/v1/admin/tokens"), ("DELETE", "/v1/admin/claims/X")]:
        assert_error(cloud_request(env, method, path, {"name": "x"}), 401, "unauthorized")
        assert_error(cloud_request(env, method, path, {"name": "x"},
                                   token=secrets.token_hex(32)), 401, "unauthorized")
    for method, path in [("GET", "/v1/admin/claims"), ("PUT", "/v1/admin/claims/X")]:
        assert_error(request(env.redirector.url, env.redirect_pki.ca, method, path, {}), 401,
                     "unauthorized")
        assert_error(request(env.redirector.url, env.redirect_pki.ca, method, path, {},
                             token=secrets.token_hex(32)), 401, "unauthorized")
    wrong = os.path.join(env.dir, "wrong.token")
    with open(wrong, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    proc = env.ctl("org", "add", "intruders", token_file=wrong)
    assert proc.returncode == 3 and "HTTP 401 unauthorized" in proc.stderr
    assert "intruders" not in env.ctl_ok("org", "list")
    # A cloud's token at the redirector may not manage tokens or others' claims.
    cloud_token = open(env.cloud_token_file).read().strip()
    assert_error(request(env.redirector.url, env.redirect_pki.ca, "GET", "/v1/admin/tokens",
                         token=cloud_token), 403, "forbidden")
    other = env.redirect("token", "add", "other-cloud")
    assert other.returncode == 0
    other_token = other.stdout.strip()
    with open(env.cloud_pki.ca) as f:
        ca = f.read()
    dev = env.device("CONTESTED-1")
    # Another cloud cannot claim it without its claim secret (test_attacks_claims.py) ...
    assert_error(request(env.redirector.url, env.redirect_pki.ca, "PUT",
                         "/v1/admin/claims/CONTESTED-1",
                         {"cloud_url": "https://127.0.0.1:1", "cloud_ca_pem": ca,
                          "claim_secret": secrets.token_hex(32)},
                         token=other_token), 403, "claim-refused")
    env.ensure_site("acme", "paris")
    dev.claim("acme", "paris")
    assert env.ctl_json("device", "show", dev.serial)["organization"] == "acme"
    # ... nor delete ours.
    assert_error(request(env.redirector.url, env.redirect_pki.ca, "DELETE",
                         "/v1/admin/claims/CONTESTED-1", token=other_token), 409,
                 "claimed-elsewhere")
    # The first admin token can make more and delete them; tokens are shown once.
    made = env.ctl("token", "add", "second-admin")
    assert made.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", made.stdout)
    listed = env.ctl_json("token", "list")["tokens"]
    assert {"admin", "second-admin"} <= {t["name"] for t in listed}
    assert made.stdout.strip() not in json.dumps(listed)
    assert env.ctl("token", "delete", "second-admin").returncode == 0
    assert_error(cloud_request(env, "GET", "/v1/admin/devices", token=made.stdout.strip()),
                 401, "unauthorized")


def test_bad_input_is_refused_and_changes_nothing(env):
    token = env.cloud_admin_token
    env.ensure_site("acme", "paris")
    orgs = env.ctl_json("org", "list")
    bad = [
        ("POST", "/v1/admin/organizations", {"name": 5}),
        ("POST", "/v1/admin/organizations", {"name": "../etc"}),
        ("POST", "/v1/admin/organizations", {"name": "x" * 65}),
        ("POST", "/v1/admin/organizations", {}),
        ("PUT", "/v1/admin/organizations/acme/sites/paris/settings",
         {"conductor_port": 70000}),
        ("PUT", "/v1/admin/organizations/acme/sites/paris/settings",
         {"conductor_addresses": []}),
        ("PUT", "/v1/admin/organizations/acme/sites/paris/settings",
         {"conductor_addresses": ["bad host!"], "psk": "fine-psk-123"}),
        ("PUT", "/v1/admin/organizations/acme/sites/paris/settings",
         {"psk": "short", "conductor_port": 1}),
        ("PUT", "/v1/admin/organizations/acme/sites/paris/settings",
         {"conductor_ca_pem": "not a certificate", "conductor_port": 1}),
        ("POST", "/v1/admin/inventory", {"record": {"version": 1}}),
        ("POST", "/v1/admin/claims", {"serial": "X", "claim_code": "ABCD",
                                      "organization": "acme", "site": "paris"}),
    ]
    for method, path, body in bad:
        assert_error(cloud_request(env, method, path, body, token=token), 400, "bad-request")
    assert_error(cloud_request(env, "POST", "/v1/admin/organizations", token=token,
                               raw="{not json"), 400, "bad-json")
    # Just over the 128 KiB limit: the JSON error, and nothing written.
    status, _, doc = cloud_request(env, "POST", "/v1/admin/organizations", token=token,
                                   raw=json.dumps({"name": "big", "pad": "x" * 140000}))
    assert status == 413 and doc["error"]["code"] == "body-too-large", doc
    # Far over it, evhttp refuses before reading: it answers 413 as soon as it
    # sees the Content-Length, and closes, so the client may not even finish sending.
    try:
        status, _, doc = cloud_request(env, "POST", "/v1/admin/organizations", token=token,
                                       raw=json.dumps({"name": "big", "pad": "x" * 900000}))
        assert status == 413, doc
    except (ssl.SSLError, ConnectionError):
        pass
    assert env.ctl_json("org", "list") == orgs
    site = env.ctl_json("site", "show", "acme", "paris")
    assert site["conductor_port"] == 4505 and site["conductor_addresses"] == ["10.20.0.5",
                                                                              "10.20.0.6"]
    # Device endpoints too.
    for body in [{"serial": "x"}, {"serial": 1, "client_challenge": "abcdefghij"},
                 {"serial": "a b", "client_challenge": "abcdefghij"}]:
        assert_error(cloud_request(env, "POST", "/v1/device/auth/start", body), 400,
                     "bad-request")
    dev = env.device("BADINPUT-1")
    dev.claim("acme", "paris")
    assert_error(cloud_request(env, "POST", "/v1/device/auth/start",
                               {"serial": dev.serial, "client_challenge": "short"}),
                 400, "bad-request")
    assert_error(cloud_request(env, "POST", "/v1/device/auth/finish",
                               {"serial": dev.serial, "challenge_id": "zz", "response": "1"}),
                 400, "bad-request")
    steps = dev.run("onboard")
    token_d = by_step(steps, "auth-finish")[0]["token"]
    before = len(env.ctl_json("device", "events", dev.serial)["events"])
    for body in [{"events": []}, {"events": "x"},
                 {"events": [{"step": "ok-step", "time": "2026-11-29T16:00:00Z",
                              "outcome": "ok"},
                             {"step": "BAD", "time": "2026-11-29T16:00:00Z",
                              "outcome": "ok"}]},
                 {"events": [{"step": "s", "time": "yesterday", "outcome": "ok"}]},
                 {"events": [{"step": "s", "time": "2026-11-29T16:00:00Z",
                              "outcome": "maybe"}]}]:
        assert_error(cloud_request(env, "POST", "/v1/device/events", body, token=token_d),
                     400, "bad-request")
    assert len(env.ctl_json("device", "events", dev.serial)["events"]) == before
    # The command line checks before it sends: exit 2, nothing sent.
    for args in [("org", "add", "a/b"), ("site", "set", "acme", "paris"),
                 ("site", "set", "acme", "paris", "--port", "0"),
                 ("claim", "--serial", "S"), ("device", "show"), ("frobnicate",),
                 ("org", "list", "--bogus")]:
        proc = env.ctl(*args)
        assert proc.returncode == 2 and proc.stderr.startswith("onrampctl: "), (args, proc)
        assert len(proc.stderr.strip().splitlines()) == 1


def test_claim_by_code_and_unclaim(env):
    dev = env.device("CODE-1", claim_code="BOX-7731")
    out = env.ctl_ok("claim", "--claim-code", "BOX-7731", "--org", "acme", "--site", "paris")
    assert "claimed" in out
    claims = json.loads(env.redirect("claim", "list", "--json").stdout)["claims"]
    mine = [c for c in claims if c["serial"] == "CODE-1"]
    assert mine and mine[0]["cloud_url"] == env.cloud.url and mine[0]["owner"] == "acme-cloud"
    assert by_step(dev.run("phone-home"), "phone-home")[0]["ok"]
    # Claimed twice: refused, nothing changes.
    proc = env.ctl("claim", "--serial", "CODE-1", "--org", "acme", "--site", "lyon")
    assert proc.returncode == 2 and "already-claimed" in proc.stderr
    env.ctl_ok("unclaim", "CODE-1")
    assert by_step(dev.run("phone-home"), "phone-home")[0]["status"] == "not-claimed"
    assert env.ctl_json("device", "show", "CODE-1")["stage"] == "imported"
    # A record made for another cloud's inventory key is refused.
    other = os.path.join(env.dir, "other-inventory.key")
    other_pub = other + ".pub"
    openssl("genrsa", "-out", other, "2048")
    openssl("rsa", "-in", other, "-pubout", "-out", other_pub)
    state = os.path.join(env.dir, "dev-FOREIGN-1")
    record = os.path.join(env.dir, "FOREIGN-1.json")
    assert run("onrampctl", "factory", "init-device", "--serial", "FOREIGN-1", "--model", "M",
               "--state-dir", state, "--software", "--cloud-key", other_pub,
               "--out", record).returncode == 0
    proc = env.ctl("inventory", "import", record)
    assert proc.returncode == 2 and "HTTP 400" in proc.stderr
    proc = env.ctl("device", "show", "FOREIGN-1")
    assert proc.returncode == 2 and "not-found" in proc.stderr


def test_two_cloud_instances_on_one_postgresql_serve_steps_alternately(request):
    postgres = postgresql(request)
    directory = tempdir()
    env = None
    try:
        env = CloudEnv(directory, database=postgres.new_database("cloud_two"),
                       redirect_database=postgres.new_database("redirect_two"), second=True)
        env.site("acme", "paris", "two-instance-psk")
        dev = env.device("ALT-1")
        dev.claim("acme", "paris")
        steps = dev.run("alternate", "--second-cloud", env.cloud2.url)
        assert all(s["ok"] for s in steps), steps
        assert by_step(steps, "onboarding")[0]["psk"] == "two-instance-psk"
        # Each instance served some of the steps.
        assert "authenticated" in env.cloud2.log_text()
        assert "onboarding information sent to ALT-1" in env.cloud.log_text()
        assert "progress event(s) from ALT-1" in env.cloud2.log_text()
        # And the lockout counts over both.
        brute = env.device("ALT-2")
        brute.claim("acme", "paris")
        brute.run("wrong-response")
        brute.run("wrong-response", "--cloud", env.cloud2.url)
        assert env.ctl_json("device", "show", "ALT-2")["failures"] == 2
    finally:
        if env is not None:
            env.stop()
        remove(directory)


def test_daemons_cannot_dump_core(env):
    from conftest import core_dumps_disabled
    for daemon in (env.redirector, env.cloud):
        assert core_dumps_disabled(daemon.proc.pid), daemon.name


def established_to(port):
    """Established TCP connections on 127.0.0.1 whose remote port is port (/proc/net/tcp)."""
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and int(remote.split(":")[1], 16) == port:
                count += 1
    return count


def test_claims_keep_one_connection_to_the_redirector_and_survive_its_restart():
    """The cloud's claims reuse a kept-alive connection to the redirector (a claim runs
    under the cloud's write lock, so a handshake per claim paced a large setup), and a
    redirector restarted between claims costs nothing: the next claim reconnects."""
    directory = tempdir()
    env = CloudEnv(directory)
    try:
        env.site("acme", "paris", "keepalive-psk")
        for i in range(4):
            env.device(f"KA-{i}")
            env.ctl_ok("claim", "--serial", f"KA-{i}", "--org", "acme", "--site", "paris")
        # Two loop threads: at most one kept connection each, and at least one kept.
        assert 1 <= established_to(env.redirector.port) <= 2
        env.redirector.stop()
        env.redirector.start()
        env.device("KA-after")
        env.ctl_ok("claim", "--serial", "KA-after", "--org", "acme", "--site", "paris")
        claims = json.loads(env.redirect("claim", "list", "--json").stdout)["claims"]
        assert {c["serial"] for c in claims} >= {"KA-0", "KA-3", "KA-after"}
        env.ctl_ok("unclaim", "KA-0")
        claims = json.loads(env.redirect("claim", "list", "--json").stdout)["claims"]
        assert "KA-0" not in {c["serial"] for c in claims}
    finally:
        env.stop()
        remove(directory)
