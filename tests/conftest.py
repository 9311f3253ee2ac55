"""Shared test helpers: run the real CLI in a subprocess, copy the example inventory to edit it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

# Lab hosts (systemd-nspawn containers in network namespaces) for the tests that need real hosts.
pytest_plugins = ["tests.lab_plugin"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "inventory" / "example"


@dataclass
class CliResult:
    rc: int
    out: str
    err: str


def run_cli(
    *args: str | Path, cwd: Path | None = None, timeout: float = 120, env: dict | None = None
) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "b2ct.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: CliResult, *fragments: str) -> str:
    """Exit 2, no traceback, exactly one 'b2ct: error:' line that contains every fragment."""
    assert result.rc == 2, (result.rc, result.out, result.err)
    assert "Traceback" not in result.err + result.out, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("b2ct: error:")]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def site_copy(tmp_path: Path) -> Path:
    """A private copy of the example inventory, for tests that break it on purpose."""
    dest = tmp_path / "site"
    shutil.copytree(EXAMPLE, dest)
    return dest


def edit(path: Path, old: str, new: str) -> int:
    """Replace one occurrence of ``old`` in ``path``; return the 1-based line number of the edit."""
    text = path.read_text()
    assert text.count(old) >= 1, f"{old!r} not in {path}"
    index = text.index(old)
    path.write_text(text.replace(old, new, 1))
    return text[:index].count("\n") + 1 + old[: len(old) - len(old.lstrip("\n"))].count("\n")


def processes_naming(text: str) -> list[int]:
    """Pids (other than this one) whose command line contains ``text``: a path unique to one test, so a
    test finds and cleans up only what it started."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
    return found


T = TypeVar("T")


def wait_for(what: str, predicate: Callable[[], T], timeout: float, interval: float = 1.0) -> T:
    """Poll ``predicate`` until it gives something true, and return that; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
