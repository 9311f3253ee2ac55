"""`b2ct lab up|status|ssh|down|list`: real test hosts on this machine."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import typer

from b2ct.errors import B2ctError
from b2ct.ui import console

lab_app = typer.Typer(
    help="Test hosts on this machine (systemd-nspawn containers) with an inventory like a real site's.",
    no_args_is_help=True,
)

_NAME = typer.Option("default", "--name", "-n", help="Lab name (several labs can run side by side).")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")


@lab_app.command("up")
def up(
    name: str = _NAME,
    hosts: str = typer.Option(
        "", "--hosts", help="Comma-separated host names: svcN (service), wnN (worker)."
    ),
    services: int | None = typer.Option(None, "--services", min=0, help="Number of service hosts svc1…"),
    workers: int | None = typer.Option(None, "--workers", min=0, help="Number of worker hosts wn1…"),
    keep_on_failure: bool = typer.Option(
        False, "--keep-on-failure", help="Leave a failed lab for inspection."
    ),
    rebuild_image: bool = typer.Option(False, "--rebuild-image", help="Rebuild the cached base image."),
    bare: bool = typer.Option(
        False,
        "--bare",
        help="Hosts without the roles' packages: the first deploy installs them from a local repository.",
    ),
    opennebula_repo: Path | None = typer.Option(
        None,
        "--opennebula-repo",
        help="OpenNebula apt repository (flat: *.deb and Packages) the lab serves as its site mirror "
        "[default: $B2CT_OPENNEBULA_REPO, else ../shared/opennebula/repo-6.10 beside a source checkout; "
        "an installed b2ct has no default].",
    ),
    opennebula: bool = typer.Option(
        True,
        "--opennebula/--no-opennebula",
        help="Serve OpenNebula's repository (without: the roles skip it).",
    ),
    bond: bool = typer.Option(
        False,
        "--bond",
        help="Hosts are QEMU guests with the private network on a bond of two NICs (balance-alb) and the "
        "storage network as VLAN 20 on it (needs a kernel with bonding and 8021q in /boot).",
    ),
) -> None:
    """Start the lab's hosts and write its inventory; prints the inventory path on stdout."""
    from b2ct.lab.core import Lab, plan_hosts

    names = [h.strip() for h in hosts.split(",") if h.strip()] or None
    specs = plan_hosts(names, services, workers)
    # SIGTERM (CI timeouts, `timeout`) unwinds like Ctrl-C, so `up` removes what it created.
    # Only kill -9 skips that; `lab down` then works from the state file.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        lab = Lab(name).up(
            specs,
            keep_on_failure=keep_on_failure,
            rebuild_image=rebuild_image,
            bare=bare,
            opennebula=opennebula,
            opennebula_repo=opennebula_repo,
            bond=bond,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(lab.inventory)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@lab_app.command("down")
def down(
    name: str = _NAME,
    all_: bool = typer.Option(False, "--all", help="Take down every lab recorded on this machine."),
) -> None:
    """Remove every process, mount, loop device, namespace and bridge the lab created."""
    from b2ct.lab.core import Lab, list_labs

    names = [st.name for st in list_labs()] if all_ else [name]
    for n in names:
        Lab(n).down()
        console.print(f"lab {n}: down")


@lab_app.command("status")
def status(name: str = _NAME, as_json: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Hosts of the lab: running or stopped, address, ssh reachable."""
    from b2ct.lab.core import Lab

    lab = Lab(name)
    rows = lab.status()
    st = lab.state()
    if as_json:
        doc = {
            "name": name,
            "phase": st.phase,
            "inventory": str(lab.inventory),
            "hosts": [r.__dict__ for r in rows],
        }
        print(json.dumps(doc, indent=1))
        return
    from rich.table import Table

    table = Table(title=f"lab {name} ({st.phase}) — inventory {lab.inventory}")
    for col in ("host", "groups", "state", "ip", "public ip", "ssh"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name,
            ",".join(r.groups),
            r.state,
            r.ip,
            r.public_ip or "-",
            "[green]yes[/green]" if r.ssh else "[red]no[/red]",
        )
    from rich.console import Console

    Console().print(table)


@lab_app.command("list")
def list_() -> None:
    """Labs recorded on this machine."""
    from b2ct.lab.core import list_labs

    for st in list_labs():
        print(f"{st.name}\tslot {st.slot}\t{st.phase}\t{','.join(st.hosts)}")


@lab_app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ssh(
    ctx: typer.Context,
    host: str = typer.Argument(..., help="Lab host name, e.g. svc1."),
    name: str = _NAME,
) -> None:
    """ssh to a lab host as root with the lab key; extra arguments are the remote command."""
    from b2ct.lab.core import Lab

    lab = Lab(name)
    # Like ssh(1): the remote command is the extra words joined by spaces, for the remote shell.
    remote = " ".join(a for a in ctx.args if a != "--") or None
    argv = lab.ssh_argv(host, remote, tty=remote is None and sys.stdin.isatty())
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise B2ctError(f"cannot run ssh: {exc}") from exc
