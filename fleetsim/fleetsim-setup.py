#!/usr/bin/python3
"""fleetsim-setup: the factory's and the operators' work for N virtual routers
of onramp-fleetsim, done the way they do it: with onrampctl, one router's
chain after the other on --jobs parallel workers.

For router i (serial PREFIX-NNNNNN, also its asset ID and router name):
  onrampctl factory init-device --software     its OCRA key, in software, explicitly
  onrampctl cloud inventory import             the factory record into the cloud
  onrampctl cloud claim --serial --org --site  (the cloud claims it at the redirector)
  onrampctl conductor router add               on the staging conductor
  onrampctl conductor router add               on the production conductor
  onrampctl conductor router production        staging tells it its production conductor

The organisation, its site and the site's onboarding settings (staging
conductor, pre-shared secret, root CA) and the production conductor's
pre-shared secret are made once, before, by the operators (docs/fleetsim.md).
Prints one line per failed router and a summary; exit 0 when every router is
set up, 1 when some are not, 2 on bad arguments."""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

PEERING = {
    "version": 1,
    "router": {"name": "NAME"},
    "hub": {"name": "hub-1", "addresses": ["127.0.0.1:1280"]},
    "neighborhoods": [{"name": "mpls-core", "topology": "spoke", "vector": "mpls"}],
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arguments():
    p = argparse.ArgumentParser(
        prog="fleetsim-setup",
        description="Factory records, inventory, claims and conductor routers for "
                    "onramp-fleetsim's virtual routers, through onrampctl.")
    p.add_argument("--routers", type=int, required=True, help="how many routers")
    p.add_argument("--first", type=int, default=1, help="the first router's number (1)")
    p.add_argument("--state-dir", required=True, help="the routers' directories (DIR/SERIAL)")
    p.add_argument("--prefix", default="SIM", help="serial prefix (SIM: SIM-000001, ...)")
    p.add_argument("--model", default="SSR1000", help="the routers' model")
    p.add_argument("--jobs", type=int, default=8, help="routers set up in parallel (8)")
    p.add_argument("--onrampctl", default=os.path.join(ROOT, "build", "ctl", "onrampctl"))
    p.add_argument("--inventory-key", required=True,
                   help="the cloud's inventory public key (PEM)")
    for who in ("cloud", "staging", "production"):
        p.add_argument(f"--{who}", required=True, help=f"the {who} admin API URL")
        p.add_argument(f"--{who}-ca", required=True, help=f"its trust anchor (PEM)")
        p.add_argument(f"--{who}-token-file", required=True, help="its admin token")
    p.add_argument("--org", required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--production-address", required=True, action="append",
                   help="HOST:PORT of the production conductor (repeatable)")
    p.add_argument("--production-psk-file", required=True)
    p.add_argument("--production-root-ca", required=True)
    p.add_argument("--peering-config", help="a peering configuration to use for every "
                   "router (its router name is replaced); default: a minimal one")
    a = p.parse_args()
    if not 1 <= a.routers <= 1000000 or a.first < 0 or not 1 <= a.jobs <= 256:
        p.error("--routers 1..1000000, --first >= 0, --jobs 1..256")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", a.prefix):
        p.error("--prefix: letters, digits, . _ - (at most 41)")
    for f in (a.onrampctl, a.inventory_key, a.production_psk_file, a.production_root_ca,
              a.cloud_ca, a.staging_ca, a.production_ca, a.cloud_token_file,
              a.staging_token_file, a.production_token_file):
        if not os.path.exists(f):
            p.error(f"{f}: no such file")
    return a


class Setup:
    def __init__(self, a):
        self.a = a
        self.peering = PEERING
        if a.peering_config:
            with open(a.peering_config) as f:
                self.peering = json.load(f)
        self.configs = tempfile.mkdtemp(prefix="fleetsim-setup-")

    def ctl(self, *args):
        proc = subprocess.run([self.a.onrampctl, *args], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"onrampctl {' '.join(args[:2])}: {proc.stderr.strip()}")
        return proc.stdout

    def admin(self, who, *args):
        a = self.a
        kind = "cloud" if who == "cloud" else "conductor"
        return self.ctl(kind, "--url", getattr(a, who), "--ca", getattr(a, f"{who}_ca"),
                        "--token-file", getattr(a, f"{who}_token_file"), *args)

    def router(self, i):
        """One router's chain; the first failure ends it."""
        a = self.a
        serial = f"{a.prefix}-{i:06d}"
        state = os.path.join(a.state_dir, serial)
        record = os.path.join(a.state_dir, f"{serial}.record.json")
        self.ctl("factory", "init-device", "--serial", serial, "--model", a.model,
                 "--state-dir", state, "--software", "--cloud-key", a.inventory_key,
                 "--out", record)
        self.admin("cloud", "inventory", "import", record)
        self.admin("cloud", "claim", "--serial", serial, "--org", a.org, "--site", a.site)
        config = dict(self.peering)
        config["router"] = {"name": serial}
        path = os.path.join(self.configs, f"{serial}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        for who in ("staging", "production"):
            self.admin(who, "router", "add", serial, "--asset-id", serial, "--config", path)
        os.unlink(path)
        addresses = [x for addr in a.production_address for x in ("--address", addr)]
        self.admin("staging", "router", "production", serial, *addresses, "--psk-file",
                   a.production_psk_file, "--root-ca", a.production_root_ca)
        return serial


def main():
    a = arguments()
    os.makedirs(a.state_dir, mode=0o700, exist_ok=True)
    setup = Setup(a)
    start = time.monotonic()
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        futures = {pool.submit(setup.router, i): i
                   for i in range(a.first, a.first + a.routers)}
        for fut in concurrent.futures.as_completed(futures):
            try:
                fut.result()
            except Exception as e:  # one router's failure does not stop the others
                failed += 1
                print(f"fleetsim-setup: {a.prefix}-{futures[fut]:06d}: {e}", file=sys.stderr)
    shutil.rmtree(setup.configs, ignore_errors=True)
    print(f"fleetsim-setup: {a.routers - failed} of {a.routers} routers set up in "
          f"{time.monotonic() - start:.1f} s")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
