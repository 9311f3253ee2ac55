"""playbooks/gluster.yml's addresses of the GlusterFS hosts, computed by real Ansible from the inventory:
storage addresses where the hosts have them (inventory/bonded), private ones otherwise (inventory/example),
and every peer known on a run limited to one host, since nothing is read from facts of hosts in the play."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def addresses(tmp_path: Path, inventory: Path, *extra: str) -> dict[str, str]:
    plays = yaml.safe_load((REPO / "playbooks/gluster.yml").read_text())
    play = {
        "hosts": "service:worker",
        "gather_facts": False,
        "connection": "local",
        "vars": {"__b2ct_gluster_addresses_json": plays[0]["vars"]["__b2ct_gluster_addresses_json"]},
        "tasks": [
            {
                "ansible.builtin.copy": {
                    "dest": str(tmp_path / "{{ inventory_hostname }}.json"),
                    "content": "{{ __b2ct_gluster_addresses_json | trim }}",
                    "mode": "0644",
                }
            }
        ],
    }
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play]))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(tmp_path / "play.yml"), *extra],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    found = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert len({json.dumps(v, sort_keys=True) for v in found.values()}) == 1, found  # every host agrees
    return next(iter(found.values()))


def test_storage_addresses_where_the_hosts_have_them(tmp_path: Path) -> None:
    assert addresses(tmp_path, REPO / "inventory/bonded") == {
        "one-fe": "10.20.0.10",
        "svc1": "10.20.0.11",
        "svc2": "10.20.0.12",
    }


def test_private_addresses_without_a_storage_network(tmp_path: Path) -> None:
    assert addresses(tmp_path, REPO / "inventory/example") == {
        "one-fe": "10.10.0.10",
        "svc1": "10.10.0.11",
        "svc2": "10.10.0.12",
    }


@pytest.mark.parametrize("limit", ["svc2", "wn01"])
def test_a_limited_run_knows_every_peer(tmp_path: Path, limit: str) -> None:
    found = addresses(tmp_path, REPO / "inventory/bonded", "--limit", limit)
    assert list((tmp_path).glob("*.json")) == [tmp_path / f"{limit}.json"]
    assert found == {"one-fe": "10.20.0.10", "svc1": "10.20.0.11", "svc2": "10.20.0.12"}
