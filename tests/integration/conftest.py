"""Shared fixtures for onramp's integration tests: they run the real programs
from the normal build (ONRAMP_BUILD, default ./build)."""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ONRAMP_BUILD", os.path.join(ROOT, "build"))

PROGRAMS = {
    "onrampctl": "ctl/onrampctl",
    "onramp-agent": "agent/onramp-agent",
}


def program(name):
    """Path of a built program, failing the test clearly when it was not built."""
    path = os.path.join(BUILD, PROGRAMS[name])
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built; run 'make' first")
    return path


def run(name, *args, check=False, **kwargs):
    """Runs a built program and returns the CompletedProcess (text mode)."""
    proc = subprocess.run([program(name), *args], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 60), **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def ctl():
    return lambda *args, **kw: run("onrampctl", *args, **kw)
