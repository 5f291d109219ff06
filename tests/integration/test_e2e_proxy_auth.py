"""Proxy credentials cost one CONNECT per tunnel, not two (issue 14): with
`auth = basic` the agent sends them with the first CONNECT; with the default
`auth = any` it learns from the proxy's first 407 that Basic is all the proxy
takes and sends them at once from then on. Real squid with Basic auth, the
real agent onboarding end to end; squid's own access log counts."""
from e2elab import wait_until

SERIAL = "SSR1000-AUTH-0001"


def denied(lab):
    return [line for line in lab.squid_connects() if "TCP_DENIED/407" in line]


def tunnels(lab):
    return [line for line in lab.squid_connects() if "TCP_TUNNEL/200" in line]


def onboard(lab, agent):
    agent.start()
    agent.wait_done("production-info", timeout=90)
    proc = lab.staging.ctl("migrate", "conductor", lab.production.address, "router", "r1",
                           "--wait")
    assert proc.returncode == 0, proc.stderr
    agent.wait_done("running", timeout=90)


def test_any_learns_basic_from_the_first_407(e2e_lab):
    lab = e2e_lab
    agent = lab.router(SERIAL, start=False)
    onboard(lab, agent)
    wait_until("several tunnels", lambda: len(tunnels(lab)) >= 4)
    # One round trip to learn the scheme, then every tunnel authenticates at once.
    assert len(denied(lab)) == 1, denied(lab)
    agent.stop()


def test_basic_sends_the_credentials_with_the_first_connect(e2e_lab):
    lab = e2e_lab
    agent = lab.router(SERIAL, start=False)
    with open(agent.conf) as f:
        text = f.read()
    with open(agent.conf, "w") as f:
        f.write(text.replace("password-file = ", "auth = basic\npassword-file = ", 1))
    onboard(lab, agent)
    wait_until("several tunnels", lambda: len(tunnels(lab)) >= 4)
    assert denied(lab) == []
    agent.stop()
