"""Smoke test of make bench's load generator (bench/onramp-bench-load) against the
real redirector and cloud: a few devices, a second of load. It asserts that the
exchanges it counts are real and complete (the cloud recorded each device's
authentication and onboarding), never how fast they were (docs/benchmarks.md)."""
import json
import os
import subprocess

import pytest

from cloud_env import CloudEnv, remove, tempdir
from conftest import program


@pytest.fixture(scope="module")
def env():
    directory = tempdir()
    try:
        # Rate limits off, as in make bench: a second of load from one address is
        # far above the per-source default.
        unlimited = "source-rate = 0\nglobal-rate = 0\n"
        e = CloudEnv(directory, challenge_lifetime=30, lockout=unlimited,
                     redirect_extra=unlimited)
    except BaseException:
        remove(directory)
        raise
    try:
        yield e
    finally:
        e.stop()
        remove(directory)


def load(env, devices, what="exchange", concurrency=2, seconds=1):
    listing = os.path.join(env.dir, f"devices-{what}-{len(devices)}.txt")
    with open(listing, "w") as f:
        f.write("".join(d.state + "\n" for d in devices))
    proc = subprocess.run(
        [program("onramp-bench-load"), "--target", "onramp", "--what", what,
         "--redirector", env.redirector.url, "--redirector-ca", env.redirect_pki.ca,
         "--devices", listing, "--concurrency", str(concurrency), "--seconds", str(seconds)],
        capture_output=True, text=True, timeout=60)
    return proc, json.loads(proc.stdout)


def test_exchanges_counted_are_complete(env):
    env.ensure_site("acme", "paris")
    devices = [env.device(f"BENCH-SMOKE-{i}") for i in range(2)]
    for d in devices:
        d.claim("acme", "paris")

    proc, result = load(env, devices)

    assert proc.returncode == 0, (proc.stderr, result)
    assert result["failed"] == 0 and "first_error" not in result, result
    assert result["ops"] >= 1 and result["target"] == "onramp"
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["keepalive_ms"] > 0
    # The cloud's own record: each device authenticated and got its onboarding
    # information as many times as the generator counted, in all.
    sent = 0
    for d in devices:
        events = env.ctl_json("device", "events", d.serial)["events"]
        steps = [e["step"] for e in events if e["outcome"] == "ok"]
        assert steps.count("cloud-auth") == steps.count("onboarding") >= 1, steps
        sent += steps.count("onboarding")
    assert sent == result["ops"]


def test_a_device_not_claimed_is_a_failure_with_its_reason(env):
    stranger = env.device("BENCH-SMOKE-UNCLAIMED")

    proc, result = load(env, [stranger], what="phone-home", concurrency=1)

    assert proc.returncode == 1
    assert result["ops"] == 0 and result["failed"] >= 1
    assert "not-claimed" in result["first_error"], result
