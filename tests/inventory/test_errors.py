"""Bad inventories: one line naming file:line and the problem, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, edit, run_cli

HOSTS = "hosts.yml"
ALL = "group_vars/all.yml"

# (id, file, old text, new text, fragments the error line must contain; the line of the edit is added)
CASES = [
    ("yaml-syntax", HOSTS, "        wn02:\n", "        wn02: [\n", ["YAML syntax error"]),
    (
        "unknown-class",
        HOSTS,
        "    worker:\n",
        "    storage:\n      hosts:\n        st01:\n"
        '          b2ct_nics: {private: {mac: "52:54:00:10:00:99"}}\n'
        "    worker:\n",
        ["unknown host class", "storage"],
    ),
    (
        "duplicate-mac",
        HOSTS,
        'private: {mac: "52:54:00:10:00:22"',
        'private: {mac: "52:54:00:10:00:21"',
        ["duplicate MAC 52:54:00:10:00:21"],
    ),
    ("duplicate-ip", HOSTS, "ip: 10.10.0.22}", "ip: 10.10.0.21}", ["duplicate IP 10.10.0.21"]),
    (
        "ip-outside-subnet",
        HOSTS,
        "ip: 10.10.0.23}",
        "ip: 10.99.0.23}",
        ["10.99.0.23", "outside", "10.10.0.0/24"],
    ),
    (
        "missing-network",
        HOSTS,
        '            private: {mac: "52:54:00:10:00:22", ip: 10.10.0.22}\n',
        '            private: {mac: "52:54:00:10:00:22", ip: 10.10.0.22}\n'
        '            storage: {mac: "52:54:00:30:00:22", ip: 10.30.0.22}\n',
        ["missing network 'storage'"],
    ),
    (
        "malformed-mac",
        HOSTS,
        '"52:54:00:10:00:23"',
        '"52:54:00:10:00:2G"',
        ["malformed MAC", "52:54:00:10:00:2G"],
    ),
    (
        "plaintext-password-key",
        ALL,
        "b2ct_ssh_keys:",
        "b2ct_root_password: hunter2\nb2ct_ssh_keys:",
        ["plaintext root password refused"],
    ),
    (
        "plaintext-password-in-hash",
        ALL,
        'b2ct_root_password_hash: "$6$',
        'b2ct_root_password_hash: "hunter2" # "$6$',
        ["plaintext passwords are refused"],
    ),
    ("unknown-release", ALL, "b2ct_os_release: el9", "b2ct_os_release: el99", ["unknown OS release 'el99'"]),
    (
        "brick-on-unknown-host",
        ALL,
        "      - svc2:/bricks/one-system/brick",
        "      - svc9:/bricks/one-system/brick",
        ["svc9", "does not exist"],
    ),
    ("replica-vs-bricks", ALL, "replica: 2", "replica: 3", ["replica 3 needs a multiple of 3 bricks, got 2"]),
    ("volume-name-clash", ALL, "name: one-images", "name: one-system", ["volume name clash", "one-system"]),
    (
        "duplicate-yaml-key",
        ALL,
        "b2ct_timezone: Europe/Rome",
        "b2ct_timezone: UTC\nb2ct_timezone: Europe/Rome",
        ["duplicate key 'b2ct_timezone'"],
    ),
    (
        "misspelt-setting",
        HOSTS,
        "          b2ct_ephemeral_disk: nvme0n1",
        "          b2ct_ephemral_disk: nvme0n1",
        ["unknown setting b2ct_ephemral_disk", "did you mean 'b2ct_ephemeral_disk'"],
    ),
    ("gateway-outside", ALL, "gateway: 10.10.0.1", "gateway: 10.11.0.1", ["gateway 10.11.0.1 is outside"]),
    ("bad-fs", HOSTS, "b2ct_ephemeral_fs: ext4", "b2ct_ephemeral_fs: btrfs", ["use xfs or ext4"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_inventory_is_one_line_error_and_writes_nothing(site_copy: Path, tmp_path: Path, case) -> None:
    _, rel, old, new, fragments = case
    line = edit(site_copy / rel, old, new)
    out = tmp_path / "out"
    result = run_cli("kickstart", "-i", site_copy, "-o", out)
    message = assert_one_line_error(result, *fragments)
    # The error points into the edited file; most at the exact line that was changed.
    assert f"{rel}:" in message, message
    reported = int(message.split(f"{rel}:", 1)[1].split(":", 1)[0])
    slack = 3 if "YAML syntax" in message else 0  # the parser notices a bad bracket a little later
    assert line <= reported <= line + new.count("\n") + slack, (line, message)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "temporary output left behind"


def test_inventory_check_reports_the_same_error(site_copy: Path) -> None:
    edit(site_copy / HOSTS, "ip: 10.10.0.22}", "ip: 10.10.0.21}")
    assert_one_line_error(run_cli("inventory", "check", "-i", site_copy), "duplicate IP")


def test_example_inventory_is_valid() -> None:
    result = run_cli("inventory", "check", "-i", "inventory/example")
    assert result.rc == 0, result.err
    assert "7 hosts" in result.err


def test_missing_inventory_and_missing_option(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("kickstart", "-i", tmp_path / "nope"), "inventory not found")
    assert_one_line_error(run_cli("kickstart", env={"PATH": "/usr/bin:/bin"}), "no inventory given")


def test_unwritable_output(tmp_path: Path) -> None:
    assert_one_line_error(
        run_cli("kickstart", "-i", "inventory/example", "-o", tmp_path / "no" / "such" / "dir"),
        "does not exist",
    )


def test_plain_ansible_reads_the_example() -> None:
    """The inventory is a standard one: ansible-inventory sees the same groups and hosts."""
    import json
    import shutil
    import subprocess

    exe = shutil.which("ansible-inventory")
    if exe is None:
        pytest.skip("ansible-core not installed")
    data = json.loads(
        subprocess.run(
            [exe, "-i", "inventory/example", "--list"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert sorted(data["worker"]["hosts"]) == ["wn01", "wn02", "wn03", "wn04"]
    assert "one-fe" in data["frontend"]["hosts"] and "one-fe" in data["service"]["hosts"]
    assert data["_meta"]["hostvars"]["wn03"]["b2ct_ephemeral_fs"] == "ext4"
    assert data["_meta"]["hostvars"]["wn01"]["b2ct_os_release"] == "el9"


def test_settings_reference_is_current() -> None:
    """docs/inventory.md carries the table the loader validates with; regenerate it when they differ."""
    from b2ct.inventory.docs import settings_markdown
    from tests.conftest import REPO

    assert settings_markdown() in (REPO / "docs" / "inventory.md").read_text()
