"""The admin API's audit trail (docs/audit.md) on the real redirector and
cloud: every change and every refused attempt is an entry (who, from where,
what, on which object, when, result), written in the same transaction as the
change, hash-chained, listed and verified by `onrampctl ... audit`, and an
entry changed afterwards breaks the chain."""
import json
import os
import sqlite3

import pytest

from cloud_env import CloudEnv, remove, tempdir


@pytest.fixture
def env():
    directory = tempdir()
    e = CloudEnv(directory)
    yield e
    e.stop()
    remove(directory)


def audit(env, *args, ctl=None):
    proc = (ctl or env.ctl)("audit", *args)
    return proc


def entries(env, ctl=None):
    proc = audit(env, "--json", ctl=ctl)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["entries"]


def test_changes_and_refusals_are_recorded_with_who_what_and_result(env):
    env.ctl_ok("org", "add", "acme")
    assert env.ctl("org", "add", "acme").returncode == 2  # exists: refused input
    bad = os.path.join(env.dir, "wrong.token")
    with open(bad, "w") as f:
        f.write("ab" * 32 + "\n")
    assert env.ctl("org", "add", "evil", token_file=bad).returncode != 0
    env.ctl_ok("org", "list")  # a read: not an action

    got = entries(env)
    by_action = [(e["actor"], e["action"], e["object"], e["status"], e["result"]) for e in got]
    assert ("admin", "POST /v1/admin/organizations", "organizations name=acme", 201, "ok") \
        in by_action
    assert ("admin", "POST /v1/admin/organizations", "organizations name=acme", 409,
            "failed: exists") in by_action
    assert ("-", "POST /v1/admin/organizations", "organizations name=evil", 401,
            "refused: unauthorized") in by_action
    assert not any(e["action"].startswith("GET ") and e["status"] < 400 for e in got)
    for e in got:
        assert e["peer"].startswith("127.0.0.1:") and e["time"].endswith("Z")
        assert isinstance(e["id"], int) and isinstance(e["status"], int)
        assert len(e["hash"]) == 64
    # The refused token is nowhere: not in the audit, not in the database.
    with open(os.path.join(env.cloud.state, "cloud.db"), "rb") as f:
        assert b"ab" * 32 not in f.read()
    # The organisation that was refused does not exist.
    assert "evil" not in env.ctl_ok("org", "list")

    # The text table, and --since.
    table = env.ctl_ok("audit")
    assert table.splitlines()[0].split()[:4] == ["ID", "TIME", "WHO", "FROM"]
    assert "refused: unauthorized" in table
    later = audit(env, "--since", "2999-01-01T00:00:00Z", "--json")
    assert later.returncode == 0 and json.loads(later.stdout)["entries"] == []
    assert audit(env, "--since", "yesterday").returncode == 2


def test_wrong_role_is_refused_and_recorded_at_the_redirector(env):
    cloud_token = env.cloud_token_file  # a cloud-role token at the redirector
    from conftest import run
    proc = run("onrampctl", "redirect", "--url", env.redirector.url, "--ca", env.redirect_pki.ca,
               "--token-file", cloud_token, "token", "add", "sneaky")
    assert proc.returncode != 0
    got = entries(env, ctl=env.redirect)
    assert any(e["actor"] == "acme-cloud" and e["role"] == "cloud" and e["status"] == 403
               and e["result"] == "refused: forbidden" and e["object"] == "tokens name=sneaky"
               for e in got)
    # Only an admin reads the audit.
    proc = run("onrampctl", "redirect", "--url", env.redirector.url, "--ca", env.redirect_pki.ca,
               "--token-file", cloud_token, "audit")
    assert proc.returncode != 0


def test_the_chain_verifies_and_an_edited_entry_breaks_it(env):
    for name in ("a1", "a2", "a3"):
        env.ctl_ok("org", "add", name)
    proc = audit(env, "--verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("audit chain verified: ")
    first = entries(env)[1]["id"]
    db = sqlite3.connect(os.path.join(env.cloud.state, "cloud.db"))
    db.execute("UPDATE audit SET actor = 'someone-else' WHERE id = ?", (first,))
    db.commit()
    db.close()
    proc = audit(env, "--verify")
    assert proc.returncode == 1
    assert f"audit chain BROKEN at entry {first}" in proc.stdout
    doc = json.loads(audit(env, "--verify", "--json").stdout)
    assert doc["verified"] is False and doc["broken_at"] == first


def test_a_change_whose_entry_cannot_be_written_is_not_made(env):
    db = sqlite3.connect(os.path.join(env.cloud.state, "cloud.db"))
    db.execute("CREATE TRIGGER audit_full BEFORE INSERT ON audit "
               "BEGIN SELECT RAISE(ABORT, 'audit refused'); END")
    db.commit()
    db.close()
    proc = env.ctl("org", "add", "ghost")
    assert proc.returncode == 1 and "could not be recorded" in proc.stderr
    db = sqlite3.connect(os.path.join(env.cloud.state, "cloud.db"))
    db.execute("DROP TRIGGER audit_full")
    db.commit()
    db.close()
    assert "ghost" not in env.ctl_ok("org", "list")


def test_a_change_the_busy_database_cannot_start_is_refused_and_not_made(env):
    """A change whose transaction cannot be opened (another writer holds the
    cloud's SQLite write lock past its 5 s busy timeout, as a large setup on a
    loaded machine did) is answered 503 with Retry-After and is not made: it
    was once answered 500 and then made all the same, so that asking again
    answered 409."""
    import threading
    import time
    db = sqlite3.connect(os.path.join(env.cloud.state, "cloud.db"), timeout=30,
                         isolation_level=None, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")
    released = threading.Timer(7.0, db.rollback)
    released.start()
    try:
        proc = env.ctl("org", "add", "busy-org")
        asked = time.monotonic()
    finally:
        released.join()
        db.close()
    assert proc.returncode == 1, proc.stderr
    assert "503" in proc.stderr and "database is busy" in proc.stderr, proc.stderr
    assert "nothing was changed" in proc.stderr
    # A handler that ran anyway would have waited out the lock and committed by now.
    time.sleep(max(0.0, 1.0 - (time.monotonic() - asked)))
    assert "busy-org" not in env.ctl_ok("org", "list")
    assert "cannot open a transaction" in env.cloud.log_text()
    env.ctl_ok("org", "add", "busy-org")
    assert "busy-org" in env.ctl_ok("org", "list")
