#!/usr/bin/env python3
"""Ephemeral disks: format and allocation times side by side, and the role's choice against the fastest.

Formats 20/40/120 GB sparse-backed loop devices with XFS, ext4 (eager inode tables and journal) and ext4
with lazy_itable_init; allocates 2 GB on an XFS filesystem with dd of zeros, truncate and fallocate; and
makes a 2 GiB volatile disk the way OpenNebula 6.10's transfer drivers do (mkimage/mkswap run
`$QEMU_IMG create -f raw FILE 2048M` on the node): with the driver's default qemu-img (a sparse file),
with b2ct's wrapper (roles/opennebula_node/files/b2ct-qemu-img → b2ct-alloc: fallocate, no holes), and
with dd of zeros (no holes without fallocate: the Torino study's 31 s for 2 GB).
Root only (loop devices); everything it creates is removed by id at the end. Not run in CI.

    python bench/ephemeral.py [--dir /var/tmp] [--sizes 20,40,120] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

GiB = 1024**3
FORMATS = {
    "xfs": ["mkfs.xfs", "-q", "-f"],
    "ext4": ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"],
    "ext4-lazy": ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1"],
}
ROLE_FORMAT = {"xfs": "xfs", "ext4": "ext4-lazy"}  # what ephemeral_storage runs for each ephemeral_fs
ALLOC = {
    "dd zeros": lambda f, size: [
        "dd",
        "if=/dev/zero",
        f"of={f}",
        "bs=4M",
        f"count={size // (4 << 20)}",
        "conv=fsync",
        "status=none",
    ],
    "truncate": lambda f, size: ["truncate", "-s", str(size), str(f)],
    "fallocate": lambda f, size: ["fallocate", "-l", str(size), str(f)],
}
ROLE_ALLOC = "fallocate"  # b2ct-alloc on ext4/XFS
NODE_FILES = Path(__file__).resolve().parents[1] / "roles" / "opennebula_node" / "files"
VOLATILE = {
    "driver default": lambda f, size: ["qemu-img", "create", "-q", "-f", "raw", str(f), f"{size >> 20}M"],
    "b2ct wrapper": lambda f, size: [str(NODE_FILES / "b2ct-qemu-img"), "create", "-f", "raw", str(f),
                                     f"{size >> 20}M"],
    "dd zeros": ALLOC["dd zeros"],
}  # fmt: skip


def sh(*argv: str | Path) -> str:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def loop(image: Path, size: int) -> Iterator[str]:
    with open(image, "wb") as fh:
        fh.truncate(size)
    dev = sh("losetup", "--find", "--show", image)
    try:
        yield dev
    finally:
        sh("losetup", "-d", dev)
        image.unlink()


def timed(argv: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic() - start


def bench_format(work: Path, sizes: list[int], repeat: int) -> None:
    print(f"format (median of {repeat}; seconds)")
    print(
        f"{'size':>6} " + " ".join(f"{name:>10}" for name in FORMATS) + "   role xfs÷fastest  ext4-lazy÷ext4"
    )
    for gb in sizes:
        times = {}
        with loop(work / f"fmt-{gb}.img", gb * GiB) as dev:
            for name, cmd in FORMATS.items():
                times[name] = statistics.median(timed([*cmd, dev]) for _ in range(repeat))
        fastest = min(times.values())
        print(
            f"{gb:>4}GB "
            + " ".join(f"{t:>10.2f}" for t in times.values())
            + f"   {times[ROLE_FORMAT['xfs']] / fastest:>15.2f}  {times['ext4-lazy'] / times['ext4']:>14.2f}"
        )


def bench_alloc(work: Path, size: int, repeat: int) -> None:
    print(f"\nallocate {size // GiB} GB on XFS (median of {repeat}; seconds; du after)")
    with loop(work / "alloc-fs.img", 8 * GiB) as dev:
        sh("mkfs.xfs", "-q", "-f", dev)
        mnt = Path(tempfile.mkdtemp(prefix="b2ct-bench-mnt-", dir=work))
        sh("mount", dev, mnt)
        try:
            times, used = {}, {}
            for name, make in ALLOC.items():
                runs = []
                for _ in range(repeat):
                    f = mnt / "disk.img"
                    runs.append(timed(make(f, size)))
                    used[name] = int(sh("du", "-B1", f).split()[0])
                    f.unlink()
                    sh("sync")
                times[name] = statistics.median(runs)
        finally:
            sh("umount", mnt)
            mnt.rmdir()
    for name, t in times.items():
        print(
            f"  {name:<10} {t:8.3f}s   du={used[name] / GiB:5.2f} GB"
            + ("  (sparse: unfit for swap)" if used[name] < size else "")
        )
    fastest = min(times.values())
    full = {n: t for n, t in times.items() if used[n] >= size}
    print(
        f"  role ({ROLE_ALLOC}) ÷ fastest: {times[ROLE_ALLOC] / fastest:.2f}"
        f"   ÷ fastest without holes: {times[ROLE_ALLOC] / min(full.values()):.2f}"
        f"   dd ÷ {ROLE_ALLOC}: {times['dd zeros'] / times[ROLE_ALLOC]:.0f}"
    )


def bench_volatile(work: Path, size: int, repeat: int) -> None:
    """A volatile disk as OpenNebula's driver makes it, default vs b2ct's wrapper, on XFS."""
    print(
        f"\nvolatile disk of {size // GiB} GiB as OpenNebula 6.10 makes it (median of {repeat}; s; du after)"
    )
    env = {**os.environ, "B2CT_ALLOC": str(NODE_FILES / "b2ct-alloc")}
    with loop(work / "volatile-fs.img", 8 * GiB) as dev:
        sh("mkfs.xfs", "-q", "-f", dev)
        mnt = Path(tempfile.mkdtemp(prefix="b2ct-bench-mnt-", dir=work))
        sh("mount", dev, mnt)
        try:
            times, used = {}, {}
            for name, make in VOLATILE.items():
                runs = []
                for _ in range(repeat):
                    f = mnt / "disk.1"
                    start = time.monotonic()
                    subprocess.run(make(f, size), check=True, capture_output=True, env=env)
                    runs.append(time.monotonic() - start)
                    used[name] = int(sh("du", "-B1", f).split()[0])
                    f.unlink()
                    sh("sync")
                times[name] = statistics.median(runs)
        finally:
            sh("umount", mnt)
            mnt.rmdir()
    for name, t in times.items():
        holes = "  (sparse: blocks allocated at the guest's first writes)" if used[name] < size else ""
        print(f"  {name:<15} {t:8.3f}s   du={used[name] / GiB:5.2f} GiB{holes}")
    print(
        f"  wrapper ÷ dd zeros: {times['b2ct wrapper'] / times['dd zeros']:.3f} (target <= 0.1)"
        f"   wrapper ÷ driver default: {times['b2ct wrapper'] / times['driver default']:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/var/tmp", help="where the sparse images go")
    ap.add_argument("--sizes", default="20,40,120", help="disk sizes in GB")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="b2ct-bench-", dir=args.dir))
    try:
        bench_format(work, [int(s) for s in args.sizes.split(",")], args.repeat)
        bench_alloc(work, 2 * GiB, args.repeat)
        bench_volatile(work, 2 * GiB, args.repeat)
    finally:
        for left in work.iterdir():
            left.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
