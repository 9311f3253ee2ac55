"""Fixtures for media tests: synthetic base ISOs per layout, built once per session and cached."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import b2ct_media_synth as synth
import lorax_media

LAYOUTS = ("el6", "el9", "el10")
EPOCH = "1700000000"
KICKSTART = """# b2ct test kickstart
text
lang en_US.UTF-8
keyboard us
rootpw --lock
%packages
@core
%end
"""
REQUIRED_TOOLS = (
    "xorriso",
    "mcopy",
    "mkfs.fat",
    "syslinux",
    "sfdisk",
    "grub-mkimage",
    "cpio",
    "busybox",
    # lorax's EL8 mastering (genisoimage, isohybrid) and isomd5sum's tools, the reference for checksums
    "genisoimage",
    "isohybrid",
    "implantisomd5",
    "checkisomd5",
)


def _missing_tools() -> list[str]:
    return [t for t in REQUIRED_TOOLS if not shutil.which(t) and not shutil.which(t, path="/usr/sbin:/sbin")]


@pytest.fixture(scope="session", autouse=True)
def _tools_present() -> None:
    missing = _missing_tools()
    if missing or not synth.KERNEL.exists():
        pytest.fail(f"media tests need {missing or synth.KERNEL} (see .ci/packages/media.apt)")


@pytest.fixture(scope="session")
def media_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def kickstart_file(media_work: Path) -> Path:
    p = media_work / "rack.ks"
    p.write_text(KICKSTART)
    return p


@pytest.fixture(scope="session")
def kickstart_sha256() -> str:
    return hashlib.sha256(KICKSTART.encode()).hexdigest()


@pytest.fixture(scope="session")
def base_iso(media_work: Path) -> Callable[[str], Path]:
    cache: dict[str, Path] = {}

    def get(layout: str) -> Path:
        if layout not in cache:
            work = media_work / f"synth-{layout}"
            work.mkdir(exist_ok=True)
            cache[layout] = synth.build_synthetic_iso(layout, media_work / f"base-{layout}.iso", work)
        return cache[layout]

    return get


@pytest.fixture(scope="session")
def lorax_iso(media_work: Path) -> Callable[[str], Path]:
    """Base ISOs made with lorax's own mastering commands for EL8, EL9 and EL10 (lorax_media)."""
    cache: dict[str, Path] = {}

    def get(release: str) -> Path:
        if release not in cache:
            work = media_work / f"lorax-{release}"
            work.mkdir(exist_ok=True)
            cache[release] = lorax_media.build_lorax_iso(release, media_work / f"lorax-{release}.iso", work)
        return cache[release]

    return get


@pytest.fixture(scope="session")
def lorax_built(media_work: Path, lorax_iso, kickstart_file: Path) -> Callable[[str], Path]:
    """build-iso output for each lorax-made base (short menu timeout, for boots)."""
    cache: dict[str, Path] = {}

    def get(release: str) -> Path:
        if release not in cache:
            out = media_work / f"lorax-built-{release}.iso"
            r = b2ct(
                "build-iso",
                "--base-iso",
                lorax_iso(release),
                "-k",
                kickstart_file,
                "--timeout",
                "1",
                "-o",
                out,
                env={"SOURCE_DATE_EPOCH": EPOCH},
            )
            assert r.returncode == 0, r.stderr
            cache[release] = out
        return cache[release]

    return get


@pytest.fixture(scope="session")
def lorax_key(media_work: Path, lorax_iso, kickstart_file: Path) -> Callable[[str], Path]:
    """make-usb image made straight from each lorax-made base."""
    cache: dict[str, Path] = {}

    def get(release: str) -> Path:
        if release not in cache:
            out = media_work / f"lorax-key-{release}.img"
            r = b2ct(
                "make-usb",
                "--iso",
                lorax_iso(release),
                "-k",
                kickstart_file,
                "--image",
                out,
                "--size",
                "200M",
                "--timeout",
                "1",
            )
            assert r.returncode == 0, r.stderr
            cache[release] = out
        return cache[release]

    return get


def b2ct(*args: str | os.PathLike, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run the real CLI in a subprocess: exit code and stderr exactly as a user sees them."""
    full_env = dict(os.environ, COLUMNS="200", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "b2ct.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="session")
def built_iso(media_work: Path, base_iso, kickstart_file: Path) -> Callable[[str], Path]:
    """build-iso output per layout (short menu timeout so boots are quick)."""
    cache: dict[str, Path] = {}

    def get(layout: str) -> Path:
        if layout not in cache:
            out = media_work / f"built-{layout}.iso"
            r = b2ct(
                "build-iso",
                "--base-iso",
                base_iso(layout),
                "--kickstart",
                kickstart_file,
                "--timeout",
                "1",
                "-o",
                out,
                env={"SOURCE_DATE_EPOCH": EPOCH},
            )
            assert r.returncode == 0, r.stderr
            cache[layout] = out
        return cache[layout]

    return get


@pytest.fixture(scope="session")
def usb_image(media_work: Path, built_iso) -> Callable[[str], Path]:
    cache: dict[str, Path] = {}

    def get(layout: str) -> Path:
        if layout not in cache:
            out = media_work / f"key-{layout}.img"
            r = b2ct(
                "make-usb",
                "--iso",
                built_iso(layout),
                "--image",
                out,
                "--size",
                "200M",
                "--label",
                "B2CTKEY",
                "--timeout",
                "1",
            )
            assert r.returncode == 0, r.stderr
            cache[layout] = out
        return cache[layout]

    return get
