"""A site's first deploy: lab hosts without the roles' packages (`lab up --bare`), which the roles
install through apt from the local repository the bare image carries (lab hosts have no internet), and
OpenNebula from the lab's signed mirror, as from a site's.

The other deploy tests use hosts with every Debian package baked in (fast); this one runs the install
path of each role's package task for real: package names, dependencies, and the services the packages
bring up (oned on MariaDB among them), then the re-deploy that must change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from b2ct.deploy import run
from b2ct.inventory import load
from b2ct.lab import image
from b2ct.opennebula import client
from tests.lab_plugin import make_lab

pytestmark = [pytest.mark.slow, pytest.mark.lab]


@pytest.fixture(scope="module")
def bare_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    # Deploy logs and the fact cache of these runs stay in the test's temporary directory.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        with make_lab(["svc1", "svc2", "wn1"], bare=True) as the_lab:
            yield the_lab


def _installed(lab, host: str, packages: list[str]) -> set[str]:  # type: ignore[no-untyped-def]
    r = lab.exec(host, "dpkg-query -W -f '${Package} ${db:Status-Status}\\n' " + " ".join(packages))
    return {line.split()[0] for line in r.stdout.splitlines() if line.endswith(" installed")}


def test_first_deploy_installs_the_role_packages_then_changes_nothing(bare_lab) -> None:  # type: ignore[no-untyped-def]
    role_packages = image.package_lists()[1]
    before = {h: _installed(bare_lab, h, role_packages) for h in ("svc1", "wn1")}
    assert not before["svc1"] & {"squid", "mariadb-server", "glusterfs-server", "qemu-system-x86"}, before
    first = run(bare_lab.inventory)
    assert first.ok, (first.summary(), Path(first.log_dir, "stdout.txt").read_text()[-3000:])
    service = _installed(bare_lab, "svc1", role_packages)
    worker = _installed(bare_lab, "wn1", role_packages)
    for pkg in ("squid", "mariadb-server", "glusterfs-server", "qemu-system-x86", "libvirt-daemon-system"):
        assert pkg in service, (pkg, service)
    assert {"qemu-system-x86", "libvirt-daemon-system", "xfsprogs"} <= worker
    assert "squid" not in worker and "mariadb-server" not in worker  # service-only packages stay off workers
    # OpenNebula from the mirror: the front-end's packages on svc1 only, the node's everywhere.
    one = ["opennebula", "opennebula-tools", "opennebula-gate", "opennebula-flow", "opennebula-node-kvm"]
    assert _installed(bare_lab, "svc1", one) == set(one)
    assert _installed(bare_lab, "wn1", one) == {"opennebula-node-kvm"}
    # oned answers, on MariaDB (what it says it opened, and the database it writes).
    site = load(bare_lab.inventory)
    server = client.connect(client.endpoint_for(site), client.frontend_session(site, bare_lab.inventory))
    assert str(server.system.version()).startswith("6.10.")
    assert server.system.config().DB.BACKEND == "mysql"
    tables = bare_lab.ssh("svc1", "mysql -N opennebula -e 'show tables'", check=True).stdout.split()
    assert {"host_pool", "vm_pool", "system_attributes"} <= set(tables)
    again = run(bare_lab.inventory)
    assert again.ok and again.changed == 0, (again.summary(), again.changed_tasks())


def test_the_package_lists_name_every_package_the_roles_install() -> None:
    """A role package missing from packages.txt would be absent from the bare image's repository."""
    import yaml

    listed = set(image.package_list())
    roles = Path(__file__).resolve().parents[2] / "roles"
    for vars_file in roles.glob("*/vars/Debian.yml"):
        for key, value in (yaml.safe_load(vars_file.read_text()) or {}).items():
            if key.endswith("_packages") and isinstance(value, list):
                assert set(value) <= listed, (vars_file, set(value) - listed)
