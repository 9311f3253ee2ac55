"""Wall time of `b2ct check` on 1, 2 and 4 lab hosts, with and without the smoke domain, side by side in
one run; prints N=4 ÷ N=1 for both series.

Brings up a default lab (svc1 svc2 wn1 wn2), puts it by hand into a checked state (tests/check/labsetup.py),
runs the real CLI (`--json`) a few times per host count and series, interleaved, and takes the lab down.
Labs are isolated by name, so no lock is needed; other users' load still shows, which the interleaving
spreads over every cell alike:

    python3 bench/check.py
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
SERIES = {"smoke": (), "no-smoke": ("--no-smoke",)}


def once(inventory: Path, limit: str, *extra: str) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "b2ct.cli", "check", "-i", str(inventory), "--json", "--limit", limit, *extra],
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
        times: dict[tuple[str, int], list[float]] = {(s, n): [] for s in SERIES for n in SETS}
        for _ in range(ROUNDS):  # interleaved, so load from other users hits every cell alike
            for n, limit in SETS.items():
                for series, extra in SERIES.items():
                    times[series, n].append(once(lab.inventory, limit, *extra))
    best = {k: min(t) for k, t in times.items()}
    for series in SERIES:
        for n in SETS:
            runs = " ".join(f"{t:.2f}" for t in times[series, n])
            print(f"{series:>8} N={n}: best {best[series, n]:.2f}s  runs {runs}")
    for series in SERIES:
        four, two = best[series, 4] / best[series, 1], best[series, 2] / best[series, 1]
        print(f"{series:>8} ratio N=4 / N=1: {four:.2f} (target <= 1.5), N=2 / N=1: {two:.2f}")
    print(
        f"bounds: smoke = {os.cpu_count()} cores running N emulated (TCG) guest boots at once, CPU-bound;"
        " no-smoke = ssh/libvirt round trips and the probe script's waits (gluster CLI, squid), mostly"
        " latency, plus per-host ssh/libvirt client CPU on the same cores"
    )


if __name__ == "__main__":
    main()
