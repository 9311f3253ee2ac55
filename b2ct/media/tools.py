"""Running the external tools media needs (xorriso, mtools, dosfstools, syslinux, sfdisk)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from b2ct.errors import B2ctError
from b2ct.fsutil import copy_range
from b2ct.toolenv import untranslated
from b2ct.ui import byte_progress, progress_bar

# Which Debian package provides each tool: the hint when it is missing.
PACKAGES = {
    "xorriso": "xorriso",
    "mtype": "mtools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mdir": "mtools",
    "mkfs.fat": "dosfstools",
    "syslinux": "syslinux",
    "sfdisk": "fdisk",
}


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


def need(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if not path:
        pkg = PACKAGES.get(tool, tool)
        raise B2ctError(f"{tool} not found", where=tool, hint=f"apt-get install {pkg}")
    return path


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
        raise B2ctError(_last_error(proc.stderr or proc.stdout, Path(args[0]).name), where=what)
    return proc.stdout


def _last_error(output: bytes, tool: str) -> str:
    lines = [ln.strip() for ln in output.decode(errors="replace").splitlines() if ln.strip()]
    failing = [ln for ln in lines if re.search(r"FAILURE|SORRY|FATAL|error|cannot|Cannot", ln)]
    msg = (failing or lines or [f"{tool} failed"])[-1]
    return f"{tool}: {msg}"


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
        raise B2ctError(_last_error("\n".join(tail).encode(), "xorriso"), where=what)


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
        raise B2ctError(f"cannot write in {parent}: {exc.strerror}", where=str(path)) from None


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
            raise B2ctError(f"cannot write: {self._error.strerror}", where=self.where)
        if self._error is not None:
            raise self._error
