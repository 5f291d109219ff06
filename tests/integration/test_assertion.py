"""Issue 12 point 1: asset-ID squatting. Holding a conductor's pre-shared secret
(every router of a site gets the site's) proves site membership, not identity.
With the cloud's onboarding assertions trusted (onrampctl cloud assertion-cert
export -> onrampctl conductor trust-cloud --cert), a first claim of an asset ID
needs an assertion signed by the cloud for that asset ID, that device key and
that conductor. Everything here runs the real daemons: redirectd, cloudd, two
conductords, squid, the agent, conductor-router as the attacker, OpenSSL for
hand-made assertions."""
import base64
import hashlib
import json
import os
import subprocess
import time
import types

import pytest

from conductorlib import Conductor, Router, wait_until
from e2elab import Agent
from conftest import program

SERIAL = "SSR1000-SQUAT-0001"


@pytest.fixture
def lab(e2e_lab):
    return e2e_lab


@pytest.fixture
def routers():
    made = []

    def make(**kw):
        r = Router(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.terminate()
    for r in made:
        r.cleanup()


@pytest.fixture
def conductors():
    made = []

    def make(role="staging", name="staging"):
        c = Conductor(role, name)
        made.append(c)
        c.init()
        return c.start()

    yield make
    for c in made:
        c.cleanup()


def openssl(*args, data=None):
    proc = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def spki_sha256_of_key(key_pem_path):
    return hashlib.sha256(openssl("pkey", "-in", key_pem_path, "-pubout", "-outform",
                                  "DER")).hexdigest()


def spki_sha256_of_cert(cert_path):
    pub = openssl("x509", "-in", cert_path, "-pubkey", "-noout")
    return hashlib.sha256(openssl("pkey", "-pubin", "-outform", "DER", data=pub)).hexdigest()


def make_signer(directory, name):
    """An EC P-256 key and self-signed certificate, made by OpenSSL (an organisation's
    assertion key as a conductor sees it: a pinned certificate)."""
    key, cert = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", f"/CN={name}")
    return key, cert


def sign_assertion(directory, signer, claims, name):
    """An onboarding assertion (docs/protocol.md) made with `openssl cms -sign`: CMS
    SignedData over the JSON payload, embedded, no certificates, DER, base64."""
    key, cert = signer
    payload = os.path.join(directory, f"{name}.json")
    with open(payload, "w") as f:
        json.dump({"v": 1, "type": "onramp-onboarding-assertion", **claims}, f)
    der = openssl("cms", "-sign", "-binary", "-nodetach", "-nocerts", "-nosmimecap",
                  "-md", "sha256", "-signer", cert, "-inkey", key, "-in", payload,
                  "-outform", "DER")
    path = os.path.join(directory, f"{name}.assertion")
    with open(path, "w") as f:
        f.write(base64.b64encode(der).decode() + "\n")
    return path


def test_squatter_with_the_site_secret_cannot_take_a_pending_asset_id(lab, routers):
    """The attack: a second router of the site (it holds the site's staging secret) presents
    the genuine router's still-pending asset ID (its serial) with its own key. Without the
    fix it gets r1's certificate and configuration and the genuine router is then refused
    with duplicate-asset. Now it is refused (assertion-required / bad-assertion), nothing is
    bound, and the genuine router onboards through to running."""
    agent = lab.router(SERIAL, start=False)
    staging = types.SimpleNamespace(address=lab.staging.address,
                                     ca=os.path.join(lab.staging.state, "ca.pem"))
    site_psk = os.path.join(lab.dir, "staging-paris.psk")

    squatter = routers(asset_id=SERIAL).start(staging, site_psk)
    report = squatter.wait_report("connect", ok=False)
    assert "assertion-required" in report["reason"], report
    assert not os.path.exists(squatter.path("conductor-cert.pem"))
    record = lab.staging.router("r1")
    assert record["state"] == "pending", record
    assert not record.get("device_key"), record
    alarms = json.loads(lab.staging.ok("show", "alarms", "--json"))["alarms"]
    assert ("critical", "unproven-asset") in [(a["severity"], a["kind"]) for a in alarms]

    # The genuine router is not denied: it onboards, then migrates to production.
    agent.start()
    agent.wait_done("production-info", timeout=60)
    assert "onboarding assertion for device " + SERIAL + " accepted" in lab.staging.log()
    proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router", "r1",
                           "--wait")
    assert proc.returncode == 0, proc.stderr
    agent.wait_done("running")
    assert lab.staging.router("r1")["state"] == "migrated"
    # The squatter, still trying, never got anything.
    assert not os.path.exists(squatter.path("conductor-cert.pem"))
    assert not os.path.exists(squatter.path("peering.json"))
    squatter.proc.terminate()

    # Point 5: the assertion private key is nowhere in clear: not in any log, state file or
    # database of the lab (the cloud keeps it sealed), nor in the router's state.
    secrets = lab.assertion_key()
    assert len(secrets) == 3
    assert secrets[0] in lab.secrets() and secrets[2] in lab.secrets()
    agent.stop()
    for root, _, files in os.walk(lab.dir):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            for secret in secrets:
                assert secret not in data, (path, secret[:12])
    assert "PRIVATE KEY" not in lab.log("cloudd")


def test_every_wrong_assertion_is_refused(conductors, routers, tmp_path):
    """Expired, for another asset ID, for another key, for another conductor, signed by
    another key: each refused with bad-assertion and the reason; nothing is bound. Then the
    right one is accepted and the router onboards."""
    staging = conductors()
    staging.add_router("r1", "ASSET-0001")
    psk_file, _ = staging.psk("site")
    org = make_signer(str(tmp_path), "org-assertions")
    other = make_signer(str(tmp_path), "mallory")
    staging.ok("trust-cloud", "--cert", org[1])
    shown = staging.ok("trust-cloud", "show")
    assert "assertions required" in shown

    router = routers(asset_id="ASSET-0001")
    assert router.run_tool("current").returncode == 0  # makes the device key
    key_hash = spki_sha256_of_key(router.path("certkey.pem"))
    conductor = spki_sha256_of_cert(staging.ca)
    now = int(time.time())
    good = {"serial": "SN-1", "asset_id": "ASSET-0001", "key_sha256": key_hash,
            "conductor": conductor, "issued": now, "expires": now + 600}
    cases = [
        ("expired", org, {"issued": now - 700, "expires": now - 100}, "expired"),
        ("other-asset", org, {"asset_id": "ASSET-0002"}, "asset ID"),
        ("other-key", org, {"key_sha256": "ab" * 32}, "another device key"),
        ("other-conductor", org, {"conductor": "cd" * 32}, "another conductor"),
        ("bad-signature", other, {}, "signature"),
    ]
    for name, signer, change, words in cases:
        path = sign_assertion(str(tmp_path), signer, {**good, **change}, name)
        r = routers(asset_id="ASSET-0001", state_dir=router.dir)
        r.start(staging, psk_file, assertion_file=path)
        report = r.wait_report("connect", ok=False)
        assert "bad-assertion" in report["reason"] and words in report["reason"], (name, report)
        r.proc.terminate()
        r.proc.wait(timeout=20)
        assert staging.asset("ASSET-0001", "pending") is not None, name
    # No assertion at all.
    r = routers(asset_id="ASSET-0001", state_dir=router.dir).start(staging, psk_file)
    assert "assertion-required" in r.wait_report("connect", ok=False)["reason"]
    r.proc.terminate()
    r.proc.wait(timeout=20)

    path = sign_assertion(str(tmp_path), org, good, "good")
    r = routers(asset_id="ASSET-0001", state_dir=router.dir).start(staging, psk_file,
                                                                    assertion_file=path)
    r.wait_report("connect")
    r.wait_report("certificate")
    staging.wait_state("ASSET-0001", "configured")
    # Used once, the assertion is dropped by the router: the binding is the proof now.
    with open(r.path("conductor.json")) as f:
        assert "assertion" not in json.load(f)["staging"]


def test_production_refuses_a_squatter_whose_secret_is_not_the_routers_own(conductors,
                                                                         routers, tmp_path):
    """The production conductor gets the guarantee through the staging conductor's hand-over:
    staging gives a router its production secret (made for it by name) only on that router's
    own session. A router holding another router's production secret (its own) cannot claim
    r1's asset ID there; the holder of r1's own secret can."""
    production = conductors(role="production", name="production")
    production.add_router("r1", "ASSET-0001")
    production.add_router("r2", "ASSET-0002")
    r1_psk, _ = production.psk("r1")
    r2_psk, _ = production.psk("r2")
    org = make_signer(str(tmp_path), "org-assertions")
    production.ok("trust-cloud", "--cert", org[1])

    squatter = routers(asset_id="ASSET-0001").start(production, r2_psk)
    report = squatter.wait_report("connect", ok=False)
    assert "assertion-required" in report["reason"], report
    assert production.asset("ASSET-0001", "pending") is not None
    squatter.proc.terminate()

    genuine = routers(asset_id="ASSET-0001").start(production, r1_psk)
    genuine.wait_report("connect")
    # Bound to the genuine key: connected, or already further along (commands were queued).
    wait_until("ASSET-0001 bound on production", lambda: any(
        a["asset_id"] == "ASSET-0001" and a["state"] in
        ("connected", "certified", "configured", "running") for a in production.assets()))
    # The squatter's own asset ID with its own secret is fine.
    own = routers(asset_id="ASSET-0002").start(production, r2_psk)
    own.wait_report("connect")


def test_cloud_signs_assertions_for_the_asset_id_it_was_told(lab):
    """onrampctl cloud device set SERIAL --asset-id ID: the assertion names that asset ID;
    the assertion certificate is exported, never the key; bad input is refused."""
    lab.start_all()
    state = lab.provision(SERIAL)
    shown = lab.cloud_json("device", "show", SERIAL)
    assert shown["asset_id"] == SERIAL
    changed = lab.cloud_json("device", "set", SERIAL, "--asset-id", "PARIS-EDGE-7")
    assert changed["asset_id"] == "PARIS-EDGE-7"
    bad = lab.run(program("onrampctl"), "cloud", "--url", lab.cloud_url, "--ca",
                  lab.cloud_pki.ca, "--token-file", lab.cloud_token, "device", "set", SERIAL,
                  "--asset-id", "two words")
    assert bad.returncode == 2
    assert lab.cloud_json("device", "show", SERIAL)["asset_id"] == "PARIS-EDGE-7"
    cert = lab.cloud("assertion-cert", "export")
    assert cert.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE" not in cert
    # The same certificate every time (made once, kept).
    assert lab.cloud("assertion-cert", "export") == cert
    assert os.path.isdir(state)


def test_the_router_presents_the_asset_id_the_cloud_set(lab):
    """The whole flow with an asset ID that is not the serial: the cloud's device record
    names it, the assertion binds it, the agent presents it, both conductors know the router
    by it; nothing else configures it."""
    lab.start_squid()
    lab.start_all()
    state = lab.provision(SERIAL)
    lab.cloud("device", "set", SERIAL, "--asset-id", "PARIS-EDGE-7")
    lab.trust_cloud()
    lab.cloud("org", "add", "acme")
    lab.cloud("site", "add", "acme", "paris")
    staging_psk = lab.staging.psk("paris")
    lab.staging.add_router("r1", "PARIS-EDGE-7")
    lab.production.add_router("r1", "PARIS-EDGE-7")
    lab.give_production_info("r1")
    lab.cloud("site", "set", "acme", "paris", "--conductor", "127.0.0.1", "--port",
              str(lab.staging.port), "--psk-file", staging_psk, "--ca-file",
              lab.staging.ca_export())
    lab.claim(SERIAL)
    agent = Agent(lab, state).start()
    agent.wait_done("production-info", timeout=60)
    assert "onboarding assertion for device " + SERIAL + " accepted" in lab.staging.log()
    assert lab.staging.router("r1")["state"] in ("configured", "certified")
    proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router", "r1",
                           "--wait")
    assert proc.returncode == 0, proc.stderr
    agent.wait_done("running")
    wait_until("production to show PARIS-EDGE-7 running",
               lambda: lab.production.asset_state("PARIS-EDGE-7") == "running")


@pytest.fixture
def cloud_env():
    from cloud_env import CloudEnv, remove, tempdir
    directory = tempdir()
    env = None
    try:
        env = CloudEnv(directory)
        yield env
    finally:
        if env is not None:
            env.stop()
        remove(directory)


def test_the_cloud_answers_a_certificate_key_with_an_assertion_openssl_verifies(cloud_env,
                                                                               tmp_path):
    """POST /v1/device/onboarding with the device's certificate key (a real device exchange:
    phone home, mutual OCRA through squid): the assertion verifies with `openssl cms
    -verify` against the exported certificate and says what docs/protocol.md says; a
    cert_key that is not a public key is refused (400 bad-cert-key) and gets nothing."""
    from cloud_env import by_step
    from test_cloud import cloud_request
    env = cloud_env
    env.site("acme", "paris", "paris-psk-0123456789")
    dev = env.device("SSR-ASSERT-1")
    dev.claim("acme", "paris")
    key = str(tmp_path / "certkey.pem")
    pub = str(tmp_path / "certkey.pub.pem")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    openssl("pkey", "-in", key, "-pubout", "-out", pub)
    steps = dev.run("onboard", "--cert-key", pub)
    assert all(s["ok"] for s in steps), steps
    ob = by_step(steps, "onboarding")[0]
    assert ob["asset_id"] == dev.serial and ob["assertion"]

    cert = str(tmp_path / "assertion-cert.pem")
    with open(cert, "w") as f:
        f.write(env.ctl_ok("assertion-cert", "export"))
    der = str(tmp_path / "assertion.der")
    with open(der, "wb") as f:
        f.write(base64.b64decode(ob["assertion"]))
    payload = json.loads(openssl("cms", "-verify", "-inform", "DER", "-in", der, "-binary",
                                 "-certfile", cert, "-nointern", "-noverify"))
    assert payload["type"] == "onramp-onboarding-assertion" and payload["v"] == 1
    assert payload["serial"] == dev.serial and payload["asset_id"] == dev.serial
    assert payload["key_sha256"] == spki_sha256_of_key(key)
    assert payload["conductor"] == spki_sha256_of_cert(env.cloud_pki.ca)
    assert payload["expires"] - payload["issued"] == 3600
    assert payload["expires"] == ob["assertion_expires"]
    # Another signer's certificate does not verify it.
    other = make_signer(str(tmp_path), "other")
    proc = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", der, "-binary",
                           "-certfile", other[1], "-nointern", "-noverify"], capture_output=True)
    assert proc.returncode != 0

    token = by_step(steps, "auth-finish")[0]["token"]
    status, _, doc = cloud_request(env, "POST", "/v1/device/onboarding",
                                   {"cert_key": "not a key"}, token)
    assert status == 400 and doc["error"]["code"] == "bad-cert-key", doc
    assert "psk" not in json.dumps(doc)
    status, _, doc = cloud_request(env, "POST", "/v1/device/onboarding", {}, token)
    assert status == 400 and doc["error"]["code"] == "bad-request", doc


def test_trust_cloud_input_and_optional_mode(conductors, routers, tmp_path):
    """trust-cloud refuses what is not one certificate (exit 2, nothing set); --optional lets
    a first claim without an assertion through but still refuses a wrong one."""
    staging = conductors()
    staging.add_router("r1", "ASSET-0001")
    staging.add_router("r2", "ASSET-0002")
    psk_file, _ = staging.psk("site")
    junk = str(tmp_path / "junk.pem")
    with open(junk, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    for bad in (["trust-cloud"], ["trust-cloud", "--cert", junk],
                ["trust-cloud", "--cert", str(tmp_path / "missing.pem")]):
        proc = staging.ctl(*bad)
        assert proc.returncode == 2 and proc.stderr.startswith("onrampctl: "), (bad, proc)
    assert "no cloud assertion certificate is trusted" in staging.ok("trust-cloud", "show")

    org = make_signer(str(tmp_path), "org-assertions")
    other = make_signer(str(tmp_path), "mallory")
    staging.ok("trust-cloud", "--cert", org[1], "--optional")
    assert "assertions optional" in staging.ok("trust-cloud", "show")
    # Without an assertion: let through (optional).
    first = routers(asset_id="ASSET-0001").start(staging, psk_file)
    first.wait_report("connect")
    # With a wrong one: refused all the same.
    second = routers(asset_id="ASSET-0002")
    assert second.run_tool("current").returncode == 0
    now = int(time.time())
    path = sign_assertion(str(tmp_path), other, {
        "serial": "SN-2", "asset_id": "ASSET-0002",
        "key_sha256": spki_sha256_of_key(second.path("certkey.pem")),
        "conductor": spki_sha256_of_cert(staging.ca), "issued": now, "expires": now + 600},
        "wrong-signer")
    second.start(staging, psk_file, assertion_file=path)
    report = second.wait_report("connect", ok=False)
    assert "bad-assertion" in report["reason"] and "signature" in report["reason"]
    assert staging.asset("ASSET-0002", "pending") is not None


def test_cloud_device_set_refuses_unknown_devices(lab):
    lab.start_all()
    proc = lab.run(program("onrampctl"), "cloud", "--url", lab.cloud_url, "--ca",
                   lab.cloud_pki.ca, "--token-file", lab.cloud_token, "device", "set",
                   "NO-SUCH-SERIAL", "--asset-id", "X-1")
    assert proc.returncode == 2 and "no device" in proc.stderr, proc.stderr
    proc = lab.run(program("onrampctl"), "cloud", "--url", lab.cloud_url, "--ca",
                   lab.cloud_pki.ca, "--token-file", lab.cloud_token, "device", "set",
                   "NO-SUCH-SERIAL")
    assert proc.returncode == 2 and "--asset-id" in proc.stderr, proc.stderr


def test_an_assertion_that_expired_unused_is_replaced(lab):
    """The staging conductor is down for longer than an assertion lives (5 s here): the
    router does not keep presenting the expired one; it asks the cloud for a new one and
    onboards once the conductor is back."""
    lab.cloud_extra = "assertion-lifetime = 5\n"
    agent = lab.router(SERIAL, start=False)
    lab.staging.stop()
    agent.start()
    agent.wait_done("onboarding-info", timeout=60)
    def stored():
        with open(os.path.join(agent.state, "conductor.json")) as f:
            return json.load(f)["staging"].get("assertion")

    first = wait_until("the assertion kept for staging", stored)
    wait_until("a new assertion from the cloud", lambda: stored() not in (None, first),
               timeout=60)
    assert "asking for a new one" in agent.log()
    lab.staging.start()
    agent.wait_done("configuration", timeout=90)
    log = lab.staging.log()
    assert "onboarding assertion for device " + SERIAL + " accepted" in log
    assert "bad-assertion" not in log and "expired" not in log
    with open(os.path.join(agent.state, "conductor.json")) as f:
        assert "assertion" not in json.load(f)["staging"]  # used, then dropped
