"""Read and remaster EL install ISOs with xorriso, keeping their boot records (El Torito + hybrid MBR/GPT)."""

from __future__ import annotations

import os
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from b2ct import fsutil
from b2ct.errors import B2ctError
from b2ct.fsutil import atomic_output, copy_range
from b2ct.media import bootcfg, bootrecords, esp, grow, isomd5, tools, verify
from b2ct.media.labels import validate_iso_label
from b2ct.media.layout import Layout, detect
from b2ct.media.tools import SECTOR, drive, file_pieces, unquote
from b2ct.ui import info, step


@dataclass(frozen=True)
class IsoInfo:
    path: Path
    volid: str
    fs_bytes: int  # size of the ISO 9660 filesystem (appended partitions come after it)
    file_bytes: int


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


def copy_out(iso: Path, files: dict[str, list[tuple[int, int]]], paths: list[str], dest: Path) -> None:
    """Copy ``paths`` out of ``iso`` into ``dest`` from their data extents (``files``, as survey or
    extents give them). Unlike xorriso's extraction, a failure to write keeps its system error."""
    with iso.open("rb") as src:
        for rel in paths:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as f:
                pos = 0
                for off, size in files.get(rel, []):
                    copy_range(src.fileno(), off, f.fileno(), pos, size)
                    pos += size


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
    """Remaster ``base`` into ``out``: kickstarts added, every boot entry pointed at them by label.

    Every config a firmware can reach is edited: the tree's, and those inside every ESP (embedded
    image or appended partition), found from the El Torito catalog and the partition tables. The
    output is read back (b2ct.media.verify) and carries isomd5sum's checksum. Raises B2ctError for
    bad input, a layout b2ct cannot edit fully, and any failure to write ``out`` (named as ``out``);
    nothing is left behind then.
    """
    base = base.resolve()
    tools.check_output(out)
    if out.resolve() == base:
        raise B2ctError("output would overwrite the base ISO", where=str(out), hint="choose another -o")
    info_ = read_info(base)  # refuse what is not an ISO before copying it
    fsutil.check_space(out, info_.file_bytes, f"a copy of {base.name}")
    with atomic_output(out) as tmp, fsutil.output_errors(out):
        # Most builds grow a copy of the base: start copying now, so inspecting and rewriting overlap it.
        copier = tools.BackgroundCopy(base, tmp, where=str(out))
        try:
            return _remaster(base, out, tmp, copier, kickstarts, label, timeout, default_install)
        finally:
            copier.cancel()


@dataclass
class _Edits:
    """What the new session carries: files mapped into the tree, ESP partitions appended again."""

    maps: list[tuple[Path, str]]
    appended: list[tuple[bootrecords.EspRegion, Path]]


def _rewrite_media(
    base: Path, ins: Inspected, report: tools.Survey, spec: bootcfg.BootSpec, work: Path, epoch: int | None
) -> _Edits:
    """Edit every boot config of ``base`` that a firmware can reach, into files under ``work``."""
    lay = ins.layout
    edits = _Edits([], [])
    present = lay.firmware_configs(ins.files)
    regions = bootrecords.esp_regions(base, report.files)
    embedded = list(
        dict.fromkeys([*(r.file for r in regions if r.file), *(p for p in lay.esp_images if p in ins.files)])
    )
    copy_out(base, report.files, [c.path for c in present] + embedded, work / "tree")
    for cfg in present:
        src = work / "tree" / cfg.path
        text = src.read_text(encoding="utf-8", errors="surrogateescape")
        syntax = cfg.syntax or bootcfg.syntax_of(text)
        if syntax is None:
            continue  # starts no kernel: nothing to point at the kickstart
        new = bootcfg.rewrite(text, syntax, spec, where=f"{base.name}:/{cfg.path}")
        dst = work / "new" / cfg.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(new, encoding="utf-8", errors="surrogateescape")
        stamp(dst, epoch)
        edits.maps.append((dst, cfg.path))
        info(f"/{cfg.path}: {text.count(chr(10))} lines, {spec.ks_arg}=hd:LABEL={spec.label}")
    for img in embedded:
        copy = work / "new" / img
        copy.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / "tree" / img, copy)  # edited in place: nothing reads the extracted one
        n = esp.rewrite_fat_configs(copy, 0, spec, work, epoch, where=f"{base.name}:/{img}")
        stamp(copy, epoch)
        edits.maps.append((copy, img))
        info(f"/{img}: {n} config(s) inside the ESP image")
    for region in regions:
        if region.file:
            continue
        if region.partition is None or region.size is None:
            raise B2ctError(
                f"{region.describe()} is neither a file nor a partition: b2ct cannot replace it",
                where=str(base),
                hint="please report this ISO's layout",
            )
        copy = work / f"esp-partition-{region.partition.number}.img"
        esp.copy_range(base, copy, region.start, region.size)
        n = esp.rewrite_fat_configs(copy, 0, spec, work, epoch, where=f"{base.name}: {region.describe()}")
        edits.appended.append((region, copy))
        info(f"{region.describe()}: {n} config(s), appended again")
    if not regions and not embedded:
        raise B2ctError(
            "no ESP found (no El Torito UEFI entry, no ESP partition, no images/efiboot.img): "
            "a UEFI boot would start an installer b2ct did not point at the kickstart",
            where=str(base),
        )
    return edits


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
        report = tools.survey(base)
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
        with step("rewrite boot configs"):
            edits = _rewrite_media(base, ins, report, spec, work, epoch)
        maps = edits.maps
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
        if report.partition_offset:
            # Growing does not replay it: without it the image loses the partition that EL10 media
            # offer as a mountable ISO 9660 (lorax: -partition_offset 16).
            cmd += ["-boot_image", "any", f"partition_offset={report.partition_offset}"]
        if volid != ins.info.volid:
            cmd += ["-volid", volid]
        for src, dst in maps:
            cmd += ["-map", src, f"/{dst}"]
        uefi_starts = {
            img.start for img in bootrecords.eltorito(base) if img.platform == bootrecords.PLATFORM_UEFI
        }
        for region, copy in edits.appended:
            assert region.partition is not None
            part = region.partition
            ptype = str(bootrecords.EFI_GUID).upper() if part.scheme == "gpt" else "0xef"
            cmd += ["-append_partition", str(part.number), ptype, copy]
            if region.start in uefi_starts:
                cmd += ["-boot_image", "any", f"efi_path=--interval:appended_partition_{part.number}:all::"]
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
            checksum = _write(base, tmp, work, cmd, env, copier, report if growing else None, out)
            try:  # the read-back overlaps the checksum's hashing
                with step("read back every boot config"):
                    _verify(base, tmp, lay, spec, out)
                field = checksum.result()
            except BaseException:
                checksum.cancel()
                raise
            isomd5.implant(tmp, field)
            info(
                f"{tmp.stat().st_size / 2**20:.0f} MiB in {time.monotonic() - start:.1f}s, "
                "media checksum implanted"
            )
    return ins


def _write(
    base: Path,
    tmp: Path,
    work: Path,
    cmd: list[str | os.PathLike],
    env: dict[str, str],
    copier: tools.BackgroundCopy,
    report: tools.Survey | None,
    out: Path,
) -> isomd5.Checksum:
    """Write the output into ``tmp``; return the (running) computation of its media checksum.

    With ``report`` (growing), xorriso grows a stand-in while the copy runs, and the checksum is
    computed from where the output's bytes already are while the copy goes on: the stand-in's head
    and new session, the base's bytes between.
    """
    plan = grow.plan(base, report) if report is not None else None
    if plan is None:
        if report is not None:
            copier.wait(f"copying {base.name}")
        else:
            copier.cancel()
            tmp.unlink()
        cmd[cmd.index("OUT")] = drive(tmp)
        tools.run_xorriso_with_progress(cmd, what=str(out), env=env, description=f"writing {out.name}")
        with tmp.open("rb") as f:
            head = f.read(isomd5.PVD_OFFSET + isomd5.SECTOR)
        return isomd5.Checksum([isomd5.Segment(tmp, 0, tmp.stat().st_size)], head, str(out))
    stand = work / "stand-in.iso"
    grow.make_stand_in(base, plan, stand)
    cmd[cmd.index("OUT")] = drive(stand)
    tools.run_xorriso_with_progress(cmd, what=str(out), env=env, description=f"writing {out.name}")
    end = stand.stat().st_size
    with stand.open("rb") as f:
        head = f.read(plan.head)
    # The output will be: the stand-in's head, the base's bytes up to the new session (what the copy
    # holds there), then the stand-in's new session (and the zeros before it, if it starts past the
    # base's end).
    middle = min(plan.nwa, plan.size, end)
    segments = [isomd5.Segment(stand, 0, plan.head)]
    if middle > plan.head:
        segments.append(isomd5.Segment(base, plan.head, middle - plan.head))
    if end > middle:
        segments.append(isomd5.Segment(stand, middle, end - middle))
    checksum = isomd5.Checksum(segments, head, str(out))
    try:
        copier.wait(f"copying {base.name}")
        grow.lay_over(stand, plan, tmp)
    except BaseException:
        checksum.cancel()
        raise
    return checksum


def _verify(base: Path, tmp: Path, lay: Layout, spec: bootcfg.BootSpec, out: Path) -> None:
    """Refuse an output in which a firmware could still reach a config that ignores the kickstart."""
    checked, problems = verify.iso_problems(tmp, lay, spec)
    before = [img.platform for img in bootrecords.eltorito(base)]
    after = [img.platform for img in bootrecords.eltorito(tmp)]
    if sorted(before) != sorted(after):
        problems.append(f"El Torito boot images changed from platforms {before} to {after}")
    verify.refuse(problems, str(out))
    info(f"{checked} boot configs load the kickstart from {spec.label}")
