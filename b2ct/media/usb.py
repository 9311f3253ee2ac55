"""Write a bootable USB key (MBR, one FAT32 partition, syslinux + EFI/BOOT) that finds its kickstart by label.

Everything is built in an image file without root (sfdisk, mkfs.fat --offset, b2ct.media.fatwrite, syslinux
--offset); a real device then receives the image's data regions and is read back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import jinja2

from b2ct import fsutil
from b2ct import tools as b2ct_tools
from b2ct.errors import B2ctError
from b2ct.fsutil import atomic_output
from b2ct.media import blockdev, bootcfg, esp, fatwrite, iso, tools, verify
from b2ct.media.labels import validate_fat_label
from b2ct.media.layout import Layout, isobuild_dir
from b2ct.ui import byte_progress, info, step

PART_START = 2048  # sectors: 1 MiB alignment, as fdisk does
# Debian's syslinux-common paths, in the tool table `b2ct doctor` and make-usb's own check read.
SYSLINUX_MODULES = Path(b2ct_tools.BY_NAME["syslinux modules"].path).parent
MBR_BIN = Path(b2ct_tools.BY_NAME["mbr.bin"].path)
MIN_SIZE = 64 << 20  # FAT32 needs ~65k clusters


@dataclass(frozen=True)
class Result:
    target: Path
    size: int
    label: str
    layout: str


def parse_size(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units else (t, "")
    try:
        value = int(float(num) * units[unit])
    except ValueError:
        raise B2ctError(f"size {text!r} is not a size", where="--size", hint="e.g. 2G, 1500M") from None
    if value < MIN_SIZE:
        raise B2ctError(f"size {text!r} is too small for FAT32", where="--size", hint="use at least 64M")
    return value


def _serial(label: str, epoch: int | None) -> str:
    # Reproducible volume serial when SOURCE_DATE_EPOCH is set; otherwise unique per key.
    seed = f"{label}:{epoch}".encode() if epoch is not None else os.urandom(8)
    return f"{zlib.crc32(seed):08X}"


@dataclass(frozen=True)
class KeyFiles:
    """What goes on the key: ISO files by reference, plus the small files b2ct writes (in ``local``)."""

    inspected: iso.Inspected
    files: dict[str, fatwrite.Content]
    dirs: set[str]
    local: Path

    @property
    def data_bytes(self) -> int:
        return sum(seg.size for content in self.files.values() for seg in content)


def key_spec(lay: Layout, label: str, timeout: int | None) -> bootcfg.BootSpec:
    """What every kernel line on a key must say: the kickstart and stage 2 on the key's own label."""
    return bootcfg.BootSpec(label=label, ks_arg=lay.ks_arg, stage2_arg=lay.stage2_arg, timeout=timeout)


def prepare_tree(
    src_iso: Path, local: Path, label: str, kickstarts: dict[str, str], timeout: int | None, epoch: int | None
) -> KeyFiles:
    """Point every boot config, and a new syslinux.cfg, at the key's label.

    Only the files that change are extracted (into ``local``); the rest stay in the ISO, to be copied
    once, straight onto the key.
    """
    iso.read_info(src_iso)  # what is not a whole ISO gets our one-line reason, not xorriso's
    extents, dirs = iso.extents(src_iso)
    ins = iso.inspect(src_iso, set(extents))
    lay = ins.layout
    info(f"layout {lay.name} ({lay.description})")
    files: dict[str, fatwrite.Content] = {
        rel: tuple(fatwrite.Segment(src_iso, off, size) for off, size in parts)
        for rel, parts in extents.items()
    }
    configs = lay.firmware_configs(set(extents))
    images = [p for p in lay.esp_images if p in extents]
    iso.copy_out(src_iso, extents, [c.path for c in configs] + images, local)
    for rel, text in kickstarts.items():
        dst = local / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text, encoding="utf-8")
    if not (local / "ks.cfg").is_file() and "ks.cfg" not in extents:
        raise B2ctError(
            "no kickstart: the ISO has no /ks.cfg and none was given",
            where=str(src_iso),
            hint="pass --kickstart FILE or --inventory PATH, or use an ISO made by b2ct build-iso",
        )
    if "ks.cfg" not in kickstarts:
        iso.copy_out(src_iso, extents, ["ks.cfg"], local)  # read back against the key later
    spec = key_spec(lay, label, timeout)
    bios_entries: list[bootcfg.Entry] = []
    for cfg in configs:
        p = local / cfg.path
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
        syntax = cfg.syntax or bootcfg.syntax_of(text)
        if syntax is None:
            continue
        new = bootcfg.rewrite(text, syntax, spec, where=f"{src_iso.name}:/{cfg.path}")
        p.write_text(new, encoding="utf-8", errors="surrogateescape")
        if cfg == lay.bios:
            bios_entries = bootcfg.entries(new, syntax, "/" + str(Path(cfg.path).parent))
    with tempfile.TemporaryDirectory(prefix="b2ct-esp-", dir=local.parent) as t:
        for img in images:
            esp.rewrite_fat_configs(local / img, 0, spec, Path(t), epoch, where=f"key:/{img}")
    if not bios_entries:
        raise B2ctError(
            "no BIOS boot entry with a kernel and initrd", where=f"{src_iso.name}:/{lay.bios.path}"
        )
    install = next((i for i, e in enumerate(bios_entries) if e.is_install), 0)
    template = jinja2.Environment(
        loader=jinja2.FileSystemLoader(isobuild_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    ).get_template("syslinux.cfg.j2")
    sysl = local / "syslinux"
    sysl.mkdir(exist_ok=True)
    (sysl / "syslinux.cfg").write_text(
        template.render(
            entries=bios_entries,
            default_index=install,
            title=f"b2ct key {label}",
            timeout_tenths=max(1, (timeout if timeout is not None else 10) * 10),
        ),
        encoding="utf-8",
    )
    # Menu modules must match the ldlinux.c32 that `syslinux --install` writes, so take the host's.
    for mod in ("menu.c32", "libutil.c32", "libcom32.c32"):
        shutil.copy(SYSLINUX_MODULES / mod, sysl / mod)
    for dirpath, dirnames, names in os.walk(local):
        for n in names:
            f = Path(dirpath) / n
            files[str(f.relative_to(local))] = (fatwrite.Segment(f, 0, f.stat().st_size),)
        dirs.update(str((Path(dirpath) / n).relative_to(local)) for n in dirnames)
    return KeyFiles(ins, files, dirs, local)


def build_image(key: KeyFiles, image: Path, size: int, label: str, epoch: int | None) -> None:
    offset = PART_START * 512
    with image.open("r+b" if image.exists() else "wb") as f:
        f.truncate(0)
        f.truncate(size)
    ident = _serial(label, epoch)
    table = f"label: dos\nlabel-id: 0x{ident}\nstart={PART_START}, type=c, bootable\n"
    tools.run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", image], what="sfdisk", input=table.encode()
    )
    sectors = size // 512 - PART_START
    # Large clusters (up to 32 KiB) keep the FAT small; FAT32 still needs >= 65525 of them.
    spc = 64
    while spc > 1 and sectors // spc < 70000:
        spc //= 2
    mkfs = [
        "mkfs.fat",
        "-F",
        "32",
        "-s",
        str(spc),
        "-n",
        label,
        "-i",
        ident,
        "-h",
        str(PART_START),
        f"--offset={PART_START}",
    ]
    if epoch is not None:
        mkfs.append("--invariant")
    tools.run([*mkfs, image, str(sectors // 2)], what="mkfs.fat")
    with byte_progress() as progress:
        task = progress.add_task("copying the installer files", total=key.data_bytes)
        fatwrite.populate(
            image,
            offset,
            key.files,
            key.dirs,
            mtime=epoch if epoch is not None else time.time(),
            where=str(image),
            progress=lambda n: progress.advance(task, n),
        )
    tools.run(
        ["syslinux", "--install", "--offset", str(offset), "--directory", "/syslinux", image], what="syslinux"
    )
    with image.open("r+b") as f:
        f.write(MBR_BIN.read_bytes()[:440])


def fat_metadata_end(image: Path) -> int:
    """Offset in ``image`` where the FAT32 data area (after the FATs and the root cluster) begins."""
    offset = PART_START * 512
    with image.open("rb") as f:
        f.seek(offset)
        bpb = f.read(512)
    bytes_per_sector, spc, reserved, nfats = struct.unpack_from("<HBHB", bpb, 11)
    fat_sectors = struct.unpack_from("<I", bpb, 36)[0]
    return offset + (reserved + nfats * fat_sectors + spc) * bytes_per_sector


def check_image(image: Path, label: str, local: Path, lay: Layout, timeout: int | None) -> None:
    """Read the key back: label, kickstart(s) and boot configs must be what we meant to write, and
    every config a firmware can reach on the key (b2ct.media.verify) must load the kickstart."""
    offset = PART_START * 512
    with image.open("rb") as f:
        f.seek(offset + 0x47)
        on_disk = f.read(11).decode("ascii", errors="replace").rstrip()
    if on_disk != label:
        raise B2ctError(f"read-back label is {on_disk!r}, expected {label!r}", where=str(image))
    for rel in ("ks.cfg", "syslinux/syslinux.cfg"):
        got = esp.read_file(image, offset, rel, str(image))
        want = (local / rel).read_text(encoding="utf-8")
        if got is None or hashlib.sha256(got.encode()).digest() != hashlib.sha256(want.encode()).digest():
            raise B2ctError(f"read-back of /{rel} differs from what was written", where=str(image))
    _checked, problems = verify.key_problems(image, offset, lay, key_spec(lay, label, timeout), local.parent)
    verify.refuse(problems, str(image))


def make_usb(
    src_iso: Path,
    *,
    image: Path | None,
    device: Path | None,
    size: int | None,
    label: str,
    kickstarts: dict[str, str],
    timeout: int | None,
    force: bool,
) -> Result:
    validate_fat_label(label)
    if image is not None:
        tools.check_output(image)
    epoch = iso.source_epoch()
    dev: blockdev.Device | None = None
    if device is not None:
        dev = blockdev.inspect_device(device)
        blockdev.check_writable(dev, force=force)
        info(f"target {dev.describe()}")
        size = min(size, dev.size) if size else dev.size
    size = size or (2 << 30)
    # An image is built beside itself, so every write goes to the output's filesystem; a key's image
    # is built in the temp directory first.
    work_parent = image.parent if image is not None and image.parent.is_dir() else None
    with contextlib.ExitStack() as stack:
        t = stack.enter_context(tempfile.TemporaryDirectory(prefix="b2ct-usb-", dir=work_parent))
        named = image if image is not None else f"{t}/key.img (the key's image, before writing {device})"
        stack.enter_context(fsutil.output_errors(named, Path(t)))
        with step(f"point the boot entries of {src_iso.name} at {label}"):
            key = prepare_tree(src_iso, Path(t) / "local", label, kickstarts, timeout, epoch)
        ins = key.inspected
        fsutil.check_space(image or Path(t) / "key.img", key.data_bytes, "the installer files on the key")
        if image is not None:
            with atomic_output(image) as tmp:
                with step(f"build FAT32 image {image.name} ({size / 2**30:.1f} GiB)"):
                    build_image(key, tmp, size, label, epoch)
                with step("read back"):
                    check_image(tmp, label, key.local, ins.layout, timeout)
            return Result(image, size, label, ins.layout.name)
        assert dev is not None
        tmp = Path(t) / "key.img"
        with step(f"build FAT32 image ({size / 2**30:.1f} GiB)"):
            build_image(key, tmp, size, label, epoch)
            check_image(tmp, label, key.local, ins.layout, timeout)
        # Re-check just before writing: something may have mounted the key meanwhile.
        blockdev.check_writable(blockdev.inspect_device(dev.path), force=force)
        with step(f"write and verify {dev.path}"):
            # Holes in the image are skipped, except in the FAT metadata: stale bytes there would corrupt it.
            blockdev.write_verified(tmp, dev.path, sparse=True, zero_ends=True, head=fat_metadata_end(tmp))
        return Result(dev.path, size, label, ins.layout.name)


def write_hybrid(src_iso: Path, *, image: Path | None, device: Path | None, force: bool) -> Result:
    """dd the (built) hybrid ISO as-is, then read it back."""
    if image is not None:
        tools.check_output(image)
    ins = iso.inspect(src_iso)
    if image is not None:
        fsutil.check_space(image, ins.info.file_bytes, f"a copy of {src_iso.name}")
        with atomic_output(image) as tmp, step(f"copy {src_iso.name} to {image.name}"):
            blockdev.write_verified(src_iso, tmp, sparse=False, name=str(image))
        return Result(image, ins.info.file_bytes, ins.info.volid, ins.layout.name)
    assert device is not None
    dev = blockdev.inspect_device(device)
    blockdev.check_writable(dev, force=force)
    info(f"target {dev.describe()}")
    if dev.size < ins.info.file_bytes:
        raise B2ctError(
            f"device is smaller ({dev.size} bytes) than the ISO ({ins.info.file_bytes})", where=str(dev.path)
        )
    with step(f"write and verify {dev.path}"):
        blockdev.write_verified(src_iso, dev.path, sparse=False, zero_ends=False)
    return Result(dev.path, ins.info.file_bytes, ins.info.volid, ins.layout.name)
