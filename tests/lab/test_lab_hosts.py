"""Lab hosts for real: boot, reach, inventory, status, and teardown that leaves nothing behind."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from b2ct.lab.core import DISK_SIZE, Lab
from b2ct.lab.state import LabState, alive
from tests.conftest import wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b2ct.lab", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


# -- what a lab leaves behind --------------------------------------------------------------------------


def snapshot(name: str) -> dict[str, Any]:
    """Every resource the state file records, to check after `down` that each one is gone."""
    st = LabState.load(name)
    assert st is not None, f"lab {name} has no state"
    res = st.resources
    return {
        "dir": str(st.dir),
        "netns": [r.id for r in res if r.kind == "netns"],
        "links": [r.id for r in res if r.kind in ("veth", "bridge")],
        "mounts": [r.id for r in res if r.kind == "mount"],
        "backing": [r.id for r in res if r.kind == "loop"],
        "loops": [r.extra["dev"] for r in res if r.kind == "loop" and "dev" in r.extra],
        "cgroups": [r.id for r in res if r.kind == "cgroup"],
        "pids": [(int(r.extra["pid"]), int(r.extra.get("start", 0))) for r in res if r.kind == "process"
                 and "pid" in r.extra],
    }  # fmt: skip


def leftovers(snap: dict[str, Any]) -> list[str]:
    left = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = {line.split()[0] for line in netns.splitlines() if line.strip()}
    left += [f"netns {n}" for n in snap["netns"] if n in names]
    for link in snap["links"]:
        if subprocess.run(["ip", "link", "show", "dev", link], capture_output=True).returncode == 0:
            left.append(f"link {link}")
    mounts = Path("/proc/mounts").read_text()
    left += [f"mount {m}" for m in snap["mounts"] if f" {m} " in mounts]
    left += [f"mount under {snap['dir']}" for line in mounts.splitlines() if f" {snap['dir']}/" in line]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    left += [f"loop for {b}" for b in snap["backing"] if b in loops]
    left += [f"process {p}" for p, s in snap["pids"] if alive(p, s)]
    left += [f"cgroup {c}" for c in snap["cgroups"] if Path(c).exists()]
    if Path(snap["dir"]).exists():
        left.append(f"dir {snap['dir']}")
    return left


# -- the shared default lab ----------------------------------------------------------------------------


def test_every_host_answers_over_ssh_with_systemd_as_pid1(lab):
    assert lab.hosts == ["svc1", "svc2", "wn1", "wn2"]
    for host in lab.hosts:
        r = lab.ssh(
            host, "hostname; cat /proc/1/comm; systemctl is-system-running --wait; systemctl --failed"
        )
        out = r.stdout.split()
        assert out[:2] == [host, "systemd"], r
        # "degraded" is how hosts booting side by side once hid colliding cgroups (status=219/CGROUP)
        assert out[2] == "running", r.stdout


def test_hosts_reach_each_other_by_name_over_the_lab_bridges(lab):
    st = lab.state()
    for src in lab.hosts:
        for dst in lab.hosts:
            r = lab.ssh(src, f"ping -c1 -W2 {dst} >/dev/null && echo ok")
            assert r.stdout.strip() == "ok", (src, dst, r.stderr)
    # The public network joins the service hosts only.
    services = [h for h in lab.hosts if "service" in st.hosts[h]["groups"]]
    for src in services:
        for dst in services:
            ip = st.hosts[dst]["public_ip"]
            assert lab.ssh(src, f"ping -c1 -W2 {ip} >/dev/null && echo ok").stdout.strip() == "ok"


def test_loop_disks_are_usable_inside(lab):
    st = lab.state()
    for host in lab.hosts:
        dev = st.hosts[host]["disk"]
        r = lab.exec(
            host, f"test -b {dev} && blockdev --getsize64 {dev} && dd if={dev} of=/dev/null bs=4k count=1"
        )
        assert r.returncode == 0, (host, r.stderr)
        assert r.stdout.split()[0] == str(DISK_SIZE)


def test_inventory_is_in_the_site_format(lab):
    hosts_doc = yaml.safe_load((lab.inventory / "hosts.yml").read_text())
    groups = hosts_doc["all"]["children"]
    assert set(groups["frontend"]["hosts"]) == {"svc1"}
    assert set(groups["service"]["hosts"]) == {"svc1", "svc2"}
    assert set(groups["worker"]["hosts"]) == {"wn1", "wn2"}
    allv = yaml.safe_load((lab.inventory / "group_vars" / "all.yml").read_text())
    assert allv["b2ct_site"] == "lab"
    assert allv["b2ct_os_release"] == "debian12"
    assert allv["b2ct_opennebula_version"] == "6.10"
    assert allv["b2ct_root_password_hash"].startswith("$6$")
    key = Path(lab.key).with_suffix(".pub").read_text().strip()
    assert allv["b2ct_ssh_keys"] == [key]
    private = ipaddress.ip_network(allv["b2ct_networks"]["private"]["subnet"])
    public = ipaddress.ip_network(allv["b2ct_networks"]["public"]["subnet"])
    system, images = allv["b2ct_gluster_volumes"]
    assert (system["name"], system["replica"], system["mount"]) == (
        "one-system",
        2,
        "/var/lib/one/datastores/100",
    )
    assert system["bricks"] == ["svc1:/bricks/one-system/brick", "svc2:/bricks/one-system/brick"]
    assert (images["name"], images["replica"], images["mount"]) == (
        "one-images",
        2,
        "/var/lib/one/datastores/1",
    )
    assert images["bricks"] == ["svc1:/bricks/one-images/brick", "svc2:/bricks/one-images/brick"]
    # The lab's OpenNebula mirror, served from its gateway, and what a lab without KVM needs.
    gateway = allv["b2ct_networks"]["private"]["gateway"]
    assert allv["b2ct_opennebula_mirror"] == f"http://{gateway}/opennebula/repo/6.10"
    assert allv["b2ct_opennebula_mirror_gpgkey"] == f"http://{gateway}/opennebula/repo.key"
    assert allv["b2ct_opennebula_hypervisor"] == "qemu"
    assert allv["b2ct_opennebula_components"] == ["gate", "flow"]  # Sunstone, FireEdge: not in the mirror
    assert allv["b2ct_belle2"]["image_url"] == f"http://{gateway}/images/b2ct-lab-guest.qcow2"
    assert "opennebula_frontend_install_packages" not in allv
    for kind, disk_var in (("service", "b2ct_brick_disk"), ("worker", "b2ct_ephemeral_disk")):
        for name, hv in groups[kind]["hosts"].items():
            assert hv["ansible_user"] == "root"
            assert Path(hv["ansible_ssh_private_key_file"]).is_file()
            assert ipaddress.ip_address(hv["ansible_host"]) in private
            assert hv[disk_var].startswith("/dev/loop")
            # The MAC the inventory promises is the one the host really has.
            nics = hv["b2ct_nics"]
            macs = lab.exec(name, "cat /sys/class/net/*/address").stdout.split()
            assert nics["private"]["mac"] in macs
            assert nics["private"]["ip"] == hv["ansible_host"]
            if kind == "service":
                assert nics["public"]["mac"] in macs
                assert ipaddress.ip_address(nics["public"]["ip"]) in public
            else:
                assert "public" not in nics


def test_inventory_loads_with_ansible_and_b2ct(lab):
    pytest.importorskip("ansible")
    r = subprocess.run(
        ["ansible-inventory", "-i", str(lab.inventory), "--list"], capture_output=True, text=True, timeout=120
    )
    if r.returncode == 127:
        pytest.skip("ansible-inventory not installed")
    assert r.returncode == 0, r.stderr
    hostvars = json.loads(r.stdout)["_meta"]["hostvars"]
    assert set(hostvars) == {"svc1", "svc2", "wn1", "wn2"}
    assert hostvars["wn1"]["b2ct_site"] == "lab"
    inventory = pytest.importorskip("b2ct.inventory")
    if not hasattr(inventory, "load"):
        pytest.skip("b2ct.inventory.load not written yet")
    inventory.load(lab.inventory)


def test_ansible_reaches_every_host(lab):
    r = subprocess.run(
        ["ansible", "-i", str(lab.inventory), "all", "-m", "ping", "-o"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True"},
    )  # fmt: skip
    if r.returncode == 127 or "No such file" in r.stderr:
        pytest.skip("ansible not installed")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == 4


def test_outsider_is_outside_the_site_networks_but_routed(lab):
    allv = yaml.safe_load((lab.inventory / "group_vars" / "all.yml").read_text())
    outsider = ipaddress.ip_address(lab.outsider_ip)
    for net in allv["b2ct_networks"].values():
        assert outsider not in ipaddress.ip_network(net["subnet"])
    # It reaches a host's sshd through the lab gateway, from its own address.
    probe = (
        f"import socket; s = socket.create_connection(({lab.ip('svc1')!r}, 22), 5); "
        "print(s.getsockname()[0], s.recv(7).decode())"
    )
    r = lab.outsider_exec([sys.executable, "-c", probe])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [lab.outsider_ip, "SSH-2.0"]
    # The gateway routes only between lab networks: no default route, so nothing leaves the machine.
    gw = lab.state().outsider["gateway_netns"]
    routes = subprocess.run(["ip", "-n", gw, "route"], capture_output=True, text=True).stdout
    assert "default" not in routes


def test_status_and_cli(lab):
    rows = lab.status()
    assert [(r.name, r.state, r.ssh) for r in rows] == [(h, "running", True) for h in lab.hosts]
    r = cli("status", "--name", lab.name, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["phase"] == "up"
    assert [h["name"] for h in doc["hosts"]] == lab.hosts
    r = cli("ssh", "wn2", "--name", lab.name, "--", "echo", "hello", "from", "$(hostname)")
    assert r.stdout.strip() == "hello from wn2", r.stderr
    r = cli("ssh", "nohost", "--name", lab.name)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("b2ct: error: no host 'nohost'")


# -- teardown --------------------------------------------------------------------------------------------


def _name(tag: str) -> str:
    return f"t{os.getpid() % 100000}{tag}"[:12]


def test_down_leaves_nothing():
    lab = Lab(_name("d"))
    try:
        r = cli("up", "--name", lab.name, "--hosts", "svc1,wn1")
        assert r.returncode == 0, r.stderr
        assert Path(r.stdout.strip()) == lab.inventory
        snap = snapshot(lab.name)
        assert len(snap["netns"]) == 4 and len(snap["loops"]) == 2 and len(snap["mounts"]) == 2
        assert len(snap["pids"]) == 5  # nspawn + container init per host, the mirror's HTTP server
        assert leftovers(snap) != []  # sanity: the probe sees the live lab
        r = cli("down", "--name", lab.name)
        assert r.returncode == 0, r.stderr
        assert leftovers(snap) == []
        # Down again: nothing to do, no error.
        assert cli("down", "--name", lab.name).returncode == 0
    finally:
        lab.down()


def test_failed_up_removes_what_it_created():
    lab = Lab(_name("f"))
    try:
        # sshd cannot answer within 0 s: `up` fails after booting, and must clean up itself.
        r = cli("up", "--name", lab.name, "--hosts", "wn1", env={"B2CT_LAB_BOOT_TIMEOUT": "0"})
        assert r.returncode == 2
        assert "b2ct: error: sshd did not answer" in r.stderr
        assert "Traceback" not in r.stderr
        assert not lab.dir.exists()
        assert not lab.exists()
    finally:
        lab.down()


@pytest.mark.parametrize("moment", ["networks", "booting"])
def test_killed_up_then_down_removes_everything(moment):
    """kill -9 `lab up` part-way; `lab down` must still find and remove every recorded resource."""
    lab = Lab(_name("k" + moment[0]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "b2ct.lab", "up", "--name", lab.name, "--hosts", "svc1,wn1"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def reached() -> bool:
            st = LabState.load(lab.name) if lab.exists() else None
            if st is None:
                return False
            if moment == "networks":
                return any(r.kind == "veth" for r in st.resources)
            return any(r.kind == "process" and r.status == "created" for r in st.resources)

        wait_for(f"lab up to reach {moment}", reached, 120, 0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if moment == "booting":
            time.sleep(1)  # let the orphaned containers get on with booting
        snap = snapshot(lab.name)
        r = cli("down", "--name", lab.name)
        assert r.returncode == 0, r.stderr
        assert leftovers(snap) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        lab.down()


def test_sigterm_during_up_cleans_up_by_itself():
    lab = Lab(_name("s"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "b2ct.lab", "up", "--name", lab.name, "--hosts", "wn1"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def booting() -> bool:
            st = LabState.load(lab.name) if lab.exists() else None
            return st is not None and any(r.kind == "process" and r.status == "created" for r in st.resources)

        wait_for("lab up to start booting", booting, 120, 0.1)
        snap = snapshot(lab.name)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert leftovers(snap) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        lab.down()
