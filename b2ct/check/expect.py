"""What the inventory says each host should look like, in the terms the probes and decisions use."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from b2ct.inventory.model import Host, Site


@dataclass(frozen=True)
class BridgeExpect:
    bridge: str
    network: str
    ip: ipaddress.IPv4Interface | None  # None: DHCP, any address in subnet will do
    subnet: ipaddress.IPv4Network


@dataclass(frozen=True)
class MountExpect:
    path: str
    fstypes: tuple[str, ...]  # acceptable filesystem types as findmnt reports them
    fallocate: bool  # whether fallocate must work there (not on GlusterFS)
    why: str  # where the expectation comes from, for reasons and hints


@dataclass(frozen=True)
class GlusterExpect:
    volume: str
    bricks: tuple[str, ...]  # "host:/path"
    peers: tuple[str, ...]  # the other hosts holding bricks of any volume


@dataclass(frozen=True)
class HostExpect:
    host: Host
    bridges: tuple[BridgeExpect, ...]
    mounts: tuple[MountExpect, ...]
    gluster: tuple[GlusterExpect, ...]
    squid_port: int | None  # None: no squid expected on this host
    frontend: bool
    squid_address: str = "127.0.0.1"  # the squid role also listens on loopback for the host's own probes
    hypervisors: tuple[str, ...] = field(default=())  # for the frontend: hosts OpenNebula should monitor
    # b2ct_opennebula_hypervisor: "kvm" (acceleration expected) or "qemu" (emulation chosen, e.g. the lab)
    hypervisor: str = "kvm"


def expectations(site: Site, host: Host) -> HostExpect:
    bridges = []
    for net_name, nic in sorted(host.nics.items()):
        net = site.networks.get(net_name)
        if net is None or not net.bridged:  # the storage network has no bridge
            continue
        ip = ipaddress.IPv4Interface(f"{nic.ip}/{net.prefix}") if nic.ip else None
        bridges.append(BridgeExpect(net.bridge, net_name, ip, net.subnet))

    mounts: list[MountExpect] = []
    if host.klass == "worker" and host.ephemeral_disk:
        mounts.append(
            MountExpect(
                site.datastore_path,
                (host.ephemeral_fs,),
                True,
                f"b2ct_ephemeral_disk {host.ephemeral_disk} formatted {host.ephemeral_fs}",
            )
        )
    gluster = []
    brick_hosts = sorted({b.host for v in site.gluster_volumes for b in v.bricks})
    if host.klass == "service":
        for vol in site.gluster_volumes:
            mounts.append(MountExpect(vol.mount, ("fuse.glusterfs",), False, f"GlusterFS volume {vol.name}"))
    for vol in site.gluster_volumes:
        if any(b.host == host.name for b in vol.bricks):
            gluster.append(
                GlusterExpect(
                    vol.name,
                    tuple(str(b) for b in vol.bricks),
                    tuple(h for h in brick_hosts if h != host.name),
                )
            )
    hypervisors = tuple(h.name for h in site.hosts) if host.frontend else ()
    return HostExpect(
        host=host,
        bridges=tuple(bridges),
        mounts=tuple(mounts),
        gluster=tuple(gluster),
        squid_port=site.squid.port if host.klass == "service" else None,
        frontend=host.frontend,
        hypervisors=hypervisors,
        hypervisor=site.opennebula.hypervisor,
    )
