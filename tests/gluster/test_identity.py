"""Who the hosts and their bricks say they are, decided before anything changes; no gluster needed.

Facts recorded on lab hosts (glusterfs 10.3, Debian 12) by the role's b2ct_gluster_facts module, in the
states a site meets: deployed; a service host reinstalled with its brick disk kept (before and after its
new glusterd first ran); the manager reinstalled; a volume deleted; an older volume of the same name; a
host with a pool of its own. Lab: svc1 10.213.0.11, svc2 10.213.0.12, svc3 10.213.0.13.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from tests.gluster.conftest import ROOT, _load

FIXTURES = Path(__file__).parent / "fixtures"
ADDRESSES = {"svc1": "10.213.0.11", "svc2": "10.213.0.12", "svc3": "10.213.0.13"}
VOLUMES = [
    {
        "name": "one-system",
        "replica": 2,
        "bricks": ["svc1:/bricks/one-system/brick", "svc2:/bricks/one-system/brick"],
    },
    {
        "name": "one-images",
        "replica": 2,
        "bricks": ["svc1:/bricks/one-images/brick", "svc2:/bricks/one-images/brick"],
    },
]
SVC1_UUID = "10b920ba-a86c-45d0-8b5d-8004e3fb9b03"
SVC2_UUID = "5e39fe47-1818-4482-bd53-36116adb5505"
ONE_IMAGES_ID = "e60f2a1b-4be7-48db-b170-ad8a61328853"


@pytest.fixture(scope="session")
def ident() -> ModuleType:
    return _load("b2ct_gluster_identity", ROOT / "plugins/module_utils/gluster_identity.py")


def facts(scenario: str) -> dict[str, dict]:
    return {h: json.loads((FIXTURES / "identity" / scenario / f"{h}.json").read_text()) for h in ADDRESSES}


def check(ident, scenario: str, volumes=VOLUMES, manager: str = "svc1"):
    return ident.check_identities(volumes, ADDRESSES, facts(scenario), manager)


def test_deployed_site_is_consistent(ident):
    found = check(ident, "deployed")
    assert found.problems == [] and found.rejoin == {}


@pytest.mark.parametrize("scenario", ["reinstalled-svc2", "reinstalled-svc2-started"])
def test_reinstalled_host_with_its_brick_disk_rejoins_under_its_old_uuid(ident, scenario):
    # Before this fix: the manager waited for svc2 to be "Peer in Cluster" until it gave up (the pool knows
    # svc2 as SVC2_UUID, its new glusterd is another node); its bricks carry the pool's volume ids.
    f = facts(scenario)
    assert f["svc2"]["peers"] == [] and f["svc2"]["volumes"] == {} and f["svc2"]["uuid"] != SVC2_UUID
    found = check(ident, scenario)
    assert found.problems == []
    assert list(found.rejoin) == ["svc2"]
    back = found.rejoin["svc2"]
    assert back.uuid == SVC2_UUID
    assert back.peers == ((SVC1_UUID, ("10.213.0.11",)),)
    assert back.volumes == ("one-images", "one-system")
    assert back.op_version == "100000"


def test_reinstalled_manager_rejoins_too(ident):
    # Before: the manager's new glusterd probed svc2, "peer probe: failed: 10.213.0.12 is either already
    # part of another cluster or having volumes configured".
    found = check(ident, "reinstalled-svc1")
    assert found.problems == []
    assert found.rejoin["svc1"].uuid == SVC1_UUID
    assert found.rejoin["svc1"].peers == ((SVC2_UUID, ("10.213.0.12",)),)


def test_bricks_of_a_deleted_volume_are_refused_with_the_ways_out(ident):
    found = check(ident, "deleted-volume")
    assert found.rejoin == {}
    (problem,) = found.problems  # both bricks, one finding
    assert problem.startswith(
        "bricks svc1:/bricks/one-images/brick, svc2:/bricks/one-images/brick: the identity of a deleted or "
        f"earlier volume: volume id {ONE_IMAGES_ID}, which no glusterd of this site knows"
    )
    assert "already part of a volume" in problem
    # the way to the documentation comes early: deploy summaries cut long messages
    assert problem.index("Reinstalling a service host") < 400
    assert "restore /var/lib/glusterd" in problem
    assert "setfattr -x trusted.glusterfs.volume-id PATH; setfattr -x trusted.gfid PATH" in problem


def test_bricks_of_an_older_volume_of_the_same_name_are_refused(ident):
    found = check(ident, "older-volume")
    today = facts("older-volume")["svc1"]["volumes"]["one-images"]["id"]
    (problem,) = found.problems
    assert f"the identity of an older volume one-images (today's one-images has id {today})" in problem


def test_a_brick_of_another_volume_is_refused(ident):
    volumes = [*VOLUMES[:1], {"name": "one-files", "replica": 2, "bricks": VOLUMES[1]["bricks"]}]
    (problem,) = check(ident, "deployed", volumes).problems
    assert problem.startswith(
        "bricks svc1:/bricks/one-images/brick, svc2:/bricks/one-images/brick: the identity of volume "
        f"one-images (id {ONE_IMAGES_ID}), not of one-files"
    )


def test_a_brick_host_in_another_pool_is_refused(ident):
    extra = {"name": "one-extra", "replica": 1, "bricks": ["svc3:/bricks/one-extra/brick"]}
    found = check(ident, "other-pool", [*VOLUMES, extra])
    assert found.rejoin == {}
    (problem,) = found.problems
    assert problem.startswith(
        "glusterd on svc3 (volumes: scratch) belongs to another trusted pool than on svc1, svc2"
    )
    assert "already part of another cluster" in problem and "rm -rf /var/lib/glusterd/peers/*" in problem
    # svc3 is not a brick host in the site's own inventory: its pool is in nobody's way
    assert check(ident, "other-pool").problems == []


def test_new_manager_and_an_existing_pool_say_how_to_join(ident):
    # svc1's glusterd is new and its bricks are blank (a new disk): nothing identifies it to the pool...
    f = facts("reinstalled-svc1")
    f["svc1"]["bricks"] = {
        p: {"exists": False, "volume_id": "", "glusterfs_dir": False} for p in f["svc1"]["bricks"]
    }
    f["svc2"]["peers"] = []  # ...and the pool has forgotten it
    for v in f["svc2"]["volumes"].values():
        v["bricks"] = [b for b in v["bricks"] if not b["brick"].startswith("10.213.0.11:")]
    found = ident.check_identities(VOLUMES, ADDRESSES, f, "svc1")
    (problem,) = found.problems
    assert "glusterd on svc1 (glusterfs_manager_host) is new" in problem
    assert "on svc2: gluster peer probe 10.213.0.11" in problem


def test_blank_brick_of_a_listed_volume_says_reset_brick(ident):
    f = facts("reinstalled-svc2")
    f["svc2"]["bricks"]["/bricks/one-system/brick"] = {
        "exists": True,
        "volume_id": "",
        "glusterfs_dir": False,
    }
    found = ident.check_identities(VOLUMES, ADDRESSES, f, "svc1")
    (problem,) = found.problems
    assert problem.startswith(
        "brick svc2:/bricks/one-system/brick: in volume one-system, but without a volume identity"
    )
    assert "gluster volume reset-brick one-system HOST:PATH start" in problem


def test_pool_knowing_hosts_by_name_and_inventory_by_address(ident):
    # A pool made by hand with host names, the inventory using addresses: the names each host resolved
    # (facts["resolved"]) tie them together, as glusterd does.
    fqdn = {"10.213.0.11:": "svc1.site.example:", "10.213.0.12:": "svc2.site.example:"}
    f = facts("reinstalled-svc2")
    for v in f["svc1"]["volumes"].values():
        for b in v["bricks"]:
            for ip, name in fqdn.items():
                b["brick"] = b["brick"].replace(ip, name)
    f["svc1"]["peers"] = [{"uuid": SVC2_UUID, "hostnames": ["svc2.site.example"]}]
    f["svc1"]["resolved"]["svc2.site.example"] = ["10.213.0.12"]
    found = ident.check_identities(VOLUMES, ADDRESSES, f, "svc1")
    assert found.problems == [] and found.rejoin["svc2"].uuid == SVC2_UUID
    # without the resolution nothing says that svc2.site.example is 10.213.0.12: svc2 is no peer the pool
    # knows, and the pool's bricks at its paths are not its own
    del f["svc1"]["resolved"]["svc2.site.example"]
    found = ident.check_identities(VOLUMES, ADDRESSES, f, "svc1")
    assert found.rejoin == {} and len(found.problems) == 2
    assert found.problems[0].startswith(
        "brick svc2:/bricks/one-system/brick: the identity of volume one-system, which has "
        "svc2.site.example:/bricks/one-system/brick: names that do not resolve to svc2's address 10.213.0.12"
    )


# ---------------------------------------------------------------------------------------------- reading


def test_read_store_of_recorded_glusterd_files(ident):
    store = ident.read_store(str(FIXTURES / "store-deployed-svc1"))
    recorded = facts("deployed")["svc1"]
    for key in ("uuid", "op_version", "peers", "volumes"):
        assert store[key] == recorded[key], key
    assert [b["brick"] for b in store["volumes"]["one-system"]["bricks"]] == [
        "10.213.0.11:/bricks/one-system/brick",
        "10.213.0.12:/bricks/one-system/brick",
    ]


def test_read_store_of_a_glusterd_that_never_ran(ident, tmp_path):
    assert ident.read_store(str(tmp_path / "nothing")) == {
        "uuid": "",
        "op_version": "",
        "peers": [],
        "volumes": {},
    }


def test_brick_marks_read_the_volume_id_xattr(ident, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("trusted.* extended attributes need root")
    brick = tmp_path / "brick"
    (brick / ".glusterfs").mkdir(parents=True)
    vid = uuid.UUID(ONE_IMAGES_ID)
    try:
        os.setxattr(brick, ident.VOLUME_ID_XATTR, vid.bytes)
    except OSError as exc:
        pytest.skip(f"no trusted xattrs on {tmp_path}: {exc.strerror}")
    assert ident.brick_marks(str(brick)) == {
        "exists": True,
        "volume_id": ONE_IMAGES_ID,
        "glusterfs_dir": True,
    }
    shutil.rmtree(brick / ".glusterfs")
    os.removexattr(brick, ident.VOLUME_ID_XATTR)
    assert ident.brick_marks(str(brick)) == {"exists": True, "volume_id": "", "glusterfs_dir": False}
    assert ident.brick_marks(str(tmp_path / "absent"))["exists"] is False
