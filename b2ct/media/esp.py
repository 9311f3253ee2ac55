"""Edit the boot configs inside FAT images (efiboot.img, appended ESP partitions, USB keys) with mtools."""

from __future__ import annotations

import os
from pathlib import Path

from b2ct.errors import B2ctError
from b2ct.media import bootcfg, tools
from b2ct.media.layout import Config


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


def put_file(image: Path, offset: int, src: Path, path: str, where: str) -> None:
    tools.run(
        ["mcopy", "-o", "-m", "-i", image_arg(image, offset), src, f"::/{path}"], what=where, env=mtools_env()
    )


def rewrite_fat_configs(
    image: Path,
    offset: int,
    configs: tuple[Config, ...],
    spec: bootcfg.BootSpec,
    work: Path,
    epoch: int | None,
    where: str,
) -> int:
    """Rewrite each of ``configs`` found in the FAT at ``offset``; return how many were found."""
    found = 0
    for cfg in configs:
        text = read_file(image, offset, cfg.path, where)
        if text is None:
            continue
        new = bootcfg.rewrite(text, cfg.syntax, spec, where=f"{where}:/{cfg.path}")
        tmp = work / "fatcfg.tmp"
        tmp.write_text(new, encoding="utf-8", errors="surrogateescape")
        if epoch is not None:
            os.utime(tmp, (epoch, epoch))
        put_file(image, offset, tmp, cfg.path, where)
        tmp.unlink()
        found += 1
    if not found:
        raise B2ctError(
            f"no UEFI boot config inside the ESP (looked for {', '.join(c.path for c in configs)})",
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
