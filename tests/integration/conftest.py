"""Shared fixtures for onramp's integration tests: they run the real programs
from the normal build (ONRAMP_BUILD, default ./build)."""
import contextlib
import fcntl
import glob
import os
import subprocess
import itertools
import shutil
import signal
import socket
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ONRAMP_BUILD", os.path.join(ROOT, "build"))

PROGRAMS = {
    "onrampctl": "ctl/onrampctl",
    "trust-tool": "tests/tools/trust-tool",
    "onramp-agent": "agent/onramp-agent",
    "http_test_server": "tests/tools/http_test_server",
    "test_store": "tests/unit/test_store",
    "onramp-conductord": "conductord/onramp-conductord",
    "conductor-router": "tests/tools/conductor-router",
    "onramp-redirectd": "redirectd/onramp-redirectd",
    "onramp-cloudd": "cloudd/onramp-cloudd",
    "onramp-test-device": "tests/tools/onramp-test-device",
    "unseal": "tests/tools/unseal",
    "onramp-fleetsim": "fleetsim/onramp-fleetsim",
    "onramp-bench-load": "bench/onramp-bench-load",
}


def core_dumps_disabled(pid):
    """True when the process cannot write a core file (its secrets stay off the disk)."""
    with open(f"/proc/{pid}/limits") as f:
        core = [line.split() for line in f if line.startswith("Max core file size")]
    return core == [["Max", "core", "file", "size", "0", "0", "bytes"]]


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


def free_port_pair():
    """A port P on 127.0.0.1 with P+1 also free (swtpm wants two). Taken below the
    kernel's ephemeral range, where the connections of busy tests (and their
    TIME_WAIT) never land; a random start keeps test processes side by side apart."""
    import random
    import socket
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for _ in range(500):
        port = random.randrange(max(1024, low - 12000), low - 1)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports")


class SwTPM:
    """A real swtpm (TPM 2.0 simulator) on 127.0.0.1, its state in state_dir.
    stop() and start() again on the same state is a TPM restart."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.proc = None
        self.port = None

    @property
    def tcti(self):
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self):
        import socket
        import time
        os.makedirs(self.state_dir, exist_ok=True)
        self.port = free_port_pair()
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpmstate", f"dir={self.state_dir}", "--tpm2",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"swtpm exited: {self.proc.stderr.read().decode()}")
            try:
                # The control port: a probe there does not take the TPM's one client slot.
                socket.create_connection(("127.0.0.1", self.port + 1), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("swtpm did not start listening")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()


@pytest.fixture
def swtpm_factory(tmp_path):
    """Starts swtpm instances on demand (each with its own state); all are stopped by PID at
    the end, also when the test fails."""
    started = []

    def make(name="tpm"):
        tpm = SwTPM(str(tmp_path / f"swtpm-{name}")).start()
        started.append(tpm)
        return tpm

    yield make
    for tpm in started:
        tpm.stop()


@pytest.fixture
def swtpm(swtpm_factory):
    """One running swtpm; .tcti is the string for onramp's tpm_open."""
    return swtpm_factory()
PG_BIN = "/usr/lib/postgresql/15/bin"


def stop_process(proc):
    """Stops a process a test started, by its PID: SIGTERM (a clean exit, so
    sanitizers report), then SIGKILL after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(what, predicate, timeout=20.0, interval=0.1):
    """Polls predicate until it returns a true value, which is returned; fails
    naming `what` on timeout (a bound, not a timing assertion)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


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
        self.server_start()

    def server_stop(self):
        """Stops the server (fast shutdown: clients are disconnected), keeping its data."""
        subprocess.run(self._as_postgres(f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "fast",
                                         "-w", "stop"),
                       check=True, capture_output=True, timeout=60)

    def server_start(self):
        """Starts the server again on its data, socket and port."""
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


@contextlib.contextmanager
def postgres_cluster():
    """A PostgreSQL cluster, stopped (by pg_ctl, else by PID) and removed at the
    end even when the test fails."""
    pg = Postgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster for the whole session."""
    with postgres_cluster() as pg:
        yield pg


@pytest.fixture
def e2e_lab(tmp_path):
    """The end-to-end lab (tests/integration/e2elab.py): servers started on demand,
    every process stopped by PID at the end."""
    from e2elab import Lab
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def newest_source_mtime():
    """The newest modification time of the files `make package` packs: those git
    tracks and the new ones it does not ignore (scripts/build-package.sh)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    newest = 0.0
    for name in filter(None, out.split("\0")):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, os.lstat(os.path.join(ROOT, name)).st_mtime)
    return newest


@pytest.fixture(scope="session")
def onramp_deb():
    """The onramp .deb that `make package` builds from this tree, built at most once
    per session and kept in BUILD/package-cache: reused while no source file is newer
    than the build's start (building takes about a minute)."""
    cache = os.path.join(BUILD, "package-cache")
    os.makedirs(cache, exist_ok=True)
    # Test processes running side by side (pytest -n) build it once: the others wait.
    with open(os.path.join(cache, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return cached_or_built_deb(cache)


def cached_or_built_deb(cache):
    """The cached .deb while it is newer than every source, else a new build of it."""
    debs = glob.glob(os.path.join(cache, "onramp_*.deb"))
    if len(debs) == 1 and os.stat(debs[0]).st_mtime >= newest_source_mtime():
        return debs[0]
    started = time.time()
    scratch = tempfile.mkdtemp(prefix="build-", dir=cache)
    try:
        proc = subprocess.run(["make", "--no-print-directory", "-C", ROOT, "package",
                               f"BUILD={scratch}"], capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        built = glob.glob(os.path.join(scratch, "package", "onramp_*.deb"))
        assert len(built) == 1, proc.stdout
        for old in debs:
            os.unlink(old)
        deb = os.path.join(cache, os.path.basename(built[0]))
        os.replace(built[0], deb)
        # Dated by the build's start: a file changed while it ran makes it stale.
        os.utime(deb, (started, started))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return deb
