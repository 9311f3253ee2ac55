"""Recognise the boot layout of an EL install ISO from the files it holds (data: isobuild/layouts.yml)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from b2ct.errors import B2ctError


def isobuild_dir() -> Path:
    """isobuild/: per-release layouts and templates (b2ct.resources: packaged or in the checkout)."""
    from b2ct import resources

    return resources.isobuild_dir()


# What GRUB reads on platforms and boots where EFI/BOOT is not the prefix (lorax's mkksiso edits both).
GRUB_TREE_CONFIGS = frozenset({"boot/grub2/grub.cfg", "boot/grub/grub.cfg"})
CONFIG_SUFFIXES = (".cfg", ".conf")


def is_uefi_config(path: str) -> bool:
    """Whether ``path`` (no leading slash) is a config a UEFI boot loader on EL media may read: a .cfg
    or .conf anywhere under EFI/ (grub.cfg; BOOT.conf for IA32 in lorax's efi.tmpl; BOOTX64.conf, legacy
    GRUB, on EL6). FAT and Joliet trees may spell EFI in any case."""
    parts = path.split("/")
    return len(parts) > 1 and parts[0].upper() == "EFI" and path.lower().endswith(CONFIG_SUFFIXES)


@dataclass(frozen=True)
class Config:
    path: str  # inside the ISO tree, no leading slash
    syntax: str  # isolinux | grub2 | grub-legacy


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    detect: tuple[str, ...]
    absent: tuple[str, ...]
    ks_arg: str
    stage2_arg: str | None
    bios: Config
    uefi: tuple[Config, ...]
    esp_images: tuple[str, ...]
    releases: tuple[str, ...] = ()

    @property
    def configs(self) -> tuple[Config, ...]:
        return (self.bios, *self.uefi)

    def firmware_configs(self, files: set[str]) -> list[Config]:
        """Every config in the ISO tree ``files`` that a boot loader started by firmware may read.

        The BIOS config of the layout, every UEFI config (is_uefi_config: lorax adds EFI/BOOT/BOOT.conf
        for 32-bit UEFI beside grub.cfg) and GRUB's own BIOS/other-platform configs that lorax's mkksiso
        also edits. ``syntax`` is "" where the text must tell (bootcfg.syntax_of).
        """
        found = [self.bios] if self.bios.path in files else []
        extra = sorted(f for f in files if is_uefi_config(f) or f in GRUB_TREE_CONFIGS)
        return found + [Config(f, "") for f in extra if f != self.bios.path]


@functools.cache
def layouts() -> tuple[Layout, ...]:
    import yaml  # here, not at the top: build-iso starts its copy before this table is needed

    path = isobuild_dir() / "layouts.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))["layouts"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise B2ctError(f"cannot read layout data: {exc}", where=path) from None
    return tuple(
        Layout(
            name=name,
            description=d["description"],
            detect=tuple(d["detect"]),
            absent=tuple(d.get("absent") or ()),
            ks_arg=d["ks_arg"],
            stage2_arg=d.get("stage2_arg"),
            bios=Config(**d["bios"]),
            uefi=tuple(Config(**c) for c in d["uefi"]),
            esp_images=tuple(d.get("esp_images") or ()),
            releases=tuple(d.get("releases") or ()),
        )
        for name, d in data.items()
    )


def detect(files: set[str], where: str) -> Layout:
    """Pick the layout whose marker files ``files`` (paths without leading slash) contain."""
    for lay in layouts():
        if all(p in files for p in lay.detect) and not any(p in files for p in lay.absent):
            return lay
    known = "; ".join(f"{lay.name}: {' + '.join(lay.detect)}" for lay in layouts())
    raise B2ctError(
        "not an EL install ISO b2ct knows (no isolinux/EFI/GRUB layout of EL6-EL10)",
        where=where,
        hint=f"expected one of {known}",
    )
