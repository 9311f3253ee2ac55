"""The ISO checksum that the installer's media check verifies (``rd.live.check`` runs checkisomd5).

Format and algorithm are isomd5sum's (libimplantisomd5.c, libcheckisomd5.c, utilities.c; unchanged
from 1.2.3, Debian 12's, to 1.2.5): MD5 over the image from byte 0 up to the primary volume
descriptor's volume size less 15 sectors, read in 32 KiB buffers, with the descriptor's 512-byte
application-use field (at byte 883 of it) blank while hashing; after the first buffer that starts in
each of fragments 1-20 (of 21 equal ones), the first hex digit of each of the first 3 bytes of the MD5
so far. The result is written into that field as implantisomd5 writes it (RHLISOSTATUS=0, as without
``--supported-iso``).

b2ct computes it itself instead of running implantisomd5 afterwards because implantisomd5 can only
read the finished file: b2ct hashes the output's bytes from where they already are (most of them in
the base ISO, the rest in the few blocks xorriso wrote) while the copy of the base is still being made.
Tests compare the result with implantisomd5's, byte for byte, and run checkisomd5 on it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from b2ct.errors import B2ctError

SECTOR = 2048
PVD_OFFSET = 16 * SECTOR
APPDATA_OFFSET = 883
APPDATA_SIZE = 512
SIZE_OFFSET = 84  # big-endian half of the both-endian volume space size
SKIPSECTORS = 15
FRAGMENT_COUNT = 20
FRAGMENT_DIGITS = 3  # FRAGMENT_SUM_SIZE 60 / FRAGMENT_COUNT
BUFFER = 16 * SECTOR  # isomd5sum reads NUM_SYSTEM_SECTORS * SECTOR_SIZE at a time
CHUNK = 8 << 20


@dataclass(frozen=True)
class Segment:
    """``size`` bytes of the image, found at ``offset`` in ``path``; consecutive segments tile it."""

    path: Path
    offset: int
    size: int


def volume_size(head: bytes, where: str) -> int:
    """Bytes the primary volume descriptor in ``head`` (the image's first 34 KiB or more) spans."""
    pvd = head[PVD_OFFSET : PVD_OFFSET + SECTOR]
    if len(pvd) < SECTOR or pvd[0] != 1 or pvd[1:6] != b"CD001":
        # implantisomd5 looks only here too: past sector 16 it cannot find the descriptor.
        raise B2ctError("no primary volume descriptor at sector 16: cannot implant a checksum", where=where)
    return int.from_bytes(pvd[SIZE_OFFSET : SIZE_OFFSET + 4], "big") * SECTOR


def _snapshot_ends(total: int) -> list[int]:
    """Where the MD5 so far gives a fragment sum: the end of the first buffer starting in each new
    fragment, as isomd5sum's read loop sees them (it compares fragment numbers of buffer starts)."""
    fragment = total // (FRAGMENT_COUNT + 1)
    if fragment <= 0:
        return []
    ends: list[int] = []
    previous = 0
    start = 0
    while start < total:
        current = start // fragment
        if current != previous:
            ends.append(min(start + BUFFER, total))
            previous = current
        # Buffers before the first one that starts in the next fragment cannot change the number.
        next_fragment = -(-((current + 1) * fragment) // BUFFER) * BUFFER
        start = max(start + BUFFER, next_fragment)
    return ends


def _fragment_digits(digest: bytes) -> str:
    # snprintf("%01x", byte) then strncat(..., 1): the first hex digit as printf writes the byte.
    return "".join(f"{b:x}"[0] for b in digest[:FRAGMENT_DIGITS])


def appdata(md5hex: str, fragments: str) -> bytes:
    text = (
        f"ISO MD5SUM = {md5hex};SKIPSECTORS = {SKIPSECTORS};RHLISOSTATUS=0;"
        f"FRAGMENT SUMS = {fragments};FRAGMENT COUNT = {FRAGMENT_COUNT};"
        "THIS IS NOT THE SAME AS RUNNING MD5SUM ON THIS ISO!!"
    )
    return text.encode("ascii").ljust(APPDATA_SIZE, b" ")


class Checksum:
    """Hash an image given as segments on a thread; ``result`` gives the application-use field.

    ``head`` is the image's first bytes (at least to the end of the primary volume descriptor), for
    its volume size. ``cancel`` stops between chunks; one of ``result`` or ``cancel`` must be called.
    """

    def __init__(self, segments: list[Segment], head: bytes, where: str) -> None:
        self.where = where
        end = sum(s.size for s in segments)
        # implantisomd5 stops at the end of the file if the descriptor claims more.
        self.total = min(volume_size(head, where) - SKIPSECTORS * SECTOR, end)
        if self.total <= 0:
            raise B2ctError("image too small for a media checksum", where=where)
        self.segments = segments
        self._value: bytes | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="b2ct-isomd5", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._hash()
        except BaseException as exc:  # handed to the waiting thread
            self._error = exc

    def _hash(self) -> bytes:
        md5 = hashlib.md5(usedforsecurity=False)
        cuts = _snapshot_ends(self.total)
        fragments: list[str] = []
        blank_start = PVD_OFFSET + APPDATA_OFFSET
        blank_end = blank_start + APPDATA_SIZE
        buf = bytearray(CHUNK)
        pos = 0
        for seg in self.segments:
            if pos >= self.total:
                break
            with seg.path.open("rb", buffering=0) as f:
                done = 0
                while done < seg.size and pos < self.total:
                    if self._stop.is_set():
                        raise InterruptedError("cancelled")
                    n = min(CHUNK, seg.size - done, self.total - pos)
                    if cuts and pos < cuts[0] < pos + n:
                        n = cuts[0] - pos
                    view = memoryview(buf)[:n]
                    got = 0
                    while got < n:
                        r = os.preadv(f.fileno(), [view[got:]], seg.offset + done + got)
                        if r <= 0:
                            raise B2ctError(
                                "image ended early while computing its checksum", where=self.where
                            )
                        got += r
                    if pos < blank_end and pos + n > blank_start:
                        lo, hi = max(pos, blank_start), min(pos + n, blank_end)
                        view[lo - pos : hi - pos] = b" " * (hi - lo)
                    md5.update(view)
                    pos += n
                    done += n
                    if cuts and pos == cuts[0]:
                        fragments.append(_fragment_digits(md5.copy().digest()))
                        cuts.pop(0)
        return appdata(md5.hexdigest(), "".join(fragments))

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> bytes:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def implant(path: Path, field: bytes) -> None:
    """Write the application-use ``field`` into the primary volume descriptor of ``path``."""
    with path.open("r+b") as f:
        os.pwrite(f.fileno(), field, PVD_OFFSET + APPDATA_OFFSET)


def implant_file(path: Path, where: str) -> None:
    """Compute and implant the checksum of the finished image at ``path`` (what implantisomd5 -f does)."""
    with path.open("rb") as f:
        head = f.read(PVD_OFFSET + SECTOR)
    job = Checksum([Segment(path, 0, path.stat().st_size)], head, where)
    implant(path, job.result())
