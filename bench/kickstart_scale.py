#!/usr/bin/env python3
"""Render + validate the rack kickstart for 10, 100 and 1000 generated hosts; print seconds and slope.

Target (issue 2): 1000 hosts under 5 s, linear. Also shows the full set (rack + one file per host).
Usage: python bench/kickstart_scale.py [--sizes 10,100,1000] [--release el9]
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b2ct.inventory import load
from b2ct.kickstart import render

HASH = "$6$benchsalt$Vw0m5zHc6H0Qq9X7sWm1uQ3bXl1hXnE6U1q3m2W8l4o0cJ5n7XyXK7l9p3Z0o1R2s3T4u5V6w7X8y9Z0a1B2c."


def write_inventory(root: Path, n: int) -> Path:
    """A site of n hosts: one service host in ten (the first also the front-end), the rest workers."""
    private = ipaddress.IPv4Network("10.64.0.0/16")
    public = ipaddress.IPv4Network("172.20.0.0/16")
    services: dict[str, dict] = {}
    workers: dict[str, dict] = {}
    for i in range(n):
        mac = f"52:54:{(i >> 24) & 255:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"
        nics = {"private": {"mac": mac, "ip": str(private.network_address + 10 + i)}}
        if i % 10 == 0:
            nics["public"] = {"mac": "52:55" + mac[5:], "ip": str(public.network_address + 10 + i)}
            services[f"svc{i:04d}"] = {"b2ct_nics": nics, "b2ct_serial": f"SN{i:06d}"}
        else:
            workers[f"wn{i:04d}"] = {"b2ct_nics": nics, "b2ct_ephemeral_disk": "sdb"}
    inv = {
        "all": {
            "vars": {
                "b2ct_site": "bench",
                "b2ct_os_release": "el9",
                "b2ct_repos": {"baseos": "http://mirror.example.org/el9/BaseOS/"},
                "b2ct_networks": {
                    "private": {"subnet": str(private), "gateway": "10.64.0.1", "dns": ["10.64.0.1"]},
                    "public": {"subnet": str(public), "gateway": "172.20.0.1", "dns": ["172.20.0.1"]},
                },
                "b2ct_root_password_hash": HASH,
            },
            "children": {
                "frontend": {"hosts": {next(iter(services)): None}},
                "service": {"hosts": services},
                "worker": {"hosts": workers},
            },
        }
    }
    path = root / f"site{n}" / "hosts.yml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def measure(path: Path, release: str, per_host: bool) -> float:
    start = time.perf_counter()
    render(load(path), release, per_host=per_host)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--release", default="el9")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    measure(write_inventory(Path(tempfile.mkdtemp()), 2), args.release, True)  # warm caches and imports
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: write_inventory(Path(tmp), n) for n in sizes}
        rows = []
        for n in sizes:
            rack = min(measure(paths[n], args.release, False) for _ in range(3))
            full = measure(paths[n], args.release, True)
            rows.append((n, rack, full))
    print(f"{'hosts':>6} {'rack s':>8} {'ms/host':>8} {'all files s':>12} {'ms/host':>8}")
    for n, rack, full in rows:
        print(f"{n:>6} {rack:>8.3f} {1000 * rack / n:>8.2f} {full:>12.3f} {1000 * full / n:>8.2f}")
    (n0, r0, f0), (n1, r1, f1) = rows[0], rows[-1]
    slope = (r1 - r0) / (n1 - n0)
    print(
        f"rack slope: {1000 * slope:.3f} ms/host; all-files slope: {1000 * (f1 - f0) / (n1 - n0):.3f} ms/host"
    )
    if len(rows) >= 3:
        mid = rows[-2]
        s_low = (mid[1] - r0) / (mid[0] - n0)
        s_high = (r1 - mid[1]) / (n1 - mid[0])
        print(f"linearity (slope {mid[0]}→{n1} ÷ slope {n0}→{mid[0]}): {s_high / s_low:.2f} (1.0 = linear)")
    print(f"rack kickstart for {n1} hosts: {r1:.2f} s (target < 5 s): {'OK' if r1 < 5 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
