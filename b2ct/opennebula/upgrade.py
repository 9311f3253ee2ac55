"""`b2ct upgrade`: a rolling upgrade, one batch of hosts at a time.

Per batch: disable each host in OpenNebula and move its VMs away (service hosts, whose system datastore
is shared, live-migrate theirs; workers' are rescheduled, as `onehost flush` does) until it runs none;
run playbooks/upgrade.yml on the batch (OS packages upgraded with OpenNebula's held, reboot only if the
kernel or hypervisor changed, wait for ssh, every role again); `b2ct check` must find no failure on it;
re-enable. An OpenNebula version change is refused before anything is touched (docs/upgrade.md).
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


def order(site: Site, limit: str | None = None, inventory: Path | None = None) -> list[Host]:
    """The hosts to roll, in rolling order: workers, service hosts, the front-end last. ``limit``: host
    or group names of the inventory (``inventory``, as Ansible reads it: the site's own groups too),
    comma-separated, as --limit; B2ctError for an unknown one."""
    hosts = [h for h in site.hosts if h.klass == "worker"] + [h for h in site.hosts if h.klass == "service"]
    hosts = sorted(hosts, key=lambda h: h.frontend)  # stable: front-end last
    if not limit:
        return hosts
    from b2ct.connection import ansible_view, select

    chosen = set(select(ansible_view(inventory or Path(site.source)), [h.name for h in hosts], limit))
    return [h for h in hosts if h.name in chosen]


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


def check_batch(
    site: Site, inventory: Path, hosts: list[str], session: str | None, smoke: bool
) -> BatchOutcome:
    """`b2ct check` on the batch: any FAIL stops the roll, but the OpenNebula row's DISABLED (the drain
    disabled these hosts on purpose; they are enabled only after this check)."""
    from b2ct.check import runner
    from b2ct.check.model import Status

    opts = runner.Options(smoke=smoke, one_session=(session, "b2ct upgrade") if session else None)
    report = runner.run(site, inventory, ",".join(hosts), opts)
    for h in report.hosts:
        for c in h.checks:
            if c.status is Status.FAIL and not (c.check == "opennebula" and "DISABLED" in c.reason):
                return BatchOutcome(False, h.name, f"check {c.check}: {c.reason}")
    return BatchOutcome(True)


def refuse_version_change(site: Site, one: Any, endpoint: str) -> str:
    """OpenNebula's running version, or B2ctError when the inventory asks for another major.minor:
    `b2ct upgrade` upgrades the OS under OpenNebula, never OpenNebula itself (docs/upgrade.md)."""
    from b2ct.opennebula.client import api_errors

    with api_errors(endpoint, "reading OpenNebula's version"):
        running = str(one.system.version())
    if ".".join(running.split(".")[:2]) != site.opennebula_version:
        raise B2ctError(
            f"OpenNebula {running} runs, the inventory says b2ct_opennebula_version "
            f"{site.opennebula_version}: b2ct upgrade does not change OpenNebula's version",
            where=site.source,
            hint="follow docs/upgrade.md (onedb backup, packages, onedb upgrade, configuration) "
            "or set b2ct_opennebula_version back",
        )
    return running


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
    run_check: Callable[[list[str]], BatchOutcome] | None = None,
    limit: str | None = None,
    drain_timeout: float = 3600.0,
    poll: float = 1.0,
) -> UpgradeResult:
    """The roll. ``run_batch`` (default: playbooks/upgrade.yml through Ansible) and ``run_check``
    (default: none; the CLI passes `b2ct check` on the batch) decide each batch's fate; the first host
    they name as failed stops it there. Raises B2ctError naming that host and the hosts left alone."""
    run_batch = run_batch or ansible_batch
    result = UpgradeResult()
    refuse_version_change(site, one, endpoint)
    hosts = order(site, limit, inventory)
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
                flush=h.klass == "worker",
                timeout=drain_timeout,
                poll=poll,
                say=lambda m: info(m),
            )
            event(h.name, "drain", "done", batch=n)
        for h in batch:
            event(h.name, "upgrade", "start", batch=n)
        outcome = run_batch(inventory, names, dict(extravars or {}))
        phase = "upgrade"
        if outcome.ok and run_check is not None:
            for h in batch:
                event(h.name, "upgrade", "done", batch=n)
                event(h.name, "check", "start", batch=n)
            phase = "check"
            outcome = run_check(names)
        if not outcome.ok:
            failed = outcome.failed_host or names[0]
            event(failed, phase, "failed", batch=n, reason=outcome.reason)
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
            event(h.name, phase, "done", batch=n)
            drain.enable(one, endpoint, h.name)
            event(h.name, "enable", "done", batch=n)
            result.upgraded.append(h.name)
    return result
