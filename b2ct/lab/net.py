"""Small wrappers around ip(8), losetup(8) and mount(8) that raise B2ctError with the tool's message."""

from __future__ import annotations

import subprocess
from pathlib import Path

from b2ct.errors import B2ctError
from b2ct.toolenv import untranslated


def run(cmd: list[str], *, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        input=input,
        stdin=None if input else subprocess.DEVNULL,
        env=untranslated(),
    )
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise B2ctError(f"`{' '.join(cmd)}` failed: {msg[-1] if msg else f'exit {proc.returncode}'}")
    return proc


def link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip", *(["-n", netns] if netns else []), "link", "show", "dev", name]
    return run(cmd, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def netns_inode(name: str) -> int:
    try:
        return Path("/run/netns", name).stat().st_ino
    except OSError:
        return 0


def route_exists(prefix: str) -> bool:
    out = run(["ip", "-4", "route", "show", "root", prefix], check=False).stdout
    return bool(out.strip())


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mounts") as fh:
        return any(line.split()[1] == target for line in fh)


def loops_for(backing: Path) -> list[str]:
    """Loop devices backed by exactly this file (we created the file, so it names our devices)."""
    out = run(["losetup", "--noheadings", "--output", "NAME,BACK-FILE", "--list"], check=False).stdout
    devs = []
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].strip().removesuffix(" (deleted)") == str(backing):
            devs.append(parts[0])
    return devs
