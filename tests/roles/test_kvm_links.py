"""From the inventory to systemd-networkd files, with real Ansible: playbooks/vars/kvm_links.yml maps
inventory/bonded (bonds, a storage VLAN riding on the private bond, a worker's trunk port) to the kvm_host
role's variables, the role's kvm_host_links filter works out every interface, and the role's templates
render the files a host gets. Only the NIC names are given (the hosts do not exist here): what the
kernel of a real host says, tasks/find_nics.yml reads on the lab hosts (tests/lab/test_lab_bond.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "kvm_host"
NICS = {
    "svc1": {"52:54:00:10:00:11": "ens3", "52:54:00:11:00:11": "ens4", "52:54:00:20:00:11": "ens5"},
    "wn02": {"52:54:00:10:00:22": "eno1", "52:54:00:30:00:22": "eno2"},
    "one-fe": {"52:54:00:10:00:10": "ens3", "52:54:00:11:00:10": "ens4", "52:54:00:20:00:10": "ens5"},
}

PLAY = """
- hosts: svc1:wn02:one-fe
  gather_facts: false
  connection: local
  vars_files:
    - __VARS__
  vars:
    __b2ct_default_net: >-
      {{ 'public' if ('service' in group_names and 'public' in (b2ct_nics | default({}))) else 'private' }}
    out: "__OUT__/{{ inventory_hostname }}"
  tasks:
    - ansible.builtin.set_fact:
        links: "{{ __b2ct_links.bridges | kvm_host_links(__b2ct_links.bonds, __b2ct_links.addresses,
          nics[inventory_hostname]) }}"
    - ansible.builtin.file: {path: "{{ out }}", state: directory, mode: "0755"}
    - ansible.builtin.copy:
        dest: "{{ out }}/links.json"
        content: "{{ {'role': __b2ct_links, 'links': links} | to_json }}"
        mode: "0644"
    - ansible.builtin.template:
        src: "__ROLE__/templates/{{ item.kind }}.netdev.j2"
        dest: "{{ out }}/05-b2ct-{{ item.name }}.netdev"
        mode: "0644"
      loop: "{{ links.bridges | map('combine', {'kind': 'bridge'})
        + links.bonds | map('combine', {'kind': 'bond'}) + links.vlans | map('combine', {'kind': 'vlan'}) }}"
    - ansible.builtin.template:
        src: "__ROLE__/templates/bridge.network.j2"
        dest: "{{ out }}/05-b2ct-{{ item.name }}.network"
        mode: "0644"
      loop: "{{ links.bridges }}"
    - ansible.builtin.template:
        src: "__ROLE__/templates/link.network.j2"
        dest: "{{ out }}/{{ item.file }}"
        mode: "0644"
      loop: "{{ links.links }}"
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("kvm-links")
    out = tmp / "out"
    play = tmp / "play.yml"
    play.write_text(
        PLAY.replace("__VARS__", str(REPO / "playbooks/vars/kvm_links.yml"))
        .replace("__OUT__", str(out))
        .replace("__ROLE__", str(ROLE))
    )
    env = {
        **os.environ,
        "ANSIBLE_FILTER_PLUGINS": str(REPO / "plugins" / "filter"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(REPO / "inventory/bonded"), str(play),
         "-e", json.dumps({"nics": NICS})],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return out


def files(rendered: Path, host: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in (rendered / host).iterdir() if p.name.startswith("05-")}


def body(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_inventory_maps_to_bonds_bridges_and_a_storage_vlan(rendered: Path) -> None:
    role = json.loads((rendered / "svc1/links.json").read_text())["role"]
    assert role["bonds"] == [
        {
            "name": "bond0",
            "mode": "balance-alb",
            "members": ["52:54:00:10:00:11", "52:54:00:11:00:11"],
            "miimon": 100,
        }
    ]
    assert {"name": "br-private", "bond": "bond0", "address": "10.10.0.11/24"} in role["bridges"]
    assert role["addresses"] == [{"bond": "bond0", "vlan": 20, "address": "10.20.0.11/24"}]
    wn02 = json.loads((rendered / "wn02/links.json").read_text())["role"]
    assert wn02["bonds"] == []
    assert wn02["addresses"] == [{"mac": "52:54:00:30:00:22", "vlan": 20, "address": "10.20.0.22/24"}]


def test_svc1_networkd_files(rendered: Path) -> None:
    f = files(rendered, "svc1")
    assert set(f) == {
        "05-b2ct-bond0.netdev",
        "05-b2ct-bond0-members.network",
        "05-b2ct-bond0.20.netdev",
        "05-b2ct-bond0.20.network",
        "05-b2ct-br-private.netdev",
        "05-b2ct-br-private.network",
        "05-b2ct-br-private-port.network",
        "05-b2ct-br-public.netdev",
        "05-b2ct-br-public.network",
        "05-b2ct-br-public-port.network",
    }
    assert body(f["05-b2ct-bond0.netdev"]) == [
        "[NetDev]",
        "Name=bond0",
        "Kind=bond",
        "MACAddress=52:54:00:10:00:11",
        "[Bond]",
        "Mode=balance-alb",
        "MIIMonitorSec=100ms",
    ]
    assert body(f["05-b2ct-bond0-members.network"]) == [
        "[Match]",
        "Name=ens3 ens4",
        "[Network]",
        "Bond=bond0",
    ]
    # the bond is the private bridge's port and carries the storage VLAN
    assert body(f["05-b2ct-br-private-port.network"]) == [
        "[Match]",
        "Name=bond0",
        "[Network]",
        "Bridge=br-private",
        "VLAN=bond0.20",
    ]
    assert body(f["05-b2ct-bond0.20.netdev"]) == ["[NetDev]", "Name=bond0.20", "Kind=vlan", "[VLAN]", "Id=20"]
    assert body(f["05-b2ct-bond0.20.network"]) == [
        "[Match]",
        "Name=bond0.20",
        "[Network]",
        "Address=10.20.0.11/24",
    ]
    assert "MACAddress=52:54:00:10:00:11" in f["05-b2ct-br-private.netdev"]  # the bond's, its first member's
    assert "Address=10.10.0.11/24" in f["05-b2ct-br-private.network"]
    # a plain NIC's port file is as before bonds existed
    assert body(f["05-b2ct-br-public-port.network"]) == [
        "[Match]",
        "Name=ens5",
        "[Network]",
        "Bridge=br-public",
    ]


def test_worker_trunk_port_carries_only_the_vlan(rendered: Path) -> None:
    f = files(rendered, "wn02")
    assert body(f["05-b2ct-eno2.network"]) == [
        "[Match]",
        "Name=eno2",
        "[Network]",
        "VLAN=eno2.20",
        "LinkLocalAddressing=no",
    ]
    assert "Address=10.20.0.22/24" in f["05-b2ct-eno2.20.network"]
    assert "Gateway=10.10.0.1" in f["05-b2ct-br-private.network"]  # workers route through private


def test_liveness_checks_cover_members_bond_vlan_and_bridges(rendered: Path) -> None:
    checks = json.loads((rendered / "svc1/links.json").read_text())["links"]["checks"]
    by = {c["label"]: c for c in checks}
    assert by["ens3 in bond0"]["master"] == "bond0" and by["ens4 in bond0"]["master"] == "bond0"
    assert by["bond0"]["master"] == "br-private" and by["bond0"]["bond_mode"] == "balance-alb"
    assert by["bond0.20"]["vlan"] == 20 and by["bond0.20"]["address"] == "10.20.0.11/24"
    assert by["br-private"]["address"] == "10.10.0.11/24"
    assert by["ens5"]["master"] == "br-public"


def test_networkmanager_connections_follow_anacondas_names(rendered: Path) -> None:
    links = json.loads((rendered / "svc1/links.json").read_text())["links"]
    assert [m["conn"] for m in links["nm_members"]] == ["bond0_slave_1", "bond0_slave_2"]
    assert links["nm_up"] == [
        "bond0",
        "bond0_slave_1",
        "bond0_slave_2",
        "br-private",
        "br-public",
        "br-public-port",
        "bond0.20",
    ]


# ----------------------------------------------------------------------------------- the filter's refusals


def _filter():
    sys.path.insert(0, str(REPO / "plugins" / "filter"))
    try:
        import kvm_host_links

        return kvm_host_links.kvm_host_links
    finally:
        sys.path.pop(0)


def test_filter_names_a_missing_nic_and_a_too_long_vlan() -> None:
    from ansible.errors import AnsibleFilterError

    links = _filter()
    nics = {"52:54:00:00:00:01": "enp129s0f0np0"}
    with pytest.raises(AnsibleFilterError, match="bond bond0: no interface has member MAC 52:54:00:00:00:02"):
        links([], [{"name": "bond0", "mode": "active-backup", "members": ["52:54:00:00:00:02"]}], [], nics)
    with pytest.raises(AnsibleFilterError, match=r"enp129s0f0np0\.20 is longer than 15"):
        links([], [], [{"mac": "52:54:00:00:00:01", "vlan": 20, "address": "10.0.0.2/24"}], nics)
    with pytest.raises(AnsibleFilterError, match="interface enp129s0f0np0 is already used by bridge br-a"):
        links(
            [{"name": "br-a", "mac": "52:54:00:00:00:01", "address": "dhcp"}],
            [],
            [{"mac": "52:54:00:00:00:01", "address": "10.0.0.2/24"}],
            nics,
        )
