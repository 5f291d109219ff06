#!/usr/bin/python3
"""make scale (issue 15): every daemon as 2 instances on one PostgreSQL behind
HAProxy in TCP mode, and storms of virtual routers (onramp-fleetsim, software
identities, libonramp's device code) through squid and the frontends: once
undisturbed, and once (1,000 routers by default) with one instance of each
daemon (redirectd, cloudd, staging conductord) killed with -9 in the middle
and started again later. The counts printed are asked of the databases (the
production conductor's routers), not taken from the simulator alone; the
p50/p99 are the simulator's (a router's time from its start to running).

Part 2: the same lab on PostgreSQL as a Patroni cluster (etcd, a primary and
a synchronous replica; tests/integration/patronilab.py), the daemons on a
multi-host connection string with target_session_attrs=read-write, and the
primary killed with -9 in the middle of a (smaller, --patroni-routers) storm:
every router must still reach running, with its steps kept in the conductors'
databases (running on production, migrated on staging).

Bounded: the whole run is stopped after --timeout seconds (default 870, under
the Makefile's 900), every process it started stopped by PID; a router not
running after 180 s has failed."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("ONRAMP_BUILD", os.path.join(ROOT, "build"))

from conftest import Postgres, wait_until  # noqa: E402
from patronilab import PatroniCluster  # noqa: E402
from scalelab import ScaleLab  # noqa: E402

KILLED = (("redirectd", 0), ("cloudd", 0), ("staging", 0))
POLL_WAIT_S = 5  # the routers' longest command poll (the conductors' poll-timeout is 10 s)
ROUTER_TIMEOUT_S = 180  # a router not running by then has failed (bounds a storm's time)


def db_writes(lab):
    """(commits, rows written) so far in the lab's databases (pg_stat_database)."""
    names = {c.split("dbname=")[1].split()[0] for c in lab.databases.values()}
    time.sleep(1.5)  # backends publish their counters within a second of idling
    rows = lab.psql("cloudd", "SELECT datname, xact_commit, "
                    "tup_inserted + tup_updated + tup_deleted FROM pg_stat_database")
    commits = sum(int(c) for name, c, _ in rows if name in names)
    written = sum(int(w) for name, _, w in rows if name in names)
    return commits, written


def kill_instances(lab, log):
    for service, index in KILLED:
        lab.kill9(service, index)
    log(f"killed -9: {', '.join(f'{s}[{i}]' for s, i in KILLED)}")

    def recover():
        for service, index in KILLED:
            lab.restart(service, index)
        log("killed instances started again")
    return recover


def run_storm(lab, state_dir, prefix, count, concurrency, disrupt, log):
    """onramp-fleetsim on the count routers of state_dir. With disrupt,
    disrupt(lab, log) runs once a quarter of them are running (asked of the
    production conductor's database) and what it returns (recover, or None)
    once half of them are. Returns (the simulator's summary, seconds)."""
    started = time.monotonic()
    sim = lab.fleet_start(state_dir, "--routers", str(count), "--concurrency",
                          str(concurrency), "--poll-wait", str(POLL_WAIT_S),
                          "--router-timeout", str(ROUTER_TIMEOUT_S))

    def reached(share):
        return lambda: sim.poll() is not None or lab.running_routers(prefix)[0] >= count * share
    if disrupt is not None:
        wait_until("a quarter of the routers running", reached(0.25), timeout=600,
                   interval=0.5)
        log(f"mid-storm after {time.monotonic() - started:.0f} s "
            f"({lab.running_routers(prefix)[0]} running):")
        recover = disrupt(lab, log)
        wait_until("half of the routers running", reached(0.5), timeout=600, interval=0.5)
        if recover is not None:
            recover()
    out, _ = sim.communicate(timeout=900)
    elapsed = time.monotonic() - started
    summary = json.loads(out) if out.strip() else {}
    log(f"storm of {count} routers{' disrupted' if disrupt else ''}: {elapsed:.0f} s, "
        f"simulator's summary {json.dumps(summary)}")
    return summary, elapsed


def fmt_s(value):
    return "n/a" if value is None else f"{value:.1f} s"


def part_two(n, concurrency, log):
    """The lab on a Patroni cluster, its primary killed -9 mid-storm."""
    work = tempfile.mkdtemp(prefix="onramp-scale-patroni-")
    cluster, lab = None, None
    try:
        cluster = PatroniCluster().start()
        log(f"Patroni: primary {cluster.primary()}, synchronous replica streaming")
        lab = ScaleLab(work, cluster, instances=2, poll_timeout=10)
        lab.start()
        fleet = os.path.join(work, "fleet-patroni")
        lab.fleet_setup(n, fleet, "PATRONI", concurrency=8)
        failover = {}

        def kill_primary(lab, log):
            old = cluster.kill_primary()
            killed = time.monotonic()
            log(f"killed -9: the primary {old} (Patroni and its postmaster)")
            new = cluster.wait_primary(other_than=old)
            failover["s"] = time.monotonic() - killed
            log(f"new primary {new} after {failover['s']:.0f} s")
            return None
        summary, _ = run_storm(lab, fleet, "PATRONI", n, concurrency, kill_primary, log)
        running, known = lab.running_routers("PATRONI")
        migrated = int(lab.psql("staging", "SELECT count(*) FROM routers WHERE "
                                "progress = 'migrated' AND asset_id LIKE 'PATRONI%'")[0][0])
        return (f"scale: database failover: {running}/{n} routers running, {n - running} "
                f"failed, {migrated}/{n} migrated on staging, primary killed mid-storm, "
                f"new primary after {failover.get('s', 0):.0f} s",
                running == known == migrated == n and summary.get("failed") == 0)
    finally:
        if lab is not None:
            lab.close()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routers", type=int, default=1000,
                        help="routers in the storm with kills (default 1000)")
    parser.add_argument("--calm-routers", type=int, default=1000,
                        help="routers in the undisturbed storm (default 1000)")
    parser.add_argument("--patroni-routers", type=int, default=1000,
                        help="routers in the storm of the database failover (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32,
                        help="routers in flight at once in every storm (default 32)")
    # Below the Makefile's `timeout 900`, so that this run stops and cleans up first.
    parser.add_argument("--timeout", type=int, default=870)
    args = parser.parse_args()
    began = time.monotonic()

    def on_alarm(signum, frame):
        raise TimeoutError(f"make scale: stopped after {args.timeout} s")
    signal.signal(signal.SIGALRM, on_alarm)
    # SIGTERM (timeout(1), ^C's cousin) stops the run through the cleanup below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"make scale: signal {signum}"))
    signal.alarm(args.timeout)

    def log(text):
        print(f"scale: {text}", flush=True)

    work = tempfile.mkdtemp(prefix="onramp-scale-")
    pg = Postgres()
    lab = None
    try:
        pg.start()
        lab = ScaleLab(work, pg, instances=2, poll_timeout=10)
        lab.start()
        log(f"PostgreSQL, HAProxy and 2 instances of redirectd, cloudd, staging and "
            f"production conductord on 127.0.0.1; squid; onramp-fleetsim; work directory {work}")
        calm_dir, storm_dir = os.path.join(work, "fleet-calm"), os.path.join(work, "fleet-storm")
        n = args.calm_routers
        started = time.monotonic()
        before = db_writes(lab)
        lab.fleet_setup(n, calm_dir, "CALM", concurrency=8)
        after_setup = db_writes(lab)
        log(f"onramp-fleetsim setup of {n} routers: {time.monotonic() - started:.0f} s")
        calm, _ = run_storm(lab, calm_dir, "CALM", n, args.concurrency, None, log)
        after_calm = db_writes(lab)
        started = time.monotonic()
        lab.fleet_setup(args.routers, storm_dir, "STORM", concurrency=8)
        log(f"onramp-fleetsim setup of {args.routers} routers: "
            f"{time.monotonic() - started:.0f} s")
        stormy, stormy_s = run_storm(lab, storm_dir, "STORM", args.routers, args.concurrency,
                                     kill_instances, log)
        running, known = lab.running_routers()
        calm_running = lab.running_routers("CALM")[0]
        storm_running = lab.running_routers("STORM")[0]
        total = n + args.routers
        # PostgreSQL's own counters over the lab's databases; transactions include
        # read-only ones and HAProxy's health checks, rows written are the write load.
        log(f"database writes per router, operators' setup (onramp-fleetsim setup): "
            f"{(after_setup[1] - before[1]) / n:.0f} rows, "
            f"{(after_setup[0] - before[0]) / n:.0f} transactions")
        log(f"database writes per router onboarded (the undisturbed storm): "
            f"{(after_calm[1] - after_setup[1]) / n:.0f} rows, "
            f"{(after_calm[0] - after_setup[0]) / n:.0f} transactions")
        lab.close()
        lab = None
        pg.stop()
        failover_line, failover_ok = part_two(args.patroni_routers, args.concurrency, log)
        print(failover_line, flush=True)
        log(f"whole run: {time.monotonic() - began:.0f} s")
        log(f"without kills: {calm_running}/{n} running, p50 {fmt_s(calm.get('p50_s'))}, "
            f"p99 {fmt_s(calm.get('p99_s'))} (a router's start to running, concurrency "
            f"{args.concurrency})")
        log(f"with kills:    {storm_running}/{args.routers} running, p50 "
            f"{fmt_s(stormy.get('p50_s'))}, p99 {fmt_s(stormy.get('p99_s'))} "
            f"(storm {stormy_s:.0f} s)")
        print(f"scale: {running}/{total} routers running, {known - running} failed, "
              f"2 instances each, {len(KILLED)} killed mid-storm", flush=True)
        return 0 if running == total == known and failover_ok else 1
    finally:
        signal.alarm(0)
        if lab is not None:
            lab.close()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
