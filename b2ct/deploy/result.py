"""What a deploy run produced: per-host counters, the failures by host, and the (trimmed) event list."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The counters ansible-playbook keeps per host, as named in the playbook_on_stats event.
STAT_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0
    # First failure (task and message) seen for the host, for the summary line.
    error: str = ""

    @property
    def good(self) -> bool:
        return self.failed == 0 and self.unreachable == 0


@dataclass
class DeployResult:
    status: str  # ansible-runner's: successful, failed, canceled, timeout
    rc: int
    hosts: dict[str, HostStats]
    events: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0
    check: bool = False
    playbook: str = ""
    log_dir: str = ""  # where the kept summary and output of the run are

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0 and all(h.good for h in self.hosts.values())

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(name for name, h in self.hosts.items() if h.failed)

    @property
    def unreachable_hosts(self) -> list[str]:
        return sorted(name for name, h in self.hosts.items() if h.unreachable)

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    def changed_tasks(self, host: str | None = None) -> list[str]:
        """Names of the tasks that reported a change (optionally on one host): what made a run not a no-op."""
        return [
            f"{e['host']}: {e['task']}"
            for e in self.events
            if e.get("changed") and e["event"] == "runner_on_ok" and (host is None or e["host"] == host)
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rc": self.rc,
            "duration": round(self.duration, 3),
            "check": self.check,
            "playbook": self.playbook,
            "hosts": {name: asdict(h) for name, h in sorted(self.hosts.items())},
        }
