"""Helpers for the check tests: run the real CLI, index a host's checks, render HTML in Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_check(inventory: Path, *args: str | Path, timeout: float = 300) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "b2ct.cli", "check", "-i", str(inventory), "--json", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    return proc.returncode, json.loads(proc.stdout)


def by_check(host: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in host["checks"]}


def chromium_dom(page: Path, tmp: Path) -> str:
    """The DOM of a local page as headless Chromium rendered it."""
    profile = tmp / "chromium-profile"
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
