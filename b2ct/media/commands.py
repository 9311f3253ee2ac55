"""CLI for install media: build-iso, make-usb, fetch-iso. Thin: options in, b2ct.media calls out."""

from __future__ import annotations

from pathlib import Path

import typer

from b2ct.errors import B2ctError
from b2ct.ui import console


def register(app: typer.Typer) -> None:
    @app.command("build-iso")
    def build_iso_cmd(
        base_iso: Path = typer.Option(..., "--base-iso", help="EL netinstall/boot ISO to customise."),
        kickstart: list[Path] = typer.Option(
            None, "--kickstart", "-k", help="Kickstart file; the first becomes /ks.cfg, others /ks/NAME."
        ),
        inventory: Path | None = typer.Option(None, "--inventory", "-i", help="Render kickstarts from it."),
        label: str | None = typer.Option(
            None, "--label", help="ISO volume id the boot entries look for (default: the base ISO's)."
        ),
        output: Path | None = typer.Option(
            None, "--output", "-o", help="Output ISO (default: NAME-b2ct.iso)."
        ),
        timeout: int | None = typer.Option(None, "--timeout", min=0, help="Boot menu timeout in seconds."),
        keep_default: bool = typer.Option(
            False, "--keep-default-entry", help="Keep the medium's default entry (default: plain install)."
        ),
    ) -> None:
        """Customise an EL install ISO so every boot entry, BIOS and UEFI, loads the kickstart by label."""
        from b2ct import tools
        from b2ct.media import iso, kickstarts

        tools.need_for("build-iso")
        layout = iso.inspect(base_iso).layout if inventory is not None else None
        kss = kickstarts.collect(kickstart, inventory, layout)
        if not kss:
            raise B2ctError(
                "no kickstart given", where="build-iso", hint="pass --kickstart FILE or --inventory"
            )
        out = output or Path(f"{base_iso.stem}-b2ct.iso")
        iso.build_iso(base_iso, out, kss, label=label, timeout=timeout, default_install=not keep_default)
        console.print(f"wrote {out}", markup=False)

    @app.command("make-usb")
    def make_usb_cmd(
        iso_path: Path = typer.Option(..., "--iso", help="ISO with the installer files (built or base)."),
        device: Path | None = typer.Option(None, "--device", help="Whole USB disk, e.g. /dev/sdb."),
        image: Path | None = typer.Option(None, "--image", help="Write a disk image file instead (no root)."),
        size: str | None = typer.Option(None, "--size", help="Image/partition size, e.g. 2G (default 2G)."),
        label: str = typer.Option("B2CTKEY", "--label", help="FAT label: <= 11 chars, A-Z 0-9 _ -."),
        kickstart: list[Path] = typer.Option(None, "--kickstart", "-k", help="Kickstart(s) to add."),
        inventory: Path | None = typer.Option(None, "--inventory", "-i", help="Render kickstarts from it."),
        hybrid: bool = typer.Option(False, "--hybrid", help="Write the ISO as-is (dd), then verify."),
        timeout: int | None = typer.Option(None, "--timeout", min=0, help="Boot menu timeout in seconds."),
        force: bool = typer.Option(
            False, "--force", help="Allow a non-removable disk (never a mounted one)."
        ),
    ) -> None:
        """Write a bootable FAT32/MBR USB key (BIOS + UEFI) that finds its kickstart by label."""
        from b2ct import tools
        from b2ct.media import iso, kickstarts, usb

        if (device is None) == (image is None):
            raise B2ctError("give exactly one of --device and --image", where="make-usb")
        if hybrid:
            if kickstart or inventory or size:
                raise B2ctError(
                    "--hybrid writes the ISO unchanged",
                    where="--hybrid",
                    hint="drop --kickstart/--size/--inventory",
                )
            result = usb.write_hybrid(iso_path, image=image, device=device, force=force)
        else:
            tools.need_for("make-usb")
            layout = iso.inspect(iso_path).layout if inventory is not None else None
            kss = kickstarts.collect(kickstart, inventory, layout)
            result = usb.make_usb(
                iso_path,
                image=image,
                device=device,
                size=usb.parse_size(size) if size else None,
                label=label,
                kickstarts=kss,
                timeout=timeout,
                force=force,
            )
        console.print(f"wrote {result.target} (layout {result.layout}, label {result.label})", markup=False)

    @app.command("fetch-iso")
    def fetch_iso_cmd(
        release: str = typer.Argument(..., help="Release name from isobuild/releases.yml, e.g. alma9."),
        dest: Path = typer.Option(Path("."), "--dest", "-d", help="Directory to download into."),
        url: str | None = typer.Option(None, "--url", help="Other URL (needs --sha256)."),
        sha256: str | None = typer.Option(None, "--sha256", help="Expected sha256 for --url."),
    ) -> None:
        """Download a base ISO and check its pinned sha256."""
        from b2ct.media import fetch

        out = fetch.fetch(fetch.resolve(release, url, sha256), dest)
        console.print(f"wrote {out}", markup=False)
