"""Read and remaster EL install ISOs with xorriso, keeping their boot records (El Torito + hybrid MBR/GPT)."""

from __future__ import annotations

import os
import struct
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from b2ct.errors import B2ctError
from b2ct.fsutil import atomic_output
from b2ct.media import bootcfg, esp, grow, tools
from b2ct.media.labels import validate_iso_label
from b2ct.media.layout import Layout, detect
from b2ct.media.tools import SECTOR, drive, file_pieces, unquote
from b2ct.ui import info, step

EFI_GUID = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")


@dataclass(frozen=True)
class IsoInfo:
    path: Path
    volid: str
    fs_bytes: int  # size of the ISO 9660 filesystem (appended partitions come after it)
    file_bytes: int


@dataclass(frozen=True)
class Partition:
    number: int
    esp: bool
    start: int  # bytes
    size: int  # bytes


def read_info(path: Path) -> IsoInfo:
    """Check the primary volume descriptor; refuse what is not a whole ISO 9660 image."""
    where = str(path)
    if not path.exists():
        raise B2ctError("no such file", where=where)
    if not path.is_file():
        raise B2ctError("not a regular file", where=where, hint="pass the .iso file itself")
    try:
        with path.open("rb") as f:
            f.seek(16 * SECTOR)
            pvd = f.read(SECTOR)
        size = path.stat().st_size
    except OSError as exc:
        raise B2ctError(f"cannot read: {exc.strerror}", where=where) from None
    if len(pvd) < SECTOR or pvd[0] != 1 or pvd[1:6] != b"CD001":
        raise B2ctError(
            "not an ISO 9660 image (no CD001 volume descriptor)",
            where=where,
            hint="pass an EL netinstall/boot ISO",
        )
    blocks = struct.unpack_from("<I", pvd, 80)[0]
    block_size = struct.unpack_from("<H", pvd, 128)[0]
    fs_bytes = blocks * block_size
    if fs_bytes > size:
        raise B2ctError(
            f"truncated ISO: its header says {fs_bytes} bytes, the file has {size}",
            where=where,
            hint="download it again and check its checksum",
        )
    volid = pvd[40:72].decode("ascii", errors="replace").strip()
    return IsoInfo(path=path, volid=volid, fs_bytes=fs_bytes, file_bytes=size)


def list_files(path: Path) -> set[str]:
    out = tools.run(["xorriso", "-indev", drive(path), "-find", "/", "-type", "f"], what=str(path))
    files = set()
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("'/") and line.endswith("'"):
            files.add(unquote(line[2:-1]))
    return files


def extract(iso: Path, paths: list[str], dest: Path) -> None:
    """Copy ``paths`` (no leading slash) out of the ISO into ``dest`` without mounting anything."""
    if not paths:
        return
    tools.run(
        [
            "xorriso",
            "-osirrox",
            "on",
            "-indev",
            drive(iso),
            "-extract_l",
            "/",
            dest,
            *(f"/{p}" for p in paths),
            "--",
        ],
        what=str(iso),
    )


def extents(path: Path) -> tuple[dict[str, list[tuple[int, int]]], set[str]]:
    """Where each file's data lies in the ISO, as (byte offset, size) pieces, and every directory.

    Paths have no leading slash. Readers copy the byte ranges themselves (in the kernel), several
    times faster than ``xorriso -extract`` on large installer images.
    """
    out = tools.run(["xorriso", "-indev", drive(path), "-find", "/", "-exec", "report_lba"], what=str(path))
    files = {
        rel: parts
        for rel, parts in file_pieces(out.decode(errors="replace")).items()
        if rel and ".." not in Path(rel).parts
    }
    iso_bytes = path.stat().st_size
    for rel, parts in files.items():
        if max(off + size for off, size in parts) > iso_bytes:
            raise B2ctError(f"/{rel} extends past the end of the ISO", where=str(path))
    listing = tools.run(["xorriso", "-indev", drive(path), "-find", "/", "-type", "d"], what=str(path))
    dirs = set()
    for line in listing.decode(errors="replace").splitlines():
        if line.startswith("'/") and line.endswith("'") and ".." not in line and len(line) > 3:
            dirs.add(unquote(line[2:-1]))
    return files, dirs


def partitions(path: Path) -> list[Partition]:
    """Partitions of a hybrid ISO: MBR entries, or GPT entries when the MBR is protective."""
    with path.open("rb") as f:
        mbr = f.read(512)
        gpt_header = f.read(512)
        parts: list[Partition] = []
        if mbr[510:512] != b"\x55\xaa":
            return parts
        protective = False
        for i in range(4):
            e = mbr[446 + 16 * i : 462 + 16 * i]
            ptype = e[4]
            start, count = struct.unpack_from("<II", e, 8)
            if ptype == 0xEE:
                protective = True
            elif ptype and count:
                parts.append(Partition(i + 1, ptype == 0xEF, start * 512, count * 512))
        if gpt_header[:8] == b"EFI PART" and (protective or not parts):
            entries_lba, n, entry_size = struct.unpack_from("<QII", gpt_header, 72)
            f.seek(entries_lba * 512)
            table = f.read(n * entry_size)
            parts = []
            for i in range(n):
                e = table[i * entry_size : (i + 1) * entry_size]
                if e[:16] == bytes(16):
                    continue
                first, last = struct.unpack_from("<QQ", e, 32)
                parts.append(
                    Partition(
                        i + 1, uuid.UUID(bytes_le=e[:16]) == EFI_GUID, first * 512, (last - first + 1) * 512
                    )
                )
    return parts


def appended_esp(info: IsoInfo) -> Partition | None:
    """The ESP stored after the ISO filesystem (EL10 layout), if any."""
    for p in partitions(info.path):
        if p.esp and p.start >= info.fs_bytes and p.start + p.size <= info.file_bytes:
            return p
    return None


def source_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise B2ctError(f"SOURCE_DATE_EPOCH={value!r} is not an integer", where="SOURCE_DATE_EPOCH") from None


def stamp(path: Path, epoch: int | None) -> None:
    if epoch is not None:
        os.utime(path, (epoch, epoch))


@dataclass(frozen=True)
class Inspected:
    info: IsoInfo
    layout: Layout
    files: set[str]


def inspect(path: Path, files: set[str] | None = None) -> Inspected:
    """The ISO's header and layout; ``files`` when the caller has already listed them."""
    info = read_info(path)
    files = list_files(path) if files is None else files
    return Inspected(info, detect(files, str(path)), files)


def build_iso(
    base: Path,
    out: Path,
    kickstarts: dict[str, str],
    *,
    label: str | None = None,
    timeout: int | None = None,
    default_install: bool = True,
) -> Inspected:
    """Remaster ``base`` into ``out``: kickstarts added, every boot entry pointed at them by label."""
    base = base.resolve()
    tools.check_output(out)
    if out.resolve() == base:
        raise B2ctError("output would overwrite the base ISO", where=str(out), hint="choose another -o")
    read_info(base)  # refuse what is not an ISO before copying it
    with atomic_output(out) as tmp:
        # Most builds grow a copy of the base: start copying now, so inspecting and rewriting overlap it.
        copier = tools.BackgroundCopy(base, tmp, where=str(out))
        try:
            return _remaster(base, out, tmp, copier, kickstarts, label, timeout, default_install)
        finally:
            copier.cancel()


def _remaster(
    base: Path,
    out: Path,
    tmp: Path,
    copier: tools.BackgroundCopy,
    kickstarts: dict[str, str],
    label: str | None,
    timeout: int | None,
    default_install: bool,
) -> Inspected:
    with step(f"inspect {base.name}"):
        ins = inspect(base)
        info(f"layout {ins.layout.name} ({ins.layout.description}), volume id {ins.info.volid!r}")
    volid = validate_iso_label(label) if label else ins.info.volid
    if not label and not volid:
        raise B2ctError("the base ISO has no volume id", where=str(base), hint="pass --label")
    if len(volid) > 32:
        raise B2ctError(f"volume id {volid!r} is longer than 32 characters", where="--label")
    lay = ins.layout
    spec = bootcfg.BootSpec(
        label=volid,
        ks_arg=lay.ks_arg,
        stage2_arg=lay.stage2_arg,
        timeout=timeout,
        default_install=default_install,
    )
    epoch = source_epoch()
    with tempfile.TemporaryDirectory(prefix="b2ct-iso-", dir=tmp.parent) as t:
        work = Path(t)
        maps: list[tuple[Path, str]] = []
        with step("rewrite boot configs"):
            present = [c for c in lay.configs if c.path in ins.files]
            esp_imgs = [p for p in lay.esp_images if p in ins.files]
            extract(base, [c.path for c in present] + esp_imgs, work / "tree")
            for cfg in present:
                src = work / "tree" / cfg.path
                text = src.read_text(encoding="utf-8", errors="surrogateescape")
                new = bootcfg.rewrite(text, cfg.syntax, spec, where=f"{base.name}:/{cfg.path}")
                dst = work / "new" / cfg.path
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_text(new, encoding="utf-8", errors="surrogateescape")
                stamp(dst, epoch)
                maps.append((dst, cfg.path))
                info(f"/{cfg.path}: {text.count(chr(10))} lines, {spec.ks_arg}=hd:LABEL={volid}")
            for img in esp_imgs:
                copy = work / "new" / img
                copy.parent.mkdir(parents=True, exist_ok=True)
                os.replace(work / "tree" / img, copy)  # edited in place: nothing reads the extracted one
                n = esp.rewrite_fat_configs(copy, 0, lay.uefi, spec, work, epoch, where=f"{base.name}:/{img}")
                stamp(copy, epoch)
                maps.append((copy, img))
                info(f"/{img}: {n} config(s) inside the ESP image")
            appended = appended_esp(ins.info) if not esp_imgs else None
            esp_part: Path | None = None
            if appended:
                esp_part = work / "esp-partition.img"
                esp.copy_range(base, esp_part, appended.start, appended.size)
                n = esp.rewrite_fat_configs(
                    esp_part,
                    0,
                    lay.uefi,
                    spec,
                    work,
                    epoch,
                    where=f"{base.name}: partition {appended.number}",
                )
                info(f"appended ESP partition {appended.number}: {n} config(s)")
        with step("add kickstarts"):
            for rel, text in sorted(kickstarts.items()):
                dst = work / "ks" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_text(text, encoding="utf-8")
                stamp(dst, epoch)
                maps.append((dst, rel))
                info(f"/{rel} ({len(text.encode())} bytes)")
        # Grow a copy instead of writing a new image: the kernel copies the base (as fast as cp), then
        # xorriso appends only the new tree and files and rewrites the superblock and boot records.
        # The old configs stay behind as unreferenced bytes, so a base that already carries kickstarts
        # (which may hold password hashes) is rewritten whole instead.
        growing = not any(f == "ks.cfg" or f.startswith("ks/") for f in ins.files)
        drives = ["-dev", "OUT"] if growing else ["-indev", drive(base), "-outdev", "OUT"]
        cmd: list[str | os.PathLike] = [
            "xorriso",
            "-report_about",
            "UPDATE",
            "-abort_on",
            "FAILURE",
            "-stdio_sync",
            "off",
            *drives,
            "-boot_image",
            "any",
            "replay",
        ]
        if volid != ins.info.volid:
            cmd += ["-volid", volid]
        for src, dst in maps:
            cmd += ["-map", src, f"/{dst}"]
        if esp_part is not None and appended is not None:
            cmd += [
                "-append_partition",
                str(appended.number),
                "0xef",
                esp_part,
                "-boot_image",
                "any",
                f"efi_path=--interval:appended_partition_{appended.number}:all::",
            ]
        env = dict(os.environ)
        if epoch is not None:
            cmd += [
                "-alter_date_r",
                "b",
                f"={epoch}",
                "/",
                "--",
                "-alter_date_r",
                "c",
                f"={epoch}",
                "/",
                "--",
            ]
        cmd.append("-commit")
        with step(f"write {out.name}"):
            start = time.monotonic()
            plan = grow.plan(base) if growing else None
            if plan is not None:
                # Grow a stand-in while the copy runs, then lay its new bytes over the copy.
                with tempfile.TemporaryDirectory(prefix="b2ct-grow-") as g:
                    stand = Path(g) / "stand-in.iso"
                    grow.make_stand_in(base, plan, stand)
                    cmd[cmd.index("OUT")] = drive(stand)
                    tools.run_xorriso_with_progress(
                        cmd, what=str(out), env=env, description=f"writing {out.name}"
                    )
                    copier.wait(f"copying {base.name}")
                    grow.lay_over(stand, plan, tmp)
            else:
                if growing:
                    copier.wait(f"copying {base.name}")
                else:
                    copier.cancel()
                    tmp.unlink()
                cmd[cmd.index("OUT")] = drive(tmp)
                tools.run_xorriso_with_progress(
                    cmd, what=str(out), env=env, description=f"writing {out.name}"
                )
            info(f"{tmp.stat().st_size / 2**20:.0f} MiB in {time.monotonic() - start:.1f}s")
    return ins
