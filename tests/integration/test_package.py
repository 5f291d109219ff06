"""Installing like a Debian service: `make install` under PREFIX and DESTDIR,
the Debian package built from the tree (dpkg-buildpackage) with its contents,
its maintainer scripts and its systemd units checked by systemd-analyze
verify in a scratch root, and the bash completion installed with onrampctl."""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS = ("onramp-agent.service", "onramp-cloudd.service", "onramp-redirectd.service",
         "onramp-conductord@.service")
PROGRAMS = ("sbin/onramp-agent", "sbin/onramp-cloudd", "sbin/onramp-conductord",
            "sbin/onramp-redirectd", "bin/onrampctl")
MAN_PAGES = ("man1/onrampctl.1", "man1/onrampctl-cloud.1", "man8/onramp-agent.8",
             "man8/onramp-cloudd.8", "man8/onramp-conductord.8", "man8/onramp-redirectd.8")


def make(*args, timeout=600):
    proc = subprocess.run(["make", "--no-print-directory", "-C", ROOT, *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_make_install_puts_everything_under_prefix_and_destdir(tmp_path):
    dest = tmp_path / "stage"
    try:
        make("install", "PREFIX=/opt/onramp", f"DESTDIR={dest}")
    finally:
        # The build tree goes back to its default prefix for whoever builds next.
        subprocess.run(["meson", "configure", os.path.join(ROOT, "build"),
                        "-Dprefix=/usr/local"], capture_output=True)
    top = dest / "opt" / "onramp"
    for program in PROGRAMS:
        path = top / program
        assert os.access(path, os.X_OK), program
    out = subprocess.run([str(top / "bin" / "onrampctl"), "--version"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("onrampctl "), out
    for page in MAN_PAGES:
        assert (top / "share" / "man" / page).is_file(), page
    assert (top / "share" / "bash-completion" / "completions" / "onrampctl").is_file()
    for unit in UNITS:
        text = (top / "lib" / "systemd" / "system" / unit).read_text()
        # The units start the programs where this install put them.
        assert re.search(r"^ExecStart=/opt/onramp/sbin/onramp-", text, re.M), unit
        assert "/usr/sbin/" not in text, unit
        assert "Type=notify" in text, unit
    # Nothing lands outside DESTDIR/PREFIX.
    assert sorted(os.listdir(dest)) == ["opt"]


@pytest.fixture
def package(onramp_deb):
    """The package `make package` builds (conftest.py: once per session, shared with
    test_e2e_docs.py)."""
    return onramp_deb


def deb_contents(deb):
    out = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True)
    return {line.split()[-1].lstrip(".") for line in out.stdout.splitlines()}


def test_the_package_holds_programs_pages_units_and_completion(package):
    files = deb_contents(package)
    for program in PROGRAMS:
        assert f"/usr/{program}" in files, program
    for page in MAN_PAGES:
        assert f"/usr/share/man/{page}.gz" in files, page
    for unit in UNITS:
        assert f"/usr/lib/systemd/system/{unit}" in files, unit
    assert "/usr/share/bash-completion/completions/onrampctl" in files
    info = subprocess.run(["dpkg-deb", "-I", package], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"^ Package: onramp$", info, re.M)
    assert re.search(r"^ Depends: .*libssl3", info, re.M)


def test_the_package_makes_its_user_and_directories_and_starts_nothing(package, tmp_path):
    subprocess.run(["dpkg-deb", "-e", package, str(tmp_path / "control")], check=True)
    postinst = (tmp_path / "control" / "postinst").read_text()
    # The daemons' user, and state directories owned by it before any `init`.
    assert re.search(r"adduser --system --group .*onramp", postinst, re.S)
    assert "install -d -m 0700 -o onramp -g onramp" in postinst
    assert "/var/lib/onramp-cloudd" in postinst and "/var/lib/onramp-redirectd" in postinst
    # Units are installed, never enabled or started by the package.
    assert "deb-systemd-helper enable" not in postinst
    assert "deb-systemd-invoke start" not in postinst


def test_the_installed_units_verify_in_a_scratch_root(package, tmp_path):
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", package, str(root)], check=True)
    # The units the package's units depend on come from this machine's systemd.
    shutil.copytree("/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system",
                    dirs_exist_ok=True, symlinks=True, ignore_dangling_symlinks=True)
    for unit in UNITS:
        name = unit.replace("@.", "@staging.")
        proc = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}",
                               f"/usr/lib/systemd/system/{name}"],
                              capture_output=True, text=True, timeout=60)
        complaints = [line for line in (proc.stdout + proc.stderr).splitlines()
                      if "$container" not in line and "PR_SET_MM" not in line]
        assert proc.returncode == 0 and complaints == [], f"{unit}: {complaints}"


def complete(*words):
    """What bash completion offers after `onrampctl WORDS...`."""
    script = os.path.join(ROOT, "ctl", "onrampctl.bash")
    typed = " ".join(f"'{w}'" for w in ("onrampctl",) + words)
    proc = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=({typed}); "
                           f"COMP_CWORD={len(words)}; _onrampctl; "
                           "printf '%s\\n' \"${COMPREPLY[@]}\""],
                          capture_output=True, text=True, timeout=10, check=True)
    return [w for w in proc.stdout.split("\n") if w]


def test_bash_completion_offers_commands_subcommands_and_options():
    assert "conductor" in complete("")
    assert complete("con") == ["conductor"]
    assert "add" in complete("conductor", "router", "")
    assert "learned-proxies" in complete("show", "dhcp", "")
    assert complete("conductor", "alarm", "") == ["ack", "clear"]
    assert "--history" in complete("conductor", "show", "alarms", "--")
    assert set(complete("cloud", "alarm", "")) == {"list", "ack", "clear"}
    assert "--history" in complete("cloud", "alarm", "list", "--")
    # Past the words of a command come its options and its parents' options.
    offered = complete("cloud", "site", "set", "ORG", "SITE", "--")
    assert "--psk-file" in offered and "--token-file" in offered


def test_every_completed_option_is_in_the_man_pages():
    man = ""
    for page in ("onrampctl.1", "onrampctl-cloud.1"):
        with open(os.path.join(ROOT, "docs", "man", page)) as f:
            man += f.read().replace("\\-", "-").replace("\\", "")
    with open(os.path.join(ROOT, "ctl", "onrampctl.bash")) as f:
        options = set(re.findall(r"--[a-z0-9-]+", f.read()))
    missing = sorted(o for o in options if o not in man)
    assert missing == []
