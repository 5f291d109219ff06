"""Every program answers --help (exit 0, a usage line) and has a man page; the
sample systemd units and agent.conf in docs/examples are well formed."""
import configparser
import os
import subprocess

import pytest

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
