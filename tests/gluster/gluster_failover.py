"""Steps of the GlusterFS failure test on lab hosts: a writer, a server killed and restarted, heal, compare.

Kept apart from the test so the same steps can be run by hand against a lab (`b2ct lab up`).
"""

from __future__ import annotations

import shlex
from typing import Protocol

WRITER = r"""
import hashlib, os, sys, time
target, count, manifest, done = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.makedirs(target, exist_ok=True)
status = "ok"
with open(manifest, "w") as out:
    for i in range(count):
        data = os.urandom(16384 + (i * 7919) % 65536)
        path = os.path.join(target, f"f{i:05d}")
        try:
            with open(path, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            status = f"error at file {i}: {exc}"
            break
        out.write(f"{hashlib.sha256(data).hexdigest()}  f{i:05d}\n")
        out.flush()
        time.sleep(0.05)
with open(done, "w") as fh:
    fh.write(status + "\n")
"""


class LabLike(Protocol):
    def ssh(self, host: str, cmd: str, *, timeout: float | None = ..., input: str | None = ...): ...


def sh(lab: LabLike, host: str, cmd: str, timeout: float = 120) -> str:
    r = lab.ssh(host, cmd, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(
            f"{host}: `{cmd}` failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}"
        )
    return r.stdout


def start_writer(lab: LabLike, host: str, target: str, count: int, work: str = "/root/failtest") -> None:
    r = lab.ssh(host, f"rm -rf {work} && mkdir -p {work} && cat > {work}/writer.py", input=WRITER, timeout=30)
    assert r.returncode == 0, r.stderr
    args = " ".join(shlex.quote(a) for a in (target, str(count), f"{work}/manifest", f"{work}/done"))
    sh(lab, host, f"setsid nohup python3 {work}/writer.py {args} >{work}/log 2>&1 </dev/null &", timeout=30)


def written(lab: LabLike, host: str, work: str = "/root/failtest") -> int:
    return int(sh(lab, host, f"wc -l < {work}/manifest 2>/dev/null || echo 0").split()[0])


def writer_status(lab: LabLike, host: str, work: str = "/root/failtest") -> str:
    return sh(lab, host, f"cat {work}/done 2>/dev/null || true").strip()


def manifest(lab: LabLike, host: str, work: str = "/root/failtest") -> dict[str, str]:
    return checksums(sh(lab, host, f"cat {work}/manifest"))


def checksums(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if name:
            out[name.strip()] = digest
    return out


def tree_checksums(lab: LabLike, host: str, directory: str) -> dict[str, str]:
    return checksums(
        sh(
            lab,
            host,
            f"cd {shlex.quote(directory)} && find . -maxdepth 1 -type f -name 'f*' "
            "-printf '%f\\n' | sort | xargs -r sha256sum",
            timeout=300,
        )
    )
