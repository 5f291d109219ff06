"""`onrampctl ocra` against all 70 RFC 6287 Appendix C vectors, and its
refusal of malformed suites and inputs (exit 2, one line on stderr)."""
import csv
import os

import pytest

from conftest import ROOT

VECTORS = os.path.join(ROOT, "tests", "vectors", "ocra-rfc6287-appendix-c.tsv")
SHARED = os.path.join(ROOT, "..", "shared", "vectors", "ocra-rfc6287-part.tsv")


def load(path):
    with open(path, newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def args_for(v):
    args = ["ocra", "--suite", v["suite"], "--key", v["key_hex"], "--question", v["question"]]
    if v["counter"]:
        args += ["--counter", v["counter"]]
    if v["password_hash_hex"]:
        args += ["--password-hash", v["password_hash_hex"]]
    if v["session_info"]:
        args += ["--session", v["session_info"]]
    if v["timestamp"]:
        args += ["--timestamp", v["timestamp"]]
    return args


ALL = load(VECTORS)


def test_the_file_holds_all_70_vectors():
    assert len(ALL) == 70
    assert sum(1 for v in ALL if v["suite"].startswith("OCRA-1:HOTP-SHA1-6:QN08")) == 10


@pytest.mark.parametrize("v", ALL, ids=[f"{i:02d}-{v['suite']}-{v['question']}"
                                        for i, v in enumerate(ALL)])
def test_appendix_c_vector(ctl, v):
    proc = ctl(*args_for(v))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == v["expected"] + "\n"
    assert proc.stderr == ""


def test_shared_partial_vectors_agree(ctl):
    if not os.path.exists(SHARED):
        pytest.skip("../shared/vectors is not beside this checkout")
    rows = load(SHARED)
    assert len(rows) >= 35
    for v in rows:
        proc = ctl(*args_for(v))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == v["expected"], v


KEY = "3132333435363738393031323334353637383930"


@pytest.mark.parametrize("suite", [
    "", "OCRA-1", "OCRA-2:HOTP-SHA1-6:QN08", "OCRA-1:HOTP-SHA1-6", "OCRA-1:HOTP-MD5-6:QN08",
    "OCRA-1:HOTP-SHA1-3:QN08", "OCRA-1:HOTP-SHA1-11:QN08", "OCRA-1:HOTP-SHA1-6:QN03",
    "OCRA-1:HOTP-SHA1-6:QN65", "OCRA-1:HOTP-SHA1-6:QZ08", "OCRA-1:HOTP-SHA1-6:C",
    "OCRA-1:HOTP-SHA1-6:QN08-PMD5", "OCRA-1:HOTP-SHA1-6:QN08-S000", "OCRA-1:HOTP-SHA1-6:QN08-T60S",
    "OCRA-1:HOTP-SHA1-6:QN08-T49H", "OCRA-1:HOTP-SHA1-6:QN08-T1M-C", "OCRA-1:HOTP-SHA1-6:QN08:",
])
def test_malformed_suite_exits_2(ctl, suite):
    proc = ctl("ocra", "--suite", suite, "--key", KEY, "--question", "12345678")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "OCRA suite" in lines[0], proc.stderr


@pytest.mark.parametrize("extra,message", [
    (["--question", "123"], "too short"),
    (["--question", "123456789012345678"], "too long"),
    (["--question", "12x45678"], "not numeric"),
    (["--question", "12345678", "--counter", "1"], "takes no counter"),
    (["--question", "12345678", "--session", "00"], "takes no session"),
    (["--question", "12345678", "--password-hash", "00"], "takes no password"),
    (["--question", "12345678", "--timestamp", "1"], "takes no timestamp"),
    ([], "needs a question"),
    (["--question", "12345678", "--bogus"], "unknown or incomplete option"),
    (["--question", "12345678", "stray"], "unexpected argument"),
])
def test_bad_inputs_exit_2(ctl, extra, message):
    proc = ctl("ocra", "--suite", "OCRA-1:HOTP-SHA1-6:QN08", "--key", KEY, *extra)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("suite,extra,message", [
    ("OCRA-1:HOTP-SHA1-6:C-QN08", ["--counter", "x"], "counter must be a decimal"),
    ("OCRA-1:HOTP-SHA1-6:C-QN08", ["--counter", "-1"], "counter must be a decimal"),
    ("OCRA-1:HOTP-SHA1-6:C-QN08", ["--counter", "99999999999999999999999"], "64 bits"),
    ("OCRA-1:HOTP-SHA1-6:QN08-PSHA1", ["--password-hash", "zz"], "not hexadecimal"),
    ("OCRA-1:HOTP-SHA1-6:QN08-PSHA1", ["--password-hash", "00" * 21], "20 bytes"),
    ("OCRA-1:HOTP-SHA1-6:QN08-S004", ["--session", "0011223344"], "at most 4"),
    ("OCRA-1:HOTP-SHA1-6:QN08-S004", ["--session", "xyz"], "not hexadecimal"),
    ("OCRA-1:HOTP-SHA1-6:QN08-T1M", ["--timestamp", "xyz"], "hexadecimal number"),
    ("OCRA-1:HOTP-SHA1-6:QN08-T1M", [], "needs a timestamp"),
])
def test_bad_values_exit_2(ctl, suite, extra, message):
    proc = ctl("ocra", "--suite", suite, "--key", KEY, "--question", "12345678", *extra)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr


def test_bad_key_and_missing_arguments(ctl):
    for args, message in [(["--key", "xyz"], "key is not hexadecimal"),
                          (["--key", "abc"], "odd number"),
                          (["--key", ""], "key is empty"),
                          ([], "--suite and --key are required")]:
        proc = ctl("ocra", "--suite", "OCRA-1:HOTP-SHA1-6:QN08", "--question", "12345678", *args)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)


def test_session_information_is_left_padded(ctl):
    base = ["ocra", "--suite", "OCRA-1:HOTP-SHA1-6:QN08-S004", "--key", KEY,
            "--question", "12345678"]
    short = ctl(*base, "--session", "1234")
    full = ctl(*base, "--session", "00001234")
    odd = ctl(*base, "--session", "01234")
    assert short.returncode == 0 and short.stdout == full.stdout == odd.stdout


def test_help_and_unknown_command(ctl):
    proc = ctl("ocra", "--help")
    assert proc.returncode == 0 and "--suite SUITE" in proc.stdout
    proc = ctl("frobnicate")
    assert proc.returncode == 2 and "unknown command" in proc.stderr
    proc = ctl("--help")
    assert proc.returncode == 0 and "ocra" in proc.stdout
