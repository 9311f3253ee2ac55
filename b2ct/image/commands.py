"""CLI: `b2ct image stage IMAGE --to GROUP`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from b2ct.errors import B2ctError
from b2ct.ui import info, step

DEFAULT_DEST = "/var/lib/b2ct/images"


def register(app: typer.Typer) -> None:
    image = typer.Typer(help="VM images on the hypervisors.", no_args_is_help=True)
    app.add_typer(image, name="image")

    @image.command("stage")
    def stage(
        source: Annotated[
            str,
            typer.Argument(
                metavar="IMAGE",
                help="qcow2 or raw image: a file on this machine, or HOST:PATH on an inventory host.",
            ),
        ],
        to: Annotated[
            str,
            typer.Option(
                "--to", help="Inventory hosts and groups to stage on, comma-separated (e.g. worker)."
            ),
        ],
        dest: Annotated[
            str, typer.Option("--dest", help="Cache directory on every host (made if missing).")
        ] = DEFAULT_DEST,
        name: Annotated[
            str | None, typer.Option("--name", help="File name in the cache (default: the image's).")
        ] = None,
        inventory: Annotated[
            Path | None, typer.Option("-i", "--inventory", help="Inventory dir (default: the lab's).")
        ] = None,
    ) -> None:
        """Copy IMAGE into each host's local cache by a fan-out tree: hosts that have it serve the next
        ones (rsync over ssh, log2 N rounds); sha256 checked on every host; a second run sends nothing
        and an interrupted one resumes. Exit 1 when a host failed (each named, then one summary line)."""
        from b2ct.connection import ansible_view
        from b2ct.deploy.commands import default_inventory
        from b2ct.image.hosts import node_for, resolve_targets
        from b2ct.image.source import local_image, remote_image
        from b2ct.image.stage import Stager
        from b2ct.inventory import load

        if not dest.startswith("/"):
            raise B2ctError(f"--dest {dest!r}: give an absolute path on the hosts")
        if name is not None and (not name or "/" in name or name in (".", "..")):
            raise B2ctError(f"--name {name!r}: a file name, without '/'")
        inv = inventory or default_inventory()
        site = load(inv)
        view = ansible_view(inv)
        targets = [node_for(site, view, n) for n in resolve_targets(site, view, to)]
        host, sep, path = source.partition(":")
        names = {h.name for h in site.hosts}
        if sep and host in names:
            if not path.startswith("/"):
                raise B2ctError(f"{source!r}: give the image's absolute path on {host}")
            origin = node_for(site, view, host)
            with step(f"image {path} on {host}"):
                img = remote_image(origin, path, name)
        else:
            origin = None
            with step(f"image {source}"):
                img = local_image(Path(source), name)
        info(f"{img.format}, {img.size / 2**20:.1f} MiB")
        info(f"sha256 {img.sha256}")
        stager = Stager(img, targets, dest, source=origin, progress=info)
        with step(f"staging on {len(targets)} host(s) into {dest}"):
            result = stager.run()
        for o in result.failed:
            print(f"FAILED {o.host}: {o.reason}")
        print(result.summary())
        if not result.ok:
            raise typer.Exit(1)
