"""Scale-out (issue 15): several instances of a daemon on one PostgreSQL.
Real onramp-conductord processes sharing a database of the test cluster, the
real router side (tests/tools/conductor-router). Timings here assert an order
(far below a poll timeout), never a speed."""
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from cloud_env import CloudEnv, Pki
from conductorlib import Conductor, Router, wait_until
from conftest import free_port, postgres_cluster, program
from scalelab import ScaleLab


def conductors_and_routers(database):
    """Maker of conductor instances on one PostgreSQL database and of routers;
    stops everything after (conductors first: that ends held polls)."""
    made = {"conductors": [], "routers": []}

    def conductor(name="staging", twin_of=None, **kw):
        if twin_of is not None:
            c = twin_of.twin(name)
        else:
            c = Conductor("staging", name, database=database, **kw)
            c.init()
        made["conductors"].append(c)
        return c.start()

    def router(**kw):
        r = Router(**kw)
        made["routers"].append(r)
        return r

    yield conductor, router
    errors = []
    for c in made["conductors"]:
        try:
            c.cleanup()
        except AssertionError as e:
            errors.append(str(e))
    for r in made["routers"]:
        r.cleanup()
    assert not errors, "\n".join(errors)


@pytest.fixture
def fleet(postgres):
    """Conductors on one fresh database of the session's cluster, and routers."""
    yield from conductors_and_routers(postgres.new_database(f"scale_{os.getpid()}"))


@pytest.fixture
def fleet_on():
    """Conductors on a database given by the test, and routers."""
    made = []

    def start(database):
        gen = conductors_and_routers(database)
        made.append(gen)
        return next(gen)

    yield start
    for gen in made:
        for _ in gen:
            pass


def query(conninfo, sql):
    """One value from the shared database, asked with psql (the database is the truth)."""
    proc = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-d", conninfo, "-c", sql],
                          capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout.strip()


def onboard(conductor, make_router, poll_wait, asset_id="ASSET-0001", name="r1"):
    """Adds a router, makes a secret, runs the router until it is configured."""
    conductor.add_router(name, asset_id)
    psk_file, _ = conductor.psk("site")
    router = make_router(asset_id=asset_id).start(conductor, psk_file, poll_wait=poll_wait)
    conductor.wait_state(asset_id, "configured")
    router.wait_report("configuration")
    return router


def wait_polling(conductor, router="r1"):
    """Until the database says the router's poll is held (on that conductor)."""
    wait_until(f"{router} to hold a poll on {conductor.name}",
               lambda: query(conductor.database,
                             f"SELECT polling FROM routers WHERE name = '{router}'") == "1")


def renewal_delivery(holder, other, router, poll_timeout):
    """Seconds from queueing a renewal on `other` to the router, polling on
    `holder`, reporting its new certificate."""
    wait_polling(holder)
    after = len(router.reports)
    started = time.monotonic()
    other.ok("router", "renew", "r1")
    router.wait_report("certificate", after=after, timeout=poll_timeout + 15)
    return time.monotonic() - started


def test_a_command_queued_on_another_instance_wakes_the_held_poll(fleet):
    """Instance A holds the router's poll for 30 s; a command queued through
    instance B's admin API reaches the router far sooner than the poll's
    timeout (PostgreSQL LISTEN/NOTIFY between the instances)."""
    conductor, make_router = fleet
    poll_timeout = 30
    a = conductor("staging-a", poll_timeout=poll_timeout)
    b = conductor("staging-b", twin_of=a)
    router = onboard(a, make_router, poll_wait=poll_timeout)
    delivered = renewal_delivery(a, b, router, poll_timeout)
    # An order, not a speed: without the wake-up the command waits for the
    # poll to time out (up to 30 s); with it, it is delivered at once.
    assert delivered < poll_timeout / 6, f"delivered after {delivered:.1f} s"


class AnswerDropper:
    """A TCP relay between a router and a conductor. Armed, it lets the next
    answer through (the held poll's, carrying a command), then the router's
    next request (the command's acknowledgement), but not the conductor's
    answer to it: that connection is closed instead. The conductor answers
    only after its commit, so the acknowledgement is stored and its answer
    lost, as when an instance is killed between the two (make scale found
    routers stuck so). TLS stays end to end: the relay sees bytes only."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = self.dropped = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:  # the conductor stopped: so does its relayed side
                client.close()
                continue
            state = {"answered": False, "asked": False}
            threading.Thread(target=self._pump, args=(client, server, state, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, state, False),
                             daemon=True).start()

    def _pump(self, src, dst, state, from_router):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            with self.lock:
                if data and self.armed:
                    if not from_router and state["asked"]:
                        self.armed, self.dropped = False, True
                        data = b""  # the acknowledgement's answer: lost
                    elif not from_router:
                        state["answered"] = True
                    elif state["answered"]:
                        state["asked"] = True
            if not data:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    sock.close()
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        self.listener.close()


def test_a_step_whose_acknowledgement_answer_is_lost_is_still_reported(fleet):
    """The conductor commits a command's acknowledgement, then the connection
    breaks before its answer (an instance killed between the two). The
    conductor never sends that command again, so the router must count the
    step as done (report it) anyway: before, it never did, and a virtual
    router of make scale waited for it until its deadline."""
    conductor, make_router = fleet
    a = conductor("staging-a", poll_timeout=30)
    a.add_router("r1", "ASSET-0001")
    psk_file, _ = a.psk("site")
    relay = AnswerDropper(a.port)
    try:
        through = type("Through", (), {"address": relay.address, "ca": a.ca})()
        router = make_router(asset_id="ASSET-0001").start(through, psk_file, poll_wait=30)
        router.wait_report("configuration")
        wait_polling(a)
        relay.armed = True
        prod_psk, _ = a.psk("r1")
        a.ok("router", "production", "r1", "--address", "127.0.0.1:1", "--psk-file", prod_psk,
             "--root-ca", a.ca)
        wait_until("the acknowledgement's answer dropped", lambda: relay.dropped)
        # The conductor has the acknowledgement: it will not send the command again.
        assert query(a.database, "SELECT state FROM commands WHERE kind = "
                     "'set-production-conductor'") == "acked"
        router.wait_report("production-info", timeout=30)
    finally:
        relay.close()


def test_a_certificate_request_the_database_refuses_is_not_acknowledged_as_failed(fleet):
    """The conductor's database refuses the certificate's row for a moment (a
    trigger, as a failover's errors would), so POST /v1/certificate answers
    5xx. The router must not acknowledge generate-certificate as failed: the
    conductor never sends a failed command again (a router of make scale's
    Patroni storm was lost so). It drops the connection instead; once the
    database takes rows again the command, still queued, comes again and the
    router reports its new certificate."""
    conductor, make_router = fleet
    a = conductor("staging-a", poll_timeout=30)
    router = onboard(a, make_router, poll_wait=30)
    wait_polling(a)
    query(a.database, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
          "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; "
          "CREATE TRIGGER refuse BEFORE INSERT ON certificates "
          "FOR EACH ROW EXECUTE FUNCTION refuse()")
    after = len(router.reports)
    a.ok("router", "renew", "r1")
    wait_until("the router's certificate request refused by the database",
               lambda: "refused by the test" in a.log(), timeout=30)
    query(a.database, "DROP TRIGGER refuse ON certificates")
    renewal = "SELECT state FROM commands WHERE kind = 'generate-certificate' " \
              "ORDER BY id DESC LIMIT 1"
    assert query(a.database, renewal) != "failed"
    router.wait_report("certificate", after=after, timeout=45)
    assert query(a.database, renewal) == "acked"
    assert not [r for r in router.reports[after:] if not r["ok"]], router.reports[after:]


def healthz(port, ca):
    """GET /healthz over TLS, no credentials: (status, JSON body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=15,
                                       context=ssl.create_default_context(cafile=ca))
    try:
        conn.request("GET", "/healthz")
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test alone: it will be stopped and started."""
    with postgres_cluster() as pg:
        yield pg


def test_healthz_follows_the_store(own_postgres, tmp_path):
    """Every daemon answers GET /healthz without credentials: 200 while its
    database answers, 503 while it does not, 200 again once it is back (the
    daemons were not restarted)."""
    pg = own_postgres
    env = CloudEnv(str(tmp_path), database=pg.new_database("cloud"),
                   redirect_database=pg.new_database("redirect"))
    conductor = Conductor("staging", "health", database=pg.new_database("conductor"))
    try:
        conductor.init()
        conductor.start()
        endpoints = {"redirectd": (env.redirector.port, env.redirect_pki.ca),
                     "cloudd": (env.cloud.port, env.cloud_pki.ca),
                     "conductord routers": (conductor.port, conductor.ca),
                     "conductord admin": (conductor.admin_port, conductor.ca)}
        for name, (port, ca) in endpoints.items():
            assert healthz(port, ca) == (200, {"status": "ok"}), name
        pg.server_stop()
        for name, (port, ca) in endpoints.items():
            assert healthz(port, ca) == (503, {"status": "unavailable"}), name
        pg.server_start()
        for name, (port, ca) in endpoints.items():
            wait_until(f"{name} healthy again",
                       lambda: healthz(port, ca) == (200, {"status": "ok"}))
    finally:
        try:
            conductor.cleanup()
        finally:
            env.stop()


def test_sigterm_drains_and_releases_held_polls(fleet):
    """SIGTERM: the conductor stops accepting, answers the held poll (200 with
    "reconnect": true, so the router connects again at once, through a balancer
    elsewhere) instead of cutting it, and exits 0 long before the poll would
    have timed out."""
    conductor, make_router = fleet
    poll_timeout = 30
    a = conductor("staging-a", poll_timeout=poll_timeout, extra="log-level = debug\n")
    router = onboard(a, make_router, poll_wait=poll_timeout)
    wait_polling(a)
    answered = re.compile(r"GET /v1/commands from \S+ -> 200")
    before = len(answered.findall(a.log()))
    started = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=poll_timeout) == 0
    assert time.monotonic() - started < poll_timeout / 3
    log = a.log()
    assert len(answered.findall(log)) == before + 1, log[-2000:]
    assert "draining" in log
    # The answer told the router to connect again at once (no backoff).
    wait_until("the router to reconnect", lambda: "is draining; reconnecting" in router.log())
    a.proc = None


def test_daemons_survive_a_postgresql_restart(own_postgres, fleet_on):
    """Two conductors on a multi-host conninfo (first host down, then the real
    one, target_session_attrs=read-write). PostgreSQL restarts under them: the
    first admin request afterwards is served (the stale connection is noticed
    before use and reopened), and the cross-instance wake-up works again (the
    listening connection came back)."""
    pg = own_postgres
    name = pg.new_database("restart").split("dbname=")[1]
    database = (f"host={pg.dir},{pg.dir} port={free_port()},{pg.port} user=postgres "
                f"dbname={name} target_session_attrs=read-write")
    conductor, make_router = fleet_on(database)
    poll_timeout = 30
    a = conductor("staging-a", poll_timeout=poll_timeout)
    b = conductor("staging-b", twin_of=a)
    router = onboard(a, make_router, poll_wait=poll_timeout)
    pg.server_stop()
    pg.server_start()
    # The first request on each admin API after the restart is served.
    assert a.asset("ASSET-0001")["state"] == "configured"
    assert b.asset("ASSET-0001")["state"] == "configured"
    wait_until("A to listen for notifications again",
               lambda: "listening for notifications again" in a.log())
    assert renewal_delivery(a, b, router, poll_timeout) < poll_timeout / 6


ROUTERS = 50  # virtual routers (onramp-fleetsim) of the storm below


def test_fifty_routers_onboard_through_haproxy_while_an_instance_of_each_dies(
        postgres, tmp_path):
    """Two instances of every daemon on one PostgreSQL behind HAProxy (TCP
    mode, /healthz checks over TLS). 50 virtual routers (onramp-fleetsim,
    libonramp's device code) onboard through squid and HAProxy; once some of
    them run, one redirectd, one cloudd and one staging conductord are killed
    with -9, and started again only after more routers reached running with
    them dead. All 50 run, asked of the production conductor's database (and
    migrated, of staging's); squid saw CONNECTs to the frontends only."""
    lab = ScaleLab(tmp_path, postgres, instances=2)
    killed = (("redirectd", 0), ("cloudd", 0), ("staging", 0))
    try:
        lab.start()
        fleet = os.path.join(lab.dir, "fleet")
        lab.fleet_setup(ROUTERS, fleet, "SCALE", concurrency=4)
        # 4 in flight at once: the storm lasts long enough to be cut into.
        sim = lab.fleet_start(fleet, "--concurrency", "4", "--poll-wait", "5",
                              "--router-timeout", "90")

        def running():
            return lab.running_routers("SCALE")[0]
        wait_until("a few routers running", lambda: running() >= 5 or sim.poll() is not None,
                   timeout=90, interval=0.2)
        at_kill = running()
        for service, index in killed:
            lab.kill9(service, index)
        wait_until("more routers running with an instance of each dead",
                   lambda: running() >= at_kill + 10 or sim.poll() is not None,
                   timeout=90, interval=0.2)
        at_restart = running()
        for service, index in killed:
            lab.restart(service, index)
        out, err = sim.communicate(timeout=120)
        # The kills came mid-way: routers reached running before, while and after.
        assert at_kill < at_restart < ROUTERS, (at_kill, at_restart)
        assert sim.returncode == 0, lab.log("fleetsim-fleet")[-3000:]
        summary = json.loads(out)
        assert (summary["running"], summary["failed"]) == (ROUTERS, 0), summary
        # The database's word: every router running on production, migrated on staging.
        assert lab.running_routers("SCALE") == (ROUTERS, ROUTERS)
        assert lab.psql("staging", "SELECT count(*) FROM routers WHERE progress = 'migrated' "
                        "AND asset_id LIKE 'SCALE%'") == [[str(ROUTERS)]]
        # TLS went end to end through HAProxy: squid saw CONNECTs to the frontends only.
        frontends = {f" CONNECT {lab.frontend(s)} " for s in ("redirectd", "cloudd",
                                                               "staging", "production")}
        connects = lab.squid_connects()
        assert len(connects) >= ROUTERS * 4
        assert all(any(f in line for f in frontends) for line in connects)
    finally:
        unclean = lab.close()
    assert not unclean, unclean


# A handful of real agents (their own retries and reports) through the same lab.
AGENTS = 6


def test_agents_onboard_through_haproxy_while_instances_die(postgres, tmp_path):
    """Two instances of every daemon on one PostgreSQL behind HAProxy (TCP
    mode, /healthz checks over TLS). Real agents onboard through squid and
    HAProxy; half-way one cloudd and one staging conductor are killed with -9
    (then the second half of the agents starts), and started again later.
    Every router still reaches running (asked of the production conductor's
    database through its admin API), and the agents only ever reached the
    frontends."""
    lab = ScaleLab(tmp_path, postgres, instances=2)
    try:
        lab.start()
        agents = [lab.new_router(f"SSR1000-SCALE-{i:04d}", f"r{i}")
                  for i in range(AGENTS // 2)]
        wait_until("an agent half-way (onboarding information received)",
                   lambda: any(a.done("onboarding-info") for a in agents), timeout=60)
        lab.kill9("cloudd", 0)
        lab.kill9("staging", 0)
        # The other half starts with one instance of each dead: HAProxy's checks
        # and retries send them to the live ones.
        agents += [lab.new_router(f"SSR1000-SCALE-{i:04d}", f"r{i}")
                   for i in range(AGENTS // 2, AGENTS)]
        for a in agents:
            a.wait_done("production-info", timeout=90)
        lab.restart("cloudd", 0)
        lab.restart("staging", 0)
        for a in agents:
            proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router",
                                   a.router_name, "--wait")
            assert proc.returncode == 0, proc.stderr
        for a in agents:
            a.wait_done("running", timeout=60)
        running = [a.serial for a in agents
                   if lab.production.asset_state(a.serial) == "running"]
        assert len(running) == AGENTS, running
        # TLS went end to end through HAProxy: squid saw CONNECTs to the frontends only.
        frontends = {f" CONNECT {lab.frontend(s)} " for s in ("redirectd", "cloudd",
                                                               "staging", "production")}
        connects = lab.squid_connects()
        assert connects and all(any(f in line for f in frontends) for line in connects)
    finally:
        unclean = lab.close()
    # Every instance not killed drained and exited 0 on SIGTERM, with nothing left
    # in flight at the drain's bound (every request's count came down).
    assert not unclean, unclean
    logs = [lab.log(name[:-4]) for name in os.listdir(lab.dir) if name.endswith(".log")]
    assert not [log for log in logs if "still in flight" in log]


@pytest.fixture
def patroni():
    """PostgreSQL as a Patroni cluster (etcd, a primary and a synchronous replica)."""
    from patronilab import PatroniCluster
    cluster = PatroniCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def test_daemons_follow_a_patroni_failover(patroni, fleet_on):
    """Two conductors on a Patroni cluster through a multi-host conninfo with
    target_session_attrs=read-write. The primary is killed with -9: once the
    replica is promoted the daemons serve again without a restart, what they
    acknowledged before is there (synchronous replication), and a command
    queued on one instance still wakes the poll held by the other."""
    conductor, make_router = fleet_on(patroni.new_database(f"failover_{os.getpid()}"))
    poll_timeout = 30
    a = conductor("staging-a", poll_timeout=poll_timeout)
    b = conductor("staging-b", twin_of=a)
    router = onboard(a, make_router, poll_wait=poll_timeout)
    a.add_router("r2", "ASSET-0002")  # acknowledged just before the primary dies
    old = patroni.kill_primary()
    patroni.wait_primary(other_than=old)
    record = wait_until("A to serve again",
                        lambda: a.ctl("router", "show", "r2", "--json").returncode == 0
                        and a.router_record("r2"), timeout=60)
    assert record["asset_id"] == "ASSET-0002"
    assert b.asset("ASSET-0001")["state"] == "configured"
    wait_until("A to listen for notifications again",
               lambda: "listening for notifications again" in a.log(), timeout=60)
    assert renewal_delivery(a, b, router, poll_timeout) < poll_timeout / 6


def test_drain_stops_accepting_and_finishes_requests_in_flight(tmp_path):
    """lib/server/http_server's drain (tests/tools/http_test_server --drain):
    after SIGTERM a new connection is refused, a connection already open is
    still served (its answer says Connection: close), and a request held when
    the signal came is answered, not cut; nothing is left in flight."""
    pki = Pki(str(tmp_path), "drain")
    proc = subprocess.Popen([program("http_test_server"), "--cert", pki.cert, "--key", pki.key,
                             "--port", "0", "--threads", "2", "--drain", "20000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(proc.stdout.readline().split()[1])
        context = ssl.create_default_context(cafile=pki.ca)

        def connection():
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)

        held, other = connection(), connection()
        held.request("GET", "/wait")  # held until POST /release
        other.request("GET", "/stats")  # opens a second connection, kept alive
        assert json.loads(other.getresponse().read())["loop"] in (0, 1)

        def waiting():
            other.request("GET", "/stats")
            return json.loads(other.getresponse().read())["waiting"] == 1
        wait_until("the request to be held", waiting)
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().strip() == "draining"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        other.request("POST", "/release", body=b"{}",
                      headers={"Content-Type": "application/json"})
        released = other.getresponse()
        assert released.status == 200 and released.getheader("Connection") == "close"
        released.read()
        answer = held.getresponse()
        assert answer.status == 200, answer.read()
        answer.read()
        assert proc.stdout.readline().strip() == "drained left=0"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
