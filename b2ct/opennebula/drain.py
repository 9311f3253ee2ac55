"""Take a host out of service and back: disable, move its VMs away, wait until it runs none, enable.

Service hosts share their system datastore (GlusterFS): their VMs are live-migrated (`onevm migrate
--live`). Workers keep VM disks on their local disk: their VMs are rescheduled, as `onehost flush` does
(`onevm resched`: the scheduler cold-migrates each to another enabled host of the cluster, copying its
disks over ssh). States and actions as OpenNebula 6.10's XML-RPC API names them (host.xsd, vm.xsd).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from b2ct.errors import B2ctError
from b2ct.opennebula.client import api_errors

ENABLED, DISABLED = 0, 1
HOST_MONITORED, HOST_DISABLED = 2, 4
VM_ACTIVE, LCM_RUNNING = 3, 3


def host_id(one: Any, endpoint: str, name: str) -> int:
    with api_errors(endpoint, f"looking up host {name}"):
        pool = one.hostpool.info()
    for h in pool.HOST:
        if name == h.NAME:
            return int(h.ID)
    raise B2ctError(
        f"host {name} is not registered in OpenNebula", where=endpoint, hint="run b2ct cloud apply first"
    )


def disable(one: Any, endpoint: str, name: str) -> int:
    hid = host_id(one, endpoint, name)
    with api_errors(endpoint, f"disabling host {name}"):
        one.host.status(hid, DISABLED)
    return hid


HOST_OFFLINE = 8


def enable(one: Any, endpoint: str, name: str) -> None:
    """Enable a disabled (or offline) host; one already enabled is left alone: oned 6.10 puts a host it
    is asked to enable twice back to INIT, where it stays until its next forced monitoring."""
    hid = host_id(one, endpoint, name)
    with api_errors(endpoint, f"enabling host {name}"):
        if int(one.host.info(hid).STATE) in (HOST_DISABLED, HOST_OFFLINE):
            one.host.status(hid, ENABLED)


def _vms(one: Any, endpoint: str, hid: int, name: str) -> list[int]:
    with api_errors(endpoint, f"reading host {name}"):
        return [int(i) for i in one.host.info(hid).VMS.ID]


def _running(one: Any, endpoint: str, vm: int) -> bool:
    """Only a RUNNING VM can be migrated or rescheduled; one booting, migrating or being shut down is
    waited for (oned refuses the action with "Wrong state")."""
    with api_errors(endpoint, f"reading VM {vm}"):
        info = one.vm.info(vm)
    return (int(info.STATE), int(info.LCM_STATE)) == (VM_ACTIVE, LCM_RUNNING)


def _targets(one: Any, endpoint: str, hid: int, name: str) -> tuple[str, list[Any]]:
    """(cluster name, the other MONITORED hosts of ``name``'s cluster)."""
    with api_errors(endpoint, f"choosing where the VMs of {name} go"):
        me = one.host.info(hid)
        return str(me.CLUSTER), [
            h
            for h in one.hostpool.info().HOST
            if h.CLUSTER_ID == me.CLUSTER_ID and hid != h.ID and h.STATE == HOST_MONITORED
        ]


def drain(
    one: Any,
    endpoint: str,
    name: str,
    *,
    live_migrate: bool,
    flush: bool = False,
    timeout: float = 3600.0,
    poll: float = 0.2,
    say: Callable[[str], None] = lambda _m: None,
) -> None:
    """Disable ``name`` and wait until no VM runs there (``timeout`` seconds; B2ctError after it, the host
    left disabled). With ``live_migrate`` its VMs move, running, to another enabled host of the same
    cluster first; with ``flush`` they are rescheduled (cold migration); with neither, they must end. A VM
    that is not RUNNING yet (booting, already migrating, being terminated) is acted on once it is; with no
    other enabled host in the cluster the VMs can go nowhere and are waited for."""
    hid = disable(one, endpoint, name)
    moved: set[int] = set()
    alone_said = False
    deadline = time.monotonic() + timeout
    while True:
        vms = _vms(one, endpoint, hid, name)
        if not vms:
            return
        todo = [
            vm for vm in vms if vm not in moved and (live_migrate or flush) and _running(one, endpoint, vm)
        ]
        if todo:
            cluster, targets = _targets(one, endpoint, hid, name)
            if not targets:
                if not alone_said:
                    say(f"{name}: no other enabled host in cluster {cluster}: waiting for its VMs to end")
                    alone_said = True
            else:
                for i, vm in enumerate(todo):
                    if live_migrate:
                        target = targets[i % len(targets)]
                        say(f"{name}: live-migrating VM {vm} to {target.NAME}")
                        with api_errors(endpoint, f"live-migrating VM {vm} from {name} to {target.NAME}"):
                            one.vm.migrate(vm, target.ID, True, True, -1, 0)
                    else:
                        say(f"{name}: rescheduling VM {vm} (cold migration to another host of its cluster)")
                        with api_errors(endpoint, f"rescheduling VM {vm} away from {name}"):
                            one.vm.action("resched", vm)
                    moved.add(vm)
        if time.monotonic() > deadline:
            raise B2ctError(
                f"host {name} still runs VM(s) {', '.join(map(str, vms))} after {timeout:.0f}s",
                where=endpoint,
                hint="the host stays disabled; retry later or migrate them by hand",
            )
        time.sleep(poll)
