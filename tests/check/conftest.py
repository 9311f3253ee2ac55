"""Fixtures for `b2ct check` tests: one prepared lab for the module's integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def ready_lab() -> Iterator[Any]:
    """The default lab (svc1, svc2, wn1, wn2) put by hand into the state every check expects."""
    from tests.check.labsetup import prepare
    from tests.lab_plugin import make_lab

    with make_lab() as lab:
        prepare(lab)
        yield lab
