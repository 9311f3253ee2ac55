"""`b2ct image stage`: the fan-out plan, bad input, and staging on real lab hosts (rsync over ssh between
the hosts with the run's forwarded agent, nothing mocked)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from b2ct.image import fanout
from b2ct.lab.core import Lab
from b2ct.lab.guest import write_image
from tests.conftest import EXAMPLE, REPO, CliResult, assert_one_line_error, run_cli, wait_for
from tests.lab_plugin import make_lab

WORKERS = ("wn1", "wn2", "wn3")
DEST = "/var/lib/b2ct/images"


# -------------------------------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    ("holders", "targets", "rounds"),
    [(1, 0, 0), (1, 1, 1), (1, 2, 2), (1, 3, 2), (1, 7, 3), (1, 8, 4), (1, 15, 4), (2, 6, 2), (3, 5, 2)],
)
def test_rounds_grow_as_log2(holders: int, targets: int, rounds: int) -> None:
    assert fanout.rounds_needed(holders, targets) == rounds


def test_every_holder_serves_one_host_per_round() -> None:
    holders, pending, rounds = ["src"], [f"h{i}" for i in range(7)], 0
    while pending:
        pairs = fanout.pair_up(holders, pending)
        assert len({s for s, _ in pairs}) == len(pairs)  # no source sends twice in a round
        for _, t in pairs:
            pending.remove(t)
        holders += [t for _, t in pairs]
        rounds += 1
    assert rounds == fanout.rounds_needed(1, 7) == 3
    assert fanout.pair_up(["src"], ["a", "b", "c"]) == [("src", "a")]  # sequential: one at a time


def test_no_holder_is_refused() -> None:
    with pytest.raises(ValueError):
        fanout.rounds_needed(0, 3)


# -------------------------------------------------------------------------------------- bad input


def _image(tmp_path: Path) -> Path:
    return write_image(tmp_path / "guest.qcow2")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--to", "nosuchgroup"], ["--to", "nosuchgroup", "groups:"]),
        (["--to", "worker", "--dest", "relative/dir"], ["--dest", "absolute"]),
        (["--to", "worker", "--name", "a/b"], ["--name", "a/b"]),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    result = run_cli("image", "stage", _image(tmp_path), *args, "-i", EXAMPLE)
    assert_one_line_error(result, *fragments)


def test_missing_image_is_named(tmp_path: Path) -> None:
    result = run_cli("image", "stage", tmp_path / "nope.qcow2", "--to", "worker", "-i", EXAMPLE)
    assert_one_line_error(result, "nope.qcow2", "cannot read")


def test_qcow2_overlay_is_refused(tmp_path: Path) -> None:
    """An overlay's base would be missing on the hosts; qemu-img makes a real one."""
    base = _image(tmp_path)
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(overlay)], check=True
    )
    result = run_cli("image", "stage", overlay, "--to", "worker", "-i", EXAMPLE)
    assert_one_line_error(result, "overlay.qcow2", "backing file", "qemu-img convert")


# -------------------------------------------------------------------------------------- lab hosts


@pytest.fixture(scope="module")
def stage_lab() -> Iterator[Lab]:
    with make_lab(["svc1", *WORKERS]) as lab:
        yield lab


def _env() -> dict[str, str]:
    # No agent of the caller's: the run must start its own, holding the inventory's key.
    return {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}


def _stage(lab: Lab, *args: str | Path) -> CliResult:
    return run_cli("image", "stage", *args, "-i", lab.inventory, env=_env(), timeout=600)


def _sha(lab: Lab, host: str, path: str) -> str:
    r = lab.ssh(host, f"sha256sum {path} 2>/dev/null")
    return r.stdout.split()[0] if r.returncode == 0 and r.stdout.split() else ""


def _veth(lab: Lab, host: str) -> str:
    """The host's private link, root namespace side (b2ct/lab/core.py names it b2s<slot>h<octet>p)."""
    return f"b2s{lab.state().slot}h{lab.ip(host).rsplit('.', 1)[1]}p"


def _wipe(lab: Lab, path: str) -> None:
    for host in lab.hosts:
        lab.ssh(host, f"rm -rf {path}", check=True)


@pytest.mark.lab
@pytest.mark.slow
def test_stage_to_every_worker_then_a_second_run_sends_nothing(stage_lab: Lab, tmp_path: Path) -> None:
    lab = stage_lab
    _wipe(lab, DEST)
    image = _image(tmp_path)
    want = hashlib.sha256(image.read_bytes()).hexdigest()
    first = _stage(lab, image, "--to", "worker")
    assert first.rc == 0, first.err + first.out
    # three workers from one source: 2 rounds (1 → 2 → 4 holders), each shown
    assert "round 1/2" in first.err and "round 2/2" in first.err, first.err
    assert re.search(r"wn\d → wn\d", first.err), "a worker must serve another in round 2"
    for host in WORKERS:
        assert _sha(lab, host, f"{DEST}/guest.qcow2") == want, host
    assert _sha(lab, "svc1", f"{DEST}/guest.qcow2") == "", "svc1 is not in group worker"
    summary = first.out.strip().splitlines()
    assert len(summary) == 1 and "3/3 host(s) staged (3 sent, 0 already had it)" in summary[0], first.out

    before = {h: lab.ssh(h, f"stat -c '%i %Y' {DEST}/guest.qcow2", check=True).stdout for h in WORKERS}
    again = _stage(lab, image, "--to", "worker")
    assert again.rc == 0, again.err
    assert "3/3 host(s) staged (0 sent, 3 already had it), 0 round(s)" in again.out, again.out
    assert "0.0 MiB sent" in again.out and "round 1" not in again.err
    after = {h: lab.ssh(h, f"stat -c '%i %Y' {DEST}/guest.qcow2", check=True).stdout for h in WORKERS}
    assert after == before, "a second run must not rewrite any copy"


@pytest.mark.lab
@pytest.mark.slow
def test_an_unreachable_host_is_named_while_the_others_finish(stage_lab: Lab, tmp_path: Path) -> None:
    lab = stage_lab
    _wipe(lab, DEST)
    image = _image(tmp_path)
    want = hashlib.sha256(image.read_bytes()).hexdigest()
    veth = _veth(lab, "wn2")
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    try:
        result = _stage(lab, image, "--to", "worker")
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    assert result.rc == 1, result.out + result.err
    assert "Traceback" not in result.err
    lines = result.out.strip().splitlines()
    assert len(lines) == 2, result.out  # the failed host, then the one summary line
    assert lines[0].startswith("FAILED wn2: unreachable: ssh: connect to host"), lines[0]
    assert "2/3 host(s) staged" in lines[1] and lines[1].endswith("FAILED: wn2"), lines[1]
    for host in ("wn1", "wn3"):
        assert _sha(lab, host, f"{DEST}/guest.qcow2") == want, host
    deadline = time.monotonic() + 30
    while lab.ssh("wn2", "true", timeout=10).returncode != 0:
        assert time.monotonic() < deadline, "wn2 did not come back"
        time.sleep(0.5)
    assert _sha(lab, "wn2", f"{DEST}/guest.qcow2") == ""


@pytest.mark.lab
@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_partial_copy(stage_lab: Lab) -> None:
    """wn1 sends to wn2 over a link slowed with tc; Ctrl-C halfway; the next run sends only the rest."""
    lab = stage_lab
    dest = "/var/cache/b2ct-resume"
    _wipe(lab, dest)
    size = 24 << 20
    lab.ssh("wn1", f"head -c {size} /dev/urandom > /root/big.raw", check=True)
    want = _sha(lab, "wn1", "/root/big.raw")
    veth = _veth(lab, "wn2")
    # 24 MiB at 8 Mbit/s: about 25 s into wn2, time enough to interrupt halfway
    subprocess.run(["tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", "8mbit", "burst", "32kb",
                    "latency", "100ms"], check=True)  # fmt: skip
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "b2ct.cli", "image", "stage", "wn1:/root/big.raw", "--to", "wn2",
             "--dest", dest, "-i", str(lab.inventory)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO,
            # a suite started in the background by a shell ignores SIGINT, and so would this child
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:  # rsync's temporary file in the cache, a few MiB into the transfer
                found = lab.ssh("wn2", f"find {dest} -maxdepth 1 -name '.big.raw.*' -size +4M").stdout
                if found.strip():
                    break
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the transfer never started"
                time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130, out + err  # typer turns Ctrl-C into exit 130, silently
        assert "Traceback" not in err
        # The receiving rsync on wn2 learns of the stop through the chain of closed connections, after
        # this run has ended: it then moves its temporary file into the partial directory and exits.
        partial = wait_for(
            "wn2's rsync keeping its partial copy",
            lambda: lab.ssh("wn2", f"stat -c %s {dest}/.b2ct-partial/big.raw").stdout.strip(),
            30,
            0.3,
        )
        assert 4 << 20 < int(partial) < size
        assert _sha(lab, "wn2", f"{dest}/big.raw") == "", "no half-written image in the cache"
        wait_for(  # nothing left running on either side
            "no rsync left on wn1 and wn2",
            lambda: all(lab.ssh(host, "pgrep -x rsync").stdout == "" for host in ("wn1", "wn2")),
            30,
            0.3,
        )
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", veth, "root"], check=True)
    result = _stage(lab, "wn1:/root/big.raw", "--to", "wn2", "--dest", dest)
    assert result.rc == 0, result.err
    reused = re.search(r"([\d.]+) MiB reused from partial copies", result.out)
    assert reused and float(reused.group(1)) >= 4, result.out
    assert _sha(lab, "wn2", f"{dest}/big.raw") == want
    assert lab.ssh("wn2", f"ls -A {dest}").stdout.split() == ["big.raw"], "the partial copy is gone"


def test_host_keys_are_the_ones_this_machine_trusts_renamed_for_the_hop(tmp_path: Path) -> None:
    """Found as ssh finds them for the inventory's connection (hashed entries too), written under the
    address the other hosts use; nothing for a host this machine does not know."""
    from b2ct.connection import Connection
    from b2ct.image.hosts import host_key_lines

    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"wn7.example.org {kind} {blob}\n[10.0.0.27]:2222 {kind} {blob}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "wn7.example.org" not in known.read_text()  # hashed, as many sites keep them
    args = ("-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null")
    conn = Connection("wn7", "wn7.example.org", common_args=args)
    assert host_key_lines(conn, "10.1.0.27", 22) == [f"10.1.0.27 {kind} {blob}"]
    on_port = Connection("wn7", "10.0.0.27", port=2222, common_args=args)
    assert host_key_lines(on_port, "10.1.0.27", 2222) == [f"[10.1.0.27]:2222 {kind} {blob}"]
    stranger = Connection("wn8", "wn8.example.org", common_args=args)
    assert host_key_lines(stranger, "10.1.0.28", 22) == []
