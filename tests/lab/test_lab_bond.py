"""Bonded NICs and a storage VLAN on lab hosts (issue 16, item 3), nothing mocked.

This machine's kernel has neither the bonding nor the 802.1Q driver, so the lab runs these hosts as QEMU
guests with a Debian kernel (b2ct/lab/vm.py): two service hosts, each with its private network on a bond
of two NICs (balance-alb, as the Naples cloud bonded) whose taps sit on the lab's private bridge, and the
storage network as VLAN 20 on that bond, written into the inventory as a site would write it. Only the
playbooks these tests need run: kvm.yml (bridge over the bond, the VLAN) and gluster.yml (GlusterFS over
the storage addresses).

A member is taken down as a pulled cable would take it: its tap goes down on this machine and the guest's
NIC loses its carrier (Lab.set_link). The storage VLAN's traffic is read on the taps, outside the guests,
with a packet socket (tests/lab/frames.py): tagged 20, between storage addresses.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from b2ct.deploy import DeployResult, run
from b2ct.inventory import load
from tests.lab.frames import Capture
from tests.lab_plugin import make_lab

pytestmark = [pytest.mark.slow, pytest.mark.lab]
HOSTS = ("svc1", "svc2")
MOUNT = "/var/lib/one/datastores/100"
BRICK = "/bricks/one-system/brick"
VLAN = 20
BONDING = "cat /proc/net/bonding/bond0"

# Writes files of 256 KiB into the GlusterFS mount for $1 seconds, reading each back; stops at the first
# error. Ends with "wrote N".
IO_SCRIPT = """#!/bin/bash
set -u
d=$2; mkdir -p "$d"; end=$((SECONDS + $1)); n=0
while [ $SECONDS -lt $end ]; do
  head -c 262144 /dev/urandom > /tmp/b2ct-io.blk || exit 2
  cp /tmp/b2ct-io.blk "$d/f$n" || { echo "write error at file $n"; exit 1; }
  cmp -s /tmp/b2ct-io.blk "$d/f$n" || { echo "read-back differs at file $n"; exit 1; }
  n=$((n + 1))
done
echo "wrote $n"
"""


def _assert_ok(result: DeployResult) -> None:
    if not result.ok:
        log = Path(result.log_dir, "stdout.txt") if result.log_dir else None
        tail = log.read_text()[-4000:] if log and log.is_file() else ""
        pytest.fail(f"deploy {result.status}: {[h.error for h in result.hosts.values()]}\n{tail}")


def sh(lab: Any, host: str, cmd: str, timeout: float = 300) -> str:
    r = lab.ssh(host, cmd, timeout=timeout)
    assert r.returncode == 0, (host, cmd, r.stdout, r.stderr)
    return r.stdout.strip()


@pytest.fixture(scope="module")
def bonded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, DeployResult]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        with make_lab(services=2, workers=0, bond=True) as lab:
            first = run(lab.inventory, playbook="kvm.yml", keep_logs=True)
            _assert_ok(first)
            again = run(lab.inventory, playbook="kvm.yml", keep_logs=True)
            _assert_ok(again)
            _assert_ok(run(lab.inventory, playbook="gluster.yml", keep_logs=True))
            yield lab, again


def test_inventory_describes_bonds_and_the_storage_vlan(bonded) -> None:
    lab, _ = bonded
    site = load(lab.inventory)
    assert site.networks["storage"].vlan == VLAN and not site.networks["storage"].bridged
    for name in HOSTS:
        h, meta = site.host(name), lab.host(name)
        bond = h.nics["private"].bond
        assert bond is not None and bond.mode == "balance-alb"
        assert list(bond.members) == [m["mac"] for m in meta["members"]]
        assert (h.nics["storage"].via, h.nics["storage"].vlan) == ("private", VLAN)
        assert str(h.nics["storage"].ip) == meta["storage_ip"]


def test_bridge_over_the_bond_and_the_storage_vlan_on_it(bonded) -> None:
    lab, again = bonded
    assert again.changed == 0, again.changed_tasks()  # a second run finds everything live
    for name in HOSTS:
        meta = lab.host(name)
        bonding = sh(lab, name, "cat /proc/net/bonding/bond0")
        assert "Bonding Mode: adaptive load balancing" in bonding
        for member in meta["members"]:
            assert f"Permanent HW addr: {member['mac']}" in bonding
        members = re.findall(r"Slave Interface: (\S+)\nMII Status: up", bonding)
        assert len(members) == 2, bonding
        for nic in members:
            assert " master bond0 " in sh(lab, name, f"ip -o link show dev {nic}")
        assert " master br-private " in sh(lab, name, "ip -o link show dev bond0")
        assert f"inet {meta['ip']}/24 " in sh(lab, name, "ip -o -4 addr show dev br-private")
        vlan = sh(lab, name, f"ip -o -d link show dev bond0.{VLAN}")
        assert f"vlan protocol 802.1Q id {VLAN} " in vlan and "@bond0" in vlan
        assert f"inet {meta['storage_ip']}/24 " in sh(lab, name, f"ip -o -4 addr show dev bond0.{VLAN}")


def test_gluster_runs_over_the_storage_addresses(bonded) -> None:
    lab, _ = bonded
    storage = {name: lab.host(name)["storage_ip"] for name in HOSTS}
    info = sh(lab, "svc1", "gluster volume info one-system")
    for name in HOSTS:
        assert f"{storage[name]}:{BRICK}" in info, info
    assert f"Hostname: {storage['svc2']}" in sh(lab, "svc1", "gluster peer status")
    for name in HOSTS:
        source = sh(lab, name, f"findmnt -n -o SOURCE {MOUNT}")
        assert source.split(":")[0] in storage.values(), source


def test_storage_vlan_traffic_is_tagged_on_the_wire(bonded) -> None:
    """GlusterFS I/O from svc1 shows on svc1's member taps, outside the guest, as frames tagged with the
    storage VLAN between storage addresses; none of them untagged; the VLAN device's counters grow."""
    lab, _ = bonded
    meta = lab.host("svc1")
    subnet = meta["storage_ip"].rsplit(".", 1)[0] + "."
    sh(lab, "svc1", f"cat > /root/b2ct-io.sh <<'EOF'\n{IO_SCRIPT}EOF\nchmod +x /root/b2ct-io.sh")
    before = _tx_bytes(lab, "svc1", f"bond0.{VLAN}")
    with contextlib.ExitStack() as stack:
        captures = [stack.enter_context(Capture(m["tap"])) for m in meta["members"]]
        out = sh(lab, "svc1", f"/root/b2ct-io.sh 15 {MOUNT}/vlan-probe", timeout=300)
    assert out.startswith("wrote "), out
    storage = [f for c in captures for f in c.frames if f.src.startswith(subnet) and f.dst.startswith(subnet)]
    assert len(storage) > 50, [c.frames[:20] for c in captures]
    assert {f.vlan for f in storage} == {VLAN}, {f.vlan for f in storage}
    assert _tx_bytes(lab, "svc1", f"bond0.{VLAN}") - before > int(out.split()[1]) * 262144


def _tx_bytes(lab: Any, host: str, dev: str) -> int:
    return int(sh(lab, host, f"cat /sys/class/net/{dev}/statistics/tx_bytes"))


def test_io_goes_on_when_a_member_is_taken_down(bonded) -> None:
    """A member of each host is taken down mid-write (svc1's first, then svc2's second): the writes and
    read-backs through the GlusterFS mount go on with no error, each bond keeps one member up, the
    replicas on both bricks hold the same files; plugged back, the members come up again."""
    lab, _ = bonded
    sh(lab, "svc1", f"cat > /root/b2ct-io.sh <<'EOF'\n{IO_SCRIPT}EOF\nchmod +x /root/b2ct-io.sh")
    sh(
        lab,
        "svc1",
        f"rm -rf {MOUNT}/failover; nohup /root/b2ct-io.sh 45 {MOUNT}/failover >/root/io.out 2>&1 &",
    )
    cut = []
    try:
        time.sleep(8)
        cut.append(("svc1", 0, lab.set_link("svc1", 0, up=False)))
        time.sleep(8)
        cut.append(("svc2", 1, lab.set_link("svc2", 1, up=False)))
        for host, member, tap in cut:
            nic = _member_nic(lab, host, member)
            bonding = sh(lab, host, "cat /proc/net/bonding/bond0")
            assert re.search(rf"Slave Interface: {nic}\nMII Status: down", bonding), bonding
            assert "state DOWN" in _local_link(tap)
        deadline = time.monotonic() + 300
        while "wrote" not in (out := sh(lab, "svc1", "cat /root/io.out")) and "error" not in out:
            assert time.monotonic() < deadline, out
            time.sleep(2)
    finally:
        for host, member, _ in cut:
            lab.set_link(host, member, up=True)
    assert re.fullmatch(r"wrote \d+", out), out
    written = int(out.split()[1])
    assert written >= 10, out  # writes went on for most of the 45 s, past both cuts
    sums = {
        host: sh(lab, host, f"cd {BRICK}/failover && md5sum f* | sort -k2", timeout=600) for host in HOSTS
    }
    assert sums["svc1"] == sums["svc2"] and sums["svc1"].count("\n") + 1 == written, sums
    for host, member, _ in cut:
        nic = _member_nic(lab, host, member)
        deadline = time.monotonic() + 60
        while not re.search(rf"Slave Interface: {nic}\nMII Status: up", sh(lab, host, BONDING)):
            assert time.monotonic() < deadline, f"{host} {nic} did not come back up"
            time.sleep(1)


def _member_nic(lab: Any, host: str, member: int) -> str:
    """The guest's name of its ``member``-th bond member, found by its MAC."""
    mac = lab.host(host)["members"][member]["mac"]
    for line in sh(lab, host, "ip -o link show").splitlines():
        if f"permaddr {mac}" in line or (f"link/ether {mac}" in line and "permaddr" not in line):
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith(("bond", "br-")):
                continue
            return name
    raise AssertionError(f"no NIC with MAC {mac} on {host}")


def _local_link(name: str) -> str:
    return subprocess.run(["ip", "-o", "link", "show", "dev", name], capture_output=True, text=True).stdout
