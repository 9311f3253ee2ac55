"""The validated site model. Everything downstream (kickstart, media, deploy, check) reads only this."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

HostClass = Literal["service", "worker"]
EphemeralFs = Literal["xfs", "ext4"]


@dataclass(frozen=True)
class Release:
    """A target OS release: what the kickstart speaks and which install media layout it has."""

    name: str
    family: Literal["el", "debian"]
    ks_version: str | None  # pykickstart handler name; None: not installed by kickstart
    major: int
    description: str

    @property
    def kickstartable(self) -> bool:
        return self.ks_version is not None


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("el6", "el", "RHEL6", 6, "CentOS 6.7 (the original recipe; media only)"),
        Release("el8", "el", "RHEL8", 8, "AlmaLinux/Rocky/RHEL 8"),
        Release("el9", "el", "RHEL9", 9, "AlmaLinux/Rocky/RHEL 9"),
        Release("el10", "el", "RHEL10", 10, "AlmaLinux/RHEL 10"),
        Release("debian12", "debian", None, 12, "Debian 12 (lab hosts; configured, not kickstarted)"),
        Release("ubuntu2204", "debian", None, 22, "Ubuntu 22.04 (configured, not kickstarted)"),
        Release("ubuntu2404", "debian", None, 24, "Ubuntu 24.04 (configured, not kickstarted)"),
    )
}


@dataclass(frozen=True)
class Network:
    name: str  # "private", "public" or "storage"
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    dns: tuple[ipaddress.IPv4Address, ...]
    bridge: str  # "" for the storage network: hosts carry its address themselves, no VM attaches to it
    vlan: int | None = None  # its 802.1Q VLAN id, where hosts reach it tagged

    @property
    def bridged(self) -> bool:
        return bool(self.bridge)

    @property
    def prefix(self) -> int:
        return self.subnet.prefixlen

    @property
    def netmask(self) -> str:
        return str(self.subnet.netmask)


@dataclass(frozen=True)
class Bond:
    """Channel bonding of a host's NICs (Linux bonding driver, Documentation/networking/bonding.rst)."""

    name: str  # the bond interface, e.g. bond0
    mode: str  # the driver's mode name, e.g. balance-alb (adaptive load balancing, mode 6)
    members: tuple[str, ...]  # member NICs' permanent MACs, lower case, colon separated
    miimon: int = 100  # link monitoring interval, ms
    at: str = field(default="", compare=False)
    members_at: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Nic:
    """How a host reaches one network: its own NIC (``mac``), a bond of NICs (``bond``), or tagged on the
    link of another of its networks (``via``). ``vlan`` is the 802.1Q id the host tags the network's
    traffic with, None where its switch port carries the network untagged."""

    network: str
    mac: str  # lower case, colon separated; "" for a bond or a `via` network
    ip: ipaddress.IPv4Address | None  # None: DHCP
    mac_at: str = field(default="", compare=False)  # file:line, for errors found after loading
    ip_at: str = field(default="", compare=False)
    bond: Bond | None = None
    via: str | None = None  # the network whose link carries this one
    vlan: int | None = None

    @property
    def dhcp(self) -> bool:
        return self.ip is None

    @property
    def macs(self) -> tuple[str, ...]:
        """The MACs of the NICs this network's own link is made of (none for a `via` network)."""
        if self.bond is not None:
            return self.bond.members
        return (self.mac,) if self.mac else ()


@dataclass(frozen=True)
class Host:
    name: str  # the inventory host name: a short name or an FQDN
    klass: HostClass
    frontend: bool
    nics: dict[str, Nic]
    install_disk: str
    ansible_host: str | None = None
    serial: str | None = None
    ephemeral_disk: str | None = None
    ephemeral_fs: EphemeralFs = "xfs"
    brick_disk: str | None = None
    ephemeral_force: bool = False
    where: str = ""  # file:line of the host's definition, for later error messages
    # setting name → file:line of its value, to blame the inventory line for a problem found later
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def short_name(self) -> str:
        """The first label of ``name``: inventories may name hosts by FQDN (wn02.site.example.org)."""
        return self.name.split(".", 1)[0]

    @property
    def macs(self) -> list[str]:
        """Every NIC's MAC, bond members included: any of them identifies the machine at install."""
        return [mac for nic in self.nics.values() for mac in nic.macs]

    def carrier(self, nic: Nic) -> Nic:
        """The NIC entry whose link carries ``nic``: itself, or the network it rides on (``via``)."""
        return self.nics[nic.via] if nic.via else nic

    @property
    def bonded(self) -> bool:
        return any(nic.bond is not None for nic in self.nics.values())

    @property
    def address(self) -> str | None:
        """The address tools connect to: ansible_host, else the private static IP."""
        if self.ansible_host:
            return self.ansible_host
        private = self.nics.get("private")
        return str(private.ip) if private and private.ip else None


@dataclass(frozen=True)
class Brick:
    host: str
    path: str

    def __str__(self) -> str:
        return f"{self.host}:{self.path}"


@dataclass(frozen=True)
class GlusterVolume:
    name: str
    replica: int
    bricks: tuple[Brick, ...]
    mount: str


@dataclass(frozen=True)
class Squid:
    port: int = 3128
    cache_size_mb: int = 20000
    memory_cache_mb: int = 1024
    maximum_object_size_mb: int = 1024
    upstream_proxy: str = ""
    stratum1_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenNebulaVnet:
    """A virtual network the site asks for; checked against the networks and hosts when loaded."""

    name: str
    network: str
    bridge: str  # the network's bridge when the inventory does not name one
    # Resolved by the loader (default: the upper half of the subnet), so never None in a loaded Site.
    ar_start: ipaddress.IPv4Address | None = None
    ar_size: int | None = None
    at: str = field(default="", compare=False)


@dataclass(frozen=True)
class Belle2:
    """The Belle II worker VM: image, template and what its start script configures."""

    image_url: str = "https://repo.almalinux.org/almalinux/9/cloud/x86_64/images/AlmaLinux-9-GenericCloud-latest.x86_64.qcow2"
    image_name: str = "belle2-alma9"
    template_name: str = "belle2-worker"
    cpu: float = 1.0
    vcpu: int = 1
    memory_mb: int = 2048
    cvmfs_repositories: tuple[str, ...] = ("belle.cern.ch", "grid.cern.ch")
    ssh_key: str | None = None


@dataclass(frozen=True)
class Rocci:
    enabled: bool = False
    package_url: str = ""


@dataclass(frozen=True)
class OpenNebulaSettings:
    mirror: str = ""  # empty: upstream downloads
    mirror_gpgkey: str = ""  # empty: upstream's repository key
    hypervisor: str = "kvm"  # the hosts' IM/VM drivers: kvm, or qemu (emulation, where there is no KVM)
    components: tuple[str, ...] | None = None  # front-end components; None: upstream's list
    endpoint: str | None = None  # None: http://<front-end>:2633/RPC2
    vnets: tuple[OpenNebulaVnet, ...] = ()
    belle2: Belle2 = field(default_factory=Belle2)
    rocci: Rocci = field(default_factory=Rocci)
    host_failure: HostFailure = field(default_factory=lambda: HostFailure())


@dataclass(frozen=True)
class HostFailure:
    """OpenNebula's host-failure hook: fence a host in ERROR, then reschedule its VMs on shared storage."""

    fence_command: str = ""  # empty: no fencing configured, so no hook (moving VMs unfenced is unsafe)
    pause_cycles: int = 1  # host_error.rb -p: monitoring cycles (60 s each) to wait for the host first


@dataclass(frozen=True)
class Site:
    name: str
    release: Release
    repos: dict[str, str]
    networks: dict[str, Network]
    hosts: tuple[Host, ...]
    root_password_hash: str | None
    ssh_keys: tuple[str, ...]
    gluster_volumes: tuple[GlusterVolume, ...]
    opennebula_version: str
    squid: Squid
    timezone: str = "UTC"
    keyboard: str = "us"
    lang: str = "en_US.UTF-8"
    datastore_path: str = "/var/lib/one/datastores"
    gluster_allow_root_bricks: bool = False
    opennebula: OpenNebulaSettings = field(default_factory=OpenNebulaSettings)
    source: str = ""  # the inventory path it was loaded from
    extra: dict[str, object] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # as Host.origins

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def service_hosts(self) -> list[Host]:
        return [h for h in self.hosts if h.klass == "service"]

    @property
    def worker_hosts(self) -> list[Host]:
        return [h for h in self.hosts if h.klass == "worker"]

    @property
    def frontend(self) -> Host | None:
        return next((h for h in self.hosts if h.frontend), None)
