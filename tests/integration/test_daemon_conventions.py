"""Conventions every program keeps (docs/cli.md): keys spelled with hyphens
(the old underscores still work, with a warning naming FILE:LINE),
--check-config on every daemon, --token-file on every init, --version on
every program."""
import os
import re
import stat
import subprocess

from cloud_env import Pki
from conductorlib import Conductor
from conftest import program, run

PROGRAMS = ("onramp-agent", "onramp-redirectd", "onramp-cloudd", "onramp-conductord",
            "onrampctl")


def redirectd_conf(tmp_path, pki, spelling="-"):
    key = lambda name: name.replace("-", spelling)
    path = tmp_path / "redirectd.conf"
    path.write_text(f"# a redirector\n[redirectd]\naddress = 127.0.0.1\nport = 0\n"
                    f"{key('cert-file')} = {pki.cert}\n{key('key-file')} = {pki.key}\n"
                    f"{key('state-dir')} = {tmp_path}/state\n{key('retry-after')} = 9\n")
    return str(path)


def test_every_program_prints_its_version():
    for name in PROGRAMS:
        proc = run(name, "--version")
        assert proc.returncode == 0, (name, proc.stderr)
        assert re.fullmatch(rf"{name} \d+\.\d+\.\d+\n", proc.stdout), proc.stdout


def test_check_config_accepts_a_good_file_and_writes_nothing(tmp_path):
    pki = Pki(str(tmp_path), "r")
    conf = redirectd_conf(tmp_path, pki)
    for name in ("onramp-redirectd", "onramp-cloudd"):
        text = open(conf).read().replace("[redirectd]", "[cloudd]") if "cloud" in name \
            else open(conf).read()
        text = text.replace("retry-after = 9\n", "") if "cloud" in name else text
        path = tmp_path / f"{name}.conf"
        path.write_text(text)
        proc = run(name, "--config", str(path), "--check-config")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"{path}: configuration OK\n"
    assert not os.path.exists(tmp_path / "state")


def test_check_config_names_file_and_line_of_a_bad_value(tmp_path):
    pki = Pki(str(tmp_path), "r")
    conf = redirectd_conf(tmp_path, pki)
    with open(conf, "a") as f:
        f.write("threads = lots\n")
    proc = run("onramp-redirectd", "--config", conf, "--check-config")
    assert proc.returncode == 2
    assert f"{conf}:9:" in proc.stderr and "threads" in proc.stderr
    assert proc.stdout == ""


def test_the_old_underscore_spelling_still_works_with_a_warning(tmp_path):
    pki = Pki(str(tmp_path), "r")
    conf = redirectd_conf(tmp_path, pki, spelling="_")
    proc = run("onramp-redirectd", "--config", conf, "--check-config")
    assert proc.returncode == 0, proc.stderr
    assert f"{conf}:5: 'cert_file' is deprecated: write 'cert-file'" in proc.stderr
    assert f"{conf}:7: 'state_dir' is deprecated: write 'state-dir'" in proc.stderr
    assert f"{conf}:8: 'retry_after' is deprecated: write 'retry-after'" in proc.stderr


def test_init_writes_the_first_token_to_the_token_file_only(tmp_path):
    pki = Pki(str(tmp_path), "r")
    conf = redirectd_conf(tmp_path, pki)
    token_file = tmp_path / "admin.token"
    proc = run("onramp-redirectd", "init", "--config", conf, "--token-file", str(token_file))
    assert proc.returncode == 0, proc.stderr
    token = token_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert token not in proc.stdout and token not in proc.stderr
    assert f"the first admin token is in {token_file}" in proc.stderr
    # The token works: the redirector, served, accepts it.
    with open(tmp_path / "redirectd.log", "wb") as log:
        serve = subprocess.Popen([program("onramp-redirectd"), "--config", conf, ],
                                 stdout=log, stderr=log)
    try:
        port = None
        for _ in range(100):
            text = (tmp_path / "redirectd.log").read_text()
            m = re.search(r"port (\d+)", text)
            if m:
                port = int(m.group(1))
                break
            subprocess.run(["sleep", "0.1"])
        assert port, (tmp_path / "redirectd.log").read_text()
        listing = run("onrampctl", "redirect", "--url", f"https://127.0.0.1:{port}", "--ca",
                      pki.ca, "--token-file", str(token_file), "token", "list")
        assert listing.returncode == 0, listing.stderr
        assert "admin" in listing.stdout
    finally:
        serve.terminate()
        serve.wait(timeout=15)


def test_token_file_is_for_init_only(tmp_path):
    pki = Pki(str(tmp_path), "r")
    conf = redirectd_conf(tmp_path, pki)
    proc = run("onramp-redirectd", "--config", conf, "--token-file", str(tmp_path / "t"))
    assert proc.returncode == 2
    assert "--token-file is for init" in proc.stderr


def test_conductor_checks_its_configuration(tmp_path):
    conductor = Conductor("staging", "conventions")
    try:
        proc = run("onramp-conductord", "--config", conductor.config, "--check-config")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"{conductor.config}: configuration OK\n"
        assert not os.path.exists(conductor.state)
        with open(conductor.config, "a") as f:
            f.write("[conductor]\npoll-timeout = never\n")
        proc = run("onramp-conductord", "--config", conductor.config, "--check-config")
        assert proc.returncode == 2
        assert f"{conductor.config}:" in proc.stderr and "poll-timeout" in proc.stderr
    finally:
        conductor.cleanup()


def test_agent_says_which_settings_do_nothing_or_overlap(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text(f"[agent]\nstate-dir = {tmp_path}/state\ncontrol-socket = {tmp_path}/a.sock\n"
                    "[proxy]\nmode = learned\nhealth-interval = 2\nhealth-timeout = 5\n"
                    "[interface eth9]\ndhcp = false\nenable-proxy-discovery = true\n")
    proc = run("onramp-agent", "-c", str(conf), "--check-config")
    assert proc.returncode == 0, proc.stderr
    assert (f"{conf}:10: enable-proxy-discovery does nothing on [interface eth9]: "
            "it has dhcp = false") in proc.stderr
    assert f"{conf}:7: health-timeout (5 s) is longer than health-interval (2 s)" in proc.stderr
    # Said only when it matters.
    conf.write_text(f"[agent]\nstate-dir = {tmp_path}/state\ncontrol-socket = {tmp_path}/a.sock\n"
                    "[proxy]\nmode = learned\nhealth-interval = 5\nhealth-timeout = 5\n"
                    "[interface eth9]\ndhcp = hook\nenable-proxy-discovery = true\n")
    proc = run("onramp-agent", "-c", str(conf), "--check-config")
    assert proc.returncode == 0 and "warn" not in proc.stderr, proc.stderr


def test_a_refusal_with_an_obvious_remedy_says_it(tmp_path):
    """`--conductor HOST:PORT` is refused before anything is sent, saying where the port goes."""
    proc = run("onrampctl", "cloud", "--url", "https://127.0.0.1:9", "--ca", "/dev/null",
               "--token-file", "/dev/null", "site", "set", "acme", "paris", "--conductor",
               "10.20.0.5:4505")
    assert proc.returncode == 2
    assert "give --conductor 10.20.0.5 --port 4505" in proc.stderr


def test_show_watch_asks_again_until_stopped(tmp_path):
    import json
    import signal
    import time
    conf = tmp_path / "agent.conf"
    sock = tmp_path / "a.sock"
    conf.write_text(f"[agent]\nstate-dir = {tmp_path}/state\ncontrol-socket = {sock}\n"
                    "[proxy]\nmode = static\nstatic = 127.0.0.1:9\n")
    agent = subprocess.Popen([program("onramp-agent"), "-c", str(conf)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.1)
        watch = subprocess.Popen([program("onrampctl"), "show", "management-proxy", "--watch",
                                  "--json", "--socket", str(sock)], stdout=subprocess.PIPE,
                                 text=True)
        first = json.loads(watch.stdout.readline())
        second = json.loads(watch.stdout.readline())  # asked again, without being run again
        assert first["mode"] == second["mode"] == "static"
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=10) == 0
    finally:
        agent.terminate()
        agent.wait(timeout=15)


def test_fleet_listings_watch(tmp_path):
    import json
    import signal
    from cloud_env import CloudEnv
    env = CloudEnv(str(tmp_path))
    try:
        env.ctl_ok("org", "add", "acme")
        base = [program("onrampctl"), "cloud", "--url", env.cloud.url, "--ca", env.cloud_pki.ca,
                "--token-file", env.cloud.token_file]
        watch = subprocess.Popen(base + ["org", "list", "--watch", "--json"],
                                 stdout=subprocess.PIPE, text=True)
        first = json.loads(watch.stdout.readline())
        env.ctl_ok("org", "add", "globex")
        second = json.loads(watch.stdout.readline())
        while len(second["organizations"]) < 2:  # the next answer sees the change
            second = json.loads(watch.stdout.readline())
        assert [o["name"] for o in first["organizations"]] == ["acme"]
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=10) == 0
        # A change is never repeated.
        proc = env.ctl("org", "add", "initech", "--watch")
        assert proc.returncode == 2 and "--watch is for commands that read" in proc.stderr
        assert "initech" not in env.ctl_ok("org", "list")
    finally:
        env.stop()
