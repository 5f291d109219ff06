"""The conductor (issue 6) end to end: real onramp-conductord daemons over real
TLS, onrampctl conductor on their admin API, and the real router side
(lib/conductor_client through tests/tools/conductor-router). Certificates are
checked with `openssl verify`, and a TLS server using the issued certificate
is checked with `openssl s_client -verify_return_error`."""
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conductorlib import PEERING, Conductor, Router, wait_until
from conftest import program
from test_assertion import make_signer, sign_assertion, spki_sha256_of_cert
from test_http_server import dribble


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    """Where the conductors keep their database: a SQLite file or a fresh
    PostgreSQL database of the shared test cluster."""
    if request.param == "sqlite":
        return lambda name: None
    try:
        pg = request.getfixturevalue("postgres")
    except pytest.FixtureLookupError:
        pytest.skip("no postgres fixture in this tree")
    return lambda name: pg.new_database(f"conductor_{name}_{os.getpid()}_{id(request)}")


def conductors(database_for):
    """Yields a maker of initialised, running conductors; stops them all after."""
    made = []

    def make(role="staging", name="staging", **kw):
        c = Conductor(role, name, database=database_for(name), **kw)
        made.append(c)
        c.init()
        return c.start()

    yield make
    # Every one is stopped and removed; then the first unclean exit fails the test.
    errors = []
    for c in made:
        try:
            c.cleanup()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture
def make_conductor(backend):
    yield from conductors(backend)


@pytest.fixture
def sqlite_conductor():
    yield from conductors(lambda name: None)


@pytest.fixture
def routers():
    made = []

    def make(**kw):
        r = Router(**kw)
        made.append(r)
        return r

    yield make
    # Signal them all first: each finishes its current poll, in parallel.
    for r in made:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.terminate()
    for r in made:
        r.cleanup()


def openssl(*args, **kw):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30, **kw)


def onboard(conductor, routers, asset_id="ASSET-0001", name="r1", poll_wait=2):
    """Adds a router, makes a secret, runs the router until it is configured."""
    conductor.add_router(name, asset_id)
    psk_file, secret = conductor.psk("site")
    router = routers(asset_id=asset_id).start(conductor, psk_file, poll_wait=poll_wait)
    conductor.wait_state(asset_id, "configured")
    router.wait_report("configuration")
    return router, psk_file, secret


# ---- onboarding --------------------------------------------------------------


def test_onboarding_with_the_right_secret(make_conductor, routers):
    staging = make_conductor()
    router, _, secret = onboard(staging, routers)

    # The certificate: chains to the conductor's root CA and names the router.
    cert = router.path("conductor-cert.pem")
    proc = openssl("verify", "-CAfile", staging.ca, "-purpose", "sslserver", cert)
    assert proc.returncode == 0 and ": OK" in proc.stdout, proc.stdout + proc.stderr
    proc = openssl("verify", "-CAfile", staging.ca, "-purpose", "sslclient", cert)
    assert proc.returncode == 0, proc.stderr
    text = openssl("x509", "-in", cert, "-noout", "-text").stdout
    assert "Subject: CN = r1" in text
    assert "URI:urn:onramp:peering:r1" in text
    assert "CA:FALSE" in text
    # The key never left the router: the certificate is for its own key.
    pub_cert = openssl("x509", "-in", cert, "-noout", "-pubkey").stdout
    pub_key = openssl("pkey", "-in", router.path("certkey.pem"), "-pubout").stdout
    assert pub_cert == pub_key

    # The configuration: stored exactly, acknowledged by its hash.
    record = staging.router_record("r1")
    with open(router.path("peering.json"), "rb") as f:
        stored = f.read()
    assert hashlib.sha256(stored).hexdigest() == record["config_sha256"]
    assert json.loads(stored) == PEERING
    assert record["state"] == "configured"
    assert record["last_contact"]
    assert len(record["certificates"]) == 1
    assert [c["state"] for c in record["commands"]] == ["acked", "acked"]

    # The secret is in no log, no state file of the conductor.
    assert secret not in staging.log()
    assert secret not in router.log()
    for root, _, files in os.walk(staging.state):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert secret.encode() not in f.read(), name


def test_wrong_secret_is_refused(sqlite_conductor, routers):
    staging = sqlite_conductor()
    staging.add_router("r1", "ASSET-0001")
    staging.psk("real")
    other = sqlite_conductor(name="other")
    wrong_file, wrong = other.psk("other")  # well formed, but not this conductor's
    router = routers().start(staging, wrong_file)
    report = router.wait_report("connect", ok=False)
    assert "bad-proof" in report["reason"]
    asset = staging.asset("ASSET-0001")
    assert asset["state"] == "pending"
    assert "authentication refused" in asset["last_error"]
    assert wrong not in staging.log() and wrong not in router.log()


def test_unknown_asset_is_refused_and_listed(make_conductor, routers):
    staging = make_conductor()
    staging.add_router("r1", "ASSET-0001")
    psk_file, _ = staging.psk("site")
    router = routers(asset_id="NOBODY-42").start(staging, psk_file)
    report = router.wait_report("connect", ok=False)
    assert "unknown-asset" in report["reason"]
    unknown = staging.wait_state("NOBODY-42", "unknown")
    assert unknown["name"] is None
    assert staging.asset("ASSET-0001")["state"] == "pending"
    # The table view shows it too.
    assert re.search(r"NOBODY-42\s+unknown", staging.ok("show", "assets"))


def test_duplicate_asset_is_denied_and_the_first_keeps_working(make_conductor, routers):
    staging = make_conductor()
    first, psk_file, _ = onboard(staging, routers)
    serial = staging.router_record("r1")["certificates"][0]["serial"]

    second = routers(asset_id="ASSET-0001").start(staging, psk_file)
    report = second.wait_report("connect", ok=False)
    assert "duplicate-asset" in report["reason"]
    denied = staging.wait_state("ASSET-0001", "denied")
    assert denied["claimed_router"] == "r1"
    alarms = json.loads(staging.ok("show", "alarms", "--json"))["alarms"]
    assert [(a["severity"], a["kind"]) for a in alarms] == [("critical", "duplicate-asset")]
    assert "ALARM critical duplicate-asset" in staging.log()

    # The first device still works: a renewal reaches it and is acknowledged.
    after = len(first.reports)
    staging.ok("router", "renew", "r1")
    first.wait_report("certificate", after=after)
    certs = wait_until("a second certificate",
                       lambda: len(staging.router_record("r1")["certificates"]) == 2
                       and staging.router_record("r1")["certificates"])
    assert certs[1]["serial"] != serial
    assert staging.asset("ASSET-0001", "configured") is not None


def device_key_id(router):
    """The key id the conductor computes (pki_csr_check): SHA-256 of the router's device
    key's SubjectPublicKeyInfo (DER), made by OpenSSL from its key file."""
    der = subprocess.run(["openssl", "pkey", "-in", router.path("certkey.pem"), "-pubout",
                          "-outform", "DER"], capture_output=True, timeout=30, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def test_duplicate_asset_alarm_names_asset_key_and_serial_not_the_address(make_conductor,
                                                                          routers, tmp_path):
    """Issue 14 point 7: every router reaches the conductor through the same proxy, so the
    alarm's address named nobody. It names the asset ID, the key id of the device that
    tried, and the serial its cloud assertion vouches for (or says the serial is unknown),
    never 127.0.0.1, where the routers of this test come from."""
    staging = make_conductor()
    staging.add_router("r1", "ASSET-0001")
    psk_file, _ = staging.psk("site")
    org = make_signer(str(tmp_path), "org-assertions")
    staging.ok("trust-cloud", "--cert", org[1])
    conductor = spki_sha256_of_cert(staging.ca)
    now = int(time.time())

    def assertion_for(router, serial):
        assert router.run_tool("current").returncode == 0  # makes the device key
        return sign_assertion(str(tmp_path), org, {
            "serial": serial, "asset_id": "ASSET-0001", "key_sha256": device_key_id(router),
            "conductor": conductor, "issued": now, "expires": now + 600}, serial)

    first = routers(asset_id="ASSET-0001")
    first.start(staging, psk_file, assertion_file=assertion_for(first, "SN-FIRST-1"))
    staging.wait_state("ASSET-0001", "configured")

    # A second router with its own key and its own cloud assertion for the same asset ID.
    second = routers(asset_id="ASSET-0001")
    second.start(staging, psk_file, assertion_file=assertion_for(second, "SN-SECOND-2"))
    assert "duplicate-asset" in second.wait_report("connect", ok=False)["reason"]
    alarm = wait_until("the duplicate-asset alarm",
                       lambda: alarms_of(staging, "duplicate-asset"))[0]
    assert alarm["subject"] == "ASSET-0001" and alarm["severity"] == "critical"
    message = alarm["message"]
    assert "asset ID ASSET-0001" in message
    assert f"key {device_key_id(second)}" in message
    assert "serial SN-SECOND-2 (the cloud's onboarding assertion vouches for it)" in message
    assert f"bound device (key {device_key_id(first)})" in message
    assert "127.0.0.1" not in message
    second.proc.terminate()
    second.proc.wait(timeout=20)

    # A third one without an assertion: the conductor cannot know its serial and says so.
    third = routers(asset_id="ASSET-0001").start(staging, psk_file)
    assert "duplicate-asset" in third.wait_report("connect", ok=False)["reason"]
    alarm = wait_until("the alarm repeated", lambda: [
        a for a in alarms_of(staging, "duplicate-asset")
        if device_key_id(third) in a["message"]])[0]
    assert alarm["count"] >= 2
    assert "serial unknown (it showed no onboarding assertion)" in alarm["message"]
    assert "127.0.0.1" not in alarm["message"]
    log = [line for line in staging.log().splitlines() if "ALARM critical duplicate-asset" in line]
    assert log and not any("127.0.0.1" in line for line in log)


def test_operator_acknowledges_and_clears_alarms(make_conductor, routers):
    """Issue 14 point 7: `alarm ack ID` marks an alarm acknowledged (who, when) and it stays
    listed; `alarm clear ID` moves it to the history; each change is in the audit trail.
    Bad ids exit 2, a refused token 3; the same condition again raises a new alarm."""
    staging = make_conductor()
    _, psk_file, _ = onboard(staging, routers)
    second = routers(asset_id="ASSET-0001").start(staging, psk_file)
    second.wait_report("connect", ok=False)
    second.proc.terminate()
    second.proc.wait(timeout=20)
    alarm = wait_until("the duplicate-asset alarm",
                       lambda: alarms_of(staging, "duplicate-asset"))[0]
    alarm_id = alarm["id"]
    assert isinstance(alarm_id, int) and alarm["acknowledged"] is None
    assert re.search(rf"(?m)^{alarm_id}\s+critical\s+duplicate-asset\s+ASSET-0001\s",
                     staging.ok("show", "alarms"))

    # Acknowledged: still listed, marked with who and when; a second ack keeps the first.
    out = staging.ok("alarm", "ack", str(alarm_id))
    assert f"alarm {alarm_id} (duplicate-asset [ASSET-0001]) acknowledged by admin" in out
    acked = alarms_of(staging, "duplicate-asset")
    assert [a["id"] for a in acked] == [alarm_id]
    assert acked[0]["acknowledged"]["by"] == "admin"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", acked[0]["acknowledged"]["at"])
    staging.ok("alarm", "ack", str(alarm_id))
    assert alarms_of(staging, "duplicate-asset")[0]["acknowledged"] == acked[0]["acknowledged"]
    assert "admin " + acked[0]["acknowledged"]["at"] in staging.ok("show", "alarms")

    # Bad input exits 2 and changes nothing; a refused token exits 3.
    for words, says in ((["alarm", "ack", "abc"], "no alarm id"),
                        (["alarm", "clear", "1x"], "no alarm id"),
                        (["alarm", "clear", "999999"], "no active alarm has id 999999"),
                        (["alarm", "ack", "999999"], "no active alarm has id 999999"),
                        (["alarm", "drop", str(alarm_id)], "unknown conductor command"),
                        (["show", "assets", "--history"], "--history is for 'show alarms'")):
        proc = staging.ctl(*words)
        assert proc.returncode == 2 and says in proc.stderr, (words, proc.stderr)
    wrong = os.path.join(staging.dir, "wrong.token")
    with open(wrong, "w") as f:
        f.write("ab" * 32 + "\n")
    proc = staging.ctl("alarm", "clear", str(alarm_id), token_file=wrong)
    assert proc.returncode == 3 and "401" in proc.stderr
    assert [a["id"] for a in alarms_of(staging, "duplicate-asset")] == [alarm_id]
    assert staging.ctl("alarm", "ack", "--help").stdout.startswith("usage: onrampctl conductor")

    # Cleared: gone from the active list, kept in the history with both marks.
    out = staging.ok("alarm", "clear", str(alarm_id))
    assert f"alarm {alarm_id} (duplicate-asset [ASSET-0001]) cleared by admin" in out
    assert alarms_of(staging) == []
    history = json.loads(staging.ok("show", "alarms", "--history", "--json"))["alarms"]
    assert [(h["id"], h["kind"], h["subject"]) for h in history] == \
        [(alarm_id, "duplicate-asset", "ASSET-0001")]
    assert history[0]["cleared"]["by"] == "admin"
    assert history[0]["acknowledged"] == acked[0]["acknowledged"]
    assert history[0]["message"] == alarm["message"]
    assert re.search(rf"(?m)^{alarm_id}\s+critical\s+duplicate-asset\s+ASSET-0001\s.*"
                     r"admin \S+Z\s+admin \S+Z$", staging.ok("show", "alarms", "--history"))
    proc = staging.ctl("alarm", "clear", str(alarm_id))
    assert proc.returncode == 2 and "no active alarm" in proc.stderr

    # The audit has both changes, by admin, on the alarm; the chain holds.
    entries = json.loads(staging.ok("audit", "--json"))["entries"]
    got = [(e["actor"], e["action"], e["object"], e["result"]) for e in entries]
    assert ("admin", f"POST /admin/v1/alarms/{alarm_id}/ack", f"alarms/{alarm_id}/ack",
            "ok") in got
    assert ("admin", f"POST /admin/v1/alarms/{alarm_id}/clear", f"alarms/{alarm_id}/clear",
            "ok") in got
    assert ("-", f"POST /admin/v1/alarms/{alarm_id}/clear", f"alarms/{alarm_id}/clear",
            "refused: unauthorized") in got
    assert staging.ok("audit", "--verify").startswith("audit chain verified: ")

    # The same condition again is a new alarm, with a new id, not acknowledged.
    again = routers(asset_id="ASSET-0001").start(staging, psk_file)
    again.wait_report("connect", ok=False)
    fresh = wait_until("a new duplicate-asset alarm",
                       lambda: alarms_of(staging, "duplicate-asset"))[0]
    assert fresh["id"] != alarm_id and fresh["acknowledged"] is None


def test_issued_certificate_serves_tls_to_a_client_trusting_the_root(sqlite_conductor, routers):
    staging = sqlite_conductor()
    router, _, _ = onboard(staging, routers)
    server = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:0",
                               "-cert", router.path("conductor-cert.pem"),
                               "-key", router.path("certkey.pem"), "-www"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        while line and not line.startswith("ACCEPT"):
            line = server.stdout.readline()
        port = line.strip().rsplit(":", 1)[1]
        proc = openssl("s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", staging.ca,
                       "-verify_return_error", "-brief", input="")
        assert proc.returncode == 0, proc.stderr
        assert "Verification: OK" in proc.stderr
        # A client that trusts another root refuses it.
        other = sqlite_conductor(name="other")
        proc = openssl("s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", other.ca,
                       "-verify_return_error", "-brief", input="")
        assert proc.returncode != 0
    finally:
        server.kill()
        server.wait()


# ---- migrate -----------------------------------------------------------------


def production_for(staging, production, routers, name="r1", asset_id="ASSET-0001"):
    """Onboards r1 on staging and gives it the production conductor's details."""
    router, _, _ = onboard(staging, routers, asset_id, name)
    prod_psk, prod_secret = production.psk("production")
    after = len(router.reports)
    staging.ok("router", "production", name, "--address", production.address,
               "--psk-file", prod_psk, "--root-ca", production.ca)
    router.wait_report("production-info", after=after)
    return router, prod_secret


def test_migrate_to_a_production_conductor_that_has_the_router(make_conductor, routers):
    staging = make_conductor()
    production = make_conductor(role="production", name="production")
    router, prod_secret = production_for(staging, production, routers)

    # Validation: the production conductor does not have r1 yet.
    proc = staging.ctl("migrate", "conductor", production.address, "router", "r1")
    assert proc.returncode == 1
    assert "not provisioned" in proc.stderr
    assert staging.asset("ASSET-0001")["state"] == "configured"  # nothing changed
    assert staging.router_record("r1")["migrations"] == []

    production.add_router("r1", "ASSET-0001")
    out = staging.ok("migrate", "conductor", production.address, "router", "r1", "--wait")
    assert "router r1 migrated" in out
    staging.wait_state("ASSET-0001", "migrated")
    # On production it gets its production certificate and configuration, and runs.
    production.wait_state("ASSET-0001", "running")
    assert router.current() == "production"
    cert = router.path("conductor-cert.pem")
    assert openssl("verify", "-CAfile", production.ca, cert).returncode == 0
    migrations = staging.router_record("r1")["migrations"]
    assert [m["state"] for m in migrations] == ["succeeded"]
    assert prod_secret not in staging.log() and prod_secret not in router.log()


def test_migrate_reverts_when_production_is_down_then_succeeds(make_conductor, routers):
    staging = make_conductor()
    production = make_conductor(role="production", name="production")
    router, _ = production_for(staging, production, routers)
    production.add_router("r1", "ASSET-0001")
    port = production.port
    production.stop()

    # Validation sees it down and refuses; nothing changes.
    proc = staging.ctl("migrate", "conductor", production.address, "router", "r1")
    assert proc.returncode == 1 and "cannot take router r1" in proc.stderr
    assert staging.router_record("r1")["migrations"] == []

    # Skipping validation: the router tries for the revert window, then comes back.
    proc = staging.ctl("migrate", "conductor", production.address, "router", "r1",
                       "--skip-validation", "--revert-window", "3", "--wait")
    assert proc.returncode == 1
    assert "did not migrate" in proc.stderr
    asset = staging.wait_state("ASSET-0001", "configured")
    assert "failed, back on this conductor" in asset["last_error"]
    assert "could not reach the production conductor" in asset["last_error"]
    assert router.current() == "staging"
    router.wait_report("migrate", ok=False)
    migrations = staging.router_record("r1")["migrations"]
    assert [m["state"] for m in migrations] == ["failed"]
    assert "revert window" in migrations[0]["reason"]

    # Production comes back on the same address: a second migrate succeeds.
    production.start(port=port)
    out = staging.ok("migrate", "conductor", production.address, "router", "r1", "--wait")
    assert "migrated" in out
    staging.wait_state("ASSET-0001", "migrated")
    production.wait_state("ASSET-0001", "running")
    assert router.current() == "production"


def test_router_side_migrate_command(sqlite_conductor, routers):
    """The library function behind the agent's `onrampctl migrate conductor ADDR`."""
    staging = sqlite_conductor()
    production = sqlite_conductor(role="production", name="production")
    router, _ = production_for(staging, production, routers)
    production.add_router("r1", "ASSET-0001")
    router.stop()
    proc = router.run_tool("--window", "10", "migrate", production.address)
    assert proc.returncode == 0, proc.stderr
    assert router.current() == "production"
    staging.wait_state("ASSET-0001", "migrated")
    assert staging.router_record("r1")["migrations"][0]["state"] == "succeeded"


def test_progress_reports_must_be_printable(sqlite_conductor, routers):
    # Reports are logged and shown to operators: a control character (a forged log
    # line, a terminal escape) is refused and nothing of the report is kept.
    staging = sqlite_conductor()
    router, _, _ = onboard(staging, routers)
    router.stop()
    proc = router.run_tool("report", "certificate", "failed", "bad\nALARM critical forged")
    assert proc.returncode == 1 and "400" in proc.stderr and "control character" in proc.stderr
    assert "forged" not in staging.log()
    proc = router.run_tool("report", "certificate", "failed", "the TPM is busy")
    assert proc.returncode == 0, proc.stderr
    events = staging.router_record("r1")["events"]
    assert [(e["step"], e["reason"]) for e in events] == [("certificate", "the TPM is busy")]


# ---- bad input and the admin API ---------------------------------------------


def test_bad_input_changes_nothing(sqlite_conductor, tmp_path):
    staging = sqlite_conductor()
    bad = dict(PEERING, hub={"name": "hub-east", "addresses": ["127.0.0.1:0"]})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    proc = staging.ctl("router", "add", "r1", "--asset-id", "A1", "--config", str(path))
    assert proc.returncode == 2 and "hub.addresses[0]" in proc.stderr
    path.write_text(json.dumps(PEERING))
    proc = staging.ctl("router", "add", "r2", "--asset-id", "A1", "--config", str(path))
    assert proc.returncode == 2 and "not the router being added" in proc.stderr
    proc = staging.ctl("router", "add", "bad name", "--asset-id", "A1", "--config", str(path))
    assert proc.returncode == 2
    proc = staging.ctl("router", "add", "r1", "--asset-id", "has space", "--config", str(path))
    assert proc.returncode == 2
    proc = staging.ctl("router", "add", "r1", "--config", str(path))
    assert proc.returncode == 2 and "--asset-id" in proc.stderr
    proc = staging.ctl("frobnicate")
    assert proc.returncode == 2 and proc.stderr.startswith("onrampctl: ")
    proc = staging.ctl("migrate", "conductor", "127.0.0.1", "router", "r1")
    assert proc.returncode == 2 and "needs a port" in proc.stderr
    proc = staging.ctl("router", "show", "nobody")
    assert proc.returncode == 2
    assert staging.assets() == []

    staging.add_router("r1", "A1")
    proc = staging.ctl("router", "add", "r1", "--asset-id", "A2", "--config", str(path))
    assert proc.returncode == 1 and "already exists" in proc.stderr
    proc = staging.ctl("migrate", "conductor", "127.0.0.1:1", "router", "r1")
    assert proc.returncode == 1 and "no production conductor" in proc.stderr
    assert [a["asset_id"] for a in staging.assets()] == ["A1"]


def test_admin_api_needs_the_token(sqlite_conductor, tmp_path):
    staging = sqlite_conductor()
    wrong = tmp_path / "wrong"
    wrong.write_text("0" * 64 + "\n")
    proc = staging.ctl("show", "assets", token_file=str(wrong))
    assert proc.returncode == 3 and "unauthorized" in proc.stderr  # 3: refused credentials
    proc = staging.ctl("psk", "create", token_file=str(wrong))
    assert proc.returncode == 3
    proc = subprocess.run(["curl", "-s", "--cacert", staging.ca,
                           f"https://127.0.0.1:{staging.admin_port}/admin/v1/assets"],
                          capture_output=True, text=True, timeout=30)
    assert json.loads(proc.stdout)["error"]["code"] == "unauthorized"
    # The CA export needs no secret to be useful, but still the token.
    pem = staging.ok("ca", "export")
    with open(staging.ca) as f:
        assert pem == f.read()


def test_init_refuses_an_initialised_directory_and_prints_no_secret(tmp_path):
    c = Conductor("staging", "again")
    try:
        out = c.init().stdout
        assert "admin token written to" in out
        with open(c.token_file) as f:
            token = f.read().strip()
        assert token not in out
        proc = subprocess.run([program("onramp-conductord"), "init",
                               "--config", c.config], capture_output=True, text=True)
        assert proc.returncode == 1 and "already initialised" in proc.stderr
        mode = os.stat(os.path.join(c.state, "ca.key")).st_mode & 0o777
        assert mode == 0o600
        assert os.stat(os.path.join(c.state, "master.key")).st_mode & 0o777 == 0o600
    finally:
        c.cleanup()


def test_failed_init_leaves_nothing_that_stops_a_second_init(tmp_path):
    # A CA import that cannot be read fails init; once the configuration is fixed,
    # init runs (it did not, as a master key was left behind).
    c = Conductor("staging", "retry",
                  extra=f"[ca]\nimport-certificate = {tmp_path}/no-ca.pem\n"
                        f"import-key = {tmp_path}/no-ca.key\n")
    try:
        proc = subprocess.run([program("onramp-conductord"), "init", "--config", c.config],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "no-ca.pem" in proc.stderr
        assert sorted(os.listdir(c.state)) in ([], ["conductor.db"])
        with open(c.config) as f:
            text = f.read()
        with open(c.config, "w") as f:
            f.write(text[:text.index("[ca]")] + text[text.index("[admin]"):])
        assert "initialised" in c.init().stdout
        assert os.path.exists(os.path.join(c.state, "ca.pem"))
    finally:
        c.cleanup()


# ---- through the management proxy ---------------------------------------------


@pytest.fixture
def squid():
    from netservices import Squid
    proxy = Squid("basic", {"router": "proxy-pass-7"})
    yield proxy
    proxy.stop()


def test_onboarding_and_migrate_through_squid(sqlite_conductor, routers, squid, tmp_path):
    staging = sqlite_conductor()
    production = sqlite_conductor(role="production", name="production")
    password = tmp_path / "proxy-password"
    password.write_text("proxy-pass-7\n")
    proxy = {"address": f"127.0.0.1:{squid.port}", "user": "router",
             "password_file": str(password)}
    staging.add_router("r1", "ASSET-0001")
    psk_file, _ = staging.psk("site")
    router = routers(proxy=proxy).start(staging, psk_file)
    staging.wait_state("ASSET-0001", "configured")
    prod_psk, _ = production.psk("production")
    staging.ok("router", "production", "r1", "--address", production.address,
               "--psk-file", prod_psk, "--root-ca", production.ca)
    router.wait_report("production-info")
    production.add_router("r1", "ASSET-0001")
    staging.ok("migrate", "conductor", production.address, "router", "r1", "--wait")
    production.wait_state("ASSET-0001", "running")

    # Both conductors were reached only through squid, with the proxy's credentials.
    log = squid.access_log_text()
    assert f"CONNECT {staging.address}" in log
    assert f"CONNECT {production.address}" in log
    assert "router" in log
    assert "proxy-pass-7" not in router.log()


def test_wrong_proxy_password_is_reported(sqlite_conductor, routers, squid, tmp_path):
    staging = sqlite_conductor()
    staging.add_router("r1", "ASSET-0001")
    psk_file, _ = staging.psk("site")
    password = tmp_path / "proxy-password"
    password.write_text("wrong\n")
    proxy = {"address": f"127.0.0.1:{squid.port}", "user": "router",
             "password_file": str(password)}
    router = routers(proxy=proxy).start(staging, psk_file)
    report = router.wait_report("connect", ok=False)
    assert "407" in report["reason"] or "proxy" in report["reason"].lower()
    assert staging.asset("ASSET-0001")["state"] == "pending"


def test_onboarding_with_the_device_key_in_a_tpm(sqlite_conductor, routers, swtpm):
    """The certificate key is made and used inside a real swtpm; the secrets the
    router receives are sealed to it."""
    staging = sqlite_conductor()
    staging.add_router("r1", "ASSET-0001")
    psk_file, secret = staging.psk("site")
    router = routers(tcti=swtpm.tcti).start(staging, psk_file)
    staging.wait_state("ASSET-0001", "configured")
    cert = router.path("conductor-cert.pem")
    assert openssl("verify", "-CAfile", staging.ca, cert).returncode == 0
    assert os.path.exists(router.path("certkey.json"))
    assert not os.path.exists(router.path("certkey.pem"))
    for root, _, files in os.walk(router.dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                assert secret.encode() not in f.read(), name


def test_a_queued_command_wakes_the_held_poll(sqlite_conductor, routers):
    """The poll is held for 60 s; a command queued meanwhile is delivered long
    before that (the admin API wakes the loop holding the poll)."""
    staging = sqlite_conductor(poll_timeout=60)
    router, _, _ = onboard(staging, routers, poll_wait=60)
    after = len(router.reports)
    staging.ok("router", "renew", "r1")
    router.wait_report("certificate", after=after, timeout=30)
    # Stopping the conductor ends the held poll, so the router stops at once.
    staging.stop()


def test_certificate_renewed_when_near_expiry(sqlite_conductor, routers):
    """With certificates of 1 day renewed 1 day before expiry, the next
    authentication queues a renewal: a second certificate, a new serial."""
    staging = sqlite_conductor(extra="certificate-days = 1\nrenew-before-days = 1\n")
    router, psk_file, _ = onboard(staging, routers)
    first = staging.router_record("r1")["certificates"]
    assert len(first) == 1
    router.stop()
    router.start(poll_wait=2)
    certs = wait_until("a renewed certificate",
                       lambda: len(staging.router_record("r1")["certificates"]) == 2
                       and staging.router_record("r1")["certificates"])
    assert certs[1]["serial"] != first[0]["serial"]
    assert "certificate expires soon, renewing" in staging.log()


def test_bad_configuration_names_file_and_line(tmp_path):
    conf = tmp_path / "c.conf"
    state = tmp_path / "state"
    for text, message in [
        ("[conductor]\nname = c\nstate-dir = {d}\nrole = primary\n", ":4: role must be"),
        ("[conductor]\nname = c\nstate-dir = {d}\nport = 70000\n", ":4: port"),
        ("[conductor]\nname = c\nstate-dir = {d}\nfrobs = 1\n", ":4"),
        ("[conductor]\nstate-dir = {d}\n", ":1: [conductor] name is required"),
        ("[conductor]\nname = -c\nstate-dir = {d}\n", ":2: [conductor] name is required"),
        ("[conductor]\nname = c\nstate-dir = relative\n", ":3: [conductor] state-dir"),
        ("[conductor]\nname = c\nstate-dir = {d}\nserver-name = bad name\n", ":4: server-name"),
        ("[conductor]\nname = c\nstate-dir = {d}\nlisten = localhost\n", ":4: [conductor] listen"),
        ("[conductor]\nname = c\nstate-dir = {d}\n[admin]\nlisten = any\n", ":5: [admin] listen"),
        ("[conductor]\nname = c\nstate-dir = {d}\nlog-level = loud\n", ":4: log-level"),
        ("[conductor]\nname = c\nstate-dir = {d}\ncertificate-days = 10\n"
         "renew-before-days = 20\n", ":5: renew-before-days (20) must not exceed"),
        ("[conductor]\nname = c\nstate-dir = {d}\n[ca]\nimport-key = /k\n", ":5: [ca] import-certificate and"),
    ]:
        conf.write_text(text.format(d=state))
        proc = subprocess.run([program("onramp-conductord"), "init", "--config", str(conf)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, text
        assert message in proc.stderr, (text, proc.stderr)
        assert not state.exists()


def test_help():
    for args in (["onramp-conductord", "--help"], ["onrampctl", "conductor", "--help"]):
        proc = subprocess.run([program(args[0]), *args[1:]], capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 0 and "usage:" in proc.stdout
    proc = subprocess.run([program("onramp-conductord"), "frob", "--config", "/nonexistent"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2


def test_conductor_cannot_dump_core(sqlite_conductor):
    from conftest import core_dumps_disabled
    c = sqlite_conductor()
    assert core_dumps_disabled(c.proc.pid)


def test_request_timeout_cuts_dribbled_requests_on_both_apis(sqlite_conductor):
    """[conductor] request-timeout (issue 12, point 4): a request dribbled a
    byte at a time is cut off that long after its first byte, on the router
    API and on the admin API; a complete request is still served."""
    c = sqlite_conductor(extra="request-timeout = 2\n")
    ctx = ssl.create_default_context(cafile=c.ca)
    for port in (c.port, c.admin_port):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                            server_hostname="127.0.0.1")
        closed_after, got = dribble(s, b"GET /admin/v1/assets HTTP/1.1\r\nHost: x\r\n" +
                                    b"X-Pad: " + b"a" * 40, 0.5)
        s.close()
        assert closed_after is not None and 1.5 <= closed_after <= 6, (port, closed_after)
        assert got == b""
    assert c.assets() == []


def test_request_timeout_is_checked():
    c = Conductor("staging", "rtcheck", extra="request-timeout = 0\n")
    try:
        proc = subprocess.run([program("onramp-conductord"), "init", "--config", c.config,
                               "--token-file", c.token_file],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert f"{c.config}:" in proc.stderr and "request-timeout" in proc.stderr, proc.stderr
        assert not os.path.exists(c.state)
    finally:
        c.cleanup()


# ---- field corrections (issue 11): asset IDs, routers, secrets, last errors ------


def alarms_of(conductor, kind=None):
    alarms = json.loads(conductor.ok("show", "alarms", "--json"))["alarms"]
    return [a for a in alarms if kind is None or a["kind"] == kind]


def write_config(conductor, name, peering):
    path = os.path.join(conductor.dir, f"{name}-new.json")
    with open(path, "w") as f:
        json.dump(peering, f)
    return path


def test_mistyped_asset_id_is_corrected_with_router_set(make_conductor, routers):
    staging = make_conductor()
    config = staging.add_router("r1", "ASSET-O001")  # mistyped: a letter O for a zero
    psk_file, _ = staging.psk("site")
    router = routers(asset_id="ASSET-0001").start(staging, psk_file)
    report = router.wait_report("connect", ok=False)
    assert "unknown-asset" in report["reason"]

    # The unknown asset ID raises an alarm naming it, and the router still waiting for
    # its device: where the typo shows.
    alarm = wait_until("the unknown-asset alarm", lambda: alarms_of(staging, "unknown-asset"))[0]
    assert alarm["subject"] == "ASSET-0001" and alarm["severity"] == "warning"
    assert "asset ID ASSET-0001" in alarm["message"]
    assert "r1 (asset ID ASSET-O001)" in alarm["message"]
    assert re.search(r"warning\s+unknown-asset\s+ASSET-0001\s", staging.ok("show", "alarms"))
    # Named by what the device claimed, not by the proxy's (here the loopback) address.
    assert "127.0.0.1" not in alarm["message"]
    assert "serial unknown (it showed no onboarding assertion)" in alarm["message"]
    assert "ALARM warning unknown-asset [ASSET-0001]" in staging.log()

    # Adding it again is refused (the name exists); nothing changes.
    proc = staging.ctl("router", "add", "r1", "--asset-id", "ASSET-0001", "--config", config)
    assert proc.returncode == 1 and "(exists, 409)" in proc.stderr
    before = staging.router_record("r1")
    assert before["asset_id"] == "ASSET-O001"

    # router set corrects it under the same name.
    out = staging.ok("router", "set", "r1", "--asset-id", "ASSET-0001")
    assert "asset ID ASSET-0001 (changed)" in out
    assert staging.asset("ASSET-O001") is None

    # The device, still retrying, onboards as r1 with the commands queued at its add; the
    # unknown row and its alarm are gone (an attempt in flight during the set included).
    staging.wait_state("ASSET-0001", "configured", timeout=60)
    record = staging.router_record("r1")
    assert record["name"] == "r1" and record["asset_id"] == "ASSET-0001"
    assert [c["id"] for c in record["commands"]] == [c["id"] for c in before["commands"]]
    assert [c["state"] for c in record["commands"]] == ["acked", "acked"]
    assert staging.asset("ASSET-0001", "unknown") is None
    assert alarms_of(staging, "unknown-asset") == []

    # A device is bound now: its asset ID is that device's and is not changed.
    proc = staging.ctl("router", "set", "r1", "--asset-id", "ASSET-0002")
    assert proc.returncode == 1 and "(onboarded, 409)" in proc.stderr
    assert "already authenticated" in proc.stderr
    assert staging.router_record("r1")["asset_id"] == "ASSET-0001"


def test_router_set_sends_a_new_configuration_and_refuses_bad_input(sqlite_conductor, routers):
    staging = sqlite_conductor()
    router, _, _ = onboard(staging, routers)
    old_sha = staging.router_record("r1")["config_sha256"]
    staging.add_router("r2", "ASSET-0002")

    new = json.loads(json.dumps(PEERING))
    new["hub"]["addresses"] = ["127.0.0.1:1281"]
    path = write_config(staging, "r1", new)
    after = len(router.reports)
    out = staging.ok("router", "set", "r1", "--config", path)
    assert "(sent to the router)" in out
    router.wait_report("configuration", after=after)

    def applied():
        record = staging.router_record("r1")
        return record["commands"][-1]["state"] == "acked" and record
    record = wait_until("the new configuration acknowledged", applied)
    with open(router.path("peering.json"), "rb") as f:
        stored = f.read()
    assert json.loads(stored) == new
    assert record["config_sha256"] == hashlib.sha256(stored).hexdigest() != old_sha
    assert [c["type"] for c in record["commands"]] == ["generate-certificate", "apply-config",
                                                       "apply-config"]
    assert record["state"] == "configured" and record["asset_id"] == "ASSET-0001"

    # Refused, and nothing changes: another router's asset ID, no such router, nothing to
    # set, a configuration naming another router.
    proc = staging.ctl("router", "set", "r2", "--asset-id", "ASSET-0001")
    assert proc.returncode == 1 and "(exists, 409)" in proc.stderr
    proc = staging.ctl("router", "set", "nosuch", "--asset-id", "ASSET-0009")
    assert proc.returncode == 2 and "no router named nosuch" in proc.stderr
    proc = staging.ctl("router", "set", "r2")
    assert proc.returncode == 2 and "--asset-id, --config or both" in proc.stderr
    proc = staging.ctl("router", "set", "r2", "--config", path)
    assert proc.returncode == 2
    assert staging.router_record("r2")["asset_id"] == "ASSET-0002"
    assert len(staging.router_record("r2")["commands"]) == 2


def test_router_delete_is_refused_while_connected_unless_forced(make_conductor, routers):
    staging = make_conductor()
    router, _, _ = onboard(staging, routers)
    proc = staging.ctl("router", "delete", "r1")
    assert proc.returncode == 1
    assert "router r1: the router is connected" in proc.stderr and "--force" in proc.stderr
    assert "(connected, 409)" in proc.stderr
    assert staging.asset("ASSET-0001", "configured") is not None

    # A router no device ever reached goes without --force; an unknown name is bad input.
    staging.add_router("r2", "ASSET-0002")
    assert "router r2 (asset ID ASSET-0002) deleted" in staging.ok("router", "delete", "r2")
    assert staging.asset("ASSET-0002") is None
    assert staging.ctl("router", "delete", "r2").returncode == 2

    # --force deletes it and ends its session: the router's next request is refused.
    after = len(router.reports)
    out = staging.ok("router", "delete", "r1", "--force")
    assert "deleted; its session is ended" in out
    report = router.wait_report("connect", ok=False, after=after)
    assert "unknown-asset" in report["reason"]
    assert staging.ctl("router", "show", "r1").returncode == 2
    assert staging.asset("ASSET-0001", "unknown") is not None

    # Added again under its name, the same device onboards afresh.
    staging.add_router("r1", "ASSET-0001")
    staging.wait_state("ASSET-0001", "configured", timeout=60)
    assert len(staging.router_record("r1")["certificates"]) == 1
    assert staging.asset("ASSET-0001", "unknown") is None


def test_unknown_asset_is_forgotten(make_conductor, routers):
    staging = make_conductor()
    staging.add_router("r1", "ASSET-0001")
    psk_file, _ = staging.psk("site")
    stranger = routers(asset_id="NOBODY-42").start(staging, psk_file)
    stranger.wait_report("connect", ok=False)
    stranger.stop()
    staging.wait_state("NOBODY-42", "unknown")
    assert [a["subject"] for a in alarms_of(staging, "unknown-asset")] == ["NOBODY-42"]

    # A router's asset ID is not forgotten this way.
    proc = staging.ctl("asset", "forget", "ASSET-0001")
    assert proc.returncode == 1 and "router r1" in proc.stderr
    assert staging.asset("ASSET-0001", "pending") is not None

    assert "NOBODY-42 forgotten" in staging.ok("asset", "forget", "NOBODY-42")
    assert staging.asset("NOBODY-42") is None
    assert alarms_of(staging, "unknown-asset") == []
    proc = staging.ctl("asset", "forget", "NOBODY-42")
    assert proc.returncode == 2 and "no unknown asset ID NOBODY-42" in proc.stderr
    assert staging.ctl("asset", "forget", "has space").returncode == 2


def test_revoked_secret_onboards_no_new_router_and_onboarded_ones_keep_working(
        make_conductor, routers):
    staging = make_conductor()
    first, old_psk, _ = onboard(staging, routers)
    out = staging.ok("psk", "revoke", "site")
    assert out.startswith("pre-shared secret site (id ") and " revoked at " in out

    # The onboarded router's session goes on: a renewal reaches it.
    after = len(first.reports)
    staging.ok("router", "renew", "r1")
    first.wait_report("certificate", after=after)

    # A new router with the revoked secret is refused with a clear code; nothing is bound.
    staging.add_router("r2", "ASSET-0002")
    second = routers(asset_id="ASSET-0002").start(staging, old_psk)
    report = second.wait_report("connect", ok=False)
    assert "revoked-psk" in report["reason"]
    second.stop()
    assert staging.asset("ASSET-0002")["state"] == "pending"
    assert "the pre-shared secret was revoked" in staging.asset("ASSET-0002")["last_error"]
    assert staging.router_record("r2")["device_key"] is None
    assert "revoked pre-shared secret refused" in staging.log()

    # The onboarded router authenticates again (a new TLS connection) with its bound key.
    first.stop()
    after = len(first.reports)
    first.start(poll_wait=2)
    first.wait_report("connect", ok=True, after=after)
    staging.ok("router", "renew", "r1")
    first.wait_report("certificate", after=after)

    # The site's new secret onboards r2; revoking twice is fine, an unknown name is not.
    new_psk, _ = staging.psk("site-2")
    routers(asset_id="ASSET-0002").start(staging, new_psk)
    staging.wait_state("ASSET-0002", "configured")
    assert staging.asset("ASSET-0002")["last_error"] is None
    again = staging.ok("psk", "revoke", "site")
    assert again.split(" revoked at ")[1] == out.split(" revoked at ")[1]
    psks = {p["name"]: p for p in json.loads(staging.ok("psk", "list", "--json"))["psks"]}
    assert psks["site"]["revoked"] == out.split(" revoked at ")[1].strip()
    assert psks["site-2"]["revoked"] is None and "secret" not in psks["site-2"]
    assert re.search(r"^site-2\s+[0-9a-f]{8}\s+\S+\s+-$", staging.ok("psk", "list"), re.M)
    proc = staging.ctl("psk", "revoke", "nosuch")
    assert proc.returncode == 2 and "no pre-shared secret named nosuch" in proc.stderr


def test_a_success_clears_the_stale_last_error(sqlite_conductor, routers):
    staging = sqlite_conductor()
    staging.add_router("r1", "ASSET-0001")
    right_file, _ = staging.psk("real")
    other = sqlite_conductor(name="other")
    wrong_file, _ = other.psk("other")
    wrong = routers().start(staging, wrong_file)
    wrong.wait_report("connect", ok=False)
    wrong.stop()
    assert "authentication refused" in staging.asset("ASSET-0001")["last_error"]

    routers().start(staging, right_file)
    staging.wait_state("ASSET-0001", "configured")
    assert staging.asset("ASSET-0001")["last_error"] is None
    assert staging.router_record("r1")["last_error"] is None
    assert re.search(r"^r1\s+ASSET-0001\s+configured\s+\S+\s+-$", staging.ok("show", "assets"),
                     re.M)
    assert re.search(r"^last error:\s+-$", staging.ok("router", "show", "r1"), re.M)


def test_field_correction_commands_are_documented():
    """Every admin command of issue 11 is in --help, the man page and the protocol."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    help_text = subprocess.run([program("onrampctl"), "conductor", "--help"],
                               capture_output=True, text=True, timeout=30).stdout
    man = subprocess.run(["man", "-l", "-P", "cat",
                          os.path.join(root, "docs", "man", "onrampctl.1")],
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, MANWIDTH="200")).stdout
    with open(os.path.join(root, "docs", "protocol-conductor.md")) as f:
        protocol = f.read()
    for command, call in [("psk revoke NAME", "POST /admin/v1/psks/NAME/revoke"),
                          ("psk list", "GET /admin/v1/psks"),
                          ("router set NAME", "POST /admin/v1/routers/NAME/set"),
                          ("router delete NAME", "DELETE /admin/v1/routers/NAME"),
                          ("asset forget ASSET-ID", "POST /admin/v1/assets/forget")]:
        assert command in help_text, command
        assert command in man, command
        assert call in protocol and command in protocol, call
    # bash completion offers them.
    script = os.path.join(root, "ctl", "onrampctl.bash")
    def complete(*words):
        typed = " ".join(f"'{w}'" for w in ("onrampctl",) + words)
        return subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=({typed}); "
                               f"COMP_CWORD={len(words)}; _onrampctl; "
                               "printf '%s\\n' \"${COMPREPLY[@]}\""],
                              capture_output=True, text=True, timeout=10,
                              check=True).stdout.split()
    assert {"set", "delete"} <= set(complete("conductor", "router", ""))
    assert {"list", "revoke"} <= set(complete("conductor", "psk", ""))
    assert complete("conductor", "asset", "") == ["forget"]
    assert "--force" in complete("conductor", "router", "delete", "r1", "--")
    for code in ("revoked-psk", "onboarded", "connected", "no-asset", "router-asset", "no-psk"):
        assert f"`{code}`" in protocol or f" {code}`" in protocol, code


def test_revoked_production_secret_is_refused_and_a_new_one_migrates(sqlite_conductor, routers):
    """Rotating a router's production secret: revoked on production, the old one no
    longer passes the peer query; the new one, sent through staging, does."""
    staging = sqlite_conductor()
    production = sqlite_conductor(role="production", name="production")
    router, _ = production_for(staging, production, routers)
    production.add_router("r1", "ASSET-0001")
    production.ok("psk", "revoke", "production")
    proc = staging.ctl("migrate", "conductor", production.address, "router", "r1")
    assert proc.returncode == 1 and "revoked" in proc.stderr, proc.stderr
    assert staging.router_record("r1")["migrations"] == []

    new_psk, _ = production.psk("production-2")
    after = len(router.reports)
    staging.ok("router", "production", "r1", "--address", production.address,
               "--psk-file", new_psk, "--root-ca", production.ca)
    router.wait_report("production-info", after=after)
    staging.ok("migrate", "conductor", production.address, "router", "r1", "--wait")
    production.wait_state("ASSET-0001", "running")


# ---- conventions and audit (issue 14) -------------------------------------------------


def test_conductor_commands_answer_help_and_refused_tokens_exit_3(sqlite_conductor):
    staging = sqlite_conductor()
    for words in (["router", "--help"], ["router", "add", "--help"], ["psk", "create", "--help"],
                  ["show", "assets", "--help"], ["migrate", "--help"], ["audit", "--help"]):
        proc = staging.ctl(*words)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: onrampctl conductor"), \
            (words, proc.stderr)
    wrong = os.path.join(staging.dir, "wrong.token")
    with open(wrong, "w") as f:
        f.write("ab" * 32 + "\n")
    proc = staging.ctl("show", "assets", token_file=wrong)
    assert proc.returncode == 3 and "401" in proc.stderr


def test_conductor_audit_records_changes_and_refusals(sqlite_conductor):
    staging = sqlite_conductor()
    staging.add_router("r1", "ASSET-0001")
    staging.psk("site")
    wrong = os.path.join(staging.dir, "wrong.token")
    with open(wrong, "w") as f:
        f.write("ab" * 32 + "\n")
    assert staging.ctl("psk", "create", "--name", "evil", token_file=wrong).returncode == 3
    entries = json.loads(staging.ok("audit", "--json"))["entries"]
    got = [(e["actor"], e["action"], e["status"], e["result"]) for e in entries]
    assert ("admin", "POST /admin/v1/routers", 201, "ok") in got
    assert ("-", "POST /admin/v1/psks", 401, "refused: unauthorized") in got
    assert any(e["object"] == "routers name=r1 asset_id=ASSET-0001" for e in entries)
    assert "refused: unauthorized" in staging.ok("audit")
    assert staging.ok("audit", "--verify").startswith("audit chain verified: ")
    # The secrets made are not in the audit, the refused token neither.
    with open(os.path.join(staging.state, "conductor.db"), "rb") as f:
        assert b"ab" * 32 not in f.read()


def test_router_show_is_typed_and_readable(sqlite_conductor, routers):
    staging = sqlite_conductor()
    onboard(staging, routers)
    record = json.loads(staging.ok("router", "show", "r1", "--json"))
    cert = record["certificates"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cert["not_after"])
    assert isinstance(cert["command_id"], int)
    assert all(isinstance(c["id"], int) for c in record["commands"])
    assert all(re.fullmatch(r"\d{4}-.*Z", c["created"]) for c in record["commands"])
    assert all(e["time"].endswith("Z") for e in record["events"])
    text = staging.ok("router", "show", "r1")
    for header in ("CERTIFICATE", "COMMAND", "MIGRATION", "REPORTED"):
        assert header in text
    assert "apply-config" in text or "issue-certificate" in text or "acked" in text
    assert not re.search(r"\b1[6-9]\d{8}\b", text), text  # no raw epoch seconds


def test_show_assets_watch(sqlite_conductor):
    staging = sqlite_conductor()
    staging.add_router("r1", "ASSET-0001")
    cmd = [program("onrampctl"), "conductor", "--url", f"https://127.0.0.1:{staging.admin_port}",
           "--ca", staging.ca, "--token-file", staging.token_file, "show", "assets", "--watch",
           "--json"]
    watch = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    first = json.loads(watch.stdout.readline())
    staging.add_router("r2", "ASSET-0002")
    second = json.loads(watch.stdout.readline())
    while len(second["assets"]) < 2:
        second = json.loads(watch.stdout.readline())
    assert len(first["assets"]) == 1
    watch.send_signal(signal.SIGTERM)
    assert watch.wait(timeout=10) == 0
    proc = staging.ctl("psk", "create", "--watch")
    assert proc.returncode == 2 and "--watch is for commands that read" in proc.stderr


def test_a_fleets_asset_list_larger_than_a_device_answer_is_shown_whole(sqlite_conductor):
    """`show assets` and `router list` of a big fleet: the answer outgrows the 1 MiB
    that devices take from a server (it once failed at about 10,000 routers with
    "larger than 1048576 bytes"); onrampctl takes an admin answer of up to 64 MiB."""
    import sqlite3
    c = sqlite_conductor()
    c.add_router("r1", "ASSET-0001")
    rows = 6000
    db = sqlite3.connect(os.path.join(c.state, "conductor.db"), timeout=30)
    (config, digest) = db.execute(
        "SELECT config, config_sha256 FROM routers WHERE name = 'r1'").fetchone()
    now = int(time.time())
    with db:
        db.executemany(
            "INSERT INTO routers (name, asset_id, config, config_sha256, last_error, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(f"branch-{i:05d}-" + "x" * 48, f"ASSET-{i:05d}-" + "y" * 48, config, digest,
              "tls: the certificate of 198.51.100.7:4505 does not chain to the anchor", now)
             for i in range(rows)])
    db.close()
    assets = c.assets()
    assert len(assets) == rows + 1
    assert len(json.dumps({"assets": assets})) > 1024 * 1024
    names = {a["name"] for a in assets}
    assert "r1" in names and f"branch-{rows - 1:05d}-" + "x" * 48 in names


def _hkdf_expand_label(digest, secret, label, context, length):
    """RFC 8446 7.1 HKDF-Expand-Label."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([i]), digest).digest()
        out += block
        i += 1
    return out[:length]


class RawTls:
    """One TLS 1.3 connection to a conductor by Python's ssl module, HTTP/1.1
    requests written by hand. Its keying-material exporter (the proof's binding)
    is computed from the connection's exporter secret, which OpenSSL writes to
    this connection's own key log (RFC 8446 7.5, no context)."""

    def __init__(self, conductor, directory):
        _, port = conductor.address.rsplit(":", 1)
        keylog = os.path.join(directory, f"keylog-{os.urandom(4).hex()}")
        ctx = ssl.create_default_context(cafile=conductor.ca)
        ctx.check_hostname = False
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.keylog_filename = keylog
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)),
                                                             timeout=10))
        digest = hashlib.sha384 if self.sock.cipher()[0].endswith("SHA384") else hashlib.sha256
        with open(keylog) as f:
            secret = bytes.fromhex([line.split()[2] for line in f
                                    if line.startswith("EXPORTER_SECRET ")][0])
        size = digest().digest_size
        derived = _hkdf_expand_label(digest, secret, b"EXPORTER-onramp-conductor",
                                     digest(b"").digest(), size)
        self.exporter = _hkdf_expand_label(digest, derived, b"exporter", digest(b"").digest(),
                                           32)
        self.reader = self.sock.makefile("rb")

    def post(self, path, doc, bearer=None):
        return self.request("POST", path, doc, bearer)

    def request(self, method, path, doc=None, bearer=None):
        body = json.dumps(doc).encode() if doc is not None else b""
        auth = f"Authorization: Bearer {bearer}\r\n" if bearer else ""
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: conductor\r\n{auth}"
                          f"Content-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status = int(self.reader.readline().split()[1])
        length = 0
        while (line := self.reader.readline().strip()):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, json.loads(self.reader.read(length))

    def close(self):
        self.reader.close()
        self.sock.close()


def test_a_nonce_is_good_on_its_own_connection_only(sqlite_conductor):
    """A hello's nonce is bound to the TLS connection it was given on: with a proof made
    right for a second connection (its own exporter), the first connection's nonce is
    refused there (401 bad-nonce), and is then used up for its own connection too; a
    nonce of the second connection passes the proof check on it (the request then fails
    on its junk CSR, which is checked after the proof)."""
    c = sqlite_conductor()
    c.add_router("r1", "ASSET-NONCE-1")
    _, secret = c.psk("nonce-test")
    psk_id = secret.split("-")[1]

    def auth(conn, nonce_hex):
        proof = hmac.new(secret.encode(), bytes.fromhex(nonce_hex) + b"ASSET-NONCE-1" +
                         conn.exporter, hashlib.sha256).hexdigest()
        return conn.post("/v1/auth", {"asset_id": "ASSET-NONCE-1", "psk_id": psk_id,
                                      "nonce": nonce_hex, "proof": proof,
                                      "device_csr": "not a CSR"})

    # A refusal closes its connection: each step on the connections it needs.
    first, second, third = (RawTls(c, c.dir) for _ in range(3))
    try:
        assert first.exporter != second.exporter
        status, doc = first.post("/v1/hello", {"asset_id": "ASSET-NONCE-1"})
        assert status == 200, doc
        nonce = doc["nonce"]
        status, doc = auth(second, nonce)
        assert (status, doc["error"]["code"]) == (401, "bad-nonce"), doc
        status, doc = auth(first, nonce)
        assert (status, doc["error"]["code"]) == (401, "bad-nonce"), doc
        status, doc = third.post("/v1/hello", {"asset_id": "ASSET-NONCE-1"})
        assert status == 200, doc
        status, doc = auth(third, doc["nonce"])
        assert (status, doc["error"]["code"]) == (400, "bad-device-csr"), doc
    finally:
        first.close()
        second.close()
        third.close()


def test_a_session_is_good_on_its_own_connection_only(sqlite_conductor):
    """A router's session (its bearer token from /v1/auth) names a live session made on
    this very TLS connection: on it the router's requests are answered; the same token
    on another connection, and a token no session has, are refused 401 no-session."""
    c = sqlite_conductor()
    c.add_router("r1", "ASSET-SESSION-1")
    _, secret = c.psk("session-test")
    psk_id = secret.split("-")[1]
    key = os.path.join(c.dir, "session-device.key")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                    key], check=True, capture_output=True)
    first, second, third = (RawTls(c, c.dir) for _ in range(3))
    try:
        status, doc = first.post("/v1/hello", {"asset_id": "ASSET-SESSION-1"})
        assert status == 200, doc
        nonce = doc["nonce"]
        csr = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj",
                              "/CN=ASSET-SESSION-1", "-addext",
                              f"subjectAltName=URI:urn:onramp:nonce:{nonce}"],
                             check=True, capture_output=True, text=True).stdout
        proof = hmac.new(secret.encode(), bytes.fromhex(nonce) + b"ASSET-SESSION-1" +
                         first.exporter, hashlib.sha256).hexdigest()
        status, doc = first.post("/v1/auth", {"asset_id": "ASSET-SESSION-1", "psk_id": psk_id,
                                              "nonce": nonce, "proof": proof,
                                              "device_csr": csr})
        assert status == 200 and doc["router"] == "r1", doc
        token = doc["session"]
        status, doc = first.request("GET", "/v1/commands?wait=0", bearer=token)
        assert status == 200 and "commands" in doc, doc
        status, doc = second.request("GET", "/v1/commands?wait=0", bearer=token)
        assert (status, doc["error"]["code"]) == (401, "no-session"), doc
        assert "another TLS connection" in doc["error"]["message"], doc
        status, doc = third.request("GET", "/v1/commands?wait=0", bearer="0" * 64)
        assert (status, doc["error"]["code"]) == (401, "no-session"), doc
        status, doc = first.request("GET", "/v1/commands?wait=0", bearer=token)
        assert status == 200, doc
    finally:
        first.close()
        second.close()
        third.close()
