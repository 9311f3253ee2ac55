"""build-iso and make-usb on base ISOs mastered with lorax's own commands for EL8, EL9 and EL10.

What the firmware reads is found here independently of b2ct: the ESPs from xorriso's own reports
(El Torito UEFI entries, MBR partitions of type 0xEF, GPT partitions of the ESP type), their files with
mtools, the tree with xorriso. Every config under EFI/ in each of them, and the tree's BIOS config,
must start every kernel with the kickstart. Boots are in test_boot_qemu.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import lorax_media
import pytest
from conftest import EPOCH, b2ct

from b2ct.errors import B2ctError
from b2ct.media import esp, iso

RELEASES = lorax_media.RELEASES
ESP_GUID_LE = "28732ac11ff8d211ba4b00a0c93ec93b"  # C12A7328-F81F-11D2-BA4B-00A0C93EC93B as xorriso prints it


def xorriso_report(path: Path) -> str:
    return subprocess.run(
        ["xorriso", "-indev", path, "-report_el_torito", "plain", "-report_system_area", "plain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def esp_offsets(path: Path) -> dict[int, list[str]]:
    """Byte offset of every ESP -> what points at it, read from xorriso's reports (not from b2ct)."""
    report = xorriso_report(path)
    found: dict[int, list[str]] = {}
    for m in re.finditer(
        r"^El Torito boot img :\s+(\d+)\s+UEFI\s+y\s+\S+\s+\S+\s+\S+\s+\d+\s+(\d+)", report, re.M
    ):
        found.setdefault(int(m.group(2)) * 2048, []).append(f"El Torito {m.group(1)}")
    for m in re.finditer(r"^MBR partition      :\s+(\d+)\s+0x\w+\s+0xef\s+(\d+)\s+\d+", report, re.M):
        found.setdefault(int(m.group(2)) * 512, []).append(f"MBR {m.group(1)}")
    gpt_types = dict(re.findall(r"^GPT type GUID      :\s+(\d+)\s+(\w+)", report, re.M))
    for n, start in re.findall(r"^GPT start and size :\s+(\d+)\s+(\d+)\s+\d+", report, re.M):
        if gpt_types.get(n) == ESP_GUID_LE:
            found.setdefault(int(start) * 512, []).append(f"GPT {n}")
    return found


def mtools(*args: str | Path) -> str:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=True, env=esp.mtools_env()
    ).stdout


def fat_configs(image: Path, offset: int) -> dict[str, str]:
    listing = mtools("mdir", "-/", "-b", "-i", f"{image}@@{offset}", "::/")
    names = [ln[3:] for ln in listing.splitlines() if ln.startswith("::/") and not ln.endswith("/")]
    return {
        n: mtools("mtype", "-i", f"{image}@@{offset}", f"::/{n}")
        for n in names
        if n.upper().startswith("EFI/") and n.lower().endswith((".cfg", ".conf"))
    }


def tree_configs(path: Path, work: Path) -> dict[str, str]:
    listing = subprocess.run(
        ["xorriso", "-indev", path, "-find", "/", "-type", "f"], capture_output=True, text=True, check=True
    ).stdout
    names = [ln.strip("'")[1:] for ln in listing.splitlines() if ln.startswith("'/")]
    wanted = [
        n
        for n in names
        if n in ("isolinux/isolinux.cfg", "boot/grub2/grub.cfg")
        or (n.upper().startswith("EFI/") and n.lower().endswith((".cfg", ".conf")))
    ]
    iso.extract(path, wanted, work)
    return {n: (work / n).read_text() for n in wanted}


def kernels_without_kickstart(name: str, text: str, label: str) -> list[str]:
    """The lines of config ``name`` that start an installer kernel without the kickstart and stage 2
    on ``label``: isolinux append lines with an initrd, GRUB linux lines."""
    want = [f"inst.ks=hd:LABEL={label}:/ks.cfg", f"inst.stage2=hd:LABEL={label}"]
    lines = text.splitlines()
    if name.endswith("isolinux.cfg"):
        starts = [ln for ln in lines if ln.split()[:1] == ["append"] and "initrd=" in ln]
    else:
        starts = [ln for ln in lines if re.match(r"^\s*(linux|linuxefi|linux16)\s", ln)]
    assert starts, f"{name} starts no kernel"
    return [ln for ln in starts if not all(w in ln.split() for w in want)]


def every_config(path: Path, work: Path) -> dict[str, str]:
    configs = {f"/{k}": v for k, v in tree_configs(path, work).items()}
    offsets = esp_offsets(path)
    assert offsets, "no ESP at all"
    for off, refs in offsets.items():
        found = fat_configs(path, off)
        assert found, (off, refs)
        configs.update({f"ESP@{off} ({', '.join(refs)}):/{k}": v for k, v in found.items()})
    return configs


def test_bases_are_mastered_as_lorax_does(lorax_iso) -> None:
    """The fixtures have the layouts the issue is about (guards against the builder drifting)."""
    r8, r9, r10 = (xorriso_report(lorax_iso(r)) for r in RELEASES)
    assert (
        re.search(r"MBR partition      :\s+2\s+0x00\s+0xef", r8)
        and "GPT partition path :   2  /images/efiboot.img" in r8
    )
    assert "isohybrid" in r9 and "/images/efiboot.img" in r9
    assert "Partition offset   : 16" in r10 and ESP_GUID_LE in r10
    assert "protective-msdos-label" in r10 and "/images/efiboot.img" not in r10
    info = iso.read_info(lorax_iso("el10"))
    assert info.fs_bytes == info.file_bytes  # the volume descriptor spans the appended ESP too
    for r in RELEASES:  # lorax implants a checksum; b2ct's outputs must carry one too
        check = subprocess.run(["checkisomd5", lorax_iso(r)], capture_output=True, text=True)
        assert check.returncode == 0 and "PASS" in check.stdout + check.stderr, check


@pytest.mark.parametrize("release", RELEASES)
def test_every_config_a_firmware_reads_loads_the_kickstart(
    release: str, lorax_iso, lorax_built, tmp_path: Path
) -> None:
    """EL10: the ESP is an appended partition inside the volume's span; EL8/9: BOOT.conf beside grub.cfg."""
    label = lorax_media.VOLIDS[release]
    configs = every_config(lorax_built(release), tmp_path)
    assert any(k.endswith("BOOT.conf") and k.startswith("ESP") for k in configs), configs.keys()
    assert any(k.endswith("grub.cfg") and k.startswith("ESP") for k in configs), configs.keys()
    for where, text in configs.items():
        assert not kernels_without_kickstart(where, text, label), where
    # Nothing lost: as many ESPs, pointed at by the same kinds of records, as in the base.
    kinds = [sorted(r.split()[0] for r in refs) for refs in esp_offsets(lorax_iso(release)).values()]
    assert sorted(kinds) == sorted(
        sorted(r.split()[0] for r in refs) for refs in esp_offsets(lorax_built(release)).values()
    )


def test_el10_keeps_its_iso_partition(lorax_built, tmp_path: Path) -> None:
    """-partition_offset 16 makes partition 1 a mountable ISO 9660 (a key shows it as sdX1): it stays,
    and it shows the new tree, kickstart included."""
    out = lorax_built("el10")
    assert "Partition offset   : 16" in xorriso_report(out)
    part = tmp_path / "partition1.iso"
    with out.open("rb") as f, part.open("wb") as g:
        f.seek(64 * 512)
        shutil.copyfileobj(f, g)
    assert "ks.cfg" in iso.list_files(part)


@pytest.mark.parametrize("release", RELEASES)
def test_built_iso_passes_the_media_check(release: str, lorax_built, tmp_path: Path) -> None:
    """rd.live.check runs checkisomd5: without an implanted checksum the installer halts."""
    out = lorax_built(release)
    check = subprocess.run(["checkisomd5", out], capture_output=True, text=True)
    assert check.returncode == 0 and "result is: PASS" in check.stdout + check.stderr, check
    # The same bytes implantisomd5 itself would write on the same image.
    ref = tmp_path / "ref.iso"
    shutil.copyfile(out, ref)
    subprocess.run(["implantisomd5", "--force", ref], capture_output=True, check=True)
    assert ref.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("release", RELEASES)
def test_key_from_lorax_media_points_every_config_at_the_key(release: str, lorax_key, tmp_path: Path) -> None:
    key = lorax_key(release)
    off = 2048 * 512
    configs = fat_configs(key, off)
    names = set(mtools("mdir", "-/", "-b", "-i", f"{key}@@{off}", "::/").split())
    if "::/images/efiboot.img" in names:
        mtools("mcopy", "-n", "-i", f"{key}@@{off}", "::/images/efiboot.img", tmp_path / "esp.img")
        configs.update({f"efiboot.img:/{k}": v for k, v in fat_configs(tmp_path / "esp.img", 0).items()})
    assert "EFI/BOOT/BOOT.conf" in configs and "EFI/BOOT/grub.cfg" in configs
    for where, text in configs.items():
        assert not kernels_without_kickstart(where, text, "B2CTKEY"), where


def test_uefi_image_b2ct_cannot_edit_is_refused(lorax_iso, kickstart_file: Path, tmp_path: Path) -> None:
    """An El Torito UEFI entry whose image is not FAT (say HFS+): refuse, exit 2, nothing written."""
    tree = tmp_path / "tree"
    base = lorax_iso("el9")
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", base, "-extract", "/", tree], capture_output=True, check=True
    )
    (tree / "images/macboot.img").write_bytes(b"H+" + bytes(1 << 20))
    odd = tmp_path / "odd.iso"
    for p in tree.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    # fmt: off
    mkisofs = [
        "xorriso", "-as", "mkisofs", "-quiet", "-o", odd, "-V", lorax_media.VOLIDS["el9"], "-R", "-J",
        "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4",
        "-boot-info-table", "-eltorito-alt-boot", "-e", "images/efiboot.img", "-no-emul-boot",
        "-eltorito-alt-boot", "-e", "images/macboot.img", "-no-emul-boot", tree,
    ]
    # fmt: on
    subprocess.run(mkisofs, capture_output=True, check=True)
    out = tmp_path / "out"
    out.mkdir()
    r = b2ct("build-iso", "--base-iso", odd, "-k", kickstart_file, "-o", out / "x.iso")
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("b2ct: error:")]
    assert len(errors) == 1 and "macboot.img" in errors[0] and "not a FAT" in errors[0], r.stderr
    assert list(out.iterdir()) == []


def test_read_back_refuses_a_config_left_unedited(
    lorax_iso, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The static check is a safety net of its own: if an ESP's configs were not edited (as b2ct did
    on EL10 media before), the build fails instead of writing a medium that ignores the kickstart."""
    real = esp.rewrite_fat_configs
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)

    def skip_partitions(image: Path, offset: int, spec, work: Path, epoch, where: str) -> int:
        if "partition" in where:
            return 1  # pretend: the appended ESP is left as it was
        return real(image, offset, spec, work, epoch, where)

    monkeypatch.setattr(esp, "rewrite_fat_configs", skip_partitions)
    out = tmp_path / "x.iso"
    with pytest.raises(B2ctError) as exc:
        iso.build_iso(lorax_iso("el10"), out, {"ks.cfg": "# ks\n"})
    assert "GPT partition 2" in exc.value.message and "/EFI/BOOT/" in exc.value.message, exc.value.message
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary files
