"""b2ct reads an inventory exactly as `ansible-inventory --list` does, over the layouts sites write.

Each layout is written to disk, read by the real `ansible-inventory` command and by b2ct; the host
variables must be equal, and the validated model must carry ansible's values (not b2ct's own reading).
The layouts with merge keys, `!vault`, `group_vars/all/` and FQDN host names were refused or misread by
the loader b2ct had before (issue 14 B).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from b2ct.inventory import load
from b2ct.inventory.ansible_view import ciphertext, is_vaulted, read
from tests.conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.skipif(
    shutil.which("ansible-inventory") is None, reason="ansible-core not installed"
)

HASH = (
    "$6$b2ctexamplesalt$"
    "XqQLWNPnTtuSJV0xem0Xew6jgIKJPhfvSEDxeWMskgz0WdpE142UG.grBwOuRNXy9hZn4Cl4GgqG0BjUClYqI/"
)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHweObhqHHrsbfiMspkUFfg8HNRysficbLwwF62TybM0 admin@site"
PASSWORD = "correct horse battery staple"

SITE = f"""\
b2ct_site: parity
b2ct_os_release: el9
b2ct_repos:
  baseos: http://mirror.example.org/el9/BaseOS/
b2ct_networks:
  private: {{subnet: 10.20.0.0/24, gateway: 10.20.0.1, dns: [10.20.0.1]}}
  public: {{subnet: 192.0.2.0/24, gateway: 192.0.2.1}}
b2ct_root_password_hash: "{HASH}"
b2ct_ssh_keys: ["{KEY}"]
b2ct_timezone: Europe/Rome
"""

SINGLE = f"""\
all:
  vars:
{"".join("    " + line + chr(10) for line in SITE.splitlines())}  children:
    frontend:
      hosts:
        svc1:
    service:
      hosts:
        svc1:
          b2ct_nics:
            private: {{mac: "52:54:00:20:00:11", ip: 10.20.0.11}}
            public: {{mac: "52:54:00:21:00:11", ip: 192.0.2.11}}
    worker:
      vars:
        b2ct_ephemeral_disk: sdb
      hosts:
        wn01:
          b2ct_nics: {{private: {{mac: "52:54:00:20:00:21", ip: 10.20.0.21}}}}
        wn02:
          b2ct_serial: "0012345"
          b2ct_nics: {{private: {{mac: "52:54:00:20:00:22", ip: dhcp}}}}
"""

SPLIT_HOSTS = """\
all:
  children:
    frontend:
      hosts:
        svc1:
    service:
      hosts:
        svc1:
    worker:
      vars:
        b2ct_install_disk: sdc
      children:
        rack1:
          hosts:
            wn01:
            wn02:
"""

# Merge keys with an override: the host takes the defaults and replaces b2ct_nics (issue 14 B).
MERGE = f"""\
all:
  vars:
{"".join("    " + line + chr(10) for line in SITE.splitlines())}  children:
    frontend:
      hosts:
        svc1:
    service:
      hosts:
        svc1: &service_defaults
          b2ct_brick_disk: sdb
          b2ct_nics:
            private: {{mac: "52:54:00:20:00:11", ip: 10.20.0.11}}
            public: {{mac: "52:54:00:21:00:11", ip: 192.0.2.11}}
    worker:
      hosts:
        wn01: &worker_defaults
          b2ct_ephemeral_disk: sdb
          b2ct_ephemeral_fs: ext4
          b2ct_nics: {{private: {{mac: "52:54:00:20:00:21", ip: 10.20.0.21}}}}
        wn02:
          <<: *worker_defaults
          b2ct_nics: {{private: {{mac: "52:54:00:20:00:22", ip: 10.20.0.22}}}}
        wn03:
          <<: *worker_defaults
          b2ct_ephemeral_fs: xfs
          b2ct_nics: {{private: {{mac: "52:54:00:20:00:23", ip: 10.20.0.23}}}}
"""

FQDN = (
    SINGLE.replace("svc1:", "svc1.site.example.org:")
    .replace("wn01:", "wn01.site.example.org:")
    .replace("wn02:", "wn02.site.example.org:")
)


def _vault_string(password_file: Path, plaintext: str, name: str) -> str:
    """An ansible-vault encrypted value, made by the real ansible-vault command."""
    out = subprocess.run(
        [
            "ansible-vault",
            "encrypt_string",
            "--vault-password-file",
            str(password_file),
            plaintext,
            "--name",
            name,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out if out.endswith("\n") else out + "\n"


def layout_single(root: Path, secrets: Path) -> Path:
    (root / "hosts.yml").write_text(SINGLE)
    return root


def layout_split(root: Path, secrets: Path) -> Path:
    """hosts.yml + group_vars/<group>.yml + host_vars/<host>.yml, with precedence traps: a parent group's
    group_vars file beats a child group's inline vars (ansible's VARIABLE_PRECEDENCE)."""
    (root / "hosts.yml").write_text(SPLIT_HOSTS)
    (root / "group_vars").mkdir()
    (root / "host_vars").mkdir()
    (root / "group_vars" / "all.yml").write_text(SITE)
    (root / "group_vars" / "worker.yml").write_text("b2ct_ephemeral_disk: sdb\nb2ct_ephemeral_fs: ext4\n")
    (root / "group_vars" / "rack1.yml").write_text("b2ct_ephemeral_fs: xfs\n")
    (root / "host_vars" / "svc1.yml").write_text(
        'b2ct_nics:\n  private: {mac: "52:54:00:20:00:11", ip: 10.20.0.11}\n'
        '  public: {mac: "52:54:00:21:00:11", ip: 192.0.2.11}\n'
    )
    (root / "host_vars" / "wn01.yml").write_text(
        'b2ct_nics: {private: {mac: "52:54:00:20:00:21", ip: 10.20.0.21}}\n'
    )
    (root / "host_vars" / "wn02.yaml").write_text(
        'b2ct_nics: {private: {mac: "52:54:00:20:00:22", ip: 10.20.0.22}}\nb2ct_install_disk: sda\n'
    )
    return root


def layout_directories(root: Path, secrets: Path) -> Path:
    """group_vars/all/ and host_vars/<host>/ as directories of files (Ansible's documented layout)."""
    layout_split(root, secrets)
    (root / "group_vars" / "all.yml").unlink()
    (root / "group_vars" / "all").mkdir()
    lines = SITE.splitlines(keepends=True)
    (root / "group_vars" / "all" / "10-site.yml").write_text("".join(lines[:4]))
    (root / "group_vars" / "all" / "20-network.yml").write_text("".join(lines[4:7]))
    (root / "group_vars" / "all" / "30-access").write_text("".join(lines[7:]))  # no extension: read too
    (root / "host_vars" / "wn02.yaml").unlink()
    (root / "host_vars" / "wn02").mkdir()
    (root / "host_vars" / "wn02" / "nics.yml").write_text(
        'b2ct_nics: {private: {mac: "52:54:00:20:00:22", ip: 10.20.0.22}}\n'
    )
    (root / "host_vars" / "wn02" / "disk.yml").write_text("b2ct_install_disk: nvme0n1\n")
    return root


def layout_merge(root: Path, secrets: Path) -> Path:
    (root / "hosts.yml").write_text(MERGE)
    return root


def layout_vault(root: Path, secrets: Path) -> Path:
    """A vaulted secret b2ct does not need (opaque) and a vaulted one it needs (the root hash)."""
    layout_split(root, secrets)
    site = SITE.replace(f'b2ct_root_password_hash: "{HASH}"\n', "")
    (root / "group_vars" / "all.yml").write_text(
        site
        + _vault_string(secrets, PASSWORD, "ansible_become_password")
        + _vault_string(secrets, HASH, "b2ct_root_password_hash")
    )
    return root


def layout_fqdn(root: Path, secrets: Path) -> Path:
    (root / "hosts.yml").write_text(FQDN)
    return root


LAYOUTS = {
    "single-file": layout_single,
    "split-group-host-vars": layout_split,
    "directories": layout_directories,
    "merge-keys": layout_merge,
    "vault": layout_vault,
    "fqdn": layout_fqdn,
}


def make(layout: Any, tmp_path: Path, secrets: Path) -> Path:
    (tmp_path / "site").mkdir()
    return layout(tmp_path / "site", secrets)


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    path = tmp_path / "vault-password"  # outside the inventory: ansible would read it as an inventory file
    path.write_text(PASSWORD + "\n")
    return path


def ansible_hostvars(inventory: Path, secrets: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ansible-inventory", "-i", str(inventory), "--list", "--vault-password-file", str(secrets)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["_meta"]["hostvars"]


def plain(value: Any) -> Any:
    """A value as ansible-inventory's JSON shows it (vaulted strings stay encrypted)."""
    if is_vaulted(value):
        return {"__ansible_vault": ciphertext(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_b2ct_sees_what_ansible_inventory_sees(tmp_path: Path, secrets: Path, layout: str) -> None:
    inventory = make(LAYOUTS[layout], tmp_path, secrets)
    expected = ansible_hostvars(inventory, secrets)
    view = read(inventory, [secrets])
    assert {h: plain(v.vars) for h, v in view.hosts.items()} == expected

    site = load(inventory, [secrets])
    assert sorted(h.name for h in site.hosts) == sorted(expected)
    for host in site.hosts:
        hv = expected[host.name]
        nics = hv["b2ct_nics"]
        assert {n: nic.mac for n, nic in host.nics.items()} == {n: v["mac"] for n, v in nics.items()}
        assert {n: str(nic.ip) if nic.ip else "dhcp" for n, nic in host.nics.items()} == {
            n: v.get("ip", "dhcp") for n, v in nics.items()
        }
        assert host.install_disk == hv.get("b2ct_install_disk", "sda")
        assert host.ephemeral_disk == hv.get("b2ct_ephemeral_disk")
        if host.klass == "worker":
            assert host.ephemeral_fs == hv.get("b2ct_ephemeral_fs", "xfs")
        assert host.serial == hv.get("b2ct_serial")
        assert host.short_name == host.name.split(".")[0]
        assert site.timezone == hv["b2ct_timezone"]
        assert [str(d) for d in site.networks["private"].dns] == hv["b2ct_networks"]["private"]["dns"]
    assert site.root_password_hash == HASH


def test_precedence_follows_ansible_not_nesting(tmp_path: Path, secrets: Path) -> None:
    """A parent group's group_vars file beats a child group's inline vars (ansible's precedence: inventory
    group vars, then group_vars files); the loader before issue 14 gave the deeper group the last word."""
    inventory = make(layout_split, tmp_path, secrets)
    (inventory / "group_vars" / "rack1.yml").unlink()
    (inventory / "hosts.yml").write_text(
        SPLIT_HOSTS.replace(
            "          hosts:\n            wn01:",
            "          vars:\n            b2ct_ephemeral_fs: xfs\n          hosts:\n            wn01:",
        )
    )
    expected = ansible_hostvars(inventory, secrets)
    assert expected["wn01"]["b2ct_ephemeral_fs"] == "ext4"  # group_vars/worker.yml wins
    site = load(inventory, [secrets])
    assert site.host("wn01").ephemeral_fs == "ext4"


def test_fqdn_hosts_keep_their_names_in_the_kickstarts(tmp_path: Path, secrets: Path) -> None:
    from b2ct.kickstart import render

    inventory = make(layout_fqdn, tmp_path, secrets)
    files = render(load(inventory)).files
    assert "--hostname=wn02.site.example.org" in files["ks/wn02.site.example.org.cfg"]
    # an operator at the console may type the short name: it is taken, too
    line = files["ks.cfg"].split("b2ct_name_taken()", 1)[1].split("\n")[2]
    taken = line.strip().split(")")[0].split("|")
    assert "wn02.site.example.org" in taken and "wn02" in taken, line


def test_needed_vault_value_without_password_says_how_to_give_it(tmp_path: Path, secrets: Path) -> None:
    inventory = make(layout_vault, tmp_path, secrets)
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"}
    message = assert_one_line_error(
        run_cli("inventory", "check", "-i", inventory, env=env),
        "b2ct_root_password_hash is vault-encrypted",
        "--vault-password-file",
    )
    assert "group_vars/all.yml:" in message
    # the same inventory loads with the password, from the option or from Ansible's variable
    assert run_cli("inventory", "check", "-i", inventory, "--vault-password-file", secrets, env=env).rc == 0
    env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(secrets)
    assert run_cli("inventory", "check", "-i", inventory, env=env).rc == 0
    del env["ANSIBLE_VAULT_PASSWORD_FILE"]
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    assert_one_line_error(
        run_cli("inventory", "check", "-i", inventory, "--vault-password-file", wrong, env=env),
        "cannot decrypt",
    )


def test_unneeded_vault_value_stays_opaque(tmp_path: Path, secrets: Path) -> None:
    """Only ansible_become_password is vaulted: b2ct loads without any password."""
    inventory = make(layout_split, tmp_path, secrets)
    with (inventory / "group_vars" / "all.yml").open("a") as fh:
        fh.write(_vault_string(secrets, PASSWORD, "ansible_become_password"))
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"}
    result = run_cli("inventory", "check", "-i", inventory, env=env)
    assert result.rc == 0, result.err
