"""lib/ in layers: scripts/check-layers.py over the real tree, and that it
catches what it is there to catch (docs/architecture.md, "lib/ in layers")."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(ROOT, "scripts", "check-layers.py")


def run_check(root):
    return subprocess.run(["/usr/bin/python3", CHECK, root], capture_output=True, text=True,
                          timeout=60)


def test_every_lib_file_includes_only_its_own_layer_or_lower_ones():
    proc = run_check(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every C file of lib/ sits in one of the five layers.
    loose = [f for f in os.listdir(os.path.join(ROOT, "lib")) if f.endswith((".c", ".h"))]
    assert loose == []


def test_an_upward_include_is_reported_with_file_and_line(tmp_path):
    shutil.copytree(os.path.join(ROOT, "lib"), tmp_path / "lib")
    victim = tmp_path / "lib" / "core" / "error.c"
    text = victim.read_text()
    victim.write_text(text + '\n#include "server/store.h"\n#include "json.h"\n')
    lines = len(text.splitlines()) + 2
    proc = run_check(str(tmp_path))
    assert proc.returncode == 1
    assert f'lib/core/error.c:{lines}: #include "server/store.h": core may include only core' \
        in proc.stdout
    assert f'lib/core/error.c:{lines + 1}: #include "json.h": a libonramp header is named ' \
        'layer/file.h' in proc.stdout
    assert "2 include(s) break the layering" in proc.stderr
