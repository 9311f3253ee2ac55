"""API-object logic with the real pyone client against the local XML-RPC test double (fake_oned.py):
OpenNebula's daemon cannot be had on our machines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from fake_oned import HOST_DISABLED, HOST_MONITORED, FakeOned

from b2ct.errors import B2ctError
from b2ct.inventory import load
from b2ct.opennebula import belle2, drain, plan, upgrade
from b2ct.opennebula.client import connect
from b2ct.opennebula.reconcile import Reconciler
from b2ct.opennebula.template import parse
from tests.conftest import EXAMPLE, run_cli

CHANGING = ("allocate", "update", "add", "rename", "status", "migrate", "instantiate", "action")


def _plan(inv: Path = EXAMPLE) -> plan.CloudPlan:
    return plan.build(load(inv))


def _apply(fake: FakeOned, check: bool = False, inv: Path = EXAMPLE) -> list[str]:
    one = connect(fake.url, fake.session)  # type: ignore[attr-defined]
    return [str(c) for c in Reconciler(one, fake.url, check=check).apply(_plan(inv))]  # type: ignore[attr-defined]


def _by_name(fake: FakeOned, pool: str, name: str):  # type: ignore[no-untyped-def]
    return next(o for o in fake.pools[pool].values() if o.name == name)


def test_apply_creates_the_site_objects(fake: FakeOned) -> None:
    changes = _apply(fake)
    assert "cluster services: create" in changes and "cluster workers: create" in changes
    clusters = {c.name: c for c in fake.pools["cluster"].values()}
    services, workers = clusters["services"], clusters["workers"]
    # Services: shared system datastore whose id matches the GlusterFS mount .../datastores/100.
    sysds = _by_name(fake, "datastore", "services-system")
    assert (
        sysds.id == 100 and sysds.template["TM_MAD"] == "shared" and sysds.attrs["clusters"] == [services.id]
    )
    local = _by_name(fake, "datastore", "workers-local")
    assert (
        local.template["TM_MAD"] == "ssh"
        and local.attrs["type"] == 1
        and local.attrs["clusters"] == [workers.id]
    )
    # The image datastore mounted at .../datastores/1 is oned's default one, adopted and renamed.
    images = fake.pools["datastore"][1]
    assert images.name == "images" and images.template["TM_MAD"] == "qcow2"
    assert sorted(images.attrs["clusters"]) == sorted([services.id, workers.id])
    private, public = _by_name(fake, "vn", "private"), _by_name(fake, "vn", "public")
    assert private.template["BRIDGE"] == "br-private" and public.template["BRIDGE"] == "br-public"
    assert private.attrs["ars"] == [{"TYPE": "IP4", "IP": "10.10.0.128", "SIZE": "127"}]
    assert sorted(private.attrs["clusters"]) == sorted([services.id, workers.id])
    assert public.attrs["clusters"] == [services.id]
    hosts = {h.name: h.attrs["cluster"] for h in fake.pools["host"].values()}
    assert hosts == {
        "one-fe": services.id,
        "svc1": services.id,
        "svc2": services.id,
        "wn01": workers.id,
        "wn02": workers.id,
        "wn03": workers.id,
        "wn04": workers.id,
    }


def test_second_apply_makes_no_change_call(fake: FakeOned) -> None:
    _apply(fake)
    before = len(fake.calls)
    assert _apply(fake) == []
    assert [m for m, _ in fake.calls[before:] if any(w in m for w in CHANGING)] == []


def test_check_mode_changes_nothing(fake: FakeOned) -> None:
    changes = _apply(fake, check=True)
    assert len(changes) > 10
    assert [m for m, _ in fake.calls if any(w in m for w in CHANGING)] == []
    assert list(fake.pools["host"]) == []


def test_drift_is_corrected_and_only_it(fake: FakeOned) -> None:
    _apply(fake)
    vn = _by_name(fake, "vn", "private")
    vn.template["BRIDGE"] = "br-wrong"
    wn = _by_name(fake, "host", "wn01")
    fake.m_cluster_addhost(0, wn.id)  # someone moved a worker to the default cluster
    before = len(fake.calls)
    changes = _apply(fake)
    assert changes == ["vnet private: update (BRIDGE)", "host wn01: join workers (was in default)"]
    assert (
        vn.template["BRIDGE"] == "br-private"
        and wn.attrs["cluster"] == _by_name(fake, "cluster", "workers").id
    )
    changed = [m for m, _ in fake.calls[before:] if any(w in m for w in CHANGING)]
    assert changed == ["one.vn.update", "one.cluster.addhost"]


def test_auth_failure_is_one_clear_error(fake: FakeOned) -> None:
    one = connect(fake.url, "oneadmin:wrong")  # type: ignore[attr-defined]
    with pytest.raises(B2ctError) as err:
        Reconciler(one, fake.url).apply(_plan())  # type: ignore[attr-defined]
    assert "refused the credentials" in err.value.oneline()


def test_name_clash_and_not_found_are_reported(fake: FakeOned) -> None:
    from b2ct.opennebula.client import api_errors

    one = connect(fake.url, fake.session)  # type: ignore[attr-defined]
    one.cluster.allocate("services")
    with pytest.raises(B2ctError) as err, api_errors(fake.url, "creating cluster services"):  # type: ignore[attr-defined]
        one.cluster.allocate("services")
    assert "NAME is already taken by CLUSTER 100" in err.value.oneline()
    with pytest.raises(B2ctError) as err2:
        drain.host_id(connect(fake.url, fake.session), fake.url, "nosuch")  # type: ignore[attr-defined]
    assert "host nosuch is not registered" in err2.value.oneline()


def test_version_mismatch_is_refused(fake: FakeOned) -> None:
    fake.version = "7.0.1"
    with pytest.raises(B2ctError, match=r"answers version 7\.0\.1, the inventory says 6\.10"):
        _apply(fake)


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
def test_bad_input_refused_before_any_call(
    fake: FakeOned, tmp_path: Path, changes: dict, message: str
) -> None:
    inv = _inventory(tmp_path, **changes)
    auth = tmp_path / "auth"
    auth.write_text(fake.session)
    r = run_cli("cloud", "apply", "-i", inv, "--auth", auth, "--endpoint", fake.url)  # type: ignore[attr-defined]
    assert r.rc == 2, r.err
    lines = [x for x in r.err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("b2ct: error: ") and message in lines[0], r.err
    assert fake.calls == []


def test_worker_without_ephemeral_disk_has_no_local_datastore(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv)
    hosts = inv / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("          b2ct_ephemeral_disk: nvme0n1\n", ""))
    with pytest.raises(B2ctError, match="worker wn04 has no b2ct_ephemeral_disk"):
        _plan(inv)


def test_cli_apply_end_to_end(fake: FakeOned, tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.write_text(fake.session)
    args = ("cloud", "apply", "-i", EXAMPLE, "--auth", auth, "--endpoint", fake.url)  # type: ignore[attr-defined]
    first, second = run_cli(*args), run_cli(*args)
    assert first.rc == 0 and first.out.strip() == "18 change(s)", first.err
    assert second.rc == 0 and second.out.strip() == "0 change(s)", second.err


# ------------------------------------------------------------------------------------------- Belle II


def test_belle2_template_rendering() -> None:
    site = load(EXAMPLE)
    t = belle2.vm_template(site, workers_cluster_id=101)
    assert (t["CPU"], t["VCPU"], t["MEMORY"]) == ("1", "1", "2048")
    assert t["NIC"]["NETWORK"] == "private" and t["DISK"]["IMAGE"] == "belle2-alma9"
    assert t["CONTEXT"]["SSH_PUBLIC_KEY"] == site.ssh_keys[0]
    import base64

    script = base64.b64decode(t["CONTEXT"]["START_SCRIPT_BASE64"]).decode()
    # squid on every service host's private address, load-balanced for CVMFS
    assert 'CVMFS_HTTP_PROXY="http://10.10.0.10:3128|http://10.10.0.11:3128|http://10.10.0.12:3128"' in script
    assert "CVMFS_REPOSITORIES=belle.cern.ch,grid.cern.ch" in script
    from b2ct.opennebula.template import render

    assert parse(render(t))["CONTEXT"]["SSH_PUBLIC_KEY"] == site.ssh_keys[0]  # survives quoting


def test_belle2_register_and_smoke(fake: FakeOned) -> None:
    _apply(fake)
    one = connect(fake.url, fake.session)  # type: ignore[attr-defined]
    site = load(EXAMPLE)
    assert belle2.register(one, fake.url, site) == [  # type: ignore[attr-defined]
        "image belle2-alma9: create",
        "template belle2-worker: create",
    ]
    assert belle2.register(one, fake.url, site) == []  # type: ignore[attr-defined]
    image = _by_name(fake, "image", "belle2-alma9")
    assert image.attrs["ds"] == 1 and image.template["FORMAT"] == "qcow2"
    vmid, seconds, host = belle2.smoke(one, fake.url, "belle2-worker", timeout=10)  # type: ignore[attr-defined]
    assert fake.boot_delay <= seconds < 5
    assert host.startswith("wn0")  # SCHED_REQUIREMENTS keeps it in the workers cluster
    assert fake.pools["vm"][vmid].attrs["state"] == 6  # terminated after the measurement


def test_smoke_times_out_when_no_host_can_run_it(fake: FakeOned) -> None:
    _apply(fake)
    one = connect(fake.url, fake.session)  # type: ignore[attr-defined]
    belle2.register(one, fake.url, load(EXAMPLE))  # type: ignore[attr-defined]
    for h in fake.pools["host"].values():
        fake.m_host_status(h.id, 1)
    with pytest.raises(B2ctError, match="not RUNNING after 1s"):
        belle2.smoke(one, fake.url, "belle2-worker", timeout=1)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------- drain/upgrade


def test_drain_live_migrates_service_vms(fake: FakeOned) -> None:
    _apply(fake)
    one = connect(fake.url, fake.session)  # type: ignore[attr-defined]
    vm = fake.seed_vm("svc1")
    drain.drain(one, fake.url, "svc1", live_migrate=True, timeout=5, poll=0.05)  # type: ignore[attr-defined]
    host = fake.pools["host"][fake.pools["vm"][vm].attrs["host"]]
    assert host.name in ("one-fe", "svc2") and _by_name(fake, "host", "svc1").attrs["state"] == HOST_DISABLED
    assert next(a for m, a in fake.calls if m == "one.vm.migrate")[2] is True  # live


def test_drain_waits_then_gives_up(fake: FakeOned) -> None:
    _apply(fake)
    one = connect(fake.url, fake.session)  # type: ignore[attr-defined]
    fake.seed_vm("wn01")  # never ends
    with pytest.raises(B2ctError, match="still runs VM"):
        drain.drain(one, fake.url, "wn01", live_migrate=False, timeout=0.5, poll=0.05)  # type: ignore[attr-defined]


def test_upgrade_batches_and_stop(fake: FakeOned) -> None:
    _apply(fake)
    one = connect(fake.url, fake.session)  # type: ignore[attr-defined]
    site = load(EXAMPLE)
    seen: list[list[str]] = []

    def batch(_inv: Path, hosts: list[str], _ev: dict) -> upgrade.BatchOutcome:
        seen.append(hosts)
        assert all(_by_name(fake, "host", h).attrs["state"] == HOST_DISABLED for h in hosts)
        if "svc1" in hosts:
            return upgrade.BatchOutcome(False, "svc1", "task 'Check - libvirt answers': failed")
        return upgrade.BatchOutcome(True)

    with pytest.raises(B2ctError) as err:
        upgrade.run(site, EXAMPLE, one, fake.url, serial=2, run_batch=batch, poll=0.05)  # type: ignore[attr-defined]
    assert seen == [["wn01", "wn02"], ["wn03", "wn04"], ["svc1", "svc2"]]
    msg = err.value.oneline()
    assert "upgrade stopped at host svc1 (batch 3/4)" in msg and "not upgraded: one-fe, svc2" in msg
    states = {h.name: h.attrs["state"] for h in fake.pools["host"].values()}
    assert states["one-fe"] == HOST_MONITORED and states["wn04"] == HOST_MONITORED
    assert states["svc1"] == HOST_DISABLED
