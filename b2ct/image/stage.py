"""Stage a VM image into every target host's local cache: probe, then fan out round by round, verify.

Who moves the bytes: the first round starts from the source (a file on this machine, or on a host of the
inventory); every host that then holds a verified copy serves one more host per round (fanout.py), with
rsync over ssh from that host to the next one's private address. Hosts authenticate to each other with
the controller's key through a forwarded agent (sshagent.py), and check each other's host key against
the keys this machine already trusts for them (its known_hosts files, as `ssh -G` resolves them for the
inventory's connection), written to a temporary file on the sending host for the length of one transfer.

What makes a run safe to repeat or interrupt (rsync(1)):
- a host whose file already has the image's size and sha256 is not sent anything, and serves others;
- rsync writes into a temporary file and renames it: the cache never shows a half-copied image;
- ``--partial-dir`` keeps the bytes of an interrupted transfer beside the cache; the next run sends only
  what they lack (rsync's delta transfer against that partial file);
- every copy is checked by sha256 on its host before that host serves anyone; a copy that does not match
  is removed.
A host that cannot be reached, lacks rsync, or fails twice is reported by name; the others go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import posixpath
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from b2ct.image import fanout
from b2ct.image.hosts import Node, host_key_lines, last_line, run
from b2ct.image.source import LOCAL, PROBE_TIMEOUT, ImageInfo
from b2ct.image.sshagent import forwarding_agent

PARTIAL_DIR = ".b2ct-partial"
ATTEMPTS = 2  # a host gets a second try from another source before it is reported
_RC = re.compile(r"^B2CT_RSYNC_RC=(\d+)$", re.M)
_STAT = re.compile(r"^(Literal|Matched) data: ([\d,.']+) bytes", re.M)


@dataclass
class Outcome:
    host: str
    status: Literal["sent", "present", "failed"]
    source: str = ""
    round: int = 0
    seconds: float = 0.0
    literal_bytes: int = 0  # bytes rsync sent as data
    matched_bytes: int = 0  # bytes rsync found already there (a partial copy of an interrupted run)
    reason: str = ""


@dataclass
class StageResult:
    image: ImageInfo
    dest: str
    outcomes: dict[str, Outcome]
    rounds: int
    seconds: float
    strategy: str

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line: what was staged where, how, and who failed."""
        sent = [o for o in self.outcomes.values() if o.status == "sent"]
        present = [o for o in self.outcomes.values() if o.status == "present"]
        data = sum(o.literal_bytes for o in sent)
        reused = sum(o.matched_bytes for o in sent)
        text = (
            f"{self.image.name} ({_mib(self.image.size)}, sha256 {self.image.sha256[:12]}…) in "
            f"{self.dest}: {len(sent) + len(present)}/{len(self.outcomes)} host(s) staged "
            f"({len(sent)} sent, {len(present)} already had it), {self.rounds} round(s), "
            f"{self.seconds:.1f}s, {_mib(data)} sent"
        )
        if reused:
            text += f", {_mib(reused)} reused from partial copies"
        if self.failed:
            text += "; FAILED: " + ", ".join(o.host for o in self.failed)
        return text


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _bytes(text: str, kind: str) -> int:
    for m in _STAT.finditer(text):
        if m.group(1) == kind:
            return int(re.sub(r"\D", "", m.group(2)) or 0)
    return 0


class _Procs:
    """The transfer processes running now, so an interrupted run can stop them (by their pids)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[str]] = set()
        self.stopping = False

    def run(self, argv: list[str], env: dict[str, str] | None) -> tuple[int, str, str]:
        with self._lock:
            if self.stopping:
                return 130, "", "interrupted"
            # stdin is a pipe we hold open until the process ends: the sending host's wrapper stops rsync
            # when it closes, i.e. when this run ends early (communicate() would close it at once)
            r, w = os.pipe()
            try:
                proc = subprocess.Popen(
                    argv, stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
                )
            finally:
                os.close(r)
            self._procs.add(proc)
        try:
            out, err = proc.communicate()
        finally:
            os.close(w)
            with self._lock:
                self._procs.discard(proc)
        return proc.returncode, out, err

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the stager -------------------------------------------------------------------------------------------


@dataclass
class Stager:
    """One staging run: ``image`` from its source to ``targets`` (Nodes) into directory ``dest``.

    ``strategy``: "fanout" (every holder serves, log N rounds) or "sequential" (the source alone, one host
    at a time: the baseline the benchmark compares with). ``source`` is the Node holding the image when it
    is not on this machine. ``progress`` receives one line per event (round start, each transfer's end).
    """

    image: ImageInfo
    targets: Sequence[Node]
    dest: str
    source: Node | None = None
    strategy: Literal["fanout", "sequential"] = "fanout"
    progress: Callable[[str], None] = print
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    _keys: dict[str, list[str]] = field(default_factory=dict)
    _procs: _Procs = field(default_factory=_Procs)
    _agent: str = ""

    @property
    def target_path(self) -> str:
        return posixpath.join(self.dest, self.image.name)

    def run(self) -> StageResult:
        t0 = time.monotonic()
        self._probe_all()
        pending = [n for n in self.targets if n.name not in self.outcomes]
        present = [name for name, o in self.outcomes.items() if o.status == "present"]
        rounds = 0
        if pending:
            # hosts send to hosts unless this machine alone sends (one target, or one at a time)
            hops = self.source is not None or (self.strategy == "fanout" and len(pending) > 1)
            keys = [n.conn.key or "" for n in [*self.targets, *([self.source] if self.source else [])]]
            with forwarding_agent(keys) if hops else contextlib.nullcontext("") as sock:
                self._agent = sock
                rounds = self._rounds(pending, present)
        return StageResult(self.image, self.dest, self.outcomes, rounds, time.monotonic() - t0, self.strategy)

    # -- probing ---------------------------------------------------------------------------------------
    def _probe_all(self) -> None:
        """Which targets are reachable, have rsync, already hold the image; and their host keys."""
        self.progress(f"probing {len(self.targets)} host(s)")
        with cf.ThreadPoolExecutor(max(1, min(32, len(self.targets)))) as pool:
            for node, result in zip(self.targets, pool.map(self._probe, self.targets), strict=True):
                if result is not None:
                    self.outcomes[node.name] = result
        for o in self.outcomes.values():
            self.progress(
                f"{o.host}: " + ("already has it (sha256 matches)" if o.status == "present" else o.reason)
            )

    def _probe(self, node: Node) -> Outcome | None:
        f, d = shlex.quote(self.target_path), shlex.quote(posixpath.join(self.dest, PARTIAL_DIR))
        script = (
            "command -v rsync >/dev/null 2>&1 || echo B2CT_NO_RSYNC; "
            f"if [ -f {f} ]; then s=$(stat -c %s -- {f}); echo B2CT_SIZE=$s; "
            f'if [ "$s" = {self.image.size} ]; then '
            f'echo B2CT_SHA=$(sha256sum -- {f} | cut -d" " -f1); fi; fi; '
            f"[ -d {d} ] && echo B2CT_PARTIAL=$(du -sb {d} | cut -f1); echo B2CT_OK"
        )
        proc = run(node.conn.ssh_argv(script), PROBE_TIMEOUT)
        if "B2CT_OK" not in proc.stdout:
            return Outcome(node.name, "failed", reason=f"unreachable: {last_line(proc)}")
        if "B2CT_NO_RSYNC" in proc.stdout:
            return Outcome(node.name, "failed", reason="rsync is not installed there")
        if f"B2CT_SHA={self.image.sha256}" in proc.stdout:
            return Outcome(node.name, "present")
        port = node.conn.port or 22
        keys = host_key_lines(node.conn, node.hop_address, port)
        if not keys:
            return Outcome(
                node.name,
                "failed",
                reason=f"this machine trusts no ssh host key for {node.conn.address}: the other hosts "
                "could not check they reach the right host (connect once with ssh, or add its key)",
            )
        self._keys[node.name] = keys
        return None

    # -- rounds ----------------------------------------------------------------------------------------
    def _rounds(self, pending: list[Node], present: list[str]) -> int:
        by_name = {n.name: n for n in self.targets}
        origin = self.source.name if self.source else LOCAL
        holders = [origin] if self.strategy == "sequential" else [origin, *present]
        queue = [n.name for n in pending]
        attempts: dict[str, int] = {}
        lost = ""
        planned = (
            len(queue) if self.strategy == "sequential" else fanout.rounds_needed(len(holders), len(queue))
        )
        rounds = 0
        try:
            while queue:
                if not holders:
                    for name in queue:
                        why = f"no host left to send the image (last lost: {lost})"
                        self.outcomes[name] = Outcome(name, "failed", reason=why)
                    break
                rounds += 1
                pairs = fanout.pair_up(holders, queue)
                for _, target in pairs:
                    queue.remove(target)
                shown = ", ".join(f"{s} → {t}" for s, t in pairs)
                self.progress(f"round {rounds}/{max(planned, rounds)}: {len(holders)} holder(s) → {shown}")
                pool = cf.ThreadPoolExecutor(len(pairs))
                try:
                    futures = {pool.submit(self._send, s, by_name[t], rounds): (s, t) for s, t in pairs}
                    done = [(futures[f], f.result()) for f in futures]
                except BaseException:
                    self._procs.stop()  # Ctrl-C: stop the transfers, so the shutdown below does not wait
                    raise
                finally:
                    pool.shutdown(wait=True)
                for (source, target), (outcome, source_lost) in done:
                    if outcome.status == "sent":
                        self.outcomes[target] = outcome
                        if self.strategy == "fanout":
                            holders.append(target)
                        self.progress(
                            f"{source} → {target}: {_mib(outcome.literal_bytes)} in {outcome.seconds:.1f}s"
                            + (f" ({_mib(outcome.matched_bytes)} reused)" if outcome.matched_bytes else "")
                            + ", sha256 ok"
                        )
                        continue
                    if source_lost and source in holders:
                        holders.remove(source)  # the target is not to blame: it goes back in the queue
                        queue.append(target)
                        lost = f"{source}: {outcome.reason}"
                        self.progress(f"{source} → {target}: {outcome.reason}; {source} serves no more")
                        continue
                    attempts[target] = attempts.get(target, 0) + 1
                    if attempts[target] < ATTEMPTS:
                        queue.append(target)
                        self.progress(f"{source} → {target}: {outcome.reason}; will try again")
                    else:
                        self.outcomes[target] = outcome
                        self.progress(f"{source} → {target}: FAILED: {outcome.reason}")
        except BaseException:
            self._procs.stop()
            raise
        return rounds

    def _rsync_args(self) -> list[str]:
        # the destination directory is made by the receiving side's shell, for rsync older than 3.2.3
        # (no --mkpath: EL8 has 3.1.3)
        mkdir = f"mkdir -p {shlex.quote(self.dest)} && rsync"
        return [
            "rsync", "--sparse", "--times", "--chmod=F0644", f"--partial-dir={PARTIAL_DIR}", "--stats",
            "--no-human-readable", f"--rsync-path={mkdir}",
        ]  # fmt: skip

    def _send(self, source: str, target: Node, round_no: int) -> tuple[Outcome, bool]:
        """One transfer and its check. Returns the outcome and whether the *source* failed (so the target
        is not to blame)."""
        t0 = time.monotonic()
        user, port = target.conn.user, target.conn.port or 22
        dest = f"{user}@{_rsync_host(target.hop_address)}:{self.target_path}"
        if source == LOCAL:
            # this machine sends: its own ssh options for the target, exactly as the inventory connects
            ssh = ["ssh", *target.conn.ssh_options(), "-l", user, "-p", str(port)]
            if target.conn.key:
                ssh += ["-i", target.conn.key, "-o", "IdentitiesOnly=yes"]
            dest = f"{user}@{_rsync_host(target.conn.address)}:{self.target_path}"
            argv = [*self._rsync_args(), "-e", shlex.join(ssh), self.image.path, dest]
            rc, out, err = self._procs.run(argv, {**os.environ, "LC_ALL": "C"})
            lost = False
            rsync_rc = rc
        else:
            argv = self._remote_send_argv(source, target, dest, port)
            rc, out, err = self._procs.run(argv, {**os.environ, "SSH_AUTH_SOCK": self._agent})
            m = _RC.search(out)
            lost = m is None  # the wrapper never reported: the sending host itself failed or went away
            rsync_rc = int(m.group(1)) if m else rc
        if self._procs.stopping:
            return Outcome(target.name, "failed", source, round_no, reason="interrupted"), False
        if rsync_rc != 0:
            why = last_line(subprocess.CompletedProcess(argv, rsync_rc, out, err))
            prefix = f"{source} failed: " if lost else ""
            if not lost and rsync_rc == 255 and "ssh:" in err:
                why = f"unreachable from {source}: {why}"
            return Outcome(
                target.name, "failed", source, round_no, reason=f"{prefix}rsync exit {rsync_rc}: {why}"
            ), lost
        outcome = Outcome(
            target.name, "sent", source, round_no, 0.0, _bytes(out, "Literal"), _bytes(out, "Matched")
        )
        check = run(target.conn.ssh_argv(f"sha256sum -- {shlex.quote(self.target_path)}"), PROBE_TIMEOUT)
        got = check.stdout.split()[0] if check.returncode == 0 and check.stdout.split() else ""
        if got != self.image.sha256:
            run(target.conn.ssh_argv(f"rm -f -- {shlex.quote(self.target_path)}"), 60)
            why = (
                f"sha256 {got[:12]}… differs from the source's"
                if got
                else f"cannot check: {last_line(check)}"
            )
            return Outcome(target.name, "failed", source, round_no, reason=why), False
        outcome.seconds = time.monotonic() - t0
        return outcome, False

    def _remote_send_argv(self, source: str, target: Node, dest: str, port: int) -> list[str]:
        """ssh -A to the sending host, running rsync there towards ``target``.

        The wrapper writes the target's trusted host keys to a temporary file for the hop, runs rsync in the
        background and stops it if our ssh goes away (its stdin closes): an interrupted run leaves no rsync
        behind, only the partial file the next run resumes from. It reports rsync's exit code on stdout, so
        a failure of the sending host (no report at all) is told from one of the transfer."""
        node = (
            self.source
            if self.source and self.source.name == source
            else next(n for n in self.targets if n.name == source)
        )
        src_path = self.image.path if node is self.source else self.target_path
        known = " ".join(shlex.quote(k) for k in self._keys[target.name])
        script = (
            "exec 3<&0; kh=$(mktemp) || exit 97; trap 'rm -f \"$kh\"' EXIT; "
            f"printf '%s\\n' {known} > \"$kh\"; "
            'hop="ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$kh '
            "-o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -o ServerAliveInterval=5 "
            f'-o ServerAliveCountMax=6 -p {port}"; '
            f'LC_ALL=C {shlex.join(self._rsync_args())} -e "$hop" '
            f"{shlex.quote(src_path)} {shlex.quote(dest)} "
            "3<&- & pid=$!; "
            # a background job's stdin is /dev/null (POSIX): the watcher reads ours through fd 3
            "( while read -r _; do :; done; kill -TERM $pid 2>/dev/null ) <&3 & w=$!; "
            'wait $pid; rc=$?; kill $w 2>/dev/null; echo "B2CT_RSYNC_RC=$rc"'
        )
        argv = node.conn.ssh_argv(f"sh -c {shlex.quote(script)}")
        # first value wins in ssh: forwarding on, and no shared master connection that would lack it
        return ["ssh", "-o", "ForwardAgent=yes", "-o", "ControlPath=none", *argv[1:]]


def _rsync_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
