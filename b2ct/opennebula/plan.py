"""The cloud objects a site should have, computed from the inventory and checked before any change.

Clusters `services` and `workers`; datastores (services: shared system datastore on a GlusterFS mount;
workers: local ssh system datastore on each worker's ephemeral disk; images on GlusterFS, qcow2);
virtual networks bridged on the inventory's bridges; every host registered as a KVM host in its cluster.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from b2ct.errors import B2ctError
from b2ct.inventory import GlusterVolume, Site
from b2ct.inventory.load import OPENNEBULA_VERSIONS, lease_range

SERVICES, WORKERS = "services", "workers"
SYSTEM_VOLUME, IMAGE_VOLUME = "one-system", "one-images"


@dataclass(frozen=True)
class DatastoreSpec:
    name: str
    clusters: tuple[str, ...]
    template: dict[str, str]
    expected_id: int | None = None  # the mount path fixes the id: DATASTORE_LOCATION/<id>
    mount: str | None = None


@dataclass(frozen=True)
class VnetSpec:
    name: str
    clusters: tuple[str, ...]
    template: dict[str, object]


@dataclass(frozen=True)
class HostSpec:
    name: str
    cluster: str
    im_mad: str = "kvm"
    vm_mad: str = "kvm"


@dataclass(frozen=True)
class HookSpec:
    name: str
    template: dict[str, str]


# OpenNebula's host-failure hook (6.10 docs, "Host Failures"; remotes/hooks/ft/host_error.rb): when a host
# enters ERROR, wait, fence it (ft/fence_host.sh, which opennebula_frontend writes from the inventory's
# fence command), then reschedule its VMs (-m). host_error.rb skips VMs on non-shared system datastores,
# so only the services cluster's VMs (shared GlusterFS) move; a worker's VMs wait for their host.
HOST_FAILURE_HOOK = "b2ct-host-failure"


@dataclass(frozen=True)
class CloudPlan:
    version: str
    clusters: tuple[str, ...] = (SERVICES, WORKERS)
    datastores: tuple[DatastoreSpec, ...] = ()
    vnets: tuple[VnetSpec, ...] = ()
    hosts: tuple[HostSpec, ...] = ()
    hooks: tuple[HookSpec, ...] = ()
    notes: list[str] = field(default_factory=list)


def _volume(site: Site, name: str, purpose: str) -> GlusterVolume:
    for vol in site.gluster_volumes:
        if vol.name == name:
            return vol
    raise B2ctError(
        f"the {purpose} datastore lives on GlusterFS volume {name!r}, "
        "which b2ct_gluster_volumes does not define",
        where=site.source,
        hint=f"add a volume named {name} with its mount under {site.datastore_path}",
    )


def _ds_id(site: Site, vol: GlusterVolume, purpose: str) -> int:
    parent, _, leaf = vol.mount.rpartition("/")
    if parent != site.datastore_path or not leaf.isdigit():
        raise B2ctError(
            f"the {purpose} datastore is on volume {vol.name} mounted at {vol.mount}, but OpenNebula keeps "
            f"datastore N at {site.datastore_path}/N: no host has the datastore's directory mounted",
            where=site.source,
            hint=f"set mount: {site.datastore_path}/<datastore id> for volume {vol.name}",
        )
    return int(leaf)


def _check_mounted_on_services(site: Site, vol: GlusterVolume, purpose: str) -> None:
    # The shared datastores are FUSE-mounted by the service hosts that serve the bricks; a service host
    # without a brick of the volume would run VMs on a directory nobody mounted.
    brick_hosts = {b.host for b in vol.bricks}
    missing = [h.name for h in site.service_hosts if h.name not in brick_hosts and not h.frontend]
    if missing:
        raise B2ctError(
            f"the {purpose} datastore (volume {vol.name}, {vol.mount}) is shared by cluster {SERVICES}, "
            f"but service host {missing[0]} has no brick of it and so no mount",
            where=site.host(missing[0]).where,
            hint=f"add a brick {missing[0]}:/bricks/{vol.name}/brick",
        )


def _vnet(
    site: Site, name: str, network: str, bridge: str, start: ipaddress.IPv4Address, size: int
) -> VnetSpec:
    net = site.networks[network]
    template: dict[str, object] = {
        "NAME": name,
        "VN_MAD": "bridge",
        "BRIDGE": bridge,
        "NETWORK_ADDRESS": str(net.subnet.network_address),
        "NETWORK_MASK": net.netmask,
        "AR": {"TYPE": "IP4", "IP": str(start), "SIZE": str(size)},
    }
    if net.gateway:
        template["GATEWAY"] = str(net.gateway)
    if net.dns:
        template["DNS"] = " ".join(str(d) for d in net.dns)
    clusters = (SERVICES, WORKERS) if network == "private" else (SERVICES,)
    return VnetSpec(name, clusters, template)


def _default_vnet(site: Site, network: str) -> VnetSpec:
    # A network without a b2ct_opennebula_vnets entry gets a vnet of its name leasing the upper half of
    # its subnet. Checked here rather than by the loader: a site that never runs `cloud apply` (kickstarts
    # only) may use those addresses.
    net = site.networks[network]
    start, size, problem = lease_range(net, site.hosts, None, None)
    if problem:
        raise B2ctError(
            f"vnet {network} (default for network {network}): {problem}",
            where=site.source,
            hint=f"set b2ct_opennebula_vnets.{network}.ar_start/ar_size",
        )
    return _vnet(site, network, network, net.bridge, start, size)


def build(site: Site) -> CloudPlan:
    """Check the inventory against what OpenNebula needs and return the objects to reconcile."""
    if site.opennebula_version not in OPENNEBULA_VERSIONS:
        raise B2ctError(
            f"unknown OpenNebula version {site.opennebula_version!r}",
            where=site.source,
            hint="supported: " + ", ".join(OPENNEBULA_VERSIONS),
        )
    datastores: list[DatastoreSpec] = []
    if site.service_hosts:
        sysvol = _volume(site, SYSTEM_VOLUME, "services system")
        _check_mounted_on_services(site, sysvol, "services system")
        datastores.append(
            DatastoreSpec(
                "services-system",
                (SERVICES,),
                {"NAME": "services-system", "TYPE": "SYSTEM_DS", "TM_MAD": "shared"},
                _ds_id(site, sysvol, "services system"),
                sysvol.mount,
            )
        )
    if site.worker_hosts:
        bare = [h for h in site.worker_hosts if not h.ephemeral_disk]
        if bare:
            raise B2ctError(
                f"worker {bare[0].name} has no b2ct_ephemeral_disk: the workers' local system datastore "
                f"({site.datastore_path}/<id>) would not be on a mounted ephemeral disk",
                where=bare[0].where,
                hint="set b2ct_ephemeral_disk for every worker",
            )
        datastores.append(
            DatastoreSpec(
                "workers-local", (WORKERS,), {"NAME": "workers-local", "TYPE": "SYSTEM_DS", "TM_MAD": "ssh"}
            )
        )
    imgvol = _volume(site, IMAGE_VOLUME, "image")
    _check_mounted_on_services(site, imgvol, "image")
    datastores.append(
        DatastoreSpec(
            "images",
            (SERVICES, WORKERS),
            # The shared transfer driver (the system datastore's: oned accepts an image datastore only with
            # its own driver or one in TM_MAD_SYSTEM). Services make qcow2 linked clones on the shared
            # mount; workers (ssh system datastore) copy each image from their own mount of the volume to
            # the local disk: tm/shared/clone.ssh of 6.10 runs qemu-img on the node, reading the image
            # datastore's path there.
            {
                "NAME": "images",
                "TYPE": "IMAGE_DS",
                "DS_MAD": "fs",
                "TM_MAD": "shared",
                "TM_MAD_SYSTEM": "ssh",
                "DRIVER": "qcow2",
            },
            _ds_id(site, imgvol, "image"),
            imgvol.mount,
        )
    )

    # The loader checked and resolved the vnets the inventory names (network, bridge, free lease range).
    one = site.opennebula
    vnets = [
        _vnet(site, v.name, v.network, v.bridge, v.ar_start, v.ar_size)  # type: ignore[arg-type]
        for v in one.vnets
    ]
    covered = {v.network for v in one.vnets}
    # The storage network has no bridge: hosts hold its addresses, VMs never attach to it.
    vnets += [
        _default_vnet(site, name)
        for name, net in site.networks.items()
        if net.bridged and name not in covered
    ]

    hooks: tuple[HookSpec, ...] = ()
    failure = site.opennebula.host_failure
    if failure.fence_command:
        template = {
            "NAME": HOST_FAILURE_HOOK,
            "TYPE": "state",
            "RESOURCE": "HOST",
            "STATE": "ERROR",
            "REMOTE": "NO",  # as oned stores it
            "COMMAND": "ft/host_error.rb",
            "ARGUMENTS": f"$TEMPLATE -m -p {failure.pause_cycles}",
            "ARGUMENTS_STDIN": "yes",
        }
        hooks = (HookSpec(HOST_FAILURE_HOOK, template),)
    hv = site.opennebula.hypervisor
    hosts = tuple(
        HostSpec(h.name, SERVICES if h.klass == "service" else WORKERS, im_mad=hv, vm_mad=hv)
        for h in site.hosts
    )
    return CloudPlan(
        site.opennebula_version, datastores=tuple(datastores), vnets=tuple(vnets), hosts=hosts, hooks=hooks
    )
