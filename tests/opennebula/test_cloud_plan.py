"""The cloud plan from the inventory, checked before any call to oned; the Belle II template as rendered.

Everything oned itself does (the objects, idempotence, drift, VMs, drain, upgrade) is tested on the real
OpenNebula in tests/opennebula/test_cloud.py.
"""

from __future__ import annotations

import base64
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from b2ct.errors import B2ctError
from b2ct.inventory import load
from b2ct.opennebula import belle2, plan
from b2ct.opennebula.template import parse, render
from tests.conftest import EXAMPLE, run_cli


def _plan(inv: Path = EXAMPLE) -> plan.CloudPlan:
    return plan.build(load(inv))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_example_site_plan() -> None:
    p = _plan()
    ds = {d.name: (d.template["TM_MAD"], d.expected_id, d.mount) for d in p.datastores}
    assert ds == {
        "services-system": ("shared", 100, "/var/lib/one/datastores/100"),
        "workers-local": ("ssh", None, None),
        "images": ("shared", 1, "/var/lib/one/datastores/1"),
    }
    assert [v.name for v in p.vnets] == ["private", "public"]
    assert {h.name: (h.cluster, h.im_mad, h.vm_mad) for h in p.hosts}["wn01"] == ("workers", "kvm", "kvm")


def test_hypervisor_setting_picks_the_drivers(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, b2ct_opennebula_hypervisor="qemu")
    assert {(h.im_mad, h.vm_mad) for h in _plan(inv).hosts} == {("qemu", "qemu")}


def _inventory(tmp_path: Path, **changes: object) -> Path:
    inv = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv)
    f = inv / "group_vars" / "all.yml"
    data = yaml.safe_load(f.read_text())
    data.update(changes)
    f.write_text(yaml.safe_dump(data))
    return inv


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"b2ct_opennebula_version": "6.4"}, "unknown OpenNebula version '6.4'"),
        (
            {"b2ct_opennebula_vnets": {"private": {"bridge": "br-nope"}}},
            "b2ct_opennebula_vnets.private: bridge 'br-nope' is no inventory bridge",
        ),
        (
            {
                "b2ct_gluster_volumes": [
                    {
                        "name": "one-system",
                        "replica": 2,
                        "mount": "/srv/one-system",
                        "bricks": ["svc1:/b/s", "svc2:/b/s"],
                    },
                    {
                        "name": "one-images",
                        "replica": 2,
                        "mount": "/var/lib/one/datastores/1",
                        "bricks": ["svc1:/b/i", "svc2:/b/i"],
                    },
                ]
            },
            "no host has the datastore's directory mounted",
        ),
    ],
)
def test_bad_input_refused_before_any_call(tmp_path: Path, changes: dict, message: str) -> None:
    # Nothing listens at the endpoint: had b2ct called it first, the error would be "cannot reach".
    inv = _inventory(tmp_path, **changes)
    auth = tmp_path / "auth"
    auth.write_text("oneadmin:secret\n")
    endpoint = f"http://127.0.0.1:{_closed_port()}/RPC2"
    r = run_cli("cloud", "apply", "-i", inv, "--auth", auth, "--endpoint", endpoint)
    assert r.rc == 2, r.err
    lines = [x for x in r.err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("b2ct: error: ") and message in lines[0], r.err


def test_worker_without_ephemeral_disk_has_no_local_datastore(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv)
    hosts = inv / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("          b2ct_ephemeral_disk: nvme0n1\n", ""))
    with pytest.raises(B2ctError, match="worker wn04 has no b2ct_ephemeral_disk"):
        _plan(inv)


# ------------------------------------------------------------------------------------------- Belle II


def test_belle2_template_rendering() -> None:
    site = load(EXAMPLE)
    t = belle2.vm_template(site, workers_cluster_id=101)
    assert (t["CPU"], t["VCPU"], t["MEMORY"]) == ("1", "1", "2048")
    assert t["NIC"]["NETWORK"] == "private" and t["DISK"]["IMAGE"] == "belle2-alma9"
    assert t["CONTEXT"]["SSH_PUBLIC_KEY"] == site.ssh_keys[0]
    script = base64.b64decode(t["CONTEXT"]["START_SCRIPT_BASE64"]).decode()
    # squid on every service host's private address, load-balanced for CVMFS
    assert 'CVMFS_HTTP_PROXY="http://10.10.0.10:3128|http://10.10.0.11:3128|http://10.10.0.12:3128"' in script
    assert "CVMFS_REPOSITORIES=belle.cern.ch,grid.cern.ch" in script
    assert (
        t["CONTEXT"]["CVMFS_HTTP_PROXY"]
        == "http://10.10.0.10:3128|http://10.10.0.11:3128|http://10.10.0.12:3128"
    )
    assert parse(render(t))["CONTEXT"]["SSH_PUBLIC_KEY"] == site.ssh_keys[0]  # survives quoting


def test_upgrade_limit_takes_the_sites_own_groups_in_rolling_order(site_copy: Path) -> None:
    """--limit names hosts and groups as Ansible reads the inventory, the site's own groups too (here a
    rack), as check --limit, deploy --limit and image stage --to do; the rolling order stays."""
    from b2ct.opennebula import upgrade

    (site_copy / "rack2.yml").write_text(
        "all:\n  children:\n    rack2:\n      hosts:\n        svc2:\n        wn03:\n        one-fe:\n"
    )
    site = load(site_copy)
    assert [h.name for h in upgrade.order(site, "rack2", site_copy)] == ["wn03", "svc2", "one-fe"]
    assert [h.name for h in upgrade.order(site, "wn01,frontend", site_copy)] == ["wn01", "one-fe"]
    with pytest.raises(B2ctError, match="--limit: no host or group named 'rack9'") as err:
        upgrade.order(site, "rack9", site_copy)
    assert "rack2" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("state", "lcm", "want"),
    [
        (3, 2, "ACTIVE/BOOT"),
        (3, 36, "ACTIVE/BOOT_FAILURE"),
        (1, 0, "PENDING"),
        (6, 0, "DONE"),
        (3, 99, "ACTIVE/99"),
    ],
)
def test_vm_states_named_as_onevm_shows_them(state: int, lcm: int, want: str) -> None:
    """Errors name a VM's state as `onevm show` does, not by vm.xsd's numbers."""
    from types import SimpleNamespace

    assert belle2.state_name(SimpleNamespace(STATE=state, LCM_STATE=lcm)) == want
