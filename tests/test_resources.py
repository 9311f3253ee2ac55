"""b2ct.resources: one place that knows where the data is, in a checkout and in an installed package.

The installed case runs for real in tests/packaging/test_wheel.py (a wheel in a fresh environment); here
the package directory is pointed at a copy laid out as setup.py lays out the wheel, to test the choice
between the two and the broken-install error in milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2ct import resources
from b2ct.errors import B2ctError
from b2ct.lab import mirror
from tests.conftest import REPO


@pytest.fixture
def package_at(monkeypatch: pytest.MonkeyPatch):
    def point(directory: Path) -> None:
        monkeypatch.setattr(resources, "_package_dir", lambda: directory)

    return point


def test_a_checkout_reads_the_folders_beside_the_package() -> None:
    assert resources.installed_from() == "checkout" and resources.checkout() == REPO
    assert resources.kickstart_dir() == REPO / "kickstart"
    assert resources.isobuild_dir() == REPO / "isobuild"
    assert resources.example_inventory() == REPO / "inventory" / "example"
    assert resources.new_site_inventory() == REPO / "inventory" / "new-site"
    assert resources.collection_dir() == REPO and resources.roles_dir() == REPO / "roles"
    for d in (
        resources.kickstart_dir(),
        resources.isobuild_dir(),
        resources.roles_dir(),
        resources.playbooks_dir(),
    ):
        assert d.is_dir(), d


def test_checkout_collections_path_links_the_checkout(tmp_path: Path) -> None:
    path = resources.collections_path(tmp_path / "c")
    link = path / "ansible_collections" / "b2ct" / "cloud"
    assert link.is_symlink() and link.resolve() == REPO
    assert resources.collections_path(tmp_path / "c") == path  # again: the same link, replaced in place


def test_an_installed_package_reads_its_data_copy(tmp_path: Path, package_at) -> None:
    pkg = tmp_path / "site-packages" / "b2ct"
    coll = pkg / "_data" / "collections" / "ansible_collections" / "b2ct" / "cloud"
    (pkg / "_data" / "kickstart").mkdir(parents=True)
    (coll / "roles").mkdir(parents=True)
    package_at(pkg)
    assert resources.installed_from() == "package" and resources.checkout() is None
    assert resources.kickstart_dir() == pkg / "_data" / "kickstart"
    assert resources.collection_dir() == coll and resources.roles_dir() == coll / "roles"
    assert resources.collections_path(tmp_path / "unused") == pkg / "_data" / "collections"
    assert not (tmp_path / "unused").exists()  # nothing to link: the package is laid out as Ansible wants


def test_a_broken_install_says_so_in_one_line(tmp_path: Path, package_at) -> None:
    (tmp_path / "b2ct").mkdir()
    package_at(tmp_path / "b2ct")
    with pytest.raises(B2ctError) as err:
        resources.kickstart_dir()
    assert "data files are missing" in err.value.oneline() and "reinstall" in err.value.oneline()


def test_lab_mirror_default_needs_a_checkout(
    tmp_path: Path, package_at, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("B2CT_OPENNEBULA_REPO", raising=False)
    assert mirror.default_repo() == REPO.parent / "shared" / "opennebula" / "repo-6.10"
    (tmp_path / "b2ct" / "_data").mkdir(parents=True)
    package_at(tmp_path / "b2ct")  # installed: no checkout, so no repository beside it
    with pytest.raises(B2ctError) as err:
        mirror.default_repo()
    assert "--opennebula-repo" in err.value.oneline() and "--no-opennebula" in err.value.oneline()
    monkeypatch.setenv("B2CT_OPENNEBULA_REPO", str(tmp_path / "repo"))
    assert mirror.default_repo() == tmp_path / "repo"
