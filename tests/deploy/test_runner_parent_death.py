"""A deploy killed outright (SIGKILL, the OOM killer) takes its ansible-playbook with it.

ansible-runner starts ansible-playbook on a pty, in a session of its own, with SIGHUP ignored: nothing
stops it when b2ct dies. One was found spinning on its closed pty long after a CI run. Real
ansible-playbook on the local connection; the task is a sleeper whose command line names this test's
temporary directory, so only this test's processes are looked for and cleaned up. The sleeper itself is
left out of the check: on the local connection it runs in ansible-playbook's process group, not its
worker's, so ansible's own SIGTERM handling does not reach it (on a site the task runs on the host).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from b2ct.deploy import runner
from tests.conftest import processes_naming, wait_for


def test_killed_deploy_takes_ansible_playbook_with_it(local_site: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    if runner._ended_with_us(probe) == {}:
        pytest.fail("setpriv (util-linux) is needed, and a temporary directory that allows exec")
    book = tmp_path / "sleeper.yml"
    marker = f"b2ct-sleeper-{tmp_path}"
    sleeper = {"argv": [sys.executable, "-c", "import time; time.sleep(300)", marker]}
    play = {
        "name": "Sleep",
        "hosts": "wn01",
        "gather_facts": False,
        "tasks": [{"name": "Sleep", "ansible.builtin.command": sleeper}],
    }
    book.write_text(yaml.safe_dump([play]))
    code = f"from b2ct.deploy import run; run({str(local_site)!r}, playbook={str(book)!r}, limit='wn01')"
    deploy = subprocess.Popen(
        [sys.executable, "-c", code],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("the sleeper task to start", lambda: processes_naming(marker), 120, 0.2)
        assert processes_naming(str(book)), "ansible-playbook should be running the sleeper playbook"
        os.kill(deploy.pid, signal.SIGKILL)  # b2ct only: ansible-playbook is in a session of its own
        deploy.wait()
        wait_for("ansible-playbook to end with b2ct", lambda: not processes_naming(str(book)), 20, 0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(deploy.pid, signal.SIGKILL)
        deploy.wait()
        for pid in processes_naming(marker) + processes_naming(str(book)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
