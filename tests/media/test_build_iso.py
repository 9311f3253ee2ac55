"""build-iso on synthetic EL6/EL9/EL10 ISOs: every config edited (tree and ESP), boot records kept,
reproducible."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest
from conftest import EPOCH, KICKSTART, LAYOUTS, b2ct

from b2ct.media import bootcfg, bootrecords, esp, iso
from b2ct.media.layout import detect

EXPECTED_LAYOUT = {"el6": "el6", "el9": "el7", "el10": "el10"}
VOLID = {"el6": "CentOS_6.7_Final", "el9": "AlmaLinux-9-4-x86_64-boot", "el10": "AlmaLinux-10-0-x86_64-boot"}


def _all_kernel_args(path: Path, work: Path) -> dict[str, list[list[str]]]:
    """Every boot entry's kernel arguments, per config, from the ISO tree and from inside its ESP."""
    ins = iso.inspect(path)
    lay = ins.layout
    found: dict[str, list[list[str]]] = {}
    iso.extract(path, [c.path for c in lay.configs if c.path in ins.files], work / "x")
    for c in lay.configs:
        if c.path in ins.files:
            text = (work / "x" / c.path).read_text()
            found[c.path] = [e.args for e in bootcfg.entries(text, c.syntax, "/isolinux")]
    images: list[tuple[Path, int, str]] = []
    for img in lay.esp_images:
        if img in ins.files:
            iso.extract(path, [img], work / "x")
            images.append((work / "x" / img, 0, img))
    files, _ = iso.extents(path)
    for region in bootrecords.esp_regions(path, files):
        if region.file is None:
            images.append((path, region.start, f"partition{region.partition.number}"))
    assert images, "no ESP found"
    for image, offset, name in images:
        for c in lay.uefi:
            text = esp.read_file(image, offset, c.path, "test")
            if text is not None:
                found[f"{name}:{c.path}"] = [e.args for e in bootcfg.entries(text, c.syntax, "/")]
    return found


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_detected_from_iso(layout: str, base_iso) -> None:
    ins = iso.inspect(base_iso(layout))
    assert ins.layout.name == EXPECTED_LAYOUT[layout]
    assert ins.info.volid == VOLID[layout]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_entry_points_at_label(layout: str, base_iso, built_iso, tmp_path: Path) -> None:
    before = _all_kernel_args(base_iso(layout), tmp_path / "before")
    after = _all_kernel_args(built_iso(layout), tmp_path / "after")
    # Same configs, same number of entries: nothing dropped, the ESP copies included.
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
    assert any(k.startswith(("images/efiboot.img:", "partition")) for k in after), after.keys()
    label = VOLID[layout]
    for cfg, entries in after.items():
        for args in entries:
            if layout == "el6":
                assert f"ks=hd:LABEL={label}:/ks.cfg" in args, (cfg, args)
                assert not any(a.startswith("inst.ks") for a in args)
            else:
                assert args.count(f"inst.ks=hd:LABEL={label}:/ks.cfg") == 1, (cfg, args)
                assert args.count(f"inst.stage2=hd:LABEL={label}") == 1, (cfg, args)
                assert not any(a.startswith("ks=") for a in args)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_kickstart_and_boot_records_kept(layout: str, base_iso, built_iso, tmp_path: Path) -> None:
    out = built_iso(layout)
    iso.extract(out, ["ks.cfg"], tmp_path)
    assert (tmp_path / "ks.cfg").read_text() == KICKSTART
    report = subprocess.run(
        ["xorriso", "-indev", out, "-report_el_torito", "plain", "-report_system_area", "plain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    boots = [ln for ln in report.splitlines() if ln.startswith("El Torito boot img :")]
    assert any(" BIOS " in ln for ln in boots) and any(" UEFI " in ln for ln in boots), report
    assert "MBR partition      :" in report  # hybrid: can be dd'd to a key
    base_parts = bootrecords.partitions(base_iso(layout))
    parts = bootrecords.partitions(out)
    assert [(p.number, p.scheme, p.esp) for p in parts] == [(p.number, p.scheme, p.esp) for p in base_parts]
    # What a firmware booting the dd'd key reads: the ESP partition must hold the edited configs.
    esp_part = next(p for p in parts if p.esp)
    text = esp.read_file(out, esp_part.start, iso.inspect(out).layout.uefi[0].path, "t") or ""
    assert f"hd:LABEL={VOLID[layout]}:/ks.cfg" in text, text


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reproducible(layout: str, base_iso, kickstart_file: Path, tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        time.sleep(1.1 * i)  # a different wall-clock second: only SOURCE_DATE_EPOCH may set dates
        out = tmp_path / f"r{i}.iso"
        r = b2ct(
            "build-iso",
            "--base-iso",
            base_iso(layout),
            "-k",
            kickstart_file,
            "-o",
            out,
            env={"SOURCE_DATE_EPOCH": EPOCH},
        )
        assert r.returncode == 0, r.stderr
        outs.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert outs[0] == outs[1]
    other = tmp_path / "other.iso"
    r = b2ct(
        "build-iso",
        "--base-iso",
        base_iso(layout),
        "-k",
        kickstart_file,
        "-o",
        other,
        env={"SOURCE_DATE_EPOCH": str(int(EPOCH) + 86400)},
    )
    assert r.returncode == 0
    assert hashlib.sha256(other.read_bytes()).hexdigest() != outs[0]  # the epoch really is used


def test_custom_label_and_extra_kickstarts(base_iso, kickstart_file: Path, tmp_path: Path) -> None:
    extra = tmp_path / "wn01.cfg"
    extra.write_text("# worker\n")
    out = tmp_path / "out.iso"
    r = b2ct(
        "build-iso",
        "--base-iso",
        base_iso("el9"),
        "-k",
        kickstart_file,
        "-k",
        extra,
        "--label",
        "SITE-KS",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    ins = iso.inspect(out)
    assert ins.info.volid == "SITE-KS"
    assert {"ks.cfg", "ks/wn01.cfg"} <= ins.files
    args = _all_kernel_args(out, tmp_path / "x")
    assert all("inst.ks=hd:LABEL=SITE-KS:/ks.cfg" in a for v in args.values() for a in v)


def test_detect_refuses_unknown_layout() -> None:
    from b2ct.errors import B2ctError

    with pytest.raises(B2ctError, match="not an EL install ISO"):
        detect({"boot/grub/grub.cfg", "live/vmlinuz", "isolinux/isolinux.bin"}, "debian.iso")


def test_inventory_kickstarts_on_medium(base_iso, tmp_path: Path) -> None:
    from b2ct.kickstart import render_media_set

    inv = Path(__file__).resolve().parents[2] / "inventory" / "example"  # an el9 site
    expected = render_media_set(inv)
    out = tmp_path / "inv.iso"
    r = b2ct("build-iso", "--base-iso", base_iso("el9"), "--inventory", inv, "-o", out)
    assert r.returncode == 0, r.stderr
    files = iso.inspect(out).files
    assert set(expected) <= files
    iso.extract(out, sorted(expected), tmp_path / "x")
    for rel, text in expected.items():
        assert (tmp_path / "x" / rel).read_text() == text


@pytest.mark.parametrize("layout", ["el6", "el10"])
def test_inventory_release_must_match_the_iso(base_iso, tmp_path: Path, layout: str) -> None:
    """EL9 kickstarts on an EL6 or EL10 installer would fail an hour into the install: refuse now."""
    inv = Path(__file__).resolve().parents[2] / "inventory" / "example"
    out = tmp_path / "mismatch.iso"
    r = b2ct("build-iso", "--base-iso", base_iso(layout), "--inventory", inv, "-o", out)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("b2ct: error:")]
    assert len(errors) == 1 and "targets el9" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_media_check_passes(layout: str, built_iso) -> None:
    """Entries with rd.live.check run checkisomd5 in the installer: without a checksum it halts."""
    check = subprocess.run(["checkisomd5", built_iso(layout)], capture_output=True, text=True)
    assert check.returncode == 0 and "result is: PASS" in check.stdout + check.stderr, check


def test_rebuild_leaves_no_old_kickstart(built_iso, tmp_path: Path) -> None:
    """Growing keeps old bytes; a base that already has kickstarts is rewritten whole, so none linger."""
    assert KICKSTART.encode() in built_iso("el9").read_bytes()
    new_ks = tmp_path / "new.ks"
    new_ks.write_text("# replacement kickstart\n")
    out = tmp_path / "rebuilt.iso"
    r = b2ct("build-iso", "--base-iso", built_iso("el9"), "-k", new_ks, "-o", out)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert b"# replacement kickstart" in data
    assert KICKSTART.encode() not in data
    assert _all_kernel_args(out, tmp_path / "x")  # still a readable, recognised EL ISO
    check = subprocess.run(["checkisomd5", out], capture_output=True, text=True)  # written whole: same check
    assert "result is: PASS" in check.stdout + check.stderr, check


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_iso_under_dev(base_iso, kickstart_file: Path) -> None:
    """xorriso takes a bare /dev/... path for an optical drive: an ISO kept in /dev/shm must still work."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="b2ct-test-") as t:
        base = Path(t) / "base.iso"
        shutil.copyfile(base_iso("el9"), base)
        out = Path(t) / "out.iso"
        r = b2ct("build-iso", "--base-iso", base, "-k", kickstart_file, "-o", out)
        assert r.returncode == 0, r.stderr
        assert "ks.cfg" in iso.list_files(out)
        key = Path(t) / "key.img"
        r = b2ct("make-usb", "--iso", out, "--image", key, "--size", "256M")
        assert r.returncode == 0, r.stderr
        assert esp.read_file(key, 1 << 20, "ks.cfg", "t") == KICKSTART


@pytest.mark.parametrize("layout", [*LAYOUTS, "lorax-el10"])
def test_growing_a_stand_in_gives_the_same_bytes(
    layout: str, base_iso, lorax_iso, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build-iso grows a stand-in while the copy runs; the result must be what growing the copy gives
    (lorax's EL10 media: -partition_offset 16 makes growing rewrite a second superblock too)."""
    from b2ct.media import grow

    if layout.startswith("lorax-"):
        base_iso = lambda _: lorax_iso("el10")  # noqa: E731
        layout = "el10"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    kss = {"ks.cfg": KICKSTART}
    overlapped, plain = tmp_path / "overlapped.iso", tmp_path / "plain.iso"
    calls: list[grow.Plan | None] = []
    real_plan = grow.plan

    def recorded(base: Path, report) -> grow.Plan | None:
        calls.append(real_plan(base, report))
        return calls[-1]

    monkeypatch.setattr(grow, "plan", recorded)
    iso.build_iso(base_iso(layout), overlapped, kss)
    p = calls[0]
    assert p is not None, "xorriso gave no next writable address"
    # The stand-in really leaves out the large files' data: the pxeboot kernel lies outside what it holds.
    files, _ = iso.extents(base_iso(layout))
    ((kernel_off, kernel_size),) = files["images/pxeboot/vmlinuz"]
    assert not any(off < kernel_off + kernel_size and kernel_off < off + n for off, n in p.keep)
    assert p.kept_bytes < p.size // 2
    monkeypatch.setattr(grow, "plan", lambda base, report: None)  # grow the finished copy itself
    iso.build_iso(base_iso(layout), plain, kss)
    assert overlapped.read_bytes() == plain.read_bytes()
    assert not list(tmp_path.glob(".*.part")), "temporary output left behind"
