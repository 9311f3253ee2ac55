"""pytest plugin: lab hosts for integration tests.

Enable it once for the whole suite (top-level tests/conftest.py): ``pytest_plugins = ["tests.lab_plugin"]``.

Fixtures
- ``lab`` (session): the default lab (svc1 frontend+service, svc2 service, wn1 wn2 workers), brought up
  once on first use and taken down at the end of the session, also when tests fail or are interrupted.
  It is a ``b2ct.lab.core.Lab``: ``.inventory`` (inventory dir), ``.hosts`` (names), ``.ssh(host, cmd)``,
  ``.exec(host, cmd)`` (inside the host without ssh), ``.outsider_exec(cmd)``, ``.ip(host)``, ...
- ``lab_factory`` (function): ``lab_factory(hosts=[...])`` or ``lab_factory(services=1, workers=2)`` starts
  another lab for one test and takes it down after that test.
- ``make_lab`` (plain function, not a fixture): a context manager for module- or class-scoped fixtures
  of your own: ``with make_lab(workers=1) as lab: ...``.

Tests that use them should carry ``@pytest.mark.lab`` and ``@pytest.mark.slow``. Without root or
systemd-nspawn the fixtures skip the test instead of failing it.

Labs get unique names (several engineers and CI share one machine) and are labelled "pytest" with the
session's pid: a later session takes down labs of sessions that were killed before their teardown ran.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Callable, Iterator, Sequence

import pytest

from b2ct.lab.core import Lab, plan_hosts, reap_stale, running_lab

LABEL = "pytest"
_counter = itertools.count()


def _skip_unless_possible() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    for tool in ("systemd-nspawn", "debootstrap", "ip", "losetup"):
        if shutil.which(tool) is None:
            pytest.skip(f"lab hosts need {tool} (apt-get install $(cat .ci/packages/lab.apt))")


def _unique_name() -> str:
    # 12 characters at most: "p" + pid (base 36) + counter.
    pid = ""
    n = os.getpid()
    while n:
        n, d = divmod(n, 36)
        pid = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + pid
    return f"p{pid}x{next(_counter)}"[:12]


@contextlib.contextmanager
def make_lab(
    hosts: Sequence[str] | None = None,
    *,
    services: int | None = None,
    workers: int | None = None,
    bare: bool = False,
) -> Iterator[Lab]:
    """A lab for the duration of the block; always taken down, whatever happens inside."""
    _skip_unless_possible()
    reap_stale(LABEL)
    specs = plan_hosts(hosts, services, workers)
    with running_lab(_unique_name(), specs, label=LABEL, owner_pid=os.getpid(), bare=bare) as lab:
        yield lab


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    with make_lab() as the_lab:
        yield the_lab


@pytest.fixture
def lab_factory() -> Iterator[Callable[..., Lab]]:
    stack = contextlib.ExitStack()

    def factory(
        hosts: Sequence[str] | None = None, *, services: int | None = None, workers: int | None = None
    ) -> Lab:
        return stack.enter_context(make_lab(hosts, services=services, workers=workers))

    with stack:
        yield factory
