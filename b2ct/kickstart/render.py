"""Render kickstarts from kickstart/ templates: one per host and one rack kickstart for a single key.

Everything is rendered and validated in memory first; files are written only when all of it passed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from b2ct import resources
from b2ct.errors import B2ctError
from b2ct.fsutil import write_error
from b2ct.inventory import RELEASES, Host, Site, load
from b2ct.kickstart.validate import validate

RACK_NAME = "ks.cfg"
INCLUDE_NETWORK = "%include /tmp/b2ct/network.ks"


@dataclasses.dataclass(frozen=True)
class Rendered:
    """Kickstart files keyed by their path on the install medium (``ks.cfg``, ``ks/<host>.cfg``)."""

    release: str
    files: dict[str, str]


def _release_table(templates: Path) -> dict[str, dict[str, Any]]:
    path = templates / "releases.yml"
    return _read_release_table(path, path.stat().st_mtime_ns if path.exists() else 0)


@cache
def _read_release_table(path: Path, _mtime: int) -> dict[str, dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise B2ctError(f"cannot read release table: {exc}", where=path) from None
    return data


@cache
def _environment(templates: Path) -> jinja2.Environment:
    # cached: compiling the templates costs more than rendering a small site (auto_reload sees edits)
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _template_error(exc: Exception, templates: Path) -> B2ctError:
    """Point at the template line: Jinja rewrites tracebacks so template frames carry their lineno."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"{exc.filename or exc.name}:{exc.lineno}"
        return B2ctError(f"template syntax error: {exc.message}", where=where)
    where = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(str(templates)):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return B2ctError(f"template error: {exc}", where=where)


def _disk(name: str) -> str:
    # anaconda wants bare names (sda) but accepts /dev/disk/by-* paths as they are
    return name.removeprefix("/dev/") if name.count("/") <= 2 else name


def _host_context(site: Site, host: Host) -> dict[str, Any]:
    defroute = "public" if "public" in host.nics else "private"
    nics = []
    for nic in host.nics.values():
        net = site.networks[nic.network]
        carrier = host.carrier(nic)
        bond = None
        if nic.bond is not None:
            bond = {
                "name": nic.bond.name,
                "members": list(nic.bond.members),
                "opts": f"mode={nic.bond.mode},miimon={nic.bond.miimon}",
            }
        nics.append(
            {
                "network": nic.network,
                "device": carrier.bond.name if carrier.bond is not None else carrier.mac,
                "bond": bond,
                "vlan": nic.vlan,
                "bridge": net.bridge,
                "via": nic.via,
                "dhcp": nic.dhcp,
                "ip": str(nic.ip) if nic.ip else "",
                "netmask": net.netmask,
                "gateway": str(net.gateway) if net.gateway else "",
                "dns": ",".join(str(d) for d in net.dns),
                "defroute": nic.network == defroute,
                "hostname": host.name if nic.network == "private" else "",
            }
        )
    # private first (it carries the hostname); a network riding on another's link after that link
    nics.sort(key=lambda n: (n["via"] is not None, n["network"] != "private"))
    return {
        "name": host.name,
        "short": host.short_name,
        "klass": host.klass,
        "frontend": host.frontend,
        "serial": host.serial,
        "disk": _disk(host.install_disk),
        "has_ephemeral": host.ephemeral_disk is not None,
        "bonded": host.bonded,
        "macs": host.macs,
        "nics": nics,
    }


def _net_defaults(site: Site, name: str) -> dict[str, Any] | None:
    net = site.networks.get(name)
    if net is None:
        return None
    return {
        "prefix": net.prefix,
        "gateway": str(net.gateway) if net.gateway else "",
        "dns": ",".join(str(d) for d in net.dns),
    }


def _site_release(site: Site, release: str | None, templates: Path) -> tuple[str, dict[str, Any]]:
    name = (release or site.release.name).lower()
    if name not in RELEASES:
        raise B2ctError(f"unknown OS release {name!r}", hint="one of " + ", ".join(RELEASES))
    if not RELEASES[name].kickstartable:
        raise B2ctError(
            f"release {name} is not installed by kickstart "
            "(Debian/Ubuntu hosts are configured by Ansible only)",
            where=site.source,
            hint="set b2ct_os_release to el6, el8, el9 or el10, or pass --release",
        )
    table = _release_table(templates)
    if name not in table:
        raise B2ctError(f"kickstart/releases.yml has no entry for {name}", where=templates / "releases.yml")
    return name, {"name": name, **table[name]}


def render(
    site: Site, release: str | None = None, templates: Path | None = None, per_host: bool = True
) -> Rendered:
    """Render and validate the rack kickstart and (unless ``per_host`` is off) every host's kickstart.

    ``templates``: a kickstart/ directory (default: b2ct's own, b2ct.resources.kickstart_dir())."""
    templates = templates or resources.kickstart_dir()
    name, rel = _site_release(site, release, templates)
    if "baseos" not in site.repos:
        raise B2ctError("b2ct_repos has no 'baseos' URL to install from", where=site.source)
    env = _environment(templates)
    hosts = [_host_context(site, h) for h in site.hosts]
    common = {
        "site": site,
        "rel": rel,
        "source": site.source,
        "members_script": (templates / "bond-members.sh").read_text(encoding="utf-8").rstrip("\n"),
    }
    files: dict[str, str] = {}
    try:
        host_tpl = env.get_template("host.ks.j2")
        for h in hosts if per_host else ():
            files[f"ks/{h['name']}.cfg"] = host_tpl.render(
                **common, h=h, title=f"host {h['name']} ({h['klass']})"
            )
        taken = sorted({n["ip"] for h in hosts for n in h["nics"] if n["ip"]})
        files[RACK_NAME] = env.get_template("rack.ks.j2").render(
            **common,
            title="rack (identifies the machine at install time)",
            hosts=hosts,
            taken_ips=taken,
            defaults={"private": _net_defaults(site, "private"), "public": _net_defaults(site, "public")},
            pre_script=(templates / "rack-pre.sh").read_text(encoding="utf-8").rstrip("\n"),
        )
        # A bonded host's network commands reach the installer through %pre and %include: validate the
        # kickstart as the installer reads it then (members are still MACs: to pykickstart a name either way).
        fragment = env.from_string('{% import "macros.j2" as m with context %}{{ m.network(h) }}')
        readable = {
            f"ks/{h['name']}.cfg": files[f"ks/{h['name']}.cfg"].replace(
                f"{INCLUDE_NETWORK}\n", fragment.render(**common, h=h), 1
            )
            for h in hosts
            if per_host and h["bonded"]
        }
    except (jinja2.TemplateError, TypeError, KeyError, AttributeError) as exc:
        raise _template_error(exc, templates) from None
    by_path = {f"ks/{h.name}.cfg": h for h in site.hosts}
    for path, text in files.items():
        text = readable.get(path, text)
        try:
            validate(text, rel["handler"], path)
        except B2ctError as exc:
            raise _blame(exc, text, site, by_path.get(path)) from None
    return Rendered(name, files)


def render_media_set(inventory_path: str | Path, release: str | None = None) -> dict[str, str]:
    """The kickstart files an install medium carries, keyed by their path on the medium."""
    return render(load(inventory_path), release).files


def write(rendered: Rendered, outdir: str | Path) -> list[Path]:
    """Write every file or none: a new directory is built aside and renamed into place; into an existing
    one, every file is written beside its target first and renamed only once all of them were written.

    Raises B2ctError naming ``outdir`` and what happened (disk full, read-only, permission denied).
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise B2ctError("output exists and is not a directory", where=outdir)
    parent = outdir.parent if outdir.parent != Path("") else Path(".")
    if not parent.is_dir():
        raise B2ctError(f"output directory's parent {parent} does not exist", where=outdir)
    if not outdir.exists():
        _write_new(rendered, outdir, parent)
    else:
        _write_into(rendered, outdir)
    return [outdir / rel for rel in rendered.files]


def _write_new(rendered: Rendered, outdir: Path, parent: Path) -> None:
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=parent))
        for rel, text in rendered.files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
        tmp.chmod(0o755)
        tmp.rename(outdir)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise write_error(exc, outdir) from None
        raise


def _write_into(rendered: Rendered, outdir: Path) -> None:
    made_dirs: list[Path] = []
    temps: list[tuple[Path, Path]] = []
    try:
        for rel, text in rendered.files.items():
            target = outdir / rel
            if not target.parent.is_dir():
                target.parent.mkdir(parents=True)
                made_dirs.append(target.parent)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            temps.append((Path(name), target))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(name, 0o644)
        for tmp, target in temps:
            os.replace(tmp, target)
    except BaseException as exc:
        for tmp, _target in temps:
            tmp.unlink(missing_ok=True)
        for d in reversed(made_dirs):
            shutil.rmtree(d, ignore_errors=True)
        if isinstance(exc, OSError):
            raise write_error(exc, outdir) from None
        raise


def _inventory_values(site: Site, host: Host | None) -> list[tuple[str, str, str]]:
    """(text as rendered, setting, file:line) of the inventory values a kickstart line can carry."""
    o = site.origins
    found = [
        (site.timezone, "b2ct_timezone", o.get("b2ct_timezone", "")),
        (site.lang, "b2ct_lang", o.get("b2ct_lang", "")),
        (site.keyboard, "b2ct_keyboard", o.get("b2ct_keyboard", "")),
        (site.datastore_path, "b2ct_datastore_path", o.get("b2ct_datastore_path", "")),
        (site.root_password_hash or "", "b2ct_root_password_hash", o.get("b2ct_root_password_hash", "")),
        *[(url, "b2ct_repos", o.get("b2ct_repos", "")) for url in site.repos.values()],
        *[(name, "b2ct_repos", o.get("b2ct_repos", "")) for name in site.repos],
        *[(key, "b2ct_ssh_keys", o.get("b2ct_ssh_keys", "")) for key in site.ssh_keys],
    ]
    for net in site.networks.values():
        found += [(str(x), "b2ct_networks", o.get("b2ct_networks", "")) for x in (net.gateway, *net.dns) if x]
    for h in [host] if host else site.hosts:
        found.append((h.name, "host name", h.where))
        found.append((h.install_disk, "b2ct_install_disk", h.origins.get("b2ct_install_disk", h.where)))
        for nic in h.nics.values():
            found.append((nic.mac, f"{h.name} b2ct_nics.{nic.network}.mac", nic.mac_at))
            if nic.bond is not None:
                where = f"{h.name} b2ct_nics.{nic.network}.bond"
                found.append((nic.bond.mode, f"{where}.mode", nic.bond.at))
                members = zip(nic.bond.members, nic.bond.members_at, strict=False)
                found += [(mac, f"{where}.members", at) for mac, at in members]
            if nic.ip:
                found.append((str(nic.ip), f"{h.name} b2ct_nics.{nic.network}.ip", nic.ip_at))
    return [(text, setting, at) for text, setting, at in found if text and at]


def _blame(exc: B2ctError, text: str, site: Site, host: Host | None) -> B2ctError:
    """Point a validator's complaint about a rendered line at the inventory line that put a value there.

    The longest inventory value found in the rejected line is taken as the cause; the kickstart line stays
    in the message. Without a match (a template's own text), the error stays on the kickstart line.
    """
    m = re.search(r":(\d+)$", exc.where or "")
    lines = text.splitlines()
    if not m or not 1 <= int(m.group(1)) <= len(lines):
        return exc
    line = lines[int(m.group(1)) - 1]
    words = set(re.split(r"[\s=,\"']+", line))
    hits = [
        (t, s, at)
        for t, s, at in _inventory_values(site, host)
        if t in words or ((len(t) > 8 or not t.isalnum()) and t in line)
    ]
    if not hits:
        return exc
    value, setting, at = max(hits, key=lambda hit: len(hit[0]))
    return B2ctError(f"{setting} {value!r}: {exc.message} (in {exc.where})", where=at, hint=exc.hint)
