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


def _fat_problem(label: str) -> str | None:
    """Why a FAT key cannot carry ``label`` unchanged, or None if it can."""
    if not label:
        return "empty label"
    if label.upper() in RESERVED_LABELS:
        # Checked before case: 'oemdrv' uppercased is still the installer's own label.
        return f"label {label!r} is reserved by the installer ({label.upper()})"
    if len(label) > FAT_LABEL_MAX:
        return f"label {label!r} has {len(label)} characters, FAT allows {FAT_LABEL_MAX}"
    if not _FAT_OK.fullmatch(label):
        # blkid reports FAT labels uppercased, so a lowercase label would never match hd:LABEL=.
        return f"label {label!r} is not uppercase A-Z 0-9 _ -"
    return None


def _fat_suggestion(label: str) -> str | None:
    """The nearest label a FAT key can carry: uppercased, other characters as ``_``, cut to 11.

    None when that is empty or reserved: a hint never proposes a label that would be refused.
    """
    candidate = re.sub(r"[^A-Z0-9_-]", "_", label.upper())[:FAT_LABEL_MAX]
    return candidate if candidate.strip("_-") and _fat_problem(candidate) is None else None


def validate_fat_label(label: str, *, where: str = "--label") -> str:
    """Return ``label`` if a FAT key can carry it unchanged, else raise a one-line error.

    Rules: at most 11 characters (FAT's BPB field), uppercase ``A-Z 0-9 _ -`` (blkid shows FAT labels
    uppercased), not a label the installer itself looks for (ANACONDA, OEMDRV).
    """
    problem = _fat_problem(label)
    if problem is None:
        return label
    suggestion = _fat_suggestion(label)
    if suggestion is not None and suggestion != label:
        hint = f"use {suggestion!r}"
    else:
        reserved = " or ".join(sorted(RESERVED_LABELS))
        hint = f"use up to {FAT_LABEL_MAX} characters A-Z 0-9 _ -, not {reserved}, e.g. B2CTKEY"
    raise B2ctError(problem, where=where, hint=hint)


def _iso_problem(label: str) -> str | None:
    if not label or len(label) > ISO_VOLID_MAX:
        return f"ISO volume id {label!r} must have 1 to {ISO_VOLID_MAX} characters"
    if not _ISO_OK.fullmatch(label):
        return f"ISO volume id {label!r} has characters boot loaders mangle"
    if label.upper() in RESERVED_LABELS:
        return f"label {label!r} is reserved by the installer ({label.upper()})"
    return None


def validate_iso_label(label: str, *, where: str = "--label") -> str:
    """Return ``label`` if it can be the ISO volume id the boot entries name, else raise a one-line error.

    Rules: 1 to 32 characters (ECMA-119 volume identifier), ``A-Z a-z 0-9 . _ -`` (lorax replaces
    anything else in its labels; GRUB and udev spell others differently), not ANACONDA or OEMDRV.
    """
    problem = _iso_problem(label)
    if problem is None:
        return label
    # The nearest id that passes, as lorax spells labels: other characters become '-'.
    candidate = re.sub(r"[^A-Za-z0-9_.-]", "-", label)[:ISO_VOLID_MAX]
    if candidate.strip("-._") and candidate != label and _iso_problem(candidate) is None:
        hint = f"use {candidate!r}"
    else:
        reserved = " or ".join(sorted(RESERVED_LABELS))
        hint = f"use 1 to {ISO_VOLID_MAX} characters A-Z a-z 0-9 . _ -, not {reserved}"
    raise B2ctError(problem, where=where, hint=hint)


def escape_label(label: str) -> str:
    r"""Spell ``label`` for ``hd:LABEL=`` in kernel arguments: spaces etc. become ``\xNN`` (udev style)."""
    return "".join(c if _ARG_SAFE.fullmatch(c) else "".join(f"\\x{b:02x}" for b in c.encode()) for c in label)
