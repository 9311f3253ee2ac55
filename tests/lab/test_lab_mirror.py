"""The lab's site services and host operations: the signed OpenNebula mirror served from the gateway,
cgroups libvirt can use inside a host (and only there), a host powered off and on, the VM image."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from b2ct.lab import guest
from b2ct.lab.core import Lab
from b2ct.lab.mirror import default_repo
from tests.conftest import assert_one_line_error, run_cli, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _gateway(lab: Lab) -> str:
    return lab.state().services["mirror"]["url"]


def test_mirror_is_upstreams_layout_signed_by_its_own_key(lab: Lab, tmp_path: Path) -> None:
    base = f"{_gateway(lab)}/opennebula/repo/6.10/Debian/12"
    fetch = f"curl -fsS {base}/dists/stable/InRelease"
    release = lab.ssh("wn1", fetch, check=True).stdout  # as the hosts reach it: their gateway, port 80
    key = lab.ssh("wn1", f"curl -fsS {_gateway(lab)}/opennebula/repo.key", check=True).stdout
    (tmp_path / "InRelease").write_text(release)
    (tmp_path / "repo.key").write_text(key)
    keyring = tmp_path / "keyring.gpg"
    subprocess.run(["gpg", "--batch", "--yes", "--dearmor", "-o", keyring, tmp_path / "repo.key"], check=True)
    v = subprocess.run(["gpgv", "--keyring", keyring, tmp_path / "InRelease"], capture_output=True, text=True)
    assert v.returncode == 0 and "Good signature" in v.stderr, v.stderr
    # Every package of the source repository, byte for byte, where the index says.
    index = lab.ssh(
        "wn1", f"curl -fsS {base}/dists/stable/opennebula/binary-amd64/Packages", check=True
    ).stdout
    entries = dict(re.findall(r"^Filename: (\S+)\n(?:.*\n)*?SHA256: (\w+)", index, re.MULTILINE))
    debs = {d.name: hashlib.sha256(d.read_bytes()).hexdigest() for d in default_repo().glob("*.deb")}
    assert {Path(f).name: h for f, h in entries.items()} == debs
    # The key's secret half was thrown away with its temporary gpg home.
    root = Path(lab.state().services["mirror"]["root"])
    assert sorted(p.name for p in root.rglob("*") if p.suffix in (".asc", ".key", ".gpg")) == [
        "Release.gpg",
        "repo.key",
    ]
    assert not list(root.rglob("private-keys-v1.d"))


def test_cgroups_are_writable_inside_a_host_and_confined_to_it(lab: Lab) -> None:
    """What libvirt needs for its VMs' cgroups: the host's own v1 controllers writable from inside,
    its directories landing below the host's own cgroup on this machine, never at the top."""
    mounts = lab.exec("wn1", "grep ' cgroup ' /proc/self/mounts").stdout
    controllers = [line.split()[1] for line in mounts.splitlines()]
    if not controllers:
        pytest.skip("no cgroup v1 controllers on this machine (unified hierarchy only)")
    assert all(" rw," in line for line in mounts.splitlines()), mounts
    probe = f"b2ct-probe-{os.getpid()}"
    cpu = "/sys/fs/cgroup/cpu"
    r = lab.exec("wn1", f"mkdir {cpu}/{probe} && cat /proc/self/cgroup | grep -m1 ':cpu,\\|:cpu:'")
    try:
        assert r.returncode == 0, r.stderr
        ours = [
            c.id for c in lab.state().resources if c.kind == "cgroup" and "/cpu" in c.id and "-wn1" in c.id
        ]
        assert ours and any(any(Path(c).rglob(probe)) for c in ours), ours
        assert not Path(cpu, probe).exists()
    finally:
        lab.exec("wn1", f"rmdir {cpu}/{probe}")


def test_power_cut_then_power_on(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory(["wn1"])
    lab.ssh("wn1", "echo kept > /root/before && sync", check=True)
    lab.power_off("wn1", hard=True)
    assert lab.status()[0].state == "stopped"
    assert lab.ssh("wn1", "true", timeout=30).returncode != 0
    lab.power_on("wn1")
    assert lab.ssh("wn1", "cat /root/before", check=True).stdout.strip() == "kept"
    assert lab.ssh("wn1", "timeout 120 systemctl is-system-running --wait").stdout.strip() == "running"


def test_bad_repository_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    name = f"m{os.getpid() % 100000}r"
    r = run_cli("lab", "up", "--name", name, "--hosts", "wn1", "--opennebula-repo", tmp_path / "nope")
    assert_one_line_error(r, "not an apt repository", str(tmp_path / "nope" / "Packages"))
    assert not Lab(name).exists() and not Lab(name).dir.exists()


def test_guest_image_source_assembles_to_the_shipped_bytes(tmp_path: Path) -> None:
    out = tmp_path / "bs.bin"
    subprocess.run(["nasm", "-f", "bin", "-o", out, guest.SOURCE], check=True)
    assert out.read_bytes() == guest.boot_sector()


def test_guest_counts_its_boots_on_its_own_disk(tmp_path: Path) -> None:
    """Under QEMU's emulation, as OpenNebula would start it: each boot adds one to the counter it keeps
    on its disk, and says so on its serial port."""
    disk = guest.write_image(tmp_path / "guest.qcow2")
    seen = []
    for boot in (1, 2):
        serial = tmp_path / f"serial{boot}.txt"
        proc = subprocess.Popen(
            [
                "qemu-system-x86_64", "-accel", "tcg", "-m", "32", "-nodefaults", "-display", "none",
                "-monitor", "none", "-serial", f"file:{serial}",
                "-drive", f"file={disk},format=qcow2,if=virtio",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(
                "the guest's banner",
                lambda s=serial: guest.boots(s.read_bytes()) if s.exists() else [],
                60,
                0.2,
            )
        finally:
            proc.kill()
            proc.wait()
        seen += guest.boots(serial.read_bytes())
    assert seen == [1, 2]


def test_no_opennebula_lab_tells_the_roles_to_skip_it(tmp_path: Path) -> None:
    name = f"m{os.getpid() % 100000}n"
    lab = Lab(name)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "b2ct", "lab", "up", "--name", name, "--hosts", "wn1", "--no-opennebula"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        text = (lab.inventory / "group_vars" / "all.yml").read_text()
        assert "opennebula_node_install_packages: false" in text and "b2ct_opennebula_mirror" not in text
        assert "mirror" not in lab.state().services
    finally:
        lab.down()
