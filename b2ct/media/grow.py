"""Grow an ISO's new session while its copy is still being made.

Growing appends a session after the old one and rewrites the first 64 KiB (system area and volume
descriptors); to do so xorriso reads only the image's metadata: descriptors, directories, path tables,
the El Torito catalog and the system area, never the data of the large files, which are nearly all of
the bytes. So xorriso grows a *stand-in*: a sparse file the size of the base that holds everything but
those large files' data. When the plain copy of the base is done, the stand-in's head and new session
are laid over it. The result is byte for byte what growing the finished copy gives (tests compare the
two), without waiting for the copy first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from b2ct.errors import B2ctError
from b2ct.fsutil import copy_range, merge_ranges, subtract_ranges
from b2ct.media.tools import SECTOR, Survey

# Growing rewrites the first 32 blocks: libisoburn's superblock area on overwritable media. An image
# made with -partition_offset N has a second superblock at N + 16 (for the partition that starts at
# block N), which growing rewrites too: the head then ends at block N + 32.
HEAD = 32 * SECTOR


def head_bytes(partition_offset: int) -> int:
    """Bytes at the start of the image that growing rewrites (``partition_offset`` in blocks)."""
    return HEAD + partition_offset * SECTOR if partition_offset else HEAD


# Files at most this big stay in the stand-in whole: their data may share a read with metadata, and
# keeping them costs little. Larger ones are skipped unless they are El Torito boot images.
SMALL = 64 << 10


@dataclass(frozen=True)
class Plan:
    size: int  # bytes of the base ISO file
    nwa: int  # byte offset where the new session starts
    keep: list[tuple[int, int]]  # (offset, length): what the stand-in holds
    head: int = HEAD  # bytes at the start that growing rewrites

    @property
    def kept_bytes(self) -> int:
        return sum(n for _, n in self.keep)


def plan(base: Path, report: Survey) -> Plan | None:
    """What a stand-in for ``base`` must hold; None when xorriso does not say where it would append."""
    size = base.stat().st_size
    nwa = report.nwa
    head = head_bytes(report.partition_offset)
    # nwa may lie past the end of the file: an image whose volume spans an appended partition (EL10)
    # ends before the next aligned address. Growing then leaves zeros between, in both ways.
    if nwa is None or nwa < head:
        return None
    large: list[tuple[int, int]] = []
    small: list[tuple[int, int]] = []
    for name, pieces in report.files.items():
        big = name not in report.boot_images and sum(n for _, n in pieces) > SMALL
        (large if big else small).extend(pieces)
    # What lies after the old session (EL10's appended ESP) is kept too: growing overwrites only part
    # of it, and the rest must read as it does in the copy.
    skip = subtract_ranges(merge_ranges([(o, n) for o, n in large if o < nwa]), merge_ranges(small))
    keep = subtract_ranges([(0, size)], [(o, min(n, nwa - o)) for o, n in skip if o >= head])
    return Plan(size=size, nwa=nwa, keep=merge_ranges([(0, head), *keep]), head=head)


def make_stand_in(base: Path, p: Plan, dest: Path) -> None:
    with base.open("rb") as fi, dest.open("wb") as fo:
        os.ftruncate(fo.fileno(), p.size)
        for off, n in p.keep:
            copy_range(fi.fileno(), off, fo.fileno(), off, n)


def lay_over(stand: Path, p: Plan, out: Path) -> None:
    """Put what growing wrote in ``stand`` (head and new session) over the finished copy ``out``."""
    end = stand.stat().st_size
    if out.stat().st_size != p.size:
        raise B2ctError("the copy of the base ISO is incomplete", where=str(out))
    with stand.open("rb") as fi, out.open("r+b") as fo:
        for off, n in ((0, p.head), (p.nwa, end - p.nwa)):
            if n > 0:
                copy_range(fi.fileno(), off, fo.fileno(), off, n)
        if end < p.size:  # as growing the copy itself would leave it
            os.ftruncate(fo.fileno(), end)
