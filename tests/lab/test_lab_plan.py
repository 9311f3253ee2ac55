"""Fast checks of host planning and names (no root needed)."""

from __future__ import annotations

import pytest

from b2ct.errors import B2ctError
from b2ct.lab.core import check_lab_name, plan_hosts


def test_default_hosts():
    specs = plan_hosts()
    assert [(s.name, s.kind, s.octet) for s in specs] == [
        ("svc1", "service", 11),
        ("svc2", "service", 12),
        ("wn1", "worker", 21),
        ("wn2", "worker", 22),
    ]


def test_counts_and_names():
    assert [s.name for s in plan_hosts(services=1, workers=2)] == ["svc1", "wn1", "wn2"]
    assert [s.name for s in plan_hosts(["wn3", "svc2"])] == ["wn3", "svc2"]


@pytest.mark.parametrize(
    ("hosts", "services", "workers"),
    [
        (["db1"], None, None),
        (["svc1", "svc1"], None, None),
        (["svc10"], None, None),
        (["svc1"], 1, None),
        (None, 0, 0),
    ],
)
def test_bad_plans(hosts, services, workers):
    with pytest.raises(B2ctError):
        plan_hosts(hosts, services, workers)


@pytest.mark.parametrize("name", ["", "Default", "1lab", "a" * 13, "lab-1", "../x"])
def test_bad_lab_names(name):
    with pytest.raises(B2ctError):
        check_lab_name(name)


def test_lab_refuses_to_start_where_it_would_fill_the_disk(tmp_path, monkeypatch):
    """Checked against this machine's real free space: a lab one host too big for it is refused up front,
    naming the directory (not yet made), what it needs and what is free."""
    import shutil

    from b2ct.lab import core

    state = tmp_path / "not-yet" / "lab"
    monkeypatch.setattr(core, "STATE_ROOT", state)
    core._check_space(0, image_missing=False)
    too_many = shutil.disk_usage(tmp_path).free // core.HOST_SPACE + 1
    with pytest.raises(B2ctError) as err:
        core._check_space(too_many, image_missing=False)
    line = err.value.oneline()
    assert str(state) in line and "not enough free space for the lab" in line and "GiB free" in line, line
    assert "B2CT_LAB_STATE" in line, line
    assert not state.exists()
