"""Output errors of build-iso and make-usb: named after the output, said for what they are (disk full,
read-only, permission denied), one line, exit 2, nothing left behind.

The filesystems are real: small tmpfs mounts made for each test (root needed, as for CI) and unmounted
by their path when it ends. A full disk is made by a filler file leaving a chosen amount free, so the
build runs out of space at each of its steps in turn, not only at the first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import b2ct

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")

MiB = 1 << 20


@pytest.fixture
def small_fs() -> Iterator[Callable[..., Path]]:
    """mount(size_mib, options="") -> a fresh tmpfs directory, world-traversable; all unmounted after."""
    mounts: list[Path] = []

    def mount(size_mib: int, options: str = "") -> Path:
        d = Path(tempfile.mkdtemp(prefix="b2ct-test-fs-"))
        d.chmod(0o755)
        opts = f"size={size_mib}m,mode=0755" + (f",{options}" if options else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "b2ct-test", d], check=True)
        mounts.append(d)
        return d

    try:
        yield mount
    finally:
        for d in mounts:
            subprocess.run(["umount", d], check=False)
            d.rmdir()


def leave_free(d: Path, free: int) -> None:
    """Fill ``d`` with a filler file until ``free`` bytes remain."""
    filler = d / "filler"
    filler.unlink(missing_ok=True)
    filler.touch()
    st = os.statvfs(d)
    avail = st.f_bavail * st.f_frsize
    if avail > free:
        subprocess.run(["fallocate", "-l", str(avail - free), filler], check=True)


def one_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("b2ct: error: ")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def leftovers(d: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name not in keep)


def test_build_iso_on_a_full_disk_names_the_output(lorax_iso, kickstart_file: Path, small_fs) -> None:
    """It used to blame the base ISO with a raw xorriso line, or end in a traceback."""
    base = lorax_iso("el9")
    size = base.stat().st_size
    d = small_fs(size // MiB + 24)
    out = d / "out.iso"
    outcomes = []
    # From too little for the copy to enough for everything: each step in turn meets the full disk.
    for free in (size // 2, size + MiB // 2, size + 2 * MiB, size + 5 * MiB, size + 9 * MiB, size + 20 * MiB):
        leave_free(d, free)
        r = b2ct("build-iso", "--base-iso", base, "-k", kickstart_file, "-o", out)
        if r.returncode == 0:
            outcomes.append("ok")
            out.unlink()
            continue
        line = one_error(r)
        assert line.startswith(f"b2ct: error: {out}: cannot write: disk full"), line
        assert str(base) not in line and "xorriso" not in line, line
        assert leftovers(d, {"filler"}) == [], (free, leftovers(d, {"filler"}))
        outcomes.append("preflight" if "MiB free" in line else "midway")
    assert outcomes[0] == "preflight" and "midway" in outcomes and outcomes[-1] == "ok", outcomes


def test_make_usb_on_a_full_disk_names_the_output(lorax_built, small_fs) -> None:
    built = lorax_built("el9")
    d = small_fs(96)
    key = d / "key.img"
    outcomes = []
    for free in (2 * MiB, 20 * MiB, 38 * MiB, 44 * MiB, 80 * MiB):
        leave_free(d, free)
        r = b2ct("make-usb", "--iso", built, "--image", key, "--size", "200M")
        if r.returncode == 0:
            outcomes.append("ok")
            key.unlink()
            continue
        line = one_error(r)
        assert line.startswith(f"b2ct: error: {key}: cannot write: disk full"), line
        assert leftovers(d, {"filler"}) == [], (free, leftovers(d, {"filler"}))
        outcomes.append("preflight" if "MiB free" in line else "midway")
    assert {"preflight", "midway"} <= set(outcomes) and outcomes[-1] == "ok", outcomes
    leave_free(d, 10 * MiB)
    r = b2ct("make-usb", "--iso", built, "--image", key, "--hybrid")
    assert one_error(r).startswith(f"b2ct: error: {key}: cannot write: disk full")
    assert leftovers(d, {"filler"}) == []


def test_read_only_output_directory(lorax_iso, lorax_built, kickstart_file: Path, small_fs) -> None:
    d = small_fs(8, "ro")
    r = b2ct("build-iso", "--base-iso", lorax_iso("el10"), "-k", kickstart_file, "-o", d / "out.iso")
    assert one_error(r).startswith(f"b2ct: error: {d / 'out.iso'}: cannot write: read-only filesystem")
    r = b2ct("make-usb", "--iso", lorax_built("el10"), "--image", d / "key.img")
    assert one_error(r).startswith(f"b2ct: error: {d / 'key.img'}: cannot write: read-only filesystem")


def test_permission_denied(lorax_iso, kickstart_file: Path, small_fs) -> None:
    """In a directory of another user's, without the capability that lets root write there anyway."""
    d = small_fs(96)
    theirs = d / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    for args, out in (
        (
            ["build-iso", "--base-iso", lorax_iso("el9"), "-k", kickstart_file, "-o", theirs / "out.iso"],
            theirs / "out.iso",
        ),
        (
            ["make-usb", "--iso", lorax_iso("el9"), "-k", kickstart_file, "--image", theirs / "key.img"],
            theirs / "key.img",
        ),
    ):
        r = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override", sys.executable, "-m", "b2ct.cli", *map(str, args)],
            capture_output=True,
            text=True,
            env=dict(os.environ, COLUMNS="200"),
        )
        assert one_error(r).startswith(f"b2ct: error: {out}: cannot write: permission denied"), r.stderr
    assert list(theirs.iterdir()) == []
