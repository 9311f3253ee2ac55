"""Download a base ISO whose sha256 is pinned in isobuild/releases.yml; fail clearly when offline."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from b2ct.errors import B2ctError
from b2ct.fsutil import atomic_output
from b2ct.media import tools
from b2ct.media.layout import isobuild_dir
from b2ct.ui import byte_progress


@dataclass(frozen=True)
class Release:
    name: str
    url: str
    sha256: str


def releases() -> dict[str, Release]:
    path = isobuild_dir() / "releases.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))["releases"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise B2ctError(f"cannot read release list: {exc}", where=path) from None
    return {name: Release(name, d["url"], d["sha256"].lower()) for name, d in data.items()}


def resolve(name: str, url: str | None = None, sha256: str | None = None) -> Release:
    if url:
        if not sha256:
            raise B2ctError(
                "--url needs --sha256", where="--url", hint="a download is only kept if it matches"
            )
        return Release(name, url, sha256.lower())
    known = releases()
    if name not in known:
        raise B2ctError(
            f"unknown release {name!r}", where="RELEASE", hint=f"one of: {', '.join(sorted(known))}"
        )
    return known[name]


def fetch(rel: Release, dest_dir: Path, *, timeout: float = 30) -> Path:
    name = Path(urllib.parse.urlparse(rel.url).path).name or f"{rel.name}.iso"
    out = dest_dir / name
    tools.check_output(out)
    host = urllib.parse.urlparse(rel.url).netloc or rel.url
    digest = hashlib.sha256()
    try:
        resp = urllib.request.urlopen(rel.url, timeout=timeout)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise B2ctError(
            f"cannot download {rel.url}: {reason}",
            where=host,
            hint=f"offline? download it elsewhere, check sha256 {rel.sha256}, then pass --base-iso FILE",
        ) from None
    with resp, atomic_output(out) as tmp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with (
            byte_progress() as progress,
            tmp.open("wb") as f,
        ):
            task = progress.add_task(f"downloading {name}", total=total)
            try:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    digest.update(chunk)
                    progress.advance(task, len(chunk))
            except (OSError, urllib.error.URLError) as exc:
                raise B2ctError(
                    f"download interrupted: {exc}", where=host, hint="run fetch-iso again"
                ) from None
        if digest.hexdigest() != rel.sha256:
            raise B2ctError(
                f"checksum mismatch: got sha256 {digest.hexdigest()}, pinned {rel.sha256}",
                where=rel.url,
                hint="the download is corrupt or the mirror changed the file; nothing was kept",
            )
    return out
