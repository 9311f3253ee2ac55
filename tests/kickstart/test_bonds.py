"""Kickstarts of bonded hosts and VLAN networks (inventory/bonded), validated by pykickstart per release;
their %pre run under bash with a fake sysfs turns bond members' MACs into the machine's interface names,
and the kickstart the installer then reads validates too."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from b2ct.errors import B2ctError
from b2ct.inventory import load
from b2ct.kickstart import render, validate
from tests.conftest import REPO
from tests.kickstart.test_rack_pre import combined, fake_sysfs, pre_script

BONDED = REPO / "inventory" / "bonded"
HANDLERS = {"el6": "RHEL6", "el8": "RHEL8", "el9": "RHEL9", "el10": "RHEL10"}
SVC1_MEMBERS = ("52:54:00:10:00:11", "52:54:00:11:00:11")


@pytest.fixture(scope="module")
def site():
    return load(BONDED)


def host_pre(text: str) -> str:
    match = re.search(r"^%pre --interpreter=/bin/bash --erroronfail\n(.*?)^%end$", text, re.S | re.M)
    assert match, "bonded host's kickstart has no bash %pre"
    return match.group(1)


def run_pre(script: str, sysfs: Path, out: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "pre.sh"
    path.write_text(script)
    env = {"PATH": "/usr/bin:/bin", "B2CT_SYSFS": str(sysfs), "B2CT_OUT": str(out), "B2CT_TTY": "-"}
    return subprocess.run(
        ["bash", str(path)], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )


def svc1_sysfs(tmp_path: Path, enslaved: bool = False) -> Path:
    """svc1's NICs under names the installer's kernel chose; with ``enslaved``, the second member already
    in a bond, showing the bond's MAC as its address and its own in bonding_slave/perm_hwaddr."""
    sysfs = fake_sysfs(
        tmp_path,
        {"ens1f0": SVC1_MEMBERS[0], "ens1f1": SVC1_MEMBERS[1], "eno1": "52:54:00:20:00:11"},
        {"sda": 0, "sdb": 0},
    )
    if enslaved:
        (sysfs / "class/net/ens1f1/address").write_text(SVC1_MEMBERS[0] + "\n")
        (sysfs / "class/net/ens1f1/bonding_slave").mkdir()
        (sysfs / "class/net/ens1f1/bonding_slave/perm_hwaddr").write_text(SVC1_MEMBERS[1] + "\n")
    return sysfs


@pytest.mark.parametrize("release", ["el6", "el8", "el9", "el10"])
def test_bonded_site_renders_and_validates(site, release: str) -> None:
    files = render(site, release).files  # render validates each file as the installer reads it
    assert set(files) == {"ks.cfg", *(f"ks/{h.name}.cfg" for h in site.hosts)}
    for name, text in files.items():
        if name != "ks/wn02.cfg":  # wn02 has no bond: its network commands are in the file itself
            assert "%include /tmp/b2ct/network.ks" in text, name
        validate(text, HANDLERS[release], name)  # as shipped too, %include unresolved


def test_el9_bridge_over_bond_and_vlan_on_it(site) -> None:
    text = render(site, "el9").files["ks/svc1.cfg"]
    lines = [line for line in host_pre(text).splitlines() if line.startswith("network ")]
    assert lines[0] == (
        "network --device=bond0 --bondslaves=52:54:00:10:00:11,52:54:00:11:00:11 "
        "--bondopts=mode=balance-alb,miimon=100 --onboot=yes --noipv4 --noipv6"
    )
    assert lines[1].startswith("network --device=br-private --bridgeslaves=bond0 --bridgeopts=stp=no")
    assert "--ip=10.10.0.11" in lines[1] and "--hostname=svc1" in lines[1]
    assert "--device=52:54:00:20:00:11" in lines[2] and "--gateway=192.0.2.1" in lines[2]
    assert lines[3].startswith("network --device=bond0 --vlanid=20 ") and "--ip=10.20.0.11" in lines[3]
    assert "--nodefroute" in lines[3] and "--gateway" not in lines[3]
    # a worker's storage VLAN on a NIC of its own (a trunk port), the bond number given as in mode=6
    wn02 = render(site, "el9").files["ks/wn02.cfg"]
    assert "network --device=52:54:00:30:00:22 --vlanid=20 --onboot=yes" in wn02
    wn01 = render(site, "el9").files["ks/wn01.cfg"]
    assert "--bondopts=mode=balance-alb,miimon=200" in wn01


def test_el6_says_it_cannot_bridge_and_bonds_carry_the_address(site) -> None:
    text = render(site, "el6").files["ks/svc1.cfg"]
    pre = host_pre(text)
    assert "# el6: the installer cannot make bridges (no network --bridgeslaves)" in pre
    commands = [line for line in pre.splitlines() if line.startswith("network ")]
    assert not any("--bridgeslaves" in line or "br-private" in line for line in commands)
    bond = next(line for line in pre.splitlines() if line.startswith("network --device=bond0 --bondslaves"))
    assert "--ip=10.10.0.11" in bond and "--activate" in bond and "--noipv4" not in bond
    assert "network --device=bond0 --vlanid=20 " in pre


@pytest.mark.parametrize("release", ["el6", "el9", "el10"])
def test_host_pre_names_members_and_the_result_validates(site, tmp_path: Path, release: str) -> None:
    text = render(site, release).files["ks/svc1.cfg"]
    out = tmp_path / "out"
    proc = run_pre(host_pre(text), svc1_sysfs(tmp_path, enslaved=True), out, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    network = (out / "network.ks").read_text()
    assert "--bondslaves=ens1f0,ens1f1 " in network
    assert not re.search(r"--bondslaves=\S*:", network)  # no MAC left
    assert "--device=52:54:00:20:00:11" in network  # NICs given by MAC stay so: the installer finds them
    validate(combined(text, out), HANDLERS[release], "svc1 as the installer reads it")


def test_host_pre_stops_on_a_missing_member(site, tmp_path: Path) -> None:
    text = render(site, "el9").files["ks/svc1.cfg"]
    sysfs = fake_sysfs(tmp_path, {"ens1f0": SVC1_MEMBERS[0], "eno1": "52:54:00:20:00:11"}, {"sda": 0})
    out = tmp_path / "out"
    proc = run_pre(host_pre(text), sysfs, out, tmp_path)
    assert proc.returncode != 0
    assert f"no network interface of this machine has the MAC {SVC1_MEMBERS[1]}" in proc.stdout
    assert not (out / "network.ks").exists()  # the %include fails: the installation stops


@pytest.mark.parametrize("release", ["el6", "el9", "el10"])
def test_rack_finds_a_machine_by_a_bond_members_mac(site, tmp_path: Path, release: str) -> None:
    """Only svc1's second bond member is seen first (the others sit behind a NIC the inventory does not
    know): it is enough to recognise svc1, whose network is then written with interface names."""
    files = render(site, release).files
    rack = files["ks.cfg"]
    sysfs = fake_sysfs(
        tmp_path,
        {"eth0": "52:54:00:aa:bb:cc", "eth1": SVC1_MEMBERS[1], "eth2": SVC1_MEMBERS[0]},
        {"sda": 0},
    )
    out = tmp_path / "out"
    proc = run_pre(pre_script(rack), sysfs, out, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "this machine is svc1" in proc.stdout
    network = (out / "network.ks").read_text()
    assert "--bondslaves=eth2,eth1 " in network  # in the inventory's order of members
    validate(combined(rack, out), HANDLERS[release], "combined ks.cfg")
    # the rack writes what svc1's own kickstart's %pre writes on the same machine
    own = tmp_path / "own"
    (tmp_path / "again").mkdir()
    assert run_pre(host_pre(files["ks/svc1.cfg"]), sysfs, own, tmp_path / "again").returncode == 0
    assert (own / "network.ks").read_text() == network


def test_rack_lists_every_members_mac(site) -> None:
    rack = render(site, "el9").files["ks.cfg"]
    for h in site.hosts:
        for mac in h.macs:
            assert f"    {mac}) echo {h.name} ;;" in rack
    assert f"    {SVC1_MEMBERS[1]}) echo svc1 ;;" in rack


def test_pre_scripts_pass_shellcheck(site, tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required (listed in .ci/packages/base.apt)"
    for release in ("el6", "el9"):
        files = render(site, release).files
        for name, script in (("host", host_pre(files["ks/svc1.cfg"])), ("rack", pre_script(files["ks.cfg"]))):
            path = tmp_path / f"{name}-{release}.sh"
            path.write_text("#!/bin/bash\n" + script)
            proc = subprocess.run([shellcheck, "-S", "warning", str(path)], capture_output=True, text=True)
            assert proc.returncode == 0, (name, release, proc.stdout)


BASE = """text
url --url=http://mirror.example.org/os/
rootpw --lock
network --device=bond0 --bondslaves=eno1,eno2 --bondopts=mode=balance-alb --noipv4 --noipv6
%packages
@core
%end
"""


def test_a_vlan_on_a_device_is_another_interface_but_the_same_one_twice_is_refused() -> None:
    """pykickstart compares network commands by --device alone; the validator lets a device carry VLANs
    (anaconda makes <device>.<vlanid> of each) and still refuses a device or a VLAN given twice."""
    vlans = (
        "network --device=bond0 --vlanid=20 --bootproto=dhcp\n"
        "network --device=bond0 --vlanid=30 --bootproto=dhcp\n"
    )
    validate(BASE + vlans, "RHEL9", "vlans")
    with pytest.raises(B2ctError, match="bond0 has already been defined"):
        validate(BASE + vlans + "network --device=bond0 --vlanid=20 --bootproto=dhcp\n", "RHEL9", "twice")
    with pytest.raises(B2ctError, match="bond0 has already been defined"):
        validate(BASE + "network --device=bond0 --bootproto=dhcp\n", "RHEL9", "bond twice")
