"""Put lab hosts by hand into the state each check looks at (the roles that do it are written elsewhere):
libvirtd running, bridges holding the host addresses, an XFS datastore on workers, a replica-2 Gluster
volume mounted on the service hosts, squid running."""

from __future__ import annotations

import time
from typing import Any

from b2ct.inventory import load

# Lab hosts remount their own cgroup v1 controllers writable at boot (b2ct-lab-cgroups.service), so
# libvirt runs as on a site.
LIBVIRT = "systemctl restart libvirtd"


def bridge_cmd(bridge: str, mac: str, cidr: str, gateway: str | None) -> str:
    # The host's address moves from its NIC (found by MAC, like the roles do) to the bridge enslaving it.
    route = f" && ip route replace default via {gateway}" if gateway else ""
    return (
        f'port=$(ip -o link | awk -v m={mac} \'index($0, m) {{sub(/:$/, "", $2); sub(/@.*/, "", $2);'
        ' print $2; exit}\') && test -n "$port"'
        f" && ip link add {bridge} type bridge && ip link set {bridge} address {mac}"
        f" && ip addr flush dev $port && ip link set $port master {bridge} && ip link set {bridge} up"
        f" && ip addr add {cidr} dev {bridge}{route}"
    )


def run(lab: Any, host: str, cmd: str, timeout: float = 120) -> str:
    p = lab.exec(host, cmd, timeout=timeout)
    assert p.returncode == 0, f"{host}: {cmd}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def prepare(lab: Any) -> None:
    site = load(lab.inventory)
    services = [h for h in site.hosts if h.klass == "service"]
    for h in site.hosts:
        run(lab, h.name, "systemctl stop systemd-networkd.socket systemd-networkd; " + LIBVIRT)
        for net_name in ("private", "public"):
            nic = h.nics.get(net_name)
            if nic is None:
                continue
            net = site.networks[net_name]
            gw = str(net.gateway) if net_name == "private" and net.gateway else None
            run(lab, h.name, bridge_cmd(net.bridge, nic.mac, f"{nic.ip}/{net.prefix}", gw))
        if h.klass == "worker":
            run(lab, h.name, f"mkfs.xfs -q -f {h.ephemeral_disk} && mkdir -p {site.datastore_path} && "
                f"mount {h.ephemeral_disk} {site.datastore_path}")  # fmt: skip
        else:
            run(lab, h.name, f"mkfs.xfs -q -f {h.brick_disk} && mkdir -p /bricks"
                f" && mount {h.brick_disk} /bricks && systemctl start glusterd squid")  # fmt: skip
    for vol in site.gluster_volumes:
        first, *others = [b.host for b in vol.bricks]
        for b in vol.bricks:
            run(lab, b.host, f"mkdir -p {b.path}")
        for o in others:
            run(lab, first, f"gluster peer probe {o}")
        deadline = time.monotonic() + 60
        while "Peer in Cluster (Connected)" not in lab.exec(first, "gluster peer status").stdout:
            assert time.monotonic() < deadline, "gluster peers did not connect"
            time.sleep(0.5)
        bricks = " ".join(str(b) for b in vol.bricks)
        create = f"gluster --mode=script volume create {vol.name} replica {vol.replica} {bricks} force"
        run(lab, first, create)
        run(lab, first, f"gluster volume start {vol.name}")
        for h in services:
            run(lab, h.name, f"mkdir -p {vol.mount} && mount -t glusterfs {first}:/{vol.name} {vol.mount}")
