"""GlusterFS decisions for the b2ct modules: parse the CLI's XML, decide what to create, add or refuse.

Pure Python (stdlib only, no Ansible imports) so that Ansible ships it to the target beside the modules
and the unit tests import it on a machine without GlusterFS. The modules run the commands; this file
only reads XML and returns plans.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

PEER_IN_CLUSTER = "Peer in Cluster"
# glusterd's error codes in <opErrno> (glusterd-errno.h): decisions read these, never <opErrstr> text.
EG_NOVOL = 30806  # volume does not exist

# Gluster stores option values as given; these spellings all mean the same boolean.
_TRUE = {"on", "yes", "true", "enable", "enabled", "1"}
_FALSE = {"off", "no", "false", "disable", "disabled", "0"}


class GlusterError(Exception):
    """The CLI said no, its output was not understood, or the request is refused by policy."""


# ------------------------------------------------------------------------------------------- XML parsing


def _root(xml_text: str) -> ET.Element:
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise GlusterError(f"gluster --xml output is not XML: {exc}") from None
    if root.tag != "cliOutput":
        raise GlusterError(f"gluster --xml output has root <{root.tag}>, expected <cliOutput>")
    return root


def cli_error(xml_text: str) -> str | None:
    """The CLI's error string when opRet is non-zero, else None."""
    root = _root(xml_text)
    ret = (root.findtext("opRet") or "0").strip()
    if ret in ("0", ""):
        return None
    return (root.findtext("opErrstr") or "").strip() or f"gluster failed (opRet {ret})"


def cli_errno(xml_text: str) -> int:
    """The CLI's <opErrno> (0 when absent or not a number)."""
    try:
        return int((_root(xml_text).findtext("opErrno") or "0").strip())
    except ValueError:
        return 0


def parse_local_uuid(xml_text: str) -> str:
    """`gluster --xml system:: uuid get` → this node's UUID."""
    err = cli_error(xml_text)
    if err:
        raise GlusterError(f"uuid get: {err}")
    uuid = (_root(xml_text).findtext("uuidGenerate/uuid") or "").strip()
    if not uuid:
        raise GlusterError("uuid get: no <uuid> in gluster's answer")
    return uuid


def _text(el: ET.Element, tag: str, default: str = "") -> str:
    return (el.findtext(tag) or default).strip()


@dataclass(frozen=True)
class Peer:
    uuid: str
    hostnames: tuple[str, ...]
    connected: bool
    state: str

    @property
    def in_cluster(self) -> bool:
        return self.connected and self.state == PEER_IN_CLUSTER


def parse_peers(xml_text: str) -> list[Peer]:
    """`gluster --xml peer status` → peers (the local node is never listed)."""
    root = _root(xml_text)
    err = cli_error(xml_text)
    if err:
        raise GlusterError(f"peer status: {err}")
    peers = []
    for p in root.iter("peer"):
        names = [_text(p, "hostname")]
        names += [(h.text or "").strip() for h in p.findall("hostnames/hostname")]
        unique = tuple(dict.fromkeys(n for n in names if n))
        peers.append(Peer(_text(p, "uuid"), unique, _text(p, "connected") == "1", _text(p, "stateStr")))
    return peers


@dataclass(frozen=True)
class Volume:
    name: str
    status: str  # Created, Started, Stopped
    type: str  # Replicate, Distributed-Replicate, Distribute, ...
    replica: int
    bricks: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)
    id: str = ""
    brick_uuids: tuple[str, ...] = ()  # UUID of the peer holding each brick ("" where not given)

    @property
    def started(self) -> bool:
        return self.status == "Started"


def parse_volumes(xml_text: str) -> dict[str, Volume]:
    """`gluster --xml volume info [all]` → volumes by name. A volume that does not exist (opErrno
    EG_NOVOL) is an empty dict, whatever words glusterd used."""
    root = _root(xml_text)
    err = cli_error(xml_text)
    if err:
        if cli_errno(xml_text) == EG_NOVOL:
            return {}
        raise GlusterError(f"volume info: {err}")
    out: dict[str, Volume] = {}
    for v in root.iter("volume"):
        name = _text(v, "name")
        if not name:
            continue
        bricks, uuids = [], []
        for b in v.findall("bricks/brick"):
            # Newer releases put the brick in <name>; older ones only as the element's text.
            bricks.append(_text(b, "name") or (b.text or "").strip())
            uuids.append(_text(b, "hostUuid") or b.get("uuid", "").strip())
        options = {_text(o, "name"): _text(o, "value") for o in v.findall("options/option")}
        try:
            replica = int(_text(v, "replicaCount", "1"))
        except ValueError:
            replica = 1
        out[name] = Volume(
            name,
            _text(v, "statusStr"),
            _text(v, "typeStr"),
            replica,
            tuple(bricks),
            options,
            id=_text(v, "id"),
            brick_uuids=tuple(uuids),
        )
    return out


@dataclass(frozen=True)
class BrickProcess:
    brick: str  # host:/path
    online: bool
    pid: int


def parse_volume_status(xml_text: str) -> list[BrickProcess]:
    """`gluster --xml volume status VOL` → brick processes (self-heal daemons left out)."""
    root = _root(xml_text)
    err = cli_error(xml_text)
    if err:
        raise GlusterError(f"volume status: {err}")
    out = []
    for n in root.iter("node"):
        path = _text(n, "path")
        if not path.startswith("/"):  # "Self-heal Daemon" on "localhost"
            continue
        try:
            pid = int(_text(n, "pid", "-1"))
        except ValueError:
            pid = -1
        out.append(BrickProcess(f"{_text(n, 'hostname')}:{path}", _text(n, "status") == "1", pid))
    return out


def parse_heal_info(xml_text: str) -> dict[str, int | None]:
    """`gluster --xml volume heal VOL info` → entries to heal per brick (None: brick not reachable)."""
    root = _root(xml_text)
    err = cli_error(xml_text)
    if err:
        raise GlusterError(f"heal info: {err}")
    out: dict[str, int | None] = {}
    for b in root.iter("brick"):
        name = _text(b, "name")
        count = _text(b, "numberOfEntries", "-")
        out[name] = int(count) if count.isdigit() else None
    return out


# ----------------------------------------------------------------------------------------------- options


def parse_option_group(text: str) -> dict[str, str]:
    """A file of /var/lib/glusterd/groups/ (key=value lines) → options."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise GlusterError(f"option group line {raw!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def same_value(a: str, b: str) -> bool:
    x, y = str(a).strip().lower(), str(b).strip().lower()
    if x == y:
        return True
    return (x in _TRUE and y in _TRUE) or (x in _FALSE and y in _FALSE)


def options_to_set(desired: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    """Options whose current value differs from the desired one (unset counts as different)."""
    return {k: str(v) for k, v in desired.items() if k not in current or not same_value(current[k], str(v))}


# ----------------------------------------------------------------------------------------------- peers


def peers_to_probe(wanted: list[str], local_names: list[str], peers: list[Peer]) -> list[str]:
    """Wanted peers that are neither this node nor already known under any of their names."""
    known = {n for p in peers for n in p.hostnames}
    local = set(local_names)
    return [w for w in dict.fromkeys(wanted) if w not in local and w not in known]


def peers_not_ready(wanted: list[str], local_names: list[str], peers: list[Peer]) -> list[str]:
    """Wanted peers not yet connected and in 'Peer in Cluster' state (the volume create race)."""
    local = set(local_names)
    by_name = {n: p for p in peers for n in p.hostnames}
    return [
        w for w in dict.fromkeys(wanted) if w not in local and not (w in by_name and by_name[w].in_cluster)
    ]


@dataclass(frozen=True)
class Pool:
    """One node's view of its trusted pool: who is who, by UUID, under which names.

    gluster knows a peer by every name it was probed or seen with (peer status lists them: <hostname>
    and <hostnames>) and, like glusterd itself when it is given a new name, by the addresses those
    names resolve to. ``addresses`` maps a name to its addresses (resolved by the caller, on the node:
    this module does no I/O); an unresolvable name maps to nothing.
    """

    local_uuid: str
    local_names: tuple[str, ...]
    peers: tuple[Peer, ...] = ()
    addresses: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def _addrs(self, names: tuple[str, ...] | list[str]) -> set[str]:
        return {a for n in names for a in self.addresses.get(n, frozenset())} | set(names)

    def uuid_of(self, host: str) -> str | None:
        """The UUID of the node ``host`` names (this node or a peer), or None if it names none."""
        if host in self.local_names:
            return self.local_uuid or None
        for peer in self.peers:
            if host in peer.hostnames:
                return peer.uuid
        mine = self._addrs([host])
        if self.local_uuid and mine & self._addrs(self.local_names):
            return self.local_uuid
        for peer in self.peers:
            if mine & self._addrs(peer.hostnames):
                return peer.uuid
        return None

    def names_of(self, uuid: str) -> tuple[str, ...]:
        if uuid and uuid == self.local_uuid:
            return self.local_names
        for peer in self.peers:
            if peer.uuid == uuid:
                return peer.hostnames
        return ()


def _host(brick: str) -> str:
    return brick.partition(":")[0]


def _brick_key(brick: str, uuid: str | None) -> tuple[str, str]:
    """What makes two brick names the same brick: the node (its UUID when known, else the name as
    written) and the normalised path."""
    host, _sep, path = brick.partition(":")
    return (f"uuid:{uuid}" if uuid else f"name:{host}", os.path.normpath(path))


def _who(uuid: str | None, pool: Pool | None) -> str:
    if not uuid or pool is None:
        return "no name of any node in the pool"
    names = ", ".join(pool.names_of(uuid)) or "no recorded name"
    return f"{'this node' if uuid == pool.local_uuid else 'peer'} {uuid} ({names})"


# --------------------------------------------------------------------------------------------- volumes


def translate_bricks(bricks: list[str], addresses: dict[str, str]) -> list[str]:
    """Inventory bricks (host:/path) → the address gluster knows the host by (host kept when unmapped)."""
    out = []
    for b in bricks:
        host, sep, path = b.partition(":")
        out.append(f"{addresses.get(host, host)}{sep}{path}")
    return out


@dataclass
class VolumePlan:
    """What to run, in order; empty commands means the volume is as wanted."""

    commands: list[list[str]] = field(default_factory=list)
    created: bool = False
    added_bricks: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    started: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.commands)


def _replica_sets(bricks: list[str], replica: int) -> list[tuple[str, ...]]:
    return [tuple(bricks[i : i + replica]) for i in range(0, len(bricks), replica)]


def _not_in_inventory(
    name: str,
    extra: list[str],
    have_uuid: Mapping[str, str | None],
    unmatched: list[str],
    want_uuid: Mapping[str, str | None],
    pool: Pool | None,
) -> str:
    """Which existing bricks the inventory lacks, which inventory bricks match nothing, and why."""
    msg = f"volume {name} has brick(s) not in the inventory: " + "; ".join(
        f"{b} on {_who(have_uuid[b], pool)}" for b in extra
    )
    if unmatched:
        msg += "; the inventory's " + "; ".join(
            f"{b} ({_host(b)} is {_who(want_uuid[b], pool)})" for b in unmatched
        )
        msg += " match(es) none of them (the same brick needs the same path on a name of the same node)"
    return msg + (
        "; b2ct never removes bricks (remove-brick start/commit by hand, or add them to the inventory)"
    )


def check_request(name: str, replica: int, bricks: list[str]) -> None:
    """Refuse requests gluster would reject halfway or that give no redundancy, before any change."""
    if not name or any(not (c.isalnum() or c in "_-") for c in name):
        raise GlusterError(f"volume name {name!r}: letters, digits, '_' and '-' only")
    if replica < 1:
        raise GlusterError(f"volume {name}: replica must be at least 1, got {replica}")
    if not bricks or len(bricks) % replica:
        raise GlusterError(
            f"volume {name}: replica {replica} needs a multiple of {replica} bricks, got {len(bricks)}"
        )
    seen = set()
    for b in bricks:
        host, sep, path = b.partition(":")
        if not host or not sep or not path.startswith("/") or path.rstrip("/") == "":
            raise GlusterError(f"volume {name}: brick {b!r} must be host:/absolute/path (not /)")
        if b in seen:
            raise GlusterError(f"volume {name}: brick {b} is listed twice")
        seen.add(b)
    if replica > 1:
        for s in _replica_sets(bricks, replica):
            hosts = [b.partition(":")[0] for b in s]
            if len(set(hosts)) < len(hosts):
                raise GlusterError(f"volume {name}: replica set {', '.join(s)} has two bricks on one host")


def check_volumes(volumes: list[dict]) -> None:
    """Refuse a set of volumes (inventory form) that cannot all be built: run before any change."""
    names: set[str] = set()
    used: dict[str, str] = {}
    for i, vol in enumerate(volumes):
        if not isinstance(vol, dict) or not all(k in vol for k in ("name", "bricks")):
            raise GlusterError(f"volume #{i + 1}: needs at least name and bricks")
        name = str(vol["name"])
        if name in names:
            raise GlusterError(f"volume name clash: {name!r} is defined twice")
        names.add(name)
        try:
            replica = int(vol.get("replica", 1))
        except (TypeError, ValueError):
            raise GlusterError(f"volume {name}: replica {vol.get('replica')!r} is not a number") from None
        bricks = [str(b) for b in vol["bricks"]]
        check_request(name, replica, bricks)
        for b in bricks:
            if b in used:
                raise GlusterError(f"volume {name}: brick {b} is already used by volume {used[b]}")
            used[b] = name


def plan_volume(
    name: str,
    replica: int,
    bricks: list[str],
    current: Volume | None,
    options: dict[str, str] | None = None,
    *,
    start: bool = True,
    force: bool = False,
    pool: Pool | None = None,
) -> VolumePlan:
    """Decide the gluster commands that bring volume ``name`` to the wanted state.

    Creates a missing volume; adds whole new replica sets; sets options that differ; starts it.
    Refuses (GlusterError) to remove a brick, change the replica count or regroup replica sets: those
    move data and must be done by hand.

    A wanted brick is an existing one when both paths are the same and both hosts name the same node
    of ``pool`` (this node or a peer, under any of its names); without ``pool`` names must be equal.
    """
    check_request(name, replica, bricks)
    options = dict(options or {})
    plan = VolumePlan()
    force_arg = ["force"] if force else []
    if current is None:
        cmd = ["volume", "create", name]
        if replica > 1:
            cmd += ["replica", str(replica)]
        plan.commands.append([*cmd, "transport", "tcp", *bricks, *force_arg])
        plan.created = True
        current_options: dict[str, str] = {}
        started = False
    else:
        if current.replica != replica:
            raise GlusterError(
                f"volume {name} exists with replica {current.replica}, the inventory says {replica}: "
                "b2ct does not change a volume's replica count (do it by hand with add-brick/remove-brick)"
            )
        known = current.brick_uuids if len(current.brick_uuids) == len(current.bricks) else ()
        have_uuid: dict[str, str | None] = {}
        for i, b in enumerate(current.bricks):
            have_uuid[b] = ((known[i] if known else "") or pool.uuid_of(_host(b))) if pool else None
        want_uuid = {b: pool.uuid_of(_host(b)) if pool else None for b in bricks}
        have = {b: _brick_key(b, u) for b, u in have_uuid.items()}
        want = {b: _brick_key(b, u) for b, u in want_uuid.items()}
        extra = [b for b in current.bricks if have[b] not in want.values()]
        if extra:
            raise GlusterError(
                _not_in_inventory(
                    name,
                    extra,
                    have_uuid,
                    [b for b in bricks if want[b] not in have.values()],
                    want_uuid,
                    pool,
                )
            )
        if pool is not None and replica > 1:
            for rs in _replica_sets(bricks, replica):
                nodes = [want[b][0] for b in rs]
                if len(set(nodes)) < len(nodes):
                    raise GlusterError(
                        f"volume {name}: replica set {', '.join(rs)} has two bricks on one node "
                        "(different names of the same peer)"
                    )
        have_keys = set(have.values())
        have_sets = {frozenset(have[b] for b in s) for s in _replica_sets(list(current.bricks), replica)}
        new: list[str] = []
        for s in _replica_sets(bricks, replica):
            present = [b for b in s if want[b] in have_keys]
            if len(present) == len(s):
                if frozenset(want[b] for b in s) not in have_sets:
                    raise GlusterError(
                        f"volume {name}: replica set {', '.join(s)} differs from the existing sets"
                    )
            elif present:
                raise GlusterError(
                    f"volume {name}: replica set {', '.join(s)} mixes existing brick(s) {', '.join(present)} "
                    "with new ones; add new bricks as whole replica sets"
                )
            else:
                new.extend(s)
        if new:
            cmd = ["volume", "add-brick", name]
            if replica > 1:
                cmd += ["replica", str(replica)]
            plan.commands.append([*cmd, *new, *force_arg])
            plan.added_bricks = new
        current_options = current.options
        started = current.started
    plan.options = options_to_set(options, current_options)
    for key, value in plan.options.items():
        plan.commands.append(["volume", "set", name, key, value])
    if start and not started:
        plan.commands.append(["volume", "start", name])
        plan.started = True
    return plan


# ------------------------------------------------------------------------------------------------ bricks


def mount_point_of(path: str, mount_points: list[str]) -> str:
    """The mount point holding ``path`` (longest matching prefix)."""
    path = os.path.normpath(path)
    best = "/"
    for mp in mount_points:
        mp = os.path.normpath(mp)
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best = mp
    return best


def brick_problem(path: str, mount_points: list[str], planned_mounts: list[str], force: bool) -> str | None:
    """Why ``path`` must not be a brick, or None.

    ``mount_points`` are the mounts now (/proc/mounts), ``planned_mounts`` the brick filesystems the
    role is about to mount: a brick under one of those will not be on the root filesystem.
    """
    path = os.path.normpath(path)
    if not path.startswith("/") or path == "/":
        return f"brick {path!r} must be an absolute path below /"
    mp = mount_point_of(path, [*mount_points, *planned_mounts])
    if path == mp:
        return (
            f"brick {path} is the mount point itself: use a subdirectory (if the filesystem is not "
            "mounted, gluster would write to the root filesystem)"
        )
    if mp == "/" and not force:
        return (
            f"brick {path} is on the root filesystem; give the host a brick disk (b2ct_brick_disk) "
            "or force it with glusterfs_allow_root_bricks: true "
            "(inventory: b2ct_gluster_allow_root_bricks)"
        )
    return None
