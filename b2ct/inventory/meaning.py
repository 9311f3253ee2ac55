"""What inventory values mean, beyond their form: each function returns what is wrong (or None) and, where
one exists, the value the user most likely meant.

Sources of the facts are given per function: IEEE 802 for MAC addresses, IEEE 802.1Q for VLAN ids, the
kernel's bonding documentation for bond modes, RFC 3021 for /31 links, libxcrypt's crypt(5) for password
hash formats, the IANA tz database for time zones.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import zoneinfo
from functools import cache

# ------------------------------------------------------------------------------------------------ MAC


def mac_problem(mac: str) -> str | None:
    """Why ``mac`` (six colon-separated hex pairs, lower case) cannot be a NIC's address, or None.

    IEEE 802: the least significant bit of the first octet marks a group (multicast) address, which no
    NIC carries as its own; ff:ff:ff:ff:ff:ff is the broadcast address; 00:00:00:00:00:00 is unset.
    """
    octets = [int(x, 16) for x in mac.split(":")]
    if all(o == 0xFF for o in octets):
        return "is the broadcast address"
    if not any(octets):
        return "is all zeros (no address)"
    if octets[0] & 1:
        return "is a multicast address (the first octet is odd), not a NIC's own"
    return None


# ------------------------------------------------------------------------------------- VLANs and bonds


def vlan_problem(vid: int) -> str | None:
    """Why ``vid`` cannot be a network's VLAN id, or None.

    IEEE 802.1Q: the id is 12 bits; 0 marks a priority-tagged frame of no VLAN and 4095 is reserved, so
    networks use 1-4094.
    """
    if vid == 0:
        return "is 0, which marks priority-tagged frames of no VLAN (IEEE 802.1Q)"
    if vid == 4095:
        return "is 4095, reserved by IEEE 802.1Q"
    if not 1 <= vid <= 4094:
        return "is outside the 802.1Q range 1-4094"
    return None


# The Linux bonding driver's modes, by number and name (Documentation/networking/bonding.rst, "mode").
BOND_MODES = (
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
)


def bond_mode(value: str) -> str | None:
    """The bonding driver's name of mode ``value`` (a name, or its number 0-6 as in ``mode=6``), or None
    when the driver has no such mode (Documentation/networking/bonding.rst)."""
    text = value.strip().lower()
    if text.isdigit() and int(text) < len(BOND_MODES):
        return BOND_MODES[int(text)]
    return text if text in BOND_MODES else None


# Linux interface names: IFNAMSIZ is 16 bytes with the terminating NUL (include/uapi/linux/if.h).
IFNAME_MAX = 15


# -------------------------------------------------------------------------------------------- network


def subnet_problem(subnet: ipaddress.IPv4Network) -> str | None:
    """Why ``subnet`` cannot be a site network, or None."""
    for test, what in (
        (subnet.is_multicast, "multicast"),
        (subnet.is_loopback, "loopback"),
        (subnet.is_unspecified, "unspecified (0.0.0.0)"),
        (subnet.is_link_local, "link-local"),
        (subnet.network_address in ipaddress.IPv4Network("240.0.0.0/4"), "reserved (240.0.0.0/4)"),
    ):
        if test:
            return f"is a {what} range"
    if subnet.prefixlen > 30 and subnet.prefixlen != 31:
        return "has no room for hosts (a /32)"
    return None


def usable(subnet: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """First and last host address: all but the network and broadcast addresses, both on a /31 (RFC 3021)."""
    if subnet.prefixlen >= 31:
        return subnet.network_address, subnet.broadcast_address
    return subnet.network_address + 1, subnet.broadcast_address - 1


def address_problem(ip: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network) -> str | None:
    """Why ``ip`` cannot be a host or gateway address in ``subnet``, or None."""
    if ip not in subnet:
        return f"is outside subnet {subnet}"
    first, last = usable(subnet)
    if ip == subnet.network_address and ip < first:
        return f"is the network address of {subnet}"
    if ip == subnet.broadcast_address and ip > last:
        return f"is the broadcast address of {subnet}"
    return None


def dns_problem(ip: ipaddress.IPv4Address) -> str | None:
    """Why ``ip`` cannot be a name server the installer and the hosts query, or None."""
    if ip.is_unspecified:
        return "is the unspecified address 0.0.0.0"
    if ip.is_multicast:
        return "is a multicast address"
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "is the broadcast address"
    if ip.is_loopback:
        return "is a loopback address (nothing answers there during the installation)"
    return None


# ------------------------------------------------------------------------------------------------ disks

# Partitions as the kernel names them: a digit after sd/vd/hd/xvd disks, pN after names ending in a digit
# (nvme0n1p1, mmcblk0p1), -partN for udev's by-id/by-path links.
_PARTITION = (
    (re.compile(r"^((?:s|v|h|xv)d[a-z]+)\d+$"), 1),
    (re.compile(r"^((?:nvme\d+n\d+|mmcblk\d+|md\d+|nbd\d+|rbd\d+|cciss/c\d+d\d+))p\d+$"), 1),
    (re.compile(r"^(disk/by-(?:id|path)/.+)-part\d+$"), 1),
)
# udev links that name a filesystem or a partition, never a whole disk
_NOT_A_DISK = re.compile(r"^disk/by-(uuid|label|partuuid|partlabel)/")
# devices that hold no data of ours: optical drives, RAM and floppy devices
_NOT_STORAGE = re.compile(r"^(sr\d+|scd\d+|ram\d+|zram\d+|fd\d+)$")


def disk_problem(disk: str, whole: bool) -> tuple[str, str | None] | None:
    """Why ``disk`` cannot be used, and the disk meant if it can be derived; None when it is fine.

    ``whole``: the value must be a whole disk (the install disk: anaconda's clearpart --drives and
    bootloader --boot-drive take disks). Brick and ephemeral devices may be partitions: the roles make a
    filesystem on the device as given.
    """
    name = disk.removeprefix("/dev/")
    if _NOT_STORAGE.match(name):
        return f"{disk!r} is not a disk (optical, RAM or floppy device)", None
    if not whole:
        return None
    if name.startswith("loop"):
        return f"{disk!r} is a loop device: the installer cannot install on it", None
    if _NOT_A_DISK.match(name):
        return f"{disk!r} names a filesystem or a partition, not a disk", None
    if name.startswith("dm-"):
        return f"{disk!r} is a device-mapper device, not a disk", None
    for pattern, group in _PARTITION:
        m = pattern.match(name)
        if m:
            base = m.group(group)
            return f"{disk!r} is a partition, not a disk", (
                "/dev/" + base if disk.startswith("/dev/") else base
            )
    return None


# ---------------------------------------------------------------------------------------- crypt hashes

_B64 = "[./0-9A-Za-z]"
# (prefix, scheme name, pattern of what follows the prefix, length of the hash part) from libxcrypt's
# crypt(5): md5crypt 22, sha256crypt 43, sha512crypt 86 characters; bcrypt cost 04-31, 22 + 31
# characters; yescrypt $y$ parameters $ salt $ 43 characters.
_SHA = r"^(rounds=(?P<rounds>\d+)\$)?(?P<salt>[^$:\n]{1,16})\$(?P<hash>[^$]*)$"
_BCRYPT = r"^(?P<cost>\d\d)\$(?P<hash>.*)$"
_SCHEMES = (
    ("$1$", "MD5 crypt", re.compile(rf"^(?P<salt>{_B64}{{1,8}})\$(?P<hash>[^$]*)$"), 22),
    ("$5$", "SHA-256 crypt", re.compile(_SHA), 43),
    ("$6$", "SHA-512 crypt", re.compile(_SHA), 86),
    ("$y$", "yescrypt", re.compile(rf"^{_B64}+\$(?P<salt>{_B64}+)\$(?P<hash>[^$]*)$"), 43),
    ("$2b$", "bcrypt", re.compile(_BCRYPT), 53),
    ("$2a$", "bcrypt", re.compile(_BCRYPT), 53),
    ("$2y$", "bcrypt", re.compile(_BCRYPT), 53),
)
SCHEME_PREFIXES = tuple(p for p, *_ in _SCHEMES)


def crypt_problem(value: str) -> str | None:
    """Why ``value`` is not a complete crypt(3) hash of a scheme the installers accept, or None."""
    for prefix, scheme, pattern, length in _SCHEMES:
        if not value.startswith(prefix):
            continue
        m = pattern.match(value[len(prefix) :])
        if not m:
            return f"is not a well-formed {scheme} hash ({prefix}…): expected {prefix}salt$hash"
        part = m.group("hash")
        if len(part) != length:
            cut = " (cut short?)" if len(part) < length else ""
            return f"{scheme} hash part has {len(part)} characters, expected {length}{cut}"
        if not re.fullmatch(f"{_B64}*", part):
            return f"{scheme} hash part has characters outside ./0-9A-Za-z"
        rounds = m.groupdict().get("rounds")
        if rounds is not None and not 1000 <= int(rounds) <= 999_999_999:
            return f"{scheme} rounds={rounds} is outside 1000-999999999"
        cost = m.groupdict().get("cost")
        if cost is not None and not 4 <= int(cost) <= 31:
            return f"bcrypt cost {cost} is outside 04-31"
        return None
    return "does not look like a crypt hash: plaintext passwords are refused"


# -------------------------------------------------------------------------------------------- time zone


@cache
def time_zones() -> frozenset[str]:
    """Zone names of the IANA tz database on this machine (zoneinfo: system tzdata, else the tzdata
    package), without the posix/ and right/ copies and the non-zones."""
    names = zoneinfo.available_timezones()
    return frozenset(
        n for n in names if not n.startswith(("posix/", "right/")) and n not in ("Factory", "localtime")
    )


# ----------------------------------------------------------------------------------------------- ssh keys


def ssh_key_problem(line: str) -> str | None:
    """Why ``line`` (type, base64 blob, comment) is not a usable OpenSSH public key, or None.

    The blob is decoded and loaded with the cryptography library (an ansible-core dependency), so a key cut
    short or pasted with the wrong type is caught, not only a malformed line.
    """
    parts = line.split(None, 2)
    if len(parts) < 2:
        return "is not an OpenSSH public key line (type, key, comment)"
    kind, blob = parts[0], parts[1]
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError:
        return "has a key part that is not base64"
    if len(raw) < 4 or raw[4 : 4 + int.from_bytes(raw[:4], "big")].decode("ascii", "replace") != kind:
        return f"says {kind} but the key inside is of another type"
    if kind.startswith("sk-"):
        return None  # security-key types: the cryptography library does not load them
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    try:
        load_ssh_public_key(f"{kind} {blob}".encode())
    except (ValueError, TypeError) as exc:
        return f"is not a valid {kind} key ({exc})"
    except Exception as exc:  # UnsupportedAlgorithm: a type this cryptography cannot check
        if type(exc).__name__ == "UnsupportedAlgorithm":
            return None
        raise
    return None
