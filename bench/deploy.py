#!/usr/bin/env python3
"""Deploy speed: b2ct deploy (first run, no-op re-run) against stock ansible-playbook, side by side.

Each side gets a fresh lab (svc1, svc2, wn1, wn2 by default) so both first runs start from the same
state. The labs are bare (`lab up --bare`): like a site's freshly kickstarted hosts they lack the
roles' packages, so the first deploy installs them (from the local repository in the lab image, as a
site installs from its mirror). `--prebaked` uses the test labs instead, whose image already holds
every package, so their "first" deploy only configures. The stock side runs `ansible-playbook` with
default settings (no pipelining, no ControlPersist tuning, full fact gathering, no fact cache) on the
same playbook, roles and hosts. Root only; run it
alone: `flock /run/b2ct-lab-dev.lock python bench/deploy.py`. Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from b2ct import resources  # noqa: E402
from b2ct.deploy import run  # noqa: E402
from b2ct.lab.core import plan_hosts, running_lab  # noqa: E402


def b2ct_side(specs: list, tag: str, bare: bool) -> tuple[float, float, int]:
    with running_lab(f"bd{tag}{os.getpid() % 10000}", specs, label="bench", bare=bare) as lab:
        t0 = time.monotonic()
        first = run(lab.inventory)
        t1 = time.monotonic()
        again = run(lab.inventory)
        t2 = time.monotonic()
        if not (first.ok and again.ok):
            raise SystemExit(f"b2ct deploy failed: {first.summary()} {again.summary()}")
        return t1 - t0, t2 - t1, again.changed


def stock_side(specs: list, tag: str, bare: bool) -> tuple[float, float]:
    with (
        running_lab(f"bs{tag}{os.getpid() % 10000}", specs, label="bench", bare=bare) as lab,
        tempfile.TemporaryDirectory() as tmp,
    ):
        cfg = Path(tmp) / "ansible.cfg"
        cfg.write_text("[defaults]\n")  # defaults, not the repository's ansible.cfg
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(cfg),
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            # the roles call the b2ct.cloud modules: the checkout as that collection
            "ANSIBLE_COLLECTIONS_PATH": str(resources.collections_path(Path(tmp) / "collections")),
        }
        argv = ["ansible-playbook", "-i", str(lab.inventory), str(REPO / "playbooks" / "site.yml")]
        times = []
        for _ in range(2):
            t = time.monotonic()
            subprocess.run(argv, check=True, cwd=tmp, env=env, stdout=subprocess.DEVNULL)
            times.append(time.monotonic() - t)
        return times[0], times[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="svc1,svc2,wn1,wn2")
    ap.add_argument("--prebaked", action="store_true", help="hosts with every role package already installed")
    args = ap.parse_args()
    specs = plan_hosts(args.hosts.split(","), None, None)
    # Deploy logs and fact caches of the bench's runs: removed at the end, also on failure.
    with tempfile.TemporaryDirectory(prefix="b2ct-bench-cache-") as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        first, noop, changed = b2ct_side(specs, "a", not args.prebaked)
        stock_first, stock_noop = stock_side(specs, "b", not args.prebaked)
    print(f"hosts: {args.hosts} ({'prebaked: packages already installed' if args.prebaked else 'bare'})")
    print(f"{'':24}{'b2ct':>10}{'stock':>10}{'b2ct÷stock':>12}")
    print(f"{'first deploy (s)':24}{first:>10.1f}{stock_first:>10.1f}{first / stock_first:>12.2f}")
    print(f"{'no-op re-deploy (s)':24}{noop:>10.1f}{stock_noop:>10.1f}{noop / stock_noop:>12.2f}")
    print(f"no-op ÷ first (b2ct): {noop / first:.2f}   (target ≤ 0.3)")
    print(f"b2ct ÷ stock, first + no-op: {(first + noop) / (stock_first + stock_noop):.2f}   (target ≤ 0.7)")
    print(f"changed on the no-op re-deploy: {changed}")


if __name__ == "__main__":
    main()
