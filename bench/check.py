"""Wall time of `b2ct check` on 1, 2 and 4 lab hosts, side by side in one run; prints N=4 ÷ N=1.

Brings up a default lab (svc1 svc2 wn1 wn2), puts it by hand into a checked state (tests/check/labsetup.py),
runs the real CLI (`--json`, smoke domain included) a few times per host count, and takes the lab down.
Run it alone on the machine, under the lab lock:

    flock /run/b2ct-lab-dev.lock python3 bench/check.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "check")]

from labsetup import prepare  # noqa: E402

from b2ct.lab.core import plan_hosts, running_lab  # noqa: E402

SETS = {1: "svc1", 2: "svc1,wn1", 4: "svc1,svc2,wn1,wn2"}
ROUNDS = 3


def once(inventory: Path, limit: str) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "b2ct.cli", "check", "-i", str(inventory), "--json", "--limit", limit],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    elapsed = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stderr)
    return elapsed


def main() -> None:
    with running_lab(f"bench{os.getpid() % 10000}", plan_hosts(None, None, None), label="bench") as lab:
        prepare(lab)
        once(lab.inventory, SETS[4])  # warm-up: uploads the smoke kernel and initrd to every host
        times: dict[int, list[float]] = {n: [] for n in SETS}
        for _ in range(ROUNDS):  # interleaved, so load from other users hits every N alike
            for n, limit in SETS.items():
                times[n].append(once(lab.inventory, limit))
    best = {n: min(t) for n, t in times.items()}
    for n in SETS:
        print(f"N={n}: best {best[n]:.2f}s  runs {' '.join(f'{t:.2f}' for t in times[n])}")
    print(f"ratio N=4 / N=1: {best[4] / best[1]:.2f} (target <= 1.5)")
    print(f"ratio N=2 / N=1: {best[2] / best[1]:.2f}")


if __name__ == "__main__":
    main()
