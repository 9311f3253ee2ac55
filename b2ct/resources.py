"""Where b2ct finds its data: templates, tables, media layouts, the Ansible collection, inventories.

The repository keeps them in top-level folders beside the package (``kickstart/``, ``isobuild/``,
``roles/``, ``playbooks/``, ``plugins/``, ``meta/``, ``inventory/``): the repository root is also the
Ansible collection ``b2ct.cloud`` (galaxy.yml). A wheel cannot install folders beside its package, so the
build (setup.py) copies them into the package, under ``b2ct/_data/``:

    b2ct/_data/kickstart/  isobuild/  inventory/example/  inventory/new-site/
    b2ct/_data/collections/ansible_collections/b2ct/cloud/  galaxy.yml meta/ plugins/ roles/ playbooks/

so that the packaged collection sits where Ansible looks for one (a collections path holds
``ansible_collections/<namespace>/<name>``). Every other module asks this one, never a path of its own.

Which copy is used: the packaged ``_data`` when it exists (installed from a wheel or an sdist), else the
checkout the package was imported from (``pip install -e``, ``python3 -m b2ct`` in the repository).
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

from b2ct.errors import B2ctError

PACKAGED = "_data"
COLLECTION = ("b2ct", "cloud")  # namespace, name (galaxy.yml)
# Files only a b2ct checkout has at its root, beside the package.
_CHECKOUT_MARKERS = ("galaxy.yml", "kickstart/releases.yml", "isobuild/layouts.yml")


@cache
def _package_dir() -> Path:
    where = resources.files("b2ct")
    # Wheels and sdists install into a directory; importlib.resources gives a zip reader's Traversable only
    # for zipped packages, which pip never makes.
    return Path(str(where))


def checkout() -> Path | None:
    """The source checkout b2ct runs from (the directory holding ``b2ct/``), or None when installed."""
    root = _package_dir().resolve().parent
    if all((root / marker).is_file() for marker in _CHECKOUT_MARKERS) and not _packaged().is_dir():
        return root
    return None


def _packaged() -> Path:
    return _package_dir() / PACKAGED


def installed_from() -> str:
    """'package' (b2ct/_data: a wheel or sdist install) or 'checkout'; raises B2ctError when neither
    holds the data (a broken install)."""
    if _packaged().is_dir():
        return "package"
    if checkout() is not None:
        return "checkout"
    raise B2ctError(
        f"b2ct's data files are missing (no {_packaged()} and no source checkout beside the package)",
        hint="reinstall b2ct from its wheel or sdist (pip install --force-reinstall b2ct)",
    )


def data_root() -> Path:
    """The directory holding kickstart/, isobuild/ and inventory/ (see the module docstring)."""
    return _packaged() if installed_from() == "package" else _package_dir().resolve().parent


def collection_dir() -> Path:
    """The collection b2ct.cloud's root: galaxy.yml, meta/, plugins/, roles/, playbooks/."""
    if installed_from() == "package":
        return _packaged() / "collections" / "ansible_collections" / COLLECTION[0] / COLLECTION[1]
    return data_root()


def kickstart_dir() -> Path:
    """Kickstart templates, the rack %pre script and the per-release table (releases.yml)."""
    return data_root() / "kickstart"


def isobuild_dir() -> Path:
    """Install media layouts (layouts.yml), release downloads (releases.yml), the key's syslinux.cfg."""
    return data_root() / "isobuild"


def example_inventory() -> Path:
    """The example site (inventory/example/): the original Torino layout, used by demo and the docs."""
    return data_root() / "inventory" / "example"


def new_site_inventory() -> Path:
    """The starting inventory `b2ct init` copies (inventory/new-site/): placeholders, every value told."""
    return data_root() / "inventory" / "new-site"


def roles_dir() -> Path:
    return collection_dir() / "roles"


def playbooks_dir() -> Path:
    return collection_dir() / "playbooks"


def collections_path(scratch: Path | None = None) -> Path:
    """A directory to give Ansible as its collections path (ANSIBLE_COLLECTIONS_PATH) so that it finds
    ``b2ct.cloud``: the packaged one as it is; for a checkout, ``scratch`` (default: b2ct's cache,
    $XDG_CACHE_HOME/b2ct/collections) with ``ansible_collections/b2ct/cloud`` linked to the checkout.

    Raises B2ctError when b2ct's data is missing."""
    if installed_from() == "package":
        return _packaged() / "collections"
    if scratch is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        scratch = cache / "b2ct" / "collections"
    parent = scratch / "ansible_collections" / COLLECTION[0]
    parent.mkdir(parents=True, exist_ok=True)
    link = parent / COLLECTION[1]
    if not link.is_symlink() or Path(os.readlink(link)) != collection_dir():
        tmp = parent / f".{COLLECTION[1]}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(collection_dir(), target_is_directory=True)
        tmp.replace(link)  # rename(2): whoever reads the link sees the old one or the new one
    return scratch
