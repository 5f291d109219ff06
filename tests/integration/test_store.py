"""lib/server/store.h against both backends: the cmocka suite tests/unit/server/test_store.c
(CRUD, NULLs, placeholders, transactions, migrations, two connections,
constraints, errors without values) run on a SQLite file and on a throw-away
PostgreSQL, from the normal and the ASan+UBSan builds."""
import os
import re
import subprocess

import pytest

from conftest import ROOT, program

ASAN_BUILD = os.path.join(ROOT, "build-asan")


def run_suite(binary, url):
    env = dict(os.environ, ONRAMP_TEST_STORE_URL=url, CMOCKA_MESSAGE_OUTPUT="TAP",
               ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    proc = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    ran = re.findall(r"^ok \d+ - ", proc.stdout, re.M)
    assert proc.returncode == 0, out
    assert "not ok" not in proc.stdout, out
    assert len(ran) >= 10, out
    assert "ERROR: AddressSanitizer" not in out and "runtime error" not in out, out
    return out


def binaries():
    found = [program("test_store")]
    asan = os.path.join(ASAN_BUILD, "tests", "unit", "test_store")
    if os.access(asan, os.X_OK):
        found.append(asan)
    return found


def test_suite_on_sqlite(tmp_path):
    for i, binary in enumerate(binaries()):
        run_suite(binary, f"sqlite:{tmp_path}/store{i}.db")
    # the file is created with owner-only permissions
    assert os.stat(tmp_path / "store0.db").st_mode & 0o777 == 0o600


@pytest.mark.parametrize("form", ["conninfo", "url"])
def test_suite_on_postgresql(postgres, form):
    for binary in binaries():
        conninfo = postgres.new_database("store")
        dbname = conninfo.rsplit("dbname=", 1)[1]
        url = conninfo if form == "conninfo" else postgres.url_for(dbname)
        run_suite(binary, url)
        # the suite's migrations left their rows in schema_migrations
        rows = postgres.psql("SELECT component, version FROM schema_migrations "
                             "ORDER BY component, version", dbname).stdout
        assert " conc      |       3" in rows
