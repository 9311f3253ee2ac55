"""Values checked for what they mean, not only their form (issue 14 A, C): each bad value is refused at
load with one line naming the file:line that holds it and a hint, exit 2, and no kickstart written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from b2ct.inventory import meaning
from tests.conftest import assert_one_line_error, edit, run_cli

HOSTS = "hosts.yml"
ALL = "group_vars/all.yml"
HASH_HEAD = "$6$b2ctexamplesalt$"
HASH_TAIL = "XqQLWNPnTtuSJV0xem0Xew6jgIKJPhfvSEDxeWMskgz0WdpE142UG.grBwOuRNXy9hZn4Cl4GgqG0BjUClYqI/"
KEY_BLOB = "AAAAC3NzaC1lZDI1NTE5AAAAIHweObhqHHrsbfiMspkUFfg8HNRysficbLwwF62TybM0"


def _hash(value: str) -> tuple[str, str, str, str]:
    return (ALL, f'"{HASH_HEAD}{HASH_TAIL}"', f'"{value}"', "b2ct_root_password_hash")


# (id, file, old text, new text, fragments the error line must contain)
CASES = [
    # MAC addresses: multicast, broadcast, unset
    (
        "mac-multicast",
        HOSTS,
        '"52:54:00:10:00:22"',
        '"01:00:5e:10:00:22"',
        ["01:00:5e:10:00:22", "multicast"],
    ),
    ("mac-broadcast", HOSTS, '"52:54:00:10:00:22"', '"ff:ff:ff:ff:ff:ff"', ["broadcast"]),
    ("mac-zero", HOSTS, '"52:54:00:10:00:22"', '"00:00:00:00:00:00"', ["all zeros"]),
    # gateways and name servers
    ("gateway-network", ALL, "gateway: 10.10.0.1", "gateway: 10.10.0.0", ["10.10.0.0", "network address"]),
    ("gateway-broadcast", ALL, "gateway: 10.10.0.1", "gateway: 10.10.0.255", ["broadcast address"]),
    ("dns-unspecified", ALL, "dns: [10.10.0.1]", "dns: [0.0.0.0]", ["0.0.0.0", "unspecified"]),
    ("dns-loopback", ALL, "dns: [10.10.0.1]", "dns: [127.0.0.53]", ["loopback"]),
    ("subnet-multicast", ALL, "subnet: 192.0.2.0/24", "subnet: 224.0.2.0/24", ["multicast range"]),
    # host addresses
    ("ip-network", HOSTS, "ip: 10.10.0.22}", "ip: 10.10.0.0}", ["network address"]),
    # a partition (or a filesystem) given as the install disk
    ("install-sda1", HOSTS, "b2ct_install_disk: sda", "b2ct_install_disk: sda1", ["partition", "sda"]),
    ("install-nvme-p", HOSTS, "b2ct_install_disk: sda", "b2ct_install_disk: nvme0n1p2", ["nvme0n1"]),
    (
        "install-by-id-part",
        HOSTS,
        "b2ct_install_disk: sda",
        "b2ct_install_disk: /dev/disk/by-id/ata-ST1000-Z1D0-part1",
        ["partition", "/dev/disk/by-id/ata-ST1000-Z1D0"],
    ),
    (
        "install-by-uuid",
        HOSTS,
        "b2ct_install_disk: sda",
        "b2ct_install_disk: /dev/disk/by-uuid/0a1b2c3d",
        ["filesystem or a partition"],
    ),
    ("install-cdrom", HOSTS, "b2ct_install_disk: sda", "b2ct_install_disk: sr0", ["optical"]),
    # crypt hashes cut short or ill-formed, every scheme
    ("sha512-short", *_hash(HASH_HEAD + HASH_TAIL[:23])[:3], ["SHA-512", "23 characters, expected 86"]),
    ("sha512-long", *_hash(HASH_HEAD + HASH_TAIL + "x")[:3], ["87 characters"]),
    ("sha512-badchar", *_hash(HASH_HEAD + HASH_TAIL[:85] + "!")[:3], ["outside ./0-9A-Za-z"]),
    ("sha512-rounds", *_hash("$6$rounds=10$salt$" + HASH_TAIL)[:3], ["rounds=10"]),
    ("sha256-short", *_hash("$5$p/GBr2yaBEcVPGtX$AcNnBFmkdoplF5CeDLzhubV5Bkx7AGl")[:3], ["SHA-256", "43"]),
    ("md5-short", *_hash("$1$WV2EGT8W$5DOwfDYXqgdfC1n70h9B")[:3], ["MD5", "22"]),
    ("md5-no-hash", *_hash("$1$WV2EGT8W")[:3], ["MD5", "well-formed"]),
    ("yescrypt-short", *_hash("$y$j9T$abcdefghijklmnop$wRwvHNqzMkHLG74uLLC")[:3], ["yescrypt", "43"]),
    ("bcrypt-short", *_hash("$2b$12$gut4BDPvbMd5XzXiYoo04utZkO4g6401o5E")[:3], ["bcrypt", "53"]),
    (
        "bcrypt-cost",
        *_hash("$2b$99$gut4BDPvbMd5XzXiYoo04utZkO4g6401o5E.9dIfGmXvHd2VE6R46")[:3],
        ["cost 99"],
    ),
    # YAML 1.1 turning text into numbers and booleans
    (
        "serial-octal",
        HOSTS,
        "b2ct_serial: CZJ0001FE",
        "b2ct_serial: 0012345",
        ["'0012345'", "the number 5349", 'quote it: "0012345"'],
    ),
    ("serial-base60", HOSTS, "b2ct_serial: CZJ0001FE", "b2ct_serial: 1:20", ["'1:20'", "80"]),
    ("serial-float", HOSTS, "b2ct_serial: CZJ0001FE", "b2ct_serial: 12.50", ["'12.50'", "12.5"]),
    ("serial-hex", HOSTS, "b2ct_serial: CZJ0001FE", "b2ct_serial: 0x1F", ["'0x1F'", "31"]),
    ("serial-yes", HOSTS, "b2ct_serial: CZJ0001FE", "b2ct_serial: yes", ["'yes'", "boolean true"]),
    (
        "keyboard-no",
        ALL,
        "b2ct_timezone: Europe/Rome",
        "b2ct_timezone: Europe/Rome\nb2ct_keyboard: no",
        ["'no'", "false"],
    ),
    ("lang-off", ALL, "b2ct_timezone: Europe/Rome", "b2ct_timezone: Europe/Rome\nb2ct_lang: off", ["'off'"]),
    (
        "mac-base60",
        HOSTS,
        'mac: "52:54:00:10:00:22"',
        "mac: 52:54:00:10:00:22",
        ["'52:54:00:10:00:22'", "number"],
    ),
    (
        "one-version-float",
        ALL,
        'b2ct_opennebula_version: "6.10"',
        "b2ct_opennebula_version: 6.10",
        ["'6.10'", "6.1"],
    ),
    ("site-octal", ALL, "b2ct_site: torino-belle2", "b2ct_site: 0777", ["'0777'", "511"]),
    ("disk-on", HOSTS, "b2ct_install_disk: sda", "b2ct_install_disk: on", ["'on'", "boolean true"]),
    ("repo-key-bool", ALL, "  appstream:", "  yes:", ["key", "'yes'"]),
    # time zone, keyboard and language checked for what they are
    (
        "timezone-turin",
        ALL,
        "b2ct_timezone: Europe/Rome",
        "b2ct_timezone: Europe/Turin",
        ["Europe/Turin", "tz database"],
    ),
    (
        "keyboard-option",
        ALL,
        "b2ct_timezone: Europe/Rome",
        'b2ct_timezone: Europe/Rome\nb2ct_keyboard: "us --x"',
        ["us --x"],
    ),
    ("ansible-host-space", HOSTS, "ansible_host: 10.10.0.21", "ansible_host: 10.10.0.21 x", ["ansible_host"]),
    # ssh keys cut short: still base64, no longer a key
    ("ssh-key-short", ALL, KEY_BLOB, KEY_BLOB[:-4], ["b2ct_ssh_keys[0]", "ssh-ed25519"]),
    ("ssh-key-type", ALL, "- ssh-ed25519 AAAA", "- ssh-rsa AAAA", ["another type"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_value_refused_at_its_line(site_copy: Path, tmp_path: Path, case) -> None:
    _, rel, old, new, fragments = case
    line = edit(site_copy / rel, old, new)
    line += new.count("\n") if old.count("\n") == 0 and "\n" in new and not new.startswith(old) else 0
    out = tmp_path / "out"
    message = assert_one_line_error(run_cli("kickstart", "-i", site_copy, "-o", out), *fragments)
    m = re.search(rf"{re.escape(rel)}:(\d+): ", message)
    assert m, message
    assert line <= int(m.group(1)) <= line + new.count("\n"), (line, message)
    assert "(hint:" in message or "expected" in message or "did you mean" in message, message
    assert not out.exists()


def test_timezone_hint_proposes_a_real_zone(site_copy: Path) -> None:
    edit(site_copy / ALL, "b2ct_timezone: Europe/Rome", "b2ct_timezone: Europe/Rom")
    message = assert_one_line_error(run_cli("inventory", "check", "-i", site_copy), "Europe/Rom")
    assert "did you mean 'Europe/Rome'" in message


def test_fqdn_hosts_with_the_same_short_name_are_refused(site_copy: Path) -> None:
    text = (site_copy / HOSTS).read_text()
    text = text.replace("        wn01:", "        wn01.a.example.org:").replace(
        "        wn02:", "        wn01.b.example.org:"
    )
    (site_copy / HOSTS).write_text(text)
    assert_one_line_error(run_cli("inventory", "check", "-i", site_copy), "same short name 'wn01'")


def test_values_that_read_back_as_written_are_kept(site_copy: Path) -> None:
    """A number YAML reads back exactly as written is no conversion: a serial 12345 stays '12345'."""
    from b2ct.inventory import load

    edit(site_copy / HOSTS, "b2ct_serial: CZJ0001FE", "b2ct_serial: 12345")
    edit(site_copy / ALL, "b2ct_timezone: Europe/Rome", "b2ct_timezone: Europe/Rome\nb2ct_keyboard: it")
    site = load(site_copy)
    assert site.host("one-fe").serial == "12345"
    assert site.keyboard == "it"


# -------------------------------------------------------------------------------- the checks themselves


def test_real_hashes_of_every_scheme_pass() -> None:
    """Hashes made by the real tools pass; the same hashes cut by one character do not."""
    made = [
        subprocess.run(
            ["openssl", "passwd", f"-{n}", "pw"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for n in (1, 5, 6)
    ]
    made += [
        # made with this machine's libxcrypt (crypt(3)); fixed here since Python 3.13 has no crypt module
        "$y$j9T$abcdefghijklmnop$wRwvHNqzMkHLG74uLLCRVTwaZ.a1aIothEUeYGf9oED",
        "$2b$12$gut4BDPvbMd5XzXiYoo04utZkO4g6401o5E.9dIfGmXvHd2VE6R46",
        "$6$rounds=5000$b2ctexamplesalt$" + HASH_TAIL,
    ]
    for good in made:
        assert meaning.crypt_problem(good) is None, good
        assert meaning.crypt_problem(good[:-1]) is not None, good


@pytest.mark.parametrize(
    ("mac", "bad"),
    [
        ("52:54:00:12:34:56", False),
        ("00:1b:21:0a:0b:0c", False),
        ("33:33:00:00:00:01", True),
        ("01:80:c2:00:00:00", True),
    ],
)
def test_mac_group_bit(mac: str, bad: bool) -> None:
    assert (meaning.mac_problem(mac) is not None) is bad


def test_point_to_point_subnet_uses_both_addresses() -> None:
    import ipaddress

    net = ipaddress.IPv4Network("10.0.0.0/31")
    assert meaning.address_problem(ipaddress.IPv4Address("10.0.0.0"), net) is None  # RFC 3021
    assert meaning.address_problem(ipaddress.IPv4Address("10.0.0.1"), net) is None
