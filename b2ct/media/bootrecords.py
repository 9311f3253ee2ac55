"""Where a hybrid install ISO keeps what UEFI firmware boots: El Torito entries and MBR/GPT partitions.

An ESP (EFI system partition: a FAT filesystem holding EFI/BOOT) can be reached three ways, and EL
media use each: an El Torito boot entry for platform 0xEF (CD boot), an MBR partition of type 0xEF or
a GPT partition of the ESP type (disk boot, e.g. the ISO written to a USB key). It is either a file in
the ISO tree (images/efiboot.img on EL6-EL9) or bytes outside every file (EL10: an appended partition,
inside the volume descriptor's span when the ISO was made with ``-partition_offset 16``).

Sources: El Torito Bootable CD-ROM Format Specification 1.0 (boot record at sector 17, catalog with
validation entry, initial entry, section headers 0x90/0x91); UEFI Specification 2.10 sections 5.2 and 5.3
(MBR partition record, GPT header at LBA 1 and entry array; ESP type GUID below).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from b2ct.errors import B2ctError
from b2ct.media.tools import SECTOR

EFI_GUID = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
MBR_ESP = 0xEF
MBR_PROTECTIVE = 0xEE
PLATFORM_UEFI = 0xEF
BOOTABLE = 0x88
EXTENSION = 0x44


@dataclass(frozen=True)
class Partition:
    """One partition table entry; ``start`` and ``size`` in bytes."""

    number: int
    scheme: str  # "mbr" or "gpt"
    esp: bool
    start: int
    size: int

    def describe(self) -> str:
        return f"{self.scheme.upper()} partition {self.number}"


@dataclass(frozen=True)
class BootImage:
    """A bootable El Torito catalog entry; ``start`` in bytes, ``sectors`` of 512 bytes (0: unknown)."""

    index: int  # 1-based, in catalog order, as xorriso -report_el_torito numbers them
    platform: int  # 0 = x86 BIOS, 0xEF = UEFI
    start: int
    sectors: int


@dataclass(frozen=True)
class EspRegion:
    """One ESP and everything that points at it."""

    start: int  # bytes from the start of the image
    size: int | None  # bytes, when a file or a partition entry says
    refs: tuple[str, ...]  # e.g. ("El Torito UEFI image 2", "GPT partition 2")
    file: str | None  # path in the ISO tree (no leading slash) when a file holds the ESP
    partition: Partition | None  # the entry to re-append it as, when it is outside every file

    def describe(self) -> str:
        what = f"/{self.file}" if self.file else f"the ESP at byte {self.start}"
        return f"{what} ({', '.join(self.refs)})"


def partitions(path: Path) -> list[Partition]:
    """Every entry of the MBR (protective entries left out) and of the GPT, both when both exist.

    Hybrid ISOs carry both tables and they need not agree (isohybrid --uefi marks the ESP 0xEF in the
    MBR and "basic data" in the GPT), so neither is preferred here.
    """
    parts: list[Partition] = []
    with path.open("rb") as f:
        mbr = f.read(512)
        gpt_header = f.read(512)
        if len(mbr) == 512 and mbr[510:512] == b"\x55\xaa":
            for i in range(4):
                e = mbr[446 + 16 * i : 462 + 16 * i]
                ptype = e[4]
                start, count = struct.unpack_from("<II", e, 8)
                if ptype and ptype != MBR_PROTECTIVE and count:
                    parts.append(Partition(i + 1, "mbr", ptype == MBR_ESP, start * 512, count * 512))
        if gpt_header[:8] == b"EFI PART":
            entries_lba, n, entry_size = struct.unpack_from("<QII", gpt_header, 72)
            if 0 < n <= 1024 and 128 <= entry_size <= 4096:
                f.seek(entries_lba * 512)
                table = f.read(n * entry_size)
                for i in range(len(table) // entry_size):
                    e = table[i * entry_size : (i + 1) * entry_size]
                    if e[:16] == bytes(16):
                        continue
                    first, last = struct.unpack_from("<QQ", e, 32)
                    if last >= first:
                        esp = uuid.UUID(bytes_le=e[:16]) == EFI_GUID
                        parts.append(Partition(i + 1, "gpt", esp, first * 512, (last - first + 1) * 512))
    return parts


def _boot_catalog(f: BinaryIO) -> int | None:
    """Byte offset of the El Torito catalog, from the boot record among the volume descriptors."""
    for sector in range(16, 64):
        f.seek(sector * SECTOR)
        vd = f.read(SECTOR)
        if len(vd) < SECTOR or vd[1:6] != b"CD001":
            return None
        if vd[0] == 0 and vd[7:30] == b"EL TORITO SPECIFICATION":
            return struct.unpack_from("<I", vd, 0x47)[0] * SECTOR
        if vd[0] == 255:  # set terminator
            return None
    return None


def eltorito(path: Path) -> list[BootImage]:
    """Bootable El Torito entries (initial entry first, then each section's), with their platform."""
    where = str(path)
    images: list[BootImage] = []
    with path.open("rb") as f:
        catalog = _boot_catalog(f)
        if catalog is None:
            return images
        f.seek(catalog)
        data = f.read(SECTOR * 4)
    if len(data) < 64 or data[0] != 1 or data[30:32] != b"\x55\xaa":
        raise B2ctError("the El Torito boot catalog is damaged (no validation entry)", where=where)
    platform = data[1]
    pos = 32

    def entry(at: int, platform: int) -> None:
        e = data[at : at + 32]
        if e[0] == BOOTABLE:
            sectors, lba = struct.unpack_from("<HI", e, 6)
            images.append(BootImage(len(images) + 1, platform, lba * SECTOR, sectors))

    entry(pos, platform)  # the initial/default entry
    pos += 32
    while pos + 32 <= len(data) and data[pos] in (0x90, 0x91):
        final = data[pos] == 0x91
        platform = data[pos + 1]
        count = struct.unpack_from("<H", data, pos + 2)[0]
        pos += 32
        while count and pos + 32 <= len(data):
            if data[pos] != EXTENSION:  # extension records continue the entry before them
                entry(pos, platform)
                count -= 1
            pos += 32
        if final:
            break
    return images


def esp_regions(path: Path, files: dict[str, list[tuple[int, int]]]) -> list[EspRegion]:
    """Every ESP of the image at ``path``: what El Torito UEFI entries and ESP partitions point at.

    ``files`` maps each ISO tree path to its data extents (byte offset, size), as iso.extents gives
    them: an ESP whose start is a file's first byte is that file (an embedded image).
    """
    by_start = {parts[0][0]: rel for rel, parts in files.items() if parts and parts[0][1] > 0}
    parts = partitions(path)
    refs: dict[int, list[str]] = {}
    sizes: dict[int, int] = {}
    for img in eltorito(path):
        if img.platform == PLATFORM_UEFI:
            refs.setdefault(img.start, []).append(f"El Torito UEFI image {img.index}")
    for p in parts:
        if p.esp:
            refs.setdefault(p.start, []).append(p.describe())
            sizes[p.start] = max(sizes.get(p.start, 0), p.size)
    regions = []
    for start in sorted(refs):
        # Entries of another type at the same place name the same bytes (isohybrid's GPT "basic data").
        same = [p for p in parts if p.start == start]
        names = list(dict.fromkeys([*refs[start], *(p.describe() for p in same)]))
        rel = by_start.get(start)
        if rel is not None:
            size = sum(n for _, n in files[rel])
            regions.append(EspRegion(start, size, tuple(names), rel, None))
            continue
        entry = next((p for p in same if p.esp), same[0] if same else None)
        regions.append(
            EspRegion(start, sizes.get(start) or (entry.size if entry else None), tuple(names), None, entry)
        )
    return regions
