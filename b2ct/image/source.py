"""The image at its source: a file on this machine or on an inventory host; its size, sha256 and format."""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from b2ct.errors import B2ctError
from b2ct.image.hosts import Node, last_line, run

LOCAL = "this machine"  # the name a local source goes by in progress and results
QCOW2_MAGIC = b"QFI\xfb"
PROBE_TIMEOUT = 900.0  # hashing a multi-GB image on a busy host's disk takes minutes


@dataclass(frozen=True)
class ImageInfo:
    """The image as found at its source: where, name at the destination, size (bytes), sha256, format."""

    host: str  # LOCAL or an inventory host name
    path: str
    name: str
    size: int
    sha256: str
    format: Literal["qcow2", "raw"]


def _format(header: bytes, where: str) -> Literal["qcow2", "raw"]:
    """qcow2 (by its magic, QEMU's docs/interop/qcow2.txt) or raw; a qcow2 overlay is refused: its backing
    file would be missing on the hosts."""
    if header[:4] != QCOW2_MAGIC:
        return "raw"
    backing_offset = int.from_bytes(header[8:16], "big") if len(header) >= 16 else 0
    if backing_offset:
        raise B2ctError(
            "the image is a qcow2 overlay (it has a backing file): the hosts would not have its base",
            where=where,
            hint="flatten it first: qemu-img convert -O qcow2 OVERLAY FLAT.qcow2",
        )
    return "qcow2"


def local_image(path: Path, name: str | None = None) -> ImageInfo:
    """Size, sha256 and format of an image file on this machine. Raises B2ctError if it is not a
    readable regular file or is a qcow2 overlay."""
    try:
        st = path.stat()
        if not path.is_file():
            raise B2ctError("not a regular file", where=path)
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            header = fh.read(16)
            digest.update(header)
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise B2ctError(f"cannot read the image: {exc.strerror}", where=path) from None
    fmt = _format(header, str(path))
    return ImageInfo(LOCAL, str(path.resolve()), name or path.name, st.st_size, digest.hexdigest(), fmt)


def remote_image(node: Node, path: str, name: str | None = None) -> ImageInfo:
    """The same facts for an image file on ``node``, read over ssh. Raises B2ctError when the host cannot
    be reached or has no such file."""
    q = shlex.quote(path)
    script = (
        f"if [ ! -f {q} ]; then echo B2CT_MISSING; exit 0; fi; stat -c %s -- {q}; "
        f"sha256sum -- {q} | cut -d' ' -f1; head -c 16 -- {q} | od -An -v -tx1"
    )
    proc = run(node.conn.ssh_argv(script), PROBE_TIMEOUT)
    where = f"{node.name}:{path}"
    if proc.returncode != 0:
        raise B2ctError(f"cannot read the image on {node.name}: {last_line(proc)}", where=where)
    lines = proc.stdout.split("\n")
    if lines[0].strip() == "B2CT_MISSING":
        raise B2ctError("no such file on the source host", where=where)
    try:
        size, sha = int(lines[0]), lines[1].strip()
        header = bytes.fromhex("".join(lines[2:]).replace(" ", ""))
    except (ValueError, IndexError):
        raise B2ctError(f"unexpected answer reading the image: {proc.stdout[:200]!r}", where=where) from None
    return ImageInfo(node.name, path, name or posixpath.basename(path), size, sha, _format(header, where))
