"""Pure decisions: raw facts + what the inventory expects -> CheckResult(status, reason, hint).

No I/O here: every function takes parsed or raw probe output, so each rule is unit-tested with recorded
facts (capabilities XML of real KVM hosts, `ip -j addr` output, gluster --xml output, curl headers).
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from b2ct.check.capabilities import Capabilities
from b2ct.check.expect import BridgeExpect, GlusterExpect, MountExpect
from b2ct.check.model import CheckResult, failed, passed, warned
from b2ct.check.script import Section

ROLE_KVM = "re-run `b2ct deploy` (role kvm_host)"


@dataclass(frozen=True)
class LibvirtFacts:
    uri: str
    error: str | None = None
    lib_version: int = 0
    hv_type: str = ""
    hv_version: int = 0
    caps: Capabilities | None = None
    memory: dict[str, int] | None = None


@dataclass(frozen=True)
class SmokeOutcome:
    domain_type: str = ""
    started: bool = False
    reached_running: bool = False
    console_marker: bool = False
    destroyed: bool = False
    seconds: float = 0.0
    error: str | None = None
    skipped: str | None = None  # why the smoke test could not be attempted (not a hypervisor fault)


@dataclass(frozen=True)
class OneHost:
    id: int
    state: int  # oned's HOST_STATES number
    cluster: str = ""
    error: str = ""  # the host template's ERROR: oned's last monitoring failure
    running_vms: int | None = None  # HOST_SHARE/RUNNING_VMS (None: not reported)


@dataclass(frozen=True)
class OneFacts:
    """The run's one look at OpenNebula's host pool (b2ct/check/opennebula.py), shared by every host."""

    endpoint: str
    hosts: dict[str, OneHost] | None = None  # None: the pool was not read (unreachable or not_checked)
    version: str = ""
    unreachable: str | None = None  # the endpoint did not answer (transport error, timeout)
    not_checked: str | None = None  # no query made, or oned refused it: credentials, endpoint, API error
    hint: str = ""


def version(v: int) -> str:
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _units(kv: dict[str, str], name: str) -> tuple[str, str]:
    """`enabled/active` as recorded by the script's unit(); ("", "") when the unit is not installed."""
    enabled, _, active = kv.get(name, "/").partition("/")
    return enabled, active


def _gib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"


# ------------------------------------------------------------------------------------------ libvirt


def libvirt(lv: LibvirtFacts, daemons: Section | None) -> CheckResult:
    kv = daemons.kv() if daemons else {}
    states = {u: _units(kv, u) for u in ("libvirtd", "virtqemud")}
    running = [u for u, (_, a) in states.items() if a == "active"]
    if lv.error:
        if not running:
            seen = ", ".join(f"{u} {a or 'not installed'}" for u, (_, a) in states.items())
            return failed(
                "libvirt",
                f"libvirt daemon not running ({seen}); connect failed: {lv.error}",
                "systemctl enable --now libvirtd (or virtqemud.socket on EL9); " + ROLE_KVM,
            )
        return failed("libvirt", f"cannot connect to {lv.uri}: {lv.error}", "check `virsh -c URI version`")
    daemon = f", {' '.join(running)} active" if running else ""
    return passed(
        "libvirt", f"libvirt {version(lv.lib_version)}, {lv.hv_type} {version(lv.hv_version)}{daemon}"
    )


def kvm(caps: Capabilities | None, cpu: Section | None, hypervisor: str = "kvm") -> CheckResult:
    """KVM acceleration, as ``hypervisor`` (b2ct_opennebula_hypervisor) expects it: with "qemu" the site
    chose emulation, so its absence is a warning (slow VMs), not a failure."""
    if caps is None:
        return warned("kvm", "not checked: no libvirt connection", "fix the libvirt check first")
    kv = cpu.kv() if cpu else {}
    flags = set(kv.get("flags", "").split()) | ({caps.virt_flag} if caps.virt_flag else set())
    flag = "vmx (Intel VT-x)" if "vmx" in flags else "svm (AMD-V)" if "svm" in flags else None
    devkvm = kv.get("devkvm") == "present"
    types = ", ".join(sorted(caps.domain_types())) or "none"
    if caps.kvm:
        if not devkvm and cpu is not None:
            return warned(
                "kvm",
                f"libvirt offers domain type kvm but /dev/kvm is not visible over ssh (types: {types})",
                "check the kvm module and /dev/kvm permissions",
            )
        if hypervisor == "qemu":
            return warned(
                "kvm",
                "KVM acceleration available, but the hosts are registered for emulation "
                "(b2ct_opennebula_hypervisor: qemu): VMs run slower than they could",
                "set b2ct_opennebula_hypervisor: kvm (the default), then re-register the hosts",
            )
        return passed("kvm", f"KVM acceleration: domain type kvm offered, CPU {flag or 'flag not listed'}")
    why = f"no KVM acceleration, emulation only (libvirt offers domain types: {types})"
    if hypervisor == "qemu" and "qemu" in caps.domain_types():
        return warned(
            "kvm",
            f"{why}, as the inventory chose (b2ct_opennebula_hypervisor: qemu): VMs run slowly",
            "on hardware hypervisors enable VT-x/AMD-V and use b2ct_opennebula_hypervisor: kvm",
        )
    if not flag:
        return failed(
            "kvm",
            f"{why}: the CPU exposes no vmx/svm flag",
            "enable VT-x/AMD-V in the firmware (or nested virtualization if this host is itself a VM)",
        )
    modules = kv.get("module", "")
    if not devkvm:
        return failed(
            "kvm",
            f"{why}: CPU has {flag} but /dev/kvm is missing (modules loaded: {modules or 'none'})",
            "modprobe kvm_intel or kvm_amd; `dmesg | grep -i kvm` tells if the firmware disabled it",
        )
    return failed(
        "kvm",
        f"{why}: CPU has {flag} and /dev/kvm exists, but QEMU/libvirt cannot use it",
        "check /dev/kvm permissions (group kvm) and restart libvirtd",
    )


def ksm(sec: Section | None, memory: dict[str, int] | None) -> CheckResult:
    kv = sec.kv() if sec else {}
    run = kv.get("run", "")
    sharing = (memory or {}).get("shm_pages_sharing")
    if sharing is None and kv.get("pages_sharing", "").isdigit():
        sharing = int(kv["pages_sharing"])
    hint = "echo 2 > /sys/kernel/mm/ksm/run; systemctl disable --now ksm ksmtuned; " + ROLE_KVM
    if run == "1":
        return failed(
            "ksm", f"KSM is running (/sys/kernel/mm/ksm/run = 1, {sharing or 0} pages sharing)", hint
        )
    for unit in ("ksm", "ksmtuned"):
        enabled, active = _units(kv, unit)
        if enabled == "enabled" or active == "active":
            return failed("ksm", f"{unit}.service is {enabled}/{active}: it switches KSM back on", hint)
    if run == "":
        return passed("ksm", "kernel without KSM")
    if sharing:
        return warned(
            "ksm",
            f"KSM stopped (run = {run}) but shm_pages_sharing = {sharing}: pages still merged",
            "echo 2 > /sys/kernel/mm/ksm/run to unmerge them",
        )
    src = "libvirt node memory" if memory and "shm_pages_sharing" in memory else "sysfs"
    return passed("ksm", f"KSM off: run = {run}, ksm/ksmtuned not enabled, pages sharing = 0 ({src})")


# ------------------------------------------------------------------------------------------ storage


def _pairs(line: str) -> dict[str, str]:
    out = {}
    for tok in shlex.split(line):
        key, _, value = tok.partition("=")
        out[key] = value
    return out


def mount(m: MountExpect, sec: Section | None, min_free_pct: float) -> CheckResult:
    cid = f"storage:{m.path}"
    want = "/".join(m.fstypes)
    if sec is None or sec.rc != 0:
        return failed(cid, f"could not inspect {m.path}: {_first_line(sec.out) if sec else 'no data'}")
    lines = sec.out.splitlines()
    if lines and lines[0].strip() == "missing":
        return failed(
            cid, f"{m.path} does not exist (expected {want}: {m.why})", "mount it; " + ROLE_HINT[want]
        )
    fs = _pairs(lines[0]) if lines else {}
    st = _pairs(lines[1]) if len(lines) > 1 else {}
    target, fstype, source = fs.get("TARGET", "?"), fs.get("FSTYPE", "?"), fs.get("SOURCE", "?")
    if fstype not in m.fstypes or target == "/":
        return failed(
            cid,
            f"{m.path} is not mounted as {want}: it is on {target} ({fstype} {source})",
            "mount it; " + ROLE_HINT[want],
        )
    try:
        bs, total, avail = int(st["blocksize"]), int(st["total"]), int(st["avail"])
    except (KeyError, ValueError):
        return warned(cid, f"{fstype} {source} on {target}; free space unknown")
    pct = 100.0 * avail / total if total else 0.0
    where = f"{fstype} {source} on {target}, {_gib(avail * bs)} free of {_gib(total * bs)} ({pct:.0f}%)"
    if pct < min_free_pct:
        return failed(cid, f"{where}: below {min_free_pct:g}%", "free space or grow the filesystem")
    return passed(cid, where)


ROLE_HINT = {
    "xfs": "role ephemeral_storage formats and mounts the ephemeral disk",
    "ext4": "role ephemeral_storage formats and mounts the ephemeral disk",
    "fuse.glusterfs": "role glusterfs mounts the volume",
}


def fallocate(m: MountExpect, sec: Section | None) -> CheckResult:
    cid = f"fallocate:{m.path}"
    if sec is None:
        return warned(cid, "not checked")
    if sec.rc == 0:
        return passed(cid, f"fallocate works in {m.path} (swap and preallocated images are safe)")
    return failed(
        cid,
        f"fallocate fails in {m.path}: {_first_line(sec.out) or f'exit {sec.rc}'}",
        "ephemeral disks need XFS or ext4 (fallocate allocates real blocks, needed for swap)",
    )


# ------------------------------------------------------------------------------------------ network


def bridge(b: BridgeExpect, sec: Section | None) -> CheckResult:
    cid = f"bridge:{b.bridge}"
    hint = f"bridge {b.bridge} carries the {b.network} network; " + ROLE_KVM
    if sec is None:
        return warned(cid, "not checked")
    text = sec.out
    isbridge = "isbridge=yes" in text
    js = text[text.find("[") :] if "[" in text else ""
    try:
        links = json.loads(js) if js else []
    except ValueError:
        links = []
    if not links:
        return failed(
            cid, f"{b.bridge} does not exist ({_first_line(text.replace('isbridge=no', ''))})", hint
        )
    link = links[0]
    # netlink's kind is authoritative: /sys may belong to another network namespace (nspawn containers);
    # output without `ip -d` details has no linkinfo at all, and then sysfs is all there is
    kind = (link.get("linkinfo") or {}).get("info_kind")
    if "linkinfo" in link or kind:
        isbridge = kind == "bridge"
    if not isbridge:
        return failed(cid, f"{b.bridge} exists but is not a bridge ({link.get('link_type', '?')})", hint)
    flags = link.get("flags", [])
    if "UP" not in flags:
        return failed(cid, f"{b.bridge} is down (administratively; state {link.get('operstate')})", hint)
    if "NO-CARRIER" in flags or link.get("operstate") == "DOWN":
        return failed(cid, f"{b.bridge} is up but has no carrier: no port attached or its port is down", hint)
    addrs = [
        ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}")
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    ]
    shown = ", ".join(map(str, addrs)) or "no IPv4 address"
    if b.ip is not None:
        if b.ip not in addrs:
            return failed(cid, f"{b.bridge} is up but has {shown}, expected {b.ip}", hint)
    elif not any(a.ip in b.subnet for a in addrs):
        return warned(cid, f"{b.bridge} is up but has {shown}, none in {b.subnet} (DHCP?)", hint)
    return passed(cid, f"{b.bridge} up, {shown}")


# ------------------------------------------------------------------------------------------ GlusterFS


def _xml(sec: Section | None) -> ET.Element | None:
    if sec is None:
        return None
    start = sec.out.find("<?xml")
    if start < 0:
        start = sec.out.find("<cliOutput")
    if start < 0:
        return None
    try:
        return ET.fromstring(sec.out[start:])
    except ET.ParseError:
        return None


def _cli_error(sec: Section | None, root: ET.Element | None) -> str | None:
    if sec is None:
        return "not run"
    if root is None:
        return _first_line(sec.out) or f"gluster exited {sec.rc}"
    if root.findtext("opRet", "0") != "0":
        return root.findtext("opErrstr") or f"opRet {root.findtext('opRet')}"
    return None


GLUSTER_HINT = "systemctl start glusterd; `gluster peer status`; role glusterfs"


def gluster_peers(g: GlusterExpect, sec: Section | None) -> CheckResult:
    cid = "gluster:peers"
    root = _xml(sec)
    err = _cli_error(sec, root)
    if err or root is None:
        return failed(cid, f"gluster CLI failed: {err}", GLUSTER_HINT)
    peers = root.findall("peerStatus/peer")
    bad = []
    for p in peers:
        connected = p.findtext("connected") == "1"
        if not connected or p.findtext("stateStr") != "Peer in Cluster":
            state = "connected" if connected else "disconnected"
            bad.append(f"{p.findtext('hostname')} ({p.findtext('stateStr')}, {state})")
    if bad:
        return failed(cid, "peer not in cluster: " + "; ".join(bad), GLUSTER_HINT)
    if len(peers) < len(g.peers):
        return failed(
            cid, f"{len(peers)} peers, expected {len(g.peers)} ({', '.join(g.peers)})", GLUSTER_HINT
        )
    return passed(cid, f"{len(peers)} peer(s) in cluster and connected")


def gluster_volume(g: GlusterExpect, status: Section | None, heal: Section | None) -> CheckResult:
    cid = f"gluster:{g.volume}"
    root = _xml(status)
    err = _cli_error(status, root)
    if err or root is None:
        return failed(
            cid, f"volume status failed: {err}", f"gluster volume start {g.volume}; " + GLUSTER_HINT
        )
    bricks = [n for n in root.iter("node") if (n.findtext("path") or "").startswith("/")]
    down = [f"{n.findtext('hostname')}:{n.findtext('path')}" for n in bricks if n.findtext("status") != "1"]
    if down:
        return failed(cid, f"brick offline: {', '.join(down)}", f"gluster volume start {g.volume} force")
    if len(bricks) < len(g.bricks):
        listed = {f"{n.findtext('path')}" for n in bricks}
        missing = [b for b in g.bricks if b.split(":", 1)[1] not in listed] or list(g.bricks)
        return failed(
            cid,
            f"{len(bricks)} of {len(g.bricks)} bricks online (not listed: {', '.join(missing)})",
            "is the peer holding it up? " + GLUSTER_HINT,
        )
    hroot = _xml(heal)
    herr = _cli_error(heal, hroot)
    if herr or hroot is None:
        return warned(cid, f"{len(bricks)} bricks online; heal info failed: {herr}")
    pending = 0
    for b in hroot.iter("brick"):
        name, state = b.findtext("name"), b.findtext("status")
        if state != "Connected":
            return failed(cid, f"brick {name}: {state}", f"gluster volume start {g.volume} force")
        n = b.findtext("numberOfEntries") or "0"
        pending += int(n) if n.isdigit() else 0
    if pending:
        return warned(
            cid,
            f"{len(bricks)} bricks online, {pending} entries pending heal",
            f"self-heal is catching up: `gluster volume heal {g.volume} info`",
        )
    return passed(cid, f"{len(bricks)} bricks online, 0 heal entries")


# ------------------------------------------------------------------------------------------ squid


def squid(port: int, sec: Section | None, daemons: Section | None) -> CheckResult:
    cid = "squid"
    hint = "systemctl enable --now squid; role squid"
    enabled, active = _units(daemons.kv() if daemons else {}, "squid")
    if not enabled and not active:
        return warned(cid, "squid is not installed on this service host", hint)
    if active != "active":
        return failed(cid, f"squid is not running ({enabled or '?'}/{active or '?'})", hint)
    if sec is None:
        return warned(cid, "not checked")
    replies: list[dict[str, str]] = []
    for block in sec.out.split("request=")[1:]:
        headers: dict[str, str] = {}
        lines = block.splitlines()[1:]
        for line in lines:
            if line.startswith("HTTP/"):
                headers = {"status": line.split(None, 2)[1] if len(line.split()) > 1 else "?"}
            elif ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            elif line.startswith("curl:"):
                headers = {"error": line}
        replies.append(headers)
    if not replies or "status" not in replies[0]:
        err = replies[0].get("error", "no reply") if replies else "no reply"
        return failed(cid, f"squid does not answer on port {port}: {err}", hint)
    if replies[0]["status"] != "200":
        return failed(cid, f"squid answered HTTP {replies[0]['status']} to a request from localhost", hint)
    second = replies[1] if len(replies) > 1 else {}
    xcache = second.get("x-cache", "")
    if xcache.upper().startswith("HIT"):
        return passed(cid, f"squid answers on port {port} and served a repeated request from cache")
    return failed(
        cid,
        f"squid answers on port {port} but did not cache a repeated request (X-Cache: {xcache or 'absent'})",
        "check cache_dir, cache_mem and refresh_pattern in squid.conf; role squid",
    )


# ------------------------------------------------------------------------------------------ opennebula

# pyone.HOST_STATES, spelled out so the decisions stay free of the client library
ONE_HOST_STATES = {
    0: "INIT",
    1: "MONITORING_MONITORED",
    2: "MONITORED",
    3: "ERROR",
    4: "DISABLED",
    5: "MONITORING_ERROR",
    6: "MONITORING_INIT",
    7: "MONITORING_DISABLED",
    8: "OFFLINE",
}
ROLE_ONE = "re-run `b2ct deploy` (playbooks/opennebula.yml)"


def opennebula(name: str, f: OneFacts) -> CheckResult:
    """Is the host registered in OpenNebula and MONITORED? States as oned reports them (host.xsd)."""
    cid = "opennebula"
    if f.unreachable:
        return warned(
            cid,
            f"OpenNebula API unreachable at {f.endpoint}: {f.unreachable}",
            "is oned running on the front-end (systemctl status opennebula) and port 2633 open? " + ROLE_ONE,
        )
    if f.not_checked or f.hosts is None:
        return warned(cid, f"not checked: {f.not_checked or 'no host pool'}", f.hint)
    h = f.hosts.get(name)
    if h is None:
        return failed(
            cid,
            f"not registered in OpenNebula ({len(f.hosts)} hosts known at {f.endpoint})",
            "`b2ct cloud apply` registers every inventory host in its cluster",
        )
    state = ONE_HOST_STATES.get(h.state, f"unknown state {h.state}")
    where = f"host id {h.id}, cluster {h.cluster or '?'}"
    show = f"`onehost show {name}` on the front-end"
    if state in ("MONITORED", "MONITORING_MONITORED"):
        # MONITORING_MONITORED: a monitored host in the middle of its next monitoring cycle
        by = f"OpenNebula {f.version}" if f.version else "OpenNebula"
        vms = (
            ""
            if h.running_vms is None
            else f", {h.running_vms} VM{'' if h.running_vms == 1 else 's'} running"
        )
        return passed(cid, f"MONITORED by {by} ({where}{vms})")
    if state in ("INIT", "MONITORING_INIT"):
        return warned(
            cid,
            f"registered but not monitored yet ({state}, {where})",
            f"oned monitors new hosts within a minute; {show}",
        )
    if state in ("ERROR", "MONITORING_ERROR"):
        why = f": {' '.join(h.error.split())}" if h.error else ""  # reasons are one line
        return failed(
            cid,
            f"OpenNebula cannot monitor it ({state}, {where}){why}",
            f"{show}; can oneadmin on the front-end ssh to {name} (role opennebula_node)?",
        )
    if state in ("DISABLED", "MONITORING_DISABLED"):
        return failed(
            cid,
            f"DISABLED in OpenNebula ({where}): no VM is scheduled here",
            f"onehost enable {name} (a stopped `b2ct upgrade` leaves its host disabled)",
        )
    if state == "OFFLINE":
        return failed(
            cid, f"OFFLINE in OpenNebula ({where}): not monitored, no VM scheduled", f"onehost enable {name}"
        )
    return failed(cid, f"OpenNebula reports {state} ({where})", show)


# ------------------------------------------------------------------------------------------ smoke


def smoke(s: SmokeOutcome) -> CheckResult:
    cid = "smoke-domain"
    if s.skipped:
        return warned(
            cid, f"not run: {s.skipped}", "pass --smoke-kernel PATH (a Linux kernel with 8250 serial)"
        )
    mode = "KVM" if s.domain_type == "kvm" else "TCG emulation"
    if s.error or not s.started:
        return failed(
            cid, f"transient domain (type {s.domain_type}) failed: {s.error or 'did not start'}", ROLE_KVM
        )
    if not s.reached_running:
        return failed(cid, f"domain (type {s.domain_type}) never reached running", ROLE_KVM)
    if not s.console_marker:
        return failed(
            cid,
            f"domain (type {s.domain_type}) running but its kernel printed nothing in {s.seconds:.0f}s",
            "look at /var/log/libvirt/qemu/b2ct-smoke-*.log on the host",
        )
    if not s.destroyed:
        return warned(cid, f"booted under {mode} but could not be destroyed", "virsh list; virsh destroy")
    return passed(
        cid, f"transient domain (type {s.domain_type}, {mode}) booted to init in {s.seconds:.1f}s, destroyed"
    )
