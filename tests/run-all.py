#!/usr/bin/python3
"""Runs every onramp test and prints one summary line, `N passed, N failed`.

Unit tests (cmocka, TAP output) run from the normal build and from the
ASan+UBSan build; integration tests (pytest) run the real programs of the
normal build. Each cmocka case and each pytest test counts once. A unit
program that crashes or leaks counts as one more failure.

Run with Debian's /usr/bin/python3, which has python3-pytest.
"""
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDS = [("build", "unit"), ("build-asan", "unit+asan")]


def run_unit(build_dir, label):
    passed = failed = skipped = 0
    unit_dir = os.path.join(ROOT, build_dir, "tests", "unit")
    if not os.path.isdir(unit_dir):
        print(f"[{label}] missing {unit_dir}: was the build done?")
        return 0, 1, 0
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP",
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    for name in sorted(os.listdir(unit_dir)):
        path = os.path.join(unit_dir, name)
        if not name.startswith("test_") or not os.access(path, os.X_OK) or os.path.isdir(path):
            continue
        proc = subprocess.run([path], cwd=unit_dir, env=env, capture_output=True, text=True,
                              timeout=300)
        p = f = s = 0
        for line in proc.stdout.splitlines():
            # cmocka 1.1 writes a skipped case as "not ok N # SKIP name".
            if re.match(r"^(not )?ok \d+\b.*# SKIP", line):
                s += 1
            elif re.match(r"^ok \d+", line):
                p += 1
            elif re.match(r"^not ok \d+", line):
                f += 1
                print(f"[{label}] FAIL {name}: {line}")
        if proc.returncode != 0 and f == 0:
            f = 1
            print(f"[{label}] FAIL {name}: exit status {proc.returncode}")
        if f or proc.returncode != 0:
            sys.stdout.write(proc.stdout[-4000:])
            sys.stdout.write(proc.stderr[-8000:])
        print(f"[{label}] {name}: {p} passed, {f} failed, {s} skipped")
        passed, failed, skipped = passed + p, failed + f, skipped + s
    return passed, failed, skipped


def run_integration():
    junit = os.path.join(ROOT, "build", "pytest-junit.xml")
    if os.path.exists(junit):
        os.unlink(junit)
    env = dict(os.environ, ONRAMP_BUILD=os.path.join(ROOT, "build"),
               PYTHONDONTWRITEBYTECODE="1")
    # Two test files at a time (pytest-xdist, each file whole on one process):
    # most of a test's time is waiting for daemons, leases and timeouts, not CPU.
    proc = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-rfEs",
                           "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile",
                           f"--junitxml={junit}",
                           os.path.join(ROOT, "tests", "integration")],
                          cwd=ROOT, env=env)
    if not os.path.exists(junit):
        print(f"[integration] pytest produced no report (exit status {proc.returncode})")
        return 0, 1, 0
    suite = ET.parse(junit).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    total = int(suite.get("tests", 0))
    bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    return total - bad - skipped, bad, skipped


def main():
    passed = failed = skipped = 0
    for build_dir, label in BUILDS:
        p, f, s = run_unit(build_dir, label)
        passed, failed, skipped = passed + p, failed + f, skipped + s
    p, f, s = run_integration()
    passed, failed, skipped = passed + p, failed + f, skipped + s
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
