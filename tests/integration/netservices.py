"""Real network services for integration tests, started and stopped by PID:
a test CA (openssl CLI), openssl s_server as an HTTPS origin (plain -www, or
scripted answers with the RFC 5705 exporter it computed), squid (Basic or
Digest auth), tinyproxy, a TLS-intercepting proxy, and network namespaces.

Everything listens on 127.0.0.1 on free ports; every process is stopped by
its PID and every temporary directory removed, also when a test fails.
See /work/shared/notes/real-components.md for the traps these avoid.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from conftest import free_port


class HeldPort:
    """A port bound but not listening: nothing else can take it, and a
    connection to it is refused. For "server down" and "proxy down" cases."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class SilentPort:
    """A port that accepts TCP connections (into the backlog) and never says a
    word: for timeouts in the TLS handshake or in a proxy's CONNECT."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def make_tmpdir(prefix):
    """A directory under /tmp that squid's `proxy` user can read (pytest's are 0700)."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return d


def wait_listening(port, proc, what, log=None, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    detail = ""
    if log and os.path.exists(log):
        with open(log, errors="replace") as f:
            detail = f.read()[-3000:]
    raise RuntimeError(f"{what} did not start listening on port {port}\n{detail}")


class Service:
    """A process we started; stop() ends it by PID and waits for it."""

    def __init__(self, proc, port=None, name="service"):
        self.proc = proc
        self.port = port
        self.name = name

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


class DirService(Service):
    """A service with its own temporary directory, removed when it stops."""

    def stop(self):
        if hasattr(self, "proc"):
            super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalCA:
    """A CA made with the openssl CLI, issuing server certificates."""

    def __init__(self, directory, name="onramp test CA"):
        self.dir = directory
        self.cert = os.path.join(directory, "ca.pem")
        self.key = os.path.join(directory, "ca.key")
        self.serial = 1
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2",
                 "-subj", f"/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name, sans):
        """A server certificate and key for the given subjectAltNames ("DNS:x", "IP:y")."""
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        cert = os.path.join(self.dir, f"{name}.pem")
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={','.join(sans)}\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        self.serial += 1
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                 "-set_serial", str(self.serial), "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def start_s_server_www(cert, key, extra=()):
    """openssl s_server -www: answers 200 to any GET, then closes the connection."""
    port = free_port()
    proc = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
                             cert, "-key", key, "-www", *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    svc = Service(proc, port, "s_server")
    try:
        wait_listening(port, proc, "openssl s_server")
    except Exception:
        svc.stop()
        raise
    return svc


class ScriptedOrigin(Service):
    """openssl s_server without -www: one connection at a time, every byte the
    client sends printed on stdout, every byte written to its stdin sent back.
    Each time a request head ends, the next scripted answer is written, so the
    connection stays open as long as the answers allow (keep-alive). It also
    prints the keying material exporter of each connection (-keymatexport)."""

    def __init__(self, cert, key, answers, label="EXPORTER-onramp-test", length=32,
                 extra=(), env=None):
        port = free_port()
        proc = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}",
                                 "-cert", cert, "-key", key, "-keymatexport", label,
                                 "-keymatexportlen", str(length), *extra],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                env=dict(os.environ, **env) if env else None)
        super().__init__(proc, port, "s_server (scripted)")
        self.answers = list(answers)
        self.lines = []
        self.requests = []
        self.exporters = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # Not a TCP probe: s_server would count it as a client. It prints ACCEPT when ready.
        if not self.wait_for(lambda o: "ACCEPT" in o.lines or o.proc.poll() is not None,
                             timeout=15) or self.proc.poll() is not None:
            out = self.output()
            self.stop()
            raise RuntimeError(f"openssl s_server did not start:\n{out}")

    def _read(self):
        head = None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            with self.cond:
                self.lines.append(line)
                m = re.match(r"\s*Keying material: ([0-9A-Fa-f]+)$", line)
                if m:
                    self.exporters.append(m.group(1).lower())
                if re.match(r"^(GET|POST|PUT|PATCH|DELETE) \S+ HTTP/1\.1$", line):
                    head = [line]
                elif head is not None and line == "":
                    self.requests.append(head)
                    head = None
                    if self.answers:
                        try:
                            self.proc.stdin.write(self.answers.pop(0))
                            self.proc.stdin.flush()
                        except (BrokenPipeError, ValueError):
                            pass
                elif head is not None:
                    head.append(line)
                self.cond.notify_all()

    def output(self):
        with self.cond:
            return "\n".join(self.lines)

    def wait_for(self, predicate, timeout=5):
        """Waits until predicate(self) holds (the reader thread lags the client a little)."""
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), timeout=timeout)


def answer(status, reason, body=b"", headers=()):
    """Bytes of one HTTP/1.1 answer with Content-Length."""
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


SQUID_CONF = """\
http_port 127.0.0.1:{port} name=open
http_port 127.0.0.1:{restricted_port} name=restricted
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log stdio:{dir}/access.log
log_mime_hdrs on
cache deny all
{auth}
acl authenticated proxy_auth REQUIRED
acl SSL_ports port 443
acl CONNECT method CONNECT
acl restricted myportname restricted
http_access deny restricted CONNECT !SSL_ports
{access}
http_access allow authenticated
http_access deny all
shutdown_lifetime 0 seconds
pinger_enable off
visible_hostname onramp-test
"""


class Squid(DirService):
    """squid with Basic (htpasswd from apache2-utils) or Digest auth. Port
    `port` allows CONNECT anywhere to authenticated users; `restricted_port`
    denies CONNECT to ports other than 443, like Debian's stock SSL_ports rule.
    netns: run in that namespace; extra_conf: lines at the end; access: acl and
    http_access lines before the one allowing authenticated users."""

    def __init__(self, scheme, users, netns=None, extra_conf="", access=""):
        self.dir = make_tmpdir("onramp-squid-")
        self.restricted_port = None
        try:
            if scheme == "basic":
                pwfile = os.path.join(self.dir, "htpasswd")
                for i, (user, password) in enumerate(users.items()):
                    subprocess.run(["htpasswd", "-b"] + (["-c"] if i == 0 else []) +
                                   [pwfile, user, password], check=True, capture_output=True)
                auth = (f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {pwfile}\n"
                        "auth_param basic realm onramp-test")
            elif scheme == "digest":
                pwfile = os.path.join(self.dir, "digest_passwd")
                with open(pwfile, "w") as f:
                    f.writelines(f"{u}:{p}\n" for u, p in users.items())
                auth = (f"auth_param digest program /usr/lib/squid/digest_file_auth {pwfile}\n"
                        "auth_param digest realm onramp-test")
            else:
                raise ValueError(scheme)
            os.chmod(pwfile, 0o644)
            port, self.restricted_port = free_port(), free_port()
            conf = os.path.join(self.dir, "squid.conf")
            with open(conf, "w") as f:
                f.write(SQUID_CONF.format(port=port, restricted_port=self.restricted_port,
                                          dir=self.dir, auth=auth, access=access)
                        + extra_conf)
            for name in ("cache.log", "access.log"):
                path = os.path.join(self.dir, name)
                open(path, "w").close()
                shutil.chown(path, user="proxy")
            self.cache_log = os.path.join(self.dir, "cache.log")
            self.access_log = os.path.join(self.dir, "access.log")
            prefix = ["ip", "netns", "exec", netns] if netns else []
            proc = subprocess.Popen([*prefix, "squid", "-N", "-f", conf],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            super().__init__(proc, port, f"squid ({scheme})")
            for p in (port, self.restricted_port):
                if netns:
                    _wait_in_netns(netns, p, proc, self.cache_log, "squid")
                else:
                    wait_listening(p, proc, "squid", self.cache_log)
        except Exception:
            self.stop()
            raise

    def access_log_text(self):
        with open(self.access_log, errors="replace") as f:
            return f.read()


class Tinyproxy(DirService):
    """tinyproxy, optionally with BasicAuth and a ConnectPort restriction, and
    optionally inside a network namespace."""

    def __init__(self, user=None, password=None, connect_port=None, netns=None):
        self.dir = make_tmpdir("onramp-tinyproxy-")
        try:
            port = free_port()
            conf = os.path.join(self.dir, "tinyproxy.conf")
            lines = [f"Port {port}", "Listen 127.0.0.1", f"PidFile \"{self.dir}/tinyproxy.pid\"",
                     "Allow 127.0.0.1", "LogLevel Connect", "MaxClients 20"]
            if user:
                lines.append(f"BasicAuth {user} {password}")
            if connect_port:
                lines.append(f"ConnectPort {connect_port}")
            with open(conf, "w") as f:
                f.write("\n".join(lines) + "\n")
            self.log = os.path.join(self.dir, "stderr.log")
            prefix = ["ip", "netns", "exec", netns] if netns else []
            with open(self.log, "w") as log:
                proc = subprocess.Popen([*prefix, "tinyproxy", "-d", "-c", conf],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            super().__init__(proc, port, "tinyproxy")
            if netns:
                _wait_in_netns(netns, port, proc, self.log, "tinyproxy")
            else:
                wait_listening(port, proc, "tinyproxy", self.log)
        except Exception:
            self.stop()
            raise


def _wait_in_netns(netns, port, proc, log, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-ltn", f"sport = :{port}"],
                             capture_output=True, text=True).stdout
        if f":{port}" in out:
            return
        time.sleep(0.05)
    with open(log, errors="replace") as f:
        raise RuntimeError(f"{what} did not listen in {netns}:\n{f.read()[-2000:]}")


class InterceptingProxy:
    """A TLS-intercepting proxy: it answers CONNECT with 200, then terminates
    TLS itself with its own certificate (not from the client's trust anchor),
    as a corporate inspection proxy does. Were a client to accept it, it would
    answer 200 "intercepted" itself. Records every CONNECT request head."""

    def __init__(self, cert, key, port=0):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connects = []
        self.intercepted = 0
        self.handshake_errors = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self._one(conn)
                except (OSError, ssl.SSLError) as e:
                    self.handshake_errors.append(str(e))

    def _one(self, conn):
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        self.connects.append(head.decode(errors="replace"))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        tls = self.ctx.wrap_socket(conn, server_side=True)
        tls.recv(65536)
        self.intercepted += 1
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nintercepted")
        tls.close()

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(timeout=5)


class Netns:
    """A network namespace with only loopback up: no route leaves it, so a DNS
    query to the system's resolver fails at once, on this machine.
    use_local_resolver() points the resolver of the programs started in it
    (`ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf) at 127.0.0.1,
    where a LocalDns in the namespace answers."""

    def __init__(self, tag):
        self.name = f"onramp-{tag}-{os.getpid()}"
        self.etc = os.path.join("/etc/netns", self.name)
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        subprocess.run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"],
                       check=True, capture_output=True)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def use_local_resolver(self):
        os.makedirs(self.etc, exist_ok=True)
        with open(os.path.join(self.etc, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\n")

    def delete(self):
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)


class LocalDns(DirService):
    """dnsmasq as the only DNS server of a namespace (127.0.0.1 port 53 there),
    with no upstream: it answers every query REFUSED, or with nxdomain=True
    NXDOMAIN for names under .invalid. Every query it got is in its log."""

    def __init__(self, netns, nxdomain=False):
        self.dir = make_tmpdir("onramp-dns-")
        try:
            self.log = os.path.join(self.dir, "dnsmasq.log")
            args = [*netns.prefix(), "dnsmasq", "--keep-in-foreground", "--no-resolv",
                    "--no-hosts", "--port=53", "--listen-address=127.0.0.1",
                    "--bind-interfaces", "--user=root", f"--pid-file={self.dir}/dnsmasq.pid",
                    "--log-queries", f"--log-facility={self.log}"]
            if nxdomain:
                args.append("--address=/invalid/")
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            super().__init__(proc, 53, "dnsmasq (DNS)")
            deadline = time.monotonic() + 15
            while "127.0.0.1:53 " not in subprocess.run(
                    [*netns.prefix(), "ss", "-lun"], capture_output=True, text=True).stdout:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dnsmasq did not listen on 127.0.0.1:53 in {netns.name}")
                time.sleep(0.05)
        except Exception:
            self.stop()
            raise

    def queries(self):
        with open(self.log, errors="replace") as f:
            return re.findall(r"query\[\w+\] (\S+) from", f.read())
