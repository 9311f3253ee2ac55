"""GlusterFS sites as they are met, on lab hosts, nothing mocked (glusterfs 10.3).

- A volume made by hand, the way a site admin does: peer probed and bricks named by host name
  (`svc1:/bricks/...`), while the inventory maps svc1 to its address. b2ct takes it as the inventory's.
- A service host reinstalled (root filesystem reset to the base image: new glusterd, new UUID; brick
  disk kept), files written meanwhile: the next deploy brings it back into its pool, and heal makes both
  bricks equal. Then the same for the host that probes and creates (the manager).
- The bricks of a deleted volume: refused with the ways out before anything changes; the way out works.

The tests run in order on one lab (each builds on the site the previous one left).
"""

from __future__ import annotations

from collections.abc import Iterator

import gluster_failover as fo
import pytest

from tests.conftest import wait_for
from tests.lab_plugin import make_lab

pytestmark = [pytest.mark.slow, pytest.mark.lab]

VOL = "one-system"
MOUNT = "/var/lib/one/datastores/100"
BRICK = "/bricks/one-system/brick"
IMAGES_MOUNT = "/var/lib/one/datastores/1"
IMAGES_BRICK = "/bricks/one-images/brick"
DIR = "reinstall"


def _deploy(lab, **kwargs):
    from b2ct.deploy import runner

    return runner.run(lab.inventory, playbook="gluster.yml", keep_logs=False, **kwargs)


def _errors(result) -> str:
    return " | ".join(h.error for h in result.hosts.values() if h.error)


@pytest.fixture(scope="module")
def site() -> Iterator[object]:
    with make_lab(services=2, workers=0) as lab:
        for host in ("svc1", "svc2"):
            disk = lab.host(host)["disk"]
            fo.sh(lab, host, f"mkfs.xfs -q -i size=512 {disk} && mkdir -p /bricks && mount {disk} /bricks && "
                  f"mkdir -p {BRICK} && systemctl start glusterd")  # fmt: skip
        fo.sh(lab, "svc1", "gluster peer probe svc2")
        in_pool = "Peer in Cluster (Connected)"
        wait_for("svc2 in svc1's pool", lambda: in_pool in fo.sh(lab, "svc1", "gluster peer status"), 60)
        create = f"volume create {VOL} replica 2 svc1:{BRICK} svc2:{BRICK}"
        fo.sh(lab, "svc1", f"gluster --mode=script {create} && gluster --mode=script volume start {VOL}")
        yield lab


def test_volume_made_by_hand_with_host_names_is_the_inventorys(site):
    lab = site
    first = _deploy(lab)
    # before: "volume one-system has brick(s) not in the inventory: svc1:/bricks/…, svc2:/bricks/…"
    assert first.ok, _errors(first)
    info = fo.sh(lab, "svc1", f"gluster volume info {VOL}")
    assert f"Brick1: svc1:{BRICK}" in info and f"Brick2: svc2:{BRICK}" in info  # as made, nothing added
    assert "Number of Bricks: 1 x 2 = 2" in info and "features.shard: on" in info  # the virt group set
    assert "one-images" in fo.sh(lab, "svc1", "gluster volume list").split()  # the other one created
    again = _deploy(lab)
    assert again.ok and again.changed == 0, again.changed_tasks()


def _write(lab, host: str, tag: str, count: int = 40) -> None:
    fo.sh(lab, host, f"mkdir -p {MOUNT}/{DIR} && for i in $(seq 1 {count}); do "
          f"head -c $((4096 + i * 997)) /dev/urandom > {MOUNT}/{DIR}/f-{tag}-$i; done")  # fmt: skip


def _pending(gl, lab, host: str) -> dict[str, int | None]:
    return gl.parse_heal_info(fo.sh(lab, host, f"gluster --xml volume heal {VOL} info"))


@pytest.mark.parametrize("host", ["svc2", "svc1"])
def test_reinstalled_service_host_comes_back_healed(site, gl, host):
    lab = site
    other = "svc1" if host == "svc2" else "svc2"
    _write(lab, other, f"before-{host}")
    lab.reinstall(host)  # new root: new glusterd, no peers, no volumes, no fstab; the brick disk kept
    assert lab.ssh(host, "test -e /var/lib/glusterd/glusterd.info").returncode != 0
    _write(lab, other, f"while-{host}-away")
    assert any(n for n in _pending(gl, lab, other).values()), "nothing to heal: the test would prove nothing"

    back = _deploy(lab)
    # before: the manager waited for the peer until it gave up ("peers not in 'Peer in Cluster' state"), or,
    # the manager being the reinstalled one, "peer probe: failed: … already part of another cluster"
    assert back.ok, _errors(back)
    assert any("Take back this host's place" in t for t in back.changed_tasks(host)), back.changed_tasks()
    assert not any("Take back" in t for t in back.changed_tasks(other))
    for h in ("svc1", "svc2"):
        assert "State: Peer in Cluster (Connected)" in fo.sh(lab, h, "gluster peer status")

    def healed() -> bool:
        pending = _pending(gl, lab, other)
        return len(pending) == 2 and all(n == 0 for n in pending.values())

    wait_for("heal entries to reach 0", healed, 300, 3)
    expected = fo.tree_checksums(lab, other, f"{MOUNT}/{DIR}")
    assert len(expected) == 80 * (2 if host == "svc1" else 1)
    assert fo.tree_checksums(lab, host, f"{BRICK}/{DIR}") == expected
    assert fo.tree_checksums(lab, other, f"{BRICK}/{DIR}") == expected
    assert fo.tree_checksums(lab, host, f"{MOUNT}/{DIR}") == expected  # mounted again on the new root
    again = _deploy(lab)
    assert again.ok and again.changed == 0, again.changed_tasks()


def test_bricks_of_a_deleted_volume_are_refused_before_any_change(site):
    lab = site
    for h in ("svc1", "svc2"):
        fo.sh(lab, h, f"umount {IMAGES_MOUNT}")
    fo.sh(
        lab,
        "svc1",
        "gluster --mode=script volume stop one-images && gluster --mode=script volume delete one-images",
    )
    refused = _deploy(lab)
    assert not refused.ok and refused.changed == 0, refused.changed_tasks()
    errors = _errors(refused)  # as `b2ct deploy` shows them (cut at 400 characters)
    assert (
        f"bricks svc1:{IMAGES_BRICK}, svc2:{IMAGES_BRICK}: the identity of a deleted or earlier volume"
        in errors
    )
    assert "docs/gluster.md, 'Reinstalling a service host'" in errors
    assert "one-images" not in fo.sh(lab, "svc1", "gluster volume list").split()
    for h in ("svc1", "svc2"):  # the way out the message gives, if the data is not needed
        fo.sh(lab, h, f"setfattr -x trusted.glusterfs.volume-id {IMAGES_BRICK}; setfattr -x trusted.gfid "
              f"{IMAGES_BRICK}; rm -rf {IMAGES_BRICK}/.glusterfs")  # fmt: skip
    after = _deploy(lab)
    assert after.ok, _errors(after)
    assert "one-images" in fo.sh(lab, "svc1", "gluster volume list").split()
