"""The preflight module run by real Ansible here: bad volumes, root-filesystem bricks and bricks or pools
of other identities refused, a reinstalled host's way back given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from b2ct import resources

pytestmark = pytest.mark.slow


def preflight(args: dict) -> dict:
    return run_module("gluster_preflight", args)


def run_module(name: str, args: dict) -> dict:
    """Module ``name`` of the b2ct.cloud collection (the checkout), run by ansible on this machine."""
    with tempfile.TemporaryDirectory(prefix="b2ct-collections-") as scratch:
        return _run_module(name, args, resources.collections_path(Path(scratch)))


def _run_module(name: str, args: dict, collections: Path) -> dict:
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_NOCOLOR": "1",
    }
    proc = subprocess.run(
        ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", f"b2ct.cloud.{name}",
         "-e", f"ansible_python_interpreter={sys.executable}", "-a", json.dumps(args)],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert (proc.returncode != 0) == bool(result.get("failed")), proc.stderr
    return result


def _other_mount() -> str:
    """A mount point of this machine other than /, to stand for a brick filesystem."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mp = line.split()[1]
        if mp.startswith(("/dev/shm", "/run", "/tmp")) and os.path.isdir(mp):
            return mp
    pytest.skip("no mount point besides / to put a brick on")


VOLS = [{"name": "v", "replica": 2, "bricks": ["a:/bricks/v/b", "b:/bricks/v/b"]}]


def test_good_volumes_and_brick_on_its_own_filesystem_pass():
    mp = _other_mount()
    result = preflight({"volumes": VOLS, "paths": [f"{mp}/v/brick"]})
    assert not result.get("failed") and result["changed"] is False
    assert result["filesystems"] == {f"{mp}/v/brick": mp}


def test_brick_on_root_filesystem_refused_unless_forced():
    result = preflight({"volumes": VOLS, "paths": ["/srv/b2ct-test-brick/b"]})
    assert result["failed"] and "on the root filesystem" in result["msg"]
    assert not Path("/srv/b2ct-test-brick").exists()
    assert not preflight({"paths": ["/srv/b2ct-test-brick/b"], "force": True}).get("failed")


def test_planned_brick_filesystem_counts():
    # A fresh host: /bricksplanned is not mounted yet, but the role will mount the brick disk there.
    result = preflight({"paths": ["/bricksplanned/v/b"], "planned_mounts": ["/bricksplanned"]})
    assert not result.get("failed"), result


@pytest.mark.parametrize(
    ("volumes", "message"),
    [
        ([{"name": "v", "replica": 3, "bricks": ["a:/x/b", "b:/x/b"]}], "replica 3 needs a multiple of 3"),
        ([*VOLS, {"name": "v", "replica": 1, "bricks": ["c:/x/b"]}], "name clash"),
    ],
)
def test_bad_volumes_refused(volumes, message):
    result = preflight({"volumes": volumes})
    assert result["failed"] and message in result["msg"], result


FIXTURES = Path(__file__).parent / "fixtures" / "identity"
ADDRESSES = {"svc1": "10.213.0.11", "svc2": "10.213.0.12", "svc3": "10.213.0.13"}
LAB_VOLUMES = [
    {"name": n, "replica": 2, "bricks": [f"svc1:/bricks/{n}/brick", f"svc2:/bricks/{n}/brick"]}
    for n in ("one-system", "one-images")
]


def _identities(scenario: str) -> dict:
    return {h: json.loads((FIXTURES / scenario / f"{h}.json").read_text()) for h in ADDRESSES}


def _args(scenario: str) -> dict:
    return {
        "volumes": LAB_VOLUMES,
        "identities": _identities(scenario),
        "host_addresses": ADDRESSES,
        "manager": "svc1",
    }


def test_identities_of_a_reinstalled_host_give_its_way_back():
    args = _args("reinstalled-svc2")
    back = preflight({**args, "host_name": "svc2"})
    assert not back.get("failed"), back
    assert back["rejoin"]["uuid"] == "5e39fe47-1818-4482-bd53-36116adb5505"
    assert back["rejoin"]["peers"] == [
        {"uuid": "10b920ba-a86c-45d0-8b5d-8004e3fb9b03", "hostnames": ["10.213.0.11"]}
    ]
    assert preflight({**args, "host_name": "svc1"})["rejoin"] is None


def test_identities_of_a_deleted_volume_are_refused_on_every_host():
    args = _args("deleted-volume")
    for host in ("svc1", "svc3"):  # svc3 has no brick: it stops too, so that nothing anywhere changes
        refused = preflight({**args, "host_name": host})
        assert refused["failed"] and len(refused["problems"]) == 1, refused
        assert "the identity of a deleted or earlier volume" in refused["msg"]
