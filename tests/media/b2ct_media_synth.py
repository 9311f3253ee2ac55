"""Synthetic EL install ISOs with the real boot layouts, for tests and the bench.

Real bootloaders from Debian (isolinux, GRUB EFI/BIOS), a real Debian kernel, and a busybox initrd
whose init does what anaconda's loader/dracut do first: parse ``ks=``/``inst.ks=hd:LABEL=X:/path``,
find the filesystem with that label, mount it, read the kickstart and print its checksum on the serial
console, then power off. The EL6 initrd only honours ``ks=``, the EL7+ one only ``inst.ks=``, as the
real installers do.
"""

from __future__ import annotations

import glob
import gzip
import os
import shutil
import subprocess
from pathlib import Path

KVER = (
    os.path.basename(sorted(glob.glob("/lib/modules/*cloud-amd64"))[-1])
    if glob.glob("/lib/modules/*cloud-amd64")
    else ""
)
KERNEL = Path(f"/boot/vmlinuz-{KVER}")
MODULES = [
    "scsi_common",
    "scsi_mod",
    "libata",
    "ata_piix",
    "cdrom",
    "sr_mod",
    "sd_mod",
    "isofs",
    "fat",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
]
VOLIDS = {"el6": "CentOS_6.7_Final", "el9": "AlmaLinux-9-4-x86_64-boot", "el10": "AlmaLinux-10-0-x86_64-boot"}
GRUB_EFI_MODULES = [
    "part_msdos",
    "part_gpt",
    "fat",
    "iso9660",
    "normal",
    "linux",
    "search",
    "search_label",
    "search_fs_file",
    "configfile",
    "echo",
    "test",
    "serial",
    "terminal",
    "gzio",
    "all_video",
    "efi_gop",
    "boot",
    "ls",
    "cat",
    "legacycfg",
]
GRUB_BIOS_MODULES = [
    "biosdisk",
    "part_msdos",
    "part_gpt",
    "fat",
    "iso9660",
    "normal",
    "linux",
    "search",
    "search_label",
    "search_fs_file",
    "configfile",
    "echo",
    "test",
    "serial",
    "terminal",
    "gzio",
    "boot",
    "ls",
    "cat",
]

INIT = r"""#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in MODULES; do insmod /lib/modules/$m.ko 2>/dev/null; done
flavour=$(cat /etc/b2ct-flavour)
echo "B2CT-INIT flavour=$flavour cmdline=$(cat /proc/cmdline)"
ks=""; stage2=""
for a in $(cat /proc/cmdline); do
  case "$flavour:$a" in
    el6:ks=*) ks=${a#ks=} ;;
    el7:inst.ks=*) ks=${a#inst.ks=} ;;
    el7:inst.stage2=*) stage2=${a#inst.stage2=} ;;
  esac
done
finish() { echo "$1"; sync; poweroff -f; sleep 5; }
find_label() {
  i=0
  while [ $i -lt 24 ]; do
    d=$(findfs "LABEL=$1" 2>/dev/null) && { echo "$d"; return 0; }
    sleep 0.25; i=$((i+1))
  done
  return 1
}
[ -n "$ks" ] || finish "B2CT-KS-FAIL no-ks-argument"
case "$ks" in hd:LABEL=*) ;; *) finish "B2CT-KS-FAIL unsupported-ks=$ks" ;; esac
spec=${ks#hd:LABEL=}; label=$(printf '%b' "${spec%%:*}"); path=${spec#*:}
if [ -n "$stage2" ]; then
  s2=$(printf '%b' "${stage2#hd:LABEL=}")
  if find_label "$s2" >/dev/null; then echo "B2CT-STAGE2-FOUND label=$s2"
  else echo "B2CT-STAGE2-MISSING label=$s2"; fi
fi
dev=$(find_label "$label") || finish "B2CT-KS-FAIL label-not-found label=$label"
mkdir -p /mnt; mount -r "$dev" /mnt || finish "B2CT-KS-FAIL mount dev=$dev"
[ -f "/mnt$path" ] || finish "B2CT-KS-FAIL no-file dev=$dev path=$path"
sum=$(sha256sum "/mnt$path"); sum=${sum%% *}
finish "B2CT-KS-SHA256=$sum label=$label dev=$dev"
"""


def run(*cmd: str | os.PathLike, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, **kw)


def build_initrd(flavour: str, out: Path) -> Path:
    root = out.parent / f"initrd-{flavour}"
    shutil.rmtree(root, ignore_errors=True)
    for d in ("bin", "etc", "proc", "sys", "dev", "mnt", "lib/modules"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", root / "bin/busybox")
    (root / "bin/sh").symlink_to("busybox")
    moddir = Path("/lib/modules") / KVER
    for name in MODULES:
        found = list(moddir.rglob(f"{name}.ko"))
        if found:
            shutil.copy(found[0], root / "lib/modules" / f"{name}.ko")
    (root / "etc/b2ct-flavour").write_text(flavour + "\n")
    init = root / "init"
    init.write_text(INIT.replace("MODULES", " ".join(MODULES)))
    init.chmod(0o755)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    cpio = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet", "--reproducible"],
        input="\n".join(names).encode(),
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout
    out.write_bytes(gzip.compress(cpio, mtime=0))
    shutil.rmtree(root)
    return out


def build_grub_efi(out: Path, work: Path, embedded: str | None = None) -> Path:
    args = ["grub-mkimage", "-O", "x86_64-efi", "-p", "/EFI/BOOT", "-o", str(out)]
    if embedded:
        cfg = work / "embedded.cfg"
        cfg.write_text(embedded)
        args += ["-c", str(cfg)]
    run(*args, *GRUB_EFI_MODULES)
    return out


def build_fat_image(out: Path, files: dict[str, Path | str], label: str, size_kib: int = 8192) -> Path:
    """A partitionless FAT image (like efiboot.img) holding ``files`` (path on FAT -> source or text)."""
    out.unlink(missing_ok=True)
    run("mkfs.fat", "-C", "-n", label, "-i", "12345678", "--invariant", out, str(size_kib))
    dirs: set[str] = set()
    for dest in files:
        parts = dest.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    for d in sorted(dirs):
        run("mmd", "-i", out, f"::/{d}")
    tmp = out.parent / (out.name + ".src")
    for dest, src in files.items():
        if isinstance(src, str):
            tmp.write_text(src)
            src = tmp
        run("mcopy", "-i", out, "-m", src, f"::/{dest}")
    tmp.unlink(missing_ok=True)
    return out


ISOLINUX_CFG = """default vesamenu.c32
timeout 600
display boot.msg
menu title Welcome to {name}!
label linux
  menu label ^Install {name}
  kernel vmlinuz
  append initrd=initrd.img {stage2}console=ttyS0 quiet
label check
  menu label Test this ^media & install {name}
  menu default
  kernel vmlinuz
  append initrd=initrd.img {stage2}rd.live.check console=ttyS0 quiet
label rescue
  menu label ^Rescue a {name} system
  kernel vmlinuz
  append initrd=initrd.img {stage2}{rescue} console=ttyS0 quiet
label local
  menu label Boot from ^local drive
  localboot 0xffff
"""

GRUB2_CFG = """set default="1"
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
menuentry 'Install {name}' --class fedora --class gnu-linux --class gnu --class os {{
\t{linux} /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid} console=ttyS0 quiet
\t{initrd} /images/pxeboot/initrd.img
}}
menuentry 'Test this media & install {name}' --class fedora --class gnu-linux --class gnu --class os {{
\t{linux} /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid} rd.live.check console=ttyS0 quiet
\t{initrd} /images/pxeboot/initrd.img
}}
submenu 'Troubleshooting -->' {{
\tmenuentry 'Rescue a {name} system' --class fedora --class gnu-linux --class gnu --class os {{
\t\t{linux} /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid} inst.rescue console=ttyS0 quiet
\t\t{initrd} /images/pxeboot/initrd.img
\t}}
}}
"""

EL6_BOOTX64_CONF = """#debug --graphics
default=0
splashimage=/EFI/BOOT/splash.xpm.gz
timeout 5
hiddenmenu
title CentOS 6.7
\tkernel /images/pxeboot/vmlinuz console=ttyS0
\tinitrd /images/pxeboot/initrd.img
title CentOS 6.7 (rescue)
\tkernel /images/pxeboot/vmlinuz rescue console=ttyS0
\tinitrd /images/pxeboot/initrd.img
"""

# The real EL6 EFI loader is legacy GRUB reading BOOTX64.conf beside itself; GRUB 2 parses the same file.
EL6_EFI_EMBEDDED = """search --no-floppy --file --set=root /images/pxeboot/vmlinuz
legacy_configfile $cmdpath/BOOTX64.conf
"""


def build_synthetic_iso(layout: str, out: Path, work: Path, pad_bytes: int = 0) -> Path:
    """Build a base ISO with the real file layout of ``layout`` (el6, el9, el10) at ``out``."""
    tree = work / f"tree-{layout}"
    shutil.rmtree(tree, ignore_errors=True)
    volid = VOLIDS[layout]
    flavour = "el6" if layout == "el6" else "el7"
    name = {"el6": "CentOS 6.7", "el9": "AlmaLinux 9.4", "el10": "AlmaLinux 10.0"}[layout]
    px = tree / "images/pxeboot"
    px.mkdir(parents=True)
    shutil.copy(KERNEL, px / "vmlinuz")
    build_initrd(flavour, px / "initrd.img")
    (tree / "images/install.img").write_bytes(b"stage2 placeholder\n")
    (tree / ".discinfo").write_text(f"1700000000.0\n{name}\nx86_64\n")
    if pad_bytes:
        with open(tree / "images/pad.bin", "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(pad_bytes >> 20):
                f.write(block)
    efi = tree / "EFI/BOOT"
    efi.mkdir(parents=True)
    xargs: list[str] = ["-V", volid, "-R", "-J", "-joliet-long"]
    if layout in ("el6", "el9"):
        iso = tree / "isolinux"
        iso.mkdir()
        shutil.copy("/usr/lib/ISOLINUX/isolinux.bin", iso)
        for m in ("ldlinux.c32", "libcom32.c32", "libutil.c32", "vesamenu.c32"):
            shutil.copy(f"/usr/lib/syslinux/modules/bios/{m}", iso)
        shutil.copy(px / "vmlinuz", iso / "vmlinuz")
        shutil.copy(px / "initrd.img", iso / "initrd.img")
        (iso / "boot.msg").write_text(f"{name}\n")
        stage2 = "" if layout == "el6" else f"inst.stage2=hd:LABEL={volid} "
        rescue = "rescue" if layout == "el6" else "inst.rescue"
        (iso / "isolinux.cfg").write_text(ISOLINUX_CFG.format(name=name, stage2=stage2, rescue=rescue))
        if layout == "el6":
            build_grub_efi(efi / "BOOTX64.efi", work, EL6_EFI_EMBEDDED)
            (efi / "BOOTX64.conf").write_text(EL6_BOOTX64_CONF)
            esp_files = {
                "EFI/BOOT/BOOTX64.efi": efi / "BOOTX64.efi",
                "EFI/BOOT/BOOTX64.conf": EL6_BOOTX64_CONF,
            }
        else:
            build_grub_efi(efi / "BOOTX64.EFI", work)
            cfg = GRUB2_CFG.format(volid=volid, name=name, linux="linux", initrd="initrd")
            (efi / "grub.cfg").write_text(cfg)
            esp_files = {"EFI/BOOT/BOOTX64.EFI": efi / "BOOTX64.EFI", "EFI/BOOT/grub.cfg": cfg}
        build_fat_image(tree / "images/efiboot.img", esp_files, "ANACONDA")
        xargs += [
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-isohybrid-mbr",
            "/usr/lib/ISOLINUX/isohdpfx.bin",
            "-eltorito-alt-boot",
            "-e",
            "images/efiboot.img",
            "-no-emul-boot",
            "-isohybrid-gpt-basdat",
        ]
    else:
        g = tree / "boot/grub2"
        g.mkdir(parents=True)
        (g / "grub.cfg").write_text(GRUB2_CFG.format(volid=volid, name=name, linux="linux", initrd="initrd"))
        run(
            "grub-mkimage",
            "-O",
            "i386-pc-eltorito",
            "-p",
            "/boot/grub2",
            "-o",
            tree / "images/eltorito.img",
            *GRUB_BIOS_MODULES,
        )
        build_grub_efi(efi / "BOOTX64.EFI", work)
        cfg = GRUB2_CFG.format(volid=volid, name=name, linux="linux", initrd="initrd")
        (efi / "grub.cfg").write_text(cfg)
        esp = build_fat_image(
            work / "esp-el10.img",
            {"EFI/BOOT/BOOTX64.EFI": efi / "BOOTX64.EFI", "EFI/BOOT/grub.cfg": cfg},
            "EFIBOOT",
        )
        xargs += [
            "--grub2-mbr",
            "/usr/lib/grub/i386-pc/boot_hybrid.img",
            "-b",
            "images/eltorito.img",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "--grub2-boot-info",
            "-append_partition",
            "2",
            "0xef",
            str(esp),
            "-eltorito-alt-boot",
            "-e",
            "--interval:appended_partition_2:all::",
            "-no-emul-boot",
        ]
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    out.unlink(missing_ok=True)
    run("xorriso", "-as", "mkisofs", "-quiet", "-o", out, *xargs, tree, env=env)
    shutil.rmtree(tree)
    return out


OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
MARKERS = ("B2CT-KS-SHA256=", "B2CT-KS-FAIL")


def qemu_boot(image: Path, *, cdrom: bool, uefi: bool, work: Path, timeout: float = 120) -> str:
    """Boot ``image`` under TCG (SeaBIOS or OVMF) and return the serial console text.

    The guest powers itself off once it has printed a result; QEMU is killed by pid otherwise.
    """
    import time

    log = work / f"serial-{os.getpid()}-{time.monotonic_ns()}.log"
    drive = f"file={image},if=ide,format=raw," + ("media=cdrom,readonly=on" if cdrom else "snapshot=on")
    cmd = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-M",
        "pc",
        "-m",
        "512",
        "-smp",
        "1",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{log}",
        "-no-reboot",
        "-net",
        "none",
        "-drive",
        drive,
    ]
    if uefi:
        vars_copy = work / f"vars-{log.stem}.fd"
        shutil.copy(OVMF_VARS, vars_copy)
        cmd += [
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={vars_copy}",
        ]
    else:
        cmd += ["-boot", "d" if cdrom else "c"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    text = ""
    try:
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if (
                any(m in text for m in MARKERS)
                and "\n" in text.split(next(m for m in MARKERS if m in text))[-1]
            ):
                break
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        else:
            text += "\nB2CT-TIMEOUT\n"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        text = log.read_text(errors="replace") if log.exists() else text
        log.unlink(missing_ok=True)
        if uefi:
            vars_copy.unlink(missing_ok=True)
    return text
