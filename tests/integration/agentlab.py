"""A small lab for the agent's integration tests: network namespaces joined
by veth pairs, real DHCP servers (dnsmasq, ISC dhcpd, Kea), real tinyproxy
instances as management proxies, and onramp-agent running inside the client
namespace.

Everything is started by the tests and stopped by PID; namespaces carry the
test process's PID in their names and are deleted afterwards. Addresses live
only inside those namespaces (10.77.N.0/24)."""
import itertools
import json
import os
import socket
import subprocess

from conftest import program
from conftest import stop_process as stop
from conftest import wait_until as wait_for

_counter = itertools.count()

# ISC dhcpd: the lease time and one pool; the test adds classes after it.
DHCPD_CONF = """\
authoritative;
ddns-update-style none;
default-lease-time {lease};
max-lease-time {lease};
min-lease-time {lease};
subnet {net}.0 netmask 255.255.255.0 {{
  range {net}.100 {net}.150;
}}
"""


def sh(*args, check=True):
    """Runs a command and returns its stdout; raises with stderr on failure."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout




class Lab:
    """A client namespace with links dh0..dhN-1, each to its own server
    namespace (interface v0 there, address 10.77.(i+1).1/24). With links=None
    there are no namespaces: everything runs on this host, on 127.0.0.1."""

    def __init__(self, tmp, links=1):
        self.tmp = str(tmp)
        self.procs = []
        self.dnsmasq = {}  # the DHCP server of each link (dnsmasq, dhcpd or kea)
        self.client, self.servers = None, []
        if links is None:
            return
        tag = f"{os.getpid()}x{next(_counter)}"
        self.client = f"orc{tag}"
        self.servers = [f"ors{tag}s{i}" for i in range(links)]
        sh("ip", "netns", "add", self.client)
        sh("ip", "-n", self.client, "link", "set", "lo", "up")
        for i, ns in enumerate(self.servers):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "link", "add", "v0", "netns", ns, "type", "veth", "peer", "name",
               f"dh{i}", "netns", self.client)
            sh("ip", "-n", ns, "addr", "add", f"10.77.{i + 1}.1/24", "dev", "v0")
            sh("ip", "-n", ns, "link", "set", "v0", "up")
            sh("ip", "-n", self.client, "link", "set", f"dh{i}", "up")

    def close(self):
        for proc in reversed(self.procs):
            stop(proc)
        for ns in ([self.client] if self.client else []) + self.servers:
            sh("ip", "netns", "del", ns, check=False)

    def spawn(self, ns, args, log, env=None):
        """Starts args inside namespace ns (None: on this host), output to log."""
        prefix = ["ip", "netns", "exec", ns] if ns else []
        with open(log, "ab") as out:
            proc = subprocess.Popen(prefix + list(args), stdout=out, stderr=subprocess.STDOUT,
                                    env=env)
        self.procs.append(proc)
        return proc

    # --- DHCP server -------------------------------------------------------

    def start_dnsmasq(self, link, lines):
        """Starts dnsmasq on server `link` with extra config lines; the lease
        file is kept across restarts so that renewals are answered."""
        self.stop_dnsmasq(link)
        net = f"10.77.{link + 1}"
        conf = os.path.join(self.tmp, f"dnsmasq{link}.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "port=0", "no-resolv", "no-hosts", "interface=v0", "bind-interfaces",
                f"dhcp-range={net}.100,{net}.150,255.255.255.0,2m",
                f"dhcp-leasefile={self.tmp}/leases{link}", "no-ping", "log-dhcp",
            ] + list(lines)) + "\n")
        proc = self.spawn(self.servers[link],
                          ["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}",
                           "--user=root", f"--pid-file={self.tmp}/dnsmasq{link}.pid",
                           f"--log-facility={self.tmp}/dnsmasq{link}.log"],
                          os.path.join(self.tmp, f"dnsmasq{link}.out"))
        self.dnsmasq[link] = proc
        wait_for("dnsmasq to listen", lambda: proc.poll() is not None or
                 ":67 " in sh("ip", "netns", "exec", self.servers[link], "ss", "-lun"))
        assert proc.poll() is None, open(os.path.join(self.tmp, f"dnsmasq{link}.out")).read()
        return proc

    def stop_dnsmasq(self, link):
        stop(self.dnsmasq.pop(link, None))

    def _wait_dhcp_server(self, link, proc, name, log):
        wait_for(f"{name} to listen", lambda: proc.poll() is not None or
                 ":67 " in sh("ip", "netns", "exec", self.servers[link], "ss", "-lun"))
        assert proc.poll() is None, open(log, errors="replace").read()

    def start_dhcpd(self, link, text, lease_time=600):
        """Starts ISC dhcpd (4.4) on server `link` with a pool in
        10.77.(link+1).0/24 and text (declarations: option spaces, classes)
        after it. Lease, pid and log files stay in the lab's directory."""
        net = f"10.77.{link + 1}"
        conf = os.path.join(self.tmp, f"dhcpd{link}.conf")
        leases = os.path.join(self.tmp, f"dhcpd{link}.leases")
        with open(conf, "w") as f:
            f.write(DHCPD_CONF.format(net=net, lease=lease_time) + text + "\n")
        open(leases, "a").close()
        log = os.path.join(self.tmp, f"dhcpd{link}.log")
        proc = self.spawn(self.servers[link],
                          ["dhcpd", "-f", "-d", "-4", "-cf", conf, "-lf", leases, "-pf",
                           os.path.join(self.tmp, f"dhcpd{link}.pid"), "v0"], log)
        self.dnsmasq[link] = proc
        self._wait_dhcp_server(link, proc, "dhcpd", log)
        return proc

    def start_kea(self, link, fragment, lease_time=600):
        """Starts Kea's DHCPv4 server (2.2) on server `link` with a pool in
        10.77.(link+1).0/24; fragment (a dict: client-classes, option-def)
        is merged into its Dhcp4 object. Lease, pid, lock and log files stay
        in the lab's directory."""
        net = f"10.77.{link + 1}"
        log = os.path.join(self.tmp, f"kea{link}.log")
        dhcp4 = {
            "interfaces-config": {"interfaces": ["v0"], "dhcp-socket-type": "raw"},
            "lease-database": {"type": "memfile", "persist": True, "lfc-interval": 0,
                               "name": os.path.join(self.tmp, f"kea{link}.leases.csv")},
            "valid-lifetime": lease_time,
            "subnet4": [{"id": 1, "subnet": f"{net}.0/24",
                         "pools": [{"pool": f"{net}.100 - {net}.150"}]}],
            "loggers": [{"name": "kea-dhcp4", "severity": "DEBUG", "debuglevel": 40,
                         "output_options": [{"output": log}]}],
        }
        dhcp4.update(fragment)
        path = os.path.join(self.tmp, f"kea{link}.json")
        with open(path, "w") as f:
            json.dump({"Dhcp4": dhcp4}, f, indent=1)
        env = dict(os.environ, KEA_PIDFILE_DIR=self.tmp, KEA_LOCKFILE_DIR=self.tmp)
        proc = self.spawn(self.servers[link], ["kea-dhcp4", "-c", path], log + ".out", env=env)
        self.dnsmasq[link] = proc
        self._wait_dhcp_server(link, proc, "kea-dhcp4", log + ".out")
        return proc

    # --- proxies -----------------------------------------------------------

    def add_address(self, link, addr):
        sh("ip", "-n", self.servers[link], "addr", "add", f"{addr}/24", "dev", "v0")

    def start_tinyproxy(self, link, addr, port):
        """A real tinyproxy listening on addr:port in server namespace `link`
        (None: on this host)."""
        name = f"tinyproxy-{addr}-{port}"
        conf = os.path.join(self.tmp, name + ".conf")
        ns = None if link is None else self.servers[link]
        with open(conf, "w") as f:
            f.write(f"Port {port}\nListen {addr}\nAllow 10.77.0.0/16\nAllow 127.0.0.1\n"
                    f"Timeout 30\nLogFile \"{self.tmp}/{name}.log\"\n")
        proc = self.spawn(ns, ["tinyproxy", "-d", "-c", conf],
                          os.path.join(self.tmp, name + ".out"))
        ss = (["ip", "netns", "exec", ns] if ns else []) + ["ss", "-ltn"]
        wait_for(f"tinyproxy on {addr}:{port}",
                 lambda: proc.poll() is not None or f"{addr}:{port} " in sh(*ss))
        assert proc.poll() is None, open(os.path.join(self.tmp, name + ".out")).read()
        return proc

    # --- the agent ---------------------------------------------------------

    def start_agent(self, conf_text, name="agent"):
        return Agent(self, self.client, conf_text, name)


class Agent:
    """onramp-agent with its own state directory and control socket."""

    def __init__(self, lab, ns, conf_text, name="agent"):
        self.lab = lab
        self.dir = os.path.join(lab.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.socket = os.path.join(self.dir, "agent.sock")
        self.log = os.path.join(self.dir, "agent.log")
        self.conf = os.path.join(self.dir, "agent.conf")
        with open(self.conf, "w") as f:
            f.write(f"[agent]\nstate-dir = {self.dir}/state\ncontrol-socket = {self.socket}\n"
                    f"log-level = debug\n" + conf_text)
        args = [program("onramp-agent"), "-c", self.conf]
        if ns is None:
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
            lab.procs.append(self.proc)
        else:
            self.proc = lab.spawn(ns, args, self.log)
        wait_for("the agent's control socket",
                 lambda: self.proc.poll() is not None or os.path.exists(self.socket))
        assert self.proc.poll() is None, self.read_log()

    def stop(self):
        stop(self.proc)

    def read_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def ctl(self, *args):
        return subprocess.run([program("onrampctl")] + list(args) + ["--socket", self.socket],
                              capture_output=True, text=True, timeout=30)

    def request(self, obj):
        """One raw request on the control socket; the agent's answer object."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.socket)
            s.sendall(json.dumps(obj).encode() + b"\n")
            s.shutdown(socket.SHUT_WR)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return json.loads(out)

    def show(self, *topic):
        proc = self.ctl("show", *topic, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def proxy(self):
        return self.show("management-proxy")

    def learned(self):
        return {i["name"]: i for i in self.show("dhcp", "learned-proxies")["interfaces"]}

    def alarms(self):
        return self.show("alarms")["alarms"]

    def wait_active(self, active, state="reachable", timeout=20.0):
        return wait_for(f"active proxy {active} ({state})",
                        lambda: (lambda p: p if p["active"] == active and p["state"] == state
                                 else None)(self.proxy()), timeout=timeout)


def option43_hex(*proxies):
    """dnsmasq's colon-hex for option 43 carrying sub-option 128 for each proxy
    text (bytes, so that malformed ones can be sent too), then an end byte."""
    out = b""
    for p in proxies:
        out += bytes([128, len(p)]) + p
    return ":".join(f"{b:02x}" for b in out + b"\xff")
