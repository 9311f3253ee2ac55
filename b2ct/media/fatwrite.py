"""Fill a freshly formatted FAT32 filesystem in one pass, the file data copied by the kernel.

mkfs.fat formats; this module lays out every directory and file contiguously, writes the FAT chains,
the directory entries (with long names) and the FSInfo counts, then copies each file's bytes from
where they already lie (the ISO's extents) with copy_file_range. mcopy would read every byte through
user space after the ISO had first been extracted to a temporary tree: three times the I/O.
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from b2ct.errors import B2ctError
from b2ct.fsutil import copy_range

DIR_ENTRY = 32
EOC = 0x0FFFFFFF
MAX_FILE = 0xFFFFFFFF
MAX_DIR_ENTRIES = 65536
ATTR_DIR = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LFN = 0x0F
# Characters a short (8.3) name may hold; anything else needs a long name entry.
SHORT_OK = re.compile(r"[A-Z0-9!#$%&'()\-@^_`{}~]+")
LONG_FORBIDDEN = re.compile(r'[\x00-\x1f"*/:<>?\\|\x7f]')


@dataclass(frozen=True)
class Segment:
    """``size`` bytes at ``offset`` in ``path``: one piece of a file's content."""

    path: Path
    offset: int
    size: int


Content = tuple[Segment, ...]


@dataclass(frozen=True)
class Geometry:
    part_offset: int
    sector: int
    cluster: int  # bytes
    reserved: int  # sectors
    nfats: int
    fat_sectors: int
    root_cluster: int
    fsinfo: int  # sector
    backup: int  # sector of the backup boot sector, 0 if none
    clusters: int  # data clusters: numbers 2 .. clusters + 1

    @property
    def fat_offset(self) -> int:
        return self.part_offset + self.reserved * self.sector

    @property
    def data_offset(self) -> int:
        return self.fat_offset + self.nfats * self.fat_sectors * self.sector

    def at(self, cluster: int) -> int:
        return self.data_offset + (cluster - 2) * self.cluster


def read_geometry(fd: int, part_offset: int, where: str) -> Geometry:
    bpb = os.pread(fd, 512, part_offset)
    if len(bpb) < 512 or bpb[510:512] != b"\x55\xaa" or bpb[82:90] != b"FAT32   ":
        raise B2ctError("no FAT32 boot sector where the filesystem should start", where=where)
    sector, spc, reserved, nfats = struct.unpack_from("<HBHB", bpb, 11)
    (total16,) = struct.unpack_from("<H", bpb, 19)
    (fat16,) = struct.unpack_from("<H", bpb, 22)
    total32, fat32 = struct.unpack_from("<II", bpb, 32)
    (root,) = struct.unpack_from("<I", bpb, 44)
    fsinfo, backup = struct.unpack_from("<HH", bpb, 48)
    fat_sectors = fat16 or fat32
    total = total16 or total32
    data_sectors = total - reserved - nfats * fat_sectors
    if not (sector and spc and nfats and fat_sectors) or data_sectors <= 0:
        raise B2ctError("inconsistent FAT32 boot sector", where=where)
    clusters = min(data_sectors // spc, fat_sectors * sector // 4 - 2)
    return Geometry(
        part_offset, sector, spc * sector, reserved, nfats, fat_sectors, root, fsinfo, backup, clusters
    )


def _dos_datetime(epoch: float) -> tuple[int, int]:
    t = time.gmtime(epoch)
    year = min(max(t.tm_year, 1980), 2107)
    return ((year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday, (t.tm_hour << 11) | (t.tm_min << 5) | (
        t.tm_sec // 2
    )


def _short_candidates(name: str) -> Iterator[tuple[str, str]]:
    """Short names for ``name``, best first: its own 8.3 spelling if it has one, then BASIS~N."""
    upper = name.upper()
    base, dot, ext = upper.lstrip(".").rpartition(".")
    if not dot:
        base, ext = upper.lstrip("."), ""
    if (
        base
        and len(base) <= 8
        and len(ext) <= 3
        and SHORT_OK.fullmatch(base)
        and (not ext or SHORT_OK.fullmatch(ext))
    ):
        yield base, ext
    clean_base = re.sub(r"[^A-Z0-9!#$%&'()\-@^_`{}~]", "_", base.replace(" ", "").lstrip("."))
    clean_ext = re.sub(r"[^A-Z0-9!#$%&'()\-@^_`{}~]", "_", ext.replace(" ", ""))[:3]
    clean_base = clean_base.replace(".", "") or "_"
    for n in range(1, 1000000):
        tail = f"~{n}"
        yield clean_base[: 8 - len(tail)] + tail, clean_ext
    raise AssertionError("unreachable")


def _lfn_checksum(short: bytes) -> int:
    s = 0
    for c in short:
        s = (((s & 1) << 7) + (s >> 1) + c) & 0xFF
    return s


@dataclass
class _Node:
    name: str
    parent: _Node | None
    children: dict[str, _Node] | None = None  # a directory when not None
    content: Content = ()
    short: bytes = b""
    lfn: bool = False
    runs: list[tuple[int, int]] = field(default_factory=list)  # (first cluster, count)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.content)

    @property
    def first(self) -> int:
        return self.runs[0][0] if self.runs else 0

    def slots(self) -> int:
        return 1 + (-(-len(self.name.encode("utf-16-le")) // 26) if self.lfn else 0)

    def path(self) -> str:
        parts: list[str] = []
        node: _Node | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(parts))


def _tree(files: dict[str, Content], dirs: set[str], where: str) -> _Node:
    root = _Node("", None, {})

    def walk(rel: str, is_dir: bool) -> _Node:
        node = root
        parts = [p for p in rel.split("/") if p]
        for i, part in enumerate(parts):
            if (
                part in (".", "..")
                or LONG_FORBIDDEN.search(part)
                or len(part) > 255
                or part != part.rstrip(" .")
            ):
                raise B2ctError(f"/{rel}: the name {part!r} cannot be stored on FAT", where=where)
            assert node.children is not None
            leaf = i == len(parts) - 1 and not is_dir
            key = part.lower()  # FAT names are case-insensitive: two spellings would collide
            child = node.children.get(key)
            if child is None:
                child = _Node(part, node, None if leaf else {})
                node.children[key] = child
            elif leaf or child.children is None:
                raise B2ctError(f"/{rel}: clashes with {child.path()} on FAT", where=where)
            node = child
        return node

    for d in sorted(dirs):
        walk(d, True)
    for rel, content in sorted(files.items()):
        node = walk(rel, False)
        node.content = content
        if node.size > MAX_FILE:
            raise B2ctError(
                f"/{rel} is {node.size} bytes; FAT32 holds files below 4 GiB",
                where=where,
                hint="write the hybrid ISO instead (--hybrid)",
            )
    return root


def _dirs(root: _Node) -> list[_Node]:
    """Directories breadth first, children in name order: a stable layout for reproducible keys."""
    out, queue = [], [root]
    while queue:
        d = queue.pop(0)
        out.append(d)
        assert d.children is not None
        queue.extend(c for _, c in sorted(d.children.items()) if c.children is not None)
    return out


def _name_shorts(d: _Node, taken: set[bytes]) -> None:
    assert d.children is not None
    for _, child in sorted(d.children.items()):
        for base, ext in _short_candidates(child.name):
            short = (base.ljust(8) + ext.ljust(3)).encode("ascii")
            if short not in taken:
                break
        taken.add(short)
        child.short = short
        exact = base + ("." + ext if ext else "")
        child.lfn = exact != child.name


def _entry(short: bytes, attr: int, cluster: int, size: int, stamp: tuple[int, int]) -> bytes:
    date, tm = stamp
    return struct.pack(
        "<11sBBBHHHHHHHI", short, attr, 0, 0, tm, date, date, cluster >> 16, tm, date, cluster & 0xFFFF, size
    )


def _lfn_entries(name: str, short: bytes) -> bytes:
    units = list(struct.unpack(f"<{len(name.encode('utf-16-le')) // 2}H", name.encode("utf-16-le")))
    n = -(-len(units) // 13)
    if len(units) % 13:
        units += [0] + [0xFFFF] * (13 - len(units) % 13 - 1)
    check = _lfn_checksum(short)
    out = b""
    for seq in range(n, 0, -1):  # stored last piece first
        u = units[(seq - 1) * 13 : seq * 13]
        order = seq | (0x40 if seq == n else 0)
        out += struct.pack("<B5HBBB6HH2H", order, *u[:5], ATTR_LFN, 0, check, *u[5:11], 0, *u[11:13])
    return out


def populate(
    image: Path,
    part_offset: int,
    files: dict[str, Content],
    dirs: set[str],
    *,
    mtime: float,
    where: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``files`` (path -> content) and ``dirs`` into the empty FAT32 at ``part_offset``.

    Returns the bytes of file data written. Raises a one-line error, before writing anything, when the
    files do not fit.
    """
    root = _tree(files, dirs, where)
    stamp = _dos_datetime(mtime)
    fd = os.open(image, os.O_RDWR)
    try:
        g = read_geometry(fd, part_offset, where)
        n = g.root_cluster + 2
        fat = struct.unpack(f"<{n}I", os.pread(fd, n * 4, g.fat_offset))
        if fat[g.root_cluster] & 0x0FFFFFFF < 0x0FFFFFF8 or any(fat[2 : g.root_cluster]) or fat[-1]:
            raise B2ctError("the FAT32 filesystem is not freshly formatted", where=where)
        # Slots the label entry (written by mkfs.fat) already takes in the root directory.
        root_used = 0
        root_bytes = os.pread(fd, g.cluster, g.at(g.root_cluster))
        while root_used * DIR_ENTRY < len(root_bytes) and root_bytes[root_used * DIR_ENTRY] != 0:
            root_used += 1
        directories = _dirs(root)
        next_free = g.root_cluster + 1

        def allocate(count: int) -> tuple[int, int]:
            nonlocal next_free
            first = next_free
            next_free += count
            return first, count

        for d in directories:
            _name_shorts(d, {b".          ", b"..         "})
            assert d.children is not None
            slots = (root_used if d is root else 2) + sum(c.slots() for c in d.children.values())
            if slots > MAX_DIR_ENTRIES:
                raise B2ctError(f"{d.path()}: {slots} entries, FAT allows {MAX_DIR_ENTRIES}", where=where)
            clusters = max(1, -(-slots * DIR_ENTRY // g.cluster))
            if d is root:
                d.runs = [(g.root_cluster, 1)]
                if clusters > 1:
                    d.runs.append(allocate(clusters - 1))
            else:
                d.runs = [allocate(clusters)]
        regular = [c for d in directories for _, c in sorted(d.children.items()) if c.children is None]
        for f in regular:
            if f.size:
                f.runs = [allocate(-(-f.size // g.cluster))]
        used = next_free - 2
        if used > g.clusters:
            need = used * g.cluster + g.data_offset - part_offset
            have = g.clusters * g.cluster + g.data_offset - part_offset
            raise B2ctError(
                f"the installer files need {need / 2**20:.0f} MiB, the key has {have / 2**20:.0f} MiB",
                where="--size",
                hint=f"use --size {need // 2**30 + 2}G or a bigger key",
            )

        # The FAT: every run links to the next cluster, runs to each other, the last to end of chain.
        table = bytearray(os.pread(fd, next_free * 4, g.fat_offset))
        for node in [*directories, *regular]:
            chain = [c for first, count in node.runs for c in range(first, first + count)]
            for a, b in zip(chain, [*chain[1:], EOC][: len(chain)], strict=True):
                struct.pack_into("<I", table, a * 4, b)
        for i in range(g.nfats):
            os.pwrite(fd, bytes(table), g.fat_offset + i * g.fat_sectors * g.sector)

        for d in directories:
            assert d.children is not None
            data = bytearray(root_bytes[: root_used * DIR_ENTRY] if d is root else b"")
            if d is not root:
                assert d.parent is not None
                parent = 0 if d.parent is root else d.parent.first
                data += _entry(b".          ", ATTR_DIR, d.first, 0, stamp)
                data += _entry(b"..         ", ATTR_DIR, parent, 0, stamp)
            for _, c in sorted(d.children.items()):
                if c.lfn:
                    data += _lfn_entries(c.name, c.short)
                is_dir = c.children is not None
                data += _entry(
                    c.short, ATTR_DIR if is_dir else ATTR_ARCHIVE, c.first, 0 if is_dir else c.size, stamp
                )
            data += bytes(sum(n for _, n in d.runs) * g.cluster - len(data))
            pos = 0
            for first, count in d.runs:
                os.pwrite(fd, bytes(data[pos : pos + count * g.cluster]), g.at(first))
                pos += count * g.cluster

        written = 0
        sources: dict[Path, int] = {}
        try:
            for f in regular:
                dst = g.at(f.first)
                for seg in f.content:
                    if seg.path not in sources:
                        sources[seg.path] = os.open(seg.path, os.O_RDONLY)
                    try:
                        copy_range(sources[seg.path], seg.offset, fd, dst, seg.size, progress)
                    except EOFError:
                        raise B2ctError(
                            f"{f.path()}: its source {seg.path} ended early", where=where
                        ) from None
                    dst += seg.size
                    written += seg.size
        finally:
            for s in sources.values():
                os.close(s)

        # FSInfo (and its backup copy) hold the free count and where to look next; mtools and
        # syslinux --install use them to place ldlinux.sys.
        for base in {g.fsinfo, g.backup + g.fsinfo if g.backup else 0} - {0}:
            at = part_offset + base * g.sector
            info = bytearray(os.pread(fd, 512, at))
            if info[:4] == b"RRaA" and info[484:488] == b"rrAa":
                struct.pack_into("<II", info, 488, g.clusters - used, next_free)
                os.pwrite(fd, bytes(info), at)
        return written
    finally:
        os.close(fd)
