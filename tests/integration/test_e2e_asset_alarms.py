"""End to end (issue 14 point 1), all real: squid, swtpm, redirector, cloud, both
conductors, the agent. The staging conductor refuses the router's asset ID
(`403 unknown-asset`: no router there has it; `403 duplicate-asset`: another device
holds it). The agent raises its own alarm about that asset ID at that conductor and
reports it to the cloud like its other alarms, so it shows in `onrampctl cloud alarm
list` (and the fleet dashboard) for the device; once a conductor accepts the router
the agent clears it, and the cloud's list loses it."""
import json
import re

from e2elab import Agent, wait_until

SERIAL = "SSR1000-E2E-0014"
OTHER = "SSR1000-E2E-0015"


def cloud_alarms(lab, serial):
    return [a for a in lab.cloud_json("alarm", "list")["alarms"] if a["serial"] == serial]


def asset_alarms(lab, serial, asset_id):
    return [a for a in cloud_alarms(lab, serial)
            if f"(asset ID {asset_id} at conductor 127.0.0.1:{lab.staging.port})" in a["alarm"]]


def agent_alarms(agent):
    return json.loads(agent.ctl("show", "alarms", "--json").stdout)["alarms"]


def test_unknown_asset_alarm_reaches_the_cloud_and_clears_once_the_router_is_added(
        e2e_lab, swtpm):
    lab = e2e_lab
    lab.start_squid()
    lab.start_all()
    state = lab.provision(SERIAL, tcti=swtpm.tcti)
    # The operators forgot the router on the staging conductor.
    lab.operators(SERIAL, staging_router=False)
    agent = Agent(lab, state, tcti=swtpm.tcti).start()

    # The cloud lists the agent's alarm for the device, naming the asset ID, the
    # conductor and the remedy.
    alarm = wait_until("the unknown-asset alarm at the cloud",
                       lambda: asset_alarms(lab, SERIAL, SERIAL), timeout=90)[0]
    assert alarm["severity"] == "major"
    assert "conductor does not know the asset ID" in alarm["alarm"]
    assert "onrampctl conductor router add NAME --asset-id ID" in alarm["alarm"]
    out = lab.cloud("alarm", "list")
    assert re.search(rf"(?m)^{alarm['id']}\s+{SERIAL}\s+major\s", out), out
    assert f"(asset ID {SERIAL} at conductor 127.0.0.1:{lab.staging.port})" in out
    # On the router: the same alarm, active, reported.
    mine = [a for a in agent_alarms(agent) if a["subject"] ==
            f"asset ID {SERIAL} at conductor 127.0.0.1:{lab.staging.port}"]
    assert len(mine) == 1 and mine[0]["cleared"] is None and mine[0]["severity"] == "major"
    wait_until("the raise reported", lambda: [
        a for a in agent_alarms(agent) if a["id"] == mine[0]["id"] and a["reported"]])
    # The table cuts the long message and subject in their columns, then gives them whole.
    lines = agent.ctl("show", "alarms").stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("major "))
    assert lines[row].split()[1:6] == ["conductor", "does", "not", "know", "the"]
    assert "... asset ID " in lines[row] and lines[row].endswith("active                yes")
    assert lines[row + 1].strip() == f"{mine[0]['message']} ({mine[0]['subject']})"

    # The router restarts meanwhile (its alarm outlives that), and the operator adds
    # the router: the agent onboards and clears its alarm, at the cloud too.
    agent.stop()
    lab.staging.add_router("r1", SERIAL)
    agent.start()
    agent.wait_done("staging-connect", timeout=90)
    wait_until("the alarm cleared at the cloud",
               lambda: asset_alarms(lab, SERIAL, SERIAL) == [], timeout=60)
    # The same alarm (its id kept across the restart), cleared.
    cleared = [a for a in agent_alarms(agent) if a["subject"] == mine[0]["subject"]]
    assert [a["id"] for a in cleared] == [mine[0]["id"]] and cleared[0]["cleared"] is not None
    wait_until("the clearing reported", lambda: [
        a for a in agent_alarms(agent) if a["id"] == mine[0]["id"] and a["reported"]])
    events = [e for e in lab.device_events(SERIAL) if e["step"] == "alarm"]
    assert [e["outcome"] for e in events if SERIAL in (e["reason"] or "")][-1] == "ok"
    # The flow goes on.
    lab.give_production_info("r1")
    agent.wait_done("production-info", timeout=60)


def test_duplicate_asset_alarm_names_the_asset_id_held_by_another_device(e2e_lab, swtpm):
    """A second device presents the asset ID the first one holds on staging: it is
    refused (`duplicate-asset`) and raises the critical alarm, which the cloud lists
    for it; the first device keeps working, without an alarm."""
    lab = e2e_lab
    first = lab.router(SERIAL, tcti=swtpm.tcti)
    first.wait_done("configuration", timeout=90)
    # The cloud's operator gives the second device the first one's asset ID.
    state = lab.provision(OTHER)
    lab.cloud("device", "set", OTHER, "--asset-id", SERIAL)
    lab.claim(OTHER)
    second = Agent(lab, state, name="agent2").start()

    alarm = wait_until("the duplicate-asset alarm at the cloud",
                       lambda: asset_alarms(lab, OTHER, SERIAL), timeout=90)[0]
    assert alarm["severity"] == "critical"
    assert alarm["alarm"].startswith("asset ID is held by another device (asset ID ")
    assert asset_alarms(lab, SERIAL, SERIAL) == []
    assert [a for a in agent_alarms(second) if a["message"] == "asset ID is held by another "
            "device" and a["cleared"] is None]
    assert not [a for a in agent_alarms(first) if "asset ID" in a["message"]]
