"""Block device safety checks and verified writes.

Policy: a disk that is mounted (any partition), used as swap, held by device-mapper/RAID, or holds /,
/boot or /boot/efi is always refused: --force cannot make overwriting a live filesystem safe. A disk that
is merely not removable (an internal disk, a loop device, a SAS-attached USB bridge) is refused unless
--force.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from b2ct.errors import B2ctError
from b2ct.fsutil import merge_ranges, write_error
from b2ct.ui import byte_progress

if TYPE_CHECKING:
    from rich.progress import Progress

SYS_BLOCK = Path("/sys/class/block")
CHUNK = 4 << 20


@dataclass
class Device:
    path: Path
    name: str
    size: int
    model: str
    removable: bool
    devnums: set[str] = field(default_factory=set)  # "maj:min" of the disk and its partitions
    mounts: list[str] = field(default_factory=list)
    system: bool = False
    holders: list[str] = field(default_factory=list)

    def describe(self) -> str:
        kind = "removable" if self.removable else "NOT removable"
        return (
            f"{self.path} ({self.name}): {self.model or 'unknown model'}, {self.size / 2**30:.1f} GiB, {kind}"
        )


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def _mountinfo() -> list[tuple[str, str]]:
    """(maj:min, mount point) of every mount, as the kernel sees them (works for /dev/root too)."""
    out = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        parts = line.split()
        if len(parts) > 4:
            out.append((parts[2], parts[4].replace("\\040", " ")))
    return out


def _disks_under(devnum: str) -> set[str]:
    """Names of the whole disks a block device number lives on, following dm/md slaves."""
    node = Path("/sys/dev/block") / devnum
    if not node.exists():
        return set()
    real = node.resolve()
    slaves = list((real / "slaves").glob("*")) if (real / "slaves").is_dir() else []
    if slaves:
        result: set[str] = set()
        for s in slaves:
            result |= _disks_under(_read(s / "dev"))
        return result
    return {real.parent.name if (real / "partition").exists() else real.name}


def inspect_device(dev: str | Path) -> Device:
    path = Path(dev)
    where = str(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise B2ctError(f"cannot open device: {exc.strerror}", where=where) from None
    if not stat.S_ISBLK(st.st_mode):
        raise B2ctError("not a block device", where=where, hint="use --image FILE to write an image file")
    devnum = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    sysdir = (Path("/sys/dev/block") / devnum).resolve()
    if (sysdir / "partition").exists():
        raise B2ctError(
            "is a partition, not a whole disk", where=where, hint=f"pass /dev/{sysdir.parent.name}"
        )
    name = sysdir.name
    size = int(_read(sysdir / "size", "0")) * 512
    devnums = {devnum} | {_read(p / "dev") for p in sysdir.glob(f"{name}*") if (p / "partition").exists()}
    model = " ".join(x for x in (_read(sysdir / "device/vendor"), _read(sysdir / "device/model")) if x)
    if not model and (sysdir / "loop/backing_file").exists():
        model = f"loop device on {_read(sysdir / 'loop/backing_file')}"
    d = Device(
        path=path,
        name=name,
        size=size,
        model=model,
        removable=_read(sysdir / "removable") == "1",
        devnums=devnums,
    )
    mounts = _mountinfo()
    d.mounts = [mp for num, mp in mounts if num in devnums]
    for num, mp in mounts:
        if mp in ("/", "/boot", "/boot/efi") and name in _disks_under(num):
            d.system = True
    for line in _read(Path("/proc/swaps")).splitlines()[1:]:
        src = line.split()[0]
        try:
            sst = os.stat(src)
        except OSError:
            continue
        if stat.S_ISBLK(sst.st_mode) and f"{os.major(sst.st_rdev)}:{os.minor(sst.st_rdev)}" in devnums:
            d.mounts.append(f"swap {src}")
    for p in [sysdir, *(q for q in sysdir.glob(f"{name}*") if (q / "partition").exists())]:
        d.holders += [h.name for h in (p / "holders").glob("*")] if (p / "holders").is_dir() else []
    return d


def check_writable(d: Device, *, force: bool) -> None:
    where = str(d.path)
    if d.system:
        raise B2ctError(
            "holds the running system (/ or /boot)", where=where, hint="pick the USB key's device"
        )
    if d.mounts:
        raise B2ctError(
            f"is in use: mounted on {', '.join(d.mounts)}",
            where=where,
            hint=f"unmount it first (umount {d.path}*); --force does not override this",
        )
    if d.holders:
        raise B2ctError(f"is held by {', '.join(d.holders)}", where=where, hint="stop LVM/RAID on it first")
    if d.size == 0:
        raise B2ctError("has no medium (size 0)", where=where, hint="insert the key")
    if not d.removable and not force:
        raise B2ctError(
            f"is not a removable disk ({d.model or 'unknown model'}, {d.size / 2**30:.1f} GiB)",
            where=where,
            hint="check the device name; pass --force if this really is the key",
        )


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of the non-hole regions of a (sparse) file."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole left
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, min(end, size) - start
        pos = end


def _progress(description: str, total: int) -> tuple[Progress, int]:
    p = byte_progress()
    return p, p.add_task(description, total=total)


def write_verified(
    src: Path, dst: Path, *, sparse: bool, zero_ends: bool = False, head: int = 0, name: str | None = None
) -> int:
    """Copy ``src`` onto ``dst`` (device or file), fsync, read back and compare; return bytes written.

    ``sparse`` copies only the data regions of ``src``, plus its first ``head`` bytes whole (filesystem
    metadata whose zeros matter); ``zero_ends`` also clears the first and last MiB of ``dst`` so stale
    partition tables (a GPT and its backup) cannot survive. Errors name ``name`` (default ``dst``): the
    output the user asked for when ``dst`` is its temporary file.
    """
    size = src.stat().st_size
    where = name or str(dst)
    sfd = os.open(src, os.O_RDONLY)
    try:
        extents = merge_ranges([(0, min(head, size)), *data_extents(sfd, size)]) if sparse else [(0, size)]
        try:
            dfd = os.open(dst, os.O_WRONLY | (os.O_EXCL if dst.is_block_device() else os.O_CREAT))
        except OSError as exc:
            raise write_error(exc, where) from None
        total = sum(n for _, n in extents)
        digest_w = hashlib.sha256()
        try:
            dst_size = os.lseek(dfd, 0, os.SEEK_END)
            if zero_ends:
                for off in (0, max(0, dst_size - (1 << 20))):
                    os.pwrite(dfd, bytes(1 << 20), off)
            progress, task = _progress(f"writing {dst.name}", total)
            with progress:
                for off, n in extents:
                    done = 0
                    while done < n:
                        chunk = os.pread(sfd, min(CHUNK, n - done), off + done)
                        os.pwrite(dfd, chunk, off + done)
                        digest_w.update(chunk)
                        done += len(chunk)
                        progress.advance(task, len(chunk))
            os.fsync(dfd)
        except OSError as exc:
            raise write_error(exc, where) from None
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
    verify(dst, extents, digest_w.hexdigest(), where)
    return total


def verify(dst: Path, extents: list[tuple[int, int]], expected: str, where: str | None = None) -> None:
    """Read back what was written (bypassing the page cache for devices) and compare checksums."""
    flags = os.O_RDONLY
    if dst.is_block_device():
        # Drop cached pages so the read-back comes from the medium, not from memory.
        with open(dst, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    fd = os.open(dst, flags)
    digest = hashlib.sha256()
    try:
        total = sum(n for _, n in extents)
        progress, task = _progress(f"verifying {dst.name}", total)
        with progress:
            for off, n in extents:
                done = 0
                while done < n:
                    chunk = os.pread(fd, min(CHUNK, n - done), off + done)
                    if not chunk:
                        raise B2ctError(
                            "read-back ended early: the medium is smaller than written",
                            where=where or str(dst),
                        )
                    digest.update(chunk)
                    done += len(chunk)
                    progress.advance(task, len(chunk))
    finally:
        os.close(fd)
    if digest.hexdigest() != expected:
        raise B2ctError(
            "read-back differs from what was written",
            where=where or str(dst),
            hint="the medium may be failing",
        )
