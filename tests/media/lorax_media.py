"""Base ISOs laid out and mastered the way lorax builds EL8, EL9 and EL10 boot media.

The mastering commands follow lorax's share/templates.d/99-generic/x86.tmpl and efi.tmpl on its
rhel8-branch, rhel9-branch and rhel10-branch (read, not copied):

- EL8: ``mkisofs`` (genisoimage) with an El Torito BIOS entry for isolinux and a UEFI entry for
  images/efiboot.img, then ``isohybrid --uefi``: an MBR whose partition 2 (type 0xEF) points at
  efiboot.img inside the ISO filesystem.
- EL9: ``xorrisofs -isohybrid-mbr isohdpfx.bin ... -e images/efiboot.img -no-emul-boot
  -isohybrid-gpt-basdat``: GPT and MBR entries for the embedded efiboot.img.
- EL10: no isolinux; GRUB for BIOS (images/eltorito.img) and ``-partition_offset 16
  -appended_part_as_gpt -append_partition 2 <ESP GUID> efiboot.img``: the ESP lives only in an
  appended GPT partition, and the primary volume descriptor spans the whole image, the ESP included.

efi.tmpl copies EFI/BOOT/grub.cfg to EFI/BOOT/BOOT.conf when it builds IA32 (32-bit UEFI) support,
in the tree and in efiboot.img; these media carry both. Kernels and initrds are the synthetic ones of
b2ct_media_synth (a busybox init that reads the kickstart the way the installer's stage 1 does). The
x86-64 GRUB EFI loader is Debian's, with prefix /EFI/BOOT like lorax's gcdx64.efi; BOOTIA32.EFI is a
placeholder (no IA32 firmware here), but its config is a real one every UEFI check must see edited.
The x86-64 loader reads the grub.cfg beside it, as RHEL's does (FW_PATH_CFG).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import b2ct_media_synth as synth

RELEASES = ("el8", "el9", "el10")
VOLIDS = {
    "el8": "RHEL-8-10-0-BaseOS-x86_64",
    "el9": "RHEL-9-6-0-BaseOS-x86_64",
    "el10": "RHEL-10-0-BaseOS-x86_64",
}
PRODUCT = {"el8": "Red Hat Enterprise Linux 8.10", "el9": "Red Hat Enterprise Linux 9.6", "el10": "RHEL 10.0"}
ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BASIC_DATA_GUID = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
EPOCH = "1700000000"

# Entries as lorax's config_files/x86 templates have them: install, media test (the default),
# FIPS, then a troubleshooting submenu; only the kernel arguments matter to b2ct.
GRUB_CFG = """set default="1"

function load_video {{
  insmod all_video
}}

load_video
set gfxpayload=keep
insmod gzio
insmod part_gpt
insmod ext2

set timeout=60
### END /etc/grub.d/00_header ###

search --no-floppy --set=root -l '{volid}'

### BEGIN /etc/grub.d/10_linux ###
menuentry 'Install {product}' --class fedora --class gnu-linux --class gnu --class os {{
\t{linux} /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid} console=ttyS0 quiet
\t{initrd} /images/pxeboot/initrd.img
}}
menuentry 'Test this media & install {product}' --class fedora --class gnu-linux --class gnu --class os {{
\t{linux} /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid} rd.live.check console=ttyS0 quiet
\t{initrd} /images/pxeboot/initrd.img
}}
menuentry 'Install {product} in FIPS mode' --class fedora --class gnu-linux --class gnu --class os {{
\t{linux} /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid} console=ttyS0 quiet fips=1
\t{initrd} /images/pxeboot/initrd.img
}}
submenu 'Troubleshooting -->' {{
\tmenuentry 'Install {product} in basic graphics mode' --class fedora --class gnu-linux --class os {{
\t\t{linux} /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid} nomodeset console=ttyS0 quiet
\t\t{initrd} /images/pxeboot/initrd.img
\t}}
\tmenuentry 'Rescue a {product} system' --class fedora --class gnu-linux --class gnu --class os {{
\t\t{linux} /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid} inst.rescue console=ttyS0 quiet
\t\t{initrd} /images/pxeboot/initrd.img
\t}}
}}
"""

ISOLINUX_CFG = """default vesamenu.c32
timeout 600
display boot.msg
menu title {product}
label linux
  menu label ^Install {product}
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL={volid} console=ttyS0 quiet
label check
  menu label Test this ^media & install {product}
  menu default
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL={volid} rd.live.check console=ttyS0 quiet
menu begin ^Troubleshooting
  label vesa
    menu label Install {product} in ^basic graphics mode
    kernel vmlinuz
    append initrd=initrd.img inst.stage2=hd:LABEL={volid} nomodeset console=ttyS0 quiet
  label rescue
    menu label ^Rescue a {product} system
    kernel vmlinuz
    append initrd=initrd.img inst.stage2=hd:LABEL={volid} inst.rescue console=ttyS0 quiet
  label memtest
    menu label Run a ^memory test
    kernel memtest
  label local
    menu label Boot from ^local drive
    localboot 0xffff
menu end
"""

# RHEL's GRUB reads grub.cfg from the directory it was loaded from ($fw_path) before $prefix: booted
# from a disk's ESP it reads the ESP's copy (DESIGN.md). Debian's GRUB with prefix /EFI/BOOT would read
# the ISO tree's copy instead, so the UEFI loader here says where to look, as RHEL's does.
FW_PATH_CFG = "configfile $cmdpath/grub.cfg\n"


def _efi_boot_dir(efi: Path, work: Path, volid: str, product: str) -> str:
    """EFI/BOOT as efi.tmpl fills it for X64 and IA32; returns grub.cfg's text."""
    efi.mkdir(parents=True, exist_ok=True)
    (efi / "fonts").mkdir(exist_ok=True)
    cfg = work / "fw-path.cfg"
    cfg.write_text(FW_PATH_CFG)
    # linuxefi/initrdefi: the commands lorax's grub2-efi.cfg uses (Debian ships them as a module).
    modules = [*synth.GRUB_EFI_MODULES, "linuxefi", "ext2"]
    synth.run(
        "grub-mkimage", "-O", "x86_64-efi", "-p", "/EFI/BOOT", "-c", cfg, "-o", efi / "BOOTX64.EFI", *modules
    )
    shutil.copy(efi / "BOOTX64.EFI", efi / "grubx64.efi")
    for name in ("mmx64.efi", "BOOTIA32.EFI", "grubia32.efi", "mmia32.efi", "fonts/unicode.pf2"):
        (efi / name).write_bytes(b"placeholder: not booted in these tests\n")
    cfg = GRUB_CFG.format(volid=volid, product=product, linux="linuxefi", initrd="initrdefi")
    (efi / "grub.cfg").write_text(cfg)
    (efi / "BOOT.conf").write_text(cfg)
    return cfg


def _efiboot_img(efi: Path, out: Path) -> Path:
    """images/efiboot.img as mkefiboot makes it: a FAT image labelled ANACONDA holding EFI/BOOT."""
    files: dict[str, Path | str] = {}
    for p in sorted(efi.rglob("*")):
        if p.is_file():
            files[f"EFI/BOOT/{p.relative_to(efi)}"] = p
    return synth.build_fat_image(out, files, "ANACONDA", size_kib=4096)


def build_lorax_iso(release: str, out: Path, work: Path) -> Path:
    """A boot.iso for ``release`` (el8, el9, el10) at ``out``, mastered with lorax's commands."""
    tree = work / f"lorax-{release}"
    shutil.rmtree(tree, ignore_errors=True)
    volid, product = VOLIDS[release], PRODUCT[release]
    px = tree / "images/pxeboot"
    px.mkdir(parents=True)
    shutil.copy(synth.KERNEL, px / "vmlinuz")
    synth.build_initrd("el7", px / "initrd.img")
    (tree / "images/install.img").write_bytes(b"stage2 placeholder\n")
    (tree / ".discinfo").write_text(f"1700000000.0\n{product}\nx86_64\n")
    efi = tree / "EFI/BOOT"
    _efi_boot_dir(efi, work, volid, product)
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    out.unlink(missing_ok=True)
    if release in ("el8", "el9"):
        iso = tree / "isolinux"
        iso.mkdir()
        shutil.copy("/usr/lib/ISOLINUX/isolinux.bin", iso)
        for m in ("ldlinux.c32", "libcom32.c32", "libutil.c32", "vesamenu.c32"):
            shutil.copy(f"/usr/lib/syslinux/modules/bios/{m}", iso)
        shutil.copy(px / "vmlinuz", iso / "vmlinuz")
        shutil.copy(px / "initrd.img", iso / "initrd.img")
        (iso / "memtest").write_bytes(b"memtest86+ placeholder\n")
        (iso / "boot.msg").write_text(f"{product}\n")
        (iso / "isolinux.cfg").write_text(ISOLINUX_CFG.format(volid=volid, product=product))
        _efiboot_img(efi, tree / "images/efiboot.img")
        grafts = [
            f".discinfo={tree}/.discinfo",
            f"images/install.img={tree}/images/install.img",
            f"isolinux={iso}",
            f"images/pxeboot={px}",
            f"EFI/BOOT={efi}",
            f"images/efiboot.img={tree}/images/efiboot.img",
        ]
        if release == "el8":
            synth.run(
                "genisoimage",
                "-quiet",
                "-o",
                out,
                "-b",
                "isolinux/isolinux.bin",
                "-c",
                "isolinux/boot.cat",
                "-boot-load-size",
                "4",
                "-boot-info-table",
                "-no-emul-boot",
                "-eltorito-alt-boot",
                "-e",
                "images/efiboot.img",
                "-no-emul-boot",
                "-R",
                "-J",
                "-V",
                volid,
                "-T",
                "-graft-points",
                *grafts,
                env=env,
            )
            synth.run("isohybrid", "--uefi", "--id", "0x12345678", out)
        else:
            synth.run(
                "xorrisofs",
                "-quiet",
                "-o",
                out,
                "-isohybrid-mbr",
                "/usr/lib/ISOLINUX/isohdpfx.bin",
                "-b",
                "isolinux/isolinux.bin",
                "-c",
                "isolinux/boot.cat",
                "-boot-load-size",
                "4",
                "-boot-info-table",
                "-no-emul-boot",
                "-eltorito-alt-boot",
                "-e",
                "images/efiboot.img",
                "-no-emul-boot",
                "-isohybrid-gpt-basdat",
                "-R",
                "-J",
                "-V",
                volid,
                "-graft-points",
                *grafts,
                env=env,
            )
    else:
        g = tree / "boot/grub2"
        g.mkdir(parents=True)
        bios_cfg = GRUB_CFG.format(volid=volid, product=product, linux="linux", initrd="initrd")
        (g / "grub.cfg").write_text(bios_cfg)
        synth.run(
            "grub-mkimage",
            "-O",
            "i386-pc-eltorito",
            "-p",
            "/boot/grub2",
            "-o",
            tree / "images/eltorito.img",
            *synth.GRUB_BIOS_MODULES,
        )
        esp = _efiboot_img(efi, work / f"efiboot-{release}.img")  # not in the tree: only appended
        synth.run(
            "xorrisofs",
            "-quiet",
            "-o",
            out,
            "-R",
            "-J",
            "-V",
            volid,
            "--grub2-mbr",
            "/usr/lib/grub/i386-pc/boot_hybrid.img",
            "-partition_offset",
            "16",
            "-appended_part_as_gpt",
            "-append_partition",
            "2",
            ESP_GUID,
            esp,
            "-iso_mbr_part_type",
            BASIC_DATA_GUID,
            "-c",
            "boot.cat",
            "--boot-catalog-hide",
            "-b",
            "images/eltorito.img",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "--grub2-boot-info",
            "-eltorito-alt-boot",
            "-e",
            "--interval:appended_partition_2:all::",
            "-no-emul-boot",
            "-graft-points",
            f".discinfo={tree}/.discinfo",
            f"images/install.img={tree}/images/install.img",
            f"images/pxeboot={px}",
            f"boot/grub2={g}",
            f"images/eltorito.img={tree}/images/eltorito.img",
            f"EFI/BOOT={efi}",
            env=env,
        )
    synth.run("implantisomd5", out)  # lorax's buildinstall implants it; the base ISOs carry one
    shutil.rmtree(tree)
    return out
