"""Decision rules on recorded facts: capabilities XML in the form real KVM hosts report it, ip -j output,
gluster --xml output, curl headers through squid. No hosts needed."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from b2ct.check import decide
from b2ct.check.capabilities import parse
from b2ct.check.expect import BridgeExpect, GlusterExpect, MountExpect, expectations
from b2ct.check.model import Status
from b2ct.check.script import Section, sections
from b2ct.errors import B2ctError
from b2ct.inventory import load

FIX = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def caps(name: str):
    return parse((FIX / name).read_text())


def cpu(flags: str, devkvm: bool, modules: str = "") -> Section:
    lines = ["vendor=x", f"flags={flags}", f"devkvm={'present' if devkvm else 'absent'}"]
    lines += [f"module={m}" for m in modules.split()]
    return Section(0, "\n".join(lines))


# ------------------------------------------------------------------------------------------ capabilities


def test_capabilities_intel_and_amd_with_kvm() -> None:
    intel, amd = caps("caps-intel-kvm.xml"), caps("caps-amd-kvm.xml")
    assert intel.kvm and amd.kvm
    assert (intel.virt_flag, intel.cpu_vendor) == ("vmx", "Intel")
    assert (amd.virt_flag, amd.cpu_vendor) == ("svm", "AMD")
    assert intel.domain_types() == {"qemu", "kvm"}


def test_capabilities_without_kvm() -> None:
    c = caps("caps-emulation-only.xml")
    assert not c.kvm and c.virt_flag is None and c.domain_types() == {"qemu"}


def test_capabilities_garbage_is_a_clear_error() -> None:
    with pytest.raises(B2ctError, match="unreadable libvirt capabilities"):
        parse("<capabilities><host>")
    with pytest.raises(B2ctError, match="not libvirt capabilities"):
        parse("<domain/>")


# ------------------------------------------------------------------------------------------ kvm


@pytest.mark.parametrize("fixture,flag", [("caps-intel-kvm.xml", "vmx"), ("caps-amd-kvm.xml", "svm")])
def test_kvm_pass(fixture: str, flag: str) -> None:
    r = decide.kvm(caps(fixture), cpu(flag, True, "kvm kvm_intel"))
    assert r.status is Status.PASS and flag in r.reason


def test_kvm_emulation_only_names_the_missing_cpu_flag() -> None:
    r = decide.kvm(caps("caps-emulation-only.xml"), cpu("", False))
    assert r.status is Status.FAIL
    assert "emulation only" in r.reason and "no vmx/svm" in r.reason and "firmware" in r.hint


def test_kvm_module_not_loaded() -> None:
    r = decide.kvm(caps("caps-intel-nokvm.xml"), cpu("vmx", False))
    assert r.status is Status.FAIL and "/dev/kvm is missing" in r.reason and "modprobe" in r.hint


def test_kvm_device_present_but_unusable() -> None:
    r = decide.kvm(caps("caps-intel-nokvm.xml"), cpu("vmx", True, "kvm kvm_intel"))
    assert r.status is Status.FAIL and "cannot use it" in r.reason


def test_emulation_chosen_by_the_inventory_is_a_warning_not_a_failure() -> None:
    """b2ct_opennebula_hypervisor: qemu (the lab, hosts without KVM): no acceleration is what was asked."""
    r = decide.kvm(caps("caps-emulation-only.xml"), cpu("", False), "qemu")
    assert r.status is Status.WARN and "as the inventory chose" in r.reason
    # with KVM there, registering for emulation wastes it: said, not failed
    r = decide.kvm(caps("caps-intel-kvm.xml"), cpu("vmx", True, "kvm kvm_intel"), "qemu")
    assert r.status is Status.WARN and "registered for emulation" in r.reason
    # a site expecting KVM still fails without it
    assert decide.kvm(caps("caps-emulation-only.xml"), cpu("", False), "kvm").status is Status.FAIL


def test_kvm_without_libvirt_is_not_decided() -> None:
    assert decide.kvm(None, cpu("vmx", True)).status is Status.WARN


# ------------------------------------------------------------------------------------------ ksm


def ksm_sec(run: str, ksm: str = "/inactive", ksmtuned: str = "/inactive", sharing: str = "0") -> Section:
    return Section(0, f"run={run}\npages_sharing={sharing}\npages_shared=0\nksm={ksm}\nksmtuned={ksmtuned}")


def test_ksm_off_passes() -> None:
    r = decide.ksm(ksm_sec("0"), {"shm_pages_sharing": 0, "shm_pages_shared": 0})
    assert r.status is Status.PASS and "libvirt" in r.reason


def test_ksm_running_fails() -> None:
    r = decide.ksm(ksm_sec("1"), {"shm_pages_sharing": 1234})
    assert r.status is Status.FAIL and "run = 1" in r.reason and "1234" in r.reason


def test_ksmtuned_enabled_fails_even_with_run_0() -> None:
    r = decide.ksm(ksm_sec("0", ksmtuned="enabled/active"), {"shm_pages_sharing": 0})
    assert r.status is Status.FAIL and "ksmtuned" in r.reason


def test_ksm_stopped_but_pages_still_merged_warns() -> None:
    r = decide.ksm(ksm_sec("0"), {"shm_pages_sharing": 10})
    assert r.status is Status.WARN and "echo 2" in r.hint


# ------------------------------------------------------------------------------------------ storage

XFS = MountExpect("/var/lib/one/datastores", ("xfs",), True, "ephemeral disk")
GFS = MountExpect("/var/lib/one/datastores/100", ("fuse.glusterfs",), False, "GlusterFS volume one-system")


def test_mount_xfs_passes_with_free_space() -> None:
    sec = Section(
        0,
        'TARGET="/var/lib/one/datastores" FSTYPE="xfs" SOURCE="/dev/loop3"\n'
        "blocksize=4096 total=1000 avail=900",
    )
    r = decide.mount(XFS, sec, 5)
    assert r.status is Status.PASS and "xfs /dev/loop3" in r.reason and "(90%)" in r.reason


def test_mount_on_root_filesystem_fails_even_if_xfs() -> None:
    # EL installs put / on XFS: an unmounted datastore must not pass because the root fs is XFS too.
    sec = Section(0, 'TARGET="/" FSTYPE="xfs" SOURCE="/dev/sda2"\nblocksize=4096 total=1000 avail=900')
    r = decide.mount(XFS, sec, 5)
    assert r.status is Status.FAIL and "not mounted" in r.reason


def test_mount_wrong_filesystem_and_low_space() -> None:
    sec = Section(
        0, 'TARGET="/var/lib/one/datastores/100" FSTYPE="xfs" SOURCE="/dev/sdb"\nblocksize=1 total=1 avail=1'
    )
    assert decide.mount(GFS, sec, 5).status is Status.FAIL
    full = Section(
        0,
        'TARGET="/var/lib/one/datastores" FSTYPE="xfs" SOURCE="/dev/sdb"\nblocksize=4096 total=1000 avail=10',
    )
    r = decide.mount(XFS, full, 5)
    assert r.status is Status.FAIL and "below 5%" in r.reason
    assert decide.mount(XFS, Section(0, "missing"), 5).status is Status.FAIL


def test_fallocate() -> None:
    assert decide.fallocate(XFS, Section(0, "")).status is Status.PASS
    r = decide.fallocate(XFS, Section(1, "fallocate: fallocate failed: Operation not supported"))
    assert r.status is Status.FAIL and "Operation not supported" in r.reason


# ------------------------------------------------------------------------------------------ bridges

BR = BridgeExpect(
    "br-private", "private", ipaddress.IPv4Interface("10.10.0.21/24"), ipaddress.IPv4Network("10.10.0.0/24")
)


def ip_json(flags: list[str], operstate: str, addrs: list[str]) -> Section:
    info = [{"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])} for a in addrs]
    link = [
        {
            "ifname": "br-private",
            "flags": flags,
            "operstate": operstate,
            "link_type": "ether",
            "addr_info": info,
        }
    ]
    return Section(0, "isbridge=yes\n" + json.dumps(link))


def test_bridge_up_with_address_passes() -> None:
    r = decide.bridge(BR, ip_json(["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "UP", ["10.10.0.21/24"]))
    assert r.status is Status.PASS and "10.10.0.21/24" in r.reason


def test_bridge_failures() -> None:
    down = decide.bridge(BR, ip_json(["BROADCAST", "MULTICAST"], "DOWN", ["10.10.0.21/24"]))
    assert down.status is Status.FAIL and "is down" in down.reason
    nocarrier = decide.bridge(BR, ip_json(["NO-CARRIER", "BROADCAST", "UP"], "DOWN", ["10.10.0.21/24"]))
    assert nocarrier.status is Status.FAIL and "no carrier" in nocarrier.reason
    wrong = decide.bridge(BR, ip_json(["UP", "LOWER_UP"], "UP", ["10.10.0.99/24"]))
    assert wrong.status is Status.FAIL and "expected 10.10.0.21/24" in wrong.reason
    missing = decide.bridge(BR, Section(1, 'isbridge=no\nDevice "br-private" does not exist.'))
    assert missing.status is Status.FAIL and "does not exist" in missing.reason
    notbr = Section(0, "isbridge=no\n" + ip_json(["UP"], "UP", []).out.split("\n", 1)[1])
    assert "not a bridge" in decide.bridge(BR, notbr).reason


def test_bridge_kind_from_netlink_wins_over_sysfs() -> None:
    """In nspawn lab hosts /sys/class/net was seen listing the machine's root namespace, not the host's."""
    up = ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"]
    link = json.loads(ip_json(up, "UP", ["10.10.0.21/24"]).out.split("\n", 1)[1])
    link[0]["linkinfo"] = {"info_kind": "bridge"}
    assert decide.bridge(BR, Section(0, "isbridge=no\n" + json.dumps(link))).status is Status.PASS
    link[0]["linkinfo"] = {"info_kind": "veth"}
    r = decide.bridge(BR, Section(0, "isbridge=yes\n" + json.dumps(link)))
    assert r.status is Status.FAIL and "not a bridge" in r.reason
    del link[0]["linkinfo"]  # `ip -d` on a plain NIC: no linkinfo, and sysfs says no bridge
    assert "not a bridge" in decide.bridge(BR, Section(0, "isbridge=no\n" + json.dumps(link))).reason


# ------------------------------------------------------------------------------------------ gluster

G = GlusterExpect("one-system", ("svc1:/bricks/one-system/brick", "svc2:/bricks/one-system/brick"), ("svc2",))


def peers(connected: str) -> Section:
    return Section(
        0,
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        "<cliOutput><opRet>0</opRet><opErrno>0</opErrno>"
        "<opErrstr/><peerStatus><peer><uuid>9f1c</uuid><hostname>svc2</hostname><hostnames><hostname>svc2"
        f"</hostname></hostnames><connected>{connected}</connected><state>3</state>"
        "<stateStr>Peer in Cluster</stateStr></peer></peerStatus></cliOutput>",
    )


def status(svc2_online: str) -> Section:
    node = (
        "<node><hostname>{h}</hostname><path>/bricks/one-system/brick</path><peerid>x</peerid>"
        "<status>{s}</status><port>49152</port><pid>100</pid></node>"
    )
    shd = "<node><hostname>Self-heal Daemon</hostname><path>localhost</path><status>1</status></node>"
    return Section(
        0,
        "<cliOutput><opRet>0</opRet><opErrno>0</opErrno><opErrstr/><volStatus><volumes><volume>"
        "<volName>one-system</volName><nodeCount>3</nodeCount>"
        + node.format(h="svc1", s="1")
        + node.format(h="svc2", s=svc2_online)
        + shd
        + "</volume></volumes></volStatus></cliOutput>",
    )


def heal(entries: str, svc2: str = "Connected") -> Section:
    brick = (
        "<brick hostUuid='x'><name>{n}:/bricks/one-system/brick</name><status>{s}</status>"
        "<numberOfEntries>{e}</numberOfEntries></brick>"
    )
    return Section(
        0,
        "<cliOutput><healInfo><bricks>"
        + brick.format(n="svc1", s="Connected", e=entries)
        + brick.format(n="svc2", s=svc2, e="-" if svc2 != "Connected" else "0")
        + "</bricks></healInfo><opRet>0</opRet><opErrno>0</opErrno><opErrstr/></cliOutput>",
    )


def test_gluster_healthy() -> None:
    assert decide.gluster_peers(G, peers("1")).status is Status.PASS
    r = decide.gluster_volume(G, status("1"), heal("0"))
    assert r.status is Status.PASS and "2 bricks online, 0 heal entries" in r.reason


def test_gluster_problems() -> None:
    p = decide.gluster_peers(G, peers("0"))
    assert p.status is Status.FAIL and "disconnected" in p.reason
    down = decide.gluster_volume(G, status("0"), heal("3", "Transport endpoint is not connected"))
    assert down.status is Status.FAIL and "brick offline: svc2:/bricks/one-system/brick" in down.reason
    healing = decide.gluster_volume(G, status("1"), heal("7"))
    assert healing.status is Status.WARN and "7 entries pending heal" in healing.reason
    nod = decide.gluster_peers(
        G, Section(1, "Connection failed. Please check if gluster daemon is operational.")
    )
    assert nod.status is Status.FAIL and "gluster daemon" in nod.reason


# ------------------------------------------------------------------------------------------ squid

DAEMONS_UP = Section(
    0, "libvirtd=enabled/active\nvirtqemud=/inactive\nglusterd=/inactive\nsquid=enabled/active"
)


def squid_out(second_xcache: str) -> Section:
    head = (
        "HTTP/1.1 200 OK\nServer: SimpleHTTP/0.6 Python/3.11.2\nX-Cache: {x} from svc1\n"
        "Via: 1.1 svc1 (squid/5.7)\n"
    )
    return Section(
        0, "request=1\n" + head.format(x="MISS") + "\nrequest=2\n" + head.format(x=second_xcache) + "\n"
    )


def test_squid() -> None:
    assert decide.squid(3128, squid_out("HIT"), DAEMONS_UP).status is Status.PASS
    nocache = decide.squid(3128, squid_out("MISS"), DAEMONS_UP)
    assert nocache.status is Status.FAIL and "did not cache" in nocache.reason
    stopped = Section(0, "squid=enabled/inactive")
    assert "not running" in decide.squid(3128, squid_out("HIT"), stopped).reason
    refused = Section(0, "request=1\ncurl: (7) Failed to connect to 127.0.0.1 port 3128\nrequest=2\n")
    assert "does not answer" in decide.squid(3128, refused, DAEMONS_UP).reason


# ------------------------------------------------------------------------------------------ libvirt, smoke


def test_libvirt_daemon_stopped_is_named() -> None:
    lv = decide.LibvirtFacts("qemu+ssh://root@h/system", error="Failed to connect socket: No such file")
    r = decide.libvirt(lv, Section(0, "libvirtd=enabled/inactive\nvirtqemud=/inactive"))
    assert r.status is Status.FAIL and "libvirtd inactive" in r.reason and "systemctl" in r.hint
    ok = decide.LibvirtFacts("u", lib_version=9000000, hv_type="QEMU", hv_version=7002022)
    assert decide.libvirt(ok, DAEMONS_UP).reason.startswith("libvirt 9.0.0, QEMU 7.2.22")


def test_smoke_outcomes() -> None:
    good = decide.SmokeOutcome("qemu", True, True, True, True, 3.2)
    assert decide.smoke(good).status is Status.PASS and "TCG emulation" in decide.smoke(good).reason
    silent = decide.SmokeOutcome("qemu", True, True, False, True, 60)
    assert decide.smoke(silent).status is Status.FAIL
    assert decide.smoke(decide.SmokeOutcome("qemu", error="no cgroup")).status is Status.FAIL


# ------------------------------------------------------------------------------------------ plumbing


def test_sections_split_and_missing_end() -> None:
    out = "@@B2CT-BEGIN a\nx=1\n\n@@B2CT-END a 0\n@@B2CT-BEGIN b\npartial"
    s = sections(out)
    assert s["a"] == Section(0, "x=1") and s["b"].rc == -1


def test_expectations_from_example_inventory() -> None:
    site = load(REPO / "inventory" / "example")
    wn03 = expectations(site, site.host("wn03"))
    assert [m.fstypes for m in wn03.mounts] == [("ext4",)] and wn03.squid_port is None
    svc1 = expectations(site, site.host("svc1"))
    assert {m.path for m in svc1.mounts} == {"/var/lib/one/datastores/100", "/var/lib/one/datastores/1"}
    assert [g.peers for g in svc1.gluster] == [("svc2",), ("svc2",)]
    assert {b.bridge for b in svc1.bridges} == {"br-private", "br-public"} and svc1.squid_port == 3128
    assert not expectations(site, site.host("one-fe")).gluster  # no brick there
