"""Placeholders of the starting inventory `b2ct init` writes: refused wherever they are still left.

Every value only the site can know (MAC and IP addresses, serial numbers, subnets, keys, repository URLs)
is written as ``"FILL-IN: what to put here"``. Loading refuses any b2ct setting (or ``ansible_host``) that
still holds one, at its file:line, before it means anything: no made-up address reaches a kickstart,
an install medium or a deploy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from b2ct.errors import B2ctError

MARK = "FILL-IN"


def is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip().startswith(MARK)


def _walk(value: Any, name: str) -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every placeholder inside ``value`` (mappings and lists included)."""
    if is_placeholder(value):
        yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{name}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{name}[{i}]")


def count(files: list[Path]) -> int:
    """How many placeholders the YAML ``files`` hold (comments that mention the mark not counted)."""
    import yaml

    return sum(
        len(list(_walk(yaml.safe_load(f.read_text(encoding="utf-8")), f.name)))
        for f in files
        if f.suffix == ".yml"
    )


def refuse(site_vars: Mapping[str, Any], host_vars: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise B2ctError when a placeholder is left in the site's or a host's variables (name → load.Val:
    ``value``, ``at``).

    The error is at the first placeholder in file order (the file:line Ansible recorded for it, its
    setting's when it has none), names the setting's dotted name (and host) and how many are left."""
    from b2ct.inventory.ansible_view import position

    found: dict[str, tuple[tuple[str, int], str, str]] = {}  # where → (sort key, owner, message)
    scopes: list[tuple[str | None, Mapping[str, Any]]] = [(None, site_vars), *host_vars.items()]
    for host, variables in scopes:
        for key, val in variables.items():
            for name, value in _walk(val.value, key):
                pos = position(value)
                where = str(pos) if pos is not None else (val.at or "")
                order = (pos.path, pos.line) if pos is not None else (where, 0)
                owner = f"host {host}: " if host is not None and pos is None else ""
                # A site value every host inherits is one placeholder, not one per host.
                found.setdefault(where, (order, owner, f"{name} is still a placeholder of b2ct init"))
    if not found:
        return
    where, (_order, owner, message) = min(found.items(), key=lambda item: item[1][0])
    left = f" ({len(found)} placeholders left)" if len(found) > 1 else ""
    raise B2ctError(f"{owner}{message}{left}", where=where or None, hint="replace it with the site's value")
