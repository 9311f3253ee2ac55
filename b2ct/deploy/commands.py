"""`b2ct deploy`: argument parsing and exit codes; the work is in b2ct.deploy.runner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from b2ct.deploy.progress import Progress, summary_table
from b2ct.deploy.runner import run
from b2ct.errors import B2ctError
from b2ct.inventory import load
from b2ct.ui import console


def default_inventory() -> Path:
    """The inventory of the lab that is up, if exactly one is; otherwise a one-line error with a hint."""
    try:
        from b2ct.lab.state import LabState, all_labs, lab_dir
    except ImportError:  # a build without the lab
        all_labs = None  # type: ignore[assignment]
    found: list[Path] = []
    if all_labs is not None:
        for name in all_labs():
            state = LabState.load(name)
            if state is None or state.phase != "up":
                continue
            for candidate in (lab_dir(name) / "inventory", Path(str(state.outsider.get("inventory", "")))):
                if str(candidate) not in ("", ".") and (candidate / "hosts.yml").is_file():
                    found.append(candidate)
                    break
    if len(found) == 1:
        return found[0]
    if not found:
        raise B2ctError(
            "no inventory given and no lab is up",
            hint="pass -i/--inventory PATH, or start test hosts with: b2ct lab up",
        )
    raise B2ctError(
        "no inventory given and several labs are up: " + ", ".join(map(str, found)),
        hint="pass -i/--inventory PATH",
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def deploy(
        inventory: Annotated[
            Path | None,
            typer.Option(
                "-i", "--inventory", help="Inventory dir or file (default: the lab's, if one is up)."
            ),
        ] = None,
        limit: Annotated[str | None, typer.Option("--limit", "-l", help="Only these hosts/groups.")] = None,
        tags: Annotated[str | None, typer.Option("--tags", "-t", help="Only tasks with these tags.")] = None,
        check: Annotated[bool, typer.Option("--check", help="Dry run: report what would change.")] = False,
        playbook: Annotated[
            str, typer.Option("--playbook", help="Playbook under playbooks/ or a path.")
        ] = "site.yml",
    ) -> int:
        """Configure the hosts: run the site playbook (KVM, storage, …) through ansible-runner."""
        path = inventory if inventory is not None else default_inventory()
        site = load(path)  # bad inventory: one-line error, exit 2, nothing run
        with Progress(console, [h.name for h in site.hosts]) as progress:
            result = run(path, limit=limit, tags=tags, check=check, playbook=playbook, on_event=progress)
        console.print(summary_table(result))
        if result.log_dir:
            console.print(f"[dim]log: {result.log_dir}[/dim]")
        if not result.ok:
            bad = result.failed_hosts + result.unreachable_hosts
            what = f"failed on {', '.join(bad)}" if bad else f"ended {result.status} (rc {result.rc})"
            console.print(f"b2ct: deploy {what}", markup=False)
            raise typer.Exit(1)
        return 0
