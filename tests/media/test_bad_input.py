"""Bad input: one line `b2ct: error: …`, exit code 2, no traceback, no partial output."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import b2ct


def assert_one_line_error(r: subprocess.CompletedProcess, *fragments: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("b2ct: error: ")]
    assert len(errors) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in errors[0], (f, errors[0])


def assert_no_output(d: Path, name: str) -> None:
    assert not (d / name).exists()
    leftovers = [p.name for p in d.iterdir() if p.name.startswith(f".{name}.") or p.name.startswith("b2ct-")]
    assert not leftovers, leftovers


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def test_not_an_iso(kickstart_file: Path, outdir: Path) -> None:
    r = b2ct("build-iso", "--base-iso", kickstart_file, "-k", kickstart_file, "-o", outdir / "x.iso")
    assert_one_line_error(r, "not an ISO 9660 image")
    assert_no_output(outdir, "x.iso")


def test_missing_iso(kickstart_file: Path, outdir: Path) -> None:
    r = b2ct("build-iso", "--base-iso", outdir / "nope.iso", "-k", kickstart_file, "-o", outdir / "x.iso")
    assert_one_line_error(r, "no such file")


def test_truncated_iso(base_iso, kickstart_file: Path, tmp_path: Path, outdir: Path) -> None:
    src = base_iso("el9")
    cut = tmp_path / "cut.iso"
    with src.open("rb") as f:
        cut.write_bytes(f.read(src.stat().st_size // 2))
    r = b2ct("build-iso", "--base-iso", cut, "-k", kickstart_file, "-o", outdir / "x.iso")
    assert_one_line_error(r, "truncated ISO")
    assert_no_output(outdir, "x.iso")
    r = b2ct("make-usb", "--iso", cut, "--image", outdir / "k.img", "-k", kickstart_file)
    assert_one_line_error(r, "truncated ISO")
    assert_no_output(outdir, "k.img")


def test_unknown_layout_debian_rescue(kickstart_file: Path, tmp_path: Path, outdir: Path) -> None:
    # Debian live/rescue layout: isolinux + boot/grub + EFI/boot/bootx64.efi, no EL markers.
    tree = tmp_path / "deb"
    for p, text in {
        "isolinux/isolinux.cfg": "label live\n kernel /live/vmlinuz\n append initrd=/live/initrd.img\n",
        "boot/grub/grub.cfg": "menuentry 'Live' {\n linux /live/vmlinuz\n initrd /live/initrd.img\n}\n",
        "EFI/boot/bootx64.efi": "x",
        "live/vmlinuz": "k",
        "live/initrd.img": "i",
    }.items():
        (tree / p).parent.mkdir(parents=True, exist_ok=True)
        (tree / p).write_text(text)
    deb = tmp_path / "debian-rescue.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "d-live 12 rescue", "-o", deb, tree],
        check=True,
        capture_output=True,
    )
    r = b2ct("build-iso", "--base-iso", deb, "-k", kickstart_file, "-o", outdir / "x.iso")
    assert_one_line_error(r, "not an EL install ISO")
    assert_no_output(outdir, "x.iso")


@pytest.mark.parametrize(
    ("label", "fragment"),
    [
        ("B2CTKEYTOOLONG", "FAT allows 11"),
        ("b2ctkey", "not uppercase"),
        ("ANACONDA", "reserved"),
        ("oemdrv", "reserved"),
    ],
)
def test_bad_fat_label(label: str, fragment: str, built_iso, outdir: Path) -> None:
    r = b2ct("make-usb", "--iso", built_iso("el9"), "--image", outdir / "k.img", "--label", label)
    assert_one_line_error(r, "--label", fragment)
    assert_no_output(outdir, "k.img")
    # The hint must not propose what the next run would refuse (it used to answer "use 'OEMDRV'").
    assert "use 'OEMDRV'" not in r.stderr and "use 'ANACONDA'" not in r.stderr


def test_bad_iso_label(base_iso, kickstart_file: Path, outdir: Path) -> None:
    r = b2ct(
        "build-iso",
        "--base-iso",
        base_iso("el9"),
        "-k",
        kickstart_file,
        "--label",
        "x" * 33,
        "-o",
        outdir / "x.iso",
    )
    assert_one_line_error(r, "1 to 32 characters")
    assert_no_output(outdir, "x.iso")


@pytest.mark.parametrize("where", ["missing-dir/x.iso", "/proc/b2ct-test.iso"])
def test_output_unwritable(where: str, base_iso, kickstart_file: Path, outdir: Path) -> None:
    target = outdir / where if not where.startswith("/") else Path(where)
    r = b2ct("build-iso", "--base-iso", base_iso("el9"), "-k", kickstart_file, "-o", target)
    assert_one_line_error(r)
    assert not target.exists()
    r = b2ct(
        "make-usb", "--iso", base_iso("el9"), "-k", kickstart_file, "--image", target.with_suffix(".img")
    )
    assert_one_line_error(r)


def test_output_is_device_node(built_iso) -> None:
    r = b2ct("make-usb", "--iso", built_iso("el9"), "--image", "/dev/null")
    assert_one_line_error(r, "not a regular file")


def test_size_too_small_for_files(built_iso, outdir: Path, tmp_path: Path) -> None:
    r = b2ct("make-usb", "--iso", built_iso("el9"), "--image", outdir / "k.img", "--size", "10M")
    assert_one_line_error(r, "--size")
    big = tmp_path / "big.cfg"
    big.write_text("# padding\n" * 3_000_000)  # 30 MB of kickstart on top of the ~40 MB installer files
    r = b2ct("make-usb", "--iso", built_iso("el9"), "-k", big, "--image", outdir / "k.img", "--size", "64M")
    assert_one_line_error(r, "installer files need")
    assert_no_output(outdir, "k.img")


def test_missing_kickstart_file(base_iso, outdir: Path) -> None:
    r = b2ct("build-iso", "--base-iso", base_iso("el9"), "-k", outdir / "nope.cfg", "-o", outdir / "x.iso")
    assert_one_line_error(r, "no such kickstart file")


def test_missing_tool_is_one_line(base_iso, kickstart_file: Path, outdir: Path, tmp_path: Path) -> None:
    # PATH without xorriso: the hint names the Debian package.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    import sys

    (bindir / "python3").symlink_to(sys.executable)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "b2ct.cli",
            "build-iso",
            "--base-iso",
            str(base_iso("el9")),
            "-k",
            str(kickstart_file),
            "-o",
            str(outdir / "x.iso"),
        ],
        capture_output=True,
        text=True,
        env={"PATH": str(bindir), "HOME": str(tmp_path)},
    )
    assert_one_line_error(r, "xorriso not found", "apt-get install xorriso")
    assert shutil.which("xorriso")  # the real one is still there for other tests
