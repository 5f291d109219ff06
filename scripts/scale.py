#!/usr/bin/python3
"""make scale (issue 15): every daemon as 2 instances on one PostgreSQL behind
HAProxy in TCP mode, a storm of routers through squid, once undisturbed and
once with one instance of each daemon (redirectd, cloudd, conductord) killed
with -9 in the middle (and started again later). The numbers printed are
asked of the databases (the production conductor's routers, the cloud's
device events), not taken from the load generator.

Load: the fleet simulator (build/fleetsim/onramp-fleetsim, `--routers`) is
the intended generator for 1,000 routers. Until it is on main this driver
runs real onramp-agent processes with software identities (`--agents`, 20 by
default), which bounds the storm's size on one machine; the place where the
simulator plugs in is run_storm() (ScaleLab.fleet_environment() gives it the
frontends, CAs and squid).

Part 2: the same lab on PostgreSQL as a Patroni cluster (etcd, a primary and
a synchronous replica; tests/integration/patronilab.py), the daemons on a
multi-host connection string with target_session_attrs=read-write, and the
primary killed with -9 in the middle of a storm: every router must still
reach running with every step it acknowledged kept.

Bounded: the whole run is stopped after --timeout seconds (default 900)."""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("ONRAMP_BUILD", os.path.join(ROOT, "build"))

from conftest import Postgres, wait_until  # noqa: E402
from e2elab import STEPS  # noqa: E402
from patronilab import PatroniCluster  # noqa: E402
from scalelab import ScaleLab  # noqa: E402

KILLED = (("redirectd", 0), ("cloudd", 0), ("staging", 0))
AGENT_POLL_WAIT_S = 2  # the agents' [onboarding] poll-wait in e2elab.Agent


def psql(database, sql):
    """One query's rows (text, |-separated) from one of the lab's databases."""
    proc = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-d", database, "-c", sql],
                          capture_output=True, text=True, timeout=60, check=True)
    return [line.split("|") for line in proc.stdout.splitlines() if line]


def durations(lab, serials):
    """Seconds from each router's first reported step to its running step,
    from the cloud's database (the devices' own reports)."""
    rows = psql(lab.databases["cloudd"],  # times: seconds since the epoch
                "SELECT serial, step, time FROM events WHERE source = 'device' "
                "AND outcome = 'ok' ORDER BY serial, time")
    first, running = {}, {}
    for serial, step, at in rows:
        first.setdefault(serial, int(at))
        if step == "running":
            running.setdefault(serial, int(at))
    return [running[s] - first[s] for s in serials if s in running and s in first]


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def migrate_when_ready(lab, agents, stop):
    """The operators' migrate for each router once staging gave it its
    production details (queued, not waited for: the storm goes on)."""
    migrated = set()
    while not stop.is_set() and len(migrated) < len(agents):
        for a in agents:
            if a.serial in migrated or not a.done("production-info"):
                continue
            proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router",
                                   a.router_name)
            if proc.returncode == 0:
                migrated.add(a.serial)
        time.sleep(0.5)


def kill_instances(lab, log):
    for service, index in KILLED:
        lab.kill9(service, index)
    log(f"killed -9: {', '.join(f'{s}[{i}]' for s, i in KILLED)}")

    def recover():
        for service, index in KILLED:
            lab.restart(service, index)
        log("killed instances started again")
    return recover


def db_writes(lab):
    """Commits and rows written so far in the lab's databases (pg_stat_database)."""
    names = {c.split("dbname=")[1].split()[0] for c in lab.databases.values()}
    time.sleep(1.5)  # backends publish their counters within a second of idling
    rows = psql(lab.databases["cloudd"],
                "SELECT datname, xact_commit, tup_inserted + tup_updated + tup_deleted "
                "FROM pg_stat_database")
    commits = sum(int(c) for name, c, _ in rows if name in names)
    written = sum(int(w) for name, _, w in rows if name in names)
    return commits, written


def run_storm(lab, first, count, disrupt, log, idle_s=0):
    """count routers at once; with disrupt, disrupt(lab, log) runs once a
    quarter of them have their onboarding information, and what it returns
    (recover, or None) once half of them are running. Returns their serials."""
    agents = []
    for i in range(first, first + count):
        agents.append(lab.new_router(f"SSR1000-STORM-{i:05d}", f"r{i}", start=False))
    started = time.monotonic()
    for a in agents:
        a.start()
    stop = threading.Event()
    migrator = threading.Thread(target=migrate_when_ready, args=(lab, agents, stop))
    migrator.start()
    try:
        if disrupt is not None:
            wait_until("a quarter of the routers half-way",
                       lambda: sum(a.done("onboarding-info") for a in agents) >= count / 4,
                       timeout=300, interval=0.5)
            log(f"mid-storm after {time.monotonic() - started:.0f} s:")
            recover = disrupt(lab, log)
            wait_until("half of the routers running",
                       lambda: sum(a.done("running") for a in agents) >= count / 2,
                       timeout=300, interval=0.5)
            if recover is not None:
                recover()
        wait_until("every router running or its agent gone",
                   lambda: all(a.done("running") or a.proc.poll() is not None
                               for a in agents), timeout=600, interval=1)
    finally:
        stop.set()
        migrator.join()
    log(f"storm of {count} routers{' disrupted' if disrupt else ''}: "
        f"{time.monotonic() - started:.0f} s")
    if idle_s:
        # Running routers hold their polls on production: what that costs the database.
        before = db_writes(lab)
        time.sleep(idle_s)
        after = db_writes(lab)
        lab.idle = (after[0] - before[0], after[1] - before[1], idle_s + 1.5)
    for a in agents:
        a.stop()
    return [a.serial for a in agents]


def routers_running(lab):
    """(running, known) routers, asked of the production conductor's database."""
    running = int(psql(lab.databases["production"],
                       "SELECT count(*) FROM routers WHERE progress = 'running'")[0][0])
    known = int(psql(lab.databases["production"], "SELECT count(*) FROM routers")[0][0])
    return running, known


def steps_kept(lab, serials):
    """Serials whose every onboarding step is in the cloud's database."""
    rows = psql(lab.databases["cloudd"],
                "SELECT DISTINCT serial, step FROM events WHERE source = 'device' "
                "AND outcome = 'ok'")
    steps = {}
    for serial, step in rows:
        steps.setdefault(serial, set()).add(step)
    return [s for s in serials if set(STEPS) <= steps.get(s, set())]


def part_two(n, log):
    """The lab on a Patroni cluster, its primary killed -9 mid-storm."""
    work = tempfile.mkdtemp(prefix="onramp-scale-patroni-")
    cluster, lab = None, None
    try:
        cluster = PatroniCluster().start()
        log(f"Patroni: primary {cluster.primary()}, synchronous replica streaming")
        lab = ScaleLab(work, cluster, instances=2, poll_timeout=10)
        lab.start()
        failover = {}

        def kill_primary(lab, log):
            old = cluster.kill_primary()
            killed = time.monotonic()
            log(f"killed -9: the primary {old} (Patroni and its postmaster)")
            new = cluster.wait_primary(other_than=old)
            failover["s"] = time.monotonic() - killed
            log(f"new primary {new} after {failover['s']:.0f} s")
            return None
        serials = run_storm(lab, 0, n, kill_primary, log)
        running, known = routers_running(lab)
        kept = steps_kept(lab, serials)
        return (f"scale: database failover: {running}/{len(serials)} routers running, "
                f"{known - running} failed, every step kept for {len(kept)}/{len(serials)}, "
                f"primary killed mid-storm, new primary after {failover.get('s', 0):.0f} s",
                running == len(serials) == known == len(kept))
    finally:
        if lab is not None:
            lab.close()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20,
                        help="real agents per storm when the fleet simulator is absent")
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()

    def on_alarm(signum, frame):
        raise TimeoutError(f"make scale: stopped after {args.timeout} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.timeout)

    def log(text):
        print(f"scale: {text}", flush=True)

    fleetsim = os.path.join(os.environ["ONRAMP_BUILD"], "fleetsim", "onramp-fleetsim")
    if os.path.exists(fleetsim):
        log("note: onramp-fleetsim is built but not wired in yet; using real agents")
    work = tempfile.mkdtemp(prefix="onramp-scale-")
    pg = Postgres()
    lab = None
    try:
        pg.start()
        lab = ScaleLab(work, pg, instances=2, poll_timeout=10)
        lab.start()
        log(f"PostgreSQL, HAProxy and 2 instances of redirectd, cloudd, staging and "
            f"production conductord on 127.0.0.1; squid; work directory {work}")
        n = max(2, args.agents)
        before = db_writes(lab)
        calm = run_storm(lab, 0, n, None, log, idle_s=30)
        after = db_writes(lab)
        stormy = run_storm(lab, n, n, kill_instances, log)
        total = len(calm) + len(stormy)
        running, known = routers_running(lab)
        calm_s, stormy_s = durations(lab, calm), durations(lab, stormy)
        # The calm storm's writes include its idle period: take that out.
        idle_commits, idle_rows, idle_s = lab.idle
        log(f"database writes per router onboarded (provisioning by the operators "
            f"included): {(after[0] - before[0] - idle_commits) / n:.0f} commits, "
            f"{(after[1] - before[1] - idle_rows) / n:.0f} rows")
        polls = n * idle_s / AGENT_POLL_WAIT_S
        log(f"database writes while {n} routers run idle (each poll held "
            f"{AGENT_POLL_WAIT_S} s): {idle_commits / polls:.2f} commits and "
            f"{idle_rows / polls:.2f} rows per poll")
        lab.close()
        lab = None
        pg.stop()
        failover_line, failover_ok = part_two(n, log)
        print(failover_line, flush=True)
        log(f"without kills: {len(calm_s)} routers, p50 {percentile(calm_s, 50):.0f} s, "
            f"p99 {percentile(calm_s, 99):.0f} s (first report to running)")
        log(f"with kills:    {len(stormy_s)} routers, p50 {percentile(stormy_s, 50):.0f} s, "
            f"p99 {percentile(stormy_s, 99):.0f} s (first report to running)")
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
