"""PostgreSQL as a Patroni cluster for the scale-out tests and `make scale`
(issue 15): Debian's etcd (one member, the DCS) and Debian's patroni running
two PostgreSQL 15 nodes, a primary and a replica with synchronous replication
(synchronous_mode: a commit is acknowledged once the replica has it). All on
127.0.0.1; every process started here and stopped by PID.

    cluster = PatroniCluster().start()
    conninfo = cluster.conninfo("mydb")   # multi-host, target_session_attrs=read-write
    old = cluster.kill_primary()          # kill -9 Patroni and its postmaster
    cluster.wait_primary(other_than=old)
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import urllib.request

from conftest import PG_BIN, free_port, stop_process, wait_until

ETCD = "/usr/bin/etcd"
PATRONI = "/usr/bin/patroni"


def as_postgres(cmd):
    """cmd as the postgres user (initdb refuses root), exec'ed in place, so the
    PID we hold is the program's own."""
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups",
            "--reset-env", *cmd]


class PatroniCluster:
    """etcd and two Patroni nodes (pg0, pg1)."""

    def __init__(self, nodes=2, ttl=10):
        self.dir = tempfile.mkdtemp(prefix="onramp-patroni-")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        self.etcd_port, self.etcd_peer = free_port(), free_port()
        self.ttl = ttl
        self.nodes = [{"name": f"pg{i}", "port": free_port(), "api": free_port(), "proc": None}
                      for i in range(nodes)]
        self.etcd = None

    def _log(self, name):
        return open(os.path.join(self.dir, f"{name}.log"), "ab")

    def _config(self, node):
        data = os.path.join(self.dir, node["name"])
        path = os.path.join(self.dir, f"{node['name']}.yml")
        config = {
            "scope": "onramp", "name": node["name"],
            "restapi": {"listen": f"127.0.0.1:{node['api']}",
                        "connect_address": f"127.0.0.1:{node['api']}"},
            "etcd3": {"host": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {"ttl": self.ttl, "loop_wait": 1, "retry_timeout": 5,
                        "synchronous_mode": True,
                        "postgresql": {"use_pg_rewind": False,
                                       "parameters": {"synchronous_commit": "on",
                                                      "fsync": "off"}}},
                "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}],
                "pg_hba": ["local all all trust", "host all all 127.0.0.1/32 trust",
                           "host replication all 127.0.0.1/32 trust"]},
            "postgresql": {
                "listen": f"127.0.0.1:{node['port']}",
                "connect_address": f"127.0.0.1:{node['port']}",
                "data_dir": data, "bin_dir": PG_BIN,
                "pgpass": os.path.join(self.dir, f"{node['name']}.pgpass"),
                "authentication": {"superuser": {"username": "postgres"},
                                   "replication": {"username": "postgres"}},
                "parameters": {"unix_socket_directories": self.dir}},
        }
        with open(path, "w") as f:
            json.dump(config, f)  # YAML is a superset of JSON
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")
        return path

    def start(self):
        """etcd, then the nodes; returns once there is a primary and a
        streaming synchronous replica."""
        try:
            self.etcd = subprocess.Popen(
                as_postgres([ETCD, "--name", "e0", "--data-dir",
                             os.path.join(self.dir, "etcd"),
                             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                             "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
                             "--initial-advertise-peer-urls",
                             f"http://127.0.0.1:{self.etcd_peer}",
                             "--initial-cluster", f"e0=http://127.0.0.1:{self.etcd_peer}"]),
                stdout=self._log("etcd"), stderr=subprocess.STDOUT, cwd=self.dir)
            wait_until("etcd to answer", lambda: self._get(self.etcd_port, "/health"))
            for node in self.nodes:
                self.start_node(node)
                if node is self.nodes[0]:
                    self.wait_primary()
            wait_until("a synchronous standby streaming", self.sync_standby, timeout=90)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, node):
        # In its own directory: Patroni's worker processes change to their
        # parent's directory, which the postgres user may not enter (a checkout
        # under a directory only root can read).
        node["proc"] = subprocess.Popen(as_postgres([PATRONI, self._config(node)]),
                                        stdout=self._log(node["name"]),
                                        stderr=subprocess.STDOUT, cwd=self.dir)

    def _get(self, port, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return json.loads(r.read() or b"{}") or {"ok": True}
        except (OSError, ValueError):
            return None

    def members(self):
        for node in self.nodes:
            if node["proc"] is not None and node["proc"].poll() is None:
                cluster = self._get(node["api"], "/cluster")
                if cluster:
                    return cluster.get("members", [])
        return []

    def primary(self):
        """The name of the running leader, or None."""
        for m in self.members():
            if m.get("role") == "leader" and m.get("state") == "running":
                return m["name"]
        return None

    def sync_standby(self):
        return any(m.get("role") == "sync_standby" and m.get("state") in ("streaming",
                                                                           "running")
                   for m in self.members())

    def wait_primary(self, other_than=None, timeout=90):
        return wait_until("a Patroni primary" + (f" other than {other_than}"
                                                  if other_than else ""),
                          lambda: (self.primary() not in (None, other_than)
                                   and self.primary()), timeout=timeout)

    def node(self, name):
        return next(n for n in self.nodes if n["name"] == name)

    def kill_primary(self):
        """kill -9 the primary's Patroni and its postmaster (a machine lost)."""
        name = self.primary()
        node = self.node(name)
        pidfile = os.path.join(self.dir, name, "postmaster.pid")
        with open(pidfile) as f:
            postmaster = int(f.readline())
        node["proc"].kill()
        node["proc"].wait()
        try:
            os.kill(postmaster, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return name

    def conninfo(self, dbname):
        hosts = ",".join("127.0.0.1" for _ in self.nodes)
        ports = ",".join(str(n["port"]) for n in self.nodes)
        return (f"host={hosts} port={ports} user=postgres dbname={dbname} "
                "target_session_attrs=read-write connect_timeout=3")

    def psql(self, sql, dbname="postgres"):
        proc = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d",
                               self.conninfo(dbname), "-c", sql],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def new_database(self, name):
        self.psql(f'CREATE DATABASE "{name}"')
        return self.conninfo(name)

    def stop(self):
        for node in self.nodes:
            stop_process(node["proc"])
        for node in self.nodes:
            pidfile = os.path.join(self.dir, node["name"], "postmaster.pid")
            if os.path.exists(pidfile):
                subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-D",
                                            os.path.join(self.dir, node["name"]), "-m",
                                            "immediate", "stop"]),
                               capture_output=True, timeout=60, cwd=self.dir)
        stop_process(self.etcd)
        shutil.rmtree(self.dir, ignore_errors=True)
