"""The storm of make bench (bench/run_bench.py, storm()) on a few routers: the lab with
the rate limits of a site behind one proxy, onramp-fleetsim setup and the fleet through
squid. It asserts what the storm counts and how it ends by its time budget, never how
fast it was (docs/benchmarks.md)."""
import os
import sys
import time

import pytest

from conftest import BUILD

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import run_bench  # noqa: E402

pytestmark = pytest.mark.skipif(
    not os.access(os.path.join(BUILD, "fleetsim", "onramp-fleetsim"), os.X_OK),
    reason="onramp-fleetsim is not built")


def configs(directory):
    """The lab's daemon configurations, by file name."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            if name.endswith(".conf") and "squid" not in name:
                with open(os.path.join(root, name)) as f:
                    out[os.path.relpath(os.path.join(root, name), directory)] = f.read()
    return out


def fleets():
    """The storms' router directories on tmpfs now (other runs' too)."""
    if not os.path.isdir("/dev/shm"):
        return set()
    return {n for n in os.listdir("/dev/shm") if n.startswith("onramp-bench-fleet-")}


def test_every_router_runs_through_squid_with_the_site_limits(tmp_path, monkeypatch):
    seen = {}
    import e2elab
    original = e2elab.Lab.close

    def keep_configs(lab):
        seen.update(configs(lab.dir))
        seen["squid"] = lab.squid_connects()
        original(lab)
    monkeypatch.setattr(e2elab.Lab, "close", keep_configs)
    before = fleets()
    res = run_bench.storm(str(tmp_path), 12, time.monotonic() + 600, concurrency=4,
                          setup_concurrency=4)
    assert res["storm_routers"] == 12 and res["storm_running"] == 12
    assert res["storm_failed"] == 0 and res["storm_errors"] == {}
    assert 0 < res["storm_p50_s"] <= res["storm_p99_s"]
    assert res["storm_site_limits"] is True
    # Every daemon has the per-source bucket of a site behind one proxy.
    daemons = [text for name, text in seen.items() if name != "squid"]
    assert len(daemons) == 4
    assert all(run_bench.STORM_SITE_LIMITS in text for text in daemons)
    # Through squid: at least a phone home per router went through its CONNECTs.
    assert len(seen["squid"]) >= 12
    # The routers' directories (on tmpfs) are gone with the lab.
    assert fleets() <= before


def test_the_storm_ends_by_its_deadline_and_counts_what_did_not_run(tmp_path):
    before = fleets()
    # A deadline already past: setup gets its minimum second, then SIGINT; the fleet
    # the same. 2,000 routers cannot all be made and run in that time on any machine.
    res = run_bench.storm(str(tmp_path), 2000, time.monotonic() - 1, concurrency=4,
                          setup_concurrency=2)
    assert res["storm_routers"] == 2000
    assert res["storm_running"] + res["storm_failed"] == 2000
    assert res["storm_failed"] > 0
    reasons = set(res["storm_errors"])
    assert "not set up" in reasons
    assert reasons <= {"not set up", "not started"} | {
        r for r in reasons if r.endswith(": interrupted")}
    assert fleets() <= before


def test_a_router_setup_could_not_make_does_not_run(tmp_path, monkeypatch):
    # The staging operator has a router of that name already (for another asset): setup
    # names STORM-000002 as failed after the factory, the redirector and the cloud did
    # their part. Only the routers set up run; that one counts as not set up.
    import e2elab
    original = e2elab.Lab.start_all

    def with_a_taken_name(lab):
        original(lab)
        lab.staging.add_router("STORM-000002", "SOMEONE-ELSE")
    monkeypatch.setattr(e2elab.Lab, "start_all", with_a_taken_name)
    res = run_bench.storm(str(tmp_path), 4, time.monotonic() + 600, concurrency=4,
                          setup_concurrency=2)
    assert res["storm_routers"] == 4 and res["storm_running"] == 3
    assert res["storm_failed"] == 1 and res["storm_errors"] == {"not set up": 1}
