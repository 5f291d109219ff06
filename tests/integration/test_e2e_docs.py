"""Every program answers --help (exit 0, a usage line) and has a man page that
formats without a warning; the sample systemd units in docs/examples are well formed;
docs/operations.md, followed as written, installs the Debian package and sets up every
daemon (in a scratch root, on 127.0.0.1)."""
import configparser
import contextlib
import fnmatch
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from cloud_env import Pki
from conftest import free_port, program

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGRAMS = {"onramp-agent": "8", "onramp-redirectd": "8", "onramp-cloudd": "8",
            "onramp-conductord": "8", "onrampctl": "1", "onramp-fleetsim": "1"}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_help_and_man_page(name):
    proc = subprocess.run([program(name), "--help"], capture_output=True, text=True,
                          timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    page = os.path.join(ROOT, "docs", "man", f"{name}.{PROGRAMS[name]}")
    proc = subprocess.run(["man", "-l", "-P", "cat", page], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, MANWIDTH="100"))
    assert proc.returncode == 0 and "SYNOPSIS" in proc.stdout, proc.stderr


def test_onrampctl_sub_commands_of_the_router_have_help():
    for args in (["show", "--help"], ["migrate", "--help"]):
        proc = subprocess.run([program("onrampctl"), *args], capture_output=True, text=True,
                              timeout=10)
        assert proc.returncode == 0 and "usage:" in proc.stdout, args
    proc = subprocess.run([program("onrampctl"), "show", "--help"], capture_output=True,
                          text=True, timeout=10)
    assert "onboarding" in proc.stdout


def test_sample_units_name_real_options():
    for unit in ("onramp-agent.service", "onramp-redirectd.service", "onramp-cloudd.service",
                 "onramp-conductord@.service"):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(os.path.join(ROOT, "docs", "examples", unit))
        assert parser.get("Service", "ExecStart").startswith("/usr/sbin/onramp-")
        assert parser.get("Install", "WantedBy") == "multi-user.target"
        binary = parser.get("Service", "ExecStart").split()[0].rsplit("/", 1)[1]
        assert binary in PROGRAMS


# ---- issue 11 point 8: the sample units and docs/operations.md, as followed ----

# (systemd-analyze verify of these units: tests/integration/test_package.py)
def writable_paths(unit, instance):
    """What a unit's sandbox (ProtectSystem=strict) leaves writable."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(os.path.join(ROOT, "docs", "examples", unit))
    service = parser["Service"]
    assert service.get("ProtectSystem") == "strict"
    out = []
    for key, base in (("ReadWritePaths", ""), ("StateDirectory", "/var/lib/"),
                      ("RuntimeDirectory", "/run/")):
        for word in service.get(key, "").split():
            out.append(base + word.replace("%i", instance))
    return out


def under(path, roots):
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def test_conductor_unit_makes_its_sample_configuration_paths_writable():
    """Every path the sample conductor configuration makes the daemon write (its
    state directory with the SQLite database, its ports-file) and the init token file
    the unit names are writable under the unit's own sandboxing, and made by it."""
    writable = writable_paths("onramp-conductord@.service", "staging")
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(os.path.join(ROOT, "docs", "examples", "conductord.conf"))
    conductor = parser["conductor"]
    state = conductor["state-dir"]
    assert under(state, writable), (state, writable)
    assert under(conductor["ports-file"], writable), (conductor["ports-file"], writable)
    database = conductor.get("database", f"sqlite:{state}/conductor.db")
    assert under(database.split(":", 1)[1], writable)
    with open(os.path.join(ROOT, "docs", "examples", "onramp-conductord@.service")) as f:
        text = f.read()
    token = text.split("--token-file", 1)[1].split()[0].replace("%i", "staging")
    assert under(token, writable), token
    # the daemons' own state directories, likewise
    for unit, directory in (("onramp-redirectd.service", "/var/lib/onramp-redirectd"),
                            ("onramp-cloudd.service", "/var/lib/onramp-cloudd")):
        assert under(directory, writable_paths(unit, "")), unit


OPERATIONS = os.path.join(ROOT, "docs", "operations.md")


def operations_section(title):
    """The text of docs/operations.md's section '## TITLE', up to the next one."""
    with open(OPERATIONS) as f:
        text = f.read()
    assert f"\n## {title}\n" in text, f"operations.md has no section '{title}'"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def code_blocks(text):
    """The fenced blocks of a markdown text, in order: (language, body)."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)


def operations_script(ports):
    """docs/operations.md's 'Setting up, step by step' as one shell script: its sh
    blocks in order, each ini block written to the file its first line names, the
    example ports replaced by ports (per configuration file for `port = 443`)."""
    script = []
    for lang, body in code_blocks(operations_section("Setting up, step by step")):
        if lang == "sh":
            script.append(body)
            continue
        assert lang == "ini", f"a {lang or 'plain'} block in the steps: {body[:80]}"
        first, body = body.split("\n", 1)
        assert first.startswith("# /etc/onramp/"), f"an ini block names no file: {first}"
        path = first[2:].strip()
        own = ports.get(os.path.basename(path))
        if own is not None:
            body = re.sub(r"^port = 443$", f"port = {own}", body, flags=re.M)
        script.append(f"cat > {path} <<'ONRAMP_DOC_EOF'\n{body}ONRAMP_DOC_EOF\n")
    return "".join(script)


def in_scratch(text, root, user, ports):
    """Commands and files of operations.md moved to the scratch root, its user and
    127.0.0.1 with free ports."""
    text = text.replace("https://redirect.example.net",
                        f"https://127.0.0.1:{ports['redirectd.conf']}")
    text = text.replace("https://cloud.example.net", f"https://127.0.0.1:{ports['cloudd.conf']}")
    text = text.replace("= 0.0.0.0", "= 127.0.0.1")
    text = re.sub(r"\b(8443|8444|9443|9444)\b", lambda m: str(ports[m.group(1)]), text)
    for path in ("/etc/onramp", "/var/lib/onramp"):
        text = text.replace(path, root + path)
    return re.sub(r"(-[ugo] )onramp\b", rf"\g<1>{user}", text)


def install_package(deb, root, user):
    """The package unpacked into root, then its own postinst run with the paths moved
    under root and the user named user: as `apt install` would, without touching this
    machine's /."""
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    control = os.path.join(os.path.dirname(root), "control")
    subprocess.run(["dpkg-deb", "-e", deb, control], check=True)
    with open(os.path.join(control, "postinst")) as f:
        postinst = f.read()
    for path in ("/etc/onramp", "/var/lib/onramp"):
        assert path in postinst, path
        postinst = postinst.replace(path, root + path)
    postinst = re.sub(r"(?<![\w/.-])onramp(?![\w/.-])", user, postinst)
    assert "systemctl" not in postinst and "deb-systemd-invoke" not in postinst
    proc = subprocess.run(["sh", "-e", "-s", "configure"], input=postinst, text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def running(pid):
    """True while process pid runs (a zombie waiting for its new parent has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_scratch_daemons(state):
    """Stops, by PID, the daemons the scratch systemctl started; True when each one
    ended on SIGTERM within 15 s."""
    pids_file = os.path.join(state, "pids")
    if not os.path.exists(pids_file):
        return True
    with open(pids_file) as f:
        pids = [int(line.split()[0]) for line in f if line.strip()]
    clean = True
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for pid in pids:
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if running(pid):
            clean = False
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return clean


def test_operations_md_installs_the_package_as_it_says():
    """The 'Installing' block builds the package with make package and installs the
    file it makes."""
    blocks = [b for lang, b in code_blocks(operations_section("Installing the Debian package"))
              if lang == "sh"]
    assert blocks, "no sh block in 'Installing the Debian package'"
    lines = [line.strip() for line in blocks[0].splitlines() if line.strip()]
    assert lines[0] == "make package"
    assert re.fullmatch(r"apt install \./build/package/onramp_\*\.deb", lines[1]), lines


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("adduser") is None or
                    shutil.which("runuser") is None, reason="needs root, adduser and runuser")
def test_operations_md_followed_step_by_step_on_the_installed_package(onramp_deb):
    """docs/operations.md followed in a scratch root: the package unpacked there and
    its postinst run (its user, here a throw-away one, and its directories), then every
    command of 'Setting up, step by step' as written: configuration files, each init as
    the user with --token-file, the units started from the installed unit files
    (tests/integration/unitrun.py: Type=notify, their user, their directories; no
    systemd), and the onrampctl commands against the daemons on 127.0.0.1."""
    assert fnmatch.fnmatch(os.path.basename(onramp_deb), "onramp_*.deb")
    user = f"onrd{os.getpid() % 100000}"
    base = tempfile.mkdtemp(prefix="onramp-ops-")
    os.chmod(base, 0o755)
    root, work, state = (os.path.join(base, d) for d in ("root", "work", "state"))
    for d in (root, work, state):
        os.makedirs(d, mode=0o755)
    ports = {name: free_port() for name in ("redirectd.conf", "cloudd.conf",
                                             "8443", "8444", "9443", "9444")}
    try:
        install_package(onramp_deb, root, user)
        account = pwd.getpwnam(user)
        st = os.stat(os.path.join(root, "etc/onramp"))
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o750, 0, account.pw_gid)
        # The certificates the operator brings: server certificates for 127.0.0.1.
        Pki(work, "redirectd")
        Pki(work, "cloudd")
        shim = os.path.join(state, "bin")
        os.makedirs(shim)
        with open(os.path.join(shim, "systemctl"), "w") as f:
            f.write(f"#!/bin/sh\nexec /usr/bin/python3 "
                    f"{os.path.join(os.path.dirname(__file__), 'unitrun.py')} \"$@\"\n")
        os.chmod(os.path.join(shim, "systemctl"), 0o755)
        script = in_scratch(operations_script(ports), root, user, ports)
        env = {"PATH": f"{shim}:{root}/usr/sbin:{root}/usr/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8", "ONRAMP_SCRATCH_ROOT": root, "ONRAMP_SCRATCH_USER": user,
               "ONRAMP_SCRATCH_STATE": state}
        proc = subprocess.run(["sh", "-e", "-x", "-s"], input=script, cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-5000:])
        # Every daemon is up, from the installed binaries, as the user.
        with open(os.path.join(state, "pids")) as f:
            started = dict(reversed(line.split()) for line in f if line.strip())
        assert sorted(started) == ["onramp-cloudd", "onramp-conductord@production",
                                   "onramp-conductord@staging", "onramp-redirectd"]
        for unit, pid in started.items():
            assert os.stat(f"/proc/{pid}").st_uid == account.pw_uid, unit
            assert os.readlink(f"/proc/{pid}/exe").startswith(root + "/usr/sbin/"), unit
        # What init made is the user's, and the tokens are its alone.
        for daemon in ("redirectd", "cloudd", "conductord-staging", "conductord-production"):
            directory = os.path.join(root, f"var/lib/onramp-{daemon}")
            st = os.stat(directory)
            assert (st.st_mode & 0o777, st.st_uid) == (0o700, account.pw_uid), daemon
            st = os.stat(os.path.join(directory, "admin.token"))
            assert (st.st_mode & 0o777, st.st_uid) == (0o600, account.pw_uid), daemon
        # The commands' results: the tokens, the site's settings, the trusted cloud.
        assert "acme-cloud" in proc.stdout and "line-1" in proc.stdout
        site = subprocess.run(
            [os.path.join(root, "usr/bin/onrampctl"), "cloud", "site", "show", "acme",
             "paris", "--json"], capture_output=True, text=True, timeout=30, cwd=work,
            env=dict(env, ONRAMP_CLOUD_URL=f"https://127.0.0.1:{ports['cloudd.conf']}",
                     ONRAMP_CLOUD_CA=os.path.join(root, "etc/onramp/cloudd-ca.pem"),
                     ONRAMP_CLOUD_TOKEN_FILE=os.path.join(root,
                                                          "var/lib/onramp-cloudd/admin.token")))
        assert site.returncode == 0, site.stderr
        assert str(ports["8443"]) in site.stdout, site.stdout
    finally:
        clean = stop_scratch_daemons(state)
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    assert clean, "a daemon did not stop on SIGTERM within 15 s"


# ---- issue 14 point 7: man pages format cleanly and name only pages that exist ----

MAN_PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "man", "*.[18]")))


@pytest.mark.parametrize("page", [os.path.basename(p) for p in MAN_PAGES])
def test_man_page_formats_without_a_warning(page):
    """`man --warnings -l` (the issue's check) and groff with every warning on
    (-ww) are silent on the page, at man's width (80)."""
    path = os.path.join(ROOT, "docs", "man", page)
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8")
    for argv in (["man", "--warnings", "-l", path], ["groff", "-man", "-Tutf8", "-ww", path]):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        assert proc.returncode == 0 and proc.stderr == "", (argv, proc.stderr)
    # whatis and apropos index the page by its NAME line.
    proc = subprocess.run(["lexgrog", path], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "parse failed" not in proc.stdout, proc.stdout


def man_tags(path):
    """Each .TP item of a man page: (line number, its tag line, the line after it)."""
    with open(path) as f:
        lines = f.read().splitlines()
    return [(i + 2, lines[i + 1], lines[i + 2]) for i, line in enumerate(lines[:-2])
            if line.strip() == ".TP"]


def roff_text(line):
    """A roff line's words without its macro name, quotes and font escapes."""
    line = re.sub(r"^\.[A-Z]+\s*", "", line)
    return re.sub(r"\\f[BIRP]", "", line).replace('"', "")


@pytest.mark.parametrize("page", [os.path.basename(p) for p in MAN_PAGES])
def test_man_page_item_tags_hold_their_whole_synopsis(page):
    """A .TP tag is the one line after .TP: an option's synopsis spilling onto the
    next line lands in the item's body (onrampctl(1)'s `psk create [--name` / `N]`
    and `trust-cloud --cert FILE` / `[--optional]`). Every tag closes its brackets,
    and no body starts with an optional argument."""
    for number, tag, after in man_tags(os.path.join(ROOT, "docs", "man", page)):
        words = roff_text(tag)
        assert words.count("[") == words.count("]"), f"{page}:{number}: {tag}"
        assert not roff_text(after).lstrip().startswith("["), f"{page}:{number + 1}: {after}"


def test_man_pages_name_only_pages_that_exist():
    """Every page(N) a man page names is one of ours or installed on this machine."""
    ours = {os.path.basename(p).rsplit(".", 1)[0] + f"({p.rsplit('.', 1)[1]})"
            for p in MAN_PAGES}
    for path in MAN_PAGES:
        proc = subprocess.run(["man", "-l", "-P", "cat", path], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ, MANWIDTH="1000"))
        text = re.sub(r".\x08", "", proc.stdout)
        title = os.path.basename(path).rsplit(".", 1)[0].upper()
        for name, section in set(re.findall(r"\b([a-z][\w.-]*)\(([1-9])\)", text)):
            if f"{name}({section})" in ours or name.upper() == title:
                continue
            found = subprocess.run(["man", "-w", section, name], capture_output=True)
            assert found.returncode == 0, f"{os.path.basename(path)} names {name}({section})"
