"""`b2ct inventory check`: validate a site inventory and show what b2ct understood of it."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from b2ct.errors import B2ctError
from b2ct.inventory.load import load
from b2ct.inventory.model import Host, Nic, Site
from b2ct.ui import console

ENV_VAR = "B2CT_INVENTORY"

InventoryOption = typer.Option(
    None,
    "--inventory",
    "-i",
    help=f"Site inventory (directory or hosts.yml). Default: ${ENV_VAR}.",
    show_default=False,
)

VaultOption = typer.Option(
    None,
    "--vault-password-file",
    help="File with the Ansible vault password (or a script printing it), for vaulted b2ct settings. "
    "Default: $ANSIBLE_VAULT_PASSWORD_FILE.",
    show_default=False,
)


def resolve(path: Path | None) -> Path:
    """The inventory to use: the option, else $B2CT_INVENTORY; a clear error otherwise."""
    if path is not None:
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    raise B2ctError(
        "no inventory given",
        hint=f"pass -i SITE_DIR or set {ENV_VAR} (b2ct init SITE_DIR writes a starting inventory)",
    )


def _link(host: Host, nic: Nic) -> str:
    """Where a host's network is: its address and its NIC, bond, or VLAN on another network's link."""
    if nic.via is not None:
        carrier = host.nics[nic.via]
        link = f"VLAN {nic.vlan} on {carrier.bond.name if carrier.bond else carrier.mac}"
    elif nic.bond is not None:
        link = f"{nic.bond.name} {nic.bond.mode}: {', '.join(nic.bond.members)}"
    else:
        link = nic.mac if nic.vlan is None else f"VLAN {nic.vlan} on {nic.mac}"
    return f"{nic.ip or 'dhcp'} ({link})"


def summary(site: Site) -> Table:
    table = Table(title=f"site {site.name} — {site.release.description}", title_justify="left")
    shown = ["private", "public"] + (["storage"] if "storage" in site.networks else [])
    for col in ("host", "class", *shown, "disks", "serial"):
        table.add_column(col)
    for h in site.hosts:
        nets = {n: _link(h, nic) for n, nic in h.nics.items()}
        disks = [f"system {h.install_disk}"]
        if h.ephemeral_disk:
            disks.append(f"ephemeral {h.ephemeral_disk} {h.ephemeral_fs}")
        if h.brick_disk:
            disks.append(f"brick {h.brick_disk}")
        klass = h.klass + (" + frontend" if h.frontend else "")
        table.add_row(h.name, klass, *(nets.get(n, "—") for n in shown), ", ".join(disks), h.serial or "")
    return table


def register(app: typer.Typer) -> None:
    inv_app = typer.Typer(help="Validate and show site inventories.", no_args_is_help=True)
    app.add_typer(inv_app, name="inventory")

    @inv_app.command("settings")
    def settings() -> None:
        """Print the reference of every inventory setting (Markdown)."""
        from b2ct.inventory.docs import settings_markdown

        print(settings_markdown())

    @inv_app.command("check")
    def check(inventory: Path | None = InventoryOption, vault: list[Path] | None = VaultOption) -> None:
        """Validate the inventory; print the hosts as b2ct understood them."""
        site = load(resolve(inventory), vault or ())
        console.print(summary(site))
        for vol in site.gluster_volumes:
            bricks = " ".join(str(b) for b in vol.bricks)
            console.print(f"gluster volume {vol.name}: replica {vol.replica}, {bricks} → {vol.mount}")
        console.print(f"[green]inventory {site.source} is valid[/green]: {len(site.hosts)} hosts")
