"""Make the lab plugin available here even before the top-level conftest enables it for everyone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # The top-level conftest may already load it (as "tests.lab_plugin"): never register it twice.
    if any(config.pluginmanager.has_plugin(n) for n in ("lab_plugin", "tests.lab_plugin")):
        return
    tests_dir = str(Path(__file__).resolve().parent.parent)
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    import lab_plugin

    config.pluginmanager.register(lab_plugin, "lab_plugin")
