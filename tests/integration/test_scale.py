"""Scale-out (issue 15): several instances of a daemon on one PostgreSQL.
Real onramp-conductord processes sharing a database of the test cluster, the
real router side (tests/tools/conductor-router). Timings here assert an order
(far below a poll timeout), never a speed."""
import os
import subprocess
import time

import pytest

from conductorlib import Conductor, Router, wait_until


@pytest.fixture
def fleet(postgres):
    """Maker of conductor instances on one fresh PostgreSQL database and of
    routers; stops everything after (conductors first: that ends held polls)."""
    made = {"conductors": [], "routers": []}
    database = postgres.new_database(f"scale_{os.getpid()}")

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


def test_a_command_queued_on_another_instance_wakes_the_held_poll(fleet):
    """Instance A holds the router's poll for 30 s; a command queued through
    instance B's admin API reaches the router far sooner than the poll's
    timeout (PostgreSQL LISTEN/NOTIFY between the instances)."""
    conductor, make_router = fleet
    poll_timeout = 30
    a = conductor("staging-a", poll_timeout=poll_timeout)
    b = conductor("staging-b", twin_of=a)
    router = onboard(a, make_router, poll_wait=poll_timeout)
    wait_until("the router to hold a poll on A",
               lambda: query(a.database, "SELECT polling FROM routers WHERE name = 'r1'")
               == "1")
    after = len(router.reports)
    started = time.monotonic()
    b.ok("router", "renew", "r1")
    router.wait_report("certificate", after=after, timeout=poll_timeout + 15)
    delivered = time.monotonic() - started
    # An order, not a speed: without the wake-up the command waits for the
    # poll to time out (up to 30 s); with it, it is delivered at once.
    assert delivered < poll_timeout / 6, f"delivered after {delivered:.1f} s"
