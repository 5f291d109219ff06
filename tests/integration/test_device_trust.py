"""Device trust against a real swtpm: OCRA computed in the TPM, factory
provisioning and its record, the vault and the certificate key across TPM
restarts and on another TPM, secrets never in clear, and the state file under
kill -9. trust-tool (tests/tools) drives the library; onrampctl the factory."""
import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import ROOT, program, run

VECTORS = os.path.join(ROOT, "tests", "vectors", "ocra-rfc6287-appendix-c.tsv")
SUITE = "OCRA-1:HOTP-SHA256-0:QA10-S064"  # the default: the whole HMAC, no truncation
SESSION = "00" * 31 + "c0ffee" + "11" * 30  # 64 bytes, as the suite's S064 wants


def tool(*args, **kw):
    return run("trust-tool", *args, **kw)


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], capture_output=True, input=input, check=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """The inventory's RSA key pair (and another one), as PEM files."""
    d = tmp_path_factory.mktemp("inventory")
    out = {}
    for name in ("inventory", "other"):
        priv = d / f"{name}.pem"
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", str(priv))
        openssl("pkey", "-in", str(priv), "-pubout", "-out", str(d / f"{name}.pub"))
        out[name] = str(priv)
        out[name + "_pub"] = str(d / f"{name}.pub")
    openssl("req", "-x509", "-new", "-key", out["inventory"], "-subj", "/CN=inventory",
            "-days", "1", "-out", str(d / "inventory.crt"))
    out["inventory_crt"] = str(d / "inventory.crt")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(d / "ec.pem"))
    openssl("pkey", "-in", str(d / "ec.pem"), "-pubout", "-out", str(d / "ec.pub"))
    out["ec_pub"] = str(d / "ec.pub")
    return out


def no_transient_handles(tpm):
    """Everything onramp loaded into the TPM was flushed again."""
    proc = subprocess.run(["tpm2_getcap", "-T", tpm.tcti, "handles-transient"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", proc.stdout


def provision(keys, state, out, *target, extra=()):
    proc = run("onrampctl", "factory", "init-device", "--serial", "SN-0042", "--model", "SSR120",
               "--state-dir", str(state), *target, "--cloud-key", keys["inventory_pub"],
               "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return proc


def decrypt(record, key):
    """The OCRA key (hex) of a record, decrypted with the given inventory key."""
    return decrypt_both(record, key)[0]


def decrypt_both(record, key):
    """The OCRA key (hex) and the claim secret of a record, with the given inventory key."""
    proc = tool("record-decrypt", "--record", str(record), "--key", key)
    assert proc.returncode == 0, proc.stderr
    serial, suite, key_hex, claim_secret = proc.stdout.split()
    assert (serial, suite) == ("SN-0042", SUITE)
    return key_hex, claim_secret


def ocra_in_device(state, *target, question="CHALLENGE1"):
    proc = tool("ocra", "--state-dir", str(state), *target, "--question", question,
                "--session", SESSION)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def ocra_software(key_hex, question="CHALLENGE1"):
    proc = run("onrampctl", "ocra", "--suite", SUITE, "--key", key_hex, "--question", question,
               "--session", SESSION, check=True)
    return proc.stdout.strip()


def test_tpm_ocra_equals_software_on_every_rfc_vector(swtpm):
    proc = tool("ocra-vectors", "--tcti", swtpm.tcti, "--vectors", VECTORS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "70 vectors, 0 differ"
    no_transient_handles(swtpm)


def test_factory_record_identity_and_blobs_survive_a_tpm_restart(swtpm, keys, tmp_path):
    state, record = tmp_path / "device", tmp_path / "record.json"
    target = ("--tcti", swtpm.tcti)
    proc = provision(keys, state, record, *target)
    assert "created in the TPM" in proc.stdout
    doc = json.loads(record.read_text())
    assert set(doc) == {"version", "serial", "model", "ocra_suite", "ocra_key_cms",
                        "claim_secret_cms", "claim_hash", "created"}
    assert doc["version"] == 2 and doc["serial"] == "SN-0042" and doc["ocra_suite"] == SUITE
    key_hex, claim_secret = decrypt_both(record, keys["inventory"])
    assert len(key_hex) == 64
    # The claim secret is CMS to the inventory key too; the record holds only its hash in clear.
    assert doc["claim_hash"] == hashlib.sha256(claim_secret.encode()).hexdigest()
    plain = openssl("cms", "-decrypt", "-inform", "DER", "-inkey", keys["inventory"],
                    "-binary", input=base64.b64decode(doc["claim_secret_cms"])).stdout
    assert plain.decode() == claim_secret
    assert f"claim hash {doc['claim_hash']}" in proc.stdout
    # The record is standard CMS: openssl itself decrypts it.
    der = base64.b64decode(doc["ocra_key_cms"])
    plain = openssl("cms", "-decrypt", "-inform", "DER", "-inkey", keys["inventory"],
                    "-binary", input=der).stdout
    assert plain.hex() == key_hex
    assert json.loads((state / "device.json").read_text())["serial"] == "SN-0042"

    before = ocra_in_device(state, *target)
    assert before == ocra_software(key_hex)
    assert tool("vault-put", "--state-dir", str(state), *target, "--name", "conductor-psk",
                input="s3cret-psk").returncode == 0
    csr1 = tool("certkey-pub", "--state-dir", str(state), *target).stdout
    no_transient_handles(swtpm)

    swtpm.restart()
    target = ("--tcti", swtpm.tcti)
    assert ocra_in_device(state, *target) == before
    assert ocra_in_device(state, *target, question="OTHER00001") == \
        ocra_software(key_hex, question="OTHER00001")
    got = tool("vault-get", "--state-dir", str(state), *target, "--name", "conductor-psk")
    assert got.returncode == 0 and got.stdout == "s3cret-psk"
    assert tool("certkey-pub", "--state-dir", str(state), *target).stdout == csr1
    no_transient_handles(swtpm)


def test_another_tpm_cannot_unseal_or_use_the_keys(swtpm_factory, keys, tmp_path):
    first, second = swtpm_factory("first"), swtpm_factory("second")
    state = tmp_path / "device"
    provision(keys, state, tmp_path / "r.json", "--tcti", first.tcti)
    assert tool("vault-put", "--state-dir", str(state), "--tcti", first.tcti, "--name", "psk",
                input="x" * 40).returncode == 0
    assert tool("csr", "--state-dir", str(state), "--tcti", first.tcti,
                "--cn", "SN-0042").returncode == 0
    for args in (("vault-get", "--name", "psk"), ("ocra", "--question", "CHALLENGE1",
                                                  "--session", SESSION),
                 ("csr", "--cn", "SN-0042")):
        proc = tool(args[0], "--state-dir", str(state), "--tcti", second.tcti, *args[1:])
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert "made by another TPM" in proc.stderr, proc.stderr
    no_transient_handles(second)


def test_no_secret_in_clear_in_state_record_or_logs(swtpm, keys, tmp_path):
    state, record = tmp_path / "device", tmp_path / "record.json"
    target = ("--tcti", swtpm.tcti)
    logs = [provision(keys, state, record, *target)]
    key_hex, claim_secret = decrypt_both(record, keys["inventory"])
    key = bytes.fromhex(key_hex)
    psk = os.urandom(24).hex()  # the vault secret, as text
    logs.append(tool("vault-put", "--state-dir", str(state), *target, "--name", "psk",
                     input=psk))
    logs.append(tool("csr", "--state-dir", str(state), *target, "--cn", "SN-0042"))
    response = ocra_in_device(state, *target)
    logs.append(tool("ocra", "--state-dir", str(state), *target, "--question", "CHALLENGE1",
                     "--session", SESSION))
    assert logs[-1].stdout.strip() == response

    forms = {
        "OCRA key": [key, key.hex().encode(), key.hex().upper().encode(),
                     base64.b64encode(key)],
        "vault secret": [psk.encode(), bytes.fromhex(psk), base64.b64encode(psk.encode())],
        "claim secret": [claim_secret.encode(), bytes.fromhex(claim_secret),
                         claim_secret.upper().encode(), base64.b64encode(claim_secret.encode())],
    }
    blobs = {str(p): p.read_bytes() for p in state.rglob("*") if p.is_file()}
    blobs[str(record)] = record.read_bytes()
    for i, proc in enumerate(logs):
        blobs[f"output {i}"] = proc.stdout.encode() + proc.stderr.encode()
    assert len(blobs) >= 8
    for where, data in blobs.items():
        for what, patterns in forms.items():
            for p in patterns:
                assert p not in data, f"{what} found in clear in {where}"
    for p in state.rglob("*"):
        if p.is_file():
            assert oct(p.stat().st_mode & 0o777) == "0o600", p
            assert b"PRIVATE KEY" not in p.read_bytes(), p


def test_record_decrypts_only_with_the_inventory_key(swtpm, keys, tmp_path):
    record = tmp_path / "record.json"
    provision(keys, tmp_path / "device", record, "--tcti", swtpm.tcti)
    decrypt(record, keys["inventory"])
    proc = tool("record-decrypt", "--record", str(record), "--key", keys["other"])
    assert proc.returncode == 1
    assert "encrypted to another inventory key" in proc.stderr
    assert proc.stdout == ""


def test_inventory_certificate_is_accepted(swtpm, keys, tmp_path):
    record = tmp_path / "record.json"
    proc = run("onrampctl", "factory", "init-device", "--serial", "SN-0042", "--model", "SSR120",
               "--state-dir", str(tmp_path / "device"), "--tcti", swtpm.tcti,
               "--cloud-key", keys["inventory_crt"], "--out", str(record))
    assert proc.returncode == 0, proc.stderr
    decrypt(record, keys["inventory"])


def test_factory_bad_input_exits_2_and_writes_nothing(swtpm, keys, tmp_path):
    state, out = tmp_path / "device", tmp_path / "record.json"
    good = {"--serial": "SN-0042", "--model": "SSR120", "--state-dir": str(state),
            "--tcti": swtpm.tcti, "--cloud-key": keys["inventory_pub"], "--out": str(out)}

    def args(**change):
        opts = dict(good)
        for k, v in change.items():
            k = "--" + k.replace("_", "-")
            if v is None:
                opts.pop(k)
            else:
                opts[k] = v
        flat = ["factory", "init-device"]
        for k, v in opts.items():
            flat += [k] if v is True else [k, v]
        return flat

    cases = [
        (args(serial=None), "required"),
        (args(serial="bad serial"), "serial"),
        (args(serial="x" * 65), "serial"),
        (args(model="bad\nmodel"), "model"),
        (args(suite="OCRA-1:HOTP-MD5-8:QA10"), "--suite"),
        (args(software=True), "exactly one"),
        (args(tcti=None), "exactly one"),
        (args(cloud_key=str(tmp_path / "missing.pem")), "cannot open"),
        (args(cloud_key=keys["inventory"]), "private key"),
        (args(cloud_key=keys["ec_pub"]), "RSA"),
        (args(cloud_key=VECTORS), "neither"),
        (args(out=str(tmp_path / "no-such-dir" / "r.json")), "directory does not exist"),
        (args(state_dir=VECTORS), "not a directory"),
        (args(tcti="bogus:x"), "not one of"),
        (["factory", "wipe-device"], "init-device"),
        (args() + ["--bogus"], "unknown"),
        (args() + ["extra"], "unexpected argument"),
    ]
    for argv, words in cases:
        proc = run("onrampctl", *argv)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert proc.stderr.startswith("onrampctl: "), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert words in proc.stderr, (words, proc.stderr)
        assert not out.exists() and not state.exists(), argv

    # A provisioned device (or an existing record) is refused without --force.
    provision(keys, state, out, "--tcti", swtpm.tcti)
    first_key = decrypt(out, keys["inventory"])
    before = sorted((p.name, p.read_bytes()) for p in state.iterdir())
    for target in (str(out), str(tmp_path / "new.json")):
        proc = run("onrampctl", *args(out=target))
        assert proc.returncode == 2
        assert "--force" in proc.stderr
        assert sorted((p.name, p.read_bytes()) for p in state.iterdir()) == before
    assert not (tmp_path / "new.json").exists()
    # --force replaces the identity before the record is written: an --out that
    # cannot take the record is bad input too, found before anything changes.
    (tmp_path / "a-directory").mkdir()
    proc = run("onrampctl", *args(force=True, out=str(tmp_path / "a-directory")))
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr
    assert sorted((p.name, p.read_bytes()) for p in state.iterdir()) == before
    proc = run("onrampctl", *args(force=True))
    assert proc.returncode == 0, proc.stderr
    assert decrypt(out, keys["inventory"]) != first_key
    no_transient_handles(swtpm)


def test_factory_tpm_unreachable_is_a_runtime_failure(keys, tmp_path):
    proc = run("onrampctl", "factory", "init-device", "--serial", "S", "--model", "M",
               "--state-dir", str(tmp_path / "d"), "--tcti", "swtpm:host=127.0.0.1,port=1",
               "--cloud-key", keys["inventory_pub"], "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 1
    assert "cannot reach the TPM" in proc.stderr
    assert not (tmp_path / "r.json").exists()
    assert not (tmp_path / "d" / "identity.json").exists()


def test_software_identity_when_asked_warns_and_works(keys, tmp_path):
    state, record = tmp_path / "device", tmp_path / "record.json"
    proc = provision(keys, state, record, "--software")
    assert "warning: software identity" in proc.stderr
    key_hex = decrypt(record, keys["inventory"])
    got = tool("ocra", "--state-dir", str(state), "--software", "--question", "CHALLENGE1",
               "--session", SESSION)
    assert got.returncode == 0
    assert got.stdout.strip() == ocra_software(key_hex)
    assert "software identity" in got.stderr  # the warning at open
    assert oct((state / "identity.json").stat().st_mode & 0o777) == "0o600"


def test_tpm_vault_refuses_tampered_and_truncated_entries(swtpm, tmp_path):
    state = tmp_path / "device"
    target = ("--state-dir", str(state), "--tcti", swtpm.tcti)

    def put(name):
        assert tool("vault-put", *target, "--name", name, input="value-" + name).returncode == 0
        return state / "vault" / f"{name}.secret"

    def refused(name, words):
        proc = tool("vault-get", *target, "--name", name)
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert words in proc.stderr, proc.stderr

    path = put("data")
    doc = json.loads(path.read_text())
    raw = bytearray(base64.b64decode(doc["data"]))
    raw[0] ^= 1
    doc["data"] = base64.b64encode(bytes(raw)).decode()
    path.write_text(json.dumps(doc))
    refused("data", "fails its integrity check")

    path = put("blob")
    doc = json.loads(path.read_text())
    blob = bytearray(base64.b64decode(doc["sealed_key"]))
    blob[-5] ^= 0x40
    doc["sealed_key"] = base64.b64encode(bytes(blob)).decode()
    path.write_text(json.dumps(doc))
    refused("blob", "refuses the key blob")

    path = put("cut")
    path.write_bytes(path.read_bytes()[:100])
    refused("cut", "damaged")
    refused("../etc/passwd", "vault name")
    no_transient_handles(swtpm)
    assert tool("vault-get", *target, "--name", "cut").returncode == 1


def test_csr_signed_in_the_tpm_verifies(swtpm, tmp_path):
    state = tmp_path / "device"
    target = ("--state-dir", str(state), "--tcti", swtpm.tcti)
    proc = tool("csr", *target, "--cn", "SN-0042", "--uri", "urn:onramp:serial:SN-0042",
                "--uri", "https://conductor.invalid/router/SN-0042")
    assert proc.returncode == 0, proc.stderr
    csr = tmp_path / "r.csr"
    csr.write_text(proc.stdout)
    check = subprocess.run(["openssl", "req", "-verify", "-in", str(csr), "-noout", "-text"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "verify OK" in check.stdout + check.stderr
    assert "CN = SN-0042" in check.stdout
    assert "URI:urn:onramp:serial:SN-0042" in check.stdout
    assert "ecdsa-with-SHA256" in check.stdout and "prime256v1" in check.stdout
    # Its key is the one in the TPM: the same public key, and only a TPM blob on disk.
    pub = subprocess.run(["openssl", "req", "-in", str(csr), "-pubkey", "-noout"],
                         capture_output=True, text=True, check=True).stdout
    assert pub == tool("certkey-pub", *target).stdout
    saved = json.loads((state / "certkey.json").read_text())
    assert saved["kind"] == "tpm" and not (state / "certkey.pem").exists()
    # Each CSR is a fresh signature by the same key.
    again = tool("csr", *target, "--cn", "SN-0042").stdout
    assert again != proc.stdout
    no_transient_handles(swtpm)


def test_kill_9_during_state_writes_never_leaves_an_unreadable_state(tmp_path):
    path = str(tmp_path / "state.json")
    rng = random.Random(1234)
    last = -1
    for _ in range(15):
        proc = subprocess.Popen([program("trust-tool"), "state-loop", "--path", path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "saving"
            time.sleep(rng.uniform(0, 0.05))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        load = tool("state-load", "--path", path)
        assert load.returncode == 0, load.stderr
        state = json.loads(load.stdout)
        assert state["nested"]["again"] == state["counter"]
        assert len(state["pad"]) == state["counter"] % 4000
        last = state["counter"]
    assert last >= 0
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "state.json"]
    assert leftovers == [], leftovers


class Recorder:
    """A TCP relay in front of a swtpm (its command and control ports) that
    keeps every byte crossing it: the TPM 'bus' of these tests."""

    def __init__(self, tpm):
        import socket
        import threading
        from conftest import free_port_pair
        self.captured = bytearray()
        self.lock = threading.Lock()
        self.port = free_port_pair()
        self.listeners = []
        for offset in (0, 1):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", self.port + offset))
            s.listen(4)
            self.listeners.append(s)
            threading.Thread(target=self.accept, args=(s, tpm.port + offset),
                             daemon=True).start()

    @property
    def tcti(self):
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def accept(self, listener, target):
        import socket
        import threading
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", target))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    def pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    self.captured += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def close(self):
        for s in self.listeners:
            s.close()


def test_secrets_cross_the_tpm_bus_encrypted(swtpm, keys, tmp_path):
    state, record = tmp_path / "device", tmp_path / "record.json"
    bus = Recorder(swtpm)
    try:
        provision(keys, state, record, "--tcti", bus.tcti)
        psk = os.urandom(16).hex()
        assert tool("vault-put", "--state-dir", str(state), "--tcti", bus.tcti, "--name", "psk",
                    input=psk).returncode == 0
        got = tool("vault-get", "--state-dir", str(state), "--tcti", bus.tcti, "--name", "psk")
        assert got.stdout == psk
        ocra_in_device(state, "--tcti", bus.tcti)
    finally:
        bus.close()
    key = bytes.fromhex(decrypt(record, keys["inventory"]))
    captured = bytes(bus.captured)
    assert len(captured) > 1000  # the relay did see the traffic
    # The OCRA key went from the TPM's generator into an HMAC object, encrypted both ways.
    assert key not in captured and key[:16] not in captured and key[16:] not in captured


def test_handles_left_by_a_killed_client_are_flushed(swtpm):
    """swtpm has no resource manager: what a kill -9 leaves loaded would fill its three slots."""
    rng = random.Random(99)
    for _ in range(6):
        proc = subprocess.Popen([program("trust-tool"), "ocra-vectors", "--tcti", swtpm.tcti,
                                 "--vectors", VECTORS],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.02, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = tool("ocra-vectors", "--tcti", swtpm.tcti, "--vectors", VECTORS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "70 vectors, 0 differ"
    no_transient_handles(swtpm)
