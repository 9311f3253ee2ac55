"""make-usb image: MBR, one bootable FAT32 partition with the label, syslinux + EFI/BOOT, all at the label."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest
from conftest import EPOCH, KICKSTART, LAYOUTS, b2ct

from b2ct.media import bootcfg, esp
from b2ct.media.usb import MBR_BIN, PART_START

OFF = PART_START * 512
UEFI_CFG = {
    "el6": ("EFI/BOOT/BOOTX64.conf", "grub-legacy"),
    "el9": ("EFI/BOOT/grub.cfg", "grub2"),
    "el10": ("EFI/BOOT/grub.cfg", "grub2"),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_key_structure(layout: str, usb_image) -> None:
    img = usb_image(layout)
    data = img.read_bytes()[:512]
    assert data[:440] == MBR_BIN.read_bytes()[:440]
    table = subprocess.run(["sfdisk", "--json", img], capture_output=True, text=True, check=True).stdout
    import json

    parts = json.loads(table)["partitiontable"]
    assert parts["label"] == "dos" and len(parts["partitions"]) == 1
    p = parts["partitions"][0]
    assert (p["start"], p["type"], p.get("bootable")) == (PART_START, "c", True)
    blkid = subprocess.run(
        ["blkid", "-p", "-O", str(OFF), "-o", "export", img], capture_output=True, text=True
    )
    assert "LABEL=B2CTKEY" in blkid.stdout and "VERSION=FAT32" in blkid.stdout, blkid.stdout
    listing = subprocess.run(
        ["mdir", "-/", "-a", "-b", "-i", f"{img}@@{OFF}", "::/"],
        capture_output=True,
        text=True,
        check=True,
        env=esp.mtools_env(),
    ).stdout
    for f in (
        "::/syslinux/ldlinux.sys",
        "::/syslinux/syslinux.cfg",
        "::/images/pxeboot/vmlinuz",
        "::/ks.cfg",
    ):
        assert f in listing, f
    assert any(x.lower() == "::/efi/boot/bootx64.efi" for x in listing.split()), listing
    assert esp.read_file(img, OFF, "ks.cfg", "t") == KICKSTART


@pytest.mark.parametrize("layout", LAYOUTS)
def test_key_configs_point_at_key_label(layout: str, usb_image) -> None:
    img = usb_image(layout)
    sysl = esp.read_file(img, OFF, "syslinux/syslinux.cfg", "t")
    assert sysl is not None
    entries = bootcfg.isolinux_entries(sysl, "/syslinux")
    assert len(entries) >= 2
    path, syntax = UEFI_CFG[layout]
    uefi = esp.read_file(img, OFF, path, "t")
    assert uefi is not None
    entries += bootcfg.entries(uefi, syntax, "/")
    ks = "ks" if layout == "el6" else "inst.ks"
    for e in entries:
        assert f"{ks}=hd:LABEL=B2CTKEY:/ks.cfg" in e.args, e
        if layout != "el6":
            assert "inst.stage2=hd:LABEL=B2CTKEY" in e.args, e
        assert not any(
            a.split("=")[0] in ("ks", "inst.ks", "inst.stage2") and "B2CTKEY" not in a for a in e.args
        )
    if syntax == "grub2":
        assert "-l 'B2CTKEY'" in uefi  # GRUB's root search must find the key, not the ISO's old label


def test_hybrid_is_byte_identical(built_iso, tmp_path: Path) -> None:
    out = tmp_path / "hybrid.img"
    r = b2ct("make-usb", "--iso", built_iso("el10"), "--image", out, "--hybrid")
    assert r.returncode == 0, r.stderr
    assert (
        hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(built_iso("el10").read_bytes()).digest()
    )


def test_make_usb_adds_kickstart_to_base_iso(base_iso, kickstart_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "k.img"
    r = b2ct(
        "make-usb",
        "--iso",
        base_iso("el9"),
        "--image",
        out,
        "--size",
        "128M",
        "-k",
        kickstart_file,
        "--label",
        "SITE_01",
    )
    assert r.returncode == 0, r.stderr
    assert esp.read_file(out, OFF, "ks.cfg", "t") == KICKSTART
    assert "inst.ks=hd:LABEL=SITE_01:/ks.cfg" in (esp.read_file(out, OFF, "EFI/BOOT/grub.cfg", "t") or "")


def test_make_usb_reproducible(built_iso, tmp_path: Path) -> None:
    sums = set()
    for i in range(2):
        time.sleep(1.1 * i)  # a different wall-clock second: only SOURCE_DATE_EPOCH may set dates
        out = tmp_path / f"k{i}.img"
        r = b2ct(
            "make-usb",
            "--iso",
            built_iso("el10"),
            "--image",
            out,
            "--size",
            "100M",
            env={"SOURCE_DATE_EPOCH": EPOCH},
        )
        assert r.returncode == 0, r.stderr
        sums.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(sums) == 1


def test_make_usb_without_kickstart_refused(base_iso, tmp_path: Path) -> None:
    out = tmp_path / "k.img"
    r = b2ct("make-usb", "--iso", base_iso("el9"), "--image", out, "--size", "128M")
    assert r.returncode == 2 and "no kickstart" in r.stderr
    assert not out.exists()
