"""Who a GlusterFS node and its bricks say they are, and whether that fits the inventory.

A reinstalled service host keeps its brick disk (by design) but gets a new glusterd: a new UUID, no
peers, no volumes. Its pool still knows it under the old UUID (peer "Rejected" or disconnected), and its
bricks still carry their volume's identity. gluster then stops half-way: "peer probe: failed: … is either
already part of another cluster or having volumes configured", or "… is already part of a volume". This
module reads the facts on each host (glusterd's store, the bricks' marks) and decides, from all hosts'
facts together and before anything is changed, what is consistent, what can be repaired safely (a host
coming back: give its glusterd the UUID the pool knows it by) and what needs a person (with the ways out).

Facts come from glusterd's store (/var/lib/glusterd: glusterd.info, peers/*, vols/*/info and
vols/*/bricks/*, key=value files; the files gluster's documentation has one edit to replace a host) so
they can be read whether glusterd runs or not, and from the bricks' extended attributes
(trusted.glusterfs.volume-id: the 16-byte volume UUID gluster sets on every brick root, and checks on
create: "already part of a volume") and their .glusterfs directory.

Pure Python, stdlib only (shipped by Ansible to the hosts; imported by the unit tests as it is).
"""

from __future__ import annotations

import errno
import os
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

VOLUME_ID_XATTR = "trusted.glusterfs.volume-id"
DOCS = "docs/gluster.md, 'Reinstalling a service host'"
CLEAR = (
    f"if the data is not needed, clear each on its host: setfattr -x {VOLUME_ID_XATTR} PATH; "
    "setfattr -x trusted.gfid PATH; rm -rf PATH/.glusterfs; or another brick path"
)
RESET = (
    "systemctl stop glusterd; rm -rf /var/lib/glusterd/peers/* /var/lib/glusterd/vols/*; "
    "systemctl start glusterd"
)


# ------------------------------------------------------------------------------------------ reading facts


def parse_kv(text: str) -> dict[str, str]:
    """glusterd's store files: key=value lines."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def read_store(root: str = "/var/lib/glusterd") -> dict[str, Any]:
    """glusterd's store → ``{"uuid", "op_version", "peers": [{"uuid", "hostnames"}], "volumes": {name:
    {"id", "bricks": [{"brick": "host:/path", "uuid"}]}}}``; empty values where glusterd never ran."""
    facts: dict[str, Any] = {"uuid": "", "op_version": "", "peers": [], "volumes": {}}
    try:
        info = parse_kv(_read(os.path.join(root, "glusterd.info")))
    except FileNotFoundError:
        return facts
    facts["uuid"] = info.get("UUID", "")
    facts["op_version"] = info.get("operating-version", "")
    peers_dir = os.path.join(root, "peers")
    for name in sorted(os.listdir(peers_dir)) if os.path.isdir(peers_dir) else []:
        kv = parse_kv(_read(os.path.join(peers_dir, name)))
        names = [v for k, v in sorted(kv.items(), key=lambda i: _index(i[0])) if k.startswith("hostname")]
        facts["peers"].append({"uuid": kv.get("uuid", name), "hostnames": names})
    vols_dir = os.path.join(root, "vols")
    for vol in sorted(os.listdir(vols_dir)) if os.path.isdir(vols_dir) else []:
        info_path = os.path.join(vols_dir, vol, "info")
        if not os.path.isfile(info_path):
            continue
        kv = parse_kv(_read(info_path))
        bricks_dir = os.path.join(vols_dir, vol, "bricks")
        by_file = {}
        for name in os.listdir(bricks_dir) if os.path.isdir(bricks_dir) else []:
            b = parse_kv(_read(os.path.join(bricks_dir, name)))
            by_file[name] = {
                "brick": f"{b.get('hostname', '')}:{b.get('path', '')}",
                "uuid": b.get("uuid", ""),
            }
        # info lists the bricks in order as brick-N=host:-path-with-dashes, the bricks/ file's name
        order = sorted((k for k in kv if k.startswith("brick-")), key=_index)
        bricks = [by_file[kv[k]] for k in order if kv[k] in by_file]
        facts["volumes"][vol] = {"id": kv.get("volume-id", ""), "bricks": bricks}
    return facts


def _index(key: str) -> int:
    digits = "".join(c for c in key if c.isdigit())
    return int(digits) if digits else 0


def brick_marks(path: str) -> dict[str, Any]:
    """What a brick directory says about its past: ``{"exists", "volume_id", "glusterfs_dir"}``."""
    if not os.path.isdir(path):
        return {"exists": False, "volume_id": "", "glusterfs_dir": False}
    try:
        raw = os.getxattr(path, VOLUME_ID_XATTR)
        volume_id = str(uuidlib.UUID(bytes=raw)) if len(raw) == 16 else raw.hex()
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
            raise
        volume_id = ""
    return {
        "exists": True,
        "volume_id": volume_id,
        "glusterfs_dir": os.path.isdir(os.path.join(path, ".glusterfs")),
    }


# --------------------------------------------------------------------------------------------- deciding


@dataclass(frozen=True)
class Rejoin:
    """Give this host's glusterd the UUID its pool knows it by, and the pool's members as its peers."""

    uuid: str
    op_version: str
    peers: tuple[tuple[str, tuple[str, ...]], ...]  # (UUID, names) of the other members of the pool
    volumes: tuple[str, ...] = ()  # the pool's volumes, synced to the host when it is back

    def as_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "op_version": self.op_version,
            "peers": [{"uuid": u, "hostnames": list(names)} for u, names in self.peers],
            "volumes": list(self.volumes),
        }


@dataclass
class IdentityCheck:
    problems: list[str] = field(default_factory=list)
    rejoin: dict[str, Rejoin] = field(default_factory=dict)


def _fresh(f: Mapping[str, Any]) -> bool:
    """A glusterd with no peers and no volumes (new, or never started): probing it works."""
    return not f.get("peers") and not f.get("volumes")


def _pools(facts: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """Inventory hosts grouped by trusted pool (hosts whose glusterd is fresh are in none)."""
    hosts = [h for h, f in facts.items() if not _fresh(f) and f.get("uuid")]
    members = {h: {facts[h]["uuid"]} | {p["uuid"] for p in facts[h]["peers"]} for h in hosts}
    parent = {h: h for h in hosts}

    def find(h: str) -> str:
        while parent[h] != h:
            h = parent[h]
        return h

    for a in hosts:
        for b in hosts:
            if facts[b]["uuid"] in members[a]:
                parent[find(b)] = find(a)
    groups: dict[str, list[str]] = {}
    for h in hosts:
        groups.setdefault(find(h), []).append(h)
    return list(groups.values())


def _pool_view(hosts: list[str], facts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    volumes: dict[str, Any] = {}
    peers: dict[str, set[str]] = {}
    for h in hosts:
        volumes.update(facts[h]["volumes"])
        for p in facts[h]["peers"]:
            peers.setdefault(p["uuid"], set()).update(p["hostnames"])
    return {"volumes": volumes, "peers": peers, "uuids": {facts[h]["uuid"] for h in hosts}}


def _norm(path: str) -> str:
    return os.path.normpath(path)


def _describe_pool(hosts: list[str], facts: Mapping[str, Mapping[str, Any]]) -> str:
    vols = sorted({v for h in hosts for v in facts[h]["volumes"]})
    return f"{', '.join(sorted(hosts))} (volumes: {', '.join(vols) or 'none'})"


def check_identities(
    volumes: list[dict[str, Any]],
    addresses: Mapping[str, str],
    facts: Mapping[str, Mapping[str, Any]],
    manager: str,
) -> IdentityCheck:
    """Decide, from every brick host's facts, whether the pool and the bricks fit the inventory.

    ``volumes``: inventory form (name, bricks as inventory-host:/path); ``addresses``: inventory host →
    gluster address; ``facts``: inventory host → its facts (``read_store`` plus ``"bricks": {path:
    brick_marks}`` and ``"resolved": {name: [addresses]}``); only brick hosts count, hosts without facts
    are left out; ``manager``: the host that probes peers and creates volumes.

    Returns the problems (each says the ways out) and the hosts to rejoin: a host whose glusterd is
    fresh while the pool knows it (by its address) under an old UUID, and whose bricks, if marked, carry
    the identities of that pool's volumes at the places the pool lists them.
    """
    result = IdentityCheck()
    # The hosts the manager probes: a service host without bricks may have a pool of its own.
    brick_hosts = {str(b).partition(":")[0] for v in volumes for b in v["bricks"]}
    facts = {h: f for h, f in facts.items() if f is not None and h in brick_hosts}
    pools = _pools(facts)
    main: list[str] = []
    for group in pools:
        if manager in group:
            main = group
    if not main and pools:
        main = max(pools, key=len)
    for group in pools:
        if group is not main:
            result.problems.append(
                f"glusterd on {_describe_pool(group, facts)} belongs to another trusted pool than on "
                f"{_describe_pool(main, facts)}: gluster refuses to probe a node of another pool ('is either "
                f"already part of another cluster or having volumes configured'); see {DOCS}. Ways out: if "
                f"that pool and its volumes are not needed, reset glusterd on its hosts ({RESET}); otherwise "
                "keep those hosts out of this inventory"
            )
    view = _pool_view(main, facts) if main else {"volumes": {}, "peers": {}, "uuids": set()}
    by_id = {v["id"]: (name, h) for h in facts for name, v in facts[h]["volumes"].items() if v.get("id")}

    # Names as each host resolved them (facts["resolved"]): the pool may know a host by a name while
    # the inventory gives its address, as glusterd itself compares them.
    resolved: dict[str, set[str]] = {}
    for f in facts.values():
        for name, addrs in (f.get("resolved") or {}).items():
            resolved.setdefault(name, set()).update(addrs)

    def names(h: str) -> set[str]:
        own = {h, addresses.get(h, h)}
        return own | {a for n in own for a in resolved.get(n, ())}

    def names_host(name: str, h: str) -> bool:
        return bool(({name} | resolved.get(name, set())) & names(h))

    def old_uuid(h: str) -> str | None:
        """The UUID the main pool knows host ``h`` by (a peer named by one of h's names)."""
        for u, hostnames in view["peers"].items():
            if any(names_host(n, h) for n in hostnames):
                return u
        return None

    claims: dict[str, set[str]] = {}  # fresh host -> UUIDs its marked bricks say it was
    # Bricks with the same finding are reported together: one line per finding, most important first.
    found: dict[str, list[str]] = {}

    def note(text: str, brick: str) -> None:
        found.setdefault(text, []).append(brick)

    for vol in volumes:
        vname = str(vol["name"])
        listed = view["volumes"].get(vname)
        for brick in vol["bricks"]:
            host, _sep, path = str(brick).partition(":")
            f = facts.get(host)
            marks = (f or {}).get("bricks", {}).get(_norm(path)) if f else None
            if marks is None:
                continue
            entry = None
            if listed:
                for b in listed["bricks"]:
                    bhost, _sep, bpath = b["brick"].partition(":")
                    if _norm(bpath) != _norm(path):
                        continue
                    if names_host(bhost, host) or (b["uuid"] and b["uuid"] in {f["uuid"], old_uuid(host)}):
                        entry = b
            vid, gdir = marks.get("volume_id", ""), marks.get("glusterfs_dir", False)
            if not vid:
                if entry is not None:
                    note(
                        f"in volume {vname}, but without a volume identity: the disk is new or was wiped; "
                        f"see {DOCS}. Way out: give the host its old UUID first if it was reinstalled too, "
                        f"then on a pool member, for each: gluster volume reset-brick {vname} HOST:PATH "
                        f"start; gluster volume reset-brick {vname} HOST:PATH HOST:PATH commit force (a full "
                        "heal refills it)",
                        str(brick),
                    )
                elif gdir:
                    note(
                        f"a .glusterfs directory of an earlier volume, without a volume id; see {DOCS}. Ways "
                        f"out: if its data is not needed, on its host: rm -rf PATH/.glusterfs; or another "
                        "brick path",
                        str(brick),
                    )
                continue
            owner = by_id.get(vid)
            if owner is None:
                if listed:
                    older = f"an older volume {vname} (today's {vname} has id {listed['id']})"
                elif main:
                    older = "a deleted or earlier volume"
                else:
                    older = "a volume of a pool that no longer exists (were all service hosts reinstalled?)"
                note(
                    f"the identity of {older}: volume id {vid}, which no glusterd of this site knows, so "
                    f"gluster would refuse it ('already part of a volume'); see {DOCS}. Ways out: restore "
                    f"/var/lib/glusterd of the service hosts from a backup and run again; or, {CLEAR}",
                    str(brick),
                )
                continue
            if owner[0] != vname:
                note(
                    f"the identity of volume {owner[0]} (id {vid}), not of {vname}; see "
                    f"{DOCS}. Ways out: another brick path for {vname}; or, {CLEAR}",
                    str(brick),
                )
                continue
            if owner[1] not in main:
                continue  # a brick of the other pool's volume: that pool is reported above
            if entry is None:
                others = [
                    b["brick"]
                    for b in (listed or {}).get("bricks", [])
                    if _norm(b["brick"].partition(":")[2]) == _norm(path)
                    and b["uuid"] not in {facts[h]["uuid"] for h in facts if h != host}
                    and not any(names_host(b["brick"].partition(":")[0], h) for h in facts if h != host)
                ]
                if others:
                    note(
                        f"the identity of volume {vname}, which has {', '.join(others)}: names that do "
                        f"not resolve to {host}'s address {addresses.get(host, host)} here; see {DOCS}. Ways "
                        "out: make them resolve on the service hosts (DNS or /etc/hosts), or use the pool's "
                        "names for the hosts in the inventory",
                        str(brick),
                    )
                    continue
                note(
                    f"the identity of volume {vname}, which has no brick there (removed with remove-brick?); "
                    f"see {DOCS}. Ways out: {CLEAR}",
                    str(brick),
                )
            elif f["uuid"] == entry["uuid"]:
                continue  # the node that holds it: nothing to say
            elif _fresh(f):
                claims.setdefault(host, set()).add(entry["uuid"])
            else:
                note(
                    f"held in volume {vname} by node {entry['uuid']}, but glusterd on {host} is node "
                    f"{f['uuid']} with a pool of its own: {host} was reinstalled and its new glusterd used "
                    f"since; see {DOCS}. Way out: reset glusterd on {host} ({RESET}) and run again: b2ct "
                    "then gives it its old UUID back",
                    str(brick),
                )
    for text, bricks in found.items():
        result.problems.append(f"{'brick' if len(bricks) == 1 else 'bricks'} {', '.join(bricks)}: {text}")
    for host in sorted(facts):
        f = facts[host]
        if not _fresh(f) or not main:
            continue
        known = old_uuid(host)
        said = claims.get(host, set())
        if len(said) > 1 or (said and known and said != {known}):
            result.problems.append(
                f"the bricks of {host} were held by different nodes "
                f"({', '.join(sorted(said | {known or ''}))}): b2ct cannot tell which identity {host} should "
                f"take back ({DOCS})"
            )
            continue
        uuid = next(iter(said)) if said else known
        if uuid is not None and uuid in view["uuids"]:
            result.problems.append(
                f"{host} is new, but the pool's node {uuid}, which the inventory's names for {host} point "
                f"at, is alive: check the addresses in the inventory ({DOCS})"
            )
            continue
        if uuid is None:
            if host == manager:
                result.problems.append(
                    f"glusterd on {host} (glusterfs_manager_host) is new, while "
                    f"{_describe_pool(main, facts)} form a pool that does not know it: probing from {host} "
                    f"would fail ('already part of another cluster'). Way out: on {main[0]}: gluster peer "
                    f"probe {addresses.get(host, host)}, then run again ({DOCS})"
                )
            continue
        members: dict[str, list[str]] = {facts[h]["uuid"]: [addresses.get(h, h)] for h in main}
        for u, hostnames in view["peers"].items():
            if u != uuid:
                members.setdefault(u, []).extend(n for n in sorted(hostnames) if n not in members[u])
        op_version = next((facts[h]["op_version"] for h in main if facts[h].get("op_version")), "")
        peers = tuple((u, tuple(n)) for u, n in sorted(members.items()))
        result.rejoin[host] = Rejoin(uuid, op_version, peers, tuple(sorted(view["volumes"])))
    return result
