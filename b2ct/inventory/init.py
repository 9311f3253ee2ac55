"""`b2ct init SITE_DIR`: a starting inventory for a new site, every value explained, placeholders for
what only the site knows (b2ct.inventory.placeholders refuses them until they are filled in)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import typer

from b2ct.errors import B2ctError
from b2ct.fsutil import write_error
from b2ct.inventory import placeholders
from b2ct.inventory.placeholders import MARK


def init_site(site_dir: Path) -> list[Path]:
    """Write the starting inventory (b2ct.resources.new_site_inventory()) into ``site_dir``: all of it or,
    on any failure, nothing. Returns the files written.

    Raises B2ctError when ``site_dir`` exists and is not an empty directory (nothing is ever overwritten),
    when its parent does not exist, or when writing fails (disk full, read-only, permission)."""
    from b2ct import resources

    site_dir = Path(site_dir)
    if site_dir.exists() or site_dir.is_symlink():
        if not site_dir.is_dir():
            raise B2ctError("exists and is not a directory", where=site_dir, hint="give a new directory")
        if any(site_dir.iterdir()):
            raise B2ctError(
                "exists and is not empty: b2ct init never overwrites",
                where=site_dir,
                hint="give a new directory",
            )
    parent = site_dir.absolute().parent
    if not parent.is_dir():
        raise B2ctError(f"directory {parent} does not exist", where=site_dir)
    template = resources.new_site_inventory()
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{site_dir.name}.", suffix=".part", dir=parent))
        # File by file, not shutil.copytree: its shutil.Error gathers the failures and loses their errno.
        for src in sorted(template.rglob("*")):
            dest = tmp / src.relative_to(template)
            if src.is_dir():
                dest.mkdir()
            elif src.suffix == ".yml":
                shutil.copyfile(src, dest)
        tmp.chmod(0o755)
        # rename(2) replaces an empty directory; a directory created meanwhile by someone else is not empty
        # and makes it fail (ENOTEMPTY) rather than be overwritten.
        os.rename(tmp, site_dir)
        tmp = None
    except OSError as exc:
        raise write_error(exc, site_dir) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return sorted(p for p in site_dir.rglob("*") if p.is_file())


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        site_dir: Path = typer.Argument(
            ..., help="New directory for the site's inventory (must not exist, or be empty)."
        ),
    ) -> None:
        """Write a starting inventory for a new site: every value explained, placeholders to fill in."""
        from b2ct.ui import console

        files = init_site(site_dir)
        left = placeholders.count(files)
        for f in files:
            console.print(f"wrote {f}", markup=False, soft_wrap=True)
        console.print(
            f"{left} values marked {MARK} are for you to fill in; then check with: "
            f"b2ct inventory check -i {site_dir}",
            markup=False,
            soft_wrap=True,
        )
