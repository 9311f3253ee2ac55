#!/usr/bin/env python3
"""Image pre-staging: the fan-out tree of `b2ct image stage` against sequential rsync from one source,
on 4, 8 and 16 lab hosts (N counts the source), every host's link limited to the same rate.

One lab of max(N) hosts: the front-end svc1 holds a random (incompressible) raw image and is the source of
both strategies; the others are workers. Each host's link is shaped with tc tbf (tc-tbf(8)) in both
directions: on the lab's veth in the root namespace (traffic into the host) and on the host's eth0 in its
network namespace (traffic out of it). The same code path runs both sides (b2ct.image.stage.Stager):
"fanout" lets every verified holder serve one host per round; "sequential" has svc1 send to one host at a
time. Every copy is verified by sha256 on its host in both. The caches are wiped between runs.

Root only, not run in CI (minutes, and heavy on a 2-core machine):

    python3 bench/prestage.py [--rate 64mbit] [--size-mib 64] [--sizes 4,8,16] [--repeat 2]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from b2ct.connection import ansible_view  # noqa: E402
from b2ct.image.hosts import node_for  # noqa: E402
from b2ct.image.source import remote_image  # noqa: E402
from b2ct.image.stage import Stager, StageResult  # noqa: E402
from b2ct.inventory import load  # noqa: E402
from b2ct.lab.core import Lab, plan_hosts  # noqa: E402

DEST = "/var/lib/b2ct/bench-images"
IMAGE = "/root/bench.raw"


def shape(lab: Lab, rate: str) -> None:
    """tbf at ``rate`` on both directions of every host's private link."""
    slot = lab.state().slot
    for host in lab.hosts:
        octet = lab.ip(host).rsplit(".", 1)[1]
        tbf = ["root", "tbf", "rate", rate, "burst", "64kb", "latency", "100ms"]
        subprocess.run(["tc", "qdisc", "replace", "dev", f"b2s{slot}h{octet}p", *tbf], check=True)
        subprocess.run(
            ["ip", "netns", "exec", lab.netns(host), "tc", "qdisc", "replace", "dev", "eth0", *tbf],
            check=True,
        )


def one_run(lab: Lab, n: int, strategy: str) -> StageResult:
    site = load(lab.inventory)
    view = ansible_view(lab.inventory)
    workers = [h.name for h in site.worker_hosts][: n - 1]
    for host in workers:
        lab.ssh(host, f"rm -rf {DEST}", check=True)
    source = node_for(site, view, "svc1")
    image = remote_image(source, IMAGE)
    stager = Stager(
        image,
        [node_for(site, view, w) for w in workers],
        DEST,
        source=source,
        strategy=strategy,  # type: ignore[arg-type]
        progress=lambda line: print(f"    {line}", flush=True),
    )
    result = stager.run()
    if not result.ok or len(result.outcomes) != n - 1:
        raise SystemExit(f"{strategy} N={n} failed: {result.summary()}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", default="64mbit", help="tc rate of every host's link, each direction")
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--sizes", default="4,8,16", help="host counts N, the source included")
    ap.add_argument("--repeat", type=int, default=2, help="runs per cell, interleaved; the best counts")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    specs = plan_hosts(["svc1", *(f"wn{i}" for i in range(1, max(sizes)))])
    lab = Lab(f"bps{os.getpid() % 100000}")
    rows: dict[int, dict[str, StageResult]] = {}
    runs: dict[tuple[int, str], list[float]] = {}
    try:
        lab.up(specs, label="bench", opennebula=False)
        shape(lab, args.rate)
        lab.ssh("svc1", f"head -c {args.size_mib << 20} /dev/urandom > {IMAGE}", check=True)
        for rep in range(args.repeat):
            # interleaved: the load of the machine's other users hits every cell alike; the best counts
            for n in sizes:
                order = ("fanout", "sequential") if rep % 2 == 0 else ("sequential", "fanout")
                for strategy in order:
                    print(f"N={n} {strategy} (run {rep + 1}/{args.repeat})", flush=True)
                    result = one_run(lab, n, strategy)
                    runs.setdefault((n, strategy), []).append(result.seconds)
                    print(f"  {result.seconds:.1f}s", flush=True)
                    best = rows.setdefault(n, {}).get(strategy)
                    if best is None or result.seconds < best.seconds:
                        rows[n][strategy] = result
    finally:
        lab.down()
    per_transfer = args.size_mib * 8 * 2**20 / _bits(args.rate)
    print(
        f"\nimage {args.size_mib} MiB random raw, every link {args.rate} each way "
        f"(one transfer ≥ {per_transfer:.1f} s); source svc1; times include probes and sha256 checks; "
        f"best of {args.repeat}"
    )
    print(f"{'N':>3} {'rounds':>6} {'fan-out s':>10} {'sequential s':>13} {'fan÷seq':>8} {'s/round':>8}")
    for n, r in rows.items():
        fan, seq = r["fanout"], r["sequential"]
        print(
            f"{n:>3} {fan.rounds:>6} {fan.seconds:>10.1f} {seq.seconds:>13.1f} "
            f"{fan.seconds / seq.seconds:>8.2f} {fan.seconds / max(fan.rounds, 1):>8.1f}"
        )
    for (n, strategy), times in sorted(runs.items()):
        print(f"runs N={n} {strategy}: " + " ".join(f"{t:.1f}" for t in times))
    ns = list(rows)
    for a, b in itertools.pairwise(ns):
        fan = rows[b]["fanout"].seconds / rows[a]["fanout"].seconds
        seq = rows[b]["sequential"].seconds / rows[a]["sequential"].seconds
        log = math.ceil(math.log2(b)) / math.ceil(math.log2(a))
        print(
            f"N={a}→{b}: fan-out ×{fan:.2f} (log: rounds ×{log:.2f})"
            f", sequential ×{seq:.2f} (linear: ×{(b - 1) / (a - 1):.2f})"
        )


def _bits(rate: str) -> float:
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for unit, factor in units.items():
        if rate.endswith(unit):
            return float(rate[: -len(unit)]) * factor
    raise SystemExit(f"--rate {rate!r}: give kbit, mbit or gbit")


if __name__ == "__main__":
    main()
