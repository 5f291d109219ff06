"""The C sources follow .clang-format (README.md, "Tests"): every C file
git tracks, checked by clang-format itself; a table kept by hand is fenced with
clang-format off/on comments where it is."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def c_files():
    out = subprocess.run(["git", "ls-files", "-z", "*.c", "*.h"], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode()
    return [name for name in out.split("\0") if name]


def test_every_c_file_is_formatted():
    files = c_files()
    assert len(files) > 100
    proc = subprocess.run(["clang-format", "--dry-run", "--Werror"] + files, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_misformatted_file_is_reported(tmp_path):
    victim = tmp_path / "victim.c"
    victim.write_text("int  f( void ){return 0;}\n")
    proc = subprocess.run(["clang-format", f"--style=file:{os.path.join(ROOT, '.clang-format')}",
                           "--dry-run", "--Werror", str(victim)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "victim.c" in proc.stderr
