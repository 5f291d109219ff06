"""End to end (issue 11, points 4 and 6), all real: squid, swtpm, redirector, cloud,
both conductors, the agent. The staging conductor has the router under a mistyped
asset ID: the agent is refused, the conductor raises an alarm naming the asset ID the
device presented, and the cloud shows the refusal as the device's last error. The
operator corrects the asset ID with `router set`; the agent onboards under the same
router name, the stale last errors are gone at the cloud and the conductor, and the
flow goes on to production."""
import json

from e2elab import Agent, wait_until

SERIAL = "SSR1000-E2E-0011"
TYPO = "SSR1000-E2E-OO11"  # letters O for zeros


def unknown_asset_alarms(lab):
    alarms = json.loads(lab.staging.ok("show", "alarms", "--json"))["alarms"]
    return [a for a in alarms if a["kind"] == "unknown-asset"]


def cloud_last_error(lab):
    return lab.cloud_json("device", "show", SERIAL)["last_error"]


def test_mistyped_asset_id_is_corrected_on_the_conductor(e2e_lab, swtpm):
    lab = e2e_lab
    lab.start_squid()
    lab.start_all()
    state = lab.provision(SERIAL, tcti=swtpm.tcti)
    # The operators, with a typo in the staging conductor's asset ID.
    lab.cloud("org", "add", "acme")
    lab.cloud("site", "add", "acme", "paris")
    staging_psk = lab.staging.psk("paris")
    lab.staging.add_router("r1", TYPO)
    lab.production.add_router("r1", SERIAL)
    lab.give_production_info("r1")
    lab.cloud("site", "set", "acme", "paris", "--conductor", "127.0.0.1", "--port",
              str(lab.staging.port), "--psk-file", staging_psk, "--ca-file",
              lab.staging.ca_export())
    lab.claim(SERIAL)
    agent = Agent(lab, state, tcti=swtpm.tcti).start()

    # Refused at staging: the alarm names the asset ID the device presented, and the
    # router still waiting for its device (where the typo is).
    alarm = wait_until("the unknown-asset alarm", lambda: unknown_asset_alarms(lab),
                       timeout=60)[0]
    assert alarm["subject"] == SERIAL
    assert f"r1 (asset ID {TYPO})" in alarm["message"]
    assert lab.staging.asset_state(SERIAL) == "unknown"
    assert lab.staging.asset_state(TYPO) == "pending"
    # The cloud shows the refusal as the device's current error.
    error = wait_until("the refusal as the cloud's last error",
                       lambda: (cloud_last_error(lab) or "").startswith("staging-connect: ")
                       and cloud_last_error(lab), timeout=60)
    assert "unknown-asset" in error or "not known" in error, error

    # Corrected under the same name: the agent onboards, and nothing stale is left.
    lab.staging.ok("router", "set", "r1", "--asset-id", SERIAL)
    agent.wait_done("configuration", timeout=60)
    wait_until("the cloud's last error cleared", lambda: cloud_last_error(lab) is None,
               timeout=60)
    record = lab.staging.router()
    assert record["name"] == "r1" and record["asset_id"] == SERIAL
    assert record["last_error"] is None
    assert lab.staging.asset_state(TYPO) is None
    assert unknown_asset_alarms(lab) == []
    # The history keeps the refusal.
    events = lab.device_events(SERIAL)
    assert [e for e in events if e["step"] == "staging-connect" and e["outcome"] == "failed"]

    # Same name on both conductors, so migrate's validation passes and the flow ends
    # running on production (a router added under a new name would fail it).
    agent.wait_done("production-info")
    out = lab.staging.ok("migrate", "conductor", lab.production.address, "router", "r1",
                         "--wait")
    assert "router r1 migrated" in out
    agent.wait_done("running")
    wait_until("production to show the router running",
               lambda: lab.production.asset_state(SERIAL) == "running")
    assert cloud_last_error(lab) is None


def test_rotated_site_secret_keeps_onboarded_routers_and_onboards_new_ones(e2e_lab, swtpm):
    """Rotating a site's staging secret (issue 11, point 6): a new secret in the
    cloud's site settings, the old one revoked on staging. The router onboarded with
    the old one (key in swtpm) keeps working, also after a restart; a new router gets
    the new secret from the cloud and onboards."""
    lab = e2e_lab
    agent = lab.router(SERIAL, tcti=swtpm.tcti)
    agent.wait_done("configuration")
    certificates = len(lab.staging.router("r1")["certificates"])

    new_psk = lab.staging.psk("paris-2")
    lab.cloud("site", "set", "acme", "paris", "--psk-file", new_psk)
    assert " revoked at " in lab.staging.ok("psk", "revoke", "paris")
    psks = {p["name"]: p for p in json.loads(lab.staging.ok("psk", "list", "--json"))["psks"]}
    assert psks["paris"]["revoked"] and psks["paris-2"]["revoked"] is None

    # The onboarded router, restarted, authenticates again (its vault holds the old
    # secret; its device key is the one bound) and still takes commands.
    agent.stop()
    agent.start()
    lab.staging.ok("router", "renew", "r1")
    wait_until("a renewed certificate on the restarted router",
               lambda: len(lab.staging.router("r1")["certificates"]) > certificates, timeout=60)
    assert lab.staging.router("r1")["last_error"] is None

    # A new router of the site onboards with the new secret.
    second = "SSR1000-E2E-0012"
    state = lab.provision(second)
    lab.staging.add_router("r2", second)
    lab.claim(second)
    Agent(lab, state, name="agent2").start().wait_done("configuration", timeout=60)
    assert lab.staging.router("r2")["last_error"] is None
    assert "revoked pre-shared secret refused" not in lab.staging.log()
