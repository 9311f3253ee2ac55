"""b2ct_gluster_facts run by real Ansible here, on a real XFS brick filesystem (loop device).

A reinstalled host's brick disk is not mounted (its fstab went with the old root): the module reads it
through a private read-only mount and leaves nothing mounted. The loop device and mounts are removed by
id afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gluster.test_preflight_module import run_module

pytestmark = pytest.mark.slow

VOLUME_ID = uuid.UUID("a2cd4db8-f8ee-4a1a-ba1a-670edcccd4f2")


def _sh(*argv: str | Path) -> str:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True).stdout.strip()


def _mounts() -> str:
    return Path("/proc/self/mounts").read_text()


@pytest.fixture
def brick_disk(tmp_path: Path) -> Iterator[str]:
    """A loop device holding XFS with /one-system/brick carrying a volume id and .glusterfs, unmounted."""
    if os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("mkfs.xfs") is None:
        pytest.skip("needs root, losetup and mkfs.xfs")
    img = tmp_path / "brick.img"
    with open(img, "wb") as fh:
        fh.truncate(320 * 1024 * 1024)
    _sh("mkfs.xfs", "-q", "-i", "size=512", img)
    dev = _sh("losetup", "--find", "--show", img)
    try:
        mnt = tmp_path / "setup"
        mnt.mkdir()
        _sh("mount", dev, mnt)
        try:
            brick = mnt / "one-system" / "brick"
            (brick / ".glusterfs").mkdir(parents=True)
            os.setxattr(brick, "trusted.glusterfs.volume-id", VOLUME_ID.bytes)
        finally:
            _sh("umount", mnt)
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def _facts(dev: str, mount: str) -> dict:
    result = run_module(
        "gluster_facts",
        {
            "paths": [f"{mount}/one-system/brick", f"{mount}/one-images/brick"],
            "brick_disk": dev,
            "brick_mount": mount,
            "store": "/nonexistent/b2ct-glusterd",
        },
    )
    assert not result.get("failed"), result
    assert result["changed"] is False
    return result["identity"]


def test_unmounted_brick_disk_is_read_read_only_and_left_unmounted(brick_disk: str, tmp_path: Path) -> None:
    mount = str(tmp_path / "bricks")  # where the role would mount it: not mounted, not even created
    before = _mounts()
    identity = _facts(brick_disk, mount)
    assert identity["bricks"] == {
        f"{mount}/one-system/brick": {"exists": True, "volume_id": str(VOLUME_ID), "glusterfs_dir": True},
        f"{mount}/one-images/brick": {"exists": False, "volume_id": "", "glusterfs_dir": False},
    }
    assert "read-only" in identity["read_from"]
    assert _mounts() == before and not Path(mount).exists()
    assert identity["uuid"] == "" and identity["peers"] == [] and identity["volumes"] == {}  # never ran


def test_mounted_brick_disk_is_read_where_it_is(brick_disk: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _sh("mount", brick_disk, elsewhere)
    try:
        identity = _facts(brick_disk, "/bricks")
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _sh("umount", elsewhere)
    assert identity["bricks"]["/bricks/one-system/brick"]["volume_id"] == str(VOLUME_ID)
    assert identity["read_from"] == f"{brick_disk} mounted at {elsewhere}"


def test_blank_disk_has_fresh_bricks(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup")
    img = tmp_path / "blank.img"
    with open(img, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    dev = _sh("losetup", "--find", "--show", img)
    try:
        identity = _facts(dev, "/bricks")
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
    assert all(not b["exists"] and not b["volume_id"] for b in identity["bricks"].values())
    assert identity["read_from"].endswith("no filesystem yet")
