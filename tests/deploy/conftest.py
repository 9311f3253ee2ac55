from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("playbooks") / "probe.yml"


def _closed_port() -> int:
    """A loopback port with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def probe() -> Path:
    return PROBE


@pytest.fixture
def local_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example inventory, every host reached over the local connection; wn04 over ssh to a closed port.

    ansible runs for real here; only the connection differs from a site's (hosts are this machine).
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    inv = tmp_path / "inv"
    shutil.copytree(REPO / "inventory" / "example", inv)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    hosts["all"]["vars"] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    wn04 = hosts["all"]["children"]["worker"]["hosts"]["wn04"]
    wn04.update(
        ansible_connection="ssh",
        ansible_host="127.0.0.1",
        ansible_port=_closed_port(),
        ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
    )
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return inv
