"""Every program answers --help (exit 0, a usage line) and has a man page; the
sample systemd units and agent.conf in docs/examples are well formed."""
import configparser
import glob
import os
import re
import pwd
import shutil
import subprocess
import tempfile

import pytest

from cloud_env import Pki
from conftest import program

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


def operations_shell(name):
    """The shell lines of docs/operations.md's Installing block whose command is name
    (continuation lines joined)."""
    with open(os.path.join(ROOT, "docs", "operations.md")) as f:
        text = f.read()
    block = text.split("## Installing", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines
            if line.strip().startswith(name + " ")]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None or
                    shutil.which("runuser") is None, reason="needs root, useradd and runuser")
def test_operations_md_followed_literally_lets_init_run_as_the_service_user():
    """docs/operations.md's steps with a throw-away service user, under a scratch
    root: its directory creation, then each daemon's init as that user (runuser).
    Without state directories owned by the user, init fails: Permission denied."""
    user = f"onrt{os.getpid() % 100000}"
    root = tempfile.mkdtemp(prefix="onramp-ops-")
    os.chmod(root, 0o755)
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", user], check=True, capture_output=True)
    try:
        for d in ("var/lib", "etc/onramp", "usr/sbin", "run"):
            os.makedirs(os.path.join(root, d), mode=0o755, exist_ok=True)
        # the binaries where the user can run them (the build tree may not be open to it)
        for name in ("onramp-redirectd", "onramp-cloudd", "onramp-conductord"):
            shutil.copy(program(name), os.path.join(root, "usr/sbin", name))
        steps = operations_shell("install")
        for step in [s for s in steps if s.startswith("install -d")]:
            step = step.replace(" /var/lib/", f" {root}/var/lib/").replace(
                " /etc/onramp", f" {root}/etc/onramp").replace(
                "-o onramp", f"-o {user}").replace("-g onramp", f"-g {user}")
            subprocess.run(["sh", "-c", step], check=True, capture_output=True)

        def init(binary, *args):
            proc = subprocess.run(["runuser", "-u", user, "--",
                                   os.path.join(root, "usr/sbin", binary), *args],
                                  capture_output=True, text=True, timeout=120, cwd="/")
            assert "Permission denied" not in proc.stderr, proc.stderr
            assert proc.returncode == 0, proc.stderr
            return proc

        for role in ("staging", "production"):
            state = f"{root}/var/lib/onramp-conductord-{role}"
            conf = f"{root}/etc/onramp/conductord-{role}.conf"
            # the sample configuration, under the scratch root
            with open(os.path.join(ROOT, "docs", "examples", "conductord.conf")) as f:
                sample = f.read().replace("staging", role)
            with open(conf, "w") as f:
                f.write(sample.replace("= /var/lib/", f"= {root}/var/lib/").replace(
                    "= /run/", f"= {root}/run/"))
            os.chmod(conf, 0o644)
            init("onramp-conductord", "init", "--config", conf, "--token-file",
                 f"{state}/admin.token")
            st = os.stat(os.path.join(state, "master.key"))
            assert st.st_uid == pwd.getpwnam(user).pw_uid
            assert os.path.exists(os.path.join(state, "admin.token"))
        pki = Pki(root, "ops")
        for d in ("redirectd", "cloudd"):
            state = f"{root}/var/lib/onramp-{d}"
            conf = f"{root}/etc/onramp/{d}.conf"
            extra = ""
            if d == "cloudd":
                extra = (f"public-url = https://127.0.0.1:1\npublic-ca-file = {pki.ca}\n"
                         f"[redirector]\nurl = https://127.0.0.1:1\nca-file = {pki.ca}\n"
                         f"token-file = {root}/etc/onramp/cloud.token\n")
            with open(conf, "w") as f:
                f.write(f"[{d}]\naddress = 127.0.0.1\nport = 1\ncert-file = {pki.cert}\n"
                        f"key-file = {pki.key}\nstate-dir = {state}\n{extra}")
            os.chmod(conf, 0o644)
            init(f"onramp-{d}", "init", "--config", conf)
            assert os.stat(state).st_uid == pwd.getpwnam(user).pw_uid
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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
