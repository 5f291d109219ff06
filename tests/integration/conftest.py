"""Shared fixtures for onramp's integration tests: they run the real programs
from the normal build (ONRAMP_BUILD, default ./build)."""
import os
import subprocess
import itertools
import shutil
import socket
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ONRAMP_BUILD", os.path.join(ROOT, "build"))

PROGRAMS = {
    "onrampctl": "ctl/onrampctl",
    "http_test_server": "tests/tools/http_test_server",
    "test_store": "tests/unit/test_store",
}


def program(name):
    """Path of a built program, failing the test clearly when it was not built."""
    path = os.path.join(BUILD, PROGRAMS[name])
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built; run 'make' first")
    return path


def run(name, *args, check=False, **kwargs):
    """Runs a built program and returns the CompletedProcess (text mode)."""
    proc = subprocess.run([program(name), *args], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 60), **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def ctl():
    return lambda *args, **kw: run("onrampctl", *args, **kw)


PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A throw-away PostgreSQL 15 cluster listening on a Unix socket only
    (listen_addresses=''), in a temp dir owned by the postgres user."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="onramp-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self._names = itertools.count(1)
        self.conninfo = self.conninfo_for("postgres")

    def _as_postgres(self, *cmd):
        # initdb refuses to run as root: as root, run the tools as postgres
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *cmd]
        return list(cmd)

    def start(self):
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        subprocess.run(self._as_postgres(f"{PG_BIN}/initdb", "-D", self.data, "-A", "trust",
                                         "-U", "postgres", "--no-sync"),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(self._as_postgres(
            f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"),
            "-o", f"-k {self.dir} -p {self.port} -c listen_addresses='' -c fsync=off",
            "-w", "start"), check=True, capture_output=True, timeout=120)

    def conninfo_for(self, dbname):
        return f"host={self.dir} port={self.port} user=postgres dbname={dbname}"

    def url_for(self, dbname):
        """The same database as a postgresql:// URL (socket dir as host parameter)."""
        return f"postgresql://postgres@/{dbname}?host={self.dir}&port={self.port}"

    def psql(self, sql, dbname="postgres"):
        return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                               self.conninfo_for(dbname), "-c", sql],
                              check=True, capture_output=True, text=True, timeout=60)

    def new_database(self, name="test"):
        """Creates a fresh, empty database and returns its conninfo."""
        dbname = f"{name}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{dbname}"')
        return self.conninfo_for(dbname)

    def stop(self):
        pidfile = os.path.join(self.data, "postmaster.pid")
        if os.path.exists(pidfile):
            proc = subprocess.run(self._as_postgres(f"{PG_BIN}/pg_ctl", "-D", self.data,
                                                    "-m", "fast", "-w", "stop"),
                                  capture_output=True, timeout=60)
            if proc.returncode != 0 and os.path.exists(pidfile):
                with open(pidfile) as f:
                    pid = int(f.readline())
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster for the whole session, stopped (by pg_ctl, else by
    PID) and removed at the end even when tests fail."""
    pg = Postgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
