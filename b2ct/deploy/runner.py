"""Run a playbook through ansible-runner: fresh private data dir, tuned SSH, events to a progress display.

``run()`` is the Python API (``b2ct upgrade`` and the tests use it); the CLI only adds argument parsing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from b2ct import resources, tools
from b2ct.deploy.result import STAT_KEYS, DeployResult, HostStats
from b2ct.errors import B2ctError
from b2ct.fsutil import atomic_write
from b2ct.inventory import Site, load

EventSink = Callable[[dict[str, Any]], None]

# Events worth keeping in the result: task boundaries and per-host outcomes (not verbose/debug output).
_KEPT_EVENTS = {
    "playbook_on_play_start",
    "playbook_on_task_start",
    "runner_on_ok",
    "runner_on_failed",
    "runner_on_unreachable",
    "runner_on_skipped",
    "runner_item_on_failed",
    "playbook_on_stats",
}
_KEEP_LOGS = 10
# ansible-core's default COLLECTIONS_PATHS (ansible-config list); site-packages' ansible_collections (PyPI's
# `ansible`, where community.general and the others come from) is searched besides, through sys.path.
_DEFAULT_COLLECTIONS = "~/.ansible/collections:/usr/share/ansible/collections"


def content_root() -> Path:
    """The b2ct.cloud collection's root: roles/, playbooks/, plugins/ (b2ct.resources says where it is)."""
    return resources.collection_dir()


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "b2ct"


def _inventory_digest(inventory: Path) -> str:
    """Key for the fact cache: a re-created inventory (a new lab) must not see the old hosts' facts."""
    h = hashlib.sha256(str(inventory.resolve()).encode())
    files = [inventory] if inventory.is_file() else sorted(p for p in inventory.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p}:{st.st_mtime_ns}:{st.st_size}".encode())
    return h.hexdigest()[:16]


def mitogen_strategies() -> Path | None:
    """Mitogen's strategy plugins, unless B2CT_MITOGEN=0 or it is not installed.

    Mitogen keeps one Python interpreter per host for the whole run instead of starting one per task:
    re-deploys, mostly checks that change nothing, take about half the time.
    """
    if os.environ.get("B2CT_MITOGEN", "1").strip().lower() in ("0", "no", "false", "off"):
        return None
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugins = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return plugins if (plugins / "mitogen_linear.py").is_file() else None


def ansible_env(root: Path, inventory: Path, forks: int, collections: Path) -> dict[str, str]:
    """Environment for ansible-playbook: the settings that make runs fast and repeatable.

    ``root`` is the collection's root (roles by their short names, as the playbooks call them);
    ``collections`` a collections path holding b2ct.cloud (its modules, which the roles call by FQCN),
    searched before the usual ones so that a b2ct.cloud of another version installed there never runs."""
    # ssh's ControlPath must fit in a unix socket name (108 bytes): keep the directory short and stable,
    # so a re-deploy within ControlPersist reuses the connections of the previous run.
    control_dir = Path(tempfile.gettempdir()) / f"b2ct-ssh-{os.getuid()}"
    control_dir.mkdir(mode=0o700, exist_ok=True)
    facts = cache_dir() / "facts" / _inventory_digest(inventory)
    facts.mkdir(parents=True, exist_ok=True)
    env = {
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
            [str(collections), os.environ.get("ANSIBLE_COLLECTIONS_PATH", _DEFAULT_COLLECTIONS)]
        ),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=120s -o ServerAliveInterval=5 "
        "-o ServerAliveCountMax=3",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_SSH_CONTROL_PATH": "%(directory)s/%%C",
        "ANSIBLE_SSH_RETRIES": "2",
        "ANSIBLE_TIMEOUT": "15",
        "ANSIBLE_FORKS": str(forks),
        # Facts: only what the roles read, cached per inventory for a few minutes (re-deploys skip setup).
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_GATHER_SUBSET": "min,network",
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "600",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_INTERPRETER_PYTHON": "auto_silent",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_NOCOLOR": "True",
    }
    if (strategies := mitogen_strategies()) is not None:
        env["ANSIBLE_STRATEGY_PLUGINS"] = str(strategies)
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
    return env


def _trim(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("event_data", {})
    out: dict[str, Any] = {
        "event": event.get("event", ""),
        "host": data.get("host") or data.get("remote_addr") or "",
        "task": data.get("task", ""),
        "role": data.get("role", ""),
        "play": data.get("play", ""),
        "changed": bool((data.get("res") or {}).get("changed", False)) if "res" in data else False,
        "time": time.monotonic(),
    }
    res = data.get("res") or {}
    if out["event"] in ("runner_on_failed", "runner_on_unreachable", "runner_item_on_failed"):
        out["msg"] = _failure_message(res)
        out["ignore_errors"] = bool(data.get("ignore_errors"))
    if out["event"] == "playbook_on_stats":
        out["stats"] = {k: data.get(k) or {} for k in STAT_KEYS}
    return out


def _failure_message(res: Mapping[str, Any]) -> str:
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    if not msg and res.get("results"):  # loops: the first failed item's message
        for item in res["results"]:
            if isinstance(item, dict) and item.get("failed"):
                msg = item.get("msg") or item.get("stderr") or ""
                break
    return " ".join(str(msg).split())[:400]


def _resolve_inventory(inventory: str | Path) -> tuple[Path, Site]:
    path = Path(inventory)
    site = load(path)  # validation first: a bad inventory raises B2ctError before anything runs
    return path.resolve(), site


@contextmanager
def _cancel_on_sigterm(flag: threading.Event) -> Iterator[None]:
    """SIGTERM, SIGHUP (a dropped ssh session) and Ctrl-C ask ansible-runner to stop its child; the run
    then ends as 'canceled'."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}

    def handler(signum: int, frame: object) -> None:
        flag.set()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _ended_with_us(private: Path, path: str | None = None) -> dict[str, str]:
    """A PATH (``path``, default: this process's) whose ansible-playbook gets SIGTERM when the thread that
    started it dies.

    ansible-runner starts ansible-playbook on a pty, in a session of its own, with SIGHUP ignored: when
    b2ct is killed outright (SIGKILL, the OOM killer) nothing stops it, and it spins on the closed pty
    for good. setpriv's parent-death signal ties its life to ours. Without setpriv, or where the
    temporary directory is mounted noexec: nothing to change.
    """
    path = path if path is not None else os.environ.get("PATH", os.defpath)
    real, setpriv = tools.find("ansible-playbook"), tools.find("setpriv")
    if real is None or setpriv is None:
        return {}
    bindir = private / "bin"
    bindir.mkdir()
    wrapper = bindir / "ansible-playbook"
    argv = shlex.join([setpriv, "--pdeathsig", "TERM", "--", real])
    wrapper.write_text(f'#!/bin/sh\nexec {argv} "$@"\n')
    wrapper.chmod(0o755)
    if not os.access(wrapper, os.X_OK):  # a temporary directory mounted noexec
        return {}
    return {"PATH": f"{bindir}{os.pathsep}{path}"}


def run(
    inventory: str | Path,
    *,
    limit: str | Sequence[str] | None = None,
    tags: str | Sequence[str] | None = None,
    check: bool = False,
    playbook: str | Path = "site.yml",
    extravars: Mapping[str, Any] | None = None,
    on_event: EventSink | None = None,
    keep_logs: bool = True,
) -> DeployResult:
    """Run ``playbook`` (a name under playbooks/ or a path) on the hosts of ``inventory``.

    Every host runs to the end even when others fail (ansible's default); the result says who failed.
    """
    inv_path, site = _resolve_inventory(inventory)
    root = content_root()
    book = Path(playbook)
    if not book.is_absolute() and not book.exists():
        book = resources.playbooks_dir() / book
    if not book.is_file():
        raise B2ctError(f"no such playbook: {playbook}", hint=f"playbooks are in {resources.playbooks_dir()}")
    limit_s = ",".join(limit) if isinstance(limit, list | tuple) else limit
    tags_s = ",".join(tags) if isinstance(tags, list | tuple) else tags
    if limit_s:
        # Plain names are checked as every command checks them; Ansible's patterns go to Ansible as given.
        from b2ct.connection import ansible_view, select

        plain = ",".join(p for p in limit_s.split(",") if p and not any(ch in p for ch in "*?![:&~"))
        select(ansible_view(Path(inventory)), [h.name for h in site.hosts], plain, where=str(inventory))

    import ansible_runner  # slow import: only when a run really happens

    # The ansible-playbook installed with b2ct: with pipx, its environment's bin is not on PATH.
    playbook_exe = tools.need("ansible-playbook")
    forks = max(5, len(site.hosts))
    events: list[dict[str, Any]] = []
    hosts: dict[str, HostStats] = {h.name: HostStats() for h in site.hosts}
    cancel = threading.Event()

    def handle(event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        if kind in _KEPT_EVENTS:
            trimmed = _trim(event)
            events.append(trimmed)
            if kind in ("runner_on_failed", "runner_on_unreachable") and not trimmed.get("ignore_errors"):
                hs = hosts.setdefault(trimmed["host"], HostStats())
                if not hs.error:
                    hs.error = f"{trimmed['task']}: {trimmed.get('msg', '')}"
            if on_event is not None:
                on_event(trimmed)
        return True  # ansible-runner drops the event (and the stats) unless the handler returns True

    start = time.monotonic()
    private = Path(tempfile.mkdtemp(prefix="b2ct-deploy-"))
    try:
        env = ansible_env(root, inv_path, forks, resources.collections_path(private / "collections"))
        env["PATH"] = os.pathsep.join([str(Path(playbook_exe).parent), os.environ.get("PATH", os.defpath)])
        env.update(_ended_with_us(private, env["PATH"]))
        with _cancel_on_sigterm(cancel):
            r = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(resources.playbooks_dir()),
                playbook=str(book.resolve()),
                inventory=str(inv_path),
                limit=limit_s or None,
                tags=tags_s or None,
                cmdline="--check" if check else None,
                extravars=dict(extravars or {}),
                envvars=env,
                forks=forks,
                # Not "jsonfile": with that name ansible-runner points the cache into the private data dir
                # (removed after each run); this way our ANSIBLE_CACHE_PLUGIN_CONNECTION stands.
                fact_cache_type="ansible.builtin.jsonfile",
                event_handler=handle,
                cancel_callback=cancel.is_set,
                quiet=True,
                suppress_env_files=True,
                timeout=None,
            )
        stdout = r.stdout.read() if r.stdout else ""
        status, rc = r.status, int(r.rc if r.rc is not None else 1)
        stats = r.stats or {}
    finally:
        shutil.rmtree(private, ignore_errors=True)

    for key, field_name in STAT_KEYS.items():
        for host, count in (stats.get(key) or {}).items():
            setattr(hosts.setdefault(host, HostStats()), field_name, int(count))
    if limit_s:  # hosts outside the limit did not take part: leave them out of the summary
        ran = {h for key in STAT_KEYS for h in (stats.get(key) or {})}
        hosts = {h: s for h, s in hosts.items() if h in ran or s.error}
    result = DeployResult(
        status=status,
        rc=rc,
        hosts=hosts,
        events=events,
        duration=time.monotonic() - start,
        check=check,
        playbook=str(book),
    )
    if keep_logs:
        result.log_dir = str(_keep(result, stdout))
    if cancel.is_set():
        raise KeyboardInterrupt
    return result


def _keep(result: DeployResult, stdout: str) -> Path:
    """Keep the summary and output of the last runs (the private data dir itself is removed)."""
    logs = cache_dir() / "deploy"
    logs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=logs))
    atomic_write(run_dir / "summary.json", json.dumps(result.summary(), indent=1) + "\n")
    atomic_write(run_dir / "stdout.txt", stdout)
    for old in sorted(p for p in logs.iterdir() if p.is_dir())[:-_KEEP_LOGS]:
        shutil.rmtree(old, ignore_errors=True)
    return run_dir
