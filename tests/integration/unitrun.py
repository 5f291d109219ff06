#!/usr/bin/python3
"""What systemd does with onramp's units, for a test that follows docs/operations.md
in a scratch root without this machine's systemd: the test puts this program first on
PATH as `systemctl`. `systemctl enable --now UNIT...` and `systemctl start UNIT...`
read each unit the package installed under the scratch root, make its
StateDirectory= and RuntimeDirectory= (owned by its User=, with their modes), run its
ExecStartPre= and ExecStart= as that user with the paths moved under the root, and
wait, as systemd does for Type=notify, until the daemon sends READY=1 on
NOTIFY_SOCKET. The daemons keep running; each one's PID is appended to PIDS for the
test to stop it by, its standard error goes to LOGS/UNIT.log.

Environment: ONRAMP_SCRATCH_ROOT (the root the package was unpacked into),
ONRAMP_SCRATCH_USER (the user standing for onramp), ONRAMP_SCRATCH_STATE (a directory
the user can reach: the notify socket, PIDS, LOGS)."""
import configparser
import os
import pwd
import shlex
import socket
import subprocess
import sys
import time

READY_TIMEOUT = 60


def fail(message):
    print(f"systemctl (scratch): {message}", file=sys.stderr)
    sys.exit(1)


def moved(text, root):
    """A unit's path moved under the scratch root."""
    for prefix in ("/usr/sbin/", "/usr/bin/", "/etc/onramp", "/var/lib/", "/run/"):
        text = text.replace(prefix, root + prefix)
    return text


def load(root, name):
    """The [Service] section of unit NAME (`onramp-cloudd`, `onramp-conductord@staging`,
    with or without .service) as installed, with %i replaced by the instance."""
    name = name.removesuffix(".service")
    prefix, at, instance = name.partition("@")
    path = os.path.join(root, "usr/lib/systemd/system", f"{prefix}{at}.service")
    if not os.path.isfile(path):
        fail(f"{name}: no unit {path}")
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    service = {key: value.replace("%i", instance) for key, value in parser["Service"].items()}
    for key, value in service.items():
        if "%" in value:
            fail(f"{name}: {key}= uses a specifier this runner does not know: {value}")
    return name, service


def make_directories(root, service, uid, gid):
    """StateDirectory= under /var/lib and RuntimeDirectory= under /run, as systemd
    makes them for User=: owned by the user, with the configured modes."""
    for key, base in (("StateDirectory", "var/lib"), ("RuntimeDirectory", "run")):
        mode = int(service.get(key + "Mode", "0755"), 8)
        for word in service.get(key, "").split():
            path = os.path.join(root, base, word)
            os.makedirs(path, exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, mode)


def start(root, user, state, name):
    """Starts one unit as systemd would and returns once it is ready."""
    name, service = load(root, name)
    if service.get("Type") != "notify":
        fail(f"{name}: Type={service.get('Type')}, not notify")
    account = pwd.getpwnam(user if service.get("User") == "onramp" else
                           service.get("User", "root"))
    uid, gid = account.pw_uid, account.pw_gid
    make_directories(root, service, uid, gid)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    as_user = {"user": uid, "group": gid, "extra_groups": [], "cwd": "/"}
    for line in service.get("ExecStartPre", "").splitlines():
        if line.strip():
            proc = subprocess.run(shlex.split(moved(line, root)), env=env,
                                  capture_output=True, text=True, timeout=60, **as_user)
            if proc.returncode != 0:
                fail(f"{name}: ExecStartPre={line} exited {proc.returncode}: {proc.stderr}")
    argv = shlex.split(moved(service["ExecStart"], root))
    notify_path = os.path.join(state, f"notify-{name}.sock")
    if os.path.exists(notify_path):
        os.unlink(notify_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    os.chmod(notify_path, 0o666)
    os.makedirs(os.path.join(state, "logs"), exist_ok=True)
    with open(os.path.join(state, "logs", f"{name}.log"), "ab") as log:
        proc = subprocess.Popen(argv, env=dict(env, NOTIFY_SOCKET=notify_path),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, **as_user)
    with open(os.path.join(state, "pids"), "a") as f:
        f.write(f"{proc.pid} {name}\n")
    deadline = time.monotonic() + READY_TIMEOUT
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            message = sock.recv(4096).decode()
        except socket.timeout:
            if proc.poll() is not None:
                fail(f"{name}: exited {proc.returncode} before READY=1 "
                     f"(log: {state}/logs/{name}.log)")
            continue
        if "READY=1" in message.splitlines():
            sock.close()
            print(f"{name}: ready ({message.strip()})")
            return
    fail(f"{name}: no READY=1 within {READY_TIMEOUT} s")


def main(argv):
    root = os.environ["ONRAMP_SCRATCH_ROOT"]
    user = os.environ["ONRAMP_SCRATCH_USER"]
    state = os.environ["ONRAMP_SCRATCH_STATE"]
    if len(argv) >= 2 and argv[0] == "enable" and argv[1] == "--now":
        units = argv[2:]
    elif len(argv) >= 1 and argv[0] == "start":
        units = argv[1:]
    else:
        fail(f"'{' '.join(argv)}': only 'enable --now UNIT...' and 'start UNIT...' "
             "are run in the scratch root")
    if not units:
        fail("no unit named")
    for unit in units:
        start(root, user, state, unit)


if __name__ == "__main__":
    main(sys.argv[1:])
