"""Instantiate 1, 4 and 8 VMs on the lab's real cloud and time until all are RUNNING; prints 8 ÷ 1 and the
per-VM slope, side by side in one run.

Brings up a lab (svc1 svc2 wn1 wn2), deploys every role (OpenNebula from the lab's mirror), `cloud
apply`, registers the image and template, then for each round and each count N instantiates N VMs of the
template at once (no cluster pinning: the scheduler spreads them over the four hosts), waits until every
one is RUNNING, and terminates them. Rounds interleave the counts, so other load hits every cell alike.
The lab is taken down at the end:

    python3 bench/cloud.py [--rounds 3]

What bounds it: oned's scheduler dispatches every SCHED_INTERVAL seconds (15 in 6.10's sched.conf) at
most MAX_HOST VMs per host (1) per cycle, so 8 VMs on 4 hosts need two cycles; under QEMU emulation each
guest's start is CPU on this machine's cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from b2ct.deploy import run  # noqa: E402
from b2ct.inventory import load  # noqa: E402
from b2ct.lab.core import plan_hosts, running_lab  # noqa: E402
from b2ct.opennebula import belle2, client, plan  # noqa: E402
from b2ct.opennebula.reconcile import Reconciler  # noqa: E402
from b2ct.opennebula.template import render  # noqa: E402

COUNTS = (1, 4, 8)
RUNNING, ACTIVE = 3, 3
GONE = {6}  # DONE


def instantiate(one: Any, template_id: int, n: int) -> float:
    """Seconds from the first instantiate call until all ``n`` VMs are RUNNING (then terminated)."""
    t0 = time.monotonic()
    # oned 6.10 refuses an empty extra template (a parse error): pass one harmless attribute
    extra = f'DESCRIPTION = "bench/cloud.py, {n} at once"'
    ids = [int(one.template.instantiate(template_id, f"b-{n}-{i}", False, extra, False)) for i in range(n)]
    pending = set(ids)
    try:
        while pending:
            for vmid in list(pending):
                vm = one.vm.info(vmid)
                if (vm.STATE, vm.LCM_STATE) == (ACTIVE, RUNNING):
                    pending.discard(vmid)
                elif vm.STATE in belle2.VM_ENDED or vm.LCM_STATE in belle2.LCM_FAILURES:
                    raise SystemExit(f"VM {vmid} failed: state {belle2.state_name(vm)}")
            if time.monotonic() - t0 > 900:
                raise SystemExit(f"VMs {sorted(pending)} not RUNNING after 900 s")
            time.sleep(0.2)
        return time.monotonic() - t0
    finally:
        for vmid in ids:
            one.vm.action("terminate-hard", vmid)
        while any(int(one.vm.info(v).STATE) not in GONE for v in ids):
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with running_lab(f"bcloud{os.getpid() % 10000}", plan_hosts(None, None, None), label="bench") as lab:
        deployed = run(lab.inventory, keep_logs=False)
        if not deployed.ok:
            raise SystemExit(f"deploy failed: {deployed.summary()}")
        site = load(lab.inventory)
        endpoint = client.endpoint_for(site)
        one = client.connect(endpoint, client.frontend_session(site, lab.inventory))
        Reconciler(one, endpoint).apply(plan.build(site))
        belle2.register(one, endpoint, site)
        while any(int(h.STATE) != 2 for h in one.hostpool.info().HOST):
            time.sleep(1)
        tpl = next(t for t in one.templatepool.info(-2, -1, -1).VMTEMPLATE if t.NAME == "belle2-worker")
        # The template pins its VMs to the workers; the bench's copy has no SCHED_REQUIREMENTS, so the
        # scheduler spreads them over every host (an empty expression is a parse error at instantiation).
        one.template.update(tpl.ID, render(belle2.vm_template(site)), 0)
        instantiate(one, int(tpl.ID), 1)  # warm-up: images cached on the hosts, drivers loaded
        times: dict[int, list[float]] = {n: [] for n in COUNTS}
        for _ in range(args.rounds):
            for n in COUNTS:
                times[n].append(instantiate(one, int(tpl.ID), n))
    best = {n: min(t) for n, t in times.items()}
    for n in COUNTS:
        runs = " ".join(f"{t:.1f}" for t in times[n])
        print(f"N={n}: best {best[n]:.1f}s  runs {runs}")
    ratio = best[8] / best[1]
    slope = (best[8] - best[1]) / 7
    print(f"ratio 8 / 1: {ratio:.2f} (target <= 2.5); slope {slope:.1f} s per extra VM "
          f"(the original deployment: about 1 VM per second)")  # fmt: skip


if __name__ == "__main__":
    main()
