"""onramp-fleetsim (issue 13, point 2): virtual routers with software identities
run the whole device protocol through real squid against the real redirector,
cloud and two conductors of the end-to-end lab, set up by `onramp-fleetsim
setup` through the same admin APIs as onrampctl. That they reach running is checked on the servers' own lists, not
only in the simulator's summary; a router the conductor does not know is
counted in the errors by its reason."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import program, stop_process, wait_until

KEYS = {"routers", "running", "failed", "p50_s", "p99_s", "errors"}


@pytest.fixture
def lab(e2e_lab):
    """squid, redirector, cloud, staging and production conductors; the site's
    settings and the production conductor's secret, made by the operators."""
    lab = e2e_lab
    lab.start_squid()
    lab.start_all()
    lab.trust_cloud()  # both conductors take the cloud's onboarding assertions (issue 12)
    lab.cloud("org", "add", "acme")
    lab.cloud("site", "add", "acme", "paris")
    lab.cloud("site", "set", "acme", "paris", "--conductor", "127.0.0.1", "--port",
              str(lab.staging.port), "--psk-file", lab.staging.psk("paris"), "--ca-file",
              lab.staging.ca_export())
    lab.fleet_dir = os.path.join(lab.dir, "fleet")
    return lab


def setup_fleet(lab, n, prefix="SIM", expect=0):
    """onramp-fleetsim setup for n routers: factory, registration at the redirector,
    inventory, claims, both conductors."""
    def admin(c):
        return [f"https://127.0.0.1:{c.admin_port}", os.path.join(c.state, "ca.pem"),
                c.token_file]
    s, p = admin(lab.staging), admin(lab.production)
    proc = subprocess.run(
        [program("onramp-fleetsim"), "setup", "--routers", str(n), "--state-dir",
         lab.fleet_dir, "--prefix", prefix, "--concurrency", "4", "--redirector",
         lab.redirect_url, "--redirector-ca", lab.redirect_pki.ca, "--redirector-token-file",
         lab.redirect_token, "--inventory-key", lab.inventory_pub, "--cloud", lab.cloud_url, "--cloud-ca",
         lab.cloud_pki.ca, "--cloud-token-file", lab.cloud_token, "--staging", s[0],
         "--staging-ca", s[1], "--staging-token-file", s[2], "--production", p[0],
         "--production-ca", p[1], "--production-token-file", p[2], "--org", "acme",
         "--site", "paris", "--production-address", lab.production.address,
         "--production-root-ca", lab.production.ca_export()],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, proc.stderr
    if expect == 0:
        assert proc.stdout == f"{n} of {n} routers set up\n"
    return proc if expect else [f"{prefix}-{i:06d}" for i in range(1, n + 1)]


def fleetsim_args(lab, *args):
    s = lab.squid
    return [program("onramp-fleetsim"), "--state-dir", lab.fleet_dir, "--redirector",
            lab.redirect_url, "--redirector-ca", lab.redirect_pki.ca, "--proxy",
            f"127.0.0.1:{s['port']}", "--proxy-user", s["user"], "--proxy-password-file",
            s["password_file"], "--poll-wait", "2", "--json", *args]


def fleetsim(lab, *args, timeout=240):
    return subprocess.run(fleetsim_args(lab, *args), capture_output=True, text=True,
                          timeout=timeout)


def asset_states(conductor):
    return {a["asset_id"]: a["state"]
            for a in json.loads(conductor.ok("show", "assets", "--json"))["assets"]}


def test_twenty_routers_run_to_running_through_squid(lab):
    serials = setup_fleet(lab, 20)
    connects_before = len(lab.squid_connects())

    proc = fleetsim(lab, "--routers", "20", "--concurrency", "8")

    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert set(summary) == KEYS
    assert summary["routers"] == 20 and summary["running"] == 20
    assert summary["failed"] == 0 and summary["errors"] == {}
    assert 0 < summary["p50_s"] <= summary["p99_s"]
    # The servers' own word: production runs every router, staging saw each one leave
    # (the stored progress: a router the simulator left shows "disconnected" later).
    for serial in serials:
        prod, stag = lab.production.router(serial), lab.staging.router(serial)
        assert prod["progress"] == "running", prod
        assert stag["progress"] == "migrated", stag
        # A certificate from each conductor, for the router's one device key.
        assert prod["certificates"] and stag["certificates"]
        assert prod["device_key"] == stag["device_key"] is not None
    # The cloud heard the routers' progress reports, up to running.
    devices = {d["serial"]: d for d in lab.cloud_json("device", "list")["devices"]}
    assert all(devices[s]["stage"] == "running" for s in serials)
    # Everything went through squid: at least phone home, cloud and two conductors each.
    assert len(lab.squid_connects()) - connects_before >= 20 * 4


def test_a_router_unknown_to_the_conductor_is_counted_by_reason(lab):
    setup_fleet(lab, 2)
    # Set up twice: each router is named and left as it was.
    again = setup_fleet(lab, 2, expect=1)
    assert again.stdout == "0 of 2 routers set up\n"
    assert "SIM-000001" in again.stderr and "exists already" in again.stderr
    # A third router: made by the factory and claimed, but no conductor knows its asset.
    os.makedirs(lab.fleet_dir, exist_ok=True)
    state = os.path.join(lab.fleet_dir, "SIM-UNKNOWN")
    record = os.path.join(lab.dir, "unknown.record.json")
    lab.ok(program("onrampctl"), "factory", "init-device", "--serial", "SIM-UNKNOWN",
           "--model", "SSR1000", "--state-dir", state, "--software", "--cloud-key",
           lab.inventory_pub, "--out", record)
    lab.redirect("device", "register", record)
    lab.cloud("inventory", "import", record)
    lab.claim("SIM-UNKNOWN")

    proc = fleetsim(lab, "--concurrency", "3", "--refusals", "2", "--retry-base", "200",
                    "--retry-cap", "1000")

    assert proc.returncode == 1, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert set(summary) == KEYS
    assert (summary["routers"], summary["running"], summary["failed"]) == (3, 2, 1)
    assert summary["errors"] == {"staging-connect: 403 unknown-asset": 1}
    assert set(asset_states(lab.production)) == {"SIM-000001", "SIM-000002"}
    assert [lab.production.router(s)["progress"] for s in ("SIM-000001", "SIM-000002")] == \
        ["running", "running"]
    # The staging conductor saw the unknown asset ID try, and refused it.
    assert asset_states(lab.staging)["SIM-UNKNOWN"] == "unknown"


def test_setup_waits_out_a_cloud_whose_database_is_busy(lab):
    """A cloud that answers 500 "the change could not be started" (its SQLite write lock
    held past its busy timeout, as under a 10,000-router setup on a loaded machine) is
    asked again with backoff: every router is set up, none twice."""
    import sqlite3
    import threading
    db = sqlite3.connect(os.path.join(lab.dir, "cloudd-state", "cloud.db"), timeout=30,
                         isolation_level=None, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")  # the cloud's busy timeout is 5 s
    released = threading.Timer(7.0, db.rollback)
    released.start()
    try:
        serials = setup_fleet(lab, 2)
    finally:
        released.join()
        db.close()
    assert "the change could not be started" in lab.log("cloudd") or \
        "database is locked" in lab.log("cloudd")
    devices = {d["serial"]: d for d in lab.cloud_json("device", "list")["devices"]}
    assert set(serials) <= set(devices)
    for serial in serials:
        assert lab.staging.router(serial)["asset_id"] == serial
        assert lab.production.router(serial)["asset_id"] == serial


def test_routers_wait_for_the_operators_migrate_and_stay_connected(lab):
    """--migrate wait: the routers stay on staging until the operator's migrate,
    which the conductor client carries out inside its command channel. --hold:
    running, they stay connected to production (it shows them online past its
    15 s window) until SIGTERM ends the hold."""
    serials = setup_fleet(lab, 2)
    sim = subprocess.Popen(fleetsim_args(lab, "--migrate", "wait", "--hold", "600"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def ready(serial):
            r = lab.staging.router(serial)
            return r["progress"] == "configured" and r["commands"] and \
                all(c["state"] == "acked" for c in r["commands"])
        for serial in serials:
            wait_until(f"{serial} configured with its production details on staging",
                       lambda: ready(serial), timeout=60)
        assert sim.poll() is None  # nobody migrates on their own
        for serial in serials:
            proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router",
                                   serial)
            assert proc.returncode == 0, proc.stderr
        for serial in serials:
            wait_until(f"{serial} running on production",
                       lambda: lab.production.router(serial)["progress"] == "running",
                       timeout=60)
        time.sleep(17)  # past the conductor's online window: only a held router is online
        assert asset_states(lab.production) == {s: "running" for s in serials}
        assert sim.poll() is None
        sim.send_signal(signal.SIGTERM)
        out, err = sim.communicate(timeout=120)
    finally:
        stop_process(sim)
    assert sim.returncode == 0, err[-3000:]
    assert "2 routers held connected" in err
    summary = json.loads(out)
    assert (summary["running"], summary["failed"], summary["errors"]) == (2, 0, {})
    for serial in serials:
        migrations = lab.staging.router(serial)["migrations"]
        assert [m["state"] for m in migrations] == ["succeeded"], migrations


def test_transient_failures_are_retried_and_retry_after_honoured(lab):
    """A router not claimed yet phones home again only as often as the redirector's
    Retry-After (2 s) allows, though its own backoff is 0.1 to 0.2 s; routers whose
    production conductor is down keep trying within the revert window. Once the
    claim is made and the conductor is back, all three run: 0 failed."""
    serials = setup_fleet(lab, 3)
    lab.cloud("unclaim", serials[2])
    lab.production.stop()
    redirector = f"127.0.0.1:{lab.redirect_port}"

    def phone_homes():
        # Tunnels made (a CONNECT refused with 407 until credentials come is not one).
        return sum(1 for line in lab.squid_connects()
                   if "TCP_TUNNEL/200" in line and f" CONNECT {redirector} " in line)
    before = phone_homes()
    started = time.monotonic()
    sim = subprocess.Popen(fleetsim_args(lab, "--retry-base", "100", "--retry-cap", "200",
                                         "--revert-window", "120"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for serial in serials[:2]:
            wait_until(f"{serial} on staging, its production conductor down",
                       lambda: lab.staging.router(serial)["progress"] == "configured",
                       timeout=60)
        time.sleep(3)  # they keep trying production meanwhile
        attempts, waited = phone_homes() - before - 2, time.monotonic() - started
        lab.claim(serials[2])
        lab.production.start()
        out, err = sim.communicate(timeout=180)
    finally:
        stop_process(sim)
    assert sim.returncode == 0, err[-3000:]
    assert json.loads(out)["running"] == 3
    # Retry-After 2 s: at most one attempt per 2 s (and the first), not one per 0.2 s.
    assert 1 <= attempts <= waited / 2 + 1, (attempts, waited)
    for serial in serials:
        assert lab.production.router(serial)["progress"] == "running"


def test_bad_input_is_refused_before_any_router_starts(lab, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    lab.fleet_dir = str(empty)
    proc = fleetsim(lab)
    assert proc.returncode == 2 and "holds no router" in proc.stderr
    proc = fleetsim(lab, "--concurrency", "0")
    assert proc.returncode == 2 and "--concurrency" in proc.stderr
    proc = subprocess.run([program("onramp-fleetsim"), "setup", "--routers", "1",
                           "--state-dir", str(empty)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "are required" in proc.stderr
    assert os.listdir(empty) == []
    proc = subprocess.run([program("onramp-fleetsim"), "--help"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and "--routers N" in proc.stdout
