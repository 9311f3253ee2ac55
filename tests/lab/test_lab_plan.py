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
