"""Collect the kickstart texts that go on a medium: path on the medium -> text."""

from __future__ import annotations

import importlib
from pathlib import Path, PurePosixPath

from b2ct.errors import B2ctError
from b2ct.media.layout import Layout


def _safe_rel(rel: str, where: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise B2ctError(f"kickstart path {rel!r} must be relative, without '..'", where=where)
    return str(p)


def collect(files: list[Path] | None, inventory: Path | None, layout: Layout | None = None) -> dict[str, str]:
    """The first ``--kickstart`` becomes /ks.cfg, later ones /ks/NAME; ``--inventory`` renders a set.

    With a ``layout``, the inventory's release must be one that installer understands: an EL9
    kickstart on a CentOS 6 ISO would fail an hour into the install, not here.
    """
    result: dict[str, str] = {}
    for i, f in enumerate(files or []):
        try:
            text = f.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise B2ctError("no such kickstart file", where=str(f)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise B2ctError(f"cannot read kickstart: {exc}", where=str(f)) from None
        rel = "ks.cfg" if i == 0 else f"ks/{f.name}"
        if rel in result:
            raise B2ctError(f"two kickstarts would both be /{rel}", where=str(f), hint="rename one")
        result[rel] = text
    if inventory is not None:
        try:
            module = importlib.import_module("b2ct.kickstart")
            render = module.render_media_set
        except (ImportError, AttributeError):
            raise B2ctError(
                "this b2ct cannot render kickstarts from an inventory yet",
                where="--inventory",
                hint="render them with b2ct and pass --kickstart FILE",
            ) from None
        if layout is not None and layout.releases:
            from b2ct.inventory import load

            release = load(inventory).release.name
            if release not in layout.releases:
                raise B2ctError(
                    f"the inventory targets {release} but the ISO is an {layout.description} installer",
                    where=str(inventory),
                    hint=f"use a {release} install ISO, or set b2ct_os_release to "
                    f"one of {', '.join(layout.releases)}",
                )
        for rel, text in render(inventory).items():
            rel = _safe_rel(rel, str(inventory))
            if rel in result:
                raise B2ctError(f"/{rel} comes from both --kickstart and --inventory", where=str(inventory))
            result[rel] = text
    return result
