"""CLI: `b2ct cloud apply|export-dirac`, `b2ct vm register|smoke`, `b2ct upgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from b2ct.errors import B2ctError
from b2ct.ui import info, step

InventoryOpt = Annotated[
    Path | None, typer.Option("-i", "--inventory", help="Inventory dir (default: the lab's).")
]
AuthOpt = Annotated[
    Path | None,
    typer.Option(
        "--auth",
        help="user:password file (default $ONE_AUTH, ~/.one/one_auth, else oneadmin's read over ssh "
        "from the front-end).",
    ),
]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint", help="XML-RPC endpoint (default from the inventory).")
]


def _inventory(path: Path | None) -> Path:
    if path is not None:
        return path
    from b2ct.deploy.commands import default_inventory

    return default_inventory()


def _context(inventory: Path | None, auth: Path | None, endpoint: str | None) -> tuple[Any, Any, str, Path]:
    site, one, ep, inv, _ = _context_with_session(inventory, auth, endpoint)
    return site, one, ep, inv


def _context_with_session(
    inventory: Path | None, auth: Path | None, endpoint: str | None
) -> tuple[Any, Any, str, Path, str]:
    # Check all input before any connection: one clear error, nothing changed.
    from b2ct.inventory import load
    from b2ct.opennebula import client

    inv = _inventory(inventory)
    site = load(inv)
    ep = endpoint or client.endpoint_for(site)
    session = client.session_for(site, inv, auth)
    return site, client.connect(ep, session), ep, inv, session


def _parse_extravars(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise B2ctError(f"--extra-vars {item!r}: expected key=value")
        out[key] = yaml.safe_load(value)
    return out


def register(app: typer.Typer) -> None:
    cloud = typer.Typer(
        help="OpenNebula cloud objects (clusters, datastores, vnets, hosts).", no_args_is_help=True
    )
    vm = typer.Typer(help="Belle II VM image and template.", no_args_is_help=True)
    app.add_typer(cloud, name="cloud")
    app.add_typer(vm, name="vm")

    @cloud.command("apply")
    def cloud_apply(
        inventory: InventoryOpt = None,
        auth: AuthOpt = None,
        endpoint: EndpointOpt = None,
        check: Annotated[bool, typer.Option("--check", help="Only say what would change.")] = False,
    ) -> None:
        """Create or update clusters, datastores, virtual networks and hosts (compare-then-update)."""
        from b2ct.inventory import load
        from b2ct.opennebula import plan
        from b2ct.opennebula.reconcile import apply_site

        inv = _inventory(inventory)
        site = load(inv)
        plan.build(site)  # bad input: one error line and nothing else, before any progress output
        with step("cloud objects" + (" (check)" if check else "")):
            ep, changes = apply_site(site, inv, auth=auth, endpoint=endpoint, check=check)
            for c in changes:
                info(("would " if check else "") + str(c))
            info(f"at {ep}")
        print(f"{len(changes)} change(s)" + (" needed" if check else ""))

    @cloud.command("export-dirac")
    def cloud_export_dirac(
        site_name: Annotated[
            str, typer.Option("--site", help="DIRAC site name, Domain.Site.co (e.g. CLOUD.Torino.it).")
        ],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Directory to write dirac.cfg (and the template) in.")
        ],
        dirac_template: Annotated[
            Path | None,
            typer.Option(
                "--dirac-template",
                help="DIRAC's cloudinit.template (or the site's copy): rewritten with the site squids.",
            ),
        ] = None,
        context_template_path: Annotated[
            str | None,
            typer.Option(
                "--context-template-path",
                help="Where the DIRAC server keeps the rewritten template "
                "(default /opt/dirac/etc/cloudinit-SITE.template).",
            ),
        ] = None,
        ce: Annotated[
            str | None, typer.Option("--ce", help="CE name (default: the endpoint's host).")
        ] = None,
        queue: Annotated[str, typer.Option("--queue", help="Queue name.")] = "cloud",
        inventory: InventoryOpt = None,
        auth: AuthOpt = None,
        endpoint: EndpointOpt = None,
    ) -> None:
        """Write the site's DIRAC CloudCE configuration: endpoint, image and template, network, queue size
        from the live cloud, and (with --dirac-template) the cloud-init template with the site's CVMFS
        proxies. See docs/dirac.md."""
        import urllib.parse

        from b2ct.fsutil import atomic_write, write_error
        from b2ct.inventory import load
        from b2ct.opennebula import client, dirac

        # every input is checked before any connection: one clear error, nothing written
        inv = _inventory(inventory)
        site = load(inv)
        ep = endpoint or client.endpoint_for(site)
        dirac.driver_options(ep)
        ce_name = ce or urllib.parse.urlsplit(ep).hostname or ""
        template = ctx_path = None
        if dirac_template is not None:
            try:
                text = dirac_template.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                why = getattr(exc, "strerror", None) or exc
                raise B2ctError(f"cannot read: {why}", where=dirac_template) from None
            template = dirac.site_context_template(text, site, str(dirac_template))
            ctx_path = context_template_path or f"/opt/dirac/etc/cloudinit-{site_name}.template"
        dirac.check_names(site_name, ce_name, queue, ctx_path)
        one = client.connect(ep, client.session_for(site, inv, auth))
        with step(f"DIRAC CloudCE for {site_name} from {ep}"):
            facts = dirac.cloud_facts(one, ep, site.opennebula.belle2.template_name)
            cfg = dirac.render_cfg(
                site, ep, facts, dirac_site=site_name, ce=ce_name, queue=queue, context_template=ctx_path
            )
        if facts.fractional_cpu:
            info(
                f"[yellow]template(s) {', '.join(facts.fractional_cpu)}: a CPU that is not a whole number "
                "makes DIRAC's driver fail listing flavours if DIRAC's user can see them[/yellow]"
            )
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, out) from None
        written = [atomic_write(out / "dirac.cfg", cfg)]
        if template is not None:
            written.append(atomic_write(out / "cloudinit.template", template))
        else:
            info(
                "[yellow]no --dirac-template: DIRAC's default cloud-init writes "
                'CVMFS_HTTP_PROXY="auto;DIRECT", not the site squids[/yellow]'
            )
        for path in written:
            print(path)

    @vm.command("register")
    def vm_register(
        inventory: InventoryOpt = None, auth: AuthOpt = None, endpoint: EndpointOpt = None
    ) -> None:
        """Register the Belle II image and VM template from the inventory."""
        from b2ct.opennebula import belle2

        site, one, ep, _ = _context(inventory, auth, endpoint)
        belle2.vm_template(site)  # validates key and squid before any call
        with step(f"Belle II image and template at {ep}"):
            changes = belle2.register(one, ep, site)
        print("\n".join(changes) if changes else "no change")

    @vm.command("smoke")
    def vm_smoke(
        inventory: InventoryOpt = None,
        auth: AuthOpt = None,
        endpoint: EndpointOpt = None,
        cluster: Annotated[
            list[str] | None,
            typer.Option(
                "--cluster", help="Cluster to start a VM in (repeatable; default: services and workers)."
            ),
        ] = None,
        timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for RUNNING.")] = 300.0,
        keep: Annotated[bool, typer.Option("--keep", help="Leave the VMs running.")] = False,
    ) -> None:
        """Instantiate one VM per cluster from the template and report how long until each is RUNNING."""
        from b2ct.opennebula import belle2, plan

        clusters = tuple(cluster or (plan.SERVICES, plan.WORKERS))
        site, one, ep, _ = _context(inventory, auth, endpoint)
        name = site.opennebula.belle2.template_name
        with step(f"instantiate {name} in {', '.join(clusters)}"):
            vms = belle2.smoke(one, ep, name, clusters=clusters, timeout=timeout, keep=keep)
        for v in vms:
            verdict = "ok (< 1 min, as the original recipe)" if v.seconds < 60 else "SLOW (> 1 min)"
            print(f"VM {v.id} RUNNING on {v.host} (cluster {v.cluster}) after {v.seconds:.1f}s: {verdict}")

    @app.command("upgrade")
    def upgrade(
        inventory: InventoryOpt = None,
        auth: AuthOpt = None,
        endpoint: EndpointOpt = None,
        serial: Annotated[int, typer.Option("--serial", help="Hosts per batch.")] = 1,
        events: Annotated[Path | None, typer.Option("--events", help="Append JSON events here.")] = None,
        extra_vars: Annotated[
            list[str] | None, typer.Option("--extra-vars", "-e", help="key=value for the playbook.")
        ] = None,
        smoke: Annotated[
            bool, typer.Option("--smoke/--no-smoke", help="Boot the check's smoke domain on each host.")
        ] = True,
        limit: Annotated[
            str | None,
            typer.Option(
                "--limit", "-l", help="Only these hosts or groups (comma-separated), in rolling order."
            ),
        ] = None,
    ) -> None:
        """Rolling upgrade: drain, upgrade, reboot if needed, roles, check, re-enable — a batch at a time."""
        from b2ct.opennebula import upgrade as up

        if serial < 1:
            raise B2ctError(f"--serial must be at least 1, got {serial}")
        ev = _parse_extravars(extra_vars or [])
        site, one, ep, inv, session = _context_with_session(inventory, auth, endpoint)
        rolled = up.order(site, limit, inv)  # bad --limit: one error line before anything is touched
        with step(f"rolling upgrade of {len(rolled)} host(s), {serial} at a time"):
            result = up.run(
                site, inv, one, ep, serial=serial, events_path=events, extravars=ev, limit=limit,
                run_check=lambda hosts: up.check_batch(site, inv, hosts, session, smoke),
            )  # fmt: skip
        print(f"upgraded: {', '.join(result.upgraded)}")
