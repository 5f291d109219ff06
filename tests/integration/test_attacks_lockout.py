"""Issue 12 point 2: lockout as a weapon. Anyone who knows a serial (or an
asset ID) floods the unauthenticated endpoints, against the real daemons on
127.0.0.1: bogus auth/finish with made-up challenge ids, auth/start until the
open challenges fill up, unauthenticated /v1/hello until the open nonces fill
up. None of it may hurt the genuine device: no lockout, no refusal of its
newest challenge or nonce. Each of these tests failed against the daemons
before the fix (429 locked-out, 429 too-many-hellos).
"""
import http.client
import json
import secrets
import ssl
import threading

import pytest

from cloud_env import CloudEnv, by_step, remove, tempdir

SERIAL = "SSR1000-ATTACKED-1"
ROUNDS = 50  # the attacker's loop is bounded: 50 of each request
TRUNCATED_SUITE = "OCRA-1:HOTP-SHA256-8:QA10-S064"


class Attacker:
    """An outsider who knows a serial: plain HTTPS, no key, no token, on 127.0.0.1."""

    def __init__(self, cloud_url, conductor_address=None, source="127.0.0.1"):
        self.cloud = cloud_url[len("https://"):].split(":")
        self.conductor = conductor_address.split(":") if conductor_address else None
        self.source = source
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE  # an attacker checks nothing
        self.answers = []

    def connect(self, host_port):
        return http.client.HTTPSConnection(host_port[0], int(host_port[1]), context=self.tls,
                                           timeout=10, source_address=(self.source, 0))

    def post(self, host_port, path, body, conn=None):
        own = conn is None
        conn = conn or self.connect(host_port)
        try:
            conn.request("POST", path, body=json.dumps(body),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            doc = json.loads(resp.read() or b"null")
            answer = (resp.status, resp.getheader("Retry-After"), doc)
        finally:
            if own:
                conn.close()
        self.answers.append((path, answer))
        return answer

    def bogus_finish(self, serial):
        return self.post(self.cloud, "/v1/device/auth/finish",
                         {"serial": serial, "challenge_id": secrets.token_hex(16),
                          "response": secrets.token_hex(32)})

    def start(self, serial):
        return self.post(self.cloud, "/v1/device/auth/start",
                         {"serial": serial, "client_challenge": secrets.token_hex(5)})

    def hello(self, asset_id):
        return self.post(self.conductor, "/v1/hello", {"asset_id": asset_id})

    def codes(self, status):
        return [a[2]["error"]["code"] for _, a in self.answers
                if a[0] == status and isinstance(a[2], dict) and "error" in a[2]]


def test_flood_of_finishes_starts_and_hellos_does_not_delay_the_genuine_agent(e2e_lab):
    """The genuine agent (through squid) onboards while an attacker loop sends 50 bogus
    finishes, 50 starts and 50 hellos for its serial: it reaches staging-connect on its
    normal schedule (retry-base 1 s, cap 2 s), never answered 429."""
    lab = e2e_lab
    agent = lab.router(SERIAL, start=False)
    attacker = Attacker(lab.cloud_url, lab.staging.address)
    head_start = threading.Event()

    def attack():
        for i in range(ROUNDS):
            attacker.bogus_finish(SERIAL)
            attacker.start(SERIAL)
            attacker.hello(SERIAL)  # the asset ID the conductors know the router by
            if i == 9:
                head_start.set()  # enough to lock out and fill up, on the old code
        head_start.set()

    thread = threading.Thread(target=attack)
    thread.start()
    try:
        assert head_start.wait(60)
        agent.start()
        # A bound on the work, not a speed: the agent's own schedule retries every
        # 1-2 s; the old code locked it out for 30 s and more (doubling), refused its
        # starts for the challenge lifetime (60 s) and its hellos for the nonce TTL.
        agent.wait_done("staging-connect", timeout=25)
    finally:
        thread.join()
    assert len(attacker.answers) == 3 * ROUNDS
    # The attacker's finishes named no challenge of this connection: refused, counted nowhere.
    assert attacker.codes(403) == ["unknown-challenge"] * ROUNDS
    assert not attacker.codes(429), attacker.codes(429)
    shown = lab.cloud_json("device", "show", SERIAL)
    assert shown["ocra_suite"] == "OCRA-1:HOTP-SHA256-0:QA10-S064"
    assert shown["locked_until"] is None
    log = agent.log()
    assert "locked-out" not in log and "too-many-hellos" not in log
    assert "locked out" not in lab.log("cloudd")


@pytest.fixture(scope="module")
def env():
    directory = tempdir()
    e = CloudEnv(directory)
    try:
        e.ensure_site("acme", "paris")
        yield e
    finally:
        e.stop()
        remove(directory)


@pytest.mark.parametrize("suite", [None, TRUNCATED_SUITE])
def test_bogus_finishes_count_against_nothing(env, suite):
    """(b) Finishes naming challenge ids that do not exist: no failure counted, no lockout,
    even for a truncated suite (which keeps a lockout for real wrong answers)."""
    serial = f"BOGUS-{'T' if suite else 'F'}"
    dev = env.device(serial, suite=suite)
    dev.claim("acme", "paris")
    attacker = Attacker(env.cloud.url)
    for _ in range(ROUNDS):
        status, _, doc = attacker.bogus_finish(serial)
        assert status == 403 and doc["error"]["code"] == "unknown-challenge", doc
    shown = env.ctl_json("device", "show", serial)
    assert shown["failures"] == 0 and shown["locked_until"] is None
    assert all(s["ok"] for s in dev.run("onboard"))


def test_finish_for_a_challenge_of_another_connection_counts_nothing(env):
    """(b) The attacker starts on its own connection and answers on another: the challenge
    is not this connection's, so nothing is counted, and the challenge is not spent."""
    dev = env.device("OTHER-SESSION", suite=TRUNCATED_SUITE)
    dev.claim("acme", "paris")
    attacker = Attacker(env.cloud.url)
    for _ in range(10):
        status, _, doc = attacker.start(dev.serial)
        assert status == 200, doc
        status, _, doc = attacker.post(attacker.cloud, "/v1/device/auth/finish",
                                       {"serial": dev.serial,
                                        "challenge_id": doc["challenge_id"],
                                        "response": "00000000"})
        assert status == 403 and doc["error"]["code"] == "unknown-challenge", doc
    shown = env.ctl_json("device", "show", dev.serial)
    assert shown["failures"] == 0 and shown["locked_until"] is None
    assert all(s["ok"] for s in dev.run("onboard"))


def test_full_length_suite_is_never_locked_out(env):
    """(a) The factory's default suite answers with the whole HMAC (2^256 responses):
    wrong answers are counted for the operator but never lock the device out."""
    dev = env.device("FULL-LENGTH")
    dev.claim("acme", "paris")
    assert env.ctl_json("device", "show", dev.serial)["ocra_suite"] == \
        "OCRA-1:HOTP-SHA256-0:QA10-S064"
    for _ in range(8):  # the lockout threshold of this cloud is 3
        fin = by_step(dev.run("wrong-response"), "auth-finish")[0]
        assert fin["http_status"] == 403 and fin["code"] == "auth-failed", fin
    shown = env.ctl_json("device", "show", dev.serial)
    assert shown["failures"] == 8 and shown["locked_until"] is None
    assert all(s["ok"] for s in dev.run("onboard"))


def test_truncated_suite_keeps_its_lockout(env):
    """(a) A truncated response can be guessed: its real wrong answers still lock out."""
    dev = env.device("TRUNCATED", suite=TRUNCATED_SUITE)
    dev.claim("acme", "paris")
    steps = dev.run("brute", "--attempts", "3")
    last = by_step(steps, "auth-begin")[-1]
    assert last["http_status"] == 429 and last["code"] == "locked-out"


def test_flood_of_starts_evicts_the_oldest_never_refuses_the_newest(env):
    """(c) 50 starts for a device: each gets its challenge (the oldest are evicted), and the
    genuine device's next start and finish succeed at once."""
    dev = env.device("START-FLOOD")
    dev.claim("acme", "paris")
    attacker = Attacker(env.cloud.url)
    for _ in range(ROUNDS):
        status, _, doc = attacker.start(dev.serial)
        assert status == 200, doc
    assert all(s["ok"] for s in dev.run("onboard"))


def test_hello_flood_evicts_the_oldest_nonce_never_refuses_the_newest(e2e_lab):
    """(c) 50 unauthenticated hellos naming an asset ID all get a nonce; the newest one
    still authenticates (here: the genuine agent's, after the flood)."""
    lab = e2e_lab
    agent = lab.router("SSR1000-HELLO-1", start=False)
    attacker = Attacker(lab.cloud_url, lab.staging.address)
    for _ in range(ROUNDS):
        status, _, doc = attacker.hello("SSR1000-HELLO-1")
        assert status == 200, doc
    agent.start()
    agent.wait_done("staging-connect", timeout=25)
    assert "too-many-hellos" not in agent.log()


def test_flooding_source_is_rate_limited_others_are_not():
    """(d) Per-source limit (here 5 at once, 1 per second): the flooding source gets 429
    rate-limited with Retry-After; another source and the genuine device go on."""
    directory = tempdir()
    env = CloudEnv(directory, lockout="lockout_threshold = 3\nlockout_base = 60\n"
                   "source-rate = 1\nsource-burst = 5\n")
    try:
        env.ensure_site("acme", "paris")
        dev = env.device("RATE-1")
        dev.claim("acme", "paris")
        flood = Attacker(env.cloud.url, source="127.0.0.2")
        statuses = [flood.start(dev.serial)[0] for _ in range(20)]
        assert statuses.count(200) <= 6 and statuses[:5] == [200] * 5, statuses
        limited = [a for _, a in flood.answers if a[0] == 429]
        assert limited and all(a[2]["error"]["code"] == "rate-limited" for a in limited)
        assert all(int(a[1]) >= 1 for a in limited)
        # Another source is not slowed down by the flood.
        other = Attacker(env.cloud.url, source="127.0.0.3")
        assert other.start(dev.serial)[0] == 200
        assert all(s["ok"] for s in dev.run("onboard"))
    finally:
        env.stop()
        remove(directory)


def test_phone_home_flood_is_rate_limited_per_source():
    """(d) The redirector's phone-home: a flooding source gets 429 rate-limited with
    Retry-After; the genuine device (another source, through squid) phones home."""
    directory = tempdir()
    env = CloudEnv(directory, redirect_extra="source-rate = 1\nsource-burst = 5\n")
    try:
        env.ensure_site("acme", "paris")
        dev = env.device("RATE-PH-1")
        dev.claim("acme", "paris")
        flood = Attacker(env.redirector.url, source="127.0.0.2")
        answers = [flood.post(flood.cloud, "/v1/phone-home",
                              {"serial": dev.serial, "nonce": secrets.token_hex(16)})
                   for _ in range(20)]
        assert [a[0] for a in answers[:5]] == [200] * 5
        limited = [a for a in answers if a[0] == 429]
        assert len(limited) >= 14
        assert all(a[2]["error"]["code"] == "rate-limited" and int(a[1]) >= 1
                   for a in limited)
        ph = by_step(dev.run("phone-home"), "phone-home")[0]
        assert ph["ok"], ph
    finally:
        env.stop()
        remove(directory)
