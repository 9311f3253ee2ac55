"""Lab hosts on one machine: systemd-nspawn containers on overlays of the cached base image.

Layout of one lab (slot S is unique among the labs on this machine, so several labs coexist):

    root namespace   bridge b2sSp 10.213.S.254/24 (private)   bridge b2sSu 10.214.S.254/24 (public)
                        |  veth per host                          |  veth per service host
    netns b2ct-LAB-HOST  eth0 10.213.S.x (+ eth1 10.214.S.x)  <- systemd-nspawn --boot, systemd-networkd
    netns b2ct-LAB-gw    10.213.S.1, 10.214.S.1, 10.215.S.1    the site "gateway": routes, no uplink
    netns b2ct-LAB-out   10.215.S.2, default via gw             an outsider, not in any site network

Nothing routes out of the machine: the gateway namespace has no default route, and the root namespace
does not forward. Every resource is recorded in the state file before it is created (see state.py).

A bonded lab (``up(bond=True)``) runs its hosts as QEMU guests instead (b2ct/lab/vm.py), since bonds and
VLANs need drivers a container cannot have when this machine's kernel lacks them: each host's private
network on a bond (balance-alb) of two NICs, taps on the private bridge, and the storage network
10.216.S.0/24 as VLAN 20 on that bond, as the kickstart of a bonded site installs them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from b2ct import tools
from b2ct.errors import B2ctError
from b2ct.fsutil import atomic_write
from b2ct.lab import guest, image, mirror, net, vm
from b2ct.lab.state import STATE_ROOT, LabState, Resource, alive, all_labs, lab_dir, locked, proc_start_time
from b2ct.ui import info, step

PRIVATE_NET = "10.213"
PUBLIC_NET = "10.214"
OUTSIDE_NET = "10.215"
STORAGE_NET = "10.216"  # bonded labs: the storage network, tagged on the hosts' bonds
STORAGE_VLAN = 20
BOND_MODE = "balance-alb"  # adaptive load balancing, as the Naples cloud bonded: no switch setup needed
HOST_OCTET = 254  # this machine's address on the lab bridges
GW_OCTET = 1
# Sparse: costs nothing until written. Room for a VM with 1 GiB volatile and swap disks on any datastore.
DISK_SIZE = 4 * 1024**3
MAX_SLOTS = 200
DEFAULT_HOSTS = ("svc1", "svc2", "wn1", "wn2")
POWEROFF_WAIT = 10.0
VM_POWEROFF_WAIT = 30.0  # systemd's shutdown under emulation; then QEMU is ended (a power cut)
BOOT_TIMEOUT = float(os.environ.get("B2CT_LAB_BOOT_TIMEOUT", "180"))
# A QEMU guest boots under emulation: ~70 s alone, more beside other guests on a busy machine.
VM_BOOT_TIMEOUT = float(os.environ.get("B2CT_LAB_VM_BOOT_TIMEOUT", "900"))
VM_SSH_TIMEOUT = 120  # seconds, for Ansible's connections to a guest

_LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_HOST_NAME = re.compile(r"^(svc|wn)([1-9][0-9]{0,2})$")


@dataclass(frozen=True)
class HostSpec:
    name: str
    kind: str  # "service" or "worker"
    index: int

    @property
    def octet(self) -> int:
        # Mirrors inventory/example: services .11, .12 …; workers .21, .22 …
        return 10 + self.index if self.kind == "service" else 20 + self.index


def plan_hosts(
    hosts: Sequence[str] | None = None, services: int | None = None, workers: int | None = None
) -> list[HostSpec]:
    """Host list from names (svcN = service host, wnN = worker) or from counts."""
    if hosts and (services is not None or workers is not None):
        raise B2ctError("give either --hosts or --services/--workers, not both")
    if services is not None or workers is not None:
        names = [f"svc{i}" for i in range(1, (services or 0) + 1)]
        names += [f"wn{i}" for i in range(1, (workers or 0) + 1)]
    else:
        names = list(hosts or DEFAULT_HOSTS)
    if not names:
        raise B2ctError("a lab needs at least one host")
    specs: list[HostSpec] = []
    for name in names:
        m = _HOST_NAME.match(name)
        if not m:
            raise B2ctError(
                f"lab host name {name!r} is not svcN or wnN", hint="svcN hosts are service hosts, wnN workers"
            )
        kind = "service" if m.group(1) == "svc" else "worker"
        idx = int(m.group(2))
        if (kind == "service" and idx > 9) or idx > 200:
            raise B2ctError(f"lab host {name!r}: at most svc9 and wn200")
        specs.append(HostSpec(name, kind, idx))
    if len({s.name for s in specs}) != len(specs):
        raise B2ctError(f"duplicate host names in {', '.join(names)}")
    return specs


def check_lab_name(name: str) -> str:
    if not _LAB_NAME.match(name):
        raise B2ctError(f"lab name {name!r} is not 1-12 characters [a-z0-9] starting with a letter")
    return name


# -- processes inside a container --------------------------------------------------------------------------


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _ppid_and_nspid(pid: int) -> tuple[int, list[str]]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, []
    ppid, nspid = 0, []
    for line in status.splitlines():
        if line.startswith("PPid:"):
            ppid = int(line.split()[1])
        elif line.startswith("NSpid:"):
            nspid = line.split()[1:]
    return ppid, nspid


def _container_init(nspawn_pid: int) -> int:
    """The container's PID 1, seen from here: the child of nspawn that is pid 1 in its own pid namespace.

    (Its /proc/PID/root reads "/" from here, since it lives in its own mount namespace, so the
    overlay path cannot identify it; its parent can.)"""
    for pid in _pids():
        ppid, nspid = _ppid_and_nspid(pid)
        if ppid == nspawn_pid and len(nspid) > 1 and nspid[-1] == "1":
            return pid
    return 0


def _pidns(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return 0


def _pidns_members(ino: int) -> list[int]:
    return [pid for pid in _pids() if ino and _pidns(pid) == ino]


def _nspawn_pids_for(root: Path) -> list[int]:
    # nspawn runs in our root; match its command line on the exact recorded overlay path.
    needle = f"\0-D\0{root}\0".encode()
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"systemd-nspawn\0") and needle in b"\0" + cmdline:
            found.append(pid)
    return found


def _qemu_pids_named(name: str) -> list[int]:
    needle = f"\0-name\0{name}\0".encode()
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"qemu-system-") and needle in cmdline:
            found.append(pid)
    return found


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # Containers started in-process (pytest fixture) are our children: reap them so no zombie stays.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class HostStatus:
    name: str
    groups: list[str]
    state: str
    ip: str
    public_ip: str
    ssh: bool


class Lab:
    """One lab: `up`, `down`, `status`, and ways to run commands on its hosts."""

    def __init__(self, name: str = "default"):
        self.name = check_lab_name(name)

    # -- paths and recorded facts ----------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return lab_dir(self.name)

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory"

    @property
    def key(self) -> Path:
        return self.dir / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "ssh" / "known_hosts"

    def state(self) -> LabState:
        st = LabState.load(self.name)
        if st is None:
            raise B2ctError(f"lab {self.name!r} is not up", hint=f"b2ct lab up --name {self.name}")
        return st

    def exists(self) -> bool:
        return (self.dir / "state.json").exists()

    @property
    def hosts(self) -> list[str]:
        return list(self.state().hosts)

    def host(self, name: str) -> dict[str, Any]:
        hosts = self.state().hosts
        if name not in hosts:
            raise B2ctError(f"no host {name!r} in lab {self.name!r}", hint=f"hosts: {', '.join(hosts)}")
        return hosts[name]

    def ip(self, host: str) -> str:
        return str(self.host(host)["ip"])

    def netns(self, host: str) -> str:
        return str(self.host(host)["netns"])

    @property
    def outsider_ip(self) -> str:
        return str(self.state().outsider["ip"])

    @property
    def host_ip(self) -> str:
        """This machine's address on the private lab bridge (what hosts see as the ansible controller)."""
        return f"{PRIVATE_NET}.{self.state().slot}.{HOST_OCTET}"

    # -- running commands ------------------------------------------------------------------------------
    def ssh_argv(self, host: str, cmd: str | Sequence[str] | None = None, *, tty: bool = False) -> list[str]:
        argv = [
            "ssh", "-i", str(self.key),
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
            "-t" if tty else "-T",
            f"root@{self.ip(host)}",
        ]  # fmt: skip
        if cmd:
            argv.append(cmd if isinstance(cmd, str) else shlex.join(cmd))
        return argv

    def ssh(
        self,
        host: str,
        cmd: str | Sequence[str],
        *,
        check: bool = False,
        timeout: float | None = 300,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` on ``host`` over ssh as root (a string goes to the remote shell as is)."""
        return subprocess.run(
            self.ssh_argv(host, cmd), capture_output=True, text=True, check=check, timeout=timeout,
            input=input, stdin=None if input is not None else subprocess.DEVNULL,
        )  # fmt: skip

    def exec_argv(self, host: str, cmd: Sequence[str]) -> list[str]:
        if self.host(host).get("vm"):
            # A QEMU guest has no namespaces on this machine to enter: its shell is reached over ssh.
            return self.ssh_argv(host, shlex.join(cmd))
        pid = int(self.host(host).get("init_pid", 0))
        if not alive(pid, int(self.host(host).get("init_start", 0))):
            raise B2ctError(f"lab host {host} is not running", hint=f"b2ct lab up --name {self.name}")
        return [
            "nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
            "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root", "LANG=C.UTF-8", *cmd,
        ]  # fmt: skip

    def exec(
        self, host: str, cmd: str | Sequence[str], *, check: bool = False, timeout: float | None = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside ``host`` without ssh (nsenter into its init's namespaces): works while the
        host's network or sshd is broken, e.g. to inspect a role that took the network down."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return subprocess.run(
            self.exec_argv(host, argv), capture_output=True, text=True, check=check, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def outsider_exec(
        self, cmd: str | Sequence[str], *, check: bool = False, timeout: float | None = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` on this machine inside the outsider namespace: its address is in no site network,
        but it can route to the hosts through the lab gateway (to prove services refuse outsiders)."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        ns = self.state().outsider["netns"]
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def set_link(self, host: str, member: int, up: bool) -> str:
        """Pull (``up=False``) or plug back the cable of a bonded host's ``member``-th bond member: its tap
        goes down on this machine, so nothing passes, and the guest's NIC loses its carrier (QMP
        set_link), which is what the bond's link monitoring sees. Returns the tap's name."""
        h = self.host(host)
        if not h.get("members"):
            raise B2ctError(f"lab host {host} has no bond", hint="b2ct lab up --bond")
        nic = h["members"][member]
        if up:
            net.run(["ip", "link", "set", nic["tap"], "up"])
            vm.qmp(Path(h["qmp"]), "set_link", {"name": nic["id"], "up": True})
        else:
            vm.qmp(Path(h["qmp"]), "set_link", {"name": nic["id"], "up": False})
            net.run(["ip", "link", "set", nic["tap"], "down"])
        return str(nic["tap"])

    # -- status ----------------------------------------------------------------------------------------
    def status(self) -> list[HostStatus]:
        st = self.state()
        rows = []
        for name, h in st.hosts.items():
            running = alive(int(h.get("init_pid", 0)), int(h.get("init_start", 0)))
            reachable = running and _port_open(h["ip"], 22, 1.0)
            rows.append(
                HostStatus(
                    name,
                    h["groups"],
                    "running" if running else "stopped",
                    h["ip"],
                    h.get("public_ip", ""),
                    reachable,
                )
            )
        return rows

    # -- up --------------------------------------------------------------------------------------------
    def up(
        self,
        specs: Sequence[HostSpec] | None = None,
        *,
        label: str = "",
        owner_pid: int | None = None,
        keep_on_failure: bool = False,
        rebuild_image: bool = False,
        bare: bool = False,
        opennebula: bool = True,
        opennebula_repo: Path | None = None,
        bond: bool = False,
    ) -> Lab:
        """Build (or reuse) the base image, start the hosts, wait for sshd, write the inventory.

        ``bare``: hosts without the roles' packages, which the first deploy installs from a local
        repository in the image (slower, but the install path of a site's first deploy).
        ``opennebula``: serve OpenNebula's apt repository (``opennebula_repo``, default
        ``mirror.default_repo()``) from the lab's gateway as a site mirror, and point the inventory
        at it; without it the inventory tells the roles to skip OpenNebula's packages and services.
        ``bond``: hosts are QEMU guests whose private network is a bond of two NICs and whose storage
        network is a VLAN on it (see the module's docstring); needs a kernel with those drivers in /boot."""
        specs = list(specs or plan_hosts())
        if os.geteuid() != 0:
            raise B2ctError("the lab needs root (network namespaces, loop devices, mounts)")
        for tool in ("systemd-nspawn", "ip", "losetup", "ssh", "ssh-keygen", "nsenter", "openssl"):
            tools.need(tool)
        guest_kernel = None
        if bond:
            vm.check_tools()
            guest_kernel = vm.kernel()  # before anything is created: a clear error without one
        repo = (opennebula_repo or mirror.default_repo()) if opennebula else None
        if repo is not None:
            # Bad input fails here, before an image is built or anything is created.
            mirror.repo_version(repo)
            mirror.check_tools()
        cached = image.image_path(bare=bare, opennebula_repo=repo).is_dir()
        _check_space(len(specs), image_missing=rebuild_image or not cached)
        base = image.ensure_image(rebuild=rebuild_image, bare=bare, opennebula_repo=repo)
        with locked(STATE_ROOT / ".slots.lock"):
            existing = LabState.load(self.name)
            if existing is not None:
                raise B2ctError(
                    f"lab {self.name!r} already exists ({existing.phase})",
                    hint=f"b2ct lab down --name {self.name}",
                )
            st = LabState(
                name=self.name,
                slot=_free_slot(),
                owner_pid=owner_pid or os.getpid(),
                label=label,
                created=time.time(),
            )
            st.owner_start = proc_start_time(st.owner_pid)
            self.dir.mkdir(parents=True, exist_ok=True)
            st.save()
        try:
            with step(
                f"lab {self.name}: {len(specs)} hosts on slot {st.slot} ({PRIVATE_NET}.{st.slot}.0/24)"
            ):
                self._up(st, specs, base / "rootfs", repo, guest_kernel)
        except BaseException:
            if keep_on_failure:
                info(f"[yellow]lab {self.name} kept; `b2ct lab down --name {self.name}` removes it[/yellow]")
            else:
                with contextlib.suppress(Exception):
                    info("removing what was created")
                    self.down()
            raise
        return self

    def _up(
        self,
        st: LabState,
        specs: list[HostSpec],
        lower: Path,
        repo: Path | None,
        guest_kernel: tuple[Path, Path, str] | None = None,
    ) -> None:
        s = st.slot
        services = [sp for sp in specs if sp.kind == "service"]
        with step("keys and networks"):
            key_dir = self.dir / "ssh"
            key_dir.mkdir(mode=0o700, exist_ok=True)
            net.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"b2ct-lab-{self.name}",
                    "-f",
                    str(self.key),
                ]
            )
            bridges = {"private": f"b2s{s}p", "public": f"b2s{s}u"}
            for which, br in bridges.items():
                prefix = PRIVATE_NET if which == "private" else PUBLIC_NET
                self._bridge(st, br, f"{prefix}.{s}.{HOST_OCTET}/24")
            self._gateway(st, bridges)
        if repo is not None:
            with step("OpenNebula mirror on the lab gateway"):
                self._mirror(st, repo)
        hosts: dict[str, dict[str, Any]] = {}
        for sp in specs:
            groups = [sp.kind]
            if services and sp is services[0]:
                groups = ["frontend", "service"]
            h: dict[str, Any] = {
                "groups": groups,
                "kind": sp.kind,
                "ip": f"{PRIVATE_NET}.{s}.{sp.octet}",
                "mac": _mac(s, 1, sp.octet),
                "netns": f"b2ct-{self.name}-{sp.name}",
                "dir": str(self.dir / sp.name),
                "root": str(self.dir / sp.name / "root"),
            }
            if sp.kind == "service":
                h["public_ip"] = f"{PUBLIC_NET}.{s}.{sp.octet}"
                h["public_mac"] = _mac(s, 2, sp.octet)
            if guest_kernel is not None:
                kernel, initrd, version = guest_kernel
                h.update(vm=True, netns="", kernel=str(kernel), initrd=str(initrd), kernel_version=version)
                # two NICs on the private bridge, bonded; their taps are the cables the tests pull
                h["members"] = [
                    {"id": f"m{i}", "mac": _mac(s, net_id, sp.octet), "tap": f"b2s{s}h{sp.octet}{tap}"}
                    for i, (net_id, tap) in enumerate(((1, "p"), (3, "q")))
                ]
                h["bond"] = "bond0"
                h["storage_ip"] = f"{STORAGE_NET}.{s}.{sp.octet}"
            hosts[sp.name] = h
        st.hosts = hosts
        st.save()
        with step("host filesystems, disks and interfaces"):
            for name, h in hosts.items():
                self._prepare_host(st, name, h, lower, bridges)
        with step("booting"):
            for name, h in hosts.items():
                self._boot(st, name, h)
            self._wait_init(st)
        with step("waiting for sshd on every host"):
            self._wait_ssh(st)
        with step("writing inventory"):
            self._write_inventory(st)
        st.phase = "up"
        st.save()
        info(f"inventory: {self.inventory}")

    def _bridge(self, st: LabState, name: str, addr: str) -> None:
        res = st.intend("bridge", name)
        if net.link_exists(name):
            raise B2ctError(f"network interface {name} already exists", hint="another lab uses this slot?")
        net.run(["ip", "link", "add", name, "type", "bridge"])
        st.created_(res)
        net.run(["ip", "addr", "add", addr, "dev", name])
        net.run(["ip", "link", "set", name, "up"])

    def _netns(self, st: LabState, name: str) -> None:
        res = st.intend("netns", name)
        net.run(["ip", "netns", "add", name])
        st.created_(res)
        net.run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _veth(self, st: LabState, outer: str, bridge: str, netns: str, inner: str, mac: str) -> None:
        res = st.intend("veth", outer)
        net.run(
            [
                "ip",
                "link",
                "add",
                outer,
                "type",
                "veth",
                "peer",
                "name",
                inner,
                "address",
                mac,
                "netns",
                netns,
            ]
        )
        st.created_(res)
        net.run(["ip", "link", "set", outer, "master", bridge, "up"])

    def _gateway(self, st: LabState, bridges: dict[str, str]) -> None:
        s = st.slot
        gw, out = f"b2ct-{self.name}-gw", f"b2ct-{self.name}-out"
        self._netns(st, gw)
        self._veth(st, f"b2s{s}gp", bridges["private"], gw, "private", _mac(s, 1, GW_OCTET))
        self._veth(st, f"b2s{s}gu", bridges["public"], gw, "public", _mac(s, 2, GW_OCTET))
        self._netns(st, out)
        # Both ends live in lab namespaces, so the pair goes away with them: nothing to record.
        net.run(
            ["ip", "-n", gw, "link", "add", "outside", "type", "veth", "peer", "name", "eth0", "netns", out]
        )
        for ns, dev, addr in (
            (gw, "private", f"{PRIVATE_NET}.{s}.{GW_OCTET}/24"),
            (gw, "public", f"{PUBLIC_NET}.{s}.{GW_OCTET}/24"),
            (gw, "outside", f"{OUTSIDE_NET}.{s}.1/24"),
            (out, "eth0", f"{OUTSIDE_NET}.{s}.2/24"),
        ):
            net.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
            net.run(["ip", "-n", ns, "link", "set", dev, "up"])
        net.run(["ip", "-n", out, "route", "add", "default", "via", f"{OUTSIDE_NET}.{s}.1"])
        # Forwarding inside the gateway namespace only; it has no uplink, so nothing leaves the machine.
        net.run(["ip", "netns", "exec", gw, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        st.outsider = {"netns": out, "ip": f"{OUTSIDE_NET}.{s}.2", "gateway_netns": gw}
        st.save()

    def _mirror(self, st: LabState, repo: Path) -> None:
        """Lay out and sign the repository (b2ct/lab/mirror.py), then serve it over HTTP on port 80 of
        the gateway namespace: the hosts reach it at their gateway's address, as a site's mirror."""
        dest = self.dir / "mirror"
        base_url = f"http://{PRIVATE_NET}.{st.slot}.{GW_OCTET}"
        found = mirror.build(repo, dest, image.SUITE, base_url)
        (dest / "images").mkdir()
        guest.write_image(dest / "images" / "b2ct-lab-guest.qcow2")
        log = self.dir / "mirror.log"
        res = st.intend("process", "service:mirror")
        # nsenter execs the server in the namespace: the pid we record is the server's own.
        with open(log, "ab") as errors:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{st.outsider['gateway_netns']}",
                 sys.executable, "-m", "b2ct.lab.httpd", str(dest), "0.0.0.0", "80", str(log)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                start_new_session=True, text=True,
            )  # fmt: skip
        st.created_(res, pid=proc.pid, start=proc_start_time(proc.pid))
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()  # the server prints its port once it listens
        proc.stdout.close()
        if not port.isdigit():
            raise B2ctError(f"the lab's HTTP server did not start: {_tail(log)}", where=log)
        st.services["mirror"] = {
            "url": base_url,
            "opennebula_repo": found.repo_url,
            "opennebula_key": found.key_url,
            "opennebula_version": found.version,
            "guest_image": f"{base_url}/images/b2ct-lab-guest.qcow2",
            "source": str(repo),
            "root": str(dest),
        }
        st.save()

    def _prepare_host(
        self, st: LabState, name: str, h: dict[str, Any], lower: Path, bridges: dict[str, str]
    ) -> None:
        hdir = Path(h["dir"])
        root = Path(h["root"])
        for sub in ("upper", "work", "root"):
            (hdir / sub).mkdir(parents=True, exist_ok=True)
        res = st.intend("mount", str(root), host=name)
        net.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={lower},upperdir={hdir / 'upper'},workdir={hdir / 'work'}", str(root)]
        )  # fmt: skip
        st.created_(res)
        self._customise(st, name, h, root)
        # One disk per host: service hosts get a Gluster brick, workers an ephemeral disk.
        disk = hdir / ("brick.img" if h["kind"] == "service" else "ephemeral.img")
        with open(disk, "wb") as fh:
            fh.truncate(DISK_SIZE)
        h["disk_var"] = "b2ct_brick_disk" if h["kind"] == "service" else "b2ct_ephemeral_disk"
        if h.get("vm"):
            self._prepare_vm(st, name, h, root, disk, bridges)
            return
        res = st.intend("loop", str(disk), host=name)
        dev = net.run(["losetup", "--find", "--show", str(disk)]).stdout.strip()
        st.created_(res, dev=dev)
        h["disk"] = dev
        self._netns(st, h["netns"])
        s = st.slot
        octet = int(h["ip"].rsplit(".", 1)[1])
        self._veth(st, f"b2s{s}h{octet}p", bridges["private"], h["netns"], "eth0", h["mac"])
        if h["kind"] == "service":
            self._veth(st, f"b2s{s}h{octet}u", bridges["public"], h["netns"], "eth1", h["public_mac"])
        st.save()

    def _prepare_vm(
        self, st: LabState, name: str, h: dict[str, Any], root: Path, disk: Path, bridges: dict[str, str]
    ) -> None:
        """A QEMU guest's root image (its customised overlay, with the kernel's modules) and NICs."""
        hdir = Path(h["dir"])
        res = st.intend("file", str(hdir / "root.img"), host=name)
        vm.make_root_image(root, hdir / "root.img", h["kernel_version"])
        st.created_(res)
        h["disk_file"] = str(disk)
        h["disk"] = "/dev/vdb"  # the second virtio disk, as the guest sees it
        nics = [*h["members"]]
        if "public_ip" in h:
            nics.append({"id": "pub", "mac": h["public_mac"], "tap": f"b2s{st.slot}h{_octet(h)}u"})
        for nic in nics:
            res = st.intend("tap", nic["tap"])
            if net.link_exists(nic["tap"]):
                raise B2ctError(
                    f"network interface {nic['tap']} already exists", hint="another lab uses this slot?"
                )
            bridge = bridges["public" if nic["id"] == "pub" else "private"]
            vm.add_tap(nic["tap"], bridge)
            st.created_(res)
        h["nics"] = nics
        st.save()

    def _customise(self, st: LabState, name: str, h: dict[str, Any], root: Path) -> None:
        s = st.slot
        (root / "etc/hostname").write_text(f"{name}\n")
        (root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{o['ip']}\t{n}" for n, o in st.hosts.items()]
        (root / "etc/hosts").write_text("\n".join(lines) + "\n")
        for stale in (root / "etc/ssh").glob("ssh_host_*"):
            stale.unlink()
        net.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}",
                 "-f", str(root / "etc/ssh/ssh_host_ed25519_key")])  # fmt: skip
        h["host_key"] = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]
        sshdir = root / "root/.ssh"
        sshdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (sshdir / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        os.chmod(sshdir / "authorized_keys", 0o600)
        # nspawn's /sys shows the interfaces of the machine's root namespace, not the host's own, which
        # would mislead Ansible facts and the roles. Early in boot, a sysfs mounted from inside the
        # host's namespace replaces the network part of /sys.
        units = root / "etc/systemd/system"
        wants = units / "sysinit.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        script = root / "usr/local/sbin/b2ct-lab-cgroups"
        script.write_text(_CGROUPS_SCRIPT)
        script.chmod(0o755)
        for unit, text in (
            ("b2ct-lab-sysfs.service", _SYSFS_UNIT),
            ("b2ct-lab-cgroups.service", _CGROUPS_UNIT),
            ("b2ct-lab-fstab.service", _FSTAB_UNIT),
        ):
            (units / unit).write_text(text)
            link = wants / unit
            if not link.is_symlink():
                link.symlink_to(f"/etc/systemd/system/{unit}")
        # systemd-networkd, matched by MAC like a real site's NICs; the kvm_host role can replace these
        # files with a bridge (.netdev) that enslaves the same MAC.
        netdir = root / "etc/systemd/network"
        netdir.mkdir(parents=True, exist_ok=True)
        if h.get("members"):
            _bond_files(netdir, h, s)
        else:
            (netdir / "10-b2ct-private.network").write_text(
                f"[Match]\nMACAddress={h['mac']}\n\n[Network]\nAddress={h['ip']}/24\n"
                f"Gateway={PRIVATE_NET}.{s}.{GW_OCTET}\nDNS={PRIVATE_NET}.{s}.{GW_OCTET}\n"
                "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
            )
        if "public_ip" in h:
            (netdir / "11-b2ct-public.network").write_text(
                f"[Match]\nMACAddress={h['public_mac']}\n\n[Network]\nAddress={h['public_ip']}/24\n"
                "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
            )

    def _unified_cgroup(self, st: LabState) -> Path | None:
        """The v2 cgroup tree, which nspawn places containers by; mounted for this lab if nowhere else."""
        with open("/proc/self/mounts") as fh:
            for line in fh:
                fields = line.split()
                if fields[2] == "cgroup2":
                    return Path(fields[1])
        path = self.dir / "cgroup2"
        res = st.intend("mount", str(path), host="")
        path.mkdir(exist_ok=True)
        net.run(["mount", "-t", "cgroup2", "-o", "nosuid,nodev,noexec", "b2ct-lab", str(path)])
        st.created_(res)
        st.save()
        return path

    def _boot(self, st: LabState, name: str, h: dict[str, Any]) -> None:
        if h.get("vm"):
            self._boot_vm(st, name, h)
            return
        root = Path(h["root"])
        argv = [
            "systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
            "-D", str(root), f"--machine=b2ct-{self.name}-{name}", f"--hostname={name}",
            f"--network-namespace-path=/run/netns/{h['netns']}", "--capability=all",
            "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only",
            f"--bind={h['disk']}",
        ]  # fmt: skip
        for dev in ("/dev/fuse", "/dev/net/tun"):
            if Path(dev).exists():
                argv.append(f"--bind={dev}")
        if h["kind"] == "worker" and KSM_DIR.is_dir():
            # Workers may switch KSM as the kvm_host role does on a real hypervisor. It is this
            # machine's kernel knob: the tests that flip it restore it.
            argv.append(f"--bind={KSM_DIR}")
        cgroups = _cgroups_for(self.name, name, self._unified_cgroup(st)) if hybrid_cgroups() else []
        for cgroup in cgroups:
            cg = st.intend("cgroup", str(cgroup), host=name)
            _make_cgroup(cgroup)
            st.created_(cg)
        res = st.intend("process", f"nspawn:{name}", host=name, root=str(root))
        with open(Path(h["dir"]) / "console.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_join_cgroups(cgroups) if cgroups else None,
            )
        st.created_(res, pid=proc.pid, start=proc_start_time(proc.pid))
        h["nspawn_pid"] = proc.pid
        st.save()

    def _boot_vm(self, st: LabState, name: str, h: dict[str, Any]) -> None:
        """Start the QEMU guest; its process stands for the host's init (alive, power off, status)."""
        hdir = Path(h["dir"])
        qmp = hdir / "qmp.sock"
        qmp.unlink(missing_ok=True)
        argv = vm.argv(
            name=f"b2ct-{self.name}-{name}",
            kernel_image=Path(h["kernel"]),
            initrd=Path(h["initrd"]),
            root_image=hdir / "root.img",
            disk=Path(h["disk_file"]),
            nics=h["nics"],
            qmp=qmp,
            console=hdir / "console.log",
        )
        res = st.intend("process", f"vm:{name}", host=name)
        with open(hdir / "qemu.log", "ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        start = proc_start_time(proc.pid)
        st.created_(res, pid=proc.pid, start=start)
        h.update(init_pid=proc.pid, init_start=start, qmp=str(qmp))
        st.save()

    def _wait_init(self, st: LabState, names: Sequence[str] | None = None) -> None:
        deadline = time.monotonic() + 30
        pending = {n: h for n, h in st.hosts.items() if (names is None or n in names) and not h.get("vm")}
        while pending:
            for name, h in list(pending.items()):
                pid = _container_init(int(h["nspawn_pid"]))
                if pid:
                    h["init_pid"], h["init_start"], h["pidns"] = pid, proc_start_time(pid), _pidns(pid)
                    res = st.intend("process", f"init:{name}", host=name, root=h["root"])
                    st.created_(res, pid=pid, start=h["init_start"], pidns=h["pidns"])
                    del pending[name]
                elif not alive(int(h["nspawn_pid"]), 0):
                    raise B2ctError(
                        f"systemd-nspawn for {name} exited: {_tail(Path(h['dir']) / 'console.log')}"
                    )
            if pending and time.monotonic() > deadline:
                raise B2ctError(f"containers did not start: {', '.join(pending)}")
            time.sleep(0.1)
        st.save()

    def _wait_ssh(self, st: LabState, names: Sequence[str] | None = None) -> None:
        vms = any(h.get("vm") for n, h in st.hosts.items() if names is None or n in names)
        timeout = VM_BOOT_TIMEOUT if vms else BOOT_TIMEOUT
        deadline = time.monotonic() + timeout
        self._write_known_hosts(st)
        pending = set(names if names is not None else st.hosts)
        running: dict[str, subprocess.Popen[bytes]] = {}
        while pending:
            for name in sorted(pending):
                h = st.hosts[name]
                if not alive(int(h["init_pid"]), int(h["init_start"])):
                    raise B2ctError(
                        f"lab host {name} stopped while booting: {_tail(Path(h['dir']) / 'console.log')}"
                    )
                if name in running:
                    rc = running[name].poll()
                    if rc is None:
                        continue
                    del running[name]
                    if rc == 0:
                        pending.discard(name)
                    continue
                if _port_open(h["ip"], 22, 0.3):
                    # Port open is not enough: sshd may still be reading its keys; a real login is.
                    running[name] = subprocess.Popen(
                        self.ssh_argv(name, "true"), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
            if pending and time.monotonic() > deadline:
                for p in running.values():
                    p.kill()
                raise B2ctError(
                    f"sshd did not answer within {timeout:.0f}s on {', '.join(sorted(pending))}",
                    hint="see console.log in the host's directory under " + str(self.dir),
                )
            time.sleep(0.2)

    def _write_known_hosts(self, st: LabState) -> None:
        lines = []
        for name, h in st.hosts.items():
            names = ",".join([name, h["ip"], *([h["public_ip"]] if "public_ip" in h else [])])
            lines.append(f"{names} {' '.join(h['host_key'])}")
        atomic_write(self.known_hosts, "\n".join(lines) + "\n", mode=0o600)

    def _write_inventory(self, st: LabState) -> None:
        s = st.slot
        ssh_args = f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={self.known_hosts}"
        groups: dict[str, dict[str, Any]] = {"frontend": {}, "service": {}, "worker": {}}
        for name, h in st.hosts.items():
            hv: dict[str, Any] = {
                "ansible_host": h["ip"],
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(self.key),
                "ansible_ssh_common_args": ssh_args,
                "b2ct_nics": {"private": {"mac": h["mac"], "ip": h["ip"]}},
            }
            if "public_ip" in h:
                hv["b2ct_nics"]["public"] = {"mac": h["public_mac"], "ip": h["public_ip"]}
            if h.get("vm"):
                # sshd of an emulated guest on a busy machine can take longer than the deploy's default
                hv["ansible_ssh_timeout"] = VM_SSH_TIMEOUT
            if h.get("members"):
                # as a bonded site writes it: the private network on a bond, storage tagged on it
                hv["b2ct_nics"]["private"] = {
                    "bond": {"mode": BOND_MODE, "members": [m["mac"] for m in h["members"]]},
                    "ip": h["ip"],
                }
                hv["b2ct_nics"]["storage"] = {"via": "private", "ip": h["storage_ip"]}
            hv[h["disk_var"]] = h["disk"]
            groups[h["kind"]][name] = hv
            if "frontend" in h["groups"]:
                groups["frontend"][name] = None
        hosts_doc = {"all": {"children": {g: {"hosts": hs} for g, hs in groups.items() if hs}}}
        services = [n for n, h in st.hosts.items() if h["kind"] == "service"]
        volumes = []
        if len(services) >= 2:
            # The two volumes `b2ct cloud apply` puts datastores on: the services' system datastore (100)
            # and the image datastore, which adopts oned's default datastore 1.
            for name, mount in (
                ("one-system", "/var/lib/one/datastores/100"),
                ("one-images", "/var/lib/one/datastores/1"),
            ):
                volumes.append(
                    {
                        "name": name,
                        "replica": 2,
                        "bricks": [f"{n}:/bricks/{name}/brick" for n in services[:2]],
                        "mount": mount,
                    }
                )
        all_doc = {
            "b2ct_site": "lab",
            "b2ct_os_release": "debian12",
            "b2ct_networks": {
                "private": {
                    "subnet": f"{PRIVATE_NET}.{s}.0/24",
                    "gateway": f"{PRIVATE_NET}.{s}.{GW_OCTET}",
                    "dns": [f"{PRIVATE_NET}.{s}.{GW_OCTET}"],
                    "bridge": "br-private",
                },
                "public": {
                    "subnet": f"{PUBLIC_NET}.{s}.0/24",
                    "gateway": f"{PUBLIC_NET}.{s}.{GW_OCTET}",
                    "dns": [f"{PUBLIC_NET}.{s}.{GW_OCTET}"],
                    "bridge": "br-public",
                },
            },
            "b2ct_timezone": "Etc/UTC",
            "b2ct_root_password_hash": _password_hash(),
            "b2ct_ssh_keys": [self.key.with_suffix(".pub").read_text().strip()],
            "b2ct_gluster_volumes": volumes,
            "b2ct_opennebula_version": "6.10",
            "b2ct_squid": {
                "cache_size_mb": 1000,
                "memory_cache_mb": 64,
                "maximum_object_size_mb": 256,
                "upstream_proxy": "",
                "stratum1_urls": ["http://cvmfs-stratum-one.cern.ch:8000/cvmfs"],
            },
        }
        if any(h.get("members") for h in st.hosts.values()):
            networks: dict[str, Any] = all_doc["b2ct_networks"]  # type: ignore[assignment]
            networks["storage"] = {"subnet": f"{STORAGE_NET}.{s}.0/24", "vlan": STORAGE_VLAN}
        all_doc.update(self._opennebula_settings(st))
        inv = self.inventory
        (inv / "group_vars").mkdir(parents=True, exist_ok=True)
        head = f"# Written by `b2ct lab up` for lab {self.name!r} (slot {s}); removed by `b2ct lab down`.\n"
        atomic_write(inv / "hosts.yml", head + _yaml(hosts_doc))
        atomic_write(inv / "group_vars" / "all.yml", head + _yaml(all_doc))
        # Facts tests want that are not site settings: kept outside the inventory directory, since
        # Ansible would parse any file inside it as an inventory source.
        meta = {
            "name": self.name,
            "slot": s,
            "inventory": str(inv),
            "key": str(self.key),
            "known_hosts": str(self.known_hosts),
            "host_ip": self.host_ip,
            "outsider": st.outsider,
            "hosts": {n: _meta(h) for n, h in st.hosts.items()},
        }
        atomic_write(self.dir / "lab.json", json.dumps(meta, indent=1) + "\n")

    def _opennebula_settings(self, st: LabState) -> dict[str, Any]:
        """The inventory's OpenNebula settings for this lab: its mirror, QEMU emulation (no KVM here),
        the front-end components the mirror has (Sunstone and FireEdge cannot be built offline), and a
        guest small enough for emulation, served by the lab as a site serves its images."""
        served = st.services.get("mirror")
        if not served:
            # No repository: the roles configure everything around OpenNebula's packages (database,
            # oned.conf, libvirt, ssh trust) and say what they skipped.
            return {"opennebula_frontend_install_packages": False, "opennebula_node_install_packages": False}
        return {
            "b2ct_opennebula_version": served["opennebula_version"],
            "b2ct_opennebula_mirror": served["opennebula_repo"],
            "b2ct_opennebula_mirror_gpgkey": served["opennebula_key"],
            "b2ct_opennebula_hypervisor": "qemu",
            "b2ct_opennebula_components": ["gate", "flow"],
            # The lab has no BMC to power a failed host off: fencing here only confirms that the host no
            # longer answers. Unsafe on a site (a host cut off from one network still runs its VMs).
            "b2ct_opennebula_host_failure": {
                "fence_command": '! ping -q -c 3 -W 1 "$B2CT_FENCE_HOST" >/dev/null',
                "pause_cycles": 1,
            },
            "b2ct_belle2": {
                "image_url": served["guest_image"],
                "image_name": "b2ct-lab-guest",
                "template_name": "belle2-worker",
                "cpu": 0.1,
                "vcpu": 1,
                "memory_mb": 64,
            },
        }

    # -- power -----------------------------------------------------------------------------------------
    def power_off(self, host: str, *, hard: bool = False) -> None:
        """Stop one host: a clean systemd poweroff, or with ``hard`` a power cut (its whole pid namespace
        killed at once, nothing written back). Its disk, overlay and network namespace stay, so
        ``power_on`` boots it again as it was left; the links its own kernel state made (bridges, VM
        taps) go, as on a real power cycle. Raises B2ctError when it does not stop."""
        self.host(host)  # a clear error for an unknown host
        with locked(self.dir / ".down.lock"):
            st = self.state()
            h = st.hosts[host]
            if hard and alive(int(h.get("init_pid", 0)), int(h.get("init_start", 0))):
                _kill(int(h["init_pid"]), signal.SIGKILL)  # the kernel kills its whole pid namespace
            errors: list[str] = []
            self._stop_containers(st, errors, only=host)
            if errors:
                raise B2ctError(f"lab host {host} did not stop: {'; '.join(errors)}")
            h.pop("init_pid", None)
            h.pop("init_start", None)
            st.save()
            if h.get("vm"):
                return  # a guest's links die with it; its taps stay, as a cable stays plugged in
            keep = {"lo", "eth0", "eth1"}
            links = net.run(["ip", "-n", h["netns"], "-o", "link", "show"], check=False).stdout
            for line in links.splitlines():
                name = line.split(":")[1].strip().split("@")[0]
                if name not in keep:
                    net.run(["ip", "-n", h["netns"], "link", "delete", name], check=False)

    def power_on(self, host: str) -> None:
        """Boot a host that ``power_off`` stopped and wait until sshd answers (BOOT_TIMEOUT)."""
        self.host(host)
        st = self.state()
        h = st.hosts[host]
        if alive(int(h.get("init_pid", 0)), int(h.get("init_start", 0))):
            return
        self._boot(st, host, h)
        self._wait_init(st, [host])
        self._wait_ssh(st, [host])

    # -- reinstall -------------------------------------------------------------------------------------
    def reinstall(self, host: str) -> None:
        """Stand-in for reinstalling ``host``'s OS from the install media: power it off, reset its root
        filesystem to the lab's base image (the overlay's upper layer is emptied: packages, /etc, /var
        are as after `lab up`), keep its disk (brick or ephemeral disk) untouched, give it new ssh host
        keys and a new machine-id as an installer would, boot it and wait for sshd.

        Raises B2ctError when the host cannot be stopped or does not come back.
        """
        self.host(host)  # an unknown name is refused before anything stops
        st = self.state()
        h = st.hosts[host]
        if h.get("vm"):
            raise B2ctError(f"lab host {host} is a QEMU guest: reinstalling it is not supported")
        root, hdir = Path(h["root"]), Path(h["dir"])
        lower = _overlay_lower(root)
        errors: list[str] = []
        with step(f"lab {self.name}: reinstalling {host} (disk {h['disk']} kept)"):
            self._stop_containers(st, errors, only=host)
            if errors:
                raise B2ctError(f"lab host {host} did not stop: {'; '.join(errors)}")
            # its root overlay and cgroups go; its loop device, namespace and interfaces stay
            for res in [
                r for r in st.resources if r.extra.get("host") == host and r.kind in ("cgroup", "mount")
            ]:
                _remove(res)
                st.forget(res)
            for sub in ("upper", "work"):
                shutil.rmtree(hdir / sub)
                (hdir / sub).mkdir()
            res = st.intend("mount", str(root), host=host)
            net.run(
                ["mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir={lower},upperdir={hdir / 'upper'},workdir={hdir / 'work'}", str(root)]
            )  # fmt: skip
            st.created_(res)
            self._customise(st, host, h, root)
            st.save()
            self._boot(st, host, h)
            self._wait_init(st, [host])
            self._wait_ssh(st, [host])

    # -- down ------------------------------------------------------------------------------------------
    def down(self) -> None:
        """Remove everything the state file records, in reverse order, tolerating what is gone already."""
        st = LabState.load(self.name)
        if st is None:
            if self.dir.exists():
                self._remove_dir(st=None)
            return
        with locked(self.dir / ".down.lock"):
            st = LabState.load(self.name)
            if st is None:
                return
            st.phase = "removing"
            st.save()
            errors: list[str] = []
            self._stop_services(st, errors)
            self._stop_containers(st, errors)
            for res in reversed(list(st.resources)):
                if res.kind == "process":
                    continue
                try:
                    _remove(res)
                except (B2ctError, OSError) as exc:
                    errors.append(f"{res.kind} {res.id}: {exc}")
                    continue
                st.forget(res)
            if errors:
                raise B2ctError(
                    f"lab {self.name}: could not remove {len(errors)} item(s): {'; '.join(errors)}",
                    hint=f"fix, then `b2ct lab down --name {self.name}` again; state.json keeps the rest",
                )
            self._remove_dir(st)

    def _stop_services(self, st: LabState, errors: list[str]) -> None:
        """End the site services' processes (the mirror's HTTP server) by their recorded pid."""
        for r in [r for r in st.resources if r.kind == "process" and r.id.startswith("service:")]:
            pid, start = int(r.extra.get("pid", 0)), int(r.extra.get("start", 0))
            if alive(pid, start):
                _kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while alive(pid, start) and time.monotonic() < deadline:
                    _reap(pid)
                    time.sleep(0.05)
                if alive(pid, start):
                    _kill(pid, signal.SIGKILL)
                    time.sleep(0.1)
            _reap(pid)
            if alive(pid, start):
                errors.append(f"{r.id} (pid {pid}) still alive")
                continue
            st.forget(r)

    def _stop_vms(self, procs: list[Resource], errors: list[str]) -> None:
        """Power the QEMU guests off through their monitors (ACPI, systemd shuts down), then end the
        QEMU processes that are still there by pid."""
        vms = {
            (int(r.extra["pid"]), int(r.extra.get("start", 0))): r
            for r in procs
            if r.id.startswith("vm:") and r.extra.get("pid")
        }
        # A guest whose pid was never recorded (lab up killed right after the spawn): its command line
        # names it exactly.
        for r in procs:
            if r.id.startswith("vm:") and not r.extra.get("pid"):
                for pid in _qemu_pids_named(f"b2ct-{self.name}-{r.id.removeprefix('vm:')}"):
                    vms[(pid, proc_start_time(pid))] = r
        vms = {k: r for k, r in vms.items() if alive(*k)}
        for r in vms.values():
            qmp = Path(self.dir / r.id.removeprefix("vm:") / "qmp.sock")
            with contextlib.suppress(B2ctError):
                vm.qmp(qmp, "system_powerdown", timeout=2)
        deadline = time.monotonic() + VM_POWEROFF_WAIT
        while time.monotonic() < deadline and any(alive(*k) for k in vms):
            for pid, _ in vms:
                _reap(pid)
            time.sleep(0.2)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid, start in vms:
                if alive(pid, start):
                    _kill(pid, sig)
            time.sleep(0.5)
            for pid, _ in vms:
                _reap(pid)
        left = [pid for pid, start in vms if alive(pid, start)]
        if left:
            errors.append(f"QEMU processes still alive: {left}")

    def _stop_containers(self, st: LabState, errors: list[str], only: str | None = None) -> None:
        mine = [r for r in st.resources if only is None or r.extra.get("host") == only]
        procs = [r for r in mine if r.kind == "process" and not r.id.startswith("service:")]
        self._stop_vms(procs, errors)
        roots = {Path(r.id) for r in mine if r.kind == "mount"}
        nspawns = {
            (int(r.extra["pid"]), int(r.extra.get("start", 0)))
            for r in procs
            if r.id.startswith("nspawn:") and r.extra.get("pid")
        }
        # An nspawn whose pid we never recorded (lab up killed right after the spawn): its command line
        # names our recorded overlay path exactly.
        for root in roots:
            nspawns |= {(pid, proc_start_time(pid)) for pid in _nspawn_pids_for(root)}
        nspawns = {(p, s) for p, s in nspawns if alive(p, s)}
        inits = {
            (int(r.extra["pid"]), int(r.extra.get("start", 0)))
            for r in procs
            if r.id.startswith("init:") and r.extra.get("pid")
        }
        inits |= {(pid, proc_start_time(pid)) for p, _ in nspawns if (pid := _container_init(p))}
        inits = {(p, s) for p, s in inits if alive(p, s)}
        namespaces = {_pidns(p) for p, _ in inits} - {0}
        # systemd powers off on SIGRTMIN+4 (there is no host systemd or machinectl to ask).
        for pid, _ in inits:
            _kill(pid, signal.SIGRTMIN + 4)
        deadline = time.monotonic() + POWEROFF_WAIT
        while time.monotonic() < deadline and any(alive(p, s) for p, s in inits):
            time.sleep(0.2)
        # Killing a container's init makes the kernel kill its whole pid namespace; nspawn then exits.
        for pid, start in inits:
            if alive(pid, start):
                _kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for pid, _ in nspawns:
                _reap(pid)
            if not any(alive(p, s) for p, s in nspawns) and not any(_pidns_members(ns) for ns in namespaces):
                break
            time.sleep(0.1)
        for pid, start in nspawns:
            if alive(pid, start):
                _kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        for pid, _ in nspawns:
            _reap(pid)
        left = [p for p, s in nspawns if alive(p, s)] + [p for ns in namespaces for p in _pidns_members(ns)]
        if left:
            errors.append(f"processes still alive: {sorted(set(left))}")
            return
        for r in procs:
            if not alive(int(r.extra.get("pid", 0)), int(r.extra.get("start", 0))):
                st.forget(r)

    def _remove_dir(self, st: LabState | None) -> None:
        d = self.dir
        prefix = str(d) + "/"
        with open("/proc/self/mounts") as fh:
            busy = [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]
        if busy:
            raise B2ctError(f"still mounted under {d}: {', '.join(busy)}", hint="re-run `b2ct lab down`")
        if d.is_dir():
            (d / "state.json").unlink(missing_ok=True)  # first: a partly removed dir is no longer "a lab"
            shutil.rmtree(d, ignore_errors=True)


CGROUP_ROOT = Path("/sys/fs/cgroup")
KSM_DIR = Path("/sys/kernel/mm/ksm")


def hybrid_cgroups() -> bool:
    """cgroup v1 controllers beside a v2 tree and no host systemd to hand out cgroups (this machine)."""
    return (CGROUP_ROOT / "systemd" / "cgroup.procs").is_file()


def _cgroups_for(lab: str, host: str, unified: Path | None) -> list[Path]:
    """A cgroup of the host's own, below ours, in every hierarchy: v1 controllers and the v2 tree.

    Without a host systemd, nspawn puts every container at the same place (its v2 cgroup, mirrored
    into name=systemd: /payload, /supervisor), and each container's systemd creates its units'
    cgroups (system.slice/…) at the same paths as the others': a unit ending in one host removes the
    cgroup a same-named unit of another host is joining, which then fails with status=219/CGROUP.
    Children of our own cgroups keep every limit set above us (memory, cpu).
    """
    found: list[Path] = []
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers:
                mount = CGROUP_ROOT / ("systemd" if controllers == "name=systemd" else controllers)
            elif unified is not None:
                mount = unified
            else:
                continue
            if (mount / "cgroup.procs").is_file():
                found.append(mount / path.lstrip("/") / "b2ct-lab" / f"{lab}-{host}")
    return found


def _make_cgroup(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    # a new cpuset has no CPUs and no memory nodes: it accepts no process until it inherits them
    for knob in ("cpuset.cpus", "cpuset.mems"):
        mine, parent = path / knob, path.parent / knob
        if mine.exists() and not mine.read_text().strip():
            if not parent.read_text().strip():
                (path.parent / knob).write_text((path.parent.parent / knob).read_text())
            mine.write_text(parent.read_text())


def _join_cgroups(cgroups: list[Path]) -> Callable[[], None]:
    def join() -> None:  # runs in the child between fork and exec
        for cgroup in cgroups:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    return join


def _remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    # children first (nspawn made payload/ and systemd its units below it); all processes are gone by now
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        sub.rmdir()
    path.rmdir()
    with contextlib.suppress(OSError):  # the shared parent goes when the last lab's host does
        path.parent.rmdir()


def _remove(res: Resource) -> None:
    if res.kind == "cgroup":
        _remove_cgroup(Path(res.id))
    elif res.kind == "mount":
        path = Path(res.id)
        for attempt in range(20):
            if not net.is_mounted(path):
                return
            proc = net.run(["umount", str(path)], check=False)
            if proc.returncode == 0:
                continue
            if attempt == 19:
                net.run(["umount", "--lazy", str(path)])
            time.sleep(0.25)
    elif res.kind == "loop":
        for dev in net.loops_for(Path(res.id)):
            net.run(["losetup", "--detach", dev], check=False)
        left = net.loops_for(Path(res.id))
        if left:
            raise B2ctError(f"loop device(s) {', '.join(left)} still attached to {res.id}")
    elif res.kind in ("veth", "bridge", "tap"):
        if net.link_exists(res.id):
            net.run(["ip", "link", "delete", res.id])
    elif res.kind == "netns":
        ino = net.netns_inode(res.id)
        if ino:
            # Anything still inside (an outsider_exec that hung, a leftover shell) would keep it alive.
            for pid in _pids():
                try:
                    if os.stat(f"/proc/{pid}/ns/net").st_ino == ino:
                        _kill(pid, signal.SIGKILL)
                except OSError:
                    continue
            net.run(["ip", "netns", "delete", res.id])
    elif res.kind in ("file", "dir"):
        p = Path(res.id)
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


# libvirt puts each VM in cgroups of its own (OpenNebula always asks for <cputune><shares>), but
# systemd-nspawn mounts the cgroup v1 controllers read-only. The container has its own cgroup
# namespace, so making them writable from inside gives it its own subtree only, never this machine's.
_CGROUPS_UNIT = """\
[Unit]
Description=b2ct lab: this host's own cgroup v1 controllers writable, for libvirt's VMs
DefaultDependencies=no
Before=sysinit.target libvirtd.service virtqemud.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/b2ct-lab-cgroups

[Install]
WantedBy=sysinit.target
"""

# systemd-fstab-generator skips fstab's block-device entries in a container ("Running in a container,
# ignoring fstab device entry"), so a lab host that reboots (power_on) would come up without the brick or
# ephemeral filesystem the roles put in its fstab, and glusterd would find no brick to start. A real host
# mounts them before local-fs.target; so does this unit, for the local disk filesystems only.
_FSTAB_UNIT = """\
[Unit]
Description=b2ct lab: mount fstab's disk filesystems as a real host's boot would
DefaultDependencies=no
After=local-fs-pre.target
Before=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount -a -t xfs,ext4,ext3,ext2

[Install]
WantedBy=local-fs.target
"""

_CGROUPS_SCRIPT = """\
#!/bin/sh
# b2ct lab: remount read-only cgroup v1 controllers read-write (see b2ct-lab-cgroups.service).
awk '$3 == "cgroup" && $4 ~ /(^|,)ro(,|$)/ {print $2}' /proc/self/mounts | while read -r m; do
    mount -o remount,bind,rw "$m"
done
"""

_SYSFS_UNIT = """\
[Unit]
Description=b2ct lab: /sys/class/net of this host's own network namespace
DefaultDependencies=no
Before=sysinit.target systemd-networkd.service systemd-udevd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mkdir -p /run/b2ct-lab/sysfs
ExecStart=/bin/mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /run/b2ct-lab/sysfs
ExecStart=/bin/mount --bind /run/b2ct-lab/sysfs/class/net /sys/class/net
ExecStart=/bin/mount --bind /run/b2ct-lab/sysfs/devices/virtual/net /sys/devices/virtual/net

[Install]
WantedBy=sysinit.target
"""


_META = ("groups", "ip", "mac", "netns", "disk", "public_ip", "public_mac")
_VM_META = ("vm", "members", "bond", "storage_ip")  # bonded labs only


def _meta(h: dict[str, Any]) -> dict[str, Any]:
    """What lab.json tells tests of a host."""
    return {k: h.get(k) for k in _META} | {k: h[k] for k in _VM_META if k in h}


def _octet(h: dict[str, Any]) -> int:
    return int(h["ip"].rsplit(".", 1)[1])


def _bond_files(netdir: Path, h: dict[str, Any], slot: int) -> None:
    """A bonded host's network as its installation leaves it (the kickstart's bond and VLAN): the two
    members in bond0 (balance-alb), the private address on the bond, the storage address on VLAN 20 over
    it. Members match by permanent MAC: an enslaved NIC may carry the bond's. The kvm_host role's files
    (05-b2ct-*) sort first and replace these with the bridge over the bond."""
    members = " ".join(m["mac"] for m in h["members"])
    bond, vlan = h["bond"], f"{h['bond']}.{STORAGE_VLAN}"
    files = {
        "10-b2ct-bond.netdev": f"[NetDev]\nName={bond}\nKind=bond\nMACAddress={h['members'][0]['mac']}\n\n"
        f"[Bond]\nMode={BOND_MODE}\nMIIMonitorSec=100ms\n",
        "10-b2ct-bond-members.network": f"[Match]\nPermanentMACAddress={members}\n\n[Network]\nBond={bond}\n",
        "10-b2ct-private.network": f"[Match]\nName={h['bond']}\n\n[Network]\nAddress={h['ip']}/24\n"
        f"Gateway={PRIVATE_NET}.{slot}.{GW_OCTET}\nDNS={PRIVATE_NET}.{slot}.{GW_OCTET}\nVLAN={vlan}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n",
        "10-b2ct-storage.netdev": f"[NetDev]\nName={vlan}\nKind=vlan\n\n[VLAN]\nId={STORAGE_VLAN}\n",
        "10-b2ct-storage.network": f"[Match]\nName={vlan}\n\n[Network]\nAddress={h['storage_ip']}/24\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n",
    }
    for file, text in files.items():
        (netdir / file).write_text(text)


def _free_slot() -> int:
    used = set()
    for name in all_labs():
        with contextlib.suppress(B2ctError):
            st = LabState.load(name)
            if st is not None:
                used.add(st.slot)
    for slot in range(MAX_SLOTS):
        # A route to the subnet means something (maybe not a lab) already uses it on this machine.
        if (
            slot not in used
            and not net.route_exists(f"{PRIVATE_NET}.{slot}.0/24")
            and not net.route_exists(f"{PUBLIC_NET}.{slot}.0/24")
        ):
            return slot
    raise B2ctError(f"all {MAX_SLOTS} lab slots are in use", hint="b2ct lab list; b2ct lab down --name NAME")


def _mac(slot: int, network: int, octet: int) -> str:
    # Locally administered (02:…), deterministic: lab slot, network (1 private, 2 public), host octet.
    return f"02:b2:{slot:02x}:{network:02x}:00:{octet:02x}"


def _port_open(ip: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def _password_hash() -> str:
    # A random root password nobody knows: only its hash exists, so console login needs the lab key.
    pw = secrets.token_urlsafe(24)
    return net.run(["openssl", "passwd", "-6", "-stdin"], input=pw + "\n").stdout.strip()


def _overlay_lower(root: Path) -> str:
    """The lower directory (the base image) of the overlay mounted at ``root``, from /proc/self/mounts."""
    with open("/proc/self/mounts") as fh:
        for line in fh:
            fields = line.split()
            if fields[1] == str(root) and fields[2] == "overlay":
                for opt in fields[3].split(","):
                    if opt.startswith("lowerdir="):
                        return opt.removeprefix("lowerdir=")
    raise B2ctError(f"no overlay mounted at {root}", hint="is the lab up? b2ct lab status")


def _tail(path: Path, n: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


class _Dumper(yaml.SafeDumper):
    pass


# `svc1:` rather than `svc1: null`, like inventory/example.
_Dumper.add_representer(type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", ""))


def _yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)


def list_labs() -> list[LabState]:
    out = []
    for name in all_labs():
        with contextlib.suppress(B2ctError):
            st = LabState.load(name)
            if st is not None:
                out.append(st)
    return out


def reap_stale(label: str) -> list[str]:
    """Take down labs with this label whose owner process is gone (a killed test session's lab)."""
    removed = []
    for st in list_labs():
        if st.label == label and not alive(st.owner_pid, st.owner_start):
            Lab(st.name).down()
            removed.append(st.name)
    return removed


# Space a lab writes, with margin: sampling `df` through a full test run, the cloud lab (5 hosts, every
# role, OpenNebula, its VMs) took 0.8 GB at its peak; a base image takes 1.1 GiB (docs/lab.md).
HOST_SPACE = 1024**3
IMAGE_SPACE = 3 * 1024**3 // 2


def _check_space(hosts: int, *, image_missing: bool) -> None:
    """Refuse to start a lab that would fill its filesystem half-way through (a full disk shows up much later
    as services failing in strange ways). Raises B2ctError naming the directory, what is needed and free."""
    needs = [(STATE_ROOT, hosts * HOST_SPACE)]
    if image_missing:
        needs.append((image.CACHE_DIR, IMAGE_SPACE))
    for where, need in needs:
        probe = where
        while not probe.exists():  # the directory is made later; its filesystem is its nearest parent's
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        if free < need:
            raise B2ctError(
                f"not enough free space for the lab: {need / 1024**3:.1f} GiB needed, "
                f"{free / 1024**3:.1f} GiB free",
                where=where,
                hint="free some space there, or point B2CT_LAB_STATE / B2CT_LAB_CACHE at a larger filesystem",
            )


@contextlib.contextmanager
def running_lab(
    name: str,
    specs: Sequence[HostSpec] | None = None,
    *,
    label: str = "",
    owner_pid: int | None = None,
    bare: bool = False,
    bond: bool = False,
) -> Iterator[Lab]:
    """A lab for the duration of a ``with`` block; taken down on exit, also on error or Ctrl-C.
    ``bond``: bonded QEMU guests (Lab.up)."""
    lab = Lab(name)
    if lab.exists():
        lab.down()
    try:
        lab.up(specs, label=label, owner_pid=owner_pid, bare=bare, bond=bond)
        yield lab
    finally:
        lab.down()
