"""Device safety on real block devices (loop devices we create and detach by name), and verified writes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import b2ct
from test_bad_input import assert_one_line_error

from b2ct.media import blockdev

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/dev/loop-control").exists(), reason="needs root and loop devices"
)


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    backing = tmp_path / "disk.img"
    with backing.open("wb") as f:
        f.truncate(160 << 20)
    dev = subprocess.run(
        ["losetup", "--find", "--show", "--partscan", backing], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield dev, backing
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], capture_output=True)
        subprocess.run(["losetup", "--detach", dev], check=True)


def test_loop_is_not_removable_refused_then_forced(loop, built_iso, tmp_path: Path) -> None:
    dev, backing = loop
    d = blockdev.inspect_device(dev)
    assert not d.removable and d.size == 160 << 20 and not d.mounts and not d.system
    r = b2ct("make-usb", "--iso", built_iso("el9"), "--device", dev)
    assert_one_line_error(r, "not a removable disk", "--force")
    assert backing.read_bytes()[:512] == bytes(512)  # nothing written
    # A used key: stale bytes everywhere must not leak into the new FAT (only data regions are written).
    with open(dev, "r+b") as f:
        f.write(b"\xa5" * (160 << 20))
    r = b2ct("make-usb", "--iso", built_iso("el9"), "--device", dev, "--force")
    assert r.returncode == 0, r.stderr
    part = tmp_path / "part.img"
    with backing.open("rb") as f, part.open("wb") as o:
        f.seek(1 << 20)
        o.write(f.read())
    fsck = subprocess.run(["fsck.fat", "-n", part], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert "160" in r.stderr or "0.2 GiB" in r.stderr  # model/size shown before writing
    out = subprocess.run(
        ["blkid", "-p", "-O", str(1 << 20), "-o", "export", backing], capture_output=True, text=True
    ).stdout
    assert "LABEL=B2CTKEY" in out and "TYPE=vfat" in out


def test_mounted_partition_refused_even_with_force(loop, built_iso, tmp_path: Path) -> None:
    dev, backing = loop
    # ext4, not vfat: the host kernel running the tests may lack the vfat module.
    subprocess.run(["sfdisk", "--quiet", dev], input="start=2048, type=83\n", text=True, check=True)
    part = f"{dev}p1"
    subprocess.run(["partx", "--update", dev], capture_output=True)
    subprocess.run(["mkfs.ext4", "-q", part], check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-o", "ro", part, mnt], check=True)
    try:
        before = backing.read_bytes()[: 1 << 20]
        r = b2ct("make-usb", "--iso", built_iso("el9"), "--device", dev, "--force", "--label", "OTHER")
        assert_one_line_error(r, "mounted on", str(mnt))
        assert backing.read_bytes()[: 1 << 20] == before
        r = b2ct("make-usb", "--iso", built_iso("el9"), "--device", part, "--force")
        assert_one_line_error(r, "is a partition")
    finally:
        subprocess.run(["umount", mnt], check=True)


def test_system_disk_refused() -> None:
    root = next(
        ln.split() for ln in Path("/proc/self/mountinfo").read_text().splitlines() if ln.split()[4] == "/"
    )
    disks = blockdev._disks_under(root[2])
    if not disks or not Path(f"/dev/{next(iter(disks))}").exists():
        pytest.skip("/ is not on a block device here")
    r = b2ct("make-usb", "--iso", "/nonexistent.iso", "--device", f"/dev/{next(iter(disks))}", "--force")
    assert_one_line_error(r, "running system")


def test_regular_file_as_device_refused(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    r = b2ct("make-usb", "--iso", "/nonexistent.iso", "--device", f)
    assert_one_line_error(r, "not a block device", "--image")
