from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_oned import FakeOned


@pytest.fixture
def fake() -> Iterator[FakeOned]:
    with FakeOned.running() as server:
        yield server
