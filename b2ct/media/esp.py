"""Edit the boot configs inside FAT images (efiboot.img, appended ESP partitions, USB keys) with mtools."""

from __future__ import annotations

import os
from pathlib import Path

from b2ct.errors import B2ctError
from b2ct.media import bootcfg, tools
from b2ct.media.layout import is_uefi_config


def image_arg(image: Path, offset: int) -> str:
    return f"{image}@@{offset}" if offset else str(image)


def mtools_env() -> dict[str, str]:
    # Ignore the user's ~/.mtoolsrc and skip the geometry sanity check that rejects some ESP images.
    return dict(os.environ, MTOOLSRC="/dev/null", MTOOLS_SKIP_CHECK="1")


def read_file(image: Path, offset: int, path: str, where: str) -> str | None:
    args = ["mtype", "-i", image_arg(image, offset), f"::/{path}"]
    try:
        return tools.run(args, what=where, env=mtools_env()).decode("utf-8", errors="surrogateescape")
    except B2ctError as exc:
        if "not found" in exc.message.lower():
            return None
        raise


def get_file(image: Path, offset: int, path: str, dest: Path, where: str) -> None:
    tools.run(
        ["mcopy", "-n", "-i", image_arg(image, offset), f"::/{path}", dest], what=where, env=mtools_env()
    )


def put_file(image: Path, offset: int, src: Path, path: str, where: str) -> None:
    tools.run(
        ["mcopy", "-o", "-m", "-i", image_arg(image, offset), src, f"::/{path}"], what=where, env=mtools_env()
    )


def list_files(image: Path, offset: int, where: str) -> list[str]:
    """Every file in the FAT at ``offset`` of ``image``, as paths without a leading slash."""
    out = tools.run(["mdir", "-/", "-b", "-i", image_arg(image, offset), "::/"], what=where, env=mtools_env())
    names = []
    for line in out.decode("utf-8", errors="surrogateescape").splitlines():
        if line.startswith("::/") and not line.endswith("/"):
            names.append(line[3:])
    return names


def is_fat(image: Path, offset: int) -> bool:
    """Whether a FAT boot sector (jump, 0x55AA signature, a FAT type string) lies at ``offset``."""
    with image.open("rb") as f:
        f.seek(offset)
        bpb = f.read(512)
    return (
        len(bpb) == 512
        and bpb[510:512] == b"\x55\xaa"
        and bpb[0] in (0xEB, 0xE9)
        and (bpb[54:57] == b"FAT" or bpb[82:85] == b"FAT")
    )


def uefi_configs(image: Path, offset: int, where: str) -> list[str]:
    """The boot loader configs in the FAT at ``offset`` a UEFI loader could read (layout.is_uefi_config)."""
    return [n for n in list_files(image, offset, where) if is_uefi_config(n)]


def rewrite_fat_configs(
    image: Path,
    offset: int,
    spec: bootcfg.BootSpec,
    work: Path,
    epoch: int | None,
    where: str,
) -> int:
    """Rewrite every UEFI boot config in the FAT at ``offset`` that starts a kernel; return how many.

    Raises B2ctError when the ESP holds no such config: its loader would then boot something b2ct
    did not point at the kickstart.
    """
    if not is_fat(image, offset):
        raise B2ctError(
            "the UEFI boot image is not a FAT filesystem: b2ct cannot edit its boot config", where=where
        )
    found = 0
    for path in uefi_configs(image, offset, where):
        text = read_file(image, offset, path, where)
        syntax = bootcfg.syntax_of(text or "")
        if text is None or syntax is None:
            continue
        new = bootcfg.rewrite(text, syntax, spec, where=f"{where}:/{path}")
        tmp = work / "fatcfg.tmp"
        tmp.write_text(new, encoding="utf-8", errors="surrogateescape")
        if epoch is not None:
            os.utime(tmp, (epoch, epoch))
        put_file(image, offset, tmp, path, where)
        tmp.unlink()
        found += 1
    if not found:
        raise B2ctError(
            "no UEFI boot config that starts a kernel inside the ESP (looked for EFI/**/*.cfg and *.conf)",
            where=where,
            hint="is this an EL install ISO?",
        )
    return found


def copy_range(src: Path, dst: Path, start: int, size: int) -> None:
    with src.open("rb") as fi, dst.open("wb") as fo:
        fi.seek(start)
        remaining = size
        while remaining:
            chunk = fi.read(min(remaining, 1 << 20))
            if not chunk:
                raise B2ctError("partition extends past the end of the file", where=str(src))
            fo.write(chunk)
            remaining -= len(chunk)
