"""`make demo` (scripts/demo.sh) as README says: the whole flow on this machine,
where to look next (each program's log, the operator commands it ran), and
KEEP=1 leaving the lab and its dashboard running until `make demo-stop`."""
import os
import re
import ssl
import subprocess
import urllib.request

from conftest import BUILD, ROOT


def demo(*args, timeout=300):
    env = dict(os.environ, ONRAMP_BUILD=BUILD, DEMO_KEEP="1")
    return subprocess.run([os.path.join(ROOT, "scripts", "demo.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_demo_kept_shows_where_to_look_and_stops_on_demand():
    current = os.path.join(BUILD, "demo-current")
    proc = demo()
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out = proc.stdout
        assert "demo: router branch-paris-1 is running on the production conductor" in out
        # Where to look next: every program's log, the operator commands.
        logs = os.path.join(BUILD, "demo", "logs")
        for name in ("agent.log", "cloudd.log", "redirectd.log", "staging.log",
                     "production.log", "squid-access.log"):
            assert f"demo:   {name}" in out and os.path.getsize(os.path.join(logs, name)) > 0
        script = os.path.join(BUILD, "demo", "operator-commands.sh")
        with open(script) as f:
            ops = f.read()
        assert "device register" in ops and " claim --serial SSR1000-DEMO-0001" in ops
        assert "migrate conductor" in ops
        assert subprocess.run(["bash", "-n", script]).returncode == 0
        # Kept: the dashboard answers, with the token file it names.
        m = re.search(r"^dashboard: (https://127\.0\.0\.1:\d+/ui/) token-file: (\S+)$", out, re.M)
        assert m, out
        url, token_file = m.groups()
        lab = os.path.dirname(token_file)
        ctx = ssl.create_default_context(cafile=os.path.join(lab, "cloud-ca.pem"))
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            assert resp.status == 200 and b"onramp fleet" in resp.read()
        with open(token_file) as f:
            assert re.fullmatch(r"[0-9a-f]{64}\n?", f.read())
        with open(current) as f:
            pids = [int(line.split()[0]) for line in f.read().splitlines()[1:]]
        assert len(pids) == 7 and all(alive(p) for p in pids)
    finally:
        stop = demo("stop")
    assert stop.returncode == 0, stop.stderr
    assert "demo: stopped onramp-agent" in stop.stdout
    assert not any(alive(p) for p in pids)
    assert not os.path.exists(current) and not os.path.exists(lab)
