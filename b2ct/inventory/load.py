"""Read a standard Ansible YAML inventory and validate it into a Site.

ansible-core reads the inventory (b2ct.inventory.ansible_view), so b2ct sees every host's variables exactly
as `ansible-inventory --list` does: Ansible's precedence, merge keys, `!vault` values, `group_vars/all/`
directories. This module then checks what each value means, not only its form. One table per scope
(SITE_SETTINGS, HOST_SETTINGS) drives parsing, validation and the documentation; every error names the
file:line that holds the bad value.
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
from b2ct.inventory import meaning, placeholders
from b2ct.inventory.ansible_view import (
    InventoryView,
    is_vaulted,
    key_position,
    position,
    read,
    value_position,
    where,
)
from b2ct.inventory.model import (
    RELEASES,
    Belle2,
    Bond,
    Brick,
    GlusterVolume,
    Host,
    HostFailure,
    Network,
    Nic,
    OpenNebulaSettings,
    OpenNebulaVnet,
    Rocci,
    Site,
    Squid,
)
from b2ct.inventory.yamlsrc import preceding_scalar, scalar_text, value_text_after_key

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
NETWORK_NAMES = ("private", "public", "storage")
# Hosts carry the storage network's address themselves (GlusterFS between hosts); VMs never attach to it.
UNBRIDGED_NETWORKS = ("storage",)

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")  # a short name or an FQDN (RFC 1123 labels)
_DISK = re.compile(r"^(/dev/)?[A-Za-z0-9][A-Za-z0-9/_.:-]*$")
_SSHKEY = re.compile(
    r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}( .*)?$"
)
_MAC = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$", re.IGNORECASE)
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_SERIAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_VOLNAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URL = re.compile(r"^(https?|ftp|nfs)://\S+$")
_HTTP_URL = re.compile(r"^https?://\S+$")
_MIRROR_URL = re.compile(r"^(https?|file)://\S+$")
_ONE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # an OpenNebula object name we create
_CVMFS_REPO = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# kickstart `lang` and `keyboard` take one word: anything else would add options to the command line
_LANG = re.compile(r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,3})?(\.[A-Za-z0-9-]+)?(@[A-Za-z0-9]+)?$")
_KEYBOARD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\([A-Za-z0-9_-]+\))?$")


@dataclass
class Val:
    """A variable's value, where it was set, and the key it was set under (to find untagged values)."""

    value: Any
    at: str
    key_at: Any = None  # ansible_view.Position of the key, for values YAML gives no position (bool, null)


# ---------------------------------------------------------------------------------------------- helpers


def _fail(message: str, at: str, hint: str | None = None) -> None:
    raise B2ctError(message, where=at or None, hint=hint)


def _written(v: Val) -> tuple[str, bool] | None:
    """The scalar as written in its file (text, unquoted?), when it can be found."""
    pos = position(v.value)
    if pos is not None:
        return scalar_text(pos.path, pos.line, pos.col)
    if v.key_at is not None:
        return value_text_after_key(v.key_at.path, v.key_at.line, v.key_at.col)
    return None


def _str(v: Val, name: str) -> str:
    """A text value. YAML 1.1 turns some unquoted text into numbers or booleans (0012345 → 5349,
    1:20 → 80, no → false, 6.10 → 6.1): Ansible passes those on as converted, so a number is accepted only
    when it reads back as exactly what was written, and everything else is refused with a hint to quote."""
    value = v.value
    if isinstance(value, str) and not is_vaulted(value):
        return str(value)
    if isinstance(value, bool | int | float):
        written = _written(v)
        text = written[0] if written else None
        if not isinstance(value, bool) and text is not None and text == str(value):
            return text
        kind = "the boolean" if isinstance(value, bool) else "the number"
        became = str(value).lower() if isinstance(value, bool) else repr(value)
        shown = repr(text) if text is not None else "this unquoted value"
        _fail(
            f"{name}: YAML reads {shown} as {kind} {became}",
            v.at,
            hint=f'quote it: "{text}"' if text is not None else "quote the value",
        )
    _fail(f"{name} must be a string, got {_type_name(value)}", v.at)
    raise AssertionError  # unreachable


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__.removeprefix("_AnsibleTagged").lower()


def _bool(name: str) -> Callable[[Val], bool]:
    def parse(v: Val) -> bool:
        if not isinstance(v.value, bool):
            _fail(f"{name} must be true or false, got {v.value!r}", v.at)
        return bool(v.value)

    return parse


def _int(v: Val, name: str, minimum: int = 0) -> int:
    if isinstance(v.value, bool) or not isinstance(v.value, int):
        _fail(f"{name} must be a whole number, got {v.value!r}", v.at)
    written = _written(v)
    if written is not None and written[0] != str(v.value):
        # 010 is 8 and 1:00 is 60 in YAML 1.1: say which number it became
        _fail(f"{name}: YAML reads {written[0]!r} as the number {v.value}", v.at, hint="write it in decimal")
    if v.value < minimum:
        _fail(f"{name} must be at least {minimum}, got {v.value}", v.at)
    return int(v.value)


def _map(v: Val, name: str, allowed: tuple[str, ...] | None = None) -> dict[Any, Any]:
    if not isinstance(v.value, dict):
        _fail(f"{name} must be a mapping, got {_type_name(v.value)}", v.at)
    value: dict[Any, Any] = v.value
    for key in value:
        if not isinstance(key, str):
            at = where(value, key) or v.at
            written = _written(Val(key, at))
            pos = position(value[key])
            if written is None and pos is not None:  # a boolean key: it is the scalar before its value
                kpos = preceding_scalar(pos.path, pos.line, pos.col)
                written = scalar_text(pos.path, *kpos) if kpos else None
            shown = repr(written[0]) if written else repr(key)
            _fail(
                f"{name}: YAML reads the key {shown} as {_type_name(key)} {key!r}", at, hint="quote the key"
            )
        if allowed is not None and key not in allowed:
            _fail(f"{name}: unknown key {key!r}{_suggest(str(key), allowed)}", where(value, key) or v.at)
    return value


def _list(v: Val, name: str) -> list[Any]:
    if isinstance(v.value, str):  # a single item is fine where a list is expected
        return [v.value]
    if not isinstance(v.value, list):
        _fail(f"{name} must be a list, got {_type_name(v.value)}", v.at)
    return v.value


def _child(container: Any, key: Any, parent_at: str) -> Val:
    key_at = key_position(container, key) if isinstance(container, dict) else None
    return Val(container[key], where(container, key) or parent_at, key_at)


def _item(items: list[Any], i: int, parent_at: str) -> Val:
    return Val(items[i], where(items, i) or parent_at)


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _ip(v: Val, name: str) -> ipaddress.IPv4Address:
    text = _str(v, name)
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        _fail(f"{name}: {text!r} is not an IPv4 address", v.at)
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
    vlans: dict[int, str] = {}
    for name in nets:
        at = where(nets, name) or v.at
        spec = _map(
            Val(nets[name], at), f"b2ct_networks.{name}", ("subnet", "gateway", "dns", "bridge", "vlan")
        )
        if "subnet" not in spec:
            _fail(f"b2ct_networks.{name}: missing subnet", at)
        sv = _child(spec, "subnet", at)
        try:
            subnet = ipaddress.IPv4Network(_str(sv, f"b2ct_networks.{name}.subnet"), strict=True)
        except ValueError as exc:
            _fail(f"b2ct_networks.{name}.subnet: {exc}", sv.at)
        problem = meaning.subnet_problem(subnet)
        if problem:
            _fail(
                f"b2ct_networks.{name}.subnet {subnet} {problem}",
                sv.at,
                hint="site networks are unicast ranges, e.g. 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16",
            )
        gateway = None
        if spec.get("gateway") not in (None, ""):
            gv = _child(spec, "gateway", at)
            gateway = _ip(gv, f"b2ct_networks.{name}.gateway")
            problem = meaning.address_problem(gateway, subnet)
            if problem:
                first, last = meaning.usable(subnet)
                _fail(
                    f"b2ct_networks.{name}.gateway {gateway} {problem}",
                    gv.at,
                    hint=f"a gateway is one of the hosts {first}–{last} (often {first})",
                )
        dns: list[ipaddress.IPv4Address] = []
        if "dns" in spec:
            dv = _child(spec, "dns", at)
            items = _list(dv, f"b2ct_networks.{name}.dns")
            for i in range(len(items)):
                iv = _item(items, i, dv.at)
                server = _ip(iv, f"b2ct_networks.{name}.dns")
                problem = meaning.dns_problem(server)
                if problem:
                    _fail(
                        f"b2ct_networks.{name}.dns: {server} {problem}",
                        iv.at,
                        hint="give the address of a name server the hosts reach over the network",
                    )
                dns.append(server)
        bridge = "" if name in UNBRIDGED_NETWORKS else f"br-{name}"
        if "bridge" in spec:
            bv = _child(spec, "bridge", at)
            if name in UNBRIDGED_NETWORKS:
                _fail(
                    f"b2ct_networks.{name}: the {name} network has no bridge",
                    bv.at,
                    hint="it carries GlusterFS between the hosts, which hold its addresses themselves; "
                    "virtual machines never attach to it",
                )
            bridge = _str(bv, f"b2ct_networks.{name}.bridge")
            if not _IFNAME.match(bridge):
                _fail(
                    f"b2ct_networks.{name}.bridge {bridge!r} is not a valid interface name (≤15 chars)", bv.at
                )
        if bridge and bridge in bridges:
            _fail(
                f"b2ct_networks.{name}.bridge {bridge!r} is also the bridge of network {bridges[bridge]}", at
            )
        bridges[bridge] = name
        vlan = None
        if spec.get("vlan") is not None:
            vv = _child(spec, "vlan", at)
            vlan = _int(vv, f"b2ct_networks.{name}.vlan")
            problem = meaning.vlan_problem(vlan)
            if problem:
                _fail(f"b2ct_networks.{name}.vlan {vlan} {problem}", vv.at, hint="VLAN ids are 1-4094")
            if vlan in vlans:
                _fail(
                    f"b2ct_networks.{name}.vlan {vlan} is also the VLAN of network {vlans[vlan]}",
                    vv.at,
                    hint="each network is its own VLAN",
                )
            vlans[vlan] = str(name)
        out[str(name)] = Network(str(name), subnet, gateway, tuple(dns), bridge, vlan)
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
    problem = meaning.crypt_problem(value)
    if problem:
        _fail(f"b2ct_root_password_hash {problem}", v.at, hint="generate one with: openssl passwd -6")
    return value


def _ssh_keys(v: Val) -> tuple[str, ...]:
    items = _list(v, "b2ct_ssh_keys")
    keys = []
    for i in range(len(items)):
        kv = _item(items, i, v.at)
        keys.append(_ssh_key(kv, f"b2ct_ssh_keys[{i}]"))
    return tuple(keys)


def _ssh_key(v: Val, name: str) -> str:
    text = _str(v, name).strip()
    problem = None if _SSHKEY.match(text) else "is not an OpenSSH public key line"
    problem = problem or meaning.ssh_key_problem(text)
    if problem:
        _fail(f"{name} {problem}", v.at, hint="paste the whole line of the .pub file")
    return text


def _timezone(v: Val) -> str:
    zone = _str(v, "b2ct_timezone")
    zones = meaning.time_zones()
    if not zones:
        _fail(
            "b2ct_timezone: this machine has no time zone database to check it against",
            v.at,
            hint="install the tzdata package",
        )
    if zone not in zones:
        regions = sorted(z for z in zones if "/" in z)
        _fail(
            f"b2ct_timezone {zone!r} is not a time zone of the tz database{_suggest(zone, regions)}",
            v.at,
            hint="a name from `timedatectl list-timezones`, e.g. Europe/Rome",
        )
    return zone


_EXAMPLES = {"b2ct_keyboard": "us, it, de-latin1", "b2ct_lang": "en_US.UTF-8, it_IT.UTF-8"}


def _word(name: str, pattern: re.Pattern[str], example: str) -> Callable[[Val], str]:
    def parse(v: Val) -> str:
        text = _str(v, name)
        if not pattern.match(text):
            _fail(f"{name} {text!r} is not a single {example} name", v.at, hint=f"e.g. {_EXAMPLES[name]}")
        return text

    return parse


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
            texts = []
            for i in range(len(urls)):
                uv = _item(urls, i, cv.at)
                url = _str(uv, f"b2ct_squid.stratum1_urls[{i}]")
                if not _URL.match(url):
                    _fail(f"b2ct_squid.stratum1_urls[{i}]: {url!r} is not a URL", uv.at)
                texts.append(url)
            kwargs[key] = tuple(texts)
        elif key == "upstream_proxy":
            proxy = "" if cv.value is None else _str(cv, "b2ct_squid.upstream_proxy")
            m = re.match(r"^(https?://)?[A-Za-z0-9.-]+:(\d+)/?$", proxy)
            if proxy and (not m or not 1 <= int(m.group(2)) <= 65535):
                _fail(f"b2ct_squid.upstream_proxy {proxy!r}: expected host:port (port 1-65535)", cv.at)
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


def _host_failure(v: Val) -> HostFailure:
    spec = _map(v, "b2ct_opennebula_host_failure", ("fence_command", "pause_cycles"))
    kwargs: dict[str, Any] = {}
    for key in spec:
        cv = _child(spec, key, v.at)
        if key == "fence_command":
            command = _str(cv, "b2ct_opennebula_host_failure.fence_command").strip()
            if "\n" in command:
                _fail("b2ct_opennebula_host_failure.fence_command must be one line", cv.at)
            kwargs[key] = command
        else:
            kwargs[key] = _int(cv, "b2ct_opennebula_host_failure.pause_cycles", 0)
    return HostFailure(**kwargs)


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
            repos = []
            for i in range(len(items)):
                rv = _item(items, i, cv.at)
                repo = _str(rv, f"{name}[{i}]")
                if not _CVMFS_REPO.match(repo):
                    _fail(f"{name}[{i}] {repo!r} is not a CVMFS repository name", rv.at)
                repos.append(repo)
            kwargs[key] = tuple(repos)
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
            kwargs[key] = _ssh_key(cv, name)
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
        _networks,
        "`private` (required), `public` and `storage`: subnet, gateway, dns, bridge (none on storage), "
        "vlan (802.1Q id, 1-4094). With `storage`, GlusterFS uses the hosts' storage addresses.",
        required=True,
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
    "b2ct_timezone": Setting(_timezone, "Time zone of the tz database, e.g. Europe/Rome (default UTC)."),
    "b2ct_keyboard": Setting(
        _word("b2ct_keyboard", _KEYBOARD, "keyboard layout"), "Console keyboard layout (default us)."
    ),
    "b2ct_lang": Setting(_word("b2ct_lang", _LANG, "locale"), "System language (default en_US.UTF-8)."),
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
    "b2ct_opennebula_host_failure": Setting(
        _host_failure,
        "OpenNebula's host-failure hook: fence_command (run on the front-end with $B2CT_FENCE_HOST; exit 0 "
        "only if the failed host is certainly off; empty, the default: no hook) and pause_cycles "
        "(monitoring cycles of 60 s to wait for the host first; default 1).",
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
        lambda v: v,
        "Per network (`private`, `public`, `storage`): `ip` (address or `dhcp`) and where it is: `mac` (a "
        "NIC), `bond` (`mode`, e.g. balance-alb; `members`: the NICs' MACs; `miimon` ms, default 100; "
        "`name`, default bond0, bond1…) or `via` (another network whose NIC or bond carries it, tagged "
        "with its vlan); `tagged: true` where the host's own port carries the network's vlan tagged.",
        required=True,
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


def _reveal(value: Any, name: str, at: str, view: InventoryView) -> Any:
    """``value`` with every ``!vault`` string in it decrypted (b2ct needs what it validates)."""
    if is_vaulted(value):
        return view.vault.decrypt(value, name, str(position(value) or at))
    if isinstance(value, dict) and any(_has_vault(v) for v in value.values()):
        return type(value)({k: _reveal(v, f"{name}.{k}", at, view) for k, v in value.items()})
    if isinstance(value, list) and any(_has_vault(v) for v in value):
        return type(value)(_reveal(v, f"{name}[{i}]", at, view) for i, v in enumerate(value))
    return value


def _has_vault(value: Any) -> bool:
    if is_vaulted(value):
        return True
    if isinstance(value, dict):
        return any(_has_vault(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_vault(v) for v in value)
    return False


def _needed(key: str) -> bool:
    """The variables b2ct reads (and so decrypts when vaulted); everything else stays opaque."""
    return key.startswith("b2ct_") or key == "ansible_host"


def _vals(view: InventoryView, variables: dict[str, Any], host: str | None) -> dict[str, Val]:
    out: dict[str, Val] = {}
    for key, value in variables.items():
        if not _needed(key):
            continue
        pos = value_position(value)
        key_at = None
        if pos is None:  # booleans and nulls carry no position: find the key that set them
            key_at = view.var_position(host, key) if host is not None else key_position(variables, key)
        at = str(pos or key_at or "")
        out[key] = Val(_reveal(value, key, at, view), at, key_at)
    return out


def _check_host_name(name: Any, at: str) -> str:
    hname = str(name)
    pos = position(name)
    written = scalar_text(pos.path, pos.line, pos.col) if pos else None
    if written is not None and written[1] and written[0] != hname:
        _fail(f"host name: YAML reads {written[0]!r} as {hname!r}", at, hint=f'quote it: "{written[0]}"')
    if len(hname) > 253 or not _HOSTNAME.match(hname):
        _fail(
            f"host name {hname!r}: use lower-case letters, digits and '-' (and dots between FQDN labels)",
            at,
        )
    return hname


def load(path: str | Path, vault_password_files: tuple[str | Path, ...] | list[str | Path] = ()) -> Site:
    """Load and validate an inventory file or directory; raise B2ctError at the first problem.

    ``vault_password_files`` (and ANSIBLE_VAULT_PASSWORD_FILE, as for Ansible) decrypt the ``!vault``
    values b2ct needs; other vaulted values stay encrypted and unread.
    """
    path = Path(path)
    view = read(path, vault_password_files)
    source = str(path)
    site_vars = _vals(view, view.all_vars, None)
    host_vars = {name: _vals(view, h.vars, name) for name, h in view.hosts.items()}
    placeholders.refuse(site_vars, host_vars)  # b2ct init's FILL-IN values, before anything reads them
    _site_settings_are_site_wide(site_vars, host_vars)
    site = _build_site(site_vars, source)

    hosts: list[Host] = []
    for hname, hview in view.hosts.items():
        name = _check_host_name(next(k for k in view._manager.hosts if k == hname), hview.at)
        hosts.append(_build_host(name, hview.at, hview.groups, host_vars[hname], site))
    if not hosts:
        raise B2ctError("the inventory defines no hosts", where=source)
    _check_unique(hosts)
    volumes = _gluster(site_vars.get("b2ct_gluster_volumes"), hosts, site)
    _check_storage(site, hosts, volumes)
    one = _replace(site.opennebula, vnets=_check_vnets(site, hosts))
    return _replace(site, hosts=tuple(hosts), gluster_volumes=volumes, opennebula=one)


def _site_settings_are_site_wide(site_vars: dict[str, Val], host_vars: dict[str, dict[str, Val]]) -> None:
    """A site setting set for a group or a host would give hosts different sites: refuse it where set."""
    for hname, hvars in host_vars.items():
        for key, val in hvars.items():
            if key not in SITE_SETTINGS:
                continue
            mine = site_vars.get(key)
            if mine is None or val.value != mine.value:  # the same value set again is harmless
                _fail(
                    f"{key} is a site setting: set it for all hosts (group_vars/all.yml or all: vars:), "
                    f"not for a group or host (here it applies to {hname})",
                    val.at,
                )


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
            _fail(f"missing site setting {key}: {setting.doc}", source, hint="set it in group_vars/all.yml")
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
            host_failure=values.get("b2ct_opennebula_host_failure", HostFailure()),
        ),
        source=source,
        origins={key: val.at for key, val in vars.items() if val.at},
    )


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", text)) and ".." not in text


def _disk(v: Val, name: str) -> str:
    disk = _str(v, name)
    if not _DISK.match(disk) or ".." in disk:
        _fail(f"{name} {disk!r} is not a disk name (sdb, nvme0n1, /dev/disk/by-id/…)", v.at)
    found = meaning.disk_problem(disk, whole=name == "b2ct_install_disk")
    if found:
        problem, meant = found
        hint = (
            f"give the whole disk, e.g. {meant}" if meant else "give a disk: sda, nvme0n1, /dev/disk/by-id/…"
        )
        _fail(f"{name} {problem}", v.at, hint=hint)
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
        if not _is_address(ansible_host):
            _fail(
                f"host {name}: ansible_host {ansible_host!r} is neither an IP address nor a host name",
                vars["ansible_host"].at,
                hint="the address Ansible connects to, e.g. 10.10.0.21 or wn01.site.example.org",
            )
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
        origins={key: val.at for key, val in vars.items() if val.at} | {"name": at},
    )


def _mac(host: str, v: Val) -> str:
    mac = _str(v, "mac").strip()
    if not _MAC.match(mac):
        _fail(
            f"host {host}: malformed MAC address {mac!r} (expected six hex pairs, e.g. 52:54:00:12:34:56)",
            v.at,
        )
    mac = mac.lower().replace("-", ":")
    problem = meaning.mac_problem(mac)
    if problem:
        _fail(f"host {host}: MAC address {mac} {problem}", v.at, hint="copy the NIC's address from its label")
    return mac


def _bond(host: str, net: str, v: Val) -> Bond:
    """A bond as written (its name may be empty: the caller numbers the host's bonds)."""
    prefix = f"host {host}: b2ct_nics.{net}.bond"
    spec = _map(v, prefix, ("name", "mode", "members", "miimon"))
    name = ""
    if spec.get("name") not in (None, ""):
        nv = _child(spec, "name", v.at)
        name = _str(nv, f"{prefix}.name")
        if not _IFNAME.match(name):
            _fail(f"{prefix}.name {name!r} is not a valid interface name (≤15 chars)", nv.at)
    if "mode" not in spec:
        _fail(
            f"{prefix}: missing mode",
            v.at,
            hint="e.g. mode: balance-alb (adaptive load balancing, no switch setup), active-backup, "
            "802.3ad (LACP on the switch)",
        )
    mv = _child(spec, "mode", v.at)
    written = _str(mv, f"{prefix}.mode")
    mode = meaning.bond_mode(written)
    if mode is None:
        _fail(
            f"{prefix}.mode {written!r} is not a mode of the Linux bonding driver"
            f"{_suggest(written.lower(), list(meaning.BOND_MODES))}",
            mv.at,
            hint="one of " + ", ".join(f"{m} ({i})" for i, m in enumerate(meaning.BOND_MODES)),
        )
    if "members" not in spec:
        _fail(f"{prefix}: missing members (the MACs of the bonded NICs)", v.at)
    lv = _child(spec, "members", v.at)
    items = _list(lv, f"{prefix}.members")
    members: list[str] = []
    members_at: list[str] = []
    for i in range(len(items)):
        iv = _item(items, i, lv.at)
        mac = _mac(host, iv)
        if mac in members:
            _fail(f"{prefix}.members lists {mac} twice", iv.at)
        members.append(mac)
        members_at.append(iv.at)
    if not members:
        _fail(f"{prefix}.members is empty: a bond needs at least one NIC", lv.at)
    miimon = 100
    if spec.get("miimon") is not None:
        iv = _child(spec, "miimon", v.at)
        miimon = _int(iv, f"{prefix}.miimon")
        if miimon == 0:
            # bonding.rst: without miimon (or ARP monitoring, which b2ct does not set) link failures are
            # not detected, so traffic keeps going to a dead member.
            _fail(
                f"{prefix}.miimon 0 turns link monitoring off: a failed member would never be noticed",
                iv.at,
                hint="the link check interval in ms; 100 is usual",
            )
    return Bond(name, mode, tuple(members), miimon, at=v.at, members_at=tuple(members_at))


def _nics(host: str, v: Val, site: Site) -> dict[str, Nic]:
    spec = _map(v, f"host {host} b2ct_nics")
    out: dict[str, Nic] = {}
    tagged_at: dict[str, str] = {}
    for net in spec:
        at = where(spec, net) or v.at
        if net not in site.networks:
            _fail(
                f"host {host}: missing network {net!r}: not defined in b2ct_networks"
                f"{_suggest(str(net), list(site.networks))}",
                at,
            )
        nic = _map(Val(spec[net], at), f"host {host} b2ct_nics.{net}", ("mac", "ip", "bond", "via", "tagged"))
        given = [k for k in ("mac", "bond", "via") if k in nic]
        if not given:
            _fail(
                f"host {host}: b2ct_nics.{net} needs a mac",
                at,
                hint="or a bond (mode, members) of NICs, or `via: private` to ride tagged on the link of "
                "another of the host's networks",
            )
        if len(given) > 1:
            _fail(
                f"host {host}: b2ct_nics.{net} gives both {given[0]} and {given[1]}: a network is on one "
                "NIC, one bond, or tagged on another network's link",
                where(nic, given[1]) or at,
            )
        mac, mac_at, bond, via = "", at, None, None
        if "mac" in nic:
            mv = _child(nic, "mac", at)
            mac, mac_at = _mac(host, mv), mv.at
        if "bond" in nic:
            bond = _bond(host, str(net), _child(nic, "bond", at))
            mac_at = bond.at
        if "via" in nic:
            vv = _child(nic, "via", at)
            via = _str(vv, f"host {host} b2ct_nics.{net}.via")
            mac_at = vv.at
        if nic.get("tagged") is not None:
            tv = _child(nic, "tagged", at)
            if _bool(f"host {host} b2ct_nics.{net}.tagged")(tv):
                tagged_at[str(net)] = tv.at
            elif via is not None:
                _fail(
                    f"host {host}: b2ct_nics.{net} rides on {via}'s link, so it is tagged",
                    tv.at,
                    hint="drop tagged: false, or give the network a NIC of its own",
                )
        ip = None
        ip_at = where(nic, "ip") or at
        if "ip" in nic:
            iv = _child(nic, "ip", at)
            text = _str(iv, f"host {host} b2ct_nics.{net}.ip")
            if text.lower() != "dhcp":
                ip = _ip(iv, f"host {host} b2ct_nics.{net}.ip")
                network = site.networks[str(net)]
                if ip not in network.subnet:
                    _fail(f"host {host}: IP {ip} is outside the {net} subnet {network.subnet}", iv.at)
                problem = meaning.address_problem(ip, network.subnet)
                if problem:
                    first, last = meaning.usable(network.subnet)
                    _fail(f"host {host}: IP {ip} {problem}", iv.at, hint=f"one of {first}–{last}")
                if network.gateway is not None and ip == network.gateway:
                    _fail(f"host {host}: IP {ip} is the {net} gateway", iv.at)
        out[str(net)] = Nic(str(net), mac, ip, mac_at=mac_at, ip_at=ip_at, bond=bond, via=via)
    if "private" not in out:
        _fail(f"host {host}: missing network 'private' in b2ct_nics", v.at)
    return _links(host, out, tagged_at, site)


def _links(host: str, nics: dict[str, Nic], tagged_at: dict[str, str], site: Site) -> dict[str, Nic]:
    """Bond names, `via` and tags checked for meaning across the host's networks; VLAN ids resolved."""
    bridges = {n.bridge: n.name for n in site.networks.values() if n.bridge}
    names: dict[str, str] = {}
    for nic in nics.values():
        if nic.bond is not None and nic.bond.name:
            name = nic.bond.name
            if name in names:
                _fail(f"host {host}: bond {name} is also the bond of network {names[name]}", nic.bond.at)
            if name in bridges:
                _fail(f"host {host}: bond name {name} is the bridge of network {bridges[name]}", nic.bond.at)
            names[name] = nic.network
    free = (f"bond{i}" for i in range(100) if f"bond{i}" not in names and f"bond{i}" not in bridges)
    named = dict(nics)
    for net in sorted(nics, key=NETWORK_NAMES.index):  # bonds numbered in a fixed order: bond0 first
        bond = nics[net].bond
        if bond is not None and not bond.name:
            named[net] = _replace(nics[net], bond=_replace(bond, name=next(free)))
    out: dict[str, Nic] = {}
    for net, nic in named.items():
        network = site.networks[net]
        vlan = None
        if nic.via is not None:
            carrier = named.get(nic.via)
            if carrier is None or nic.via == net:
                _fail(
                    f"host {host}: b2ct_nics.{net}.via {nic.via!r} is not another of this host's networks"
                    f"{_suggest(nic.via, [n for n in named if n != net])}",
                    nic.mac_at,
                    hint="name the network whose NIC or bond carries this one, e.g. via: private",
                )
            if carrier.via is not None:
                _fail(
                    f"host {host}: b2ct_nics.{net} rides on {nic.via}, which itself rides on {carrier.via}",
                    nic.mac_at,
                    hint=f"via: {carrier.via}",
                )
            if network.vlan is None:
                _fail(
                    f"host {host}: b2ct_nics.{net} shares the link of {nic.via}, "
                    f"but network {net} has no vlan",
                    nic.mac_at,
                    hint=f"give b2ct_networks.{net} a vlan id: networks on one link are told apart by their "
                    "802.1Q tags",
                )
            vlan = network.vlan
        elif net in tagged_at:
            if network.vlan is None:
                _fail(
                    f"host {host}: b2ct_nics.{net} is tagged, but network {net} has no vlan",
                    tagged_at[net],
                    hint=f"give b2ct_networks.{net} a vlan id",
                )
            vlan = network.vlan
        bond = (named[nic.via] if nic.via else nic).bond
        if vlan is not None and bond is not None and len(f"{bond.name}.{vlan}") > meaning.IFNAME_MAX:
            _fail(
                f"host {host}: the VLAN interface {bond.name}.{vlan} of network {net} would be longer "
                f"than {meaning.IFNAME_MAX} characters",
                bond.at,
                hint="give the bond a shorter name",
            )
        out[net] = _replace(nic, vlan=vlan)
    return out


def _check_unique(hosts: list[Host]) -> None:
    macs: dict[str, tuple[str, str]] = {}
    ips: dict[str, str] = {}
    serials: dict[str, str] = {}
    shorts: dict[str, str] = {}
    for h in hosts:
        if h.short_name in shorts:
            _fail(
                f"hosts {shorts[h.short_name]} and {h.name} have the same short name {h.short_name!r}: "
                "the installer's console and the OpenNebula host list could not tell them apart",
                h.where,
            )
        shorts[h.short_name] = h.name
        for nic in h.nics.values():
            ats = nic.bond.members_at if nic.bond is not None else (nic.mac_at,)
            for mac, at in zip(nic.macs, ats, strict=False):
                if mac in macs:
                    other, net = macs[mac]
                    if other == h.name:
                        _fail(
                            f"duplicate MAC {mac}: host {h.name} gives it for networks {net} "
                            f"and {nic.network}",
                            at or h.where,
                            hint=f"one NIC carries two networks with via: {net} and a vlan",
                        )
                    _fail(f"duplicate MAC {mac}: host {h.name} and host {other}", at or h.where)
                macs[mac] = (h.name, nic.network)
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


# The volume workers mount (b2ct/opennebula/plan.py IMAGE_VOLUME, playbooks/gluster.yml).
IMAGE_VOLUME = "one-images"


def _check_storage(site: Site, hosts: list[Host], volumes: tuple[GlusterVolume, ...]) -> None:
    """With a storage network, GlusterFS runs over it (playbooks/gluster.yml): every brick host needs a
    static address there, and every host that mounts a volume needs to reach those addresses."""
    storage = site.networks.get("storage")
    if storage is None or not volumes:
        return
    by_name = {h.name: h for h in hosts}
    brick_hosts = {b.host: vol.name for vol in volumes for b in vol.bricks}
    for name, vol in brick_hosts.items():
        h = by_name[name]
        nic = h.nics.get("storage")
        if nic is None:
            _fail(
                f"host {name} holds bricks of volume {vol} but has no storage NIC: with a storage network, "
                "GlusterFS peers talk over it",
                h.origins.get("b2ct_nics", h.where),
                hint="add b2ct_nics.storage, e.g. {via: private, ip: …} for a VLAN on the private link",
            )
        if nic.ip is None:
            _fail(
                f"host {name}: GlusterFS knows its peers by their storage address: give b2ct_nics.storage "
                "a static ip, not dhcp",
                nic.ip_at or h.where,
            )
    if storage.gateway is not None:
        return  # routed: hosts without a storage NIC reach it through the gateway
    images = any(vol.name == IMAGE_VOLUME for vol in volumes)
    for h in hosts:
        mounts = h.klass == "service" or images
        if mounts and "storage" not in h.nics:
            what = "the GlusterFS volumes" if h.klass == "service" else f"volume {IMAGE_VOLUME}"
            _fail(
                f"host {h.name} mounts {what} but has no storage NIC, and the storage network "
                f"{storage.subnet} has no gateway to reach it through",
                h.origins.get("b2ct_nics", h.where),
                hint="add b2ct_nics.storage, or give b2ct_networks.storage a gateway",
            )


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
        if not net.bridged:
            _fail(
                f"{prefix}: network {net.name} has no bridge: virtual machines cannot attach to it",
                vnet.at,
                hint="vnets go on the bridged networks: "
                + ", ".join(n for n in site.networks if n != net.name),
            )
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
