"""Issue 12 point 3: claims are no longer first come, first served. Any cloud
token at the redirector could claim a serial nobody had claimed yet, and the
real owner's claim then failed. Now the factory registers the hash of each
device's claim secret with the redirector (onrampctl redirect device register
RECORD), the secret travels only inside the record's CMS envelope to the
owner's inventory key, and a claim needs the secret. Against the real
redirectd and cloudd; the first test failed before the fix (the rogue claim
got 201 and the owner's 409 claimed-elsewhere). Point 5: the claim secret is
in no log, database or state file in clear.
"""
import base64
import hashlib
import http.client
import json
import os
import secrets
import ssl

import pytest

from cloud_env import CloudEnv, by_step, remove, tempdir
from conftest import run


@pytest.fixture(scope="module")
def env():
    directory = tempdir()
    # Debug logging: the claim secret must not reach the logs at any level.
    e = CloudEnv(directory, lockout="lockout_threshold = 3\nlog_level = debug\n",
                 redirect_extra="log_level = debug\n")
    try:
        e.ensure_site("acme", "paris")
        yield e
    finally:
        e.stop()
        remove(directory)


def redirector(env, method, path, body=None, token=None):
    """One request to the redirector: (status, headers, JSON)."""
    host, port = env.redirector.url[len("https://"):].split(":")
    conn = http.client.HTTPSConnection(
        host, int(port), context=ssl.create_default_context(cafile=env.redirect_pki.ca),
        timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers=headers)
    resp = conn.getresponse()
    doc = json.loads(resp.read() or b"null")
    conn.close()
    return resp.status, dict(resp.getheaders()), doc


def new_token(env, name, role):
    proc = env.redirect("token", "add", name, "--role", role)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def claim_secret_of(env, dev):
    """The claim secret, as only the owner's inventory can read it from the record."""
    proc = run("trust-tool", "record-decrypt", "--record", dev.record, "--key",
               os.path.join(env.cloud.state, "inventory.key"))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[3]


def test_another_cloud_cannot_claim_a_serial_first(env):
    """The attack: a rogue cloud's token claims the serial before its owner does."""
    dev = env.device("VICTIM-1")
    rogue = new_token(env, "rogue-cloud", "cloud")
    with open(env.cloud_pki.ca) as f:
        ca = f.read()
    claim = {"cloud_url": "https://127.0.0.1:9", "cloud_ca_pem": ca}
    # Without a proof, and with a guessed one: refused, and nothing is written.
    status, _, doc = redirector(env, "PUT", "/v1/admin/claims/VICTIM-1", claim, rogue)
    assert status in (400, 403), doc
    status, _, doc = redirector(env, "PUT", "/v1/admin/claims/VICTIM-1",
                                dict(claim, claim_secret=secrets.token_hex(32)), rogue)
    assert status == 403 and doc["error"]["code"] == "claim-refused", doc
    assert "rogue" not in env.redirect("claim", "list").stdout
    # The owner's claim goes through, and the device is sent to the owner's cloud.
    dev.claim("acme", "paris")
    ph = by_step(dev.run("phone-home"), "phone-home")[0]
    assert ph["ok"] and ph["cloud_url"] == env.cloud.url, ph
    # The rogue cannot take it over afterwards either.
    status, _, doc = redirector(env, "PUT", "/v1/admin/claims/VICTIM-1",
                                dict(claim, claim_secret=secrets.token_hex(32)), rogue)
    assert status == 403 and doc["error"]["code"] == "claim-refused", doc
    assert "claim of serial VICTIM-1 by 'rogue-cloud' refused" in env.redirector.log_text()


def test_a_serial_the_factory_never_registered_cannot_be_claimed(env):
    dev = env.device("UNREGISTERED-1")
    secret = claim_secret_of(env, dev)
    admin = open(env.redirector.token_file).read().strip()
    assert redirector(env, "DELETE", "/v1/admin/devices/UNREGISTERED-1",
                      token=admin)[0] == 200
    proc = env.ctl("claim", "--serial", dev.serial, "--org", "acme", "--site", "paris")
    assert proc.returncode == 1 and "claim-refused" in proc.stderr
    assert env.ctl_json("device", "show", dev.serial)["organization"] is None
    # Registered again (the factory's record), the same secret proves the claim.
    assert env.redirect("device", "register", dev.record).returncode == 0
    cloud = open(env.cloud_token_file).read().strip()
    with open(env.cloud_pki.ca) as f:
        ca = f.read()
    status, _, doc = redirector(env, "PUT", "/v1/admin/claims/UNREGISTERED-1",
                                {"cloud_url": env.cloud.url, "cloud_ca_pem": ca,
                                 "claim_secret": secret}, cloud)
    assert status == 201, doc


def test_phone_home_says_the_same_for_unknown_and_unclaimed_serials(env):
    """No probing which serials exist: a registered, unclaimed serial and one nobody ever
    made get the same answer, bar the serial named in the message."""
    env.device("REGISTERED-UNCLAIMED")

    def phone_home(serial):
        status, headers, doc = redirector(env, "POST", "/v1/phone-home",
                                          {"serial": serial, "nonce": secrets.token_hex(16)})
        doc["error"]["message"] = doc["error"]["message"].replace(serial, "S")
        return status, headers.get("Retry-After"), doc

    known = phone_home("REGISTERED-UNCLAIMED")
    assert known == phone_home("NEVER-MADE-9")
    assert known[0] == 404 and known[2]["error"]["code"] == "not-claimed"


def test_registration_is_for_the_factory_and_first_hash_wins(env):
    dev = env.device("REG-1")
    with open(dev.record) as f:
        record = json.load(f)
    factory = new_token(env, "factory-line-1", "factory")
    cloud = open(env.cloud_token_file).read().strip()
    hash_body = {"claim_hash": record["claim_hash"]}
    # The same hash again is fine; another hash for a registered serial is not.
    assert redirector(env, "PUT", "/v1/admin/devices/REG-1", hash_body, factory)[0] == 200
    status, _, doc = redirector(env, "PUT", "/v1/admin/devices/REG-1",
                                {"claim_hash": secrets.token_hex(32)}, factory)
    assert status == 409 and doc["error"]["code"] == "registered", doc
    # A cloud token cannot register (nor replace) a device's hash ...
    status, _, doc = redirector(env, "PUT", "/v1/admin/devices/NEW-1",
                                {"claim_hash": secrets.token_hex(32)}, cloud)
    assert status == 403 and doc["error"]["code"] == "forbidden", doc
    # ... and a factory token can neither claim nor read claims nor delete registrations.
    for method, path in (("GET", "/v1/admin/claims"), ("PUT", "/v1/admin/claims/REG-1"),
                         ("DELETE", "/v1/admin/devices/REG-1")):
        status, _, doc = redirector(env, method, path, {}, factory)
        assert status == 403, (method, path, doc)
    # Bad input changes nothing.
    for bad in ({"claim_hash": "ABC"}, {"claim_hash": "A" * 64}, {}):
        assert redirector(env, "PUT", "/v1/admin/devices/BAD-1", bad, factory)[0] == 400
    assert redirector(env, "GET", "/v1/admin/devices/BAD-1", token=factory)[0] == 404
    shown = json.loads(env.redirect("device", "show", "REG-1", "--json").stdout)
    assert shown["claim_hash"] == record["claim_hash"] and "claim_secret" not in shown


def test_claim_secrets_are_in_no_log_database_or_state_in_clear(env):
    """Point 5: the claim secret exists in clear only in memory; the redirector keeps its
    hash, the cloud keeps it sealed under its master key."""
    dev = env.device("SECRET-1")
    dev.claim("acme", "paris")
    assert all(s["ok"] for s in dev.run("onboard"))
    secret = claim_secret_of(env, dev)
    with open(dev.record) as f:
        record = json.load(f)
    assert record["claim_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    forms = [secret.encode(), secret.upper().encode(), bytes.fromhex(secret),
             base64.b64encode(secret.encode()), base64.b64encode(bytes.fromhex(secret))]
    places = [env.redirector.log, env.cloud.log, dev.record]
    assert "debug" in env.cloud.log_text()  # the logs were written at debug level
    for root in (env.redirector.state, env.cloud.state, dev.state):
        for parent, _, files in os.walk(root):
            places += [os.path.join(parent, name) for name in files]
    assert any(p.endswith(".db") for p in places)
    for path in places:
        with open(path, "rb") as f:
            data = f.read()
        for form in forms:
            assert form not in data, f"claim secret in clear in {path}"


def test_claim_by_hand_needs_the_claim_secret(env):
    """onrampctl redirect claim set: the claim secret from a file; a wrong one is refused."""
    dev = env.device("BYHAND-1")
    wrong, right = (os.path.join(env.dir, f"byhand-{n}.secret") for n in ("wrong", "right"))
    with open(wrong, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    with open(right, "w") as f:
        f.write(claim_secret_of(env, dev) + "\n")
    args = ["claim", "set", dev.serial, "--cloud-url", env.cloud.url, "--cloud-ca",
            env.cloud_pki.ca, "--claim-secret-file"]
    proc = env.redirect(*args, wrong)
    assert proc.returncode == 3 and "claim-refused" in proc.stderr, proc.stderr
    proc = env.redirect(*args[:-1])
    assert proc.returncode == 2 and "--claim-secret-file" in proc.stderr
    proc = env.redirect(*args, env.cloud_pki.ca)  # not a claim secret: nothing is sent
    assert proc.returncode == 2 and "claim secret" in proc.stderr
    proc = env.redirect(*args, right)
    assert proc.returncode == 0, proc.stderr
    assert dev.serial in env.redirect("claim", "list").stdout


def test_register_refuses_bad_records(env, tmp_path):
    """onrampctl redirect device register: a record that is not one, or of version 1
    (no claim secret), is refused before anything is sent."""
    dev = env.device("BADREC-1")
    with open(dev.record) as f:
        record = json.load(f)
    old = dict(record, version=1)
    del old["claim_secret_cms"], old["claim_hash"]
    (tmp_path / "v1.json").write_text(json.dumps(old))
    (tmp_path / "junk.json").write_text("{not json")
    for path, words in ((tmp_path / "v1.json", "version 1"), (tmp_path / "junk.json", "JSON"),
                        (tmp_path / "missing.json", "missing.json")):
        proc = env.redirect("device", "register", str(path))
        assert proc.returncode == 2 and words in proc.stderr, (path, proc.stderr)
