"""Scale-out lab (issue 15): every daemon as several instances on one
PostgreSQL, behind HAProxy in TCP mode (TLS ends at our daemons), with
HAProxy's health checks on GET /healthz over TLS. Built on the end-to-end lab
(e2elab.py): squid, the real agents with software identities, onrampctl for
every operator step. Instances can be killed with -9 and started again.

    lab = ScaleLab(tmp_path, postgres, instances=2)
    lab.start()                       # redirectd, cloudd, staging, production x N + HAProxy
    agents = [lab.new_router(f"SSR1000-SCALE-{i:04d}", f"r{i}") for i in range(n)]
    lab.kill9("cloudd", 0); lab.restart("cloudd", 0)

The fleet simulator (onramp-fleetsim) drives routers through squid and the
frontends: lab.fleet_setup(n, dir, prefix), lab.fleet_start(dir, ...), and
lab.running_routers(prefix) asks the production conductor's database.

Every process is started here and stopped by PID in close()."""
import json
import os
import shutil
import signal
import subprocess

from conftest import free_port, program, wait_until
from e2elab import Agent, Conductor, Lab

HAPROXY = "/usr/sbin/haproxy"
SERVICES = ("redirectd", "cloudd", "staging", "production")


class Haproxy:
    """HAProxy in TCP mode: one frontend per service, balanced over its
    instances, each checked with GET /healthz over TLS (verified with the CA)."""

    def __init__(self, lab):
        self.lab = lab
        self.frontends = {s: free_port() for s in SERVICES}
        self.config = os.path.join(lab.dir, "haproxy.cfg")
        self.proc = None

    def write(self, backends, cas):
        """backends: service -> [port of each instance]; cas: service -> CA file."""
        text = ["global", "    maxconn 8000", "defaults", "    mode tcp",
                "    timeout connect 2s", "    timeout client 300s", "    timeout server 300s",
                "    timeout check 2s", "    retries 3", "    option redispatch"]
        for service in SERVICES:
            # Conductor connections are long polls: the least loaded instance takes the next.
            balance = "leastconn" if service in ("staging", "production") else "roundrobin"
            text += [f"listen {service}", f"    bind 127.0.0.1:{self.frontends[service]}",
                     f"    balance {balance}", "    option httpchk GET /healthz",
                     "    http-check expect status 200",
                     f"    default-server check check-ssl verify required ca-file "
                     f"{cas[service]} inter 500ms fall 1 rise 1"]
            text += [f"    server {service}{i} 127.0.0.1:{port}"
                     for i, port in enumerate(backends[service])]
            # When every instance fails its check (their database is away: a
            # failover), the same instances unchecked: the devices get the
            # daemons' own 503 and retry, not a connection closed in their TLS
            # handshake by a balancer with no server.
            text += ["    option allbackups"]
            text += [f"    server {service}{i}-unchecked 127.0.0.1:{port} backup no-check"
                     for i, port in enumerate(backends[service])]
        with open(self.config, "w") as f:
            f.write("\n".join(text) + "\n")

    def start(self):
        check = self.lab.run(HAPROXY, "-c", "-f", self.config)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = self.lab.spawn("haproxy", [HAPROXY, "-db", "-f", self.config])
        for service, port in self.frontends.items():
            self.lab.wait_listening(self.proc, port, "haproxy")


class ConductorInstance(Conductor):
    """Another instance of a conductor: a copy of the first one's state
    directory (master key, CA, server certificate), the same database, its own
    ports and log."""

    def __init__(self, lab, first, index):
        self.lab, self.role = lab, first.role
        self.log_name = f"conductor-{first.role}-{index}"
        self.dir = os.path.join(lab.dir, f"{first.role}-{index}")
        self.state = os.path.join(self.dir, "state")
        shutil.copytree(first.state, self.state)
        self.config = os.path.join(self.dir, "conductord.conf")
        self.ports_file = os.path.join(self.dir, "ports.json")
        self.token_file = first.token_file
        self.port, self.hold = free_port(), None
        self._write_config(self.port, first.db_line)
        self.start()

    def start(self):
        if os.path.exists(self.ports_file):
            os.unlink(self.ports_file)
        self.proc = self.lab.spawn(self.log_name, [program("onramp-conductord"), "run",
                                                   "--config", self.config])
        wait_until(f"{self.log_name} to listen",
                   lambda: os.path.exists(self.ports_file) or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.lab.log(self.log_name)
        with open(self.ports_file) as f:
            self.admin_port = json.load(f)["admin_port"]
        return self

    def log(self):
        return self.lab.log(self.log_name)


class ConductorGroup:
    """The instances of one conductor as the operators and routers see them:
    the address is HAProxy's frontend; admin commands go to a live instance."""

    hold = None

    def __init__(self, lab, role, instances):
        self.lab, self.role = lab, role
        first = Conductor(lab, role, port=free_port())
        self.instances = [first] + [ConductorInstance(lab, first, i)
                                    for i in range(1, instances)]
        self.port = lab.haproxy.frontends[role]
        self.ca = os.path.join(first.state, "ca.pem")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def live(self):
        return next(c for c in self.instances if c.proc.poll() is None)

    def __getattr__(self, name):
        # ctl, ok, psk, ca_export, add_router, asset_state, router: on a live instance
        return getattr(self.live(), name)


class ScaleLab(Lab):
    """The e2e lab with every daemon as `instances` instances behind HAProxy."""

    def __init__(self, tmp, postgres, instances=2, poll_timeout=5):
        self.databases = databases = {}  # role -> conninfo, one database per service

        def database_for(role):
            if role not in databases:
                databases[role] = postgres.new_database(role)
            return databases[role]

        super().__init__(tmp, database_for=database_for, poll_timeout=poll_timeout)
        self.instances = instances
        self.haproxy = Haproxy(self)
        self.daemons = {}  # service -> [(program, conf, port, proc)]
        self.agents = []

    # ---- servers -------------------------------------------------------------

    def _daemon_instances(self, name, section, pki, extra):
        """init once, then `instances` processes on their own ports, one database."""
        ports = [free_port() for _ in range(self.instances)]
        self._cloud_daemon(name, section, pki, ports[0], extra)
        first_conf = os.path.join(self.dir, f"{section}.conf")
        with open(first_conf) as f:
            text = f.read()
        entries = [[name, first_conf, ports[0], self.procs[-1]]]
        for i, port in enumerate(ports[1:], start=1):
            conf = os.path.join(self.dir, f"{section}-{i}.conf")
            with open(conf, "w") as f:
                f.write(text.replace(f"\nport = {ports[0]}\n", f"\nport = {port}\n"))
            proc = self.spawn(f"{section}-{i}", [program(name), "--config", conf])
            self.wait_listening(proc, port, f"{name} {i}")
            entries.append([name, conf, port, proc])
        self.daemons[section] = entries
        return ports

    def start(self):
        """squid, N instances of every daemon on PostgreSQL, HAProxy in front."""
        self.start_squid()
        fe = self.haproxy.frontends
        self.redirect_port = fe["redirectd"]
        self.redirect_url = f"https://127.0.0.1:{self.redirect_port}"
        self.redirect_token = os.path.join(self.dir, "redirectd-admin.token")
        redirect_ports = self._daemon_instances(
            "onramp-redirectd", "redirectd", self.redirect_pki,
            f"retry_after = {self.redirect_retry}\n")
        # Until HAProxy runs, operators reach the first instance directly.
        self.redirect_url = f"https://127.0.0.1:{redirect_ports[0]}"
        cloud_token = os.path.join(self.dir, "cloud-at-redirector.token")
        with open(cloud_token, "w") as f:
            f.write(self.redirect("token", "add", "acme-cloud", "--role", "cloud"))
        self.redirect_url = f"https://127.0.0.1:{self.redirect_port}"
        self.cloud_port = fe["cloudd"]
        self.cloud_url = f"https://127.0.0.1:{self.cloud_port}"
        self.cloud_token = os.path.join(self.dir, "cloudd-admin.token")
        cloud_ports = self._daemon_instances(
            "onramp-cloudd", "cloudd", self.cloud_pki,
            f"public_url = {self.cloud_url}\npublic_ca_file = {self.cloud_pki.ca}\n"
            f"[redirector]\nurl = {self.redirect_url}\nca_file = {self.redirect_pki.ca}\n"
            f"token_file = {cloud_token}\n")
        self.inventory_pub = os.path.join(self.dir, "cloudd-state", "inventory.pub.pem")
        self.staging = ConductorGroup(self, "staging", self.instances)
        self.production = ConductorGroup(self, "production", self.instances)
        self.haproxy.write(
            {"redirectd": redirect_ports, "cloudd": cloud_ports,
             "staging": [c.port for c in self.staging.instances],
             "production": [c.port for c in self.production.instances]},
            {"redirectd": self.redirect_pki.ca, "cloudd": self.cloud_pki.ca,
             "staging": self.staging.ca, "production": self.production.ca})
        self.haproxy.start()
        self.cloud("org", "add", "acme")
        self.cloud("site", "add", "acme", "paris")
        staging_psk = self.staging.psk("paris")
        self.cloud("site", "set", "acme", "paris", "--conductor", "127.0.0.1", "--port",
                   str(self.staging.port), "--psk-file", staging_psk, "--ca-file",
                   self.staging.ca_export())
        return self

    def frontend(self, service):
        return f"127.0.0.1:{self.haproxy.frontends[service]}"

    # ---- the fleet simulator ---------------------------------------------------

    def fleet_setup(self, n, state_dir, prefix, concurrency=8, timeout=600):
        """onramp-fleetsim setup of n routers PREFIX-000001..: the factory's and
        the operators' work through HAProxy's frontends (redirector, cloud) and
        a live instance's admin API of each conductor (the instances share its
        database); staging gives each router the production frontend's address.
        Both conductors trust the cloud's onboarding assertions first (issue 12).
        Returns the serials."""
        if not getattr(self, "cloud_trusted", False):
            self.trust_cloud()
            self.cloud_trusted = True

        def admin(group):
            c = group.live()
            return [f"https://127.0.0.1:{c.admin_port}", group.ca, c.token_file]
        s, p = admin(self.staging), admin(self.production)
        proc = subprocess.run(
            [program("onramp-fleetsim"), "setup", "--routers", str(n), "--state-dir",
             state_dir, "--prefix", prefix, "--concurrency", str(concurrency),
             "--redirector", self.redirect_url, "--redirector-ca", self.redirect_pki.ca,
             "--redirector-token-file", self.redirect_token, "--inventory-key",
             self.inventory_pub, "--cloud", self.cloud_url, "--cloud-ca", self.cloud_pki.ca,
             "--cloud-token-file", self.cloud_token, "--staging", s[0], "--staging-ca", s[1],
             "--staging-token-file", s[2], "--production", p[0], "--production-ca", p[1],
             "--production-token-file", p[2], "--org", "acme", "--site", "paris",
             "--production-address", self.production.address, "--production-root-ca",
             self.production.ca],
            capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return [f"{prefix}-{i:06d}" for i in range(1, n + 1)]

    def fleet_start(self, state_dir, *args):
        """onramp-fleetsim on the routers of state_dir, through squid to HAProxy's
        redirector frontend (the cloud's and the conductors' addresses come from
        the cloud's answers and staging's production details: frontends too),
        --json summary on its stdout. Stopped by PID in close() if still running."""
        s = self.squid
        log = open(os.path.join(self.dir, f"fleetsim-{os.path.basename(state_dir)}.log"), "ab")
        proc = subprocess.Popen(
            [program("onramp-fleetsim"), "--state-dir", state_dir, "--redirector",
             self.redirect_url, "--redirector-ca", self.redirect_pki.ca, "--proxy",
             f"127.0.0.1:{s['port']}", "--proxy-user", s["user"], "--proxy-password-file",
             s["password_file"], "--json", *args],
            stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        self.procs.append(proc)
        return proc

    def running_routers(self, prefix=""):
        """(running, known) routers whose serial starts with prefix, asked of the
        production conductor's database (its store: the truth, not the simulator)."""
        like = prefix.replace("'", "''") + "%"
        rows = self.psql("production", "SELECT count(*) FILTER (WHERE progress = 'running'), "
                         f"count(*) FROM routers WHERE asset_id LIKE '{like}'")
        return int(rows[0][0]), int(rows[0][1])

    def psql(self, role, sql):
        """One query's rows (text, |-separated) from a service's database; tried
        again for up to a minute while no read-write server answers (a Patroni
        replica being promoted is still read-only for a moment)."""
        answers = []

        def ask():
            answers.append(subprocess.run(["psql", "-X", "-q", "-t", "-A", "-d",
                                           self.databases[role], "-c", sql],
                                          capture_output=True, text=True, timeout=60))
            return answers[-1].returncode == 0
        try:
            wait_until(f"{role}'s database to answer", ask, timeout=60, interval=1)
        except AssertionError:
            raise AssertionError(f"psql on {role}'s database: {answers[-1].stderr}")
        return [line.split("|") for line in answers[-1].stdout.splitlines() if line]

    def close(self):
        """Signals every process at once (each drains in parallel), then waits
        for each by PID (killing what does not stop) and cleans up. Returns the
        onramp processes that did not exit 0 on SIGTERM (those killed here
        excepted; haproxy and squid end by the signal)."""
        running = [p for p in self.procs if p.poll() is None]
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        super().close()
        return [(p.args, p.returncode) for p in running
                if p.returncode != 0 and os.path.basename(p.args[0]).startswith("onramp-")]

    # ---- instances -----------------------------------------------------------

    def _instance(self, service, index):
        if service in ("staging", "production"):
            return getattr(self, service).instances[index]
        return self.daemons[service][index]

    def kill9(self, service, index):
        """kill -9 one instance (its port stays free: HAProxy's check marks it down)."""
        inst = self._instance(service, index)
        proc = inst.proc if hasattr(inst, "proc") else inst[3]
        proc.kill()
        proc.wait()

    def restart(self, service, index):
        """Starts a killed instance again with its configuration and port."""
        inst = self._instance(service, index)
        if hasattr(inst, "proc"):
            inst.start()
            return
        name, conf, port, _ = inst
        log = f"{service}-{index}" if index else service
        inst[3] = self.spawn(log, [program(name), "--config", conf])
        self.wait_listening(inst[3], port, f"{name} {index}")

    # ---- routers -------------------------------------------------------------

    def new_router(self, serial, name, start=True):
        """A device made at the factory, known to both conductors (production
        details given to staging), claimed; its agent through squid (started
        unless start is False)."""
        state = self.provision(serial)
        self.staging.add_router(name, serial)
        self.production.add_router(name, serial)
        self.give_production_info(name)
        self.claim(serial)
        agent = Agent(self, state, name=f"agent-{name}")
        agent.router_name, agent.serial = name, serial
        if start:
            agent.start()
        self.agents.append(agent)
        return agent
