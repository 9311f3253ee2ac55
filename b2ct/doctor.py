"""`b2ct doctor`: what this installation of b2ct has and lacks.

Its version and Python; where it reads its data from (the installed package or a source checkout); the
Ansible collection b2ct.cloud it deploys with and the collections its roles need; the optional Python
modules; and every system tool of b2ct.tools.TOOLS, by command, present or missing with the Debian and
EL package that provides it (the same table the commands' own "not found" errors come from).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from b2ct import __version__, resources, tools
from b2ct.errors import B2ctError

# ansible-core's default COLLECTIONS_PATHS, searched after ANSIBLE_COLLECTIONS_PATH and before sys.path.
_DEFAULT_COLLECTIONS = ("~/.ansible/collections", "/usr/share/ansible/collections")


@dataclass(frozen=True)
class Collection:
    name: str  # namespace.name
    wanted: str  # version range from galaxy.yml
    found: str | None  # installed version, None when missing
    where: str

    @property
    def ok(self) -> bool:
        if self.found is None:
            return False
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            return SpecifierSet(self.wanted).contains(self.found, prereleases=True)
        except InvalidSpecifier:  # "*" and other Galaxy ranges PEP 440 does not read
            return True


def _collection_dirs() -> list[Path]:
    env = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    paths = env.split(os.pathsep) if env else list(_DEFAULT_COLLECTIONS)
    return [Path(p).expanduser() for p in paths if p] + [Path(p) for p in sys.path if p]


def _installed(name: str) -> tuple[str | None, str]:
    """(version, directory) of collection ``name`` where Ansible would find it first; (None, "")."""
    namespace, coll = name.split(".", 1)
    for base in _collection_dirs():
        root = base / "ansible_collections" / namespace / coll
        if not root.is_dir():
            continue
        manifest = root / "MANIFEST.json"
        try:
            return str(json.loads(manifest.read_text())["collection_info"]["version"]), str(root)
        except (OSError, ValueError, KeyError):
            return "?", str(root)
    return None, ""


def required_collections() -> list[Collection]:
    """The collections galaxy.yml declares as b2ct.cloud's dependencies, and what is installed of each."""
    import yaml

    galaxy = resources.collection_dir() / "galaxy.yml"
    try:
        deps = (yaml.safe_load(galaxy.read_text(encoding="utf-8")) or {}).get("dependencies") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise B2ctError(f"cannot read the collection's dependencies: {exc}", where=galaxy) from None
    out = []
    for name, wanted in sorted(deps.items()):
        found, where = _installed(name)
        out.append(Collection(name, str(wanted), found, where))
    return out


def report(everything: bool) -> tuple[list[str], list[tuple[str, str, str, str, str]], int]:
    """(lines about b2ct itself, one row per tool, number of missing things a command needs).

    Rows: tool, commands, where it was found or "MISSING", Debian package, EL package. ``everything``
    adds the tools only the test suite needs."""
    import ansible

    missing = 0
    origin = "installed package" if resources.installed_from() == "package" else "source checkout"
    lines = [
        f"b2ct {__version__}, Python {platform.python_version()} ({sys.executable})",
        f"data: {resources.data_root()} ({origin})",
        f"ansible collection b2ct.cloud: {resources.collection_dir()}",
        f"  plain ansible-playbook: ANSIBLE_COLLECTIONS_PATH={resources.collections_path()} "
        "ansible-playbook -i SITE_DIR b2ct.cloud.site",
        f"ansible-core {ansible.__version__}",
    ]
    for c in required_collections():
        if c.ok:
            lines.append(f"  collection {c.name} {c.found} (wants {c.wanted}): ok, {c.where}")
        else:
            missing += 1
            have = f"{c.found} installed" if c.found else "MISSING"
            lines.append(
                f"  collection {c.name} (wants {c.wanted}): {have}; pip install ansible "
                f"(or ansible-galaxy collection install {c.name})"
            )
    for m in tools.MODULES:
        try:
            __import__(m.name)
            lines.append(f"python module {m.name} ({', '.join(m.commands)}): ok")
        except ImportError:
            missing += 1
            lines.append(f"python module {m.name} ({', '.join(m.commands)}): MISSING; {m.install_hint()}")
    rows = []
    for t in tools.TOOLS:
        if t.commands == ("tests",) and not everything:
            continue
        found = tools.find(t)
        if found is None and t.commands != ("tests",):
            missing += 1
        debian = f"pip: {t.debian}" if t.pip else t.debian
        rows.append((t.name, " ".join(t.commands), found or "MISSING", debian, t.el or "—"))
    return lines, rows, missing


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        everything: bool = typer.Option(
            False, "--all", help="Also the tools only b2ct's test suite needs (developers)."
        ),
    ) -> int:
        """What b2ct has and lacks: version, data, Ansible collections, and every tool each command needs
        (with the Debian and EL packages). Exit code 1 when something a command needs is missing."""
        lines, rows, missing = report(everything)
        for line in lines:
            print(line)
        # Plain columns, one tool per line, whatever the terminal's width: easy to read, grep and diff.
        header = ("tool", "needed by", "found", "Debian package", "EL package")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        print("system tools:")
        for row in [header, *rows]:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
        if missing:
            print(f"{missing} missing: install the packages named above")
        return 1 if missing else 0
