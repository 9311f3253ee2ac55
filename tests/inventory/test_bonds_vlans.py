"""Bonded NICs and VLAN networks in the inventory (issue 16, item 3): inventory/bonded (laid out like the
Naples cloud) loads into bonds, VLAN ids and `via` links; each value that cannot work is refused with one
line naming the file:line that holds it, exit 2, nothing written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from b2ct.inventory import load, meaning
from tests.conftest import REPO, assert_one_line_error, edit, run_cli

BONDED = REPO / "inventory" / "bonded"
HOSTS = "hosts.yml"
ALL = "group_vars/all.yml"
SVC1_BOND = 'bond: {mode: balance-alb, members: ["52:54:00:10:00:11", "52:54:00:11:00:11"]}'


@pytest.fixture
def bonded_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "site"
    shutil.copytree(BONDED, dest)
    return dest


def test_bonded_site_loads_into_bonds_vlans_and_links() -> None:
    site = load(BONDED)
    storage = site.networks["storage"]
    assert (storage.vlan, storage.bridge, storage.bridged) == (20, "", False)
    assert site.networks["private"].bridged and site.networks["private"].vlan is None
    svc1 = site.host("svc1")
    bond = svc1.nics["private"].bond
    assert bond is not None
    assert (bond.name, bond.mode, bond.members, bond.miimon) == (
        "bond0",
        "balance-alb",
        ("52:54:00:10:00:11", "52:54:00:11:00:11"),
        100,
    )
    assert svc1.nics["private"].vlan is None  # the bond's own network is untagged
    assert (svc1.nics["storage"].via, svc1.nics["storage"].vlan) == ("private", 20)
    assert svc1.carrier(svc1.nics["storage"]) is svc1.nics["private"]
    # every member MAC identifies the machine
    assert {"52:54:00:10:00:11", "52:54:00:11:00:11", "52:54:00:20:00:11"} == set(svc1.macs)
    wn01 = site.host("wn01").nics["private"].bond
    assert wn01 is not None and (wn01.mode, wn01.miimon) == ("balance-alb", 200)  # mode: 6 is balance-alb
    wn02 = site.host("wn02").nics["storage"]
    assert (wn02.mac, wn02.vlan, wn02.via) == ("52:54:00:30:00:22", 20, None)  # its own trunk port


def test_bond_names_follow_the_networks_and_skip_given_ones(bonded_copy: Path) -> None:
    edit(
        bonded_copy / HOSTS,
        '            public: {mac: "52:54:00:20:00:11", ip: 192.0.2.11}',
        '            public:\n              bond: {mode: active-backup, members: ["52:54:00:20:00:11"]}\n'
        "              ip: 192.0.2.11",
    )
    edit(bonded_copy / HOSTS, SVC1_BOND, SVC1_BOND.replace("{mode:", "{name: bond1, mode:"))
    svc1 = load(bonded_copy).host("svc1")
    assert svc1.nics["private"].bond.name == "bond1"  # type: ignore[union-attr]
    assert svc1.nics["public"].bond.name == "bond0"  # type: ignore[union-attr]


def test_bond_modes_by_name_and_number() -> None:
    """bonding.rst numbers the modes 0-6; both forms name the same mode."""
    for number, name in enumerate(meaning.BOND_MODES):
        assert meaning.bond_mode(str(number)) == name
        assert meaning.bond_mode(name.upper()) == name
    assert meaning.bond_mode("7") is None
    assert meaning.bond_mode("lacp") is None


# (id, file, old text, new text, fragments the error line must contain)
CASES = [
    ("vlan-zero", ALL, "vlan: 20", "vlan: 0", ["vlan 0", "priority-tagged"]),
    ("vlan-4095", ALL, "vlan: 20", "vlan: 4095", ["4095", "reserved"]),
    ("vlan-too-big", ALL, "vlan: 20", "vlan: 5000", ["5000", "1-4094"]),
    ("vlan-text", ALL, "vlan: 20", "vlan: twenty", ["vlan must be a whole number"]),
    (
        "storage-bridge",
        ALL,
        "    vlan: 20\n",
        "    vlan: 20\n    bridge: br-storage\n",
        ["storage network has no bridge"],
    ),
    (
        "bond-mode-unknown",
        HOSTS,
        SVC1_BOND,
        SVC1_BOND.replace("balance-alb", "balance-abl"),
        ["'balance-abl' is not a mode", "did you mean 'balance-alb'"],
    ),
    ("bond-mode-number", HOSTS, SVC1_BOND, SVC1_BOND.replace("balance-alb", "9"), ["'9' is not a mode"]),
    ("bond-no-mode", HOSTS, SVC1_BOND, SVC1_BOND.replace("mode: balance-alb, ", ""), ["missing mode"]),
    ("bond-no-members", HOSTS, SVC1_BOND, "bond: {mode: balance-alb}", ["missing members"]),
    ("bond-empty", HOSTS, SVC1_BOND, "bond: {mode: balance-alb, members: []}", ["members is empty"]),
    (
        "bond-member-twice",
        HOSTS,
        SVC1_BOND,
        SVC1_BOND.replace("52:54:00:11:00:11", "52:54:00:10:00:11"),
        ["lists 52:54:00:10:00:11 twice"],
    ),
    (
        "bond-member-multicast",
        HOSTS,
        SVC1_BOND,
        SVC1_BOND.replace("52:54:00:11:00:11", "01:00:5e:11:00:11"),
        ["multicast"],
    ),
    (
        "bond-member-of-another-host",
        HOSTS,
        SVC1_BOND,
        SVC1_BOND.replace("52:54:00:11:00:11", "52:54:00:11:00:10"),
        ["duplicate MAC 52:54:00:11:00:10", "one-fe"],
    ),
    (
        "bond-member-is-a-nic",
        HOSTS,
        SVC1_BOND,
        SVC1_BOND.replace("52:54:00:11:00:11", "52:54:00:20:00:11"),
        ["duplicate MAC 52:54:00:20:00:11", "svc1 gives it for networks private and public"],
    ),
    (
        "bond-miimon-zero",
        HOSTS,
        SVC1_BOND,
        SVC1_BOND.replace("}", ", miimon: 0}"),
        ["miimon 0 turns link monitoring off"],
    ),
    ("bond-unknown-key", HOSTS, SVC1_BOND, SVC1_BOND.replace("mode:", "mdoe:"), ["unknown key 'mdoe'"]),
    (
        "bond-name-is-a-bridge",
        HOSTS,
        SVC1_BOND,
        SVC1_BOND.replace("{mode:", "{name: br-public, mode:"),
        ["bond name br-public is the bridge of network public"],
    ),
    (
        "bond-name-long-for-vlan",
        HOSTS,
        SVC1_BOND,
        SVC1_BOND.replace("{mode:", "{name: bondprivate01, mode:"),
        ["bondprivate01.20", "longer than 15"],
    ),
    (
        "mac-and-bond",
        HOSTS,
        SVC1_BOND,
        SVC1_BOND + '\n              mac: "52:54:00:99:00:11"',
        ["gives both mac and bond"],
    ),
    (
        "via-unknown",
        HOSTS,
        "storage: {via: private, ip: 10.20.0.11}",
        "storage: {via: privat, ip: 10.20.0.11}",
        ["via 'privat' is not another of this host's networks", "did you mean 'private'"],
    ),
    (
        "via-itself",
        HOSTS,
        "storage: {via: private, ip: 10.20.0.11}",
        "storage: {via: storage, ip: 10.20.0.11}",
        ["via 'storage'"],
    ),
    (
        "via-tagged-false",
        HOSTS,
        "storage: {via: private, ip: 10.20.0.11}",
        "storage: {via: private, tagged: false, ip: 10.20.0.11}",
        ["rides on private's link, so it is tagged"],
    ),
    (
        "via-chain",
        HOSTS,
        '            public: {mac: "52:54:00:20:00:11", ip: 192.0.2.11}',
        "            public: {via: storage, ip: 192.0.2.11}",
        ["rides on storage, which itself rides on private"],
    ),
    (
        "brick-host-without-storage",
        HOSTS,
        "            storage: {via: private, ip: 10.20.0.12}\n",
        "",
        ["svc2 holds bricks", "no storage NIC"],
    ),
    (
        "brick-host-storage-dhcp",
        HOSTS,
        "storage: {via: private, ip: 10.20.0.12}",
        "storage: {via: private, ip: dhcp}",
        ["static ip"],
    ),
    (
        "client-without-storage",
        HOSTS,
        "            storage: {via: private, ip: 10.20.0.21}\n",
        "",
        ["wn01 mounts volume one-images", "no gateway"],
    ),
    (
        "storage-vnet",
        ALL,
        'b2ct_opennebula_version: "6.10"',
        'b2ct_opennebula_version: "6.10"\nb2ct_opennebula_vnets:\n  san: {network: storage}',
        ["network storage has no bridge", "virtual machines cannot attach"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_value_refused_at_its_line(bonded_copy: Path, tmp_path: Path, case) -> None:
    _, rel, old, new, fragments = case
    line = edit(bonded_copy / rel, old, new)
    out = tmp_path / "out"
    message = assert_one_line_error(run_cli("kickstart", "-i", bonded_copy, "-o", out), *fragments)
    m = re.search(rf"{re.escape(rel)}:(\d+): ", message)
    assert m, message
    # the line of the edit, the host's b2ct_nics above it (host-wide findings), or a MAC's second use
    assert line - 8 <= int(m.group(1)) <= line + new.count("\n") + 2, (line, message)
    assert not out.exists()


def test_routed_storage_network_lets_hosts_without_a_storage_nic_mount(bonded_copy: Path) -> None:
    """A storage network with a gateway is routed: a worker without a storage NIC reaches it through it."""
    edit(bonded_copy / HOSTS, "            storage: {via: private, ip: 10.20.0.21}\n", "")
    edit(bonded_copy / ALL, "    vlan: 20\n", "    vlan: 20\n    gateway: 10.20.0.1\n")
    assert "storage" not in load(bonded_copy).host("wn01").nics


def test_tagged_own_port_needs_a_vlan(bonded_copy: Path) -> None:
    edit(bonded_copy / ALL, "    vlan: 20\n", "")
    # svc hosts ride on private (refused first); make them plain so wn02's trunk port is what is checked
    text = (bonded_copy / HOSTS).read_text()
    for n in ("10", "11", "12", "21"):
        text = text.replace(
            f"storage: {{via: private, ip: 10.20.0.{n}}}",
            f'storage: {{mac: "52:54:00:30:00:{n}", ip: 10.20.0.{n}}}',
        )
    (bonded_copy / HOSTS).write_text(text)
    assert_one_line_error(
        run_cli("inventory", "check", "-i", bonded_copy), "wn02", "is tagged, but network storage has no vlan"
    )


def test_two_networks_on_one_vlan_are_refused(bonded_copy: Path) -> None:
    edit(bonded_copy / ALL, "    dns: [192.0.2.53]\n", "    dns: [192.0.2.53]\n    vlan: 20\n")
    message = assert_one_line_error(
        run_cli("inventory", "check", "-i", bonded_copy), "storage.vlan 20 is also the VLAN of network public"
    )
    text = (bonded_copy / ALL).read_text().splitlines()
    at = int(re.search(r"all\.yml:(\d+):", message).group(1))  # type: ignore[union-attr]
    assert text[at - 1].strip() == "vlan: 20" and text[at - 3].strip() == "storage:", message


def test_a_network_on_another_ones_link_needs_a_vlan(bonded_copy: Path) -> None:
    """Dropping the storage VLAN leaves the hosts' `via: private` unable to tell the networks apart: the
    error is at the first host's via line, where the conflict is."""
    edit(bonded_copy / ALL, "    vlan: 20\n", "")
    message = assert_one_line_error(
        run_cli("inventory", "check", "-i", bonded_copy),
        "shares the link of private, but network storage has no vlan",
        "give b2ct_networks.storage a vlan id",
    )
    at = int(re.search(r"hosts\.yml:(\d+):", message).group(1))  # type: ignore[union-attr]
    assert "storage: {via: private" in (bonded_copy / HOSTS).read_text().splitlines()[at - 1], message


def test_storage_network_gets_no_vnet_and_no_bridge_check() -> None:
    """The storage network has no bridge: no OpenNebula vnet for it, and `b2ct check` expects no bridge
    for it (the hosts hold its addresses on their VLAN or NIC)."""
    from b2ct.check.expect import expectations
    from b2ct.opennebula import plan

    site = load(BONDED)
    cloud = plan.build(site)
    assert sorted(v.name for v in cloud.vnets) == ["private", "public"]
    bridges = {b.network: b.bridge for b in expectations(site, site.host("svc1")).bridges}
    assert bridges == {"private": "br-private", "public": "br-public"}
