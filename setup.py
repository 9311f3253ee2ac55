"""Build hook: copy the data folders at the repository root into the package, as b2ct/_data/.

The folders stay where they are in the repository (kickstart/, isobuild/, roles/, playbooks/, ...: the
layout is part of the design, and the root is also the Ansible collection b2ct.cloud). setuptools can
put files beside modules only from inside a package's directory; mapping outside folders declaratively
(``package-dir``) would make each of them an importable package and end automatic package discovery
(every subpackage listed by hand). So build_py copies them after its own work; the sdist carries them
through MANIFEST.in, so a wheel built from the sdist gets the same. Editable installs read the checkout
itself (b2ct.resources), so nothing is copied for them.

Everything else (metadata, dependencies, entry points) is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

COLLECTION = "collections/ansible_collections/b2ct/cloud"
# Repository path -> path under b2ct/_data (b2ct/resources.py reads this layout).
DATA = {
    "kickstart": "kickstart",
    "isobuild": "isobuild",
    "inventory/example": "inventory/example",
    "inventory/new-site": "inventory/new-site",
    "galaxy.yml": f"{COLLECTION}/galaxy.yml",
    "meta": f"{COLLECTION}/meta",
    "plugins": f"{COLLECTION}/plugins",
    "roles": f"{COLLECTION}/roles",
    "playbooks": f"{COLLECTION}/playbooks",
}
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "b2ct" / "_data"
        shutil.rmtree(target, ignore_errors=True)  # a stale build/ must not keep removed files
        for src, dst in DATA.items():
            source, dest = root / src, target / dst
            if not source.exists():
                raise FileNotFoundError(f"b2ct build: {source} is missing (MANIFEST.in must include it)")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, ignore=_SKIP)
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildPyWithData})
