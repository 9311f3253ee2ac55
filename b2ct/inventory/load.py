"""Read a standard Ansible YAML inventory and validate it into a Site.

Variables follow Ansible's precedence (all < parent groups < child groups < host, inventory file before
group_vars/ and host_vars/ files). One table per scope (SITE_SETTINGS, HOST_SETTINGS) drives parsing,
validation and the documentation; every error names the file:line that holds the bad value.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from b2ct.errors import B2ctError
from b2ct.inventory.model import (
    RELEASES,
    Belle2,
    Brick,
    GlusterVolume,
    Host,
    Network,
    Nic,
    OpenNebulaSettings,
    OpenNebulaVnet,
    Rocci,
    Site,
    Squid,
)
from b2ct.inventory.yamlsrc import LineDict, LineList, load_yaml, where

INVENTORY_FILES = ("hosts.yml", "hosts.yaml", "inventory.yml", "inventory.yaml")
CLASS_GROUPS = ("service", "worker")
OPENNEBULA_VERSIONS = ("6.8", "6.10", "7.0")
# Front-end components besides oned and its scheduler, by version, as upstream's install guides list them
# (7.0 dropped the Ruby Sunstone). The opennebula_frontend role holds the same table.
OPENNEBULA_COMPONENTS = {
    "6.8": ("sunstone", "fireedge", "gate", "flow"),
    "6.10": ("sunstone", "fireedge", "gate", "flow"),
    "7.0": ("fireedge", "gate", "flow"),
}
# oned's information and virtualization drivers for KVM hosts (oned.conf/monitord.conf IM_MAD, VM_MAD).
OPENNEBULA_HYPERVISORS = ("kvm", "qemu")
NETWORK_NAMES = ("private", "public")

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$", re.IGNORECASE)
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_DISK = re.compile(r"^(/dev/)?[A-Za-z0-9][A-Za-z0-9/_.:-]*$")
_CRYPT = re.compile(r"^\$(1|5|6|y|2[aby])\$[^\s]+$")
_SSHKEY = re.compile(
    r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}( .*)?$"
)
_SERIAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_VOLNAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URL = re.compile(r"^(https?|ftp|nfs)://\S+$")
_HTTP_URL = re.compile(r"^https?://\S+$")
_MIRROR_URL = re.compile(r"^(https?|file)://\S+$")
_ONE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # an OpenNebula object name we create
_CVMFS_REPO = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


@dataclass
class Val:
    """A variable's value and where it was set."""

    value: Any
    at: str


# ---------------------------------------------------------------------------------------------- helpers


def _fail(message: str, at: str, hint: str | None = None) -> None:
    raise B2ctError(message, where=at or None, hint=hint)


def _str(v: Val, name: str) -> str:
    if isinstance(v.value, bool) or not isinstance(v.value, str | int | float):
        _fail(f"{name} must be a string, got {type(v.value).__name__}", v.at)
    return str(v.value)


def _bool(name: str) -> Callable[[Val], bool]:
    def parse(v: Val) -> bool:
        if not isinstance(v.value, bool):
            _fail(f"{name} must be true or false, got {v.value!r}", v.at)
        return bool(v.value)

    return parse


def _int(v: Val, name: str, minimum: int = 0) -> int:
    if isinstance(v.value, bool) or not isinstance(v.value, int):
        _fail(f"{name} must be a whole number, got {v.value!r}", v.at)
    if v.value < minimum:
        _fail(f"{name} must be at least {minimum}, got {v.value}", v.at)
    return int(v.value)


def _map(v: Val, name: str, allowed: tuple[str, ...] | None = None) -> LineDict:
    if not isinstance(v.value, dict):
        _fail(f"{name} must be a mapping, got {type(v.value).__name__}", v.at)
    value: LineDict = v.value if isinstance(v.value, LineDict) else LineDict(v.value)
    if allowed is not None:
        for key in value:
            if key not in allowed:
                _fail(f"{name}: unknown key {key!r}{_suggest(str(key), allowed)}", where(value, key) or v.at)
    return value


def _list(v: Val, name: str) -> LineList:
    if isinstance(v.value, str):  # a single item is fine where a list is expected
        single = LineList([v.value])
        single.lines = [0]
        return single
    if not isinstance(v.value, list):
        _fail(f"{name} must be a list, got {type(v.value).__name__}", v.at)
    return v.value if isinstance(v.value, LineList) else LineList(v.value)


def _child(container: Any, key: Any, parent_at: str) -> Val:
    return Val(container[key], where(container, key) or parent_at)


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _ip(v: Val, name: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(v.value))
    except ValueError:
        _fail(f"{name}: {v.value!r} is not an IPv4 address", v.at)
    raise AssertionError  # unreachable


# ---------------------------------------------------------------------------------------- site settings


def _release(v: Val) -> Any:
    name = _str(v, "b2ct_os_release").lower()
    if name not in RELEASES:
        _fail(
            f"unknown OS release {v.value!r}{_suggest(name, list(RELEASES))}",
            v.at,
            hint="one of " + ", ".join(RELEASES),
        )
    return RELEASES[name]


def _site_name(v: Val) -> str:
    name = _str(v, "b2ct_site")
    if not _NAME.match(name):
        _fail(f"b2ct_site {name!r}: use lower-case letters, digits and '-'", v.at)
    return name


def _repos(v: Val) -> dict[str, str]:
    repos = _map(v, "b2ct_repos")
    out: dict[str, str] = {}
    for key in repos:
        url = _str(_child(repos, key, v.at), f"b2ct_repos.{key}")
        if not _NAME.match(str(key)):
            _fail(f"b2ct_repos: repository name {key!r}: use lower-case letters, digits and '-'", v.at)
        if not _URL.match(url):
            _fail(f"b2ct_repos.{key}: {url!r} is not an http(s)/ftp/nfs URL", where(repos, key) or v.at)
        out[str(key)] = url
    return out


def _networks(v: Val) -> dict[str, Network]:
    nets = _map(v, "b2ct_networks", NETWORK_NAMES)
    out: dict[str, Network] = {}
    bridges: dict[str, str] = {}
    for name in nets:
        at = where(nets, name) or v.at
        spec = _map(Val(nets[name], at), f"b2ct_networks.{name}", ("subnet", "gateway", "dns", "bridge"))
        if "subnet" not in spec:
            _fail(f"b2ct_networks.{name}: missing subnet", at)
        sv = _child(spec, "subnet", at)
        try:
            subnet = ipaddress.IPv4Network(str(sv.value), strict=True)
        except ValueError as exc:
            _fail(f"b2ct_networks.{name}.subnet: {exc}", sv.at)
        gateway = None
        if spec.get("gateway") not in (None, ""):
            gv = _child(spec, "gateway", at)
            gateway = _ip(gv, f"b2ct_networks.{name}.gateway")
            if gateway not in subnet:
                _fail(f"b2ct_networks.{name}.gateway {gateway} is outside subnet {subnet}", gv.at)
        dns: list[ipaddress.IPv4Address] = []
        if "dns" in spec:
            dv = _child(spec, "dns", at)
            items = _list(dv, f"b2ct_networks.{name}.dns")
            dns = [
                _ip(Val(x, where(items, i) or dv.at), f"b2ct_networks.{name}.dns")
                for i, x in enumerate(items)
            ]
        bridge = f"br-{name}"
        if "bridge" in spec:
            bv = _child(spec, "bridge", at)
            bridge = _str(bv, f"b2ct_networks.{name}.bridge")
            if not _IFNAME.match(bridge):
                _fail(
                    f"b2ct_networks.{name}.bridge {bridge!r} is not a valid interface name (≤15 chars)", bv.at
                )
        if bridge in bridges:
            _fail(
                f"b2ct_networks.{name}.bridge {bridge!r} is also the bridge of network {bridges[bridge]}", at
            )
        bridges[bridge] = name
        out[str(name)] = Network(str(name), subnet, gateway, tuple(dns), bridge)
    if "private" not in out:
        _fail("b2ct_networks: missing network 'private' (every host has a private interface)", v.at)
    overlap = [
        (a, b) for a in out.values() for b in out.values() if a.name < b.name and a.subnet.overlaps(b.subnet)
    ]
    if overlap:
        a, b = overlap[0]
        _fail(f"b2ct_networks: subnets of {a.name} ({a.subnet}) and {b.name} ({b.subnet}) overlap", v.at)
    return out


def _password_hash(v: Val) -> str:
    value = _str(v, "b2ct_root_password_hash")
    if not _CRYPT.match(value):
        _fail(
            "b2ct_root_password_hash does not look like a crypt hash: plaintext passwords are refused",
            v.at,
            hint="generate one with: openssl passwd -6",
        )
    return value


def _ssh_keys(v: Val) -> tuple[str, ...]:
    items = _list(v, "b2ct_ssh_keys")
    keys = []
    for i, key in enumerate(items):
        kv = Val(key, where(items, i) or v.at)
        text = _str(kv, "b2ct_ssh_keys").strip()
        if not _SSHKEY.match(text):
            _fail(f"b2ct_ssh_keys[{i}] is not an OpenSSH public key line", kv.at)
        keys.append(text)
    return tuple(keys)


def _opennebula_version(v: Val) -> str:
    version = _str(v, "b2ct_opennebula_version")
    if version not in OPENNEBULA_VERSIONS:
        _fail(
            f"unknown OpenNebula version {version!r}",
            v.at,
            hint="supported: " + ", ".join(OPENNEBULA_VERSIONS) + ' (quote it in YAML: "6.10", not 6.10)',
        )
    return version


def _squid(v: Val) -> Squid:
    spec = _map(v, "b2ct_squid", tuple(Squid.__dataclass_fields__))
    kwargs: dict[str, Any] = {}
    for key in spec:
        cv = _child(spec, key, v.at)
        if key == "stratum1_urls":
            urls = _list(cv, "b2ct_squid.stratum1_urls")
            for i, url in enumerate(urls):
                if not _URL.match(str(url)):
                    _fail(f"b2ct_squid.stratum1_urls[{i}]: {url!r} is not a URL", where(urls, i) or cv.at)
            kwargs[key] = tuple(str(u) for u in urls)
        elif key == "upstream_proxy":
            proxy = "" if cv.value is None else _str(cv, "b2ct_squid.upstream_proxy")
            if proxy and not re.match(r"^(https?://)?[A-Za-z0-9.-]+:\d+/?$", proxy):
                _fail(f"b2ct_squid.upstream_proxy {proxy!r}: expected host:port", cv.at)
            kwargs[key] = proxy
        elif key == "port":
            port = _int(cv, "b2ct_squid.port", 1)
            if port > 65535:
                _fail(f"b2ct_squid.port {port} is not a TCP port", cv.at)
            kwargs[key] = port
        else:
            kwargs[key] = _int(cv, f"b2ct_squid.{key}", 1)
    return Squid(**kwargs)


def _one_mirror(v: Val) -> str:
    url = _str(v, "b2ct_opennebula_mirror")
    if not _MIRROR_URL.match(url):
        _fail(f"b2ct_opennebula_mirror {url!r} is not an http(s) or file:// URL", v.at)
    return url.rstrip("/")


def _one_mirror_gpgkey(v: Val) -> str:
    key = _str(v, "b2ct_opennebula_mirror_gpgkey").strip()
    if not (
        _MIRROR_URL.match(key)
        or key.startswith("/")
        or key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    ):
        _fail(
            "b2ct_opennebula_mirror_gpgkey is not a URL, an absolute path or an ASCII-armored public key",
            v.at,
            hint="the key that signs the mirror, e.g. http://mirror.example.org/opennebula/repo.key",
        )
    return key


def _one_hypervisor(v: Val) -> str:
    value = _str(v, "b2ct_opennebula_hypervisor")
    if value not in OPENNEBULA_HYPERVISORS:
        _fail(
            f"b2ct_opennebula_hypervisor {value!r} is not one of {', '.join(OPENNEBULA_HYPERVISORS)}",
            v.at,
            hint="kvm on hardware hypervisors; qemu (emulation) only where /dev/kvm is missing",
        )
    return value


def _one_components(v: Val) -> tuple[str, ...]:
    items = _list(v, "b2ct_opennebula_components")
    known = sorted({c for cs in OPENNEBULA_COMPONENTS.values() for c in cs})
    out: list[str] = []
    for i, item in enumerate(items):
        at = where(items, i) or v.at
        name = _str(Val(item, at), f"b2ct_opennebula_components[{i}]")
        if name not in known:
            _fail(
                f"b2ct_opennebula_components[{i}]: unknown component {name!r}{_suggest(name, known)}",
                at,
                hint="components: " + ", ".join(known),
            )
        if name in out:
            _fail(f"b2ct_opennebula_components[{i}]: {name} is listed twice", at)
        out.append(name)
    return tuple(out)


def _one_endpoint(v: Val) -> str:
    url = _str(v, "b2ct_opennebula_endpoint")
    if not _HTTP_URL.match(url):
        _fail(
            f"b2ct_opennebula_endpoint {url!r} is not an http(s) URL",
            v.at,
            hint="e.g. http://one-fe.example.org:2633/RPC2",
        )
    return url


def _one_vnets(v: Val) -> tuple[OpenNebulaVnet, ...]:
    # Shape only: the network, bridge and lease range are checked against the networks and hosts once
    # those are loaded (_check_vnets); bridge "" means "the network's bridge".
    spec = _map(v, "b2ct_opennebula_vnets")
    out: list[OpenNebulaVnet] = []
    for name in spec:
        at = where(spec, name) or v.at
        if not _ONE_NAME.match(str(name)):
            _fail(f"b2ct_opennebula_vnets: vnet name {name!r}: letters, digits, '.', '_', '-'", at)
        item = _map(
            Val(spec[name], at), f"b2ct_opennebula_vnets.{name}", ("network", "bridge", "ar_start", "ar_size")
        )
        network = str(name)
        if "network" in item:
            network = _str(_child(item, "network", at), f"b2ct_opennebula_vnets.{name}.network")
        bridge = ""
        if item.get("bridge") not in (None, ""):
            bridge = _str(_child(item, "bridge", at), f"b2ct_opennebula_vnets.{name}.bridge")
        start = None
        if item.get("ar_start") not in (None, ""):
            start = _ip(_child(item, "ar_start", at), f"b2ct_opennebula_vnets.{name}.ar_start")
        size = None
        if item.get("ar_size") is not None:
            size = _int(_child(item, "ar_size", at), f"b2ct_opennebula_vnets.{name}.ar_size", 1)
        out.append(OpenNebulaVnet(str(name), network, bridge, start, size, at=at))
    return tuple(out)


def _belle2(v: Val) -> Belle2:
    spec = _map(v, "b2ct_belle2", tuple(Belle2.__dataclass_fields__))
    kwargs: dict[str, Any] = {}
    for key in spec:
        cv = _child(spec, key, v.at)
        name = f"b2ct_belle2.{key}"
        if key in ("vcpu", "memory_mb"):
            kwargs[key] = _int(cv, name, 1)
        elif key == "cpu":
            if isinstance(cv.value, bool) or not isinstance(cv.value, int | float) or cv.value <= 0:
                _fail(f"{name} must be a positive number, got {cv.value!r}", cv.at)
            kwargs[key] = float(cv.value)
        elif key == "cvmfs_repositories":
            items = _list(cv, name)
            for i, repo in enumerate(items):
                if not isinstance(repo, str) or not _CVMFS_REPO.match(repo):
                    _fail(f"{name}[{i}] {repo!r} is not a CVMFS repository name", where(items, i) or cv.at)
            kwargs[key] = tuple(str(r) for r in items)
        elif key == "image_url":
            url = _str(cv, name)
            if not _MIRROR_URL.match(url):
                _fail(f"{name} {url!r} is not an http(s) or file:// URL", cv.at)
            kwargs[key] = url
        elif key in ("image_name", "template_name"):
            text = _str(cv, name)
            if not _ONE_NAME.match(text):
                _fail(f"{name} {text!r}: letters, digits, '.', '_', '-'", cv.at)
            kwargs[key] = text
        else:  # ssh_key
            key_line = _str(cv, name).strip()
            if not _SSHKEY.match(key_line):
                _fail(f"{name} is not an OpenSSH public key line", cv.at)
            kwargs[key] = key_line
    return Belle2(**kwargs)


def _rocci(v: Val) -> Rocci:
    spec = _map(v, "b2ct_rocci", ("enabled", "package_url"))
    enabled = False
    if "enabled" in spec:
        ev = _child(spec, "enabled", v.at)
        if not isinstance(ev.value, bool):
            _fail(f"b2ct_rocci.enabled must be true or false, got {ev.value!r}", ev.at)
        enabled = ev.value
    url = ""
    if spec.get("package_url") not in (None, ""):
        uv = _child(spec, "package_url", v.at)
        url = _str(uv, "b2ct_rocci.package_url")
        if not (_MIRROR_URL.match(url) or url.startswith("/")):
            _fail(f"b2ct_rocci.package_url {url!r}: give a URL or an absolute path", uv.at)
    if enabled and not url:
        # No upstream repository exists any more (last release 2017): the site must bring the package.
        _fail("b2ct_rocci: enabled needs package_url (the rocci-server package)", v.at)
    return Rocci(enabled, url)


def lease_range(
    net: Network, hosts: tuple[Host, ...] | list[Host], start: ipaddress.IPv4Address | None, size: int | None
) -> tuple[ipaddress.IPv4Address, int, str | None]:
    """A vnet's address range on ``net`` (default: the upper half) and what is wrong with it, if anything."""
    usable = list(net.subnet.hosts())
    if start is None:
        start = usable[len(usable) // 2]
        size = size or len(usable) - len(usable) // 2
    size = size or 1
    last = start + size - 1
    if start not in usable or last not in usable:
        return start, size, f"lease range {start}–{last} does not fit the usable addresses of {net.subnet}"
    taken = {n.ip: f"host {h.name}" for h in hosts for n in h.nics.values() if n.ip and n.network == net.name}
    taken.update({d: "a DNS server" for d in net.dns})
    if net.gateway:
        taken[net.gateway] = "the gateway"
    clash = sorted(ip for ip in taken if start <= ip <= last)
    if clash:
        return start, size, f"lease range {start}–{last} contains {clash[0]}, {taken[clash[0]]}"
    return start, size, None


def _simple(name: str) -> Callable[[Val], str]:
    return lambda v: _str(v, name)


def _abs_path(name: str) -> Callable[[Val], str]:
    def parse(v: Val) -> str:
        path = _str(v, name)
        if not path.startswith("/") or "//" in path or "/../" in f"{path}/":
            _fail(f"{name} {path!r} must be an absolute path", v.at)
        return path.rstrip("/") or "/"

    return parse


@dataclass(frozen=True)
class Setting:
    parse: Callable[[Val], Any]
    doc: str
    required: bool = False


# The site table: name → how to parse it and what it means (docs/inventory.md is generated from it).
SITE_SETTINGS: dict[str, Setting] = {
    "b2ct_site": Setting(_site_name, "Site name (lower case, digits, '-').", required=True),
    "b2ct_os_release": Setting(_release, "Target OS: " + ", ".join(RELEASES) + ".", required=True),
    "b2ct_repos": Setting(_repos, "Repository URLs by name; EL sites need `baseos` (the install tree)."),
    "b2ct_networks": Setting(
        _networks, "`private` (required) and `public`: subnet, gateway, dns, bridge.", required=True
    ),
    "b2ct_root_password_hash": Setting(
        _password_hash, "Root password as a crypt hash (`openssl passwd -6`)."
    ),
    "b2ct_ssh_keys": Setting(_ssh_keys, "Public keys for root's authorized_keys."),
    "b2ct_gluster_allow_root_bricks": Setting(
        _bool("b2ct_gluster_allow_root_bricks"),
        "Allow Gluster bricks on the root filesystem (test beds only; default false).",
    ),
    "b2ct_gluster_volumes": Setting(
        lambda v: v, "GlusterFS volumes: name, replica, bricks (host:/path), mount."
    ),
    "b2ct_opennebula_version": Setting(
        _opennebula_version, "OpenNebula version: " + ", ".join(OPENNEBULA_VERSIONS) + " (default 6.10)."
    ),
    "b2ct_squid": Setting(
        _squid,
        "Squid CVMFS cache: port, cache_size_mb, memory_cache_mb, "
        "maximum_object_size_mb, upstream_proxy, stratum1_urls.",
    ),
    "b2ct_timezone": Setting(_simple("b2ct_timezone"), "Timezone (default UTC)."),
    "b2ct_keyboard": Setting(_simple("b2ct_keyboard"), "Console keyboard layout (default us)."),
    "b2ct_lang": Setting(_simple("b2ct_lang"), "System language (default en_US.UTF-8)."),
    "b2ct_datastore_path": Setting(
        _abs_path("b2ct_datastore_path"), "OpenNebula datastores root (default /var/lib/one/datastores)."
    ),
    "b2ct_opennebula_mirror": Setting(
        _one_mirror, "Base URL of the site's OpenNebula mirror (default: upstream downloads)."
    ),
    "b2ct_opennebula_mirror_gpgkey": Setting(
        _one_mirror_gpgkey,
        "Key that signs the mirror: URL, absolute path or ASCII-armored block (default: upstream's key).",
    ),
    "b2ct_opennebula_hypervisor": Setting(
        _one_hypervisor,
        "Drivers the hosts are registered with: `kvm` (default) or `qemu` (emulation, hosts without KVM).",
    ),
    "b2ct_opennebula_components": Setting(
        _one_components,
        "Front-end components besides oned: sunstone, fireedge, gate, flow (default: upstream's list for "
        "the version; 7.0 has no sunstone).",
    ),
    "b2ct_opennebula_endpoint": Setting(
        _one_endpoint, "OpenNebula XML-RPC endpoint (default `http://<front-end>:2633/RPC2`)."
    ),
    "b2ct_opennebula_vnets": Setting(
        _one_vnets,
        "Virtual networks by name: network (default: the name), bridge (default: the network's), "
        "ar_start, ar_size (default: upper half of the subnet, clear of the inventory's addresses).",
    ),
    "b2ct_belle2": Setting(
        _belle2,
        "Belle II VM: image_url, image_name, template_name, cpu, vcpu, memory_mb, cvmfs_repositories, "
        "ssh_key (default: the first of b2ct_ssh_keys).",
    ),
    "b2ct_rocci": Setting(
        _rocci, "rOCCI-server: enabled (default false), package_url (needed when enabled)."
    ),
}

HOST_SETTINGS: dict[str, Setting] = {
    "b2ct_nics": Setting(
        lambda v: v, "Per network (`private`, `public`): `mac` and `ip` (address or `dhcp`).", required=True
    ),
    "b2ct_serial": Setting(_simple("b2ct_serial"), "DMI serial number, to recognise the machine at install."),
    "b2ct_install_disk": Setting(_simple("b2ct_install_disk"), "System disk (default sda)."),
    "b2ct_ephemeral_disk": Setting(_simple("b2ct_ephemeral_disk"), "Worker: local datastore disk."),
    "b2ct_ephemeral_fs": Setting(_simple("b2ct_ephemeral_fs"), "Worker: xfs (default) or ext4."),
    "b2ct_brick_disk": Setting(_simple("b2ct_brick_disk"), "Service host: GlusterFS brick disk."),
    "b2ct_ephemeral_force": Setting(
        _bool("b2ct_ephemeral_force"),
        "Worker: reformat an ephemeral disk that holds another filesystem (its data is lost).",
    ),
}


# ------------------------------------------------------------------------------------ inventory parsing


@dataclass
class _Group:
    name: str
    vars: dict[str, Val]
    children: list[str]
    hosts: dict[str, dict[str, Val]]  # host → inline vars
    at: str


def _vars_of(node: Any, at: str, what: str) -> dict[str, Val]:
    if node is None:
        return {}
    if not isinstance(node, dict):
        _fail(f"{what}: expected a mapping of variables", at)
    return {str(k): Val(v, where(node, k) or at) for k, v in node.items()}


def _walk(name: str, node: Any, at: str, groups: dict[str, _Group], host_at: dict[str, str]) -> None:
    group = groups.setdefault(name, _Group(name, {}, [], {}, at))
    if node is None:
        return
    if not isinstance(node, dict):
        _fail(f"group {name}: expected a mapping with hosts, vars or children", at)
    for key in node:
        if key not in ("hosts", "vars", "children"):
            _fail(
                f"group {name}: unknown key {key!r}{_suggest(str(key), ['hosts', 'vars', 'children'])}",
                where(node, key) or at,
            )
    if node.get("vars") is not None:
        group.vars.update(_vars_of(node["vars"], where(node, "vars") or at, f"group {name} vars"))
    hosts = node.get("hosts")
    if hosts is not None:
        if not isinstance(hosts, dict):
            _fail(f"group {name}: hosts must be a mapping of host names", where(node, "hosts") or at)
        for host, hvars in hosts.items():
            h_at = where(hosts, host) or at
            hname = str(host)
            if not _HOSTNAME.match(hname):
                _fail(f"host name {hname!r}: use lower-case letters, digits and '-'", h_at)
            group.hosts.setdefault(hname, {}).update(_vars_of(hvars, h_at, f"host {hname}"))
            host_at.setdefault(hname, h_at)
    children = node.get("children")
    if children is not None:
        if not isinstance(children, dict):
            _fail(f"group {name}: children must be a mapping of groups", where(node, "children") or at)
        for child, cnode in children.items():
            c_at = where(children, child) or at
            if str(child) == name:
                _fail(f"group {name} lists itself as a child", c_at)
            if str(child) not in group.children:
                group.children.append(str(child))
            _walk(str(child), cnode, c_at, groups, host_at)


def _find_inventory(path: Path) -> Path:
    if path.is_dir():
        for name in INVENTORY_FILES:
            if (path / name).is_file():
                return path / name
        raise B2ctError(
            f"no inventory file in directory (looked for {', '.join(INVENTORY_FILES)})", where=path
        )
    if not path.exists():
        raise B2ctError("inventory not found", where=path)
    return path


def _ancestors(groups: dict[str, _Group]) -> dict[str, list[str]]:
    """For each group, its ancestors from the root down (parents before children)."""
    parents: dict[str, set[str]] = {g: set() for g in groups}
    for g in groups.values():
        for c in g.children:
            parents.setdefault(c, set()).add(g.name)
    order: dict[str, list[str]] = {}

    def visit(name: str, seen: tuple[str, ...]) -> list[str]:
        if name in seen:
            raise B2ctError(
                f"group {name} is its own ancestor (cycle: {' → '.join((*seen, name))})",
                where=groups[name].at,
            )
        if name not in order:
            result: list[str] = []
            for p in sorted(parents.get(name, ())):
                for a in [*visit(p, (*seen, name)), p]:
                    if a not in result:
                        result.append(a)
            order[name] = result
        return order[name]

    for name in groups:
        visit(name, ())
    return order


def _file_vars(path: Path) -> dict[str, Val]:
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise B2ctError("expected a mapping of variables", where=path)
    return _vars_of(data, str(path), str(path))


def load(path: str | Path) -> Site:
    """Load and validate an inventory file or directory; raise B2ctError at the first problem."""
    path = Path(path)
    inv_file = _find_inventory(path)
    base = inv_file.parent
    data = load_yaml(inv_file)
    if not isinstance(data, dict) or "all" not in data:
        raise B2ctError(
            "expected an Ansible YAML inventory with a top-level 'all' group", where=f"{inv_file}:1"
        )
    for key in data:
        if key != "all":
            _fail(f"top-level group {key!r} must be nested under 'all: children:'", where(data, key))
    groups: dict[str, _Group] = {}
    host_at: dict[str, str] = {}
    _walk("all", data["all"], where(data, "all"), groups, host_at)

    # group_vars/ and host_vars/ beside the inventory file, as Ansible reads them.
    for kind, target in (("group_vars", "group"), ("host_vars", "host")):
        d = base / kind
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix not in (".yml", ".yaml") or not f.is_file():
                continue
            name = f.stem
            fvars = _file_vars(f)
            if target == "group":
                if name not in groups:
                    _fail(f"group_vars for unknown group {name!r}{_suggest(name, list(groups))}", str(f))
                groups[name].vars.update(fvars)
            else:
                if name not in host_at:
                    _fail(f"host_vars for unknown host {name!r}{_suggest(name, list(host_at))}", str(f))
                groups.setdefault("_host_vars", _Group("_host_vars", {}, [], {}, str(f))).hosts[name] = fvars

    ancestors = _ancestors(groups)
    membership: dict[str, list[str]] = {h: [] for h in host_at}
    for g in groups.values():
        if g.name == "_host_vars":
            continue
        for h in g.hosts:
            for a in [*ancestors[g.name], g.name]:
                if a not in membership[h]:
                    membership[h].append(a)

    site_vars = dict(groups["all"].vars)
    for g in groups.values():
        if g.name in ("all", "_host_vars"):
            continue
        for key, val in g.vars.items():
            if key in SITE_SETTINGS:
                _fail(
                    f"{key} is a site setting: set it for all hosts (group_vars/all.yml), "
                    f"not in group {g.name}",
                    val.at,
                )
    site = _build_site(site_vars, str(inv_file))

    hosts: list[Host] = []
    for hname, h_at in host_at.items():
        merged: dict[str, Val] = {}
        depth = {g: len(ancestors[g]) for g in membership[hname]}
        for g in sorted(membership[hname], key=lambda g: depth[g]):
            merged.update({k: v for k, v in groups[g].vars.items()})
        for g in sorted(membership[hname], key=lambda g: depth[g]):
            merged.update(groups[g].hosts.get(hname, {}))
        merged.update(groups.get("_host_vars", _Group("", {}, [], {}, "")).hosts.get(hname, {}))
        hosts.append(_build_host(hname, h_at, membership[hname], merged, site))
    if not hosts:
        raise B2ctError("the inventory defines no hosts", where=str(inv_file))
    _check_unique(hosts)
    volumes = _gluster(site_vars.get("b2ct_gluster_volumes"), hosts, site)
    one = _replace(site.opennebula, vnets=_check_vnets(site, hosts))
    return _replace(site, hosts=tuple(hosts), gluster_volumes=volumes, opennebula=one)


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _build_site(vars: dict[str, Val], source: str) -> Site:
    values: dict[str, Any] = {}
    for key, val in vars.items():
        if key.startswith("b2ct_") and key not in SITE_SETTINGS:
            if key in HOST_SETTINGS:
                continue  # a host setting given as a site-wide default
            if key == "b2ct_root_password":
                _fail(
                    "plaintext root password refused: give b2ct_root_password_hash instead",
                    val.at,
                    hint="openssl passwd -6",
                )
            _fail(f"unknown setting {key}{_suggest(key, list(SITE_SETTINGS) + list(HOST_SETTINGS))}", val.at)
        if key in SITE_SETTINGS:
            values[key] = SITE_SETTINGS[key].parse(val)
    for key, setting in SITE_SETTINGS.items():
        if setting.required and key not in values:
            _fail(f"missing site setting {key}: {setting.doc}", f"{source}:1")
    release = values["b2ct_os_release"]
    repos = values.get("b2ct_repos", {})
    if release.family == "el" and "baseos" not in repos:
        at = vars["b2ct_repos"].at if "b2ct_repos" in vars else vars["b2ct_os_release"].at
        _fail(f"b2ct_repos needs a 'baseos' URL: {release.name} hosts install from it", at)
    version = values.get("b2ct_opennebula_version", "6.10")
    for component in values.get("b2ct_opennebula_components", ()):
        if component not in OPENNEBULA_COMPONENTS[version]:
            _fail(
                f"b2ct_opennebula_components: OpenNebula {version} has no {component}",
                vars["b2ct_opennebula_components"].at,
                hint=f"{version} ships " + ", ".join(OPENNEBULA_COMPONENTS[version]),
            )
    if "b2ct_root_password_hash" not in values and not values.get("b2ct_ssh_keys"):
        _fail("give b2ct_root_password_hash or b2ct_ssh_keys: nobody could log in", vars["b2ct_site"].at)
    return Site(
        name=values["b2ct_site"],
        release=release,
        repos=repos,
        networks=values["b2ct_networks"],
        hosts=(),
        root_password_hash=values.get("b2ct_root_password_hash"),
        ssh_keys=values.get("b2ct_ssh_keys", ()),
        gluster_volumes=(),
        opennebula_version=values.get("b2ct_opennebula_version", "6.10"),
        squid=values.get("b2ct_squid", Squid()),
        timezone=values.get("b2ct_timezone", "UTC"),
        keyboard=values.get("b2ct_keyboard", "us"),
        lang=values.get("b2ct_lang", "en_US.UTF-8"),
        datastore_path=values.get("b2ct_datastore_path", "/var/lib/one/datastores"),
        gluster_allow_root_bricks=values.get("b2ct_gluster_allow_root_bricks", False),
        opennebula=OpenNebulaSettings(
            mirror=values.get("b2ct_opennebula_mirror", ""),
            mirror_gpgkey=values.get("b2ct_opennebula_mirror_gpgkey", ""),
            hypervisor=values.get("b2ct_opennebula_hypervisor", "kvm"),
            components=values.get("b2ct_opennebula_components"),
            endpoint=values.get("b2ct_opennebula_endpoint"),
            vnets=values.get("b2ct_opennebula_vnets", ()),
            belle2=values.get("b2ct_belle2", Belle2()),
            rocci=values.get("b2ct_rocci", Rocci()),
        ),
        source=source,
    )


def _disk(v: Val, name: str) -> str:
    disk = _str(v, name)
    if not _DISK.match(disk) or ".." in disk:
        _fail(f"{name} {disk!r} is not a disk name (sdb, nvme0n1, /dev/disk/by-id/…)", v.at)
    return disk


def _build_host(name: str, at: str, groups: list[str], vars: dict[str, Val], site: Site) -> Host:
    classes = [g for g in CLASS_GROUPS if g in groups]
    frontend = "frontend" in groups
    if frontend and "service" not in classes:
        classes.append("service")  # the front-end runs on a service-class machine
    if not classes:
        others = [g for g in groups if g != "all"]
        _fail(
            f"host {name} has an unknown host class (groups: {', '.join(others) or 'none'})",
            at,
            hint="put it in group service or worker",
        )
    if len(set(classes)) > 1:
        _fail(f"host {name} is in both service and worker: a host has one class", at)
    klass = classes[0]
    for key, val in vars.items():
        if key.startswith("b2ct_") and key not in HOST_SETTINGS and key not in SITE_SETTINGS:
            if key == "b2ct_root_password":
                _fail(
                    "plaintext root password refused: give b2ct_root_password_hash instead",
                    val.at,
                    hint="openssl passwd -6",
                )
            _fail(f"unknown setting {key}{_suggest(key, list(HOST_SETTINGS) + list(SITE_SETTINGS))}", val.at)
    if "b2ct_nics" not in vars:
        _fail(f"host {name}: missing b2ct_nics (at least the private interface's mac)", at)
    nics = _nics(name, vars["b2ct_nics"], site)
    if klass == "service" and "public" in site.networks and "public" not in nics:
        _fail(
            f"service host {name} needs a public NIC: missing network 'public' in b2ct_nics",
            vars["b2ct_nics"].at,
        )
    ephemeral_fs = "xfs"
    if "b2ct_ephemeral_fs" in vars:
        fv = vars["b2ct_ephemeral_fs"]
        ephemeral_fs = _str(fv, "b2ct_ephemeral_fs").lower()
        if ephemeral_fs not in ("xfs", "ext4"):
            _fail(f"b2ct_ephemeral_fs {fv.value!r}: use xfs or ext4", fv.at)
    disks: dict[str, str] = {}
    for key in ("b2ct_install_disk", "b2ct_ephemeral_disk", "b2ct_brick_disk"):
        if key in vars and vars[key].value not in (None, ""):
            disks[key] = _disk(vars[key], key)
    disks.setdefault("b2ct_install_disk", "sda")
    if klass == "service" and "b2ct_ephemeral_disk" in disks and "b2ct_ephemeral_disk" in vars:
        _fail(
            f"host {name}: b2ct_ephemeral_disk is for workers; service hosts use GlusterFS",
            vars["b2ct_ephemeral_disk"].at,
        )
    if klass == "worker" and "b2ct_brick_disk" in disks:
        _fail(f"host {name}: b2ct_brick_disk is for service hosts", vars["b2ct_brick_disk"].at)
    seen: dict[str, str] = {}
    for key, disk in disks.items():
        short = disk.removeprefix("/dev/")
        if short in seen:
            _fail(
                f"host {name}: {key} and {seen[short]} are the same disk {disk!r}",
                vars[key].at if key in vars else at,
            )
        seen[short] = key
    serial = None
    if vars.get("b2ct_serial") is not None and vars["b2ct_serial"].value not in ("", None):
        serial = _str(vars["b2ct_serial"], "b2ct_serial")
        if not _SERIAL.match(serial):
            _fail(f"b2ct_serial {serial!r}: letters, digits, '.', '_' and '-' only", vars["b2ct_serial"].at)
    ansible_host = None
    if "ansible_host" in vars and vars["ansible_host"].value not in (None, ""):
        ansible_host = _str(vars["ansible_host"], "ansible_host")
    return Host(
        name=name,
        klass=klass,  # type: ignore[arg-type]
        frontend=frontend,
        nics=nics,
        install_disk=disks["b2ct_install_disk"],
        ansible_host=ansible_host,
        serial=serial,
        ephemeral_disk=disks.get("b2ct_ephemeral_disk"),
        ephemeral_fs=ephemeral_fs,  # type: ignore[arg-type]
        brick_disk=disks.get("b2ct_brick_disk"),
        ephemeral_force=HOST_SETTINGS["b2ct_ephemeral_force"].parse(vars["b2ct_ephemeral_force"])
        if "b2ct_ephemeral_force" in vars
        else False,
        where=at,
    )


def _nics(host: str, v: Val, site: Site) -> dict[str, Nic]:
    spec = _map(v, f"host {host} b2ct_nics")
    out: dict[str, Nic] = {}
    for net in spec:
        at = where(spec, net) or v.at
        if net not in site.networks:
            _fail(
                f"host {host}: missing network {net!r}: not defined in b2ct_networks"
                f"{_suggest(str(net), list(site.networks))}",
                at,
            )
        nic = _map(Val(spec[net], at), f"host {host} b2ct_nics.{net}", ("mac", "ip"))
        if "mac" not in nic:
            _fail(f"host {host}: b2ct_nics.{net} needs a mac", at)
        mv = _child(nic, "mac", at)
        mac = _str(mv, "mac").strip()
        if not _MAC.match(mac):
            _fail(
                f"host {host}: malformed MAC address {mac!r} "
                "(expected six hex pairs, e.g. 52:54:00:12:34:56)",
                mv.at,
            )
        mac = mac.lower().replace("-", ":")
        ip = None
        ip_at = where(nic, "ip") or at
        if "ip" in nic and str(nic["ip"]).lower() != "dhcp":
            iv = _child(nic, "ip", at)
            ip = _ip(iv, f"host {host} b2ct_nics.{net}.ip")
            network = site.networks[str(net)]
            if ip not in network.subnet:
                _fail(f"host {host}: IP {ip} is outside the {net} subnet {network.subnet}", iv.at)
            if ip in (network.subnet.network_address, network.subnet.broadcast_address):
                _fail(f"host {host}: IP {ip} is the network or broadcast address of {network.subnet}", iv.at)
            if network.gateway is not None and ip == network.gateway:
                _fail(f"host {host}: IP {ip} is the {net} gateway", iv.at)
        out[str(net)] = Nic(str(net), mac, ip, mac_at=mv.at, ip_at=ip_at)
    if "private" not in out:
        _fail(f"host {host}: missing network 'private' in b2ct_nics", v.at)
    return out


def _check_unique(hosts: list[Host]) -> None:
    macs: dict[str, str] = {}
    ips: dict[str, str] = {}
    serials: dict[str, str] = {}
    for h in hosts:
        for nic in h.nics.values():
            if nic.mac in macs:
                _fail(
                    f"duplicate MAC {nic.mac}: host {h.name} and host {macs[nic.mac]}", nic.mac_at or h.where
                )
            macs[nic.mac] = h.name
            if nic.ip is not None:
                if str(nic.ip) in ips:
                    _fail(
                        f"duplicate IP {nic.ip}: host {h.name} and host {ips[str(nic.ip)]}",
                        nic.ip_at or h.where,
                    )
                ips[str(nic.ip)] = h.name
        if h.serial:
            if h.serial in serials:
                _fail(f"duplicate serial {h.serial}: host {h.name} and host {serials[h.serial]}", h.where)
            serials[h.serial] = h.name


def _gluster(v: Val | None, hosts: list[Host], site: Site) -> tuple[GlusterVolume, ...]:
    if v is None or v.value is None:
        return ()
    items = _list(v, "b2ct_gluster_volumes")
    by_name = {h.name: h for h in hosts}
    volumes: list[GlusterVolume] = []
    mounts: dict[str, str] = {}
    all_bricks: dict[str, str] = {}
    for i, item in enumerate(items):
        at = where(items, i) or v.at
        spec = _map(Val(item, at), f"b2ct_gluster_volumes[{i}]", ("name", "replica", "bricks", "mount"))
        for key in ("name", "replica", "bricks"):
            if key not in spec:
                _fail(f"b2ct_gluster_volumes[{i}]: missing {key}", at)
        nv = _child(spec, "name", at)
        name = _str(nv, "name")
        if not _VOLNAME.match(name):
            _fail(f"Gluster volume name {name!r}: letters, digits, '_' and '-' only", nv.at)
        if any(vol.name == name for vol in volumes):
            _fail(f"Gluster volume name clash: {name!r} is defined twice", nv.at)
        rv = _child(spec, "replica", at)
        replica = _int(rv, f"volume {name} replica", 1)
        bv = _child(spec, "bricks", at)
        brick_items = _list(bv, f"volume {name} bricks")
        bricks: list[Brick] = []
        for j, b in enumerate(brick_items):
            b_at = where(brick_items, j) or bv.at
            text = _str(Val(b, b_at), "brick")
            host, sep, bpath = text.partition(":")
            if not sep or not bpath.startswith("/"):
                _fail(f"volume {name}: brick {text!r} must be host:/absolute/path", b_at)
            if host not in by_name:
                _fail(
                    f"volume {name}: brick on host {host!r}, which does not exist in the inventory"
                    f"{_suggest(host, list(by_name))}",
                    b_at,
                )
            if by_name[host].klass != "service":
                _fail(f"volume {name}: brick on {host}, a worker: bricks belong on service hosts", b_at)
            if bpath.rstrip("/") in ("", "/"):
                _fail(f"volume {name}: brick path {bpath!r} is the root directory", b_at)
            key = f"{host}:{bpath.rstrip('/')}"
            if key in all_bricks:
                _fail(f"volume {name}: brick {key} is already used by volume {all_bricks[key]}", b_at)
            all_bricks[key] = name
            bricks.append(Brick(host, bpath.rstrip("/")))
        if not bricks or len(bricks) % replica:
            _fail(
                f"volume {name}: replica {replica} needs a multiple of {replica} bricks, got {len(bricks)}",
                rv.at,
            )
        replica_hosts = [{b.host for b in bricks[k : k + replica]} for k in range(0, len(bricks), replica)]
        if replica > 1 and any(len(s) < replica for s in replica_hosts):
            _fail(f"volume {name}: replicas of one set sit on the same host (no redundancy)", bv.at)
        mount = f"{site.datastore_path}/{name}"
        if "mount" in spec:
            mount = _abs_path("mount")(_child(spec, "mount", at))
        if mount in mounts:
            _fail(f"volume {name}: mount {mount} is also the mount of volume {mounts[mount]}", at)
        mounts[mount] = name
        volumes.append(GlusterVolume(name, replica, tuple(bricks), mount))
    return tuple(volumes)


def _check_vnets(site: Site, hosts: list[Host]) -> tuple[OpenNebulaVnet, ...]:
    """Each vnet on a network of the inventory, on that network's bridge, leasing only free addresses."""
    out: list[OpenNebulaVnet] = []
    bridges = {n.bridge: n.name for n in site.networks.values()}
    for vnet in site.opennebula.vnets:
        prefix = f"b2ct_opennebula_vnets.{vnet.name}"
        if vnet.network not in site.networks:
            _fail(
                f"{prefix}: network {vnet.network!r} is not in b2ct_networks"
                f"{_suggest(vnet.network, list(site.networks))}",
                vnet.at,
                hint="one of " + ", ".join(site.networks),
            )
        net = site.networks[vnet.network]
        bridge = vnet.bridge or net.bridge
        if bridges.get(bridge) != net.name:
            carries = f"carries network {bridges[bridge]}" if bridge in bridges else "is no inventory bridge"
            _fail(
                f"{prefix}: bridge {bridge!r} {carries}, not {net.name} (its bridge is {net.bridge})", vnet.at
            )
        start, size, problem = lease_range(net, hosts, vnet.ar_start, vnet.ar_size)
        if problem:
            _fail(f"{prefix}: {problem}", vnet.at, hint=f"set {prefix}.ar_start/ar_size")
        out.append(_replace(vnet, bridge=bridge, ar_start=start, ar_size=size))
    return tuple(out)
