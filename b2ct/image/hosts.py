"""How this run reaches the hosts: Ansible's connection for this machine, the private address for the
other hosts, and the host keys this machine trusts, renamed for the addresses the hosts use."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from b2ct.connection import Connection, InventoryView
from b2ct.errors import B2ctError
from b2ct.inventory.model import Site


@dataclass(frozen=True)
class Node:
    """A host as this run sees it: how this machine reaches it, and how other hosts do."""

    name: str
    conn: Connection
    hop_address: str  # the address the other hosts send to (the private network's)


def run(
    argv: list[str], timeout: float | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``argv``'s result, output as text; no answer within ``timeout`` seconds is exit 124, not an
    exception (a host that hangs is reported like one that fails)."""
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"no answer in {timeout:.0f} s")


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    """What went wrong, in one line: the last line of stderr that is not ssh's known-hosts notice."""
    lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Warning: Permanently added")]
    return lines[-1] if lines else f"exit {proc.returncode}"


def _ssh_g(conn: Connection) -> dict[str, list[str]]:
    """The client options ssh would use for ``conn`` (ssh -G, ssh(1)): the known_hosts files, the name
    its key is filed under (HostKeyAlias), the port."""
    argv = ["ssh", "-G", *conn.ssh_options(), "-l", conn.user]
    if conn.port:
        argv += ["-p", str(conn.port)]
    proc = run([*argv, conn.address], 30)
    if proc.returncode != 0:
        raise B2ctError(f"ssh -G for {conn.host} failed: {last_line(proc)}", where=conn.host)
    out: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        out[key.lower()] = value.split()
    return out


def host_key_lines(conn: Connection, hop_address: str, hop_port: int) -> list[str]:
    """known_hosts lines naming ``hop_address`` with every key this machine trusts for ``conn``'s host.

    The keys are looked up as ssh would for the inventory's connection (same files, alias, port) with
    ssh-keygen -F (hashed entries included); their host field is rewritten to the address the other
    hosts use, since the key belongs to the host, not to one of its addresses. Revoked and CA lines are
    left out. Returns [] when this machine trusts no key for the host."""
    opts = _ssh_g(conn)
    port = int((opts.get("port") or ["22"])[0])
    lookup = (opts.get("hostkeyalias") or [conn.address])[0]
    if port != 22 and not opts.get("hostkeyalias"):
        lookup = f"[{lookup}]:{port}"
    files = [*opts.get("userknownhostsfile", []), *opts.get("globalknownhostsfile", [])]
    name = hop_address if hop_port == 22 else f"[{hop_address}]:{hop_port}"
    lines: list[str] = []
    for f in files:
        path = os.path.expanduser(f)
        if f == "none" or not os.path.isfile(path):
            continue
        proc = run(["ssh-keygen", "-F", lookup, "-f", path], 30)
        for line in proc.stdout.splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#") or fields[0].startswith("@") or len(fields) < 3:
                continue
            entry = f"{name} {fields[1]} {fields[2]}"
            if entry not in lines:
                lines.append(entry)
    return lines


def resolve_targets(site: Site, view: InventoryView, to: str) -> list[str]:
    """Host names for ``--to``: comma-separated inventory host and group names (``all`` too), in
    inventory order. Raises B2ctError naming an unknown part, or when nothing is chosen."""
    from b2ct.connection import select

    chosen = select(view, [h.name for h in site.hosts], to, option="--to", where=site.source)
    if not chosen:
        raise B2ctError(f"--to {to!r} names no host", where=site.source)
    return chosen


def node_for(site: Site, view: InventoryView, name: str) -> Node:
    """The Node for inventory host ``name``: Ansible's connection variables for this machine, the private
    network's address (else the connection address) for the other hosts."""
    from b2ct.connection import connection

    host = site.host(name)
    conn = connection(name, host.address, view.hostvars.get(name, {}))
    private = host.nics.get("private")
    hop = str(private.ip) if private is not None and private.ip is not None else conn.address
    return Node(name, conn, hop)
