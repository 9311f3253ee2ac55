"""roles/opennebula_node/files/b2ct-alloc and b2ct-qemu-img (what OpenNebula's drivers call as qemu-img)
on real filesystems: loop devices on this machine, and the real qemu-img.

XFS and ext4 have fallocate (no holes: du == size); ext2 has none, so the helper falls back to a sparse
file there. On GlusterFS (sparse by choice) it runs in the cloud lab: tests/opennebula/test_cloud.py.
Loop devices and mounts are removed by id afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.foreign_locale import foreign_locale_env

FILES = Path(__file__).resolve().parents[2] / "roles/opennebula_node/files"
HELPER = FILES / "b2ct-alloc"
WRAPPER = FILES / "b2ct-qemu-img"
MiB = 1024 * 1024

pytestmark = pytest.mark.slow


def _sh(*argv: str | Path) -> str:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def _mounted(tmp: Path, fs: str, size_mb: int = 800) -> Iterator[Path]:
    img = tmp / f"{fs}.img"
    with open(img, "wb") as fh:
        fh.truncate(size_mb * MiB)
    mkfs = {
        "xfs": ["mkfs.xfs", "-q", "-f"],
        "ext4": ["mkfs.ext4", "-q", "-F"],
        "ext2": ["mkfs.ext2", "-q", "-F"],
    }
    _sh(*mkfs[fs], img)
    mnt = tmp / f"mnt-{fs}"
    mnt.mkdir()
    dev = _sh("losetup", "--find", "--show", img)
    try:
        _sh("mount", dev, mnt)
        try:
            yield mnt
        finally:
            _sh("umount", mnt)
    finally:
        _sh("losetup", "-d", dev)


@pytest.fixture
def fs_root(tmp_path: Path) -> Path:
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup (loop devices)")
    return tmp_path


def _alloc(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELPER), *map(str, args)], capture_output=True, text=True, env=env)


def _blocks(path: Path) -> int:
    return os.stat(path).st_blocks * 512


@pytest.mark.parametrize("fs", ["xfs", "ext4"])
def test_fallocate_leaves_no_holes(fs_root: Path, fs: str) -> None:
    with _mounted(fs_root, fs) as mnt:
        r = _alloc("100M", mnt / "disk.img")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "fallocate"
        assert (mnt / "disk.img").stat().st_size == 100 * MiB
        assert _blocks(mnt / "disk.img") >= 100 * MiB
        # formatted images keep their blocks too (mkfs must not discard/punch holes in the file)
        r = _alloc("320M" if fs == "xfs" else "64M", mnt / "fs.img", "--fs", fs)
        assert r.returncode == 0, r.stderr
        size = (mnt / "fs.img").stat().st_size
        assert _blocks(mnt / "fs.img") >= size
        assert _sh("blkid", "-p", "-o", "value", "-s", "TYPE", mnt / "fs.img") == fs


def test_sparse_where_fallocate_is_missing(fs_root: Path) -> None:
    with _mounted(fs_root, "ext2") as mnt:
        r = _alloc("100M", mnt / "disk.img", "--fs", "ext4")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "sparse"
        assert (mnt / "disk.img").stat().st_size == 100 * MiB
        assert _blocks(mnt / "disk.img") < 50 * MiB
        assert _sh("blkid", "-p", "-o", "value", "-s", "TYPE", mnt / "disk.img") == "ext4"


def test_sparse_fallback_under_an_italian_locale(fs_root: Path) -> None:
    # fallocate's error is then "Operazione non supportata": the fallback must not depend on its wording.
    env = foreign_locale_env(fs_root)
    with _mounted(fs_root, "ext2") as mnt:
        r = _alloc("100M", mnt / "disk.img", env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "sparse"
        assert (mnt / "disk.img").stat().st_size == 100 * MiB
        assert _blocks(mnt / "disk.img") < 50 * MiB
        # a real failure still fails, whatever the locale
        r = _alloc("1M", mnt / "missing" / "disk.img", env=env)
        assert r.returncode == 1 and "no such directory" in r.stderr


def test_refusals(fs_root: Path) -> None:
    with _mounted(fs_root, "ext4", size_mb=64) as mnt:
        r = _alloc("200M", mnt / "big.img")
        assert r.returncode == 1 and "only" in r.stderr and "free" in r.stderr
        assert not (mnt / "big.img").exists()
        (mnt / "taken.img").write_text("x")
        r = _alloc("1M", mnt / "taken.img")
        assert r.returncode == 1 and "already exists" in r.stderr
        assert (mnt / "taken.img").read_text() == "x"
        for bad in (["lots", mnt / "a.img"], ["1M", mnt / "a.img", "--fs", "btrfs"], ["1M"]):
            r = _alloc(*bad)
            assert r.returncode == 2, (bad, r.stderr)
        assert not (mnt / "a.img").exists()


def test_wrapper_hands_opennebulas_volatile_disk_call_to_the_helper(fs_root: Path) -> None:
    """`qemu-img create -f raw FILE SIZEM`, as OpenNebula 6.10's mkimage/mkswap run it, gets real blocks;
    every other call is qemu-img's own (a qcow2 stays a sparse qcow2, `info` answers as qemu-img)."""
    if shutil.which("qemu-img") is None:
        pytest.skip("needs qemu-img (qemu-utils)")
    env = {**os.environ, "B2CT_ALLOC": str(HELPER)}
    with _mounted(fs_root, "xfs") as mnt:
        (mnt / "swap.img").write_text("old")  # qemu-img create replaces a file: so must the wrapper
        r = subprocess.run([WRAPPER, "create", "-f", "raw", mnt / "swap.img", "64M"], capture_output=True,
                           text=True, env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "by fallocate" in r.stderr
        assert (mnt / "swap.img").stat().st_size == 64 * MiB and _blocks(mnt / "swap.img") >= 64 * MiB
        r = subprocess.run([WRAPPER, "create", "-f", "qcow2", mnt / "vol.qcow2", "64M"], capture_output=True,
                           text=True, env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        info = subprocess.run([WRAPPER, "info", mnt / "vol.qcow2"], capture_output=True, text=True, env=env)
        assert "file format: qcow2" in info.stdout and _blocks(mnt / "vol.qcow2") < 1 * MiB
    with _mounted(fs_root, "ext2") as mnt:
        r = subprocess.run([WRAPPER, "create", "-f", "raw", mnt / "disk.img", "64M"], capture_output=True,
                           text=True, env=env)  # fmt: skip
        assert r.returncode == 0 and "by sparse" in r.stderr, r.stderr
