"""`b2ct upgrade`: a rolling upgrade, one batch of hosts at a time.

Per batch: disable each host in OpenNebula and wait until it runs no VM (service hosts, whose system
datastore is shared, live-migrate theirs), run playbooks/upgrade.yml on the batch (upgrade packages,
reboot only if the kernel or hypervisor changed, wait for ssh, re-run the host's checks), re-enable.
The first failed host stops the roll: it stays disabled, and later hosts are not touched.
Workers go first, then service hosts, the front-end last (its oned serves the API calls).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2ct.errors import B2ctError
from b2ct.inventory import Host, Site
from b2ct.opennebula import drain
from b2ct.ui import info

PLAYBOOK = "upgrade.yml"  # in the b2ct.cloud collection's playbooks/ (deploy.run finds it there)


@dataclass
class BatchOutcome:
    ok: bool
    failed_host: str | None = None
    reason: str = ""


@dataclass
class UpgradeResult:
    upgraded: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def order(site: Site) -> list[Host]:
    hosts = [h for h in site.hosts if h.klass == "worker"] + [h for h in site.hosts if h.klass == "service"]
    return sorted(hosts, key=lambda h: h.frontend)  # stable: front-end last


def batches(hosts: list[Host], serial: int) -> list[list[Host]]:
    if serial < 1:
        raise B2ctError(f"--serial must be at least 1, got {serial}")
    return [hosts[i : i + serial] for i in range(0, len(hosts), serial)]


def ansible_batch(
    inventory: Path, hosts: list[str], extravars: dict[str, Any], playbook: str | Path = PLAYBOOK
) -> BatchOutcome:
    """Run the upgrade playbook on one batch, as `b2ct deploy` runs playbooks; name the first failed host."""
    from b2ct import deploy

    r = deploy.run(inventory, limit=hosts, playbook=playbook, extravars=extravars, keep_logs=False)
    # The first failure in the order Ansible reported it: that host is where the roll stops.
    for e in r.events:
        if e["event"] in ("runner_on_failed", "runner_on_unreachable") and not e.get("ignore_errors"):
            return BatchOutcome(False, e["host"], f"task '{e['task']}': {e.get('msg') or 'failed'}")
    if r.ok:
        return BatchOutcome(True)
    bad = r.failed_hosts + r.unreachable_hosts
    return BatchOutcome(False, bad[0] if bad else hosts[0], f"ansible-playbook ended {r.status} (rc {r.rc})")


def run(
    site: Site,
    inventory: Path,
    one: Any,
    endpoint: str,
    *,
    serial: int = 1,
    events_path: Path | None = None,
    extravars: dict[str, Any] | None = None,
    run_batch: Callable[[Path, list[str], dict[str, Any]], BatchOutcome] | None = None,
    drain_timeout: float = 3600.0,
    poll: float = 1.0,
) -> UpgradeResult:
    run_batch = run_batch or ansible_batch
    result = UpgradeResult()
    hosts = order(site)
    groups = batches(hosts, serial)
    # Check every host is registered before touching any of them.
    for h in hosts:
        drain.host_id(one, endpoint, h.name)

    def event(host: str, phase: str, status: str, **extra: Any) -> None:
        ev = {"time": round(time.time(), 3), "host": host, "phase": phase, "status": status, **extra}
        result.events.append(ev)
        if events_path is not None:
            with events_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(ev) + "\n")
        info(f"{host}: {phase} {status}" + (f" — {extra['reason']}" if "reason" in extra else ""))

    for n, batch in enumerate(groups, 1):
        names = [h.name for h in batch]
        for h in batch:
            event(h.name, "drain", "start", batch=n)
            drain.drain(
                one,
                endpoint,
                h.name,
                live_migrate=h.klass == "service",
                timeout=drain_timeout,
                poll=poll,
                say=lambda m: info(m),
            )
            event(h.name, "drain", "done", batch=n)
        for h in batch:
            event(h.name, "upgrade", "start", batch=n)
        outcome = run_batch(inventory, names, dict(extravars or {}))
        if not outcome.ok:
            failed = outcome.failed_host or names[0]
            event(failed, "upgrade", "failed", batch=n, reason=outcome.reason)
            untouched = [h.name for g in groups[n:] for h in g] + [
                x for x in names if x != failed and x not in result.upgraded
            ]
            raise B2ctError(
                f"upgrade stopped at host {failed} (batch {n}/{len(groups)}): {outcome.reason}",
                where=failed,
                hint=f"{failed} stays disabled in OpenNebula; "
                f"not upgraded: {', '.join(untouched) or 'none'}; "
                "fix it and run b2ct upgrade again",
            )
        for h in batch:
            event(h.name, "upgrade", "done", batch=n)
            drain.enable(one, endpoint, h.name)
            event(h.name, "enable", "done", batch=n)
            result.upgraded.append(h.name)
    return result
