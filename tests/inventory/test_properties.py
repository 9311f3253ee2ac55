"""Properties over generated inventories (issue 14, "Must show"): every valid inventory loads and every
kickstart b2ct writes for it validates with pykickstart; one invalid value of each kind in issue 14 A,
put into a valid inventory, is refused at load, at the file that holds it."""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b2ct.errors import B2ctError
from b2ct.inventory import load
from b2ct.kickstart import render

HASHES = [
    "$6$b2ctexamplesalt$XqQLWNPnTtuSJV0xem0Xew6jgIKJPhfvSEDxeWMskgz0WdpE142UG.grBwOuRNXy9hZn4Cl4GgqG0BjUClYqI/",
    "$5$p/GBr2yaBEcVPGtX$AcNnBFmkdoplF5CeDLzhubV5Bkx7AGl.c5CPEWLaKj3",
    "$1$WV2EGT8W$5DOwfDYXqgdfC1n70h9Bo/",
    "$y$j9T$abcdefghijklmnop$wRwvHNqzMkHLG74uLLCRVTwaZ.a1aIothEUeYGf9oED",
    "$2b$12$gut4BDPvbMd5XzXiYoo04utZkO4g6401o5E.9dIfGmXvHd2VE6R46",
]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHweObhqHHrsbfiMspkUFfg8HNRysficbLwwF62TybM0 admin@site"
ZONES = ["UTC", "Europe/Rome", "America/New_York", "Asia/Tokyo", "Etc/GMT+5", "Australia/Lord_Howe"]
DISKS = ["sda", "vdb", "nvme0n1", "/dev/sdb", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "mmcblk0", "xvda"]
RELEASES = ["el6", "el8", "el9", "el10"]

octal = st.from_regex(r"0[0-7]{3,8}", fullmatch=True)
label = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
# serials as sites write them, including ones YAML 1.1 would turn into numbers when unquoted
serial = st.one_of(
    st.from_regex(r"[A-Z0-9]{4,12}", fullmatch=True), st.from_regex(r"0[0-7]{3,8}", fullmatch=True)
)


@st.composite
def unicast_mac(draw: Any) -> str:
    octets = [draw(st.integers(0, 255)) for _ in range(6)]
    octets[0] &= 0xFE  # unicast
    if not any(octets):
        octets[5] = 1
    return ":".join(f"{o:02x}" for o in octets)


@st.composite
def sites(draw: Any) -> dict[str, Any]:
    prefix = draw(st.integers(16, 28))
    private = ipaddress.IPv4Network(f"10.{draw(st.integers(0, 255))}.0.0/{prefix}", strict=False)
    public = ipaddress.IPv4Network("192.0.2.0/24")
    usable = list(private.hosts())
    n_services = draw(st.integers(1, 3))
    n_workers = draw(st.integers(1, 4))
    names = draw(
        st.lists(label, min_size=n_services + n_workers, max_size=n_services + n_workers, unique=True)
    )
    fqdn = draw(st.booleans())
    macs = draw(st.lists(unicast_mac(), min_size=2 * len(names), max_size=2 * len(names), unique=True))
    addresses = draw(
        st.lists(st.sampled_from(usable[1:]), min_size=len(names), max_size=len(names), unique=True)
    )
    serials = draw(st.lists(serial, min_size=len(names), max_size=len(names), unique=True))
    hosts: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        host = f"{name}.site.example.org" if fqdn else name
        nics: dict[str, Any] = {"private": {"mac": macs[2 * i], "ip": str(addresses[i])}}
        if draw(st.booleans()):
            nics["private"]["ip"] = "dhcp"
        entry: dict[str, Any] = {"b2ct_nics": nics, "b2ct_install_disk": draw(st.sampled_from(DISKS))}
        if draw(st.booleans()):
            entry["b2ct_serial"] = serials[i]
        if i < n_services:
            nics["public"] = {"mac": macs[2 * i + 1], "ip": str(public.network_address + 10 + i)}
        hosts[host] = entry
    services = dict(list(hosts.items())[:n_services])
    workers = dict(list(hosts.items())[n_services:])
    site_vars = {
        "b2ct_site": "prop",
        "b2ct_os_release": draw(st.sampled_from(RELEASES)),
        "b2ct_repos": {"baseos": "http://mirror.example.org/os/"},
        "b2ct_networks": {
            "private": {"subnet": str(private), "gateway": str(usable[0]), "dns": [str(usable[0])]},
            "public": {"subnet": str(public), "gateway": "192.0.2.1"},
        },
        "b2ct_root_password_hash": draw(st.sampled_from(HASHES)),
        "b2ct_ssh_keys": [KEY],
        "b2ct_timezone": draw(st.sampled_from(ZONES)),
        "b2ct_keyboard": draw(st.sampled_from(["us", "it", "de-latin1", "no"])),  # "no": Norway, quoted
    }
    return {
        "all": {
            "children": {
                "frontend": {"hosts": {next(iter(services)): None}},
                "service": {"hosts": services},
                "worker": {"hosts": workers},
            }
        },
        "_vars": site_vars,
    }


def write(site: dict[str, Any], root: Path) -> Path:
    """hosts.yml and group_vars/all.yml as yaml.safe_dump writes them (it quotes what YAML 1.1 would
    otherwise convert, as a careful site admin does)."""
    site = dict(site)
    site_vars = site.pop("_vars")
    (root / "group_vars").mkdir(parents=True)
    (root / "hosts.yml").write_text(yaml.safe_dump(site, sort_keys=False))
    (root / "group_vars" / "all.yml").write_text(yaml.safe_dump(site_vars, sort_keys=False))
    return root


SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(site=sites())
def test_valid_inventories_load_and_every_kickstart_validates(site: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = load(write(site, Path(tmp) / "site"))
        rendered = render(model)  # raises B2ctError if pykickstart rejects any file
        assert len(rendered.files) == len(model.hosts) + 1
        for host in model.hosts:
            text = rendered.files[f"ks/{host.name}.cfg"]
            assert f"--hostname={host.name}" in text
            disk = host.install_disk
            assert f"--drives={disk.removeprefix('/dev/') if disk.count('/') <= 2 else disk}" in text


def _first_worker(site: dict[str, Any]) -> dict[str, Any]:
    return next(iter(site["all"]["children"]["worker"]["hosts"].values()))


# One invalid value of each kind issue 14 A lists: (kind, how to put it into a generated site)
def _multicast_mac(site: dict[str, Any], data: Any) -> str:
    mac = data.draw(unicast_mac())
    first = int(mac[:2], 16) | 1
    _first_worker(site)["b2ct_nics"]["private"]["mac"] = f"{first:02x}{mac[2:]}"
    return "hosts.yml"


def _gateway_not_a_host(site: dict[str, Any], data: Any) -> str:
    net = ipaddress.IPv4Network(site["_vars"]["b2ct_networks"]["private"]["subnet"])
    bad = data.draw(st.sampled_from([net.network_address, net.broadcast_address, net.broadcast_address + 1]))
    site["_vars"]["b2ct_networks"]["private"]["gateway"] = str(bad)
    return "group_vars/all.yml"


def _partition_as_install_disk(site: dict[str, Any], data: Any) -> str:
    part = data.draw(
        st.sampled_from(["sda1", "/dev/vdb2", "nvme0n1p1", "mmcblk0p3", "/dev/disk/by-id/x-part1"])
    )
    _first_worker(site)["b2ct_install_disk"] = part
    return "hosts.yml"


def _broken_hash(site: dict[str, Any], data: Any) -> str:
    good = data.draw(st.sampled_from(HASHES))
    cut = data.draw(st.integers(1, 20))
    site["_vars"]["b2ct_root_password_hash"] = good[:-cut] if data.draw(st.booleans()) else good + "A" * cut
    return "group_vars/all.yml"


KINDS = {
    "multicast-mac": _multicast_mac,
    "gateway-not-a-host": _gateway_not_a_host,
    "partition-install-disk": _partition_as_install_disk,
    "broken-crypt-hash": _broken_hash,
}


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(site=sites(), data=st.data())
def test_one_invalid_value_is_refused_at_load(kind: str, site: dict[str, Any], data: Any) -> None:
    path = KINDS[kind](site, data)
    with tempfile.TemporaryDirectory() as tmp:
        root = write(site, Path(tmp) / "site")
        with pytest.raises(B2ctError) as info:
            load(root)
        assert f"{path}:" in info.value.oneline(), info.value.oneline()


@SETTINGS
@given(
    site=sites(),
    text=st.one_of(octal, st.sampled_from(["1:20", "12.50", "0x1F", "yes", "off", "on", "no"])),
)
def test_yaml_1_1_conversion_of_a_text_value_is_refused(site: dict[str, Any], text: str) -> None:
    """A serial written unquoted that YAML 1.1 reads as a number or boolean: refused, quoting the text."""
    _first_worker(site)["b2ct_serial"] = "SERIAL-PLACEHOLDER"
    with tempfile.TemporaryDirectory() as tmp:
        root = write(site, Path(tmp) / "site")
        hosts = root / "hosts.yml"
        hosts.write_text(hosts.read_text().replace("SERIAL-PLACEHOLDER", text))
        with pytest.raises(B2ctError) as info:
            load(root)
        message = info.value.oneline()
        assert "hosts.yml:" in message and repr(text) in message and "quote it" in message, message
