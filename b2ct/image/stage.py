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
import hashlib
import os
import posixpath
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from b2ct.connection import Connection, InventoryView
from b2ct.errors import B2ctError
from b2ct.image import fanout
from b2ct.image.sshagent import forwarding_agent
from b2ct.inventory.model import Site

PARTIAL_DIR = ".b2ct-partial"
LOCAL = "this machine"  # the name a local source goes by in progress and results
QCOW2_MAGIC = b"QFI\xfb"
PROBE_TIMEOUT = 900.0  # hashing a multi-GB image on a busy host's disk takes minutes
ATTEMPTS = 2  # a host gets a second try from another source before it is reported
_RC = re.compile(r"^B2CT_RSYNC_RC=(\d+)$", re.M)
_STAT = re.compile(r"^(Literal|Matched) data: ([\d,.']+) bytes", re.M)


@dataclass(frozen=True)
class ImageInfo:
    """The image as found at its source: where, name at the destination, size (bytes), sha256, format."""

    host: str  # LOCAL or an inventory host name
    path: str
    name: str
    size: int
    sha256: str
    format: Literal["qcow2", "raw"]


@dataclass(frozen=True)
class Node:
    """A host as this run sees it: how this machine reaches it, and how other hosts do."""

    name: str
    conn: Connection
    hop_address: str  # the address the other hosts send to (the private network's)


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


# -- the image at its source ------------------------------------------------------------------------------


def _format(header: bytes, where: str) -> Literal["qcow2", "raw"]:
    """qcow2 (by its magic, QEMU's docs/interop/qcow2.txt) or raw; a qcow2 overlay is refused: its backing
    file would be missing on the hosts."""
    if header[:4] != QCOW2_MAGIC:
        return "raw"
    backing_offset = int.from_bytes(header[8:16], "big") if len(header) >= 16 else 0
    if backing_offset:
        raise B2ctError(
            "the image is a qcow2 overlay (it has a backing file): the hosts would not have its base",
            where=where,
            hint="flatten it first: qemu-img convert -O qcow2 OVERLAY FLAT.qcow2",
        )
    return "qcow2"


def local_image(path: Path, name: str | None = None) -> ImageInfo:
    """Size, sha256 and format of an image file on this machine. Raises B2ctError if it is not a
    readable regular file or is a qcow2 overlay."""
    try:
        st = path.stat()
        if not path.is_file():
            raise B2ctError("not a regular file", where=path)
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            header = fh.read(16)
            digest.update(header)
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise B2ctError(f"cannot read the image: {exc.strerror}", where=path) from None
    fmt = _format(header, str(path))
    return ImageInfo(LOCAL, str(path.resolve()), name or path.name, st.st_size, digest.hexdigest(), fmt)


def remote_image(node: Node, path: str, name: str | None = None) -> ImageInfo:
    """The same facts for an image file on ``node``, read over ssh. Raises B2ctError when the host cannot
    be reached or has no such file."""
    q = shlex.quote(path)
    script = (
        f"if [ ! -f {q} ]; then echo B2CT_MISSING; exit 0; fi; stat -c %s -- {q}; "
        f"sha256sum -- {q} | cut -d' ' -f1; head -c 16 -- {q} | od -An -v -tx1"
    )
    proc = _run(node.conn.ssh_argv(script), PROBE_TIMEOUT)
    where = f"{node.name}:{path}"
    if proc.returncode != 0:
        raise B2ctError(f"cannot read the image on {node.name}: {_last_line(proc)}", where=where)
    lines = proc.stdout.split("\n")
    if lines[0].strip() == "B2CT_MISSING":
        raise B2ctError("no such file on the source host", where=where)
    try:
        size, sha = int(lines[0]), lines[1].strip()
        header = bytes.fromhex("".join(lines[2:]).replace(" ", ""))
    except (ValueError, IndexError):
        raise B2ctError(f"unexpected answer reading the image: {proc.stdout[:200]!r}", where=where) from None
    return ImageInfo(node.name, path, name or posixpath.basename(path), size, sha, _format(header, where))


# -- host keys for the hops -------------------------------------------------------------------------------


def _ssh_g(conn: Connection) -> dict[str, list[str]]:
    """The client options ssh would use for ``conn`` (ssh -G, ssh(1)): the known_hosts files, the name
    its key is filed under (HostKeyAlias), the port."""
    argv = ["ssh", "-G", *conn.ssh_options(), "-l", conn.user]
    if conn.port:
        argv += ["-p", str(conn.port)]
    proc = _run([*argv, conn.address], 30)
    if proc.returncode != 0:
        raise B2ctError(f"ssh -G for {conn.host} failed: {_last_line(proc)}", where=conn.host)
    out: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        out[key.lower()] = value.split()
    return out


def host_key_lines(conn: Connection, hop_address: str, hop_port: int) -> list[str]:
    """known_hosts lines naming ``hop_address`` with every key this machine trusts for ``conn``'s host.

    The keys are looked up as ssh would for the inventory's connection (same files, alias, port) with
    ssh-keygen -F (hashed entries included); their host field is rewritten to the address the other
    hosts use, since the key belongs to the host, not to one of its addresses. Revoked and CA lines are
    left out. Returns [] when this machine trusts no key for the host."""
    opts = _ssh_g(conn)
    port = int((opts.get("port") or ["22"])[0])
    lookup = (opts.get("hostkeyalias") or [conn.address])[0]
    if port != 22 and not opts.get("hostkeyalias"):
        lookup = f"[{lookup}]:{port}"
    files = [*opts.get("userknownhostsfile", []), *opts.get("globalknownhostsfile", [])]
    name = hop_address if hop_port == 22 else f"[{hop_address}]:{hop_port}"
    lines: list[str] = []
    for f in files:
        path = os.path.expanduser(f)
        if f == "none" or not os.path.isfile(path):
            continue
        proc = _run(["ssh-keygen", "-F", lookup, "-f", path], 30)
        for line in proc.stdout.splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#") or fields[0].startswith("@") or len(fields) < 3:
                continue
            entry = f"{name} {fields[1]} {fields[2]}"
            if entry not in lines:
                lines.append(entry)
    return lines


# -- running commands -------------------------------------------------------------------------------------


def _run(
    argv: list[str], timeout: float | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"no answer in {timeout:.0f} s")


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Warning: Permanently added")]
    return lines[-1] if lines else f"exit {proc.returncode}"


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
        proc = _run(node.conn.ssh_argv(script), PROBE_TIMEOUT)
        if "B2CT_OK" not in proc.stdout:
            return Outcome(node.name, "failed", reason=f"unreachable: {_last_line(proc)}")
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
            why = _last_line(subprocess.CompletedProcess(argv, rsync_rc, out, err))
            prefix = f"{source} failed: " if lost else ""
            if not lost and rsync_rc == 255 and "ssh:" in err:
                why = f"unreachable from {source}: {why}"
            return Outcome(
                target.name, "failed", source, round_no, reason=f"{prefix}rsync exit {rsync_rc}: {why}"
            ), lost
        outcome = Outcome(
            target.name, "sent", source, round_no, 0.0, _bytes(out, "Literal"), _bytes(out, "Matched")
        )
        check = _run(target.conn.ssh_argv(f"sha256sum -- {shlex.quote(self.target_path)}"), PROBE_TIMEOUT)
        got = check.stdout.split()[0] if check.returncode == 0 and check.stdout.split() else ""
        if got != self.image.sha256:
            _run(target.conn.ssh_argv(f"rm -f -- {shlex.quote(self.target_path)}"), 60)
            why = (
                f"sha256 {got[:12]}… differs from the source's"
                if got
                else f"cannot check: {_last_line(check)}"
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


# -- choosing hosts ---------------------------------------------------------------------------------------


def resolve_targets(site: Site, view: InventoryView, to: str) -> list[str]:
    """Host names for ``--to``: comma-separated inventory host and group names (``all`` too), in
    inventory order. Raises B2ctError naming an unknown part, or when nothing is chosen."""
    names = [h.name for h in site.hosts]
    chosen: set[str] = set()
    for part in (p.strip() for p in to.split(",")):
        if not part:
            continue
        if part in names:
            chosen.add(part)
        elif part in view.groups:
            chosen |= view.groups[part] & set(names)
        else:
            groups = sorted(g for g in view.groups if g not in ("all", "ungrouped"))
            raise B2ctError(
                f"--to: no host or group named {part!r} in the inventory",
                where=site.source,
                hint=f"groups: {', '.join(groups)}",
            )
    if not chosen:
        raise B2ctError(f"--to {to!r} names no host", where=site.source)
    return [n for n in names if n in chosen]


def node_for(site: Site, view: InventoryView, name: str) -> Node:
    """The Node for inventory host ``name``: Ansible's connection variables for this machine, the private
    network's address (else the connection address) for the other hosts."""
    from b2ct.connection import connection

    host = site.host(name)
    conn = connection(name, host.address, view.hostvars.get(name, {}))
    private = host.nics.get("private")
    hop = str(private.ip) if private is not None and private.ip is not None else conn.address
    return Node(name, conn, hop)
