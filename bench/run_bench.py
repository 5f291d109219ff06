#!/usr/bin/python3
"""make bench: onramp's daemons against nginx on 127.0.0.1, side by side.

Starts nginx (Debian's nginx-light, its own configuration in a temporary
directory), onramp-redirectd and onramp-cloudd with the same EC P-256
certificates, provisions a pool of devices (onrampctl factory init-device
--software, imported, claimed), then runs bench/onramp-bench-load against
both, interleaved, in rounds; reads each server's CPU from /proc around each
run. Also: the exchange at several concurrencies (the scaling curve), the
agent through a whole onboarding (tests/integration/e2elab.py), and, when
the build has onramp-fleetsim, the storm.

Writes build/bench/results.json, the table and the plot of docs/benchmarks.md
(between its markers). Method: docs/benchmarks.md.
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("ONRAMP_BUILD", os.path.join(ROOT, "build"))

from cloud_env import Daemon, Pki, wait_port  # noqa: E402
from conftest import BUILD, free_port, program, run  # noqa: E402
from conftest import stop_process  # noqa: E402

NGINX = "/usr/sbin/nginx"
# The load generator always from this tree's build; the daemons from ONRAMP_BUILD (an
# older build can be measured against the same load generator).
LOAD = os.path.join(ROOT, "build", "bench", "onramp-bench-load")
TICK = os.sysconf("SC_CLK_TCK")
MARK_BEGIN = "<!-- bench:results begin (written by make bench) -->"
MARK_END = "<!-- bench:results end -->"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cpu_s(pids):
    """User + system CPU seconds of these processes, their threads included."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            pass
    return total / TICK


def children(pid):
    """The direct children of pid (nginx's workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return out


def rss_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


class Servers:
    """redirectd, cloudd, nginx, a site and a pool of claimed devices."""

    def __init__(self, directory, n_devices):
        self.dir = directory
        self.procs = []
        self.redirect_pki = Pki(directory, "redirect")
        self.cloud_pki = Pki(directory, "cloud")
        unlimited = "source-rate = 0\nglobal-rate = 0\n"
        self.redirector = Daemon("onramp-redirectd", directory, "redirectd",
                                 self.redirect_pki, unlimited)
        self.redirector.init()
        self.redirector.start()
        self.procs.append(self.redirector)
        self.cloud_token_file = os.path.join(directory, "cloud-at-redirector.token")
        proc = self.redirect("token", "add", "bench-cloud", "--role", "cloud")
        assert proc.returncode == 0, proc.stderr
        with open(self.cloud_token_file, "w") as f:
            f.write(proc.stdout)
        port = free_port()
        extra = (f"public-url = https://127.0.0.1:{port}\npublic-ca-file = {self.cloud_pki.ca}\n"
                 f"challenge-lifetime = 120\n{unlimited}"
                 f"[redirector]\nurl = {self.redirector.url}\n"
                 f"ca-file = {self.redirect_pki.ca}\ntoken-file = {self.cloud_token_file}\n")
        self.cloud = Daemon("onramp-cloudd", directory, "cloudd", self.cloud_pki, extra,
                            port=port)
        self.cloud.init()
        self.cloud.start()
        self.procs.append(self.cloud)
        self.inventory_pub = os.path.join(self.cloud.state, "inventory.pub.pem")
        self.ctl("org", "add", "bench")
        self.ctl("site", "add", "bench", "lab")
        psk = os.path.join(directory, "site.psk")
        with open(psk, "w") as f:
            f.write("bench-staging-psk-0123456789\n")
        self.ctl("site", "set", "bench", "lab", "--conductor", "127.0.0.1", "--port", "4505",
                 "--psk-file", psk, "--ca-file", self.cloud_pki.ca)
        self.devices = self.provision(n_devices)
        self.devices_file = os.path.join(directory, "devices.txt")
        with open(self.devices_file, "w") as f:
            f.write("\n".join(self.devices) + "\n")
        self.start_nginx()

    def redirect(self, *args):
        return run("onrampctl", "redirect", "--url", self.redirector.url, "--ca",
                   self.redirect_pki.ca, "--token-file", self.redirector.token_file, *args)

    def ctl(self, *args):
        proc = run("onrampctl", "cloud", "--url", self.cloud.url, "--ca", self.cloud_pki.ca,
                   "--token-file", self.cloud.token_file, *args)
        assert proc.returncode == 0, f"cloud {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def provision_one(self, i):
        serial = f"BENCH-{i:05d}"
        state = os.path.join(self.dir, f"dev-{serial}")
        record = os.path.join(self.dir, f"{serial}.record.json")
        proc = run("onrampctl", "factory", "init-device", "--serial", serial, "--model",
                   "SSR1000", "--state-dir", state, "--software", "--cloud-key",
                   self.inventory_pub, "--out", record)
        assert proc.returncode == 0, proc.stderr
        proc = self.redirect("device", "register", record)
        assert proc.returncode == 0, proc.stderr
        self.ctl("inventory", "import", record)
        self.ctl("claim", "--serial", serial, "--org", "bench", "--site", "lab")
        return state

    def provision(self, n):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return list(pool.map(self.provision_one, range(n)))

    def start_nginx(self):
        """nginx-light, 2 workers, access log off, TLS 1.3, the same certificates."""
        d = os.path.join(self.dir, "nginx")
        www = os.path.join(d, "www")
        os.makedirs(www)
        with open(self.cloud_pki.ca) as f:
            ca = f.read()
        hexa = "0123456789abcdef" * 4
        answers = {
            "phone-home.json": {"serial": "BENCH-00000", "nonce": hexa[:32],
                                "cloud_url": self.cloud.url, "cloud_ca_pem": ca},
            "auth-start.json": {"challenge_id": hexa[:32], "suite":
                                "OCRA-1:HOTP-SHA256-0:QA10-S064", "server_challenge":
                                "T7vB2nQw8R", "server_response": hexa, "expires_in": 120},
            "auth-finish.json": {"token": hexa, "expires_in": 900},
            "onboarding.json": {"serial": "BENCH-00000", "organization": "bench",
                                "site": "lab", "conductor": {"addresses": ["127.0.0.1"],
                                                             "port": 4505},
                                "psk": "bench-staging-psk-0123456789", "conductor_ca_pem": ca,
                                # the onboarding assertion (base64 CMS SignedData, ~1.6 KB)
                                "assertion": "MII" + "A" * 1597,
                                "assertion_expires": "2026-12-07T12:00:00Z"},
        }
        for name, doc in answers.items():
            with open(os.path.join(www, name), "w") as f:
                json.dump(doc, f, separators=(",", ":"))
        self.nginx_ports = (free_port(), free_port())
        conf = os.path.join(d, "nginx.conf")
        servers = ""
        for port, pki in zip(self.nginx_ports, (self.redirect_pki, self.cloud_pki)):
            servers += f"""  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {pki.cert};
    ssl_certificate_key {pki.key};
    ssl_protocols TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    root {www};
    default_type application/json;
  }}
"""
        with open(conf, "w") as f:
            f.write(f"""user root;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
{servers}}}
""")
        self.nginx = subprocess.Popen([NGINX, "-c", conf, "-p", d, "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(self)
        for port in self.nginx_ports:
            wait_port(port, self.nginx, "nginx")
        self.nginx_urls = [f"https://127.0.0.1:{p}" for p in self.nginx_ports]

    def stop(self):
        """nginx's part of the servers (a Daemon-like stop for procs)."""
        stop_process(self.nginx)

    def close(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except AssertionError as e:
                log(str(e)[:500])
        self.procs = []

    def onramp_pids(self):
        return [self.redirector.proc.pid, self.cloud.proc.pid]

    def nginx_pids(self):
        return [self.nginx.pid] + children(self.nginx.pid)

    def load(self, target, what, concurrency, seconds):
        """One run of the load generator; its result line plus the servers' CPU per op."""
        if target == "onramp":
            args = ["--redirector", self.redirector.url, "--redirector-ca", self.redirect_pki.ca,
                    "--devices", self.devices_file]
            pids = self.onramp_pids() if what == "exchange" else [self.redirector.proc.pid]
        else:
            args = ["--redirector", self.nginx_urls[0], "--redirector-ca", self.redirect_pki.ca,
                    "--cloud", self.nginx_urls[1], "--cloud-ca", self.cloud_pki.ca]
            pids = self.nginx_pids()
        before = cpu_s(pids)
        proc = subprocess.run([LOAD, "--target", target, "--what", what, "--concurrency",
                               str(concurrency), "--seconds", str(seconds), *args],
                              capture_output=True, text=True, timeout=seconds + 120)
        used = cpu_s(pids) - before
        if not proc.stdout.strip():
            raise RuntimeError(f"load generator failed: {proc.stderr[-2000:]}")
        result = json.loads(proc.stdout)
        result["server_cpu_s"] = used
        result["server_cpu_ms_per_op"] = used * 1e3 / result["ops"] if result["ops"] else None
        log(f"{target:6} {what:10} c={concurrency:<3} {result['per_s']:8.1f}/s "
            f"p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms "
            f"cpu {result['server_cpu_ms_per_op'] or 0:.3f} ms/op "
            f"keep-alive {result['keepalive_ms']:.1f} ms failed {result['failed']}"
            + (f" ({result.get('first_error')})" if result.get("first_error") else ""))
        return result


def profile(servers, out_dir, seconds, concurrency):
    """perf record of redirectd and cloudd under the exchange load; reports in out_dir."""
    data = os.path.join(out_dir, "perf.data")
    pids = ",".join(str(p) for p in servers.onramp_pids())
    perf = subprocess.Popen(["perf", "record", "-q", "-F", "3999", "-g", "-p", pids, "-o", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    servers.load("onramp", "exchange", concurrency, seconds)
    perf.send_signal(2)
    perf.wait()
    for sort, name in (("dso", "profile-dso.txt"), ("dso,sym", "profile-sym.txt")):
        with open(os.path.join(out_dir, name), "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                            "--sort", sort, "-g", "none", "--percent-limit", "0.5"],
                           stdout=f, stderr=subprocess.DEVNULL)
    # System calls per exchange, by strace -c on cloudd (its own, slower, run).
    counts = os.path.join(out_dir, "strace-cloudd.txt")
    tracer = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", counts, "-p",
                               str(servers.cloud.proc.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    r = servers.load("onramp", "exchange", concurrency, seconds)
    tracer.send_signal(2)
    tracer.wait()
    with open(counts, "a") as f:
        f.write(f"# exchanges during the trace: {r['ops']}\n")
    log(f"profile: {out_dir}/profile-dso.txt, profile-sym.txt, strace-cloudd.txt")


def conductor_median(runs):
    """One conductor level over its runs (each on a fresh conductor): the medians of
    the numbers, the range of the setup rate, the worst of set up and failed, and
    every run as measured."""
    out = dict(runs[0])
    for key in ("setup_s", "setup_per_s", "conductor_idle_rss_kib", "conductor_rss_kib",
                "kib_per_router", "setup_cpu_ms_per_router", "routers_cpu_ms_per_router"):
        out[key] = med_range([r[key] for r in runs])[0]
    out["setup_per_s_range"] = [min(r["setup_per_s"] for r in runs),
                                max(r["setup_per_s"] for r in runs)]
    out["set_up"] = min(r["set_up"] for r in runs)
    out["failed"] = max(r["failed"] for r in runs)
    out["runs"] = runs
    return out


def med_range(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def compare(servers, rounds, seconds, concurrency):
    """phone-home and exchange, onramp and nginx interleaved, `rounds` times."""
    runs = {k: [] for k in ("onramp phone-home", "nginx phone-home", "onramp exchange",
                            "nginx exchange")}
    for r in range(rounds):
        log(f"round {r + 1}/{rounds}")
        for what in ("phone-home", "exchange"):
            for target in (("onramp", "nginx") if r % 2 == 0 else ("nginx", "onramp")):
                runs[f"{target} {what}"].append(servers.load(target, what, concurrency, seconds))
    return runs


def ratios(runs, what):
    """Per round: nginx CPU per op / onramp CPU per op (onramp / nginx in ops per CPU)."""
    out = []
    for o, n in zip(runs[f"onramp {what}"], runs[f"nginx {what}"]):
        if o["server_cpu_ms_per_op"] and n["server_cpu_ms_per_op"]:
            out.append(n["server_cpu_ms_per_op"] / o["server_cpu_ms_per_op"])
    return out


def scaling(servers, levels, seconds):
    out = []
    for c in levels:
        for target in ("onramp", "nginx"):
            r = servers.load(target, "exchange", c, seconds)
            out.append(r)
    return out


def agent_run(directory):
    """The real agent through a whole onboarding (software identity): peak RSS and CPU."""
    import e2elab
    from conftest import wait_until
    lab = e2elab.Lab(directory)
    try:
        agent = lab.router("BENCH-AGENT-1")
        agent.wait_done("production-info", timeout=120)
        proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router", "r1",
                               "--wait")
        assert proc.returncode == 0, proc.stderr
        agent.wait_done("running", timeout=120)
        pid = agent.proc.pid
        peak = rss_kib(pid, "VmHWM")
        with open(f"/proc/{pid}/smaps_rollup") as f:
            private = sum(int(line.split()[1]) for line in f
                          if line.startswith(("Private_Clean:", "Private_Dirty:")))
        cpu = cpu_s([pid])
        wait_until("nothing", lambda: True)
        return {"agent_peak_rss_kib": peak, "agent_private_kib": private, "agent_cpu_s": cpu}
    finally:
        lab.close()


def add_routers(conductor, prefix, n, threads=4):
    """The routers on the conductor through its admin API (POST /admin/v1/routers),
    on kept-alive HTTPS connections, `threads` at a time."""
    import http.client
    import ssl
    from conductorlib import PEERING
    with open(conductor.token_file) as f:
        token = f.read().strip()

    def worker(k):
        ctx = ssl.create_default_context(cafile=conductor.ca)
        conn = http.client.HTTPSConnection("127.0.0.1", conductor.admin_port, context=ctx)
        for i in range(k, n, threads):
            name = f"{prefix}-{i + 1:06d}"
            config = dict(PEERING, router={"name": name})
            body = json.dumps({"name": name, "asset_id": name, "config": config})
            conn.request("POST", "/admin/v1/routers", body,
                         {"Authorization": f"Bearer {token}",
                          "Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read()
            if resp.status != 201:
                raise RuntimeError(f"router add {name}: {resp.status} {text[:200]}")
        conn.close()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))


def conductor_level(directory, n):
    """n routers holding their long polls on a fresh conductor: its RSS per router
    (over the idle conductor's) and its setup rate (hello, proof, certificate and
    configuration of each router, 64 at a time)."""
    from conductorlib import Conductor
    c = Conductor("staging", f"bench{n}", poll_timeout=120,
                  extra="source-rate = 0\nglobal-rate = 0\n")
    tools = []
    # The routers' own files (keys, vault, certificates: fsynced) on tmpfs, so that
    # the shared disk does not set the pace of the conductor's setup.
    routers_dir = tempfile.mkdtemp(prefix="onramp-bench-routers-", dir="/dev/shm")
    try:
        c.init()
        c.start()
        psk_path, _ = c.psk("bench")
        t0 = time.monotonic()
        add_routers(c, "BENCH", n)
        log(f"conductor: {n} routers added in {time.monotonic() - t0:.0f} s")
        pid = c.proc.pid
        idle = rss_kib(pid)
        tracer = None
        if os.environ.get("BENCH_STRACE_CONDUCTOR"):
            # System calls of the conductor during the setup (not for the numbers).
            tracer = subprocess.Popen(["strace", "-c", "-f", "-q", "-o",
                                       os.environ["BENCH_STRACE_CONDUCTOR"], "-p", str(pid)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        # Several processes: each router takes about 3 descriptors on this side.
        per = 4000
        for first in range(0, n, per):
            tools.append(subprocess.Popen(
                [os.path.join(ROOT, "build", "bench", "onramp-bench-conductor"),
                 "--state-dir", routers_dir, "--conductor", c.address, "--root-ca", c.ca,
                 "--psk-file", psk_path, "--routers", str(min(per, n - first)), "--first",
                 str(first), "--setup-concurrency", str(max(1, 64 * min(per, n - first) // n)),
                 "--poll-wait", "120", "--wait-start"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True))

        def answer(tool):
            line = tool.stdout.readline()
            if not line:
                raise RuntimeError(f"onramp-bench-conductor: {tool.stderr.read()[-2000:]}")
            return json.loads(line)
        # What a router has done before it talks to the conductor (device key, vault,
        # the conductor stored) is prepared before the clock; then all start at once.
        t0 = time.monotonic()
        prepared = [answer(tool) for tool in tools]
        log(f"conductor: {sum(p['prepared'] for p in prepared)} routers prepared in "
            f"{time.monotonic() - t0:.0f} s")
        cpu0 = cpu_s([pid])
        routers_cpu0 = cpu_s([tool.pid for tool in tools])
        for tool in tools:
            tool.stdin.write("go\n")
            tool.stdin.flush()
        parts = [answer(tool) for tool in tools]
        setup_s = max(p["setup_s"] for p in parts)
        res = {"routers": n, "set_up": sum(p["set_up"] for p in parts),
               "failed": sum(p["failed"] for p in parts), "setup_s": setup_s}
        res["setup_per_s"] = res["set_up"] / setup_s
        errors = [p["first_error"] for p in parts if p.get("first_error")]
        if errors:
            res["first_error"] = errors[0]
        cpu = cpu_s([pid]) - cpu0
        routers_cpu = cpu_s([tool.pid for tool in tools]) - routers_cpu0
        if tracer is not None:
            tracer.send_signal(2)
            tracer.wait()
        time.sleep(3)  # the last polls settle
        held = rss_kib(pid)
        res.update({"conductor_idle_rss_kib": idle, "conductor_rss_kib": held,
                    "kib_per_router": (held - idle) / n,
                    "setup_cpu_ms_per_router": cpu * 1e3 / n,
                    "routers_cpu_ms_per_router": routers_cpu * 1e3 / n})
        log(f"conductor: {n} routers: {res['set_up']} set up, {res['failed']} failed, "
            f"{res['setup_per_s']:.0f}/s ({res['setup_cpu_ms_per_router']:.2f} ms CPU each; "
            f"the routers' side {res['routers_cpu_ms_per_router']:.2f} ms), "
            f"RSS {idle} -> {held} KiB: {res['kib_per_router']:.1f} KiB per router"
            + (f" ({res.get('first_error')})" if res.get("first_error") else ""))
        return res
    finally:
        for tool in tools:
            tool.terminate()
        for tool in tools:
            try:
                tool.wait(timeout=30)
            except subprocess.TimeoutExpired:
                tool.kill()
                tool.wait()
        try:
            c.cleanup()
        except AssertionError as e:
            log(str(e)[:500])
        shutil.rmtree(routers_dir, ignore_errors=True)


# The lab's rate limits for the storm: those of a site whose routers all reach the
# daemons through one proxy (docs/operations.md): the per-source bucket as large as the
# global one, which still protects the daemons (and answers 429 with Retry-After).
STORM_SITE_LIMITS = "source-rate = 500\nsource-burst = 2000\n"
# What the storm leaves of the bench's time for the part after it (the agent).
AFTER_STORM_S = 60


def run_until(cmd, deadline, what):
    """Runs cmd; at the deadline (monotonic) it gets SIGINT and its own end (fleetsim
    then stops its routers and still prints what it did). Returns the CompletedProcess."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        log(f"storm: {what} reached the bench's time budget; interrupted")
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    finally:
        if proc.poll() is None:  # the bench itself was interrupted: so is its child
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def storm(directory, routers, deadline, concurrency=64, setup_concurrency=16,
          site_limits=True):
    """onramp-fleetsim's storm (docs/fleetsim.md), when the build has it: the end-to-end
    lab (squid, redirector, cloud, staging and production conductors; with site_limits
    the rate limits of a site behind one proxy, else the daemons' defaults), `routers`
    routers set up by `onramp-fleetsim setup`, then all of them (`concurrency` at a
    time) through squid to running. The routers' directories are on tmpfs (/dev/shm,
    when there is one): 10,000 simulated routers share one disk here, which no real
    fleet does. Setup and storm end by `deadline` (monotonic): a router not running by
    then counts as failed ("interrupted", "not started"). Returns the storm keys, or
    None without fleetsim."""
    exe = os.path.join(BUILD, "fleetsim", "onramp-fleetsim")
    if not os.access(exe, os.X_OK):
        log("storm: no onramp-fleetsim in this build (branch fleetsim not merged); skipped")
        return None
    import e2elab
    lab = e2elab.Lab(directory)
    if site_limits:
        lab.daemon_extra = STORM_SITE_LIMITS
    ram = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fleet = tempfile.mkdtemp(prefix="onramp-bench-fleet-", dir=ram)
    try:
        lab.start_squid()
        lab.start_all()
        lab.cloud("org", "add", "bench")
        lab.cloud("site", "add", "bench", "lab")
        lab.cloud("site", "set", "bench", "lab", "--conductor", "127.0.0.1", "--port",
                  str(lab.staging.port), "--psk-file", lab.staging.psk("lab"), "--ca-file",
                  lab.staging.ca_export())

        def admin(c):
            return [f"https://127.0.0.1:{c.admin_port}", os.path.join(c.state, "ca.pem"),
                    c.token_file]
        s, p = admin(lab.staging), admin(lab.production)
        t0 = time.monotonic()
        proc = run_until(
            [exe, "setup", "--routers", str(routers), "--state-dir", fleet, "--prefix", "STORM",
             "--concurrency", str(setup_concurrency), "--redirector", lab.redirect_url,
             "--redirector-ca", lab.redirect_pki.ca, "--redirector-token-file",
             lab.redirect_token, "--inventory-key", lab.inventory_pub, "--cloud",
             lab.cloud_url, "--cloud-ca", lab.cloud_pki.ca, "--cloud-token-file",
             lab.cloud_token, "--staging", s[0], "--staging-ca", s[1], "--staging-token-file",
             s[2], "--production", p[0], "--production-ca", p[1], "--production-token-file",
             p[2], "--org", "bench", "--site", "lab", "--production-address",
             lab.production.address, "--production-root-ca", lab.production.ca_export()],
            deadline, "setup")
        setup_s = time.monotonic() - t0
        made = proc.stdout.split()
        made = int(made[0]) if made and made[0].isdigit() else 0
        log(f"storm: setup of {routers} routers in {setup_s:.0f} s "
            f"({made / max(setup_s, 0.001):.0f} per s): {proc.stdout.strip()}")
        if made == 0:
            raise RuntimeError(f"onramp-fleetsim setup exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-2000:]}")
        if made < routers:
            log(f"storm: only {made} of {routers} routers set up: {proc.stderr.strip()[-2000:]}")
            # A router setup names as failed may have its directory (the factory's part
            # was done): it would phone home unclaimed until its deadline. Only the
            # routers set up run.
            for line in proc.stderr.splitlines():
                serial = line.split(": ")[1] if line.count(": ") >= 2 else ""
                if serial.startswith("STORM-") and serial[6:].isdigit():
                    shutil.rmtree(os.path.join(fleet, serial), ignore_errors=True)
        sq = lab.squid
        t0 = time.monotonic()
        proc = run_until(
            [exe, "--state-dir", fleet, "--redirector", lab.redirect_url, "--redirector-ca",
             lab.redirect_pki.ca, "--proxy", f"127.0.0.1:{sq['port']}", "--proxy-user",
             sq["user"], "--proxy-password-file", sq["password_file"], "--poll-wait", "2",
             "--json", "--routers", str(made), "--concurrency", str(concurrency)],
            deadline, "the storm")
        storm_s = time.monotonic() - t0
        try:
            summary = json.loads(proc.stdout)
        except ValueError:
            raise RuntimeError(f"onramp-fleetsim exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-2000:]}")
        # Routers that setup did not make within the budget did not run either.
        summary["failed"] += routers - made
        summary["routers"] = routers
        if routers > made:
            summary.setdefault("errors", {})["not set up"] = routers - made
        log(f"storm: {summary} in {storm_s:.0f} s ({summary['running'] / storm_s:.1f} per s)")
        return {"storm_routers": routers, "storm_running": summary["running"],
                "storm_failed": summary["failed"], "storm_p50_s": summary["p50_s"],
                "storm_p99_s": summary["p99_s"], "storm_errors": summary.get("errors"),
                "storm_setup_s": round(setup_s, 1), "storm_s": round(storm_s, 1),
                "storm_site_limits": site_limits}
    finally:
        lab.close()
        shutil.rmtree(fleet, ignore_errors=True)


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1])
    nginx = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": model, "mem_kib": mem, "kernel": platform.release(),
            "nginx": nginx.split("/")[-1], "openssl": ossl,
            "load_before": os.getloadavg()[0],
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def plot(scale, conductor, png, data_file):
    """Throughput and p99 against concurrency, onramp and nginx, and the conductor's
    memory and CPU per router against routers, by gnuplot."""
    with open(data_file, "w") as f:
        f.write("# concurrency onramp_per_s onramp_p99_ms nginx_per_s nginx_p99_ms\n")
        levels = sorted({r["concurrency"] for r in scale})
        for c in levels:
            o = next(r for r in scale if r["concurrency"] == c and r["target"] == "onramp")
            n = next(r for r in scale if r["concurrency"] == c and r["target"] == "nginx")
            f.write(f"{c} {o['per_s']:.2f} {o['p99_ms']:.2f} {n['per_s']:.2f} {n['p99_ms']:.2f}\n")
    cond_file = data_file + ".conductor"
    with open(cond_file, "w") as f:
        f.write("# routers kib_per_router setup_cpu_ms_per_router\n")
        for r in conductor:
            f.write(f"{r['routers']} {r['kib_per_router']:.2f} {r['setup_cpu_ms_per_router']:.3f}\n")
    script = f"""set terminal pngcairo size 1500,420 noenhanced
set output '{png}'
set multiplot layout 1,3 title 'device exchange (phone-home + 3 requests on a kept-alive connection) and conductor, 127.0.0.1'
set logscale x 2
set xlabel 'concurrent devices'
set key top left
set ylabel 'exchanges per second'
set grid
plot '{data_file}' using 1:2 with linespoints title 'onramp', '' using 1:4 with linespoints title 'nginx (static)'
set ylabel 'p99 latency (ms)'
set logscale y
plot '{data_file}' using 1:3 with linespoints title 'onramp', '' using 1:5 with linespoints title 'nginx (static)'
unset logscale y
set logscale x 10
set xlabel 'routers holding a long poll on one conductor'
set ylabel 'KiB of RSS per router'
set y2label 'conductor CPU ms per router set up'
set y2tics
set yrange [0:*]
set y2range [0:*]
plot '{cond_file}' using 1:2 with linespoints title 'KiB per router', '' using 1:3 axes x1y2 with linespoints title 'CPU ms per router'
unset multiplot
"""
    proc = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if proc.returncode != 0:
        # gnuplot-nox may lack cairo: fall back to the plain png terminal.
        script = script.replace("pngcairo", "png")
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def write_docs(res, runs, scale, doc):
    rows = []

    def row(name, values, unit, goal=""):
        m, lo, hi = med_range(values)
        rows.append(f"| {name} | {fmt(m)} | {fmt(lo)} – {fmt(hi)} | {unit} | {goal} |")

    for what in ("phone-home", "exchange"):
        for target in ("onramp", "nginx"):
            rs = runs[f"{target} {what}"]
            row(f"{what}: {target} throughput", [r["per_s"] for r in rs], "per s")
            row(f"{what}: {target} server CPU", [r["server_cpu_ms_per_op"] for r in rs],
                "ms per op")
    row("phone-home ratio (onramp / nginx)", ratios(runs, "phone-home"), "×", "≥ 0.95")
    row("exchange ratio (onramp / nginx)", ratios(runs, "exchange"), "×", "≥ 0.8")
    lines = [MARK_BEGIN, "", f"Latest run: {res['machine']['date']}, {res['machine']['cpus']} "
             f"CPUs ({res['machine']['cpu']}), nginx {res['machine']['nginx']}, "
             f"{res['machine']['openssl']}; load average before: "
             f"{res['machine']['load_before']:.2f} (the machine is shared).", "",
             f"{res['rounds']} rounds, {res['seconds']} s per run, {res['concurrency']} "
             "concurrent devices; ratio = nginx server CPU per op / onramp server CPU per op.",
             "", "| measure | median | range | unit | goal |", "|---|---|---|---|---|"]
    lines += rows
    lines += [f"| keep-alive request (1 device) | {fmt(res['keepalive_request_ms'])} | | ms | < 2 |"]
    for key, unit, goal in (("agent_peak_rss_kib", "KiB", ""), ("agent_cpu_s", "s", ""),
                            ("conductor_kib_per_router", "KiB", "≤ 20"),
                            ("conductor_setup_per_s", "routers per s", "≥ 348"),
                            ("storm_failed", "routers", "0")):
        lines.append(f"| {key} | {fmt(res.get(key))} | | {unit} | {goal} |")
    lines += [f"| agent private memory | {fmt(res.get('agent_private_kib'))} | | KiB | |"]
    for key, unit, goal in (("storm_routers", "routers", "10000"),
                            ("storm_running", "routers", "10000"), ("storm_p50_s", "s", ""),
                            ("storm_p99_s", "s", ""), ("storm_setup_s", "s", ""),
                            ("storm_s", "s", "")):
        lines.append(f"| {key} | {fmt(res.get(key))} | | {unit} | {goal} |")
    if res.get("conductor"):
        lines += ["", "Conductor (routers holding a long poll; each level run "
                  f"{len(res['conductor'][0].get('runs', [1]))} times on a fresh conductor, "
                  "medians, the setup rate's range; set up and failed: the worst run):", "",
                  "| routers | set up | failed | setup per s | conductor CPU ms per router "
                  "| routers' CPU ms per router | RSS idle KiB | RSS held KiB | KiB per router |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in res["conductor"]:
            low, high = r.get("setup_per_s_range", [r["setup_per_s"]] * 2)
            lines.append(f"| {r['routers']} | {r['set_up']} | {r['failed']} | "
                         f"{fmt(r['setup_per_s'], 1)} ({fmt(low, 1)} – {fmt(high, 1)}) | "
                         f"{fmt(r['setup_cpu_ms_per_router'])} | "
                         f"{fmt(r['routers_cpu_ms_per_router'])} | "
                         f"{fmt(r['conductor_idle_rss_kib'], 0)} | "
                         f"{fmt(r['conductor_rss_kib'], 0)} | {fmt(r['kib_per_router'], 1)} |")
    lines += ["", "Scaling (exchange, one run per level):", "",
              "| concurrency | onramp per s | onramp p50 ms | onramp p99 ms | onramp CPU ms/op "
              "| nginx per s | nginx p99 ms | nginx CPU ms/op | failed |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in sorted({r["concurrency"] for r in scale}):
        o = next(r for r in scale if r["concurrency"] == c and r["target"] == "onramp")
        n = next(r for r in scale if r["concurrency"] == c and r["target"] == "nginx")
        lines.append(f"| {c} | {fmt(o['per_s'], 1)} | {fmt(o['p50_ms'], 1)} | "
                     f"{fmt(o['p99_ms'], 1)} | {fmt(o['server_cpu_ms_per_op'], 3)} | "
                     f"{fmt(n['per_s'], 1)} | {fmt(n['p99_ms'], 1)} | "
                     f"{fmt(n['server_cpu_ms_per_op'], 3)} | {o['failed'] + n['failed']} |")
    lines += ["", "![throughput and p99 against concurrency; conductor memory and CPU per "
              "router against routers](benchmarks.png)", "", MARK_END]
    block = "\n".join(lines)
    with open(doc) as f:
        text = f.read()
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        tail = rest.split(MARK_END, 1)[1]
        text = head + block + tail
    else:
        text += "\n" + block + "\n"
    with open(doc, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--levels", default="1,8,64,256")
    ap.add_argument("--storm-routers", type=int, default=10000,
                    help="routers in the storm (onramp-fleetsim; docs/benchmarks.md)")
    ap.add_argument("--storm-concurrency", type=int, default=64,
                    help="routers in flight at once in the storm")
    ap.add_argument("--storm-default-limits", action="store_true",
                    help="the storm with the daemons' default rate limits (one source: "
                    "50 per s), not those of a site behind one proxy")
    ap.add_argument("--budget", type=float, default=840,
                    help="seconds the whole run may take (make bench: 15 minutes with the "
                    "build); the storm ends by then less a minute for the agent")
    ap.add_argument("--conductor-routers", default="1000,10000",
                    type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--conductor-runs", type=int, default=3,
                    help="runs of each conductor level, each on a fresh conductor: the "
                    "medians and the range of the setup rate are reported")
    ap.add_argument("--profile", action="store_true",
                    help="perf record redirectd and cloudd under the exchange first")
    ap.add_argument("--skip", default="", help="comma-separated: agent,storm,scaling,conductor,docs")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    # 10,000 held polls: the routers' process needs about 3 descriptors each (socket,
    # curl's wake-up pair), the conductor one; root may raise the hard limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out_dir = os.path.join(ROOT, "build", "bench")
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="onramp-bench-")
    res = {"machine": machine(), "rounds": args.rounds, "seconds": args.seconds,
           "concurrency": args.concurrency}
    started = time.monotonic()
    servers = None
    try:
        log(f"setting up the servers and {args.devices} devices in {tmp}")
        servers = Servers(tmp, args.devices)
        log(f"set up in {time.monotonic() - started:.0f} s")
        if args.profile:
            profile(servers, out_dir, args.seconds, args.concurrency)
        runs = compare(servers, args.rounds, args.seconds, args.concurrency)
        scale = []
        if "scaling" not in skip:
            scale = scaling(servers, [int(x) for x in args.levels.split(",")], args.seconds)
        servers.close()
        servers = None
        res["phone_home_vs_nginx"] = med_range(ratios(runs, "phone-home"))[0]
        res["exchange_vs_nginx"] = med_range(ratios(runs, "exchange"))[0]
        res["exchange_per_s"] = med_range([r["per_s"] for r in runs["onramp exchange"]])[0]
        res["nginx_exchange_per_s"] = med_range([r["per_s"] for r in runs["nginx exchange"]])[0]
        one = [r for r in scale if r["concurrency"] == 1 and r["target"] == "onramp"]
        res["keepalive_request_ms"] = (one[0]["keepalive_ms"] if one else
                                       med_range([r["keepalive_ms"]
                                                  for r in runs["onramp exchange"]])[0])
        res["conductor_kib_per_router"] = None
        res["conductor_routers"] = args.conductor_routers[-1]
        res["conductor_setup_per_s"] = None
        res["conductor"] = []
        if "conductor" not in skip:
            for n in args.conductor_routers:
                level_runs = []
                for _ in range(args.conductor_runs):
                    try:
                        level_runs.append(conductor_level(tmp, n))
                    except BaseException as e:  # a failed run leaves no numbers
                        log(f"conductor {n}: {e}")
                if level_runs:
                    res["conductor"].append(conductor_median(level_runs))
            last = [r for r in res["conductor"] if r["routers"] == res["conductor_routers"]]
            if last:
                res["conductor_kib_per_router"] = last[0]["kib_per_router"]
                res["conductor_setup_per_s"] = last[0]["setup_per_s"]
        res.update({"storm_routers": None, "storm_running": None, "storm_failed": None,
                    "storm_p50_s": None, "storm_p99_s": None})
        if "storm" not in skip:
            d = os.path.join(tmp, "storm")
            os.makedirs(d)
            try:
                s = storm(d, args.storm_routers, started + args.budget - AFTER_STORM_S,
                          concurrency=args.storm_concurrency,
                          site_limits=not args.storm_default_limits)
                if s:
                    res.update(s)
            except BaseException as e:  # a failed part leaves its keys null
                log(f"storm: {e}")
        res.update({"agent_peak_rss_kib": None, "agent_cpu_s": None})
        if "agent" not in skip:
            d = os.path.join(tmp, "agent")
            os.makedirs(d)
            try:
                res.update(agent_run(d))
            except BaseException as e:  # a failed part leaves its keys null, the rest stands
                log(f"agent: {e}")
        res["runs"] = runs
        res["scaling"] = scale
        res["elapsed_s"] = time.monotonic() - started
        with open(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump(res, f, indent=1)
        if "docs" not in skip and scale:
            plot(scale, res["conductor"], os.path.join(ROOT, "docs", "benchmarks.png"),
                 os.path.join(out_dir, "scaling.dat"))
        if "docs" not in skip:
            write_docs(res, runs, scale, os.path.join(ROOT, "docs", "benchmarks.md"))
        summary = {k: v for k, v in res.items() if k not in ("runs", "scaling")}
        print(json.dumps(summary, indent=1))
    finally:
        if servers is not None:
            servers.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
