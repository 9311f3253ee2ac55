"""Output that cannot be written (disk full, read-only, permission denied): one line naming the output and
what happened, exit 2, nothing left behind (issue 14 C).

Real filesystems: a small tmpfs this test mounts (and unmounts) in its own directory; permission denied
comes from running b2ct as root without CAP_DAC_OVERRIDE (setpriv), since root ignores file modes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from b2ct.fsutil import atomic_write
from tests.conftest import EXAMPLE, REPO, assert_one_line_error, run_cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "b2ct-test", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(fs: Path) -> None:
    """Fill ``fs`` to the last block."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "filler")


def test_kickstart_on_a_full_filesystem(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "256k") as fs:
        fill(fs)
        message = assert_one_line_error(
            run_cli("kickstart", "-i", EXAMPLE, "-o", fs / "ks"), "disk full", str(fs / "ks")
        )
        assert "Traceback" not in message
        assert leftovers(fs) == []


def test_kickstart_into_an_existing_directory_on_a_full_filesystem_keeps_the_old_set(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "512k") as fs:
        out = fs / "ks"
        assert run_cli("kickstart", "-i", EXAMPLE, "-o", out).rc == 0
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        (EXAMPLE_COPY := tmp_path / "site").mkdir()
        shutil.copytree(EXAMPLE, EXAMPLE_COPY, dirs_exist_ok=True)
        all_yml = EXAMPLE_COPY / "group_vars" / "all.yml"
        all_yml.write_text(all_yml.read_text().replace("Europe/Rome", "Europe/Paris"))
        fill(fs)
        assert_one_line_error(run_cli("kickstart", "-i", EXAMPLE_COPY, "-o", out), "disk full")
        after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert after == before, "a failed write changed the kickstarts that were there"
        assert [p for p in out.rglob(".*")] == [], "temporary files left behind"


def test_kickstart_on_a_read_only_filesystem(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "1m") as fs:
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        assert_one_line_error(
            run_cli("kickstart", "-i", EXAMPLE, "-o", fs / "ks"), "read-only", str(fs / "ks")
        )
        assert leftovers(fs) == []


def test_kickstart_where_permission_is_denied(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "1m") as fs:
        locked = fs / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        # root without the capability to override file modes: the kernel's own permission check
        proc = subprocess.run(
            [
                "setpriv",
                "--bounding-set",
                "-dac_override,-dac_read_search",
                "--inh-caps",
                "-all",
                "--",
                sys.executable,
                "-m",
                "b2ct.cli",
                "kickstart",
                "-i",
                str(EXAMPLE),
                "-o",
                str(locked / "ks"),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        from tests.conftest import CliResult

        assert_one_line_error(CliResult(proc.returncode, proc.stdout, proc.stderr), "permission denied")
        assert leftovers(locked) == []


def test_standard_output_on_a_full_device() -> None:
    """`inventory settings` (and every command printing data) to a full device: one line, exit 2."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "b2ct.cli", "inventory", "settings"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            check=False,
        )
    from tests.conftest import CliResult

    assert_one_line_error(CliResult(proc.returncode, "", proc.stderr), "standard output", "disk full")


def test_atomic_write_used_by_check_html_and_lab_inventory(tmp_path: Path) -> None:
    """The shared writer behind `check --html` and the lab inventory: a B2ctError naming the file."""
    from b2ct.errors import B2ctError

    with tmpfs(tmp_path / "fs", "256k") as fs:
        fill(fs)
        with pytest.raises(B2ctError) as info:
            atomic_write(fs / "report.html", "x" * 100_000)
        assert "disk full" in info.value.oneline() and "report.html" in info.value.oneline()
        assert leftovers(fs) == []
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        with pytest.raises(B2ctError) as info:
            atomic_write(fs / "hosts.yml", "all: {}\n")
        assert "read-only" in info.value.oneline()
