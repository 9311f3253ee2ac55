"""Filesystem labels: what FAT and ISO 9660 accept, and how kernel arguments spell them."""

from __future__ import annotations

import re

from b2ct.errors import B2ctError

FAT_LABEL_MAX = 11
ISO_VOLID_MAX = 32
# EL8/9 ship an ESP labelled ANACONDA: a key with that label makes hd:LABEL= ambiguous.
RESERVED_LABELS = frozenset({"ANACONDA", "OEMDRV"})
_FAT_OK = re.compile(r"[A-Z0-9_-]+")
_ISO_OK = re.compile(r"[A-Za-z0-9_.-]+")
_ARG_SAFE = re.compile(r"[A-Za-z0-9_.-]")


def validate_fat_label(label: str, *, where: str = "--label") -> str:
    """Return ``label`` if a FAT key can carry it unchanged, else raise a one-line error."""
    if not label:
        raise B2ctError("empty label", where=where, hint="use up to 11 characters A-Z 0-9 _ -, e.g. B2CTKEY")
    if len(label) > FAT_LABEL_MAX:
        raise B2ctError(
            f"label {label!r} has {len(label)} characters, FAT allows {FAT_LABEL_MAX}",
            where=where,
            hint=f"shorten it, e.g. {label[:FAT_LABEL_MAX].upper()!r}",
        )
    if not _FAT_OK.fullmatch(label):
        # blkid reports FAT labels uppercased, so a lowercase label would never match hd:LABEL=.
        hint = f"use {label.upper()!r}" if _FAT_OK.fullmatch(label.upper()) else "use only A-Z 0-9 _ -"
        raise B2ctError(f"label {label!r} is not uppercase A-Z 0-9 _ -", where=where, hint=hint)
    if label in RESERVED_LABELS:
        raise B2ctError(
            f"label {label!r} is reserved by the installer", where=where, hint="pick another, e.g. B2CTKEY"
        )
    return label


def validate_iso_label(label: str, *, where: str = "--label") -> str:
    if not label or len(label) > ISO_VOLID_MAX:
        raise B2ctError(
            f"ISO volume id {label!r} must have 1 to {ISO_VOLID_MAX} characters",
            where=where,
            hint="shorten it",
        )
    if not _ISO_OK.fullmatch(label):
        raise B2ctError(
            f"ISO volume id {label!r} has characters boot loaders mangle",
            where=where,
            hint="use only A-Z a-z 0-9 . _ -",
        )
    if label.upper() in RESERVED_LABELS:
        raise B2ctError(f"label {label!r} is reserved by the installer", where=where, hint="pick another")
    return label


def escape_label(label: str) -> str:
    r"""Spell ``label`` for ``hd:LABEL=`` in kernel arguments: spaces etc. become ``\xNN`` (udev style)."""
    return "".join(c if _ARG_SAFE.fullmatch(c) else "".join(f"\\x{b:02x}" for b in c.encode()) for c in label)
