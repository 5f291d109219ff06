"""The cloud side for the integration tests, all real and on 127.0.0.1:
certificates issued by the openssl CLI, squid with Basic auth as the device's
only way out, onramp-redirectd and onramp-cloudd (on SQLite or PostgreSQL),
devices provisioned with `onrampctl factory init-device --software`.

Every process is started here and stopped by its PID, even when a test fails.
"""
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

from conftest import free_port, program, run
from conftest import stop_process as stop

SQUID = "/usr/sbin/squid"
NCSA_AUTH = "/usr/lib/squid/basic_ncsa_auth"



def wait_port(port, proc, what, timeout=15):
    """Waits until something accepts on port, failing early if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} does not listen on port {port}")



def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Pki:
    """A CA and a server certificate for 127.0.0.1, made by the openssl CLI."""

    def __init__(self, directory, name):
        self.ca_key = os.path.join(directory, f"{name}-ca.key")
        self.ca = os.path.join(directory, f"{name}-ca.pem")
        self.key = os.path.join(directory, f"{name}.key")
        self.cert = os.path.join(directory, f"{name}.pem")
        csr = os.path.join(directory, f"{name}.csr")
        ext = os.path.join(directory, f"{name}.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-subj",
                f"/CN=onramp test {name} CA", "-days", "2")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.key, "-out", csr, "-subj", "/CN=127.0.0.1")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                "-CAcreateserial", "-out", self.cert, "-days", "2", "-extfile", ext)


class Squid:
    """squid with Basic auth, allowing CONNECT to any port of 127.0.0.1 only."""

    def __init__(self, directory):
        # squid runs as user proxy: its own directory, outside the 0700 test directory.
        self.dir = tempfile.mkdtemp(prefix="onramp-squid-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.user, self.password = "router", "proxy-secret-pw"
        self.password_file = os.path.join(directory, "proxy-password")
        with open(self.password_file, "w") as f:
            f.write(self.password + "\n")
        htpasswd = os.path.join(self.dir, "htpasswd")
        subprocess.run(["htpasswd", "-b", "-c", htpasswd, self.user, self.password],
                       check=True, capture_output=True)
        self.access_log = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "squid.conf")
        with open(conf, "w") as f:
            f.write(f"""http_port 127.0.0.1:{self.port}
pid_filename {self.dir}/squid.pid
cache_log {self.dir}/cache.log
access_log stdio:{self.access_log}
cache deny all
auth_param basic program {NCSA_AUTH} {htpasswd}
acl authenticated proxy_auth REQUIRED
acl here dst 127.0.0.1
http_access deny !here
http_access allow authenticated
http_access deny all
shutdown_lifetime 0 seconds
pinger_enable off
""")
        proxy = pwd.getpwnam("proxy")
        for root, dirs, files in os.walk(self.dir):
            for name in [root] + [os.path.join(root, n) for n in files]:
                os.chown(name, proxy.pw_uid, proxy.pw_gid)
        self.proc = subprocess.Popen([SQUID, "-N", "-f", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port, self.proc, "squid")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tunnelled(self, port, since=0, timeout=5):
        """True once squid logged a CONNECT to 127.0.0.1:port (it logs when a tunnel ends)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(f" CONNECT 127.0.0.1:{port} " in line for line in self.connects()[since:]):
                return True
            time.sleep(0.05)
        return False

    def connects(self):
        """The CONNECT lines squid logged so far."""
        try:
            with open(self.access_log) as f:
                return [line for line in f if " CONNECT " in line]
        except FileNotFoundError:
            return []


class Daemon:
    """onramp-redirectd or onramp-cloudd: init (first admin token) and serve."""

    def __init__(self, name, directory, section, pki, extra="", database=None, tag="",
                 port=None):
        self.name = name
        self.port = port or free_port()
        self.state = os.path.join(directory, f"{section}-state")
        self.conf = os.path.join(directory, f"{section}{tag}.conf")
        self.log = os.path.join(directory, f"{section}{tag}.log")
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = pki.ca
        db = f"database = {database}\n" if database else ""
        with open(self.conf, "w") as f:
            f.write(f"[{section}]\naddress = 127.0.0.1\nport = {self.port}\n"
                    f"cert-file = {pki.cert}\nkey-file = {pki.key}\nthreads = 2\n"
                    f"state-dir = {self.state}\n{db}{extra}")
        self.proc = None
        self.token_file = os.path.join(directory, f"{section}-admin.token")

    def init(self):
        proc = run(self.name, "init", "--config", self.conf)
        assert proc.returncode == 0, proc.stderr
        token = proc.stdout.strip()
        assert len(token) == 64
        with open(self.token_file, "w") as f:
            f.write(token + "\n")
        os.chmod(self.token_file, 0o600)
        return token

    def start(self):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([program(self.name), "--config", self.conf],
                                     stdout=self.logf, stderr=self.logf)
        wait_port(self.port, self.proc, self.name)

    def stop(self):
        """Stops the daemon; a clean stop exits 0 (a sanitizer report would not)."""
        stop(self.proc)
        if self.proc is not None:
            self.logf.close()
            if self.proc.returncode != 0:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n"
                                     f"{self.log_text()[-3000:]}")

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


class CloudEnv:
    """A redirector, a cloud (optionally a second instance), squid, and devices."""

    def __init__(self, directory, database=None, redirect_database=None, second=False,
                 challenge_lifetime=2, lockout="lockout-threshold = 3\nlockout-base = 60\n",
                 redirect_extra=""):
        self.dir = directory
        self.procs = []
        self.redirect_extra = redirect_extra
        try:
            self._start(database, redirect_database, second, challenge_lifetime, lockout)
        except BaseException:
            self.stop()
            raise

    def _start(self, database, redirect_database, second, challenge_lifetime, lockout):
        directory = self.dir
        self.redirect_pki = Pki(directory, "redirect")
        self.cloud_pki = Pki(directory, "cloud")
        self.squid = Squid(directory)  # stops itself when it does not come up
        self.procs.append(self.squid)
        self.redirector = Daemon("onramp-redirectd", directory, "redirectd", self.redirect_pki,
                                 "retry-after = 7\n" + self.redirect_extra,
                                 redirect_database)
        self.redirector.init()
        self.procs.append(self.redirector)
        self.redirector.start()
        # The cloud's own token at the redirector, for pushing claims.
        self.cloud_token_file = os.path.join(directory, "cloud-at-redirector.token")
        proc = self.redirect("token", "add", "acme-cloud", "--role", "cloud")
        assert proc.returncode == 0, proc.stderr
        with open(self.cloud_token_file, "w") as f:
            f.write(proc.stdout)
        self.cloud_port = free_port()
        extra = (f"public-url = https://127.0.0.1:{self.cloud_port}\n"
                 f"public-ca-file = {self.cloud_pki.ca}\n"
                 f"challenge-lifetime = {challenge_lifetime}\n{lockout}"
                 f"[redirector]\nurl = {self.redirector.url}\n"
                 f"ca-file = {self.redirect_pki.ca}\ntoken-file = {self.cloud_token_file}\n")
        self.cloud = Daemon("onramp-cloudd", directory, "cloudd", self.cloud_pki, extra, database,
                            port=self.cloud_port)
        self.cloud_admin_token = self.cloud.init()
        self.procs.append(self.cloud)
        self.cloud.start()
        self.cloud2 = None
        if second:
            self.cloud2 = Daemon("onramp-cloudd", directory, "cloudd", self.cloud_pki, extra,
                                 database, tag="-2")
            self.procs.append(self.cloud2)
            self.cloud2.start()
        self.inventory_pub = os.path.join(self.cloud.state, "inventory.pub.pem")

    def stop(self):
        """Stops everything started, then reports a daemon that did not exit cleanly."""
        errors = []
        for p in reversed(self.procs):
            try:
                p.stop()
            except AssertionError as e:
                errors.append(str(e))
        self.procs = []
        if errors:
            raise AssertionError("\n".join(errors))

    def redirect(self, *args):
        return run("onrampctl", "redirect", "--url", self.redirector.url, "--ca",
                   self.redirect_pki.ca, "--token-file", self.redirector.token_file, *args)

    def ctl(self, *args, token_file=None):
        return run("onrampctl", "cloud", "--url", self.cloud.url, "--ca", self.cloud_pki.ca,
                   "--token-file", token_file or self.cloud.token_file, *args)

    def ctl_ok(self, *args):
        proc = self.ctl(*args)
        assert proc.returncode == 0, f"cloud {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def ctl_json(self, *args):
        return json.loads(self.ctl_ok(*args, "--json"))

    def site(self, org, site, psk, conductors=("10.20.0.5", "10.20.0.6"), port=4505,
             ca_file=None):
        """An organisation (if new) and a site with its onboarding settings."""
        if org not in [o["name"] for o in self.ctl_json("org", "list")["organizations"]]:
            self.ctl_ok("org", "add", org)
        self.ctl_ok("site", "add", org, site)
        psk_file = os.path.join(self.dir, f"psk-{org}-{site}")
        with open(psk_file, "w") as f:
            f.write(psk + "\n")
        args = ["site", "set", org, site, "--port", str(port), "--psk-file", psk_file,
                "--ca-file", ca_file or self.cloud_pki.ca]
        for c in conductors:
            args += ["--conductor", c]
        return json.loads(self.ctl_ok(*args, "--json"))

    def ensure_site(self, org, site):
        """The site, made with default settings if an earlier test did not make it."""
        if self.ctl("site", "show", org, site, "--json").returncode != 0:
            self.site(org, site, f"{site}-psk-" + secrets.token_hex(8))

    def device(self, serial, claim_code=None, import_it=True, suite=None):
        """A device made at the factory (software identity) and imported."""
        state = os.path.join(self.dir, f"dev-{serial}")
        record = os.path.join(self.dir, f"{serial}.record.json")
        extra = ["--suite", suite] if suite else []
        proc = run("onrampctl", "factory", "init-device", "--serial", serial, "--model",
                   "SSR1000", "--state-dir", state, "--software", "--cloud-key",
                   self.inventory_pub, "--out", record, *extra)
        assert proc.returncode == 0, proc.stderr
        # The factory registers the claim hash (never the secret) with the redirector.
        proc = self.redirect("device", "register", record)
        assert proc.returncode == 0, proc.stderr
        if import_it:
            args = ["inventory", "import", record]
            if claim_code:
                args += ["--claim-code", claim_code]
            self.ctl_ok(*args)
        return Device(self, serial, state, record)


class Device:
    """onramp-test-device for one provisioned device, through squid."""

    def __init__(self, env, serial, state, record):
        self.env, self.serial, self.state, self.record = env, serial, state, record

    def run(self, action, *extra, proxy=True):
        env = self.env
        args = ["--state-dir", self.state, "--redirector", env.redirector.url,
                "--redirector-ca", env.redirect_pki.ca]
        if proxy:
            args += ["--proxy", f"127.0.0.1:{env.squid.port}", "--proxy-user", env.squid.user,
                     "--proxy-password-file", env.squid.password_file]
        proc = run("onramp-test-device", *args, *extra, action, timeout=60)
        assert proc.returncode == 0, f"test device {action}: {proc.stderr}"
        steps = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        return steps

    def claim(self, org, site):
        return self.env.ctl_ok("claim", "--serial", self.serial, "--org", org, "--site", site)


def by_step(steps, name):
    """The lines of one step name."""
    return [s for s in steps if s["step"] == name]


def tempdir():
    return tempfile.mkdtemp(prefix="onramp-cloud-")


def remove(directory):
    shutil.rmtree(directory, ignore_errors=True)
