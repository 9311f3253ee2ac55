"""b2ct.deploy.run on real ansible-playbook runs (local connection; one host over ssh to a closed port)."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2ct.deploy import run
from b2ct.errors import B2ctError

REACHABLE = ["one-fe", "svc1", "svc2", "wn01", "wn02", "wn03"]


def test_per_host_stats_events_and_second_run_is_a_noop(
    local_site: Path, tmp_path: Path, probe: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first = run(local_site, playbook=probe, limit="all:!wn04", extravars={"probe_dir": str(out)})
    assert first.ok, first.summary()
    assert sorted(first.hosts) == REACHABLE
    assert all(h.changed == 2 and h.failed == 0 for h in first.hosts.values())
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".done") == [f"{h}.done" for h in REACHABLE]
    tasks = {e["task"] for e in first.events if e["event"] == "playbook_on_task_start"}
    assert {"Write a marker", "Write the done marker"} <= tasks
    assert (Path(first.log_dir) / "summary.json").is_file()

    second = run(local_site, playbook=probe, limit="all:!wn04", extravars={"probe_dir": str(out)})
    assert second.ok
    assert second.changed == 0, second.changed_tasks()


def test_failed_and_unreachable_hosts_are_named_and_the_others_finish(
    local_site: Path, tmp_path: Path, probe: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = run(local_site, playbook=probe, extravars={"probe_dir": str(out), "probe_fail_host": "svc2"})
    assert not result.ok
    assert result.failed_hosts == ["svc2"]
    assert result.unreachable_hosts == ["wn04"]
    assert "probe failure on svc2" in result.hosts["svc2"].error
    assert result.hosts["wn04"].error  # ssh's reason is kept for the summary
    finished = sorted(p.stem for p in out.glob("*.done"))
    assert finished == [h for h in REACHABLE if h != "svc2"]


def test_check_mode_changes_nothing(local_site: Path, tmp_path: Path, probe: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = run(local_site, playbook=probe, limit="wn01", check=True, extravars={"probe_dir": str(out)})
    assert result.ok and result.check
    assert list(result.hosts) == ["wn01"]
    assert result.hosts["wn01"].changed == 2  # what would change…
    assert list(out.iterdir()) == []  # …and nothing did


def test_bad_limit_and_missing_playbook_are_refused_before_running(local_site: Path, probe: Path) -> None:
    with pytest.raises(B2ctError, match="--limit: no host or group named 'wn99'"):
        run(local_site, playbook=probe, limit="wn01,wn99")
    with pytest.raises(B2ctError, match="no such playbook"):
        run(local_site, playbook="nope.yml")
