"""QEMU (TCG) boots: built ISO as CD and as disk, and the make-usb key, under SeaBIOS and OVMF.

The synthetic initrd does what the installer does first (find hd:LABEL=…, mount, read the kickstart)
and prints the kickstart's sha256 on the serial console.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import b2ct_media_synth as synth
import pytest
from conftest import LAYOUTS

from b2ct.media import esp
from b2ct.media.usb import PART_START

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _qemu_present() -> None:
    if not shutil.which("qemu-system-x86_64") or not synth.OVMF_CODE.exists():
        pytest.fail("qemu-system-x86 and ovmf are needed (see .ci/packages/media.apt)")


def _result(text: str) -> str:
    lines = [ln for ln in text.splitlines() if "B2CT-KS-" in ln and not ln.startswith("[")]
    return lines[-1] if lines else "no result; console tail:\n" + text[-2000:]


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
@pytest.mark.parametrize("medium", ["cd", "disk", "key"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_boot_finds_kickstart(
    layout: str, medium: str, firmware: str, built_iso, usb_image, kickstart_sha256: str, tmp_path: Path
) -> None:
    image = usb_image(layout) if medium == "key" else built_iso(layout)
    text = synth.qemu_boot(image, cdrom=medium == "cd", uefi=firmware == "uefi", work=tmp_path)
    result = _result(text)
    label = "B2CTKEY" if medium == "key" else synth.VOLIDS[layout]
    assert result.startswith(f"B2CT-KS-SHA256={kickstart_sha256} label={label} "), result
    if layout != "el6":
        assert f"B2CT-STAGE2-FOUND label={label}" in text  # inst.stage2 points at the medium booted


def test_label_mismatch_fails_visibly(usb_image, tmp_path: Path) -> None:
    """A key whose FAT label differs from what its boot entries ask for must not find the kickstart."""
    key = tmp_path / "relabelled.img"
    shutil.copyfile(usb_image("el9"), key)
    subprocess.run(
        ["mlabel", "-i", f"{key}@@{PART_START * 512}", "::OTHERKEY"], check=True, env=esp.mtools_env()
    )
    text = synth.qemu_boot(key, cdrom=False, uefi=False, work=tmp_path)
    result = _result(text)
    assert "B2CT-KS-FAIL label-not-found label=B2CTKEY" in result, result
    assert "B2CT-KS-SHA256=" not in text


# Media mastered with lorax's commands (lorax_media). Their UEFI GRUB reads the grub.cfg beside itself,
# as RHEL's does: booted from the disk's ESP (the ISO written to a key), it reads the ESP's copy, so
# these boots fail if that copy was left unedited (as b2ct left EL10's appended ESP before).
LORAX_BOOTS = [
    ("el8", "disk", "uefi"),  # isohybrid --uefi: the ESP is MBR partition 2 over images/efiboot.img
    ("el9", "disk", "uefi"),  # -isohybrid-gpt-basdat
    ("el10", "disk", "uefi"),  # the appended GPT partition inside the -partition_offset 16 volume
    ("el10", "cd", "uefi"),  # El Torito UEFI entry into the same partition
    ("el10", "cd", "bios"),  # GRUB for BIOS (images/eltorito.img)
    ("el10", "key", "uefi"),  # make-usb from the lorax base: the key's FAT is the ESP
    ("el8", "key", "uefi"),
]


@pytest.mark.parametrize(("release", "medium", "firmware"), LORAX_BOOTS)
def test_lorax_media_boot_finds_kickstart(
    release: str, medium: str, firmware: str, lorax_built, lorax_key, kickstart_sha256: str, tmp_path: Path
) -> None:
    import lorax_media

    image = lorax_key(release) if medium == "key" else lorax_built(release)
    text = synth.qemu_boot(image, cdrom=medium == "cd", uefi=firmware == "uefi", work=tmp_path)
    result = _result(text)
    label = "B2CTKEY" if medium == "key" else lorax_media.VOLIDS[release]
    assert result.startswith(f"B2CT-KS-SHA256={kickstart_sha256} label={label} "), result
    assert f"B2CT-STAGE2-FOUND label={label}" in text
