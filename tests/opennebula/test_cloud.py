"""The real cloud on lab hosts, nothing mocked: OpenNebula 6.10.5 installed by the roles from the lab's
signed mirror, oned on MariaDB, every host a QEMU-emulated KVM node (no KVM here), the cloud objects made by
`b2ct cloud apply`, VMs RUNNING in each cluster.

One lab for the whole session (the ``cloud`` fixture, tests/lab_plugin.py). Tests that disturb it (a
drifted object, a stopped host) put it back; the front-end's restart runs last.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from b2ct.deploy import run
from b2ct.errors import B2ctError
from b2ct.opennebula import belle2, drain, plan, upgrade
from b2ct.opennebula.template import parse
from tests.check.tests_check_util import run_check
from tests.conftest import assert_one_line_error, run_cli, wait_for
from tests.lab_plugin import HOST_MONITORED, NEW_NODE, Cloud

pytestmark = [pytest.mark.slow, pytest.mark.lab]

HOST_DISABLED = 4
SERVICES, WORKERS = ("svc1", "svc2"), ("wn1", "wn2")


def _cli_env(tmp_path: Path) -> dict[str, str]:
    # No local credentials: the CLI must read oneadmin's from the front-end, as on a fresh admin machine.
    env = {k: v for k, v in os.environ.items() if k != "ONE_AUTH"}
    env["HOME"] = str(tmp_path)
    return env


def _live_vms(cloud: Cloud) -> list:  # type: ignore[type-arg]
    """Every VM not DONE (filter -2: all users; state -1: any but DONE)."""
    return list(cloud.one().vmpool.info(-2, -1, -1, -1).VM)


def _vm(cloud: Cloud, vmid: int):  # type: ignore[no-untyped-def]
    return cloud.one().vm.info(vmid)


# --------------------------------------------------------------------------------------- front-end


def test_oned_runs_on_mariadb(cloud: Cloud) -> None:
    """oned says which database it opened, and the hosts it serves are rows in MariaDB, not SQLite."""
    db = cloud.one().system.config().DB
    assert (db.BACKEND, db.DB_NAME, db.SERVER) == ("mysql", "opennebula", "localhost")
    rows = cloud.lab.ssh(
        "svc1", "mysql -N opennebula -e 'select name from host_pool order by name'", check=True
    )
    assert rows.stdout.split() == sorted(cloud.hosts)
    assert cloud.lab.ssh("svc1", "ls /var/lib/one/one.db").returncode != 0
    log = cloud.lab.ssh("svc1", "grep -m1 'DB connections' /var/log/one/oned.log", check=True).stdout
    assert "Set up 25 DB connections" in log


def test_frontend_services_enabled_and_running(cloud: Cloud) -> None:
    units = ["opennebula", "opennebula-scheduler", "opennebula-hem", "opennebula-ssh-agent",
             "opennebula-gate", "opennebula-flow", "mariadb"]  # fmt: skip
    r = cloud.lab.ssh(
        "svc1", f"systemctl is-enabled {' '.join(units)}; systemctl is-active {' '.join(units)}"
    )
    assert r.stdout.split() == ["enabled"] * len(units) + ["active"] * len(units), r.stdout
    procs = cloud.lab.ssh("svc1", "ps -u oneadmin -o args=", check=True).stdout
    for needle in ("/usr/bin/oned", "/usr/bin/mm_sched", "onemonitord", "onehem-server.rb"):
        assert needle in procs, (needle, procs)
    # Sunstone and FireEdge are not in the repository: the lab's inventory leaves them out.
    pkgs = cloud.lab.ssh("svc1", "dpkg-query -W -f '${Package}\\n' 'opennebula*'").stdout.split()
    assert "opennebula-gate" in pkgs and not {"opennebula-sunstone", "opennebula-fireedge"} & set(pkgs)


def test_packages_came_from_the_signed_mirror(cloud: Cloud) -> None:
    """The roles' own repository task: upstream's layout, checked against the mirror's key."""
    mirror = cloud.site.opennebula.mirror
    for host in ("svc1", "wn1"):
        src = cloud.lab.ssh(host, "cat /etc/apt/sources.list.d/opennebula.sources", check=True).stdout
        assert f"URIs: {mirror}/Debian/12" in src and "Suites: stable" in src and "Signed-By:" in src
        policy = cloud.lab.ssh(host, "apt-cache policy opennebula-common", check=True).stdout
        assert "Installed: 6.10.5-1" in policy and f"{mirror}/Debian/12 stable/opennebula" in policy, policy
    # apt verifies the mirror's signature with the key the role installed.
    r = cloud.lab.ssh("wn1", "apt-get update 2>&1")
    assert r.returncode == 0 and not re.search(r"NO_PUBKEY|GPG error|not signed", r.stdout), r.stdout


def test_credentials_and_database_password_are_private(cloud: Cloud) -> None:
    st = cloud.lab.ssh("svc1", "stat -c '%a %U' /var/lib/one/.one/one_auth /etc/one/b2ct-db.password").stdout
    assert st.split() == ["600", "oneadmin", "600", "root"]
    pw = cloud.lab.ssh("svc1", "cat /etc/one/b2ct-db.password", check=True).stdout.strip()
    assert len(pw) == 32
    # The generated password really opens the database as the oned user, and oned.conf carries it.
    r = cloud.lab.ssh(
        "svc1", f"mysql -u oneadmin -p{pw} -h localhost opennebula -N -e 'select current_user()'"
    )
    assert r.returncode == 0 and r.stdout.strip() == "oneadmin@localhost", r.stderr
    conf = parse(cloud.lab.ssh("svc1", "cat /etc/one/oned.conf", check=True).stdout)
    assert (
        conf["DB"]["BACKEND"] == "mysql" and conf["DB"]["PASSWD"] == pw and not isinstance(conf["DB"], list)
    )
    assert cloud.lab.ssh("svc1", "stat -c %a /etc/one/oned.conf").stdout.strip() == "640"
    dump = cloud.lab.ssh("svc1", "systemctl start b2ct-one-db-backup.service && ls /var/lib/one/backups/db")
    assert dump.returncode == 0 and re.search(r"opennebula-\d{8}T\d{6}\.sql\.gz", dump.stdout), dump.stderr


# --------------------------------------------------------------------------------------- nodes and trust


def test_node_libvirt_settings(cloud: Cloud) -> None:
    for host in cloud.hosts:
        qemu = parse(
            "\n".join(
                line
                for line in cloud.lab.ssh(host, "cat /etc/libvirt/qemu.conf").stdout.splitlines()
                if re.match(r"^(user|group|dynamic_ownership)\s*=", line)
            )
        )
        assert qemu == {"USER": "oneadmin", "GROUP": "oneadmin", "DYNAMIC_OWNERSHIP": "0"}, host
        assert "libvirt" in cloud.lab.ssh(host, "id -nG oneadmin", check=True).stdout.split()
        r = cloud.lab.ssh(host, "su -s /bin/sh oneadmin -c 'virsh -c qemu:///system uri'")
        assert r.returncode == 0 and "qemu:///system" in r.stdout, (host, r.stderr)


def test_oneadmin_ssh_trust_both_ways(cloud: Cloud) -> None:
    """As oned's drivers do it: from the front-end to each node by the name oned knows, with host keys
    checked; and from a node to another node and back to the front-end with the front-end's key
    forwarded by its ssh agent (live migration runs on the source node)."""
    ssh = "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=5"
    agent = "SSH_AUTH_SOCK=/var/run/one/ssh-agent.sock"
    for host in cloud.hosts:
        r = cloud.oneadmin(f"{ssh} {host} hostname")
        assert r.returncode == 0 and r.stdout.strip() == host, (host, r.stderr)
    # Forwarded as oned's SSH_FWD does (scripts_common.sh): a shared master connection carries no agent.
    fwd = f"{ssh} -o ControlMaster=no -o ControlPath=none -A"
    r = cloud.oneadmin(f"{agent} {fwd} wn1 {fwd} svc2 {ssh} svc1 hostname")
    assert r.returncode == 0 and r.stdout.strip() == "svc1", r.stderr
    # Only the front-end's key opens a node: the node's own key pair (if any) is not trusted elsewhere.
    keys = (
        cloud.lab.ssh("wn2", "cat /var/lib/one/.ssh/authorized_keys", check=True).stdout.strip().splitlines()
    )
    fe_key = cloud.lab.ssh("svc1", "cat /var/lib/one/.ssh/id_ed25519.pub", check=True).stdout.split()[:2]
    assert [k.split()[:2] for k in keys] == [fe_key]


# --------------------------------------------------------------------------------------- cloud objects


def test_check_mode_planned_what_apply_then_did(cloud: Cloud) -> None:
    assert (
        "cluster services: create" in cloud.planned and "host wn2: create (cluster workers)" in cloud.planned
    )
    assert "datastore images: rename (was default, id 1)" in cloud.applied
    assert set(cloud.applied) <= set(cloud.planned) | {c for c in cloud.applied if ": join " in c}


def test_cloud_objects_as_designed(cloud: Cloud) -> None:
    one = cloud.one()
    clusters = {c.NAME: c.ID for c in one.clusterpool.info().CLUSTER}
    ds = {d.NAME: d for d in one.datastorepool.info().DATASTORE}
    system, local, images = ds["services-system"], ds["workers-local"], ds["images"]
    # Gluster-backed shared system datastore for services (live migration), local ssh one for workers.
    assert (system.ID, system.TM_MAD, list(system.CLUSTERS.ID)) == (100, "shared", [clusters["services"]])
    assert (local.TM_MAD, list(local.CLUSTERS.ID)) == ("ssh", [clusters["workers"]])
    assert (images.ID, images.DS_MAD, images.TM_MAD) == (1, "fs", "shared")
    assert {clusters["services"], clusters["workers"]} <= set(images.CLUSTERS.ID)
    for host in SERVICES:
        for path in ("/var/lib/one/datastores/100", "/var/lib/one/datastores/1"):
            found = cloud.lab.ssh(host, f"findmnt -n -o TARGET,FSTYPE -T {path}").stdout.split()
            assert found == [path, "fuse.glusterfs"], (host, found)
    for host in WORKERS:  # datastore <id> is a directory of the local disk mounted at the datastores' root
        local_fs = cloud.lab.ssh(
            host, "findmnt -n -o TARGET,FSTYPE -T /var/lib/one/datastores"
        ).stdout.split()
        assert local_fs in (["/var/lib/one/datastores", "xfs"], ["/var/lib/one/datastores", "ext4"]), host
        images_fs = cloud.lab.ssh(host, "findmnt -n -o FSTYPE -T /var/lib/one/datastores/1").stdout.strip()
        assert images_fs == "fuse.glusterfs", (host, images_fs)
    vnets = {v.NAME: v for v in one.vnpool.info(-2, -1, -1).VNET}
    assert (vnets["private"].BRIDGE, vnets["public"].BRIDGE) == ("br-private", "br-public")
    assert set(vnets["private"].CLUSTERS.ID) == {clusters["services"], clusters["workers"]}
    hosts = {h.NAME: h for h in one.hostpool.info().HOST}
    for name, h in hosts.items():
        want = "services" if name.startswith("svc") else "workers"
        assert [want, "qemu", "qemu", HOST_MONITORED] == [h.CLUSTER, h.IM_MAD, h.VM_MAD, h.STATE], name


def test_second_apply_changes_nothing(cloud: Cloud, tmp_path: Path) -> None:
    r = run_cli("cloud", "apply", "-i", cloud.inventory, env=_cli_env(tmp_path), timeout=300)
    assert r.rc == 0 and r.out.strip().endswith("0 change(s)"), (r.out, r.err)


def test_drift_is_corrected_and_only_it(cloud: Cloud, tmp_path: Path) -> None:
    one = cloud.one()
    wn1 = next(h for h in one.hostpool.info().HOST if h.NAME == "wn1")
    private = next(v for v in one.vnpool.info(-2, -1, -1).VNET if v.NAME == "private")
    one.cluster.addhost(0, wn1.ID)  # someone moved a worker to the default cluster
    one.vn.update(private.ID, 'DNS = "192.0.2.53"', 1)  # and changed a vnet's DNS
    r = run_cli("cloud", "apply", "-i", cloud.inventory, env=_cli_env(tmp_path), timeout=300)
    assert r.rc == 0, r.err
    assert "host wn1: join workers (was in default)" in r.err and "vnet private: update (DNS)" in r.err, r.err
    assert r.out.strip().endswith("2 change(s)"), r.out
    again = run_cli("cloud", "apply", "-i", cloud.inventory, env=_cli_env(tmp_path), timeout=300)
    assert again.out.strip().endswith("0 change(s)"), again.err


def test_wrong_credentials_are_one_clear_error(cloud: Cloud, tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.write_text("oneadmin:wrong\n")
    r = run_cli("cloud", "apply", "-i", cloud.inventory, "--auth", auth, env=_cli_env(tmp_path))
    assert_one_line_error(r, "refused the credentials", cloud.endpoint)


def test_version_other_than_the_running_one_is_refused(cloud: Cloud, tmp_path: Path) -> None:
    inv = tmp_path / "inventory"
    shutil.copytree(cloud.inventory, inv)
    all_yml = inv / "group_vars" / "all.yml"
    doc = yaml.safe_load(all_yml.read_text())
    doc["b2ct_opennebula_version"] = "7.0"
    all_yml.write_text(yaml.safe_dump(doc))
    r = run_cli("cloud", "apply", "-i", inv, env=_cli_env(tmp_path), timeout=300)
    assert_one_line_error(r, "OpenNebula answers version 6.10.5, the inventory says 7.0")


# --------------------------------------------------------------------------------------- VMs


def test_smoke_vm_runs_in_each_cluster(cloud: Cloud, tmp_path: Path) -> None:
    r = run_cli("vm", "smoke", "-i", cloud.inventory, env=_cli_env(tmp_path), timeout=600)
    assert r.rc == 0, (r.out, r.err)
    lines = re.findall(r"VM (\d+) RUNNING on (\S+) \(cluster (\w+)\) after ([\d.]+)s", r.out)
    assert [(host[:-1], cluster) for _, host, cluster, _ in lines] == [("svc", "services"), ("wn", "workers")]
    # Terminated afterwards (no --keep): nothing of the smoke test is left (DONE leaves the pool's view).
    ids = {int(vmid) for vmid, *_ in lines}
    wait_for("the smoke VMs to be gone", lambda: not ids & {int(v.ID) for v in _live_vms(cloud)}, 120)


def test_context_carries_the_squid_list(cloud: Cloud, tmp_path: Path) -> None:
    """What the guest reads: the proxy list in the VM's context, both as oned keeps it and in the
    context CD-ROM image the node attaches."""
    one = cloud.one()
    (vm,) = belle2.smoke(one, cloud.endpoint, "belle2-worker", clusters=(plan.WORKERS,), keep=True)
    try:
        proxies = belle2.squid_proxies(cloud.site)
        assert proxies == "|".join(f"http://{cloud.lab.ip(h)}:3128" for h in SERVICES)
        context = dict(one.vm.info(vm.id).TEMPLATE)["CONTEXT"]
        assert context["CVMFS_HTTP_PROXY"] == proxies
        assert f'CVMFS_HTTP_PROXY="{proxies}"' in base64.b64decode(context["START_SCRIPT_BASE64"]).decode()
        ds = next(d.ID for d in one.datastorepool.info().DATASTORE if d.NAME == "workers-local")
        iso = cloud.lab.ssh(vm.host, f"base64 -w0 /var/lib/one/datastores/{ds}/{vm.id}/disk.1", check=True)
        path = tmp_path / f"context-{vm.id}.iso"
        path.write_bytes(base64.b64decode(iso.stdout))
        subprocess.run(
            ["xorriso", "-osirrox", "on", "-indev", path, "-extract", "/context.sh", tmp_path / "context.sh"],
            capture_output=True, check=True,
        )  # fmt: skip
        sh = (tmp_path / "context.sh").read_text()
        assert f"CVMFS_HTTP_PROXY='{proxies}'" in sh, sh
    finally:
        cloud.terminate(vm.id)


GiB = 1 << 30
VOLATILE = {
    "DISK": [
        {"IMAGE": "b2ct-lab-guest", "IMAGE_UNAME": "oneadmin"},
        {"TYPE": "fs", "SIZE": "1024", "FORMAT": "raw"},
        {"TYPE": "swap", "SIZE": "512"},
    ]
}


def _disk_files(cloud: Cloud, host: str, path: str) -> dict[str, tuple[int, int]]:
    """disk.N -> (size, allocated bytes) of a VM's directory on a host."""
    out = cloud.lab.ssh(host, f"stat -c '%n %s %b %B' {path}/disk.*", check=True).stdout
    files = {}
    for line in out.splitlines():
        name, size, blocks, unit = line.split()
        files[Path(name).name] = (int(size), int(blocks) * int(unit))
    return files


def test_volatile_and_swap_disks_get_real_blocks_on_workers_and_stay_sparse_on_gluster(cloud: Cloud) -> None:
    """OpenNebula's own mkimage/mkswap, through the wrapper oned now calls as qemu-img: on a worker's local
    disk the 1 GiB volatile disk and the swap disk have no holes; on the services' Gluster datastore they are
    sparse, and both VMs run."""
    one = cloud.one()
    vms = belle2.smoke(one, cloud.endpoint, "belle2-worker", keep=True, extra=VOLATILE)
    try:
        by_cluster = {v.cluster: v for v in vms}
        ds = {d.NAME: int(d.ID) for d in one.datastorepool.info().DATASTORE}
        wn = by_cluster[plan.WORKERS]
        local = _disk_files(cloud, wn.host, f"/var/lib/one/datastores/{ds['workers-local']}/{wn.id}")
        for disk, want in (("disk.1", GiB), ("disk.2", GiB // 2)):  # volatile fs, swap
            size, allocated = local[disk]
            assert size == want and allocated >= want, (disk, local)
        svc = by_cluster[plan.SERVICES]
        shared = _disk_files(cloud, svc.host, f"/var/lib/one/datastores/{ds['services-system']}/{svc.id}")
        for disk, want in (("disk.1", GiB), ("disk.2", GiB // 2)):
            size, allocated = shared[disk]
            assert size == want and allocated < want // 4, (disk, shared)
        # oned does not log the output of a transfer action that succeeds, so the wrapper's own line is
        # not in the VM log: the full allocation above is the proof (plain `qemu-img create` is sparse).
        # the allocation itself: well under a second for 1 GiB on the worker's disk
        timing = (
            "import os, subprocess, time; d = '/var/lib/one/datastores/alloc-timing'; t = time.monotonic(); "
            "subprocess.run(['/usr/local/sbin/b2ct-qemu-img', 'create', '-f', 'raw', d, '1024M'], "
            "check=True, capture_output=True); t = time.monotonic() - t; b = os.stat(d).st_blocks * 512; "
            "os.unlink(d); "
            "print(b, t)"
        )
        allocated, seconds = cloud.lab.ssh(wn.host, f'python3 -c "{timing}"', check=True).stdout.split()
        assert int(allocated) >= GiB and float(seconds) < 1.0, (allocated, seconds)
    finally:
        for v in vms:
            cloud.terminate(v.id)


def test_smoke_that_cannot_be_scheduled_times_out_with_the_reason(cloud: Cloud) -> None:
    """The default cluster has no host: the VM stays PENDING; smoke says so and cleans up."""
    one = cloud.one()
    with pytest.raises(B2ctError) as err:
        belle2.smoke(one, cloud.endpoint, "belle2-worker", clusters=("default",), timeout=20)
    assert "not RUNNING after 20s (state PENDING" in err.value.message, err.value.message
    # The PENDING VM was terminated: a VM never deployed ends at once.
    left = [v for v in _live_vms(cloud) if str(v.NAME).startswith("b2ct-smoke-default")]
    assert left == []


# --------------------------------------------------------------------------------------- operations


def _host_id(cloud: Cloud, name: str) -> int:
    return next(int(h.ID) for h in cloud.one().hostpool.info().HOST if name == h.NAME)


def test_drain_live_migrates_service_vms(cloud: Cloud) -> None:
    """A service host drained: its VM moves, running, to the other service host (shared Gluster
    datastore, `virsh migrate --live` between the nodes over oneadmin's forwarded key)."""
    one = cloud.one()
    (vm,) = belle2.smoke(one, cloud.endpoint, "belle2-worker", clusters=(plan.SERVICES,), keep=True)
    try:
        drain.drain(one, cloud.endpoint, vm.host, live_migrate=True, timeout=300, poll=0.5)
        moved = _vm(cloud, vm.id)
        other = next(h for h in SERVICES if h != vm.host)
        assert (3, 3, other) == (moved.STATE, moved.LCM_STATE, moved.HISTORY_RECORDS.HISTORY[-1].HOSTNAME)
        assert cloud.host_states()[vm.host] == HOST_DISABLED
        # oned writes the driver's step lines as it reads them, possibly after the state it reports
        wait_for(
            f"the driver's migrate logged in VM {vm.id}'s log",
            lambda: (
                "Successfully execute virtualization driver operation: migrate"
                in cloud.lab.ssh("svc1", f"cat /var/log/one/{vm.id}.log").stdout
            ),
            30,
        )
    finally:
        drain.enable(one, cloud.endpoint, vm.host)
        cloud.terminate(vm.id)
    cloud.wait_monitored()


def test_drain_of_a_worker_waits_for_its_vms_then_gives_up(cloud: Cloud) -> None:
    one = cloud.one()
    (vm,) = belle2.smoke(one, cloud.endpoint, "belle2-worker", clusters=(plan.WORKERS,), keep=True)
    try:
        with pytest.raises(B2ctError, match=rf"host {vm.host} still runs VM\(s\) {vm.id} after 3s"):
            drain.drain(one, cloud.endpoint, vm.host, live_migrate=False, timeout=3, poll=0.5)
        assert cloud.host_states()[vm.host] == HOST_DISABLED  # left disabled for the operator
    finally:
        drain.enable(one, cloud.endpoint, vm.host)
        cloud.terminate(vm.id)
    cloud.wait_monitored()


def test_upgrade_goes_in_batches_and_stops_at_the_first_failure(cloud: Cloud) -> None:
    """Order and stop rule on the real oned, with the Ansible step replaced by a recorder: workers
    first, front-end last, each batch disabled while it is upgraded."""
    one = cloud.one()
    seen: list[list[str]] = []

    def batch(_inv: Path, hosts: list[str], _ev: dict) -> upgrade.BatchOutcome:
        seen.append(hosts)
        states = cloud.host_states()
        assert all(states[h] == HOST_DISABLED for h in hosts), states
        if "svc2" in hosts:
            return upgrade.BatchOutcome(False, "svc2", "task 'Check - libvirt answers': failed")
        return upgrade.BatchOutcome(True)

    try:
        with pytest.raises(B2ctError) as err:
            upgrade.run(cloud.site, cloud.inventory, one, cloud.endpoint, serial=2, run_batch=batch, poll=0.5)
        assert seen == [["wn1", "wn2"], ["svc2", "svc1"]]
        msg = err.value.oneline()
        assert "upgrade stopped at host svc2 (batch 2/2)" in msg and "not upgraded: svc1" in msg, msg
        states = cloud.host_states()
        assert states["svc2"] == HOST_DISABLED and states["wn1"] != HOST_DISABLED, states
    finally:
        for name, state in cloud.host_states().items():
            if state == HOST_DISABLED:
                one.host.status(_host_id(cloud, name), 0)
    cloud.wait_monitored()


def test_rolling_upgrade_stops_at_failed_host(cloud: Cloud, tmp_path: Path) -> None:
    """wn1 made to fail (its hypervisor does not come back after the upgrade): the roll stops there, wn1
    stays disabled, and Ansible never runs on the hosts after it."""
    cloud.lab.ssh("wn1", "systemctl mask --now libvirtd", check=True)
    events = tmp_path / "events.jsonl"
    limits: list[list[str]] = []

    def batch(inventory: Path, hosts: list[str], extravars: dict) -> upgrade.BatchOutcome:
        limits.append(hosts)  # the real Ansible run; only recorded, to prove who it touched
        return upgrade.ansible_batch(inventory, hosts, extravars)

    one = cloud.one()
    try:
        with pytest.raises(B2ctError) as err:
            upgrade.run(
                cloud.site, cloud.inventory, one, cloud.endpoint, serial=1, events_path=events,
                extravars={"b2ct_upgrade_update_cache": False}, run_batch=batch, poll=0.5,
            )  # fmt: skip
        msg = err.value.oneline()
        assert "upgrade stopped at host wn1 (batch 1/4)" in msg and "libvirtd is not running" in msg, msg
        assert "not upgraded: wn2, svc2, svc1" in msg, msg
        assert limits == [["wn1"]]  # Ansible never ran on the others
        phases = [f"{e['host']} {e['phase']}:{e['status']}" for e in map(json.loads, events.open())]
        assert phases == ["wn1 drain:start", "wn1 drain:done", "wn1 upgrade:start", "wn1 upgrade:failed"]
        states = cloud.host_states()
        assert states["wn1"] == HOST_DISABLED and {states[h] for h in ("wn2", "svc1", "svc2")} == {
            HOST_MONITORED
        }
    finally:
        cloud.lab.ssh("wn1", "systemctl unmask libvirtd && systemctl start libvirtd.socket libvirtd")
        drain.enable(one, cloud.endpoint, "wn1")
        cloud.wait_monitored()


def test_upgrade_refuses_an_opennebula_version_change(cloud: Cloud, tmp_path: Path) -> None:
    inv = tmp_path / "inventory"
    shutil.copytree(cloud.inventory, inv)
    all_yml = inv / "group_vars" / "all.yml"
    doc = yaml.safe_load(all_yml.read_text())
    doc["b2ct_opennebula_version"] = "7.0"
    all_yml.write_text(yaml.safe_dump(doc))
    r = run_cli("upgrade", "-i", inv, env=_cli_env(tmp_path), timeout=300)
    assert_one_line_error(r, "OpenNebula 6.10.5 runs", "b2ct upgrade does not change OpenNebula's version")
    assert set(cloud.host_states().values()) == {HOST_MONITORED}  # nothing was disabled


def test_rolling_upgrade_with_vms_running(cloud: Cloud, tmp_path: Path) -> None:
    """`b2ct upgrade --serial 1` with a VM on each host of the roll: each host drained (a service VM
    live-migrated, a worker's rescheduled), upgraded with every role run again, checked, re-enabled; no
    VM lost, each RUNNING at the end, the order of operations printed. The roll is limited to the hosts
    running the VMs (one of each kind: the whole lab takes ~15 min on this 2-core machine); the full roll
    was run by hand, see docs/limits-opennebula.md."""
    one = cloud.one()
    vms = belle2.smoke(one, cloud.endpoint, "belle2-worker", keep=True)
    rolled = [v.host for v in sorted(vms, key=lambda v: v.cluster == plan.SERVICES)]  # worker, then service
    events = tmp_path / "events.jsonl"
    try:
        r = run_cli(
            "upgrade", "-i", cloud.inventory, "--serial", "1", "--events", events, "--no-smoke",
            "--limit", ",".join(rolled), "-e", "b2ct_upgrade_update_cache=false",
            env=_cli_env(tmp_path), timeout=3000,
        )  # fmt: skip
        assert r.rc == 0, (r.out[-3000:], r.err[-3000:])
        assert f"upgraded: {', '.join(rolled)}" in r.out
        order = [f"{e['host']} {e['phase']}:{e['status']}" for e in map(json.loads, events.open())]
        per_host = ["drain:start", "drain:done", "upgrade:start", "upgrade:done", "check:start", "check:done",
                    "enable:done"]  # fmt: skip
        assert order == [f"{h} {p}" for h in rolled for p in per_host], order
        for line in (f"{rolled[0]}: drain start", f"{rolled[-1]}: enable done"):
            assert line in r.err, r.err[-3000:]
        for v in vms:  # nothing lost: the same VMs, RUNNING, wherever the roll moved them
            vm = _vm(cloud, v.id)
            assert (vm.STATE, vm.LCM_STATE) == (3, 3), (v, vm.STATE, vm.LCM_STATE)
        assert "live-migrating VM" in r.err and "rescheduling VM" in r.err, r.err[-3000:]
        assert set(cloud.host_states().values()) == {HOST_MONITORED}
    finally:
        for v in vms:
            cloud.terminate(v.id)


FAILOVER_BOUND = 480  # s: monitord's detection (~3 min here) + the hook's pause (60 s) + fence + redeploy


def _boots_on_disk(cloud: Cloud, vmid: int, ds: int) -> int:
    """The lab guest's boot counter, read from its disk on the shared datastore (through svc1's mount)."""
    disk = f"/var/lib/one/datastores/{ds}/{vmid}/disk.0"
    # qemu-img dd copies up to `count` blocks from the start, skipped ones included: sector 1 is count=2.
    read = f"qemu-img dd -U -f qcow2 -O raw if={disk} of=/tmp/b2ct-boots bs=512 skip=1 count=2"
    out = cloud.lab.ssh("svc1", f"{read} && od -An -tu2 -N2 /tmp/b2ct-boots", check=True).stdout
    return int(out.split()[0])


def test_a_service_host_dies_and_its_vm_comes_back_on_the_other(cloud: Cloud) -> None:
    """The Naples lesson: a services host powered off with a VM running; OpenNebula's host-failure hook
    (registered by `cloud apply`) fences it and reschedules the VM, which boots on the other service host
    from its disk on the Gluster replica, with what it had written; `b2ct check` shows the dead host;
    when it returns, Gluster heals to 0 entries."""
    one = cloud.one()
    hooks = {h.NAME: dict(h.TEMPLATE) for h in one.hookpool.info(-2, -1, -1).HOOK}
    assert hooks[plan.HOST_FAILURE_HOOK]["ARGUMENTS"] == "$TEMPLATE -m -p 1"
    ds = next(int(d.ID) for d in one.datastorepool.info().DATASTORE if d.NAME == "services-system")
    drain.disable(one, cloud.endpoint, "svc1")  # the VM must not land on the front-end, which runs oned
    try:
        (vm,) = belle2.smoke(one, cloud.endpoint, "belle2-worker", clusters=(plan.SERVICES,), keep=True)
    finally:
        drain.enable(one, cloud.endpoint, "svc1")
    try:
        assert vm.host == "svc2"
        wait_for("the guest's first boot on its disk", lambda: _boots_on_disk(cloud, vm.id, ds) == 1, 120)
        cloud.lab.power_off("svc2", hard=True)
        started = time.monotonic()
        rc, report = run_check(cloud.inventory, "--no-smoke")
        dead = next(h for h in report["hosts"] if h["name"] == "svc2")
        assert rc == 1 and not dead["reachable"] and "unreachable" in dead["checks"][0]["reason"], dead

        def running_elsewhere() -> bool:
            v = _vm(cloud, vm.id)
            return (v.STATE, v.LCM_STATE) == (3, 3) and v.HISTORY_RECORDS.HISTORY[-1].HOSTNAME == "svc1"

        wait_for("the VM RUNNING on svc1", running_elsewhere, FAILOVER_BOUND, 2)
        seconds = time.monotonic() - started
        print(f"VM {vm.id} RUNNING again on svc1 {seconds:.0f}s after svc2 lost power")
        log = cloud.lab.ssh("svc1", "cat /var/log/one/host_error.log", check=True).stdout
        assert "Fencing success" in log and f"resched {vm.id}" in log, log[-2000:]
        wait_for("the guest's second boot", lambda: _boots_on_disk(cloud, vm.id, ds) == 2, 120)
    finally:
        cloud.lab.power_on("svc2")
        cloud.terminate(vm.id)
    cloud.oneadmin("onehost forceupdate svc2")
    cloud.wait_monitored(timeout=300)

    def healed() -> bool:
        # As an admin does once the host is back: start an index heal rather than wait for the self-heal
        # daemon's own crawl (every 600 s, cluster.heal-timeout). It fails while a brick is still down.
        cloud.lab.ssh("svc1", "gluster volume heal one-system")
        out = cloud.lab.ssh("svc1", "gluster volume heal one-system info summary").stdout
        counts = [int(n) for n in re.findall(r"Total Number of entries: (\d+)", out)]
        return bool(counts) and not any(counts)

    try:
        wait_for("Gluster's heal entries to reach 0", healed, 300, 5)
    except AssertionError as e:
        state = "gluster volume status one-system; gluster volume heal one-system info"
        status = cloud.lab.ssh("svc1", state)
        raise AssertionError(f"{e}\n{status.stdout}{status.stderr}") from None


def test_adding_a_node_with_a_limited_deploy(cloud: Cloud, tmp_path: Path) -> None:
    """How an admin adds a host: into the inventory, `b2ct deploy --limit NEWNODE`, `b2ct cloud apply`. The
    limited run reads the front-end's key over ssh and teaches the front-end the new host key (it is not in
    the run); the node is MONITORED and a VM runs on it."""
    full = cloud.lab.inventory  # the lab's own inventory: the site's plus the new node
    r = run_cli("deploy", "-i", full, "--limit", NEW_NODE, env=_cli_env(tmp_path), timeout=1800)
    assert r.rc == 0, (r.out[-3000:], r.err[-3000:])
    known = cloud.lab.ssh("svc1", "cat /var/lib/one/.ssh/known_hosts", check=True).stdout
    assert re.search(rf"^{NEW_NODE},{re.escape(cloud.lab.ip(NEW_NODE))} ssh-ed25519 ", known, re.MULTILINE)
    r = run_cli("cloud", "apply", "-i", full, env=_cli_env(tmp_path), timeout=300)
    assert r.rc == 0 and f"host {NEW_NODE}: create (cluster workers)" in r.err, (r.out, r.err)
    cloud.hosts.append(NEW_NODE)
    cloud.wait_monitored()
    one = cloud.one()
    (vm,) = belle2.smoke(
        one, cloud.endpoint, "belle2-worker", clusters=(plan.WORKERS,), keep=True,
        extra={"SCHED_REQUIREMENTS": f'HOSTNAME = "{NEW_NODE}"'},
    )  # fmt: skip
    cloud.terminate(vm.id)
    assert vm.host == NEW_NODE


def test_limited_deploy_refuses_without_a_frontend_key(cloud: Cloud, tmp_path: Path) -> None:
    """A node deployed before its front-end ever was: one clear failure, not a silent success."""
    inv = tmp_path / "inventory"
    shutil.copytree(cloud.inventory, inv)
    with (inv / "group_vars" / "all.yml").open("a") as f:
        f.write("opennebula_node_frontend_pubkey_path: /var/lib/one/.ssh/no-such-key.pub\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        result = run(inv, limit="wn2", tags="opennebula_node_trust", keep_logs=False)
    assert result.failed_hosts == ["wn2"], result.summary()
    assert "Deploy the front-end first" in result.hosts["wn2"].error, result.hosts["wn2"].error


def test_frontend_comes_back_after_a_restart(cloud: Cloud) -> None:
    """Services enabled for boot: the front-end powered off and on again serves the same cloud."""
    before = cloud.host_states()
    cloud.lab.power_off("svc1")
    cloud.lab.power_on("svc1")
    wait_for("oned after the restart", lambda: cloud.lab.ssh("svc1", "systemctl is-active opennebula")
             .stdout.strip() == "active", 180)  # fmt: skip
    units = "opennebula opennebula-scheduler opennebula-hem mariadb opennebula-gate opennebula-flow"
    assert cloud.lab.ssh("svc1", f"systemctl is-active {units}").stdout.split() == ["active"] * 6
    assert str(cloud.one().system.version()).startswith("6.10.")
    assert set(cloud.host_states()) == set(before)
    cloud.wait_monitored(timeout=300)
