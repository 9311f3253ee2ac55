"""`b2ct kickstart`: render and validate every host's kickstart and the rack kickstart."""

from __future__ import annotations

from pathlib import Path

import typer

from b2ct.inventory.commands import InventoryOption, VaultOption, resolve
from b2ct.inventory.load import load
from b2ct.kickstart.render import RACK_NAME, render, write
from b2ct.ui import console, step


def register(app: typer.Typer) -> None:
    @app.command("kickstart")
    def kickstart(
        inventory: Path | None = InventoryOption,
        output: Path = typer.Option(Path("build/kickstart"), "--output", "-o", help="Output directory."),
        release: str | None = typer.Option(
            None,
            "--release",
            "-r",
            help="Render for this release instead of the inventory's (el6, el8, el9, el10).",
        ),
        vault: list[Path] | None = VaultOption,
    ) -> None:
        """Render a kickstart per host and the rack kickstart, validated by pykickstart for the release."""
        with step("kickstart"):
            with step("load inventory"):
                site = load(resolve(inventory), vault or ())
            with step(f"render and validate ({release or site.release.name}, {len(site.hosts)} hosts)"):
                rendered = render(site, release)
            with step(f"write {output}"):
                paths = write(rendered, output)
        console.print(f"wrote {len(paths)} kickstarts to {output}: {RACK_NAME} (rack) and ks/<host>.cfg")
