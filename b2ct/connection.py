"""How to reach each host: Ansible's connection variables, turned into ssh argv and a libvirt URI.

The site model does not carry ansible_user / ansible_port / ansible_ssh_private_key_file /
ansible_ssh_common_args, so they are read with `ansible-inventory --list` (the same resolution Ansible
itself does: group_vars, host_vars, precedence).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from b2ct import tools
from b2ct.errors import B2ctError

CONNECT_TIMEOUT = 5


@dataclass(frozen=True)
class Connection:
    host: str
    address: str
    user: str = "root"
    port: int | None = None
    key: str | None = None
    common_args: tuple[str, ...] = field(default=())

    def ssh_options(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}"]
        opts += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", *self.common_args]
        return opts

    def ssh_argv(self, command: str) -> list[str]:
        argv = ["ssh", *self.ssh_options(), "-l", self.user]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.key:
            argv += ["-i", self.key, "-o", "IdentitiesOnly=yes"]
        return [*argv, "-T", "--", self.address, command]

    def libvirt_uri(self, ssh_wrapper: Path) -> str:
        """qemu+ssh URI; `command=` points at a wrapper adding the inventory's ssh options (host-key files,
        jump hosts) that the URI itself cannot carry."""
        params = {"no_tty": "1", "command": str(ssh_wrapper)}
        if self.key:
            params["keyfile"] = self.key
        port = f":{self.port}" if self.port else ""
        host = f"[{self.address}]" if ":" in self.address else self.address
        user = urllib.parse.quote(self.user)
        return f"qemu+ssh://{user}@{host}{port}/system?{urllib.parse.urlencode(params)}"

    def write_ssh_wrapper(self, directory: Path) -> Path:
        path = directory / f"ssh-{self.host}"
        opts = " ".join(shlex.quote(o) for o in self.ssh_options())
        path.write_text(f'#!/bin/sh\nexec ssh {opts} "$@"\n')
        path.chmod(0o700)
        return path


@dataclass(frozen=True)
class InventoryView:
    """Connection variables per host and group membership, as Ansible resolves them."""

    hostvars: dict[str, dict[str, object]]
    groups: dict[str, set[str]]


def ansible_view(inventory: Path) -> InventoryView:
    exe = tools.need("ansible-inventory")
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [exe, "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise B2ctError(f"ansible-inventory failed: {tail[-1] if tail else proc.returncode}", where=inventory)
    data = json.loads(proc.stdout)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups: dict[str, set[str]] = {}

    def walk(group: str) -> set[str]:
        if group in groups:
            return groups[group]
        entry = data.get(group, {})
        members = set(entry.get("hosts", []))
        groups[group] = members
        for child in entry.get("children", []):
            members |= walk(child)
        return members

    for g in data:
        if g != "_meta":
            walk(g)
    return InventoryView(hostvars=hostvars, groups=groups)


def connection(host: str, default_address: str | None, hostvars: dict[str, object]) -> Connection:
    address = str(hostvars.get("ansible_host") or default_address or host)
    port = hostvars.get("ansible_port") or hostvars.get("ansible_ssh_port")
    key = hostvars.get("ansible_ssh_private_key_file") or hostvars.get("ansible_private_key_file")
    args = " ".join(str(hostvars.get(k) or "") for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args"))
    return Connection(
        host=host,
        address=address,
        user=str(hostvars.get("ansible_user") or hostvars.get("ansible_ssh_user") or "root"),
        port=int(str(port)) if port else None,
        key=os.path.expanduser(str(key)) if key else None,
        common_args=tuple(shlex.split(args)),
    )


def select(
    view: InventoryView, names: list[str], spec: str | None, option: str = "--limit", where: object = None
) -> list[str]:
    """Hosts of ``names`` chosen by ``spec``, host and group names of the inventory (the site's own groups
    too, ``all``), comma-separated as Ansible's --limit takes them; in inventory order; ``names`` when
    ``spec`` is empty. The one parser of every command's host selection (check --limit, upgrade
    --limit, image stage --to). Raises B2ctError naming ``option`` and the unknown part."""
    if not spec:
        return names
    chosen: set[str] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part in names:
            chosen.add(part)
        elif part in view.groups:
            chosen |= view.groups[part]
        else:
            groups = sorted(g for g in view.groups if g not in ("all", "ungrouped"))
            raise B2ctError(
                f"{option}: no host or group named {part!r} in the inventory",
                where=where,
                hint=f"hosts: {', '.join(names)}; groups: {', '.join(groups)}",
            )
    return [n for n in names if n in chosen]
