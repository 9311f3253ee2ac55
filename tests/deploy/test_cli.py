"""`b2ct deploy` through the real CLI (subprocess): errors, progress lines, summary, exit codes."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import assert_one_line_error, edit, run_cli


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["B2CT_LAB_STATE"] = str(tmp_path / "no-labs")  # no lab is up, whatever runs on this machine
    return env


def test_bad_inventory_is_one_line_and_nothing_runs(local_site: Path, tmp_path: Path, probe: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    line = edit(
        local_site / "group_vars" / "all.yml",
        'b2ct_opennebula_version: "6.10"',
        'b2ct_opennebula_version: "5.4"',
    )
    r = run_cli("deploy", "-i", local_site, "--playbook", probe, env=_env(tmp_path))
    assert_one_line_error(r, f"all.yml:{line}", "unknown OpenNebula version")
    assert list(out.iterdir()) == []


def test_no_inventory_and_no_lab_says_how(tmp_path: Path) -> None:
    r = run_cli("deploy", env=_env(tmp_path))
    assert_one_line_error(r, "no lab is up", "--inventory")


def test_progress_summary_and_exit_code(local_site: Path, tmp_path: Path, probe: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # extravars are not a CLI option: pass them through the inventory, as a site would.
    (local_site / "group_vars" / "all.yml").write_text(
        (local_site / "group_vars" / "all.yml").read_text() + f"probe_dir: {out}\nprobe_fail_host: wn01\n"
    )
    r = run_cli(
        "deploy",
        "-i",
        local_site,
        "--playbook",
        probe,
        "--limit",
        "svc1,wn01,wn04",
        env=_env(tmp_path),
        timeout=300,
    )
    assert r.rc == 1, r.err
    assert "Traceback" not in r.err
    # plain progress lines (stderr is not a terminal): tasks, failures, the unreachable host by name
    assert "Write a marker" in r.err and "Write the done marker" in r.err
    assert "wn01: FAILED: probe failure on wn01" in r.err
    assert "wn04: UNREACHABLE" in r.err
    assert "deploy failed on wn01, wn04" in r.err
    rows = {line.split("│")[1].strip(): line for line in r.err.splitlines() if line.startswith("│ ")}
    assert [c.strip() for c in rows["svc1"].split("│")[2:7]] == ["2", "2", "0", "0", "2"], r.err
    assert [c.strip() for c in rows["wn04"].split("│")[4:6]] == ["0", "1"], r.err
    assert (out / "svc1.done").exists()  # the good host finished
