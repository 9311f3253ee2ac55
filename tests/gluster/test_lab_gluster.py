"""GlusterFS on lab hosts, nothing mocked: deploy, idempotence, root-filesystem refusal, a server failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import gluster_failover as fo
import pytest
import yaml

from tests.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
VOL = "one-system"
MOUNT = "/var/lib/one/datastores/100"
BRICK = "/bricks/one-system/brick"


def _deploy(inventory: Path, **kwargs):
    from b2ct.deploy import runner

    return runner.run(inventory, playbook="gluster.yml", keep_logs=False, **kwargs)


def _playbook(inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "playbooks/gluster.yml", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=900, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def deployed(lab):
    # Check mode first, on hosts where glusterd has never run: it must predict, not fail.
    dry = _deploy(lab.inventory, check=True)
    assert dry.ok and dry.changed > 0, [h.error for h in dry.hosts.values()]
    assert lab.ssh("svc1", "test -e /bricks/one-system").returncode != 0  # and change nothing
    first = _deploy(lab.inventory)
    assert first.ok, (first.failed_hosts, [h.error for h in first.hosts.values()])
    second = _deploy(lab.inventory)
    return lab, first, second


def test_deploy_creates_started_replica_2_volume(deployed):
    lab, first, second = deployed
    assert first.changed > 0
    assert second.ok and second.changed == 0, second.changed_tasks()
    info = fo.sh(lab, "svc1", f"gluster volume info {VOL}")
    assert "Type: Replicate" in info
    assert "Number of Bricks: 1 x 2 = 2" in info
    assert "Status: Started" in info
    assert f"{lab.ip('svc1')}:{BRICK}" in info and f"{lab.ip('svc2')}:{BRICK}" in info
    assert "cluster.self-heal-daemon: on" in info and "features.shard: on" in info  # virt group applied


def test_check_mode_on_a_deployed_site_changes_nothing(deployed):
    lab, _, _ = deployed
    check = _deploy(lab.inventory, check=True)
    assert check.ok and check.changed == 0, check.changed_tasks()


def test_bricks_on_xfs_and_volume_mounted_on_service_hosts(deployed):
    lab, _, _ = deployed
    for host in ("svc1", "svc2"):
        opts = fo.sh(lab, host, "findmnt -n -o FSTYPE,OPTIONS /bricks").split()
        assert opts[0] == "xfs" and "inode64" in opts[1] and "noatime" in opts[1], opts
        assert "UUID=" in fo.sh(lab, host, "grep -w /bricks /etc/fstab")  # not a disk name that can move
        assert "isize=512" in fo.sh(lab, host, "xfs_info /bricks")
        assert fo.sh(lab, host, f"findmnt -n -o FSTYPE {MOUNT}").strip() == "fuse.glusterfs"
    token = f"written on svc1 at {time.time()}"
    fo.sh(lab, "svc1", f"echo '{token}' > {MOUNT}/hello.txt")
    assert fo.sh(lab, "svc2", f"cat {MOUNT}/hello.txt").strip() == token
    for host in ("svc1", "svc2"):  # replicated: the file is on both bricks
        assert fo.sh(lab, host, f"cat {BRICK}/hello.txt").strip() == token
    for worker in ("wn1", "wn2"):  # workers use local storage only
        assert lab.ssh(worker, f"findmnt {MOUNT}").returncode != 0


def _inventory_with_root_volume(lab, tmp_path: Path) -> Path:
    inv = tmp_path / "inventory"
    shutil.copytree(lab.inventory, inv)
    path = inv / "group_vars" / "all.yml"
    data = yaml.safe_load(path.read_text())
    data["b2ct_gluster_volumes"].append(
        {"name": "rootvol", "replica": 2, "bricks": ["svc1:/srv/rootvol/brick", "svc2:/srv/rootvol/brick"]}
    )
    path.write_text(yaml.safe_dump(data))
    return inv


def test_brick_on_root_filesystem_refused_before_any_change(deployed, tmp_path):
    lab, _, _ = deployed
    inv = _inventory_with_root_volume(lab, tmp_path)
    refused = _playbook(inv)
    assert refused.returncode != 0
    assert "brick /srv/rootvol/brick is on the root filesystem" in refused.stdout, refused.stdout[-3000:]
    assert "changed=0" in refused.stdout and "changed=1" not in refused.stdout
    for host in ("svc1", "svc2"):
        assert lab.ssh(host, "test -e /srv/rootvol").returncode != 0
    assert "rootvol" not in fo.sh(lab, "svc1", "gluster volume list").split()

    # Forced, the same inventory builds the volume (gluster's own "force"), and stays idempotent.
    try:
        forced = _deploy(inv, extravars={"b2ct_gluster_allow_root_bricks": True})
        assert forced.ok, [h.error for h in forced.hosts.values()]
        assert "rootvol" in fo.sh(lab, "svc1", "gluster volume list").split()
        again = _deploy(inv, extravars={"b2ct_gluster_allow_root_bricks": True})
        assert again.ok and again.changed == 0, again.changed_tasks()
    finally:
        for host in ("svc1", "svc2"):
            lab.ssh(host, "umount -l /var/lib/one/datastores/rootvol; sed -i '\\#:/rootvol #d' /etc/fstab")
        lab.ssh("svc1", "gluster --mode=script volume stop rootvol force")
        lab.ssh("svc1", "gluster --mode=script volume delete rootvol")
        for host in ("svc1", "svc2"):
            lab.ssh(host, "rm -rf /srv/rootvol /var/lib/one/datastores/rootvol")


def test_server_failure_during_writes_loses_nothing(deployed, gl):
    """One server's brick and glusterd die mid-stream; writes go on; after restart heal reaches 0."""
    lab, _, _ = deployed
    count = 300
    target = f"{MOUNT}/failtest"
    lab.ssh("svc2", f"rm -rf {target}")
    fo.start_writer(lab, "svc2", target, count)
    down = False
    try:
        wait_for("the writer to get going", lambda: fo.written(lab, "svc2") >= 40, 60)
        procs = gl.parse_volume_status(fo.sh(lab, "svc1", f"gluster --xml volume status {VOL}"))
        (victim,) = [p for p in procs if p.brick == f"{lab.ip('svc1')}:{BRICK}"]
        assert victim.online and victim.pid > 0
        fo.sh(lab, "svc1", f"kill -9 {victim.pid} && systemctl stop glusterd")
        down = True
        at_failure = fo.written(lab, "svc2")
        status = wait_for("the writer to finish", lambda: fo.writer_status(lab, "svc2"), 180)
        assert status == "ok", status
        assert fo.written(lab, "svc2") == count and at_failure < count  # files were written while down
        pending = gl.parse_heal_info(fo.sh(lab, "svc2", f"gluster --xml volume heal {VOL} info"))
        assert pending[f"{lab.ip('svc1')}:{BRICK}"] is None  # the brick really was down
        assert (pending[f"{lab.ip('svc2')}:{BRICK}"] or 0) > 0  # and the survivor has entries to heal
    finally:
        if down:
            fo.sh(lab, "svc1", "systemctl start glusterd")
    wait_for("glusterd", lambda: lab.ssh("svc1", "gluster --xml volume status").returncode == 0, 60)
    fo.sh(lab, "svc1", f"gluster volume start {VOL} force")  # restarts the dead brick if glusterd did not
    # The heal trigger is refused ("Commit failed") until every self-heal daemon has reconnected: retry.
    trigger = f"gluster volume heal {VOL}"
    wait_for("the heal to launch", lambda: lab.ssh("svc1", trigger).returncode == 0, 90, 3)

    start = time.monotonic()

    def healed() -> bool:
        info = gl.parse_heal_info(fo.sh(lab, "svc1", f"gluster --xml volume heal {VOL} info"))
        return len(info) == 2 and all(n == 0 for n in info.values())

    wait_for("heal entries to reach 0", healed, 300, 2)
    print(f"healed in {time.monotonic() - start:.1f}s")

    expected = fo.manifest(lab, "svc2")
    assert len(expected) == count
    assert fo.tree_checksums(lab, "svc1", f"{BRICK}/failtest") == expected
    assert fo.tree_checksums(lab, "svc2", f"{BRICK}/failtest") == expected
    assert fo.tree_checksums(lab, "svc1", target) == expected
    assert fo.tree_checksums(lab, "svc2", target) == expected
