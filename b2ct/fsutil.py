"""Write outputs whole or not at all: a temp file beside the target, renamed into place."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from b2ct.errors import B2ctError

# System errors that mean "this output cannot be written", and how b2ct says each.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)
_SAYS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only filesystem",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EFBIG: "file too large for this filesystem",
    errno.ENOENT: "its directory does not exist",
    errno.EIO: "input/output error on its device",
}


def write_error(exc: OSError, where: str | Path) -> B2ctError:
    """The one-line error for ``exc``, raised while writing output ``where``, said by its errno (never
    by the translated message text)."""
    says = _SAYS.get(exc.errno or 0)
    if says is not None:
        return B2ctError(f"cannot write: {says} ({os.strerror(exc.errno or 0)})", where=where)
    return B2ctError(f"cannot write: {exc.strerror or exc}", where=where)


# A tool that failed while less than this was left free on the output's filesystem ran out of space:
# tools do not always say so (xorriso can report a stale errno after a short write).
NEARLY_FULL = 2 << 20


def filesystem_trouble(directory: Path) -> int | None:
    """EROFS or ENOSPC when the filesystem of ``directory`` is read-only or (nearly) full, else None."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
    return errno.ENOSPC if free < NEARLY_FULL else None


@contextlib.contextmanager
def output_errors(path: str | Path, directory: Path | None = None) -> Iterator[None]:
    """Turn a failure to write any part of output ``path`` (its temp and work files included, all in
    ``directory``, by default the output's) into one error naming ``path``: a Python OSError by its
    errno; a tool's failure (b2ct.media.tools.ToolError) by the system error its message names or, when
    it names none, by the state of the filesystem at that moment. Everything else passes unchanged."""
    where = directory or Path(path).parent
    try:
        yield
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise write_error(exc, path) from None
        raise
    except B2ctError as exc:
        if not hasattr(exc, "errno"):
            raise
        code = exc.errno if exc.errno in WRITE_ERRNOS else filesystem_trouble(where)
        if code is not None:
            raise write_error(OSError(code, os.strerror(code)), path) from None
        raise


def check_space(path: Path, needed: int, what: str) -> None:
    """Refuse before writing when the filesystem of ``path`` has less than ``needed`` bytes free.

    ``what`` says what needs the space, e.g. "a copy of the base ISO" (it "needs" N MiB). Root may use
    the blocks ext4 reserves, so root is held to f_bfree, others to f_bavail (statvfs(3)).
    """
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return  # the write itself will say what is wrong
    free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
    if free < needed:
        raise B2ctError(
            f"cannot write: disk full: {what} needs {needed / 2**20:.0f} MiB, "
            f"{free / 2**20:.0f} MiB free in {path.parent}",
            where=path,
            hint="free some space or choose another output directory",
        )


def _check_parent(path: Path) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise B2ctError(f"output directory {parent} does not exist", where=path)
    if not os.access(parent, os.W_OK | os.X_OK):
        read_only = os.statvfs(parent).f_flag & os.ST_RDONLY
        code = errno.EROFS if read_only else errno.EACCES
        raise B2ctError(f"cannot write: {_SAYS[code]} (directory {parent})", where=path)


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else remove it."""
    path = Path(path)
    _check_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: str | bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` whole or not at all; B2ctError naming ``path`` when the write fails."""
    path = Path(path)
    try:
        with atomic_output(path, mode) as tmp:
            if isinstance(data, str):
                tmp.write_text(data, encoding="utf-8")
            else:
                tmp.write_bytes(data)
    except OSError as exc:
        raise write_error(exc, path) from None
    return path


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(offset, length) ranges sorted, empty ones dropped, overlapping or touching ones joined."""
    merged: list[tuple[int, int]] = []
    for off, n in sorted(r for r in ranges if r[1] > 0):
        if merged and off <= merged[-1][0] + merged[-1][1]:
            last_off, last_n = merged[-1]
            merged[-1] = (last_off, max(last_n, off + n - last_off))
        else:
            merged.append((off, n))
    return merged


def subtract_ranges(ranges: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``ranges`` outside every one of ``holes`` (both as (offset, length))."""
    out: list[tuple[int, int]] = []
    cuts = merge_ranges(holes)
    for off, n in merge_ranges(ranges):
        pos, end = off, off + n
        for h_off, h_n in cuts:
            if h_off + h_n <= pos or h_off >= end:
                continue
            if h_off > pos:
                out.append((pos, h_off - pos))
            pos = max(pos, h_off + h_n)
        if pos < end:
            out.append((pos, end - pos))
    return out


def copy_range(
    src_fd: int,
    src_offset: int,
    dst_fd: int,
    dst_offset: int,
    count: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Copy ``count`` bytes between two open files inside the kernel.

    copy_file_range first (no user-space buffers, and a reflink where the filesystem can); sendfile when
    the kernel refuses it, e.g. across filesystems. ``progress`` receives the bytes of each chunk.
    """
    use_range = True
    while count:
        chunk = min(count, 64 << 20)
        if use_range:
            try:
                n = os.copy_file_range(src_fd, dst_fd, chunk, src_offset, dst_offset)
            except OSError:
                use_range = False
                continue
        else:
            os.lseek(dst_fd, dst_offset, os.SEEK_SET)
            n = os.sendfile(dst_fd, src_fd, src_offset, chunk)
        if n == 0:
            raise EOFError(f"source ended {count} bytes early")
        src_offset, dst_offset, count = src_offset + n, dst_offset + n, count - n
        if progress is not None:
            progress(n)
