"""The lab's state file: every resource is recorded (as intent) before it is created.

`lab down` trusts only this file. It removes what is listed, by exact id, and tolerates items that are
already gone or were never created (an intent written just before a crash). It never removes anything by
a name pattern, so labs of other engineers on the same machine are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2ct.errors import B2ctError
from b2ct.fsutil import atomic_write

STATE_ROOT = Path(os.environ.get("B2CT_LAB_STATE", "/var/lib/b2ct/lab"))

# Kinds of resources, in the order `lab up` creates them; `lab down` walks the list backwards.
KINDS = ("dir", "bridge", "netns", "veth", "tap", "file", "loop", "mount", "cgroup", "process")


@dataclass
class Resource:
    kind: str
    id: str
    status: str = "intent"  # intent -> created; removed items leave the list
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "status": self.status, **self.extra}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Resource:
        d = dict(d)
        return cls(kind=d.pop("kind"), id=str(d.pop("id")), status=d.pop("status", "intent"), extra=d)


@dataclass
class LabState:
    name: str
    slot: int
    phase: str = "creating"  # creating -> up -> removing
    owner_pid: int = 0
    owner_start: int = 0
    label: str = ""
    created: float = 0.0
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    outsider: dict[str, Any] = field(default_factory=dict)
    # Site services the lab runs for its hosts, by name (e.g. "mirror": its URLs, as the hosts see them).
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: list[Resource] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return lab_dir(self.name)

    @property
    def path(self) -> Path:
        return self.dir / "state.json"

    def save(self) -> None:
        data = {
            "name": self.name,
            "slot": self.slot,
            "phase": self.phase,
            "owner_pid": self.owner_pid,
            "owner_start": self.owner_start,
            "label": self.label,
            "created": self.created,
            "hosts": self.hosts,
            "outsider": self.outsider,
            "services": self.services,
            "resources": [r.to_json() for r in self.resources],
        }
        atomic_write(self.path, json.dumps(data, indent=1) + "\n", mode=0o600)

    @classmethod
    def load(cls, name: str) -> LabState | None:
        path = lab_dir(name) / "state.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise B2ctError(f"unreadable lab state: {exc}", where=path) from exc
        return cls(
            name=data["name"],
            slot=int(data["slot"]),
            phase=data.get("phase", "creating"),
            owner_pid=int(data.get("owner_pid", 0)),
            owner_start=int(data.get("owner_start", 0)),
            label=data.get("label", ""),
            created=float(data.get("created", 0)),
            hosts=data.get("hosts", {}),
            outsider=data.get("outsider", {}),
            services=data.get("services", {}),
            resources=[Resource.from_json(r) for r in data.get("resources", [])],
        )

    # -- recording -------------------------------------------------------------------------------
    def intend(self, kind: str, id: str, **extra: Any) -> Resource:
        """Record a resource before creating it, so a crash right after creation still leaves a trace."""
        assert kind in KINDS, kind
        for r in self.resources:
            if r.kind == kind and r.id == id:
                r.extra.update(extra)
                self.save()
                return r
        res = Resource(kind, id, "intent", dict(extra))
        self.resources.append(res)
        self.save()
        return res

    def created_(self, res: Resource, **extra: Any) -> None:
        res.status = "created"
        res.extra.update(extra)
        self.save()

    def forget(self, res: Resource) -> None:
        self.resources = [r for r in self.resources if r is not res]
        self.save()

    def find(self, kind: str, **match: Any) -> list[Resource]:
        return [
            r for r in self.resources if r.kind == kind and all(r.extra.get(k) == v for k, v in match.items())
        ]


def lab_dir(name: str) -> Path:
    return STATE_ROOT / name


def all_labs() -> list[str]:
    if not STATE_ROOT.is_dir():
        return []
    return sorted(p.parent.name for p in STATE_ROOT.glob("*/state.json"))


def proc_start_time(pid: int) -> int:
    """Start time of a process in clock ticks since boot, 0 if it is gone: (pid, start) names a process
    uniquely, so a recycled pid is never mistaken for one we started."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # The command name may contain spaces or parentheses: fields start after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def alive(pid: int, start: int) -> bool:
    if pid <= 0:
        return False
    st = proc_start_time(pid)
    if st == 0 or (start and st != start):
        return False
    # A zombie is dead for our purposes (its parent, maybe a killed `lab up`, has not reaped it yet).
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def now() -> float:
    return time.time()
