"""Read a written medium back: every boot config a firmware can reach must load the kickstart.

A QEMU boot proves one path, and real firmware takes others: UEFI booting a USB key starts the GRUB
inside the ESP, which reads the grub.cfg next to it, not the one in the ISO tree (DESIGN.md, install
media facts). So after writing, b2ct reads from the output itself: the tree's BIOS and UEFI configs,
and every UEFI config in every ESP that an El Torito UEFI entry or an ESP partition points at, or that
the layout embeds as a file. A kernel line without the kickstart (and stage 2) argument fails the build.
"""

from __future__ import annotations

from pathlib import Path

from b2ct.errors import B2ctError
from b2ct.media import bootcfg, bootrecords, esp
from b2ct.media.layout import Config, Layout


def _read_extents(path: Path, parts: list[tuple[int, int]]) -> str:
    with path.open("rb") as f:
        data = b""
        for off, size in parts:
            f.seek(off)
            data += f.read(size)
    return data.decode("utf-8", errors="surrogateescape")


def config_problems(text: str, syntax: str, spec: bootcfg.BootSpec, where: str) -> list[str]:
    """One line per kernel line of ``text`` that does not load the kickstart from ``spec.label``."""
    return [f"{where}:{no}" for no in bootcfg.unedited(text, syntax, spec)]


def esp_problems(image: Path, offset: int, spec: bootcfg.BootSpec, where: str) -> tuple[int, list[str]]:
    """(configs checked, problems) for the FAT at ``offset`` of ``image``."""
    if not esp.is_fat(image, offset):
        return 0, [f"{where}: not a FAT filesystem, its boot config cannot be read"]
    checked, problems = 0, []
    for rel in esp.uefi_configs(image, offset, where):
        text = esp.read_file(image, offset, rel, where) or ""
        syntax = bootcfg.syntax_of(text)
        if syntax is None:
            continue
        checked += 1
        problems += config_problems(text, syntax, spec, f"{where}:/{rel}")
    if not checked:
        problems.append(f"{where}: no UEFI boot config that starts a kernel")
    return checked, problems


def iso_problems(path: Path, layout: Layout, spec: bootcfg.BootSpec) -> tuple[int, list[str]]:
    """(configs checked, problems) for the ISO at ``path``: its tree and every ESP it carries."""
    from b2ct.media import iso

    files, _dirs = iso.extents(path)
    checked, problems = 0, []
    for cfg in layout.firmware_configs(set(files)):
        text = _read_extents(path, files[cfg.path])
        syntax = cfg.syntax or bootcfg.syntax_of(text)
        if syntax is None:
            continue
        checked += 1
        problems += config_problems(text, syntax, spec, f"/{cfg.path}")
    regions = bootrecords.esp_regions(path, files)
    seen = {r.start for r in regions}
    for img in layout.esp_images:  # an embedded ESP no record points at may still be copied to a key
        if img in files and files[img][0][0] not in seen:
            regions.append(bootrecords.EspRegion(files[img][0][0], None, ("file",), img, None))
    if not regions:
        problems.append("no ESP: no El Torito UEFI entry, no ESP partition, no images/efiboot.img")
    for region in regions:
        n, found = esp_problems(path, region.start, spec, region.describe())
        checked += n
        problems += found
    return checked, problems


def key_problems(
    image: Path, offset: int, layout: Layout, spec: bootcfg.BootSpec, work: Path
) -> tuple[int, list[str]]:
    """(configs checked, problems) for a make-usb key: the FAT at ``offset`` is itself the ESP.

    ``work`` is a directory for a copy of each embedded ESP image read back from the key.
    """
    where = "key"
    names = set(esp.list_files(image, offset, where))
    checked, problems = 0, []
    configs = [*layout.firmware_configs(names)]
    if "syslinux/syslinux.cfg" in names:
        configs.append(Config("syslinux/syslinux.cfg", "isolinux"))
    for cfg in configs:
        text = esp.read_file(image, offset, cfg.path, where) or ""
        syntax = cfg.syntax or bootcfg.syntax_of(text)
        if syntax is None:
            continue
        checked += 1
        problems += config_problems(text, syntax, spec, f"{where}:/{cfg.path}")
    for img in layout.esp_images:
        if img in names:
            copy = work / "readback-esp.img"
            copy.unlink(missing_ok=True)
            esp.get_file(image, offset, img, copy, where)
            n, found = esp_problems(copy, 0, spec, f"{where}:/{img}")
            copy.unlink()
            checked += n
            problems += found
    return checked, problems


def refuse(problems: list[str], where: str) -> None:
    """Raise the one-line error for ``problems`` (none: return)."""
    if not problems:
        return
    more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    raise B2ctError(
        f"boot config left pointing elsewhere: {problems[0]}{more}; a boot from there would start the "
        "installer without the kickstart",
        where=where,
        hint="this medium's layout is one b2ct does not edit fully; please report it (nothing was written)",
    )
