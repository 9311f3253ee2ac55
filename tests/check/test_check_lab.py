"""`b2ct check` against real lab hosts: real libvirtd (QEMU/TCG), glusterd, squid, bridges, XFS mounts.
The OpenNebula row against the real oned is tests/check/test_check_cloud.py (this lab has none).

Failures are made real on the hosts (KSM switched on, a bridge down, the datastore unmounted, libvirtd
stopped, a Gluster brick killed) and must come back as FAIL with the right reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from b2ct.inventory import load
from tests.check.tests_check_util import by_check, chromium_dom, run_check

pytestmark = [pytest.mark.slow, pytest.mark.lab]
KSM_RUN = Path("/sys/kernel/mm/ksm/run")


def test_healthy_lab_every_check_runs_for_real(ready_lab: Any, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    rc, report = run_check(ready_lab.inventory, "--html", html)
    assert rc == 0, "KVM is missing on this machine, but the lab's inventory chose emulation: no failure"
    hosts = {h["name"]: h for h in report["hosts"]}
    assert set(hosts) == {"svc1", "svc2", "wn1", "wn2"}
    volumes = load(ready_lab.inventory).gluster_volumes
    assert volumes, "the default lab has a Gluster volume"
    for name, h in hosts.items():
        checks = by_check(h)
        kvm = checks.pop("kvm")
        assert kvm["status"] == "warn" and "as the inventory chose" in kvm["reason"], kvm
        # no oned in the lab (no OpenNebula packages): a labelled WARN, never a PASS or a FAIL
        one = checks.pop("opennebula")
        assert one["status"] == "warn", one
        assert one["reason"].startswith(("not checked: no credentials", "OpenNebula API unreachable")), one
        assert "TCG emulation" in checks["smoke-domain"]["reason"], checks["smoke-domain"]
        expected = {"libvirt", "ksm", "smoke-domain", "bridge:br-private"}
        if name.startswith("svc"):
            expected |= {"bridge:br-public", "gluster:peers", "squid"}
            expected |= {f"gluster:{v.name}" for v in volumes} | {f"storage:{v.mount}" for v in volumes}
        else:
            expected |= {"storage:/var/lib/one/datastores", "fallocate:/var/lib/one/datastores"}
        assert set(checks) == expected, (name, set(checks) ^ expected)
        bad = {c: r for c, r in checks.items() if r["status"] != "pass"}
        assert not bad, (name, bad)
    # The HTML report, rendered by a real browser, shows every host and every check.
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed (.ci/packages/check.apt)")
    dom = chromium_dom(html, tmp_path)
    for name, h in hosts.items():
        assert f'id="host-{name}"' in dom
        for c in h["checks"]:
            assert f'data-check="{c["check"]}"' in dom


def _brick_pid(lab: Any, host: str) -> int:
    out = lab.exec("svc1", "gluster volume status one-system --xml").stdout
    import xml.etree.ElementTree as ET

    for node in ET.fromstring(out).iter("node"):
        if node.findtext("hostname") == host and (node.findtext("path") or "").startswith("/"):
            return int(node.findtext("pid") or 0)
    raise AssertionError(f"no brick of {host} in {out}")


def test_failures_are_detected_with_their_reason(ready_lab: Any) -> None:
    lab = ready_lab
    # KSM: /sys is the host kernel's in the containers (read-only there, no writable bind in the lab),
    # so it is switched on on this machine itself, which every lab host sees, and restored below.
    ksm_before = KSM_RUN.read_text().strip()
    pid = _brick_pid(lab, "svc2")
    try:
        KSM_RUN.write_text("1\n")
        lab.exec("svc2", "ip link set br-public down", check=True)
        lab.exec("wn2", "umount /var/lib/one/datastores", check=True)
        sockets = "libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket"
        lab.exec("wn1", f"systemctl stop libvirtd.service {sockets}")
        lab.exec("svc2", f"kill {pid}", check=True)
        rc, report = run_check(lab.inventory, "--no-smoke")
    finally:
        # run = 0 only stops ksmd: pages merged meanwhile stay merged and later runs WARN on them; 2 unmerges
        if ksm_before == "0":
            KSM_RUN.write_text("2\n")
        KSM_RUN.write_text(ksm_before + "\n")
        lab.exec("svc2", "ip link set br-public up")
        lab.exec("wn1", "systemctl start libvirtd")
        lab.exec("svc1", "gluster volume start one-system force")
    assert rc == 1
    hosts = {h["name"]: by_check(h) for h in report["hosts"]}
    for name, checks in hosts.items():
        ksm = checks["ksm"]
        assert ksm["status"] == "fail" and "run = 1" in ksm["reason"], (name, ksm)
    br = hosts["svc2"]["bridge:br-public"]
    assert br["status"] == "fail" and "is down" in br["reason"], br
    assert hosts["svc1"]["bridge:br-public"]["status"] == "pass"
    st = hosts["wn2"]["storage:/var/lib/one/datastores"]
    assert st["status"] == "fail" and "not mounted" in st["reason"], st
    assert hosts["wn1"]["storage:/var/lib/one/datastores"]["status"] == "pass"
    lv = hosts["wn1"]["libvirt"]
    assert lv["status"] == "fail" and "libvirtd inactive" in lv["reason"], lv
    assert hosts["wn2"]["libvirt"]["status"] == "pass"
    g = hosts["svc1"]["gluster:one-system"]
    assert g["status"] == "fail" and "svc2:/bricks/one-system/brick" in g["reason"], g


def test_unreachable_host_is_reported_and_others_still_checked(ready_lab: Any, tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(ready_lab.inventory, inv)
    hosts_yml = inv / "hosts.yml"
    doc = yaml.safe_load(hosts_yml.read_text())
    wn2 = doc["all"]["children"]["worker"]["hosts"]["wn2"]
    wn2["ansible_host"] = wn2["ansible_host"].rsplit(".", 1)[0] + ".250"  # nothing answers there
    hosts_yml.write_text(yaml.safe_dump(doc))
    rc, report = run_check(inv, "--no-smoke", "--limit", "worker")
    hosts = {h["name"]: h for h in report["hosts"]}
    assert set(hosts) == {"wn1", "wn2"} and rc == 1
    assert hosts["wn2"]["reachable"] is False
    assert [c["check"] for c in hosts["wn2"]["checks"]] == ["ssh"]
    assert "unreachable" in hosts["wn2"]["checks"][0]["reason"]
    assert hosts["wn1"]["reachable"] and by_check(hosts["wn1"])["libvirt"]["status"] == "pass"
