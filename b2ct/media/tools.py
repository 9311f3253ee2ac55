"""Running the external tools media needs (xorriso, mtools, dosfstools, syslinux, sfdisk)."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from b2ct import tools
from b2ct.errors import B2ctError
from b2ct.fsutil import WRITE_ERRNOS, copy_range, write_error
from b2ct.toolenv import untranslated
from b2ct.ui import byte_progress, progress_bar

SECTOR = 2048  # ISO 9660 block


def drive(path: os.PathLike | str) -> str:
    """How xorriso must be given an image file: without ``stdio:`` it takes /dev/... (e.g. /dev/shm)
    for an optical drive and refuses it."""
    return f"stdio:{os.path.abspath(path)}"


def unquote(name: str) -> str:
    """xorriso quotes names in single quotes and writes an embedded quote as '"'"'."""
    return name.replace("'\"'\"'", "'")


_FILE_LBA = re.compile(r"^File data lba:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*'(.*)'$")


def file_pieces(report: str) -> dict[str, list[tuple[int, int]]]:
    """xorriso's ``-exec report_lba`` lines: path (no leading slash) -> its data as (byte offset, size)
    pieces, in extent order."""
    pieces: dict[str, list[tuple[int, int, int]]] = {}
    for line in report.splitlines():
        if m := _FILE_LBA.match(line):
            xt, lba, _blocks, size, name = m.groups()
            pieces.setdefault(unquote(name).lstrip("/"), []).append((int(xt), int(lba) * SECTOR, int(size)))
    return {rel: [(off, size) for _xt, off, size in sorted(parts)] for rel, parts in pieces.items()}


_NWA = re.compile(r"^Media nwa\s*:\s*(\d+)s\s*$")
_BOOT_IMG = re.compile(r"^El Torito img path :\s*\d+\s+(/.*)$")
_PART_OFFSET = re.compile(r"^Partition offset\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Survey:
    """What one xorriso run tells about an ISO: file data, boot image files, where growing appends."""

    files: dict[str, list[tuple[int, int]]]  # path (no leading slash) -> (byte offset, size) pieces
    boot_images: set[str]  # El Torito images that are files in the tree (no leading slash)
    nwa: int | None  # byte offset of the next writable address: where growing starts its session
    partition_offset: int  # blocks; 16 for ISOs made with -partition_offset 16 (EL10)


def survey(path: Path) -> Survey:
    """Read what build-iso needs to know of ``path`` in one xorriso run (xorriso(1): -report_el_torito,
    -report_system_area, -toc, -exec report_lba)."""
    out = run(
        [
            "xorriso",
            "-indev",
            drive(path),
            "-report_el_torito",
            "plain",
            "-report_system_area",
            "plain",
            "-toc",
            "-find",
            "/",
            "-exec",
            "report_lba",
        ],
        what=str(path),
    )
    report = out.decode(errors="replace")
    nwa: int | None = None
    offset = 0
    boot: set[str] = set()
    for line in report.splitlines():
        if m := _NWA.match(line):
            nwa = int(m.group(1)) * SECTOR
        elif m := _BOOT_IMG.match(line):
            boot.add(m.group(1).strip().lstrip("/"))
        elif m := _PART_OFFSET.match(line):
            offset = int(m.group(1))
    files = {rel: parts for rel, parts in file_pieces(report).items() if rel and ".." not in Path(rel).parts}
    return Survey(files=files, boot_images=boot, nwa=nwa, partition_offset=offset)


def need(tool: str) -> str:
    """The tool's path; a one-line error naming its package when it is missing (b2ct.tools.TOOLS)."""
    return tools.need(tool)


class ToolError(B2ctError):
    """A tool failed. ``errno`` is set when its messages name a system error (read in the C locale)."""

    def __init__(self, message: str, *, where: str, errno: int | None) -> None:
        super().__init__(message, where=where)
        self.errno = errno


# strerror() texts in the C locale, for the errors that mean "the output cannot be written", and
# xorriso's own words for a full disk (it checks the space before writing; it has no translations).
_ERRNO_TEXTS = {os.strerror(e): e for e in (*WRITE_ERRNOS, errno.EIO)} | {
    "exceeds free space on media": errno.ENOSPC
}


def _errno_in(lines: list[str]) -> int | None:
    for line in reversed(lines):
        for text, code in _ERRNO_TEXTS.items():
            if text in line:
                return code
    return None


def run(
    cmd: Sequence[str | os.PathLike],
    *,
    what: str,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
) -> bytes:
    """Run a tool (untranslated: its output and messages are read); on failure raise a one-line error
    quoting its last message."""
    args = [str(c) for c in cmd]
    args[0] = need(args[0])
    try:
        proc = subprocess.run(args, capture_output=True, env=untranslated(env), input=input, check=False)
    except OSError as exc:
        raise B2ctError(f"cannot run {args[0]}: {exc.strerror}", where=what) from None
    if proc.returncode != 0:
        raise _failure(proc.stderr or proc.stdout, Path(args[0]).name, what, proc.stdout + proc.stderr)
    return proc.stdout


def _failure(output: bytes, tool: str, where: str, everything: bytes | None = None) -> ToolError:
    """The tool's last complaint in ``output``; the system error, if any, from ``everything`` it said."""
    lines = [ln.strip() for ln in output.decode(errors="replace").splitlines() if ln.strip()]
    failing = [ln for ln in lines if re.search(r"FAILURE|SORRY|FATAL|error|cannot|Cannot", ln)]
    msg = (failing or lines or [f"{tool} failed"])[-1]
    said = (everything or output).decode(errors="replace").splitlines()
    return ToolError(f"{tool}: {msg}", where=where, errno=_errno_in(said))


_PERCENT = re.compile(r"UPDATE\s*:\s*([\d.]+)% done")


def run_xorriso_with_progress(
    cmd: Sequence[str | os.PathLike], *, what: str, env: dict[str, str], description: str
) -> None:
    """Run xorriso, turning its ``UPDATE : NN% done`` lines into a progress bar on stderr."""
    from rich.progress import TextColumn, TimeRemainingColumn

    args = [need("xorriso"), *[str(c) for c in cmd[1:]]]
    tail: list[str] = []
    with progress_bar(TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn()) as progress:
        task = progress.add_task(description, total=100)
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=untranslated(env)
        )
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if m := _PERCENT.search(line):
                progress.update(task, completed=float(m.group(1)))
            elif line:
                tail = [*tail[-20:], line]
        rc = proc.wait()
    if rc != 0:
        raise _failure("\n".join(tail).encode(), "xorriso", what)


def check_output(path: Path) -> None:
    """Fail before any work if ``path`` cannot be created (missing or read-only directory, a directory)."""
    import tempfile

    if path.is_dir():
        raise B2ctError("output is a directory", where=str(path), hint="give a file name")
    if path.exists() and not path.is_file():
        # Never rename a temp file over a device node: devices go through --device and its checks.
        raise B2ctError(
            "output exists and is not a regular file", where=str(path), hint="use --device for disks"
        )
    parent = path.parent
    if not parent.is_dir():
        raise B2ctError(f"output directory {parent} does not exist", where=str(path))
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise write_error(exc, path) from None


class BackgroundCopy:
    """Copy ``src`` to ``dst`` in the kernel on a thread, so the caller's other work overlaps it.

    ``wait`` shows what is left as a progress bar and turns failures into one-line errors; ``cancel``
    stops between chunks. Either must be called: the thread holds both files open.
    """

    def __init__(self, src: Path, dst: Path, where: str | None = None) -> None:
        self.src, self.dst = src, dst
        self.where = where or str(dst)  # what errors name: the output, not its temporary file
        self.size = src.stat().st_size
        self.done = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="b2ct-copy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        def tick(n: int) -> None:
            self.done += n
            if self._stop.is_set():
                raise InterruptedError("cancelled")

        try:
            with self.src.open("rb") as fi, self.dst.open("wb") as fo:
                copy_range(fi.fileno(), 0, fo.fileno(), 0, self.size, tick)
        except BaseException as exc:  # handed to the waiting thread
            self._error = exc

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()

    def wait(self, description: str) -> None:
        with byte_progress() as progress:
            task = progress.add_task(description, total=self.size)
            while self._thread.is_alive():
                self._thread.join(0.1)
                progress.update(task, completed=self.done)
        if isinstance(self._error, EOFError):
            raise B2ctError("source ended early while copying", where=str(self.src))
        if isinstance(self._error, OSError):
            raise write_error(self._error, self.where)
        if self._error is not None:
            raise self._error
