"""pytest plugin: lab hosts for integration tests.

Enable it once for the whole suite (top-level tests/conftest.py): ``pytest_plugins = ["tests.lab_plugin"]``.

Fixtures
- ``lab`` (session): the default lab (svc1 frontend+service, svc2 service, wn1 wn2 workers), brought up
  once on first use and taken down at the end of the session, also when tests fail or are interrupted.
  It is a ``b2ct.lab.core.Lab``: ``.inventory`` (inventory dir), ``.hosts`` (names), ``.ssh(host, cmd)``,
  ``.exec(host, cmd)`` (inside the host without ssh), ``.outsider_exec(cmd)``, ``.ip(host)``, ...
- ``lab_factory`` (function): ``lab_factory(hosts=[...])`` or ``lab_factory(services=1, workers=2)`` starts
  another lab for one test and takes it down after that test; ``bond=True``: its hosts are QEMU guests with
  a bonded private network and a storage VLAN (``Lab.set_link`` cuts a member's cable).
- ``make_lab`` (plain function, not a fixture): a context manager for module- or class-scoped fixtures
  of your own: ``with make_lab(workers=1) as lab: ...``.
- ``cloud`` (session): a lab of its own made into the real cloud: every role deployed (OpenNebula 6.10
  from the lab's mirror), `cloud apply` (after a `--check` run on the fresh oned), every host
  MONITORED, the Belle II image and template registered. The lab has a fifth host, ``wn3``, that the
  site's inventory (``.inventory``, a copy of the lab's without it) does not have yet: the node a test
  adds with the lab's own inventory (``.lab.inventory``). A ``Cloud``: ``.lab``, ``.site``,
  ``.inventory``, ``.hosts`` (the cloud's hosts), ``.endpoint``, ``.session``, ``.one()`` (a pyone
  client), ``.oneadmin(cmd)`` (a command as oneadmin on the front-end), ``.planned`` / ``.applied`` (what
  the first check-mode and real applies said). Tests that break it put it back before they end.

Tests that use them should carry ``@pytest.mark.lab`` and ``@pytest.mark.slow``. Without root or
systemd-nspawn the fixtures skip the test instead of failing it.

Labs get unique names (several engineers and CI share one machine) and are labelled "pytest" with the
session's pid: a later session takes down labs of sessions that were killed before their teardown ran.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    bond: bool = False,
) -> Iterator[Lab]:
    """A lab for the duration of the block; always taken down, whatever happens inside. ``bond``: hosts
    are QEMU guests with a bonded private network and a storage VLAN (b2ct/lab/vm.py)."""
    _skip_unless_possible()
    reap_stale(LABEL)
    specs = plan_hosts(hosts, services, workers)
    with running_lab(_unique_name(), specs, label=LABEL, owner_pid=os.getpid(), bare=bare, bond=bond) as lab:
        yield lab


# Session labs are taken down right after the last test that uses them (pytest itself would keep them up
# to the end of the session, loading the 2 cores every later test runs on): each is entered on an
# ExitStack kept here, closed early by pytest_runtest_teardown, and again (a no-op) by its fixture.
_SESSION_LABS: dict[str, contextlib.ExitStack] = {}
_ITEMS: list[pytest.Item] = []


def _group(item: pytest.Item) -> int:
    names = getattr(item, "fixturenames", ())
    return 2 if "cloud" in names else 1 if "lab" in names else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of each session lab run together (order otherwise kept): labless tests, then the default lab's,
    then the cloud's, so at most one session lab is up at a time."""
    items.sort(key=_group)
    _ITEMS[:] = items


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    try:
        rest = _ITEMS[_ITEMS.index(item) + 1 :]
    except ValueError:
        return
    for name in list(_SESSION_LABS):
        if not any(name in getattr(i, "fixturenames", ()) for i in rest):
            _SESSION_LABS.pop(name).close()


# What a failed cloud test's report carries besides its assertion: the front-end's own view, read at once
# (a later test may change it). CI keeps only the report, not the lab.
_CLOUD_STATE = (
    "su - oneadmin -c 'onehost list; onevm list'; "
    'p=$(pidof oned) && echo "oned: $(ls /proc/$p/fd | wc -l) open files, '
    "limit $(awk '/open files/ {print $4}' /proc/$p/limits)\"; df -h / /var/lib/one/datastores/* | sort -u; "
    "echo '-- oned.log, last errors:'; grep -F '[E]' /var/log/one/oned.log | tail -n 15"
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    cloud = getattr(item, "funcargs", {}).get("cloud")
    if report.when != "call" or not report.failed or not isinstance(cloud, Cloud):
        return
    try:
        r = cloud.lab.ssh("svc1", _CLOUD_STATE, timeout=60)
        state = r.stdout + r.stderr
    except (OSError, subprocess.SubprocessError) as e:
        state = f"could not read it: {e}"
    report.sections.append(("cloud state at the failure (svc1)", state))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    with contextlib.ExitStack() as stack:
        _SESSION_LABS["lab"] = stack
        yield stack.enter_context(make_lab())


@pytest.fixture
def lab_factory() -> Iterator[Callable[..., Lab]]:
    stack = contextlib.ExitStack()

    def factory(
        hosts: Sequence[str] | None = None,
        *,
        services: int | None = None,
        workers: int | None = None,
        bond: bool = False,
    ) -> Lab:
        return stack.enter_context(make_lab(hosts, services=services, workers=workers, bond=bond))

    with stack:
        yield factory


def boot_problem(lab: Lab) -> str | None:
    """None when every host finished booting with no failed unit (failed boot units are started once
    more, up to three times), else what went wrong."""
    for host in lab.hosts:
        state = lab.ssh(host, "timeout 180 systemctl is-system-running --wait").stdout.strip()
        for _ in range(3):
            if state != "degraded":
                break
            lab.ssh(host, "u=$(systemctl --failed --plain --no-legend | awk '{print $1}'); "
                    "systemctl reset-failed; [ -z \"$u\" ] || systemctl start $u; sleep 1")  # fmt: skip
            state = lab.ssh(host, "systemctl is-system-running").stdout.strip()
        if state != "running":
            failed = lab.ssh(host, "systemctl --failed --plain --no-legend").stdout.strip()
            return f"{host} {state}: {failed}"
    return None


HOST_MONITORED = 2  # oned's HOST_STATES (host.xsd)


CLOUD_HOSTS = ("svc1", "svc2", "wn1", "wn2")
NEW_NODE = "wn3"  # in the lab, not yet in the site's inventory


@dataclass
class Cloud:
    lab: Lab
    site: Any
    inventory: Path
    hosts: list[str]
    endpoint: str
    session: str
    planned: list[str]
    applied: list[str]
    deploy_seconds: float

    def one(self) -> Any:
        from b2ct.opennebula.client import connect

        return connect(self.endpoint, self.session)

    def oneadmin(
        self, cmd: str, host: str = "svc1", timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """``cmd`` as oneadmin (login shell: its one_auth, its ssh agent is not involved) on ``host``."""
        return self.lab.ssh(host, f"su - oneadmin -c {shlex.quote(cmd)}", timeout=timeout)

    def host_states(self) -> dict[str, int]:
        return {str(h.NAME): int(h.STATE) for h in self.one().hostpool.info().HOST}

    def terminate(self, *vmids: int, timeout: float = 180) -> None:
        """``terminate-hard`` each VM and wait until oned has it DONE: a VM still in EPILOG sits on its host,
        and the next test's drain would find it there."""
        one = self.one()
        for vmid in vmids:
            with contextlib.suppress(Exception):  # already DONE, or never deployed and gone at once
                one.vm.action("terminate-hard", vmid)
        deadline = time.monotonic() + timeout
        while True:
            left = {v: int(one.vm.info(v).STATE) for v in vmids}
            if all(s == 6 for s in left.values()):  # VM_STATE DONE (vm.xsd)
                return
            if time.monotonic() > deadline:
                pytest.fail(f"VMs not DONE {timeout:.0f}s after terminate-hard: {left}")
            time.sleep(1)

    def wait_monitored(self, hosts: Sequence[str] | None = None, timeout: float = 180) -> None:
        """Until oned reports every host (default: the cloud's) MONITORED; fails naming the states seen."""
        want = set(hosts or self.hosts)
        deadline = time.monotonic() + timeout
        while True:
            states = self.host_states()
            if all(states.get(h) == HOST_MONITORED for h in want):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"hosts not MONITORED after {timeout:.0f}s: {states}")
            time.sleep(1)


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    import yaml

    from b2ct.deploy import run
    from b2ct.inventory import load
    from b2ct.opennebula import belle2, client, plan
    from b2ct.opennebula.reconcile import Reconciler

    problems = []
    with contextlib.ExitStack() as session_stack:
        _SESSION_LABS["cloud"] = session_stack
        mp = session_stack.enter_context(pytest.MonkeyPatch.context())
        # Deploy logs and the fact cache of these runs stay in the session's temporary directory.
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cloud-cache")))
        for _ in range(3):
            stack = session_stack.enter_context(contextlib.ExitStack())
            lab = stack.enter_context(make_lab([*CLOUD_HOSTS, NEW_NODE]))
            # A site deploys to cleanly booted hosts (see boot_problem); a lab that is not gets replaced.
            problem = boot_problem(lab)
            if problem is not None:
                problems.append(problem)
                stack.close()
                continue
            inventory = tmp_path_factory.mktemp("cloud") / "inventory"
            shutil.copytree(lab.inventory, inventory)
            hosts_yml = inventory / "hosts.yml"
            doc = yaml.safe_load(hosts_yml.read_text())
            del doc["all"]["children"]["worker"]["hosts"][NEW_NODE]
            hosts_yml.write_text(yaml.safe_dump(doc, sort_keys=False))
            started = time.monotonic()
            result = run(inventory)
            seconds = time.monotonic() - started
            if not result.ok:
                tail = Path(result.log_dir, "stdout.txt").read_text()[-4000:] if result.log_dir else ""
                pytest.fail(f"cloud deploy failed: {result.summary()}\n{tail}")
            site = load(inventory)
            endpoint = client.endpoint_for(site)
            session = client.frontend_session(site, inventory)
            one = client.connect(endpoint, session)
            the_plan = plan.build(site)
            planned = [str(c) for c in Reconciler(one, endpoint, check=True).apply(the_plan)]
            applied = [str(c) for c in Reconciler(one, endpoint).apply(the_plan)]
            c = Cloud(lab, site, inventory, list(CLOUD_HOSTS), endpoint, session, planned, applied, seconds)
            c.wait_monitored()
            belle2.register(one, endpoint, site)
            yield c
            return
    pytest.fail("no cleanly booted lab in 3 tries: " + "; ".join(problems))
