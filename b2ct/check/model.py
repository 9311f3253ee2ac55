"""Results of a check run: one CheckResult per check per host, gathered into a Report."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "b2ct.check/1"


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return {"pass": 0, "warn": 1, "fail": 2}[self.value]


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=lambda s: s.rank, default=Status.PASS)


@dataclass(frozen=True)
class CheckResult:
    check: str  # stable id, e.g. "kvm", "bridge:br-private", "storage:/var/lib/one/datastores"
    status: Status
    reason: str  # one line: what was seen
    hint: str = ""  # one line: how to fix it (empty when passing)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status.value, "reason": self.reason, "hint": self.hint}


def passed(check: str, reason: str) -> CheckResult:
    return CheckResult(check, Status.PASS, reason)


def warned(check: str, reason: str, hint: str = "") -> CheckResult:
    return CheckResult(check, Status.WARN, reason, hint)


def failed(check: str, reason: str, hint: str = "") -> CheckResult:
    return CheckResult(check, Status.FAIL, reason, hint)


@dataclass
class HostReport:
    name: str
    klass: str
    address: str | None
    reachable: bool = True
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> Status:
        return worst([c.status for c in self.checks])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class": self.klass,
            "address": self.address,
            "reachable": self.reachable,
            "status": self.status.value,
            "duration_s": round(self.seconds, 2),
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass
class Report:
    site: str
    inventory: str
    started: str  # ISO 8601, UTC
    hosts: list[HostReport]
    seconds: float = 0.0

    @property
    def status(self) -> Status:
        return worst([h.status for h in self.hosts])

    @property
    def exit_code(self) -> int:
        return 1 if self.status is Status.FAIL else 0

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for h in self.hosts:
            for c in h.checks:
                counts[c.status.value] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "site": self.site,
            "inventory": self.inventory,
            "started": self.started,
            "duration_s": round(self.seconds, 2),
            "status": self.status.value,
            "summary": self.counts(),
            "hosts": [h.to_json() for h in self.hosts],
        }
