"""Running the external tools media needs (xorriso, mtools, dosfstools, syslinux, sfdisk)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from b2ct.errors import B2ctError
from b2ct.ui import console

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
    """Run a tool; on failure raise a one-line error quoting its last message."""
    args = [str(c) for c in cmd]
    args[0] = need(args[0])
    try:
        proc = subprocess.run(args, capture_output=True, env=env, input=input, check=False)
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
    args = [need("xorriso"), *[str(c) for c in cmd[1:]]]
    tail: list[str] = []
    with Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=100)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
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


def copy_with_progress(src: Path, dst: Path, description: str) -> None:
    """Copy ``src`` to ``dst`` in the kernel (copy_file_range, else sendfile), with a progress bar."""
    size = src.stat().st_size
    with (
        src.open("rb") as fi,
        dst.open("wb") as fo,
        Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as progress,
    ):
        task = progress.add_task(description, total=size)
        done = 0
        use_range = True
        while done < size:
            count = min(size - done, 64 << 20)
            if use_range:
                try:
                    n = os.copy_file_range(fi.fileno(), fo.fileno(), count, done, done)
                except OSError:
                    use_range = False  # e.g. across filesystems on older kernels
                    continue
            else:
                os.lseek(fo.fileno(), done, os.SEEK_SET)
                n = os.sendfile(fo.fileno(), fi.fileno(), done, count)
            if n == 0:
                raise B2ctError("source ended early while copying", where=str(src))
            done += n
            progress.update(task, completed=done)
