"""Renderers and the CLI's usage errors: no hosts needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from b2ct.check import render
from b2ct.check.model import HostReport, Report, failed, passed, warned
from tests.check.tests_check_util import chromium_dom

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "example"


def usage_error(*args: str | Path) -> str:
    """Run the CLI; it must exit 2 with one `b2ct: error:` line and no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "b2ct.cli", "check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("b2ct: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def sample() -> Report:
    a = HostReport("svc1", "service", "10.0.0.11", checks=[passed("libvirt", "libvirt 9.0.0")])
    a.checks.append(failed("kvm", "no KVM acceleration <emulation only>", "enable VT-x"))
    down = [failed("ssh", "unreachable: timeout")]
    b = HostReport("wn1", "worker", "10.0.0.21", reachable=False, checks=down)
    c = HostReport("wn2", "worker", "10.0.0.22", checks=[warned("ksm", "pages still merged", "echo 2")])
    return Report("lab", "/inv", "2026-11-22T05:00:00+00:00", [a, b, c], 1.5)


def test_json_schema_and_exit_code() -> None:
    data = json.loads(render.to_json(sample()))
    assert data["schema"] == "b2ct.check/1" and data["status"] == "fail"
    assert data["summary"] == {"pass": 1, "warn": 1, "fail": 2}
    assert [h["status"] for h in data["hosts"]] == ["fail", "fail", "warn"]
    assert data["hosts"][1]["reachable"] is False
    assert set(data["hosts"][0]["checks"][0]) == {"check", "status", "reason", "hint"}
    assert sample().exit_code == 1
    ok = Report("s", "i", "t", [HostReport("h", "worker", None, checks=[warned("ksm", "x")])])
    assert ok.exit_code == 0


def test_html_renders_in_chromium_with_every_host_and_check(tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed (.ci/packages/check.apt)")
    page = tmp_path / "report.html"
    page.write_text(render.html(sample()))
    dom = chromium_dom(page, tmp_path)
    for host, checks in (("svc1", ("libvirt", "kvm")), ("wn1", ("ssh",)), ("wn2", ("ksm",))):
        assert f'id="host-{host}"' in dom
        for c in checks:
            assert f'data-check="{c}"' in dom
    assert "unreachable" in dom
    assert "&lt;emulation only&gt;" in dom  # reasons are escaped, not parsed as markup


def test_unknown_limit_is_a_usage_error() -> None:
    line = usage_error("-i", EXAMPLE, "--limit", "wn99", "--no-smoke")
    assert "--limit" in line and "wn99" in line


def test_missing_inventory_is_a_usage_error(tmp_path: Path) -> None:
    assert "nope" in usage_error("-i", tmp_path / "nope")
