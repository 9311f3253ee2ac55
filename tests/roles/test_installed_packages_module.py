"""b2ct.cloud.installed_packages (plugins/modules/installed_packages.py), run by real Ansible on this machine
(Debian: dpkg) and compared with ansible.builtin.package_facts, whose format the roles read."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from b2ct import resources

pytestmark = pytest.mark.slow

# The hosts' Python, with the distribution's python3-apt (package_facts needs it), as on a site's hosts.
SYSTEM_PYTHON = "/usr/bin/python3"


def _facts(module: str, collections: Path) -> dict:
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_NOCOLOR": "1",
    }
    proc = subprocess.run(
        ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", module,
         "-e", f"ansible_python_interpreter={SYSTEM_PYTHON}"],
        capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result["ansible_facts"]["packages"]


def test_same_packages_and_versions_as_package_facts(tmp_path: Path) -> None:
    has_apt = subprocess.run([SYSTEM_PYTHON, "-c", "import apt"], capture_output=True, check=False)
    if has_apt.returncode != 0:
        pytest.skip("package_facts needs python3-apt to compare with (apt-get install python3-apt)")
    collections = resources.collections_path(tmp_path)  # the checkout as the collection b2ct.cloud
    ours = _facts("b2ct.cloud.installed_packages", collections)
    theirs = _facts("ansible.builtin.package_facts", collections)
    assert "dpkg" in ours and "python3" in ours  # not an empty or partial list
    assert set(ours) == set(theirs)
    for name, versions in theirs.items():
        assert sorted(v["version"] for v in ours[name]) == sorted(v["version"] for v in versions), name
