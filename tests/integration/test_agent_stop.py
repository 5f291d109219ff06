"""Issue 14 point 7: SIGTERM ends the agent within the documented 5 s, also
while it holds a long command poll to its conductor."""
import time

from e2elab import Lab

SERIAL = "SSR1000-STOP-0001"
STOP_BOUND_S = 5.0  # docs/agent.md, onramp-agent(8)


def test_sigterm_during_a_long_conductor_poll_exits_cleanly_within_the_bound(tmp_path):
    lab = Lab(tmp_path, poll_timeout=120)
    try:
        agent = lab.router(SERIAL, start=False)
        with open(agent.conf) as f:
            text = f.read()
        with open(agent.conf, "w") as f:
            f.write(text.replace("poll-wait = 2\n", "poll-wait = 120\n"))
        agent.start()
        agent.wait_done("production-info")
        # Its reports go out between polls: a few seconds on, it sits in a
        # poll the conductor holds for 120 s.
        time.sleep(3)
        started = time.monotonic()
        agent.proc.terminate()
        rc = agent.proc.wait(timeout=30)
        took = time.monotonic() - started
        assert rc == 0, agent.log()[-3000:]
        assert took < STOP_BOUND_S, f"stopped after {took:.1f} s\n" + agent.log()[-2000:]
        assert "still in a request" not in agent.log()
        # a cancelled poll is no failure: nothing is logged or reported as lost
        after = agent.log().split("signal 15: stopping")[1]
        assert "lost" not in after and "[warn]" not in after and "[error]" not in after, after
    finally:
        lab.close()
