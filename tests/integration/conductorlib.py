"""Helpers for the conductor's integration tests: a real onramp-conductord
(its own state directory, SQLite or PostgreSQL, ports chosen by the kernel),
onrampctl conductor against its admin API, and the router side
(tests/tools/conductor-router, on lib/conductor_client) as a process.
Everything is started here and stopped by PID, even when a test fails."""
import json
import os
import shutil
import subprocess
import tempfile
import threading

from conftest import program, stop_process, wait_until

PEERING = {
    "version": 1,
    "router": {"name": "r1"},
    "hub": {"name": "hub-east", "addresses": ["127.0.0.1:1280", "hub.example.net"]},
    "neighborhoods": [{"name": "mpls-core", "topology": "spoke", "vector": "mpls"}],
}




class Managed:
    """A process of ours (self.proc) with its own temp directory (self.dir)."""

    proc = None
    dir = None

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Conductor(Managed):
    """One conductor daemon with its own state directory."""

    def __init__(self, role, name, database=None, poll_timeout=3, revert_window=300,
                 extra=""):
        self.role = role
        self.name = name
        self.database, self.poll_timeout, self.extra = database, poll_timeout, extra
        self.dir = tempfile.mkdtemp(prefix=f"onramp-conductor-{name}-")
        self.state = os.path.join(self.dir, "state")
        self.token_file = os.path.join(self.dir, "token")
        self.ports_file = os.path.join(self.dir, "ports.json")
        self.log_path = os.path.join(self.dir, "conductord.log")
        self.config = os.path.join(self.dir, "conductord.conf")
        self.proc = None
        self.port = self.admin_port = None
        db_line = f"database = {database}\n" if database else ""
        with open(self.config, "w") as f:
            f.write(f"[conductor]\nrole = {role}\nname = {name}\nstate-dir = {self.state}\n"
                    f"{db_line}listen = 127.0.0.1\nport = 0\nthreads = 2\n"
                    f"poll-timeout = {poll_timeout}\nrevert-window = {revert_window}\n"
                    f"ports-file = {self.ports_file}\n{extra}"
                    "[admin]\nlisten = 127.0.0.1\nport = 0\n")

    def init(self):
        proc = subprocess.run([program("onramp-conductord"), "init", "--config", self.config,
                               "--token-file", self.token_file],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc

    def start(self, port=0):
        """Starts the daemon (on a given router port when restarting) and waits for it."""
        if os.path.exists(self.ports_file):
            os.unlink(self.ports_file)
        if port:
            with open(self.config) as f:
                text = f.read().replace("\nport = 0\nthreads", f"\nport = {port}\nthreads")
            with open(self.config, "w") as f:
                f.write(text)
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([program("onramp-conductord"), "run", "--config",
                                      self.config], stdout=log, stderr=log)
        log.close()
        wait_until(f"{self.name} to listen",
                   lambda: os.path.exists(self.ports_file) or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.log()
        with open(self.ports_file) as f:
            ports = json.load(f)
        self.port, self.admin_port = ports["port"], ports["admin_port"]
        return self


    def twin(self, name):
        """Another instance of this conductor on the same PostgreSQL database: a copy
        of the state directory (master key, CA, server certificate) with its own
        configuration and ports; the admin token of the first works on both."""
        other = Conductor(self.role, name, database=self.database,
                          poll_timeout=self.poll_timeout, extra=self.extra)
        shutil.copytree(self.state, other.state)
        other.token_file = self.token_file
        return other

    def stop(self):
        """Stops the daemon; a clean stop exits 0 (a sanitizer report or a crash would not)."""
        proc = self.proc
        super().stop()
        if proc is not None and proc.returncode != 0:
            raise AssertionError(f"{self.name} exited {proc.returncode}:\n{self.log()[-3000:]}")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def ca(self):
        return os.path.join(self.state, "ca.pem")

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def ctl(self, *args, token_file=None, timeout=120):
        """onrampctl conductor against this conductor's admin API."""
        cmd = [program("onrampctl"), "conductor", "--url",
               f"https://127.0.0.1:{self.admin_port}", "--ca", self.ca,
               "--token-file", token_file or self.token_file, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def ok(self, *args, **kw):
        proc = self.ctl(*args, **kw)
        assert proc.returncode == 0, f"{args}: {proc.returncode} {proc.stderr}"
        return proc.stdout

    def psk(self, name=None):
        """A new pre-shared secret, written to a file; returns (path, secret)."""
        out = self.ok("psk", "create", *(["--name", name] if name else []))
        secret = out.strip()
        path = os.path.join(self.dir, f"psk-{name or len(os.listdir(self.dir))}")
        with open(path, "w") as f:
            f.write(secret + "\n")
        return path, secret

    def add_router(self, name="r1", asset_id="ASSET-0001", peering=None):
        config = dict(peering or PEERING)
        config["router"] = {"name": name}
        path = os.path.join(self.dir, f"{name}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.ok("router", "add", name, "--asset-id", asset_id, "--config", path)
        return path

    def assets(self):
        return json.loads(self.ok("show", "assets", "--json"))["assets"]

    def asset(self, asset_id, state=None):
        for a in self.assets():
            if a["asset_id"] == asset_id and (state is None or a["state"] == state):
                return a
        return None

    def router_record(self, name):
        return json.loads(self.ok("router", "show", name, "--json"))

    def wait_state(self, asset_id, state, timeout=20.0):
        return wait_until(f"{asset_id} to be {state} on {self.name}",
                          lambda: self.asset(asset_id, state), timeout=timeout)


class Router(Managed):
    """tests/tools/conductor-router: the real router side, as a process."""

    def __init__(self, asset_id="ASSET-0001", state_dir=None, proxy=None, tcti=None):
        self.asset_id = asset_id
        self.dir = state_dir or tempfile.mkdtemp(prefix="onramp-router-")
        self.proxy = proxy
        self.tcti = tcti
        self.proc = None
        self.reports = []
        self.err_path = os.path.join(self.dir, "router.log")

    def base_args(self):
        args = [program("conductor-router"), "--state-dir", self.dir, "--asset-id",
                self.asset_id]
        args += ["--tcti", self.tcti] if self.tcti else ["--software"]
        if self.proxy:
            args += ["--proxy", self.proxy["address"]]
            if self.proxy.get("user"):
                args += ["--proxy-user", self.proxy["user"], "--proxy-password-file",
                         self.proxy["password_file"]]
        return args

    def start(self, conductor=None, psk_file=None, poll_wait=2, assertion_file=None):
        args = self.base_args() + ["--poll-wait", str(poll_wait)]
        if conductor is not None:
            args += ["--staging", conductor.address, "--root-ca", conductor.ca,
                     "--psk-file", psk_file]
        if assertion_file is not None:
            args += ["--assertion-file", assertion_file]
        err = open(self.err_path, "a")
        self.proc = subprocess.Popen(args + ["run"], stdout=subprocess.PIPE, stderr=err,
                                     text=True)
        err.close()
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.reports.append(json.loads(line))
            except ValueError:
                pass

    def wait_report(self, step, ok=True, timeout=20.0, after=0):
        def find():
            for r in self.reports[after:]:
                if r["step"] == step and r["ok"] == ok:
                    return r
            return None
        return wait_until(f"router report {step} ok={ok}", find, timeout=timeout)

    def run_tool(self, *args, timeout=60):
        return subprocess.run(self.base_args() + list(args), capture_output=True, text=True,
                              timeout=timeout)

    def current(self):
        """Which conductor the router's state names as current (read from the
        state file: a second process could not open a swtpm in use)."""
        with open(self.path("conductor.json")) as f:
            return json.load(f).get("current")


    def path(self, name):
        return os.path.join(self.dir, name)

    def log(self):
        with open(self.err_path, "rb") as f:
            data = f.read()
        return data.decode()
