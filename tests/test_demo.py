"""The README's main job, `b2ct demo`, run end to end as a user runs it: the whole site on the lab, from
kickstarts to a VM RUNNING in each cluster of the real cloud, then the lab taken down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from b2ct.lab.core import Lab
from tests.lab_plugin import _skip_unless_possible

pytestmark = [pytest.mark.slow, pytest.mark.lab]


def test_demo_end_to_end(tmp_path: Path) -> None:
    _skip_unless_possible()
    name = f"demo{os.getpid() % 100000}"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("ONE_AUTH", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "b2ct", "demo", "--name", name, "-o", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=2400, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        assert "changed=0 on every host" in out
        assert re.search(r"\d+ change\(s\), then none on the second apply", out), out[-4000:]
        vms = re.findall(r"VM \d+ RUNNING on (\S+) \(cluster (\w+)\), ([\d.]+)s after instantiate", out)
        assert {c for _, c, _ in vms} == {"services", "workers"}, out[-4000:]
        assert "demo complete" in out
        html = (tmp_path / "out" / "check.html").read_text()
        assert html.count("MONITORED by OpenNebula 6.10.5") == 4
        assert not Lab(name).exists()  # taken down by the demo itself
    finally:
        Lab(name).down()
