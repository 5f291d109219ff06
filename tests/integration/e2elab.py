"""The whole onramp flow for the end-to-end tests (issue 7), all real: a
redirector and an organisation cloud (certificates by the openssl CLI), a
staging and a production conductor, squid with Basic auth as the router's way
out, swtpm or a software identity, onrampctl for every operator step, and
onramp-agent onboarding the router.

The servers run on 127.0.0.1, either on this host or inside a network
namespace the test made (`ns`: then onrampctl runs there too, and squid also
listens on the namespace's veth address for an agent in another namespace).
Every process is started here and stopped by PID in close(), also when a
test fails."""
import base64
import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile

from cloud_env import Pki
from conductorlib import PEERING
from conftest import free_port, program, wait_until
from conftest import stop_process as stop_proc

STEPS = ["find-proxy", "phone-home", "authenticate", "onboarding-info", "staging-connect",
         "certificate", "configuration", "production-info", "migrate", "running"]


def hold_port(port):
    """Binds 127.0.0.1:port without listening: a connection there is refused and no
    other test on this machine can take the port while its server is down."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def release(holder):
    if holder is not None:
        holder.close()


class Lab:
    """The servers and the operators' onrampctl. ns: run them in that namespace."""

    def __init__(self, tmp, ns=None, database_for=None, redirect_retry=2, poll_timeout=2,
                 revert_window=300):
        self.dir = str(tmp)
        self.ns = ns
        self.prefix = ["ip", "netns", "exec", ns] if ns else []
        self.procs = []
        self.database_for = database_for or (lambda name: None)
        self.poll_timeout = poll_timeout
        self.revert_window = revert_window
        self.squid = None
        self.redirect_pki = Pki(self.dir, "redirect")
        self.cloud_pki = Pki(self.dir, "cloud")
        self.redirect_retry = redirect_retry
        self.cloud_extra = ""  # more [cloudd] keys, e.g. "assertion-lifetime = 5\n"
        # More keys for every daemon's main section (redirectd, cloudd, both conductors),
        # e.g. the rate limits of a site whose routers all come through one proxy.
        self.daemon_extra = ""

    # ---- processes ---------------------------------------------------------

    def spawn(self, name, args, prefix=None):
        """Starts args (in the lab's namespace unless prefix says otherwise)."""
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        proc = subprocess.Popen((self.prefix if prefix is None else prefix) + list(args),
                                stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, name):
        with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
            return f.read()

    def run(self, *args, timeout=60):
        return subprocess.run(self.prefix + list(args), capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args, timeout=60):
        proc = self.run(*args, timeout=timeout)
        assert proc.returncode == 0, f"{' '.join(args[:4])}...: {proc.stderr}"
        return proc.stdout

    def listening(self, port, host="127.0.0.1"):
        return f"{host}:{port} " in self.run("ss", "-ltnH").stdout

    def wait_listening(self, proc, port, name, host="127.0.0.1"):
        wait_until(f"{name} to listen on {host}:{port}",
                   lambda: proc.poll() is not None or self.listening(port, host))
        assert proc.poll() is None, self.log(name)

    def close(self):
        for proc in reversed(self.procs):
            stop_proc(proc)
        if self.squid is not None:
            self.release_squid_port()
            shutil.rmtree(self.squid["dir"], ignore_errors=True)
        for role in ("staging", "production"):
            if hasattr(self, role):
                release(getattr(self, role).hold)

    # ---- servers -----------------------------------------------------------

    def start_squid(self, port=None, listen="127.0.0.1", password="proxy-secret-e2e",
                    forbid_connect=False, resolver=None):
        """squid with Basic auth (user router), CONNECT only to 127.0.0.1 (none with
        forbid_connect: 403, as a proxy whose rules refuse the destination). With
        resolver (an address, port 53), squid asks only it, and CONNECT is not
        limited to 127.0.0.1: that rule resolves the name first, and refuses with
        403 one that does not resolve."""
        if self.squid is None:
            d = tempfile.mkdtemp(prefix="onramp-e2e-squid-")
            os.chmod(d, 0o755)
            self.squid = {"dir": d, "port": port or free_port(), "listen": listen,
                          "user": "router", "htpasswd": os.path.join(d, "htpasswd"),
                          "password_file": os.path.join(self.dir, "proxy-password")}
            with open(self.squid["password_file"], "w") as f:
                f.write(password + "\n")
            os.chmod(self.squid["password_file"], 0o600)
            self.set_squid_password(password)
        s = self.squid
        self.release_squid_port()
        conf = os.path.join(s["dir"], "squid.conf")
        with open(conf, "w") as f:
            f.write(f"http_port {s['listen']}:{s['port']}\npid_filename {s['dir']}/squid.pid\n"
                    f"cache_log {s['dir']}/cache.log\naccess_log stdio:{s['dir']}/access.log\n"
                    "cache deny all\n"
                    f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {s['htpasswd']}\n"
                    "acl authenticated proxy_auth REQUIRED\nacl here dst 127.0.0.1\n"
                    "acl tunnel method CONNECT\n"
                    + ("http_access deny tunnel\n" if forbid_connect else "")
                    + (f"dns_nameservers {resolver}\n" if resolver else
                       "http_access deny !here\n") +
                    "http_access allow authenticated\n"
                    "http_access deny all\nshutdown_lifetime 0 seconds\npinger_enable off\n")
        self._chown_squid()
        s["proc"] = self.spawn("squid", ["/usr/sbin/squid", "-N", "-f", conf])
        self.wait_listening(s["proc"], s["port"], "squid", s["listen"])
        return s

    def _chown_squid(self):
        proxy = pwd.getpwnam("proxy")
        for root, _, files in os.walk(self.squid["dir"]):
            for name in [root] + [os.path.join(root, n) for n in files]:
                os.chown(name, proxy.pw_uid, proxy.pw_gid)

    def set_squid_password(self, password):
        """What squid accepts for user router (basic_ncsa_auth rereads a changed file)."""
        subprocess.run(["htpasswd", "-b", "-c", self.squid["htpasswd"], "router", password],
                       check=True, capture_output=True)
        if self.squid.get("proc") is not None:
            self._chown_squid()

    def stop_squid(self):
        """Stops squid and holds its port until it starts again."""
        stop_proc(self.squid.get("proc"))
        self.squid["proc"] = None
        if self.squid["listen"] == "127.0.0.1" and not self.ns:
            self.squid["hold"] = hold_port(self.squid["port"])

    def release_squid_port(self):
        release(self.squid.pop("hold", None))

    def squid_connects(self):
        try:
            with open(os.path.join(self.squid["dir"], "access.log")) as f:
                return [line for line in f if " CONNECT " in line]
        except FileNotFoundError:
            return []

    def _cloud_daemon(self, name, section, pki, port, extra):
        database = self.database_for(section)
        conf = os.path.join(self.dir, f"{section}.conf")
        db = f"database = {database}\n" if database else ""
        with open(conf, "w") as f:
            f.write(f"[{section}]\naddress = 127.0.0.1\nport = {port}\n"
                    f"cert-file = {pki.cert}\nkey-file = {pki.key}\nthreads = 2\n"
                    f"state-dir = {self.dir}/{section}-state\n{db}{self.daemon_extra}{extra}")
        token = self.ok(program(name), "init", "--config", conf).strip()
        token_file = os.path.join(self.dir, f"{section}-admin.token")
        with open(token_file, "w") as f:
            f.write(token + "\n")
        os.chmod(token_file, 0o600)
        proc = self.spawn(section, [program(name), "--config", conf])
        self.wait_listening(proc, port, name)
        return token_file

    def start_redirector(self):
        self.redirect_port = free_port()
        self.redirect_url = f"https://127.0.0.1:{self.redirect_port}"
        self.redirect_token = self._cloud_daemon(
            "onramp-redirectd", "redirectd", self.redirect_pki, self.redirect_port,
            f"retry-after = {self.redirect_retry}\n")

    def redirect(self, *args):
        return self.ok(program("onrampctl"), "redirect", "--url", self.redirect_url, "--ca",
                       self.redirect_pki.ca, "--token-file", self.redirect_token, *args)

    def start_cloud(self):
        cloud_token = os.path.join(self.dir, "cloud-at-redirector.token")
        with open(cloud_token, "w") as f:
            f.write(self.redirect("token", "add", "acme-cloud", "--role", "cloud"))
        self.cloud_port = free_port()
        self.cloud_url = f"https://127.0.0.1:{self.cloud_port}"
        self.cloud_token = self._cloud_daemon(
            "onramp-cloudd", "cloudd", self.cloud_pki, self.cloud_port,
            f"public-url = {self.cloud_url}\npublic-ca-file = {self.cloud_pki.ca}\n"
            f"{self.cloud_extra}[redirector]\nurl = {self.redirect_url}\n"
            f"ca-file = {self.redirect_pki.ca}\ntoken-file = {cloud_token}\n")
        self.inventory_pub = os.path.join(self.dir, "cloudd-state", "inventory.pub.pem")

    def cloud(self, *args):
        return self.ok(program("onrampctl"), "cloud", "--url", self.cloud_url, "--ca",
                       self.cloud_pki.ca, "--token-file", self.cloud_token, *args)

    def cloud_json(self, *args):
        return json.loads(self.cloud(*args, "--json"))

    def start_conductor(self, role, port=0):
        c = Conductor(self, role, port)
        setattr(self, role, c)
        return c

    def start_all(self):
        self.start_redirector()
        self.start_cloud()
        self.start_conductor("staging")
        self.start_conductor("production")

    def router(self, serial, tcti=None, start=True, operators=None, **agent_kw):
        """squid, the four servers, one router provisioned and prepared by the
        operators (claimed, known to both conductors; operators: more arguments of
        operators()), and its agent."""
        self.start_squid()
        self.start_all()
        state = self.provision(serial, tcti=tcti)
        self.operators(serial, **(operators or {}))
        agent = Agent(self, state, tcti=tcti, **agent_kw)
        return agent.start() if start else agent

    # ---- the device and the operators ------------------------------------------

    def provision(self, serial, tcti=None, prefix=None):
        """onrampctl factory init-device; returns the device's state directory."""
        state = os.path.join(self.dir, f"router-{serial}")
        record = os.path.join(self.dir, f"{serial}.record.json")
        args = [program("onrampctl"), "factory", "init-device", "--serial", serial, "--model",
                "SSR1000", "--state-dir", state, "--cloud-key", self.inventory_pub, "--out",
                record]
        args += ["--tcti", tcti] if tcti else ["--software"]
        proc = subprocess.run((self.prefix if prefix is None else prefix) + args,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        # The factory registers the claim hash (never the secret) with the redirector.
        self.redirect("device", "register", record)
        self.cloud("inventory", "import", record)
        # The claim secret, as only the inventory reads it: secrets() greps for it.
        proc = subprocess.run([program("trust-tool"), "record-decrypt", "--record", record,
                               "--key", os.path.join(self.dir, "cloudd-state", "inventory.key")],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        with open(os.path.join(self.dir, f"{serial}.claim-secret"), "w") as f:
            f.write(proc.stdout.split()[3] + "\n")
        return state

    def operators(self, serial, router="r1", claim=True, production_info=True, trust=True,
                  staging_peering=None, production_peering=None, staging_router=True):
        """Organisation, site, conductors' secrets and CAs, the routers (with
        their peering configurations: PEERING unless given), the claim;
        trust: both conductors trust the cloud's onboarding assertions (issue 12);
        staging_router False: the staging operator forgot the router (then no
        production info either)."""
        if trust:
            self.trust_cloud()
        self.cloud("org", "add", "acme")
        self.cloud("site", "add", "acme", "paris")
        staging_psk = self.staging.psk("paris")
        if staging_router:
            self.staging.add_router(router, serial, staging_peering)
        self.production.add_router(router, serial, production_peering)
        if production_info and staging_router:
            self.give_production_info(router)
        self.cloud("site", "set", "acme", "paris", "--conductor", "127.0.0.1", "--port",
                   str(self.staging.port), "--psk-file", staging_psk, "--ca-file",
                   self.staging.ca_export())
        if claim:
            self.claim(serial)

    def trust_cloud(self, *conductors):
        """onrampctl cloud assertion-cert export -> conductor trust-cloud --cert."""
        cert = os.path.join(self.dir, "assertion-cert.pem")
        with open(cert, "w") as f:
            f.write(self.cloud("assertion-cert", "export"))
        for c in conductors or (self.staging, self.production):
            c.ok("trust-cloud", "--cert", cert)
        return cert

    def give_production_info(self, router="r1"):
        prod_psk = self.production.psk(router)
        self.staging.ok("router", "production", router, "--address", self.production.address,
                        "--psk-file", prod_psk, "--root-ca", self.production.ca_export())

    def claim(self, serial):
        self.cloud("claim", "--serial", serial, "--org", "acme", "--site", "paris")

    def device_events(self, serial):
        return self.cloud_json("device", "events", serial)["events"]

    def secrets(self):
        """Every secret of the lab (bytes), for grepping logs and state."""
        out = []
        for name in os.listdir(self.dir):
            if (name.endswith(".token") or name.endswith(".psk") or name == "proxy-password"
                    or name.endswith(".claim-secret")):
                with open(os.path.join(self.dir, name), "rb") as f:
                    value = f.read().strip()
                if value:
                    out.append(value)
        # Its text forms (PEM, base64 DER): callers may decode these as UTF-8.
        key = self.assertion_key()
        return out + (key[0::2] if key else [])

    def assertion_key(self):
        """The cloud's assertion private key as PEM, DER and base64 DER (issue 12), read
        from its SQLite database and opened with its master key by tests/tools/unseal (the
        real lib/server/masterkey code); [] before the cloud made one or on PostgreSQL."""
        state = os.path.join(self.dir, "cloudd-state")
        db_path = os.path.join(state, "cloud.db")
        if not os.path.exists(db_path):
            return []
        with sqlite3.connect(db_path) as db:
            try:
                row = db.execute("SELECT key_sealed FROM assertion_keys WHERE id = 1").fetchone()
            except sqlite3.OperationalError:
                return []
        if row is None:
            return []
        proc = subprocess.run([program("unseal"), os.path.join(state, "master.key"),
                               "assertion-key:1"], input=row[0].encode(), capture_output=True,
                              timeout=30)
        assert proc.returncode == 0 and b"PRIVATE KEY" in proc.stdout, proc.stderr
        der = subprocess.run(["openssl", "pkey", "-outform", "DER"], input=proc.stdout,
                             capture_output=True, timeout=30, check=True).stdout
        return [proc.stdout.strip(), der, base64.b64encode(der)]


class Conductor:
    """onramp-conductord (init, run) and onrampctl conductor against it."""

    def __init__(self, lab, role, port=0):
        self.lab, self.role = lab, role
        self.dir = os.path.join(lab.dir, role)
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.dir, exist_ok=True)
        self.config = os.path.join(self.dir, "conductord.conf")
        self.ports_file = os.path.join(self.dir, "ports.json")
        self.token_file = os.path.join(self.dir, "admin.token")
        self.port = port
        self.hold = None
        database = lab.database_for(role)
        db = f"database = {database}\n" if database else ""
        self._write_config(port, db)
        lab.ok(program("onramp-conductord"), "init", "--config", self.config, "--token-file",
               self.token_file)
        self.start()

    def _write_config(self, port, db):
        self.db_line = db
        with open(self.config, "w") as f:
            f.write(f"[conductor]\nrole = {self.role}\nname = {self.role}\n"
                    f"state-dir = {self.state}\n{db}listen = 127.0.0.1\nport = {port}\n"
                    f"threads = 2\npoll-timeout = {self.lab.poll_timeout}\n"
                    f"revert-window = {self.lab.revert_window}\n{self.lab.daemon_extra}"
                    f"ports-file = {self.ports_file}\n[admin]\nlisten = 127.0.0.1\nport = 0\n")

    def start(self):
        release(self.hold)
        self.hold = None
        if os.path.exists(self.ports_file):
            os.unlink(self.ports_file)
        if self.port:
            self._write_config(self.port, self.db_line)
        self.proc = self.lab.spawn(f"conductor-{self.role}",
                                   [program("onramp-conductord"), "run", "--config", self.config])
        wait_until(f"the {self.role} conductor to listen",
                   lambda: os.path.exists(self.ports_file) or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.lab.log(f"conductor-{self.role}")
        with open(self.ports_file) as f:
            ports = json.load(f)
        self.port, self.admin_port = ports["port"], ports["admin_port"]
        return self

    def stop(self):
        """Stops the conductor and holds its port (refused, not reused) until it starts."""
        stop_proc(self.proc)
        if not self.lab.ns:
            self.hold = hold_port(self.port)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def ctl(self, *args, timeout=120):
        return self.lab.run(program("onrampctl"), "conductor", "--url",
                            f"https://127.0.0.1:{self.admin_port}", "--ca",
                            os.path.join(self.state, "ca.pem"), "--token-file", self.token_file,
                            *args, timeout=timeout)

    def ok(self, *args, **kw):
        proc = self.ctl(*args, **kw)
        assert proc.returncode == 0, f"conductor {args}: {proc.stderr}"
        return proc.stdout

    def psk(self, name):
        path = os.path.join(self.lab.dir, f"{self.role}-{name}.psk")
        with open(path, "w") as f:
            f.write(self.ok("psk", "create", "--name", name).strip() + "\n")
        return path

    def ca_export(self):
        path = os.path.join(self.lab.dir, f"{self.role}-ca.pem")
        with open(path, "w") as f:
            f.write(self.ok("ca", "export"))
        return path

    def add_router(self, name, asset_id, peering=None):
        config = dict(peering or PEERING)
        config["router"] = {"name": name}
        path = os.path.join(self.dir, f"{name}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.ok("router", "add", name, "--asset-id", asset_id, "--config", path)

    def asset_state(self, asset_id):
        for a in json.loads(self.ok("show", "assets", "--json"))["assets"]:
            if a["asset_id"] == asset_id:
                return a["state"]
        return None

    def router(self, name="r1"):
        return json.loads(self.ok("router", "show", name, "--json"))

    def log(self):
        return self.lab.log(f"conductor-{self.role}")


class Agent:
    """onramp-agent for one provisioned router, with its agent.conf."""

    def __init__(self, lab, state, proxy="squid", tcti=None, ns=None, extra="",
                 interfaces="", redirect_url=None, redirect_ca=None, name="agent",
                 binary=None):
        self.lab, self.state, self.ns = lab, state, ns
        self.binary = binary or program("onramp-agent")
        self.prefix = ["ip", "netns", "exec", ns] if ns else []
        self.name = name
        self.socket = os.path.join(lab.dir, f"{name}.sock")
        self.conf = os.path.join(lab.dir, f"{name}.conf")
        self.proc = None
        self.write_conf(proxy, tcti, extra, interfaces, redirect_url, redirect_ca)

    def write_conf(self, proxy="squid", tcti=None, extra="", interfaces="", redirect_url=None,
                   redirect_ca=None):
        lab = self.lab
        if proxy == "squid":
            s = lab.squid
            proxy_text = (f"mode = static\nstatic = {s['listen']}:{s['port']}\nuser = router\n"
                          f"password-file = {s['password_file']}\nhealth-interval = 1\n")
        elif proxy == "dhcp":
            s = lab.squid
            proxy_text = (f"mode = learned\nuser = router\npassword-file = {s['password_file']}\n"
                          "health-interval = 1\n")
        else:
            proxy_text = "mode = disabled\n"
        device = f"tcti = {tcti}\n" if tcti else "software-identity = true\n"
        with open(self.conf, "w") as f:
            f.write(f"[agent]\nstate-dir = {self.state}\ncontrol-socket = {self.socket}\n"
                    f"log-level = debug\n[proxy]\n{proxy_text}[device]\n{device}"
                    f"[onboarding]\nredirector-url = {redirect_url or lab.redirect_url}\n"
                    f"redirector-ca = {redirect_ca or lab.redirect_pki.ca}\n"
                    f"retry-base = 1\nretry-cap = 2\npoll-wait = 2\nconnect-timeout = 5\n"
                    f"revert-window = {lab.revert_window}\n{extra}{interfaces}")

    def start(self):
        self.proc = self.lab.spawn(self.name, [self.binary, "-c", self.conf],
                                   prefix=self.prefix)
        wait_until("the agent's control socket",
                   lambda: self.proc.poll() is not None or os.path.exists(self.socket))
        return self

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        stop_proc(self.proc)

    def log(self):
        return self.lab.log(self.name)

    def ctl(self, *args, timeout=60):
        return subprocess.run(self.prefix + [program("onrampctl"), *args, "--socket", self.socket],
                              capture_output=True, text=True, timeout=timeout)

    def show(self):
        proc = self.ctl("show", "onboarding", "--json")
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)

    def done(self, step):
        s = self.show()
        if s is None:
            return False
        return next(x["done"] for x in s["steps"] if x["step"] == step) is not None

    def wait_done(self, step, timeout=40.0):
        def check():
            assert self.proc.poll() is None or self.proc.returncode == -9, self.log()[-3000:]
            return self.done(step)
        return wait_until(f"step {step} done", check, timeout=timeout)

    def wait_diagnostic(self, text, timeout=30.0):
        def check():
            s = self.show()
            if s is None:
                return None
            return next((d for d in s["diagnostics"] if text in d["reason"]), None)
        return wait_until(f"a diagnostic with {text!r}", check, timeout=timeout)
