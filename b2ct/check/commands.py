"""`b2ct check`: probe the site's hosts and report PASS/WARN/FAIL per host and check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from b2ct.errors import B2ctError
from b2ct.fsutil import atomic_write
from b2ct.inventory.commands import InventoryOption, resolve
from b2ct.inventory.load import load
from b2ct.ui import console, step


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        inventory: Path | None = InventoryOption,
        limit: Annotated[
            str | None, typer.Option("--limit", "-l", help="Only these hosts or groups (comma-separated).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="JSON report on stdout (docs/check.md).")] = (
            False
        ),
        html: Annotated[Path | None, typer.Option("--html", help="Also write a standalone HTML report.")] = (
            None
        ),
        no_smoke: Annotated[bool, typer.Option("--no-smoke", help="Skip the smoke domain.")] = False,
        smoke_kernel: Annotated[
            Path | None, typer.Option("--smoke-kernel", help="Kernel for the smoke domain (default: /boot).")
        ] = None,
        smoke_timeout: Annotated[float, typer.Option("--smoke-timeout", min=1, help="Seconds to boot.")] = (
            60.0
        ),
        min_free: Annotated[
            float, typer.Option("--min-free", min=0, max=100, help="Minimum free space on datastores, %.")
        ] = 5.0,
        one_auth: Annotated[
            Path | None,
            typer.Option(
                "--one-auth",
                help="OpenNebula user:password file (default $ONE_AUTH, else ~oneadmin/.one/one_auth "
                "read on the front-end).",
            ),
        ] = None,
    ) -> int:
        """Check every host: libvirt, KVM, KSM, storage, bridges, smoke domain, Gluster, squid, OpenNebula."""
        from b2ct import tools

        tools.need_module("libvirt")
        tools.need("ssh")
        from b2ct.check import opennebula, render, runner

        path = resolve(inventory)
        site = load(path)
        if smoke_kernel is not None and not smoke_kernel.is_file():
            raise B2ctError("no such file", where=smoke_kernel, hint="--smoke-kernel takes a kernel image")
        if html is not None and not html.parent.is_dir():
            raise B2ctError(f"output directory {html.parent} does not exist", where=html)
        # read (and so validated) only when the site has an OpenNebula to ask
        session = opennebula.local_session(one_auth) if opennebula.expected(site) else None
        opts = runner.Options(
            smoke=not no_smoke,
            smoke_kernel=smoke_kernel,
            smoke_timeout=smoke_timeout,
            min_free_pct=min_free,
            one_session=session,
        )
        with step(f"checking site {site.name}"):
            report = runner.run(site, path, limit, opts)
        if html is not None:
            atomic_write(html, render.html(report))
            console.print(f"HTML report: {html}")
        if as_json:
            sys.stdout.write(render.to_json(report))
        else:
            console.print(render.table(report))
        return report.exit_code
