"""The one-pass FAT32 writer, judged by the real dosfstools fsck and read back through mtools."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from b2ct.errors import B2ctError
from b2ct.media import esp
from b2ct.media.fatwrite import Segment, populate

EPOCH = 1_700_000_000


def _mkfs(image: Path, mib: int, spc: int, label: str = "B2CTTEST") -> None:
    with image.open("wb") as f:
        f.truncate(mib << 20)
    subprocess.run(
        ["mkfs.fat", "-F", "32", "-s", str(spc), "-n", label, "--invariant", str(image)],
        check=True,
        capture_output=True,
    )


def _fsck(image: Path) -> str:
    proc = subprocess.run(["fsck.fat", "-n", "-V", str(image)], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out


def _tricky_tree(src: Path) -> tuple[dict[str, tuple[Segment, ...]], dict[str, bytes], set[str]]:
    """Names that need long entries, collide on their short form, or are plain 8.3; a file assembled
    from pieces of a bigger one (as an ISO extent is); enough entries to span several clusters."""
    blob = src / "blob"
    blob.write_bytes(os.urandom(300_000))
    data = blob.read_bytes()
    files: dict[str, tuple[Segment, ...]] = {}
    want: dict[str, bytes] = {}

    def add(rel: str, *pieces: tuple[int, int]) -> None:
        files[rel] = tuple(Segment(blob, off, size) for off, size in pieces)
        want[rel] = b"".join(data[off : off + size] for off, size in pieces)

    add("ks.cfg", (0, 100))
    add("README.TXT", (100, 5000))
    add(".treeinfo", (7, 1234))
    add("EFI/BOOT/BOOTX64.EFI", (10, 70_000))
    add("EFI/BOOT/grub.cfg", (50, 700))
    add("images/pxeboot/vmlinuz", (0, 200_000), (250_000, 50_000))
    add("images/install.img", (1, 299_999))
    add("empty-file", (0, 0))
    add("Packages/a-very-long-package-name-1.0-1.el9.x86_64.rpm", (3, 3333))
    add("Packages/a-very-long-package-name-1.0-2.el9.x86_64.rpm", (4, 4444))
    add("Packages/ünïcode name with spaces.txt", (5, 55))
    for i in range(120):  # 120 long names x 3 slots: several 512-byte clusters, in the root too
        add(f"many/file-number-{i:04d}.data", (i, 17 + i))
        add(f"root-level-long-name-{i:03d}.x", (i, 1))
    return files, want, {"empty/dir", "EFI/BOOT"}


def test_fsck_clean_and_every_byte_read_back(tmp_path: Path) -> None:
    image = tmp_path / "fat.img"
    _mkfs(image, 64, spc=1)
    files, want, dirs = _tricky_tree(tmp_path)
    written = populate(image, 0, files, dirs, mtime=EPOCH, where="test")
    assert written == sum(len(v) for v in want.values())
    report = _fsck(image)
    assert (
        "B2CTTEST"
        in subprocess.run(["fatlabel", str(image)], capture_output=True, text=True, check=True).stdout
    )
    out = tmp_path / "out"
    subprocess.run(
        ["mcopy", "-s", "-n", "-i", str(image), "::/", str(out)],
        check=True,
        capture_output=True,
        env=esp.mtools_env(),
    )
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == want, report
    assert (out / "empty/dir").is_dir()
    mdir = subprocess.run(
        ["mdir", "-a", "-i", str(image), "::/Packages"], capture_output=True, text=True, env=esp.mtools_env()
    ).stdout
    assert "A-VERY~1" in mdir and "A-VERY~2" in mdir, mdir  # distinct short names for one basis
    assert "2023-11-14" in mdir, mdir  # the requested time, in the DOS date fields


def test_a_second_tool_can_still_write(tmp_path: Path) -> None:
    """FSInfo counts and free clusters are right: mtools adds a file after ours and fsck stays clean."""
    image = tmp_path / "fat.img"
    _mkfs(image, 40, spc=1)
    files, want, dirs = _tricky_tree(tmp_path)
    populate(image, 0, files, dirs, mtime=EPOCH, where="test")
    extra = tmp_path / "extra"
    extra.write_bytes(os.urandom(90_000))
    env = esp.mtools_env()
    subprocess.run(["mcopy", "-i", str(image), str(extra), "::/many/extra"], check=True, env=env)
    _fsck(image)
    back = subprocess.run(
        ["mtype", "-i", str(image), "::/many/extra"], capture_output=True, check=True, env=env
    ).stdout
    assert back == extra.read_bytes()
    back = subprocess.run(
        ["mtype", "-i", str(image), "::/images/install.img"], capture_output=True, check=True, env=env
    ).stdout
    assert back == want["images/install.img"]


def test_too_big_refused_before_writing(tmp_path: Path) -> None:
    image = tmp_path / "fat.img"
    _mkfs(image, 33, spc=1)
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(40 << 20)
    before = image.read_bytes()
    with pytest.raises(B2ctError, match=r"need .* MiB, the key has"):
        populate(image, 0, {"big": (Segment(big, 0, 40 << 20),)}, set(), mtime=EPOCH, where="t")
    assert image.read_bytes() == before


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"a/b:c": ()}, "cannot be stored on FAT"),
        ({"Same": (), "same": ()}, "clashes with"),
        ({"dir": (), "dir/x": ()}, "clashes with"),
    ],
)
def test_names_fat_cannot_hold(tmp_path: Path, files: dict, fragment: str) -> None:
    image = tmp_path / "fat.img"
    _mkfs(image, 33, spc=1)
    with pytest.raises(B2ctError, match=fragment):
        populate(image, 0, files, set(), mtime=EPOCH, where="t")


def test_not_fat32_refused(tmp_path: Path) -> None:
    image = tmp_path / "zero.img"
    image.write_bytes(bytes(1 << 20))
    with pytest.raises(B2ctError, match="no FAT32 boot sector"):
        populate(image, 0, {}, set(), mtime=EPOCH, where="t")
