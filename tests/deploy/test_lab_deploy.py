"""The site playbook on lab hosts (systemd-nspawn Debian 12 containers, real systemd, sshd, loop disks).

Nothing is mocked. Two things are arranged because containers share this machine's kernel:
- KSM: lab hosts share this machine's kernel; the lab binds /sys/kernel/mm/ksm writable into workers
  only, so the role on wn1 really changes this machine's KSM run flag. The test deploys only there and
  restores the machine's original value afterwards, also on failure. Debian
  has no ksm/ksmtuned units (EL has): a stand-in ksm.service (a real, enabled, running unit) on wn2 must
  end up stopped and disabled.
- The datastore disks are loop devices made by the lab, one per worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from b2ct.deploy import DeployResult, run
from tests.conftest import processes_naming, wait_for
from tests.lab_plugin import make_lab

pytestmark = [pytest.mark.slow, pytest.mark.lab]
KSM_RUN = Path("/sys/kernel/mm/ksm/run")
DATASTORE = "/var/lib/one/datastores"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    # Deploy logs and the fact cache of these runs stay in the test's temporary directory.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        with make_lab() as the_lab:  # svc1 (frontend+service), svc2, wn1, wn2
            yield the_lab


def _sh(lab, host: str, cmd: str) -> str:  # type: ignore[no-untyped-def]
    r = lab.exec(host, cmd)
    assert r.returncode == 0, (host, cmd, r.stdout, r.stderr)
    return r.stdout.strip()


def _assert_ok(result: DeployResult) -> None:
    if not result.ok:
        log = Path(result.log_dir, "stdout.txt")
        tail = log.read_text()[-4000:] if log.is_file() else ""
        errors = {h: s.error for h, s in result.hosts.items() if not s.good}
        pytest.fail(f"deploy {result.status} rc={result.rc} {errors}\n{tail}")


def test_interrupted_deploy_then_converges_then_noop(lab) -> None:  # type: ignore[no-untyped-def]
    # Kill the whole deploy (python, ansible-runner, ansible-playbook) at its most awkward moment: the
    # bridge's networkd files are written, the network is not reconfigured yet. The re-run finds the files
    # unchanged and must still bring the bridge up (test_libvirt_and_bridges checks the links).
    code = f"from b2ct.deploy import run; print(run({str(lab.inventory)!r}).summary())"
    written = "/etc/systemd/network/05-b2ct-br-private.network"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while lab.exec("wn2", f"test -e {written}").returncode != 0:
            if proc.poll() is not None:
                pytest.fail(f"the first deploy ended before it could be interrupted: {proc.communicate()[0]}")
            if time.monotonic() > deadline:
                pytest.fail(f"the first deploy wrote no {written} on wn2 in 180 s")
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # ansible-playbook runs in a session of its own (ansible-runner's pty) with SIGHUP ignored: it must
    # still end with the killed deploy, not spin on for good (one was found doing so after a CI run).
    wait_for(
        "the killed deploy's processes to end", lambda: not processes_naming(str(lab.inventory)), 30, 0.5
    )

    first = run(lab.inventory)
    _assert_ok(first)
    assert sorted(first.hosts) == ["svc1", "svc2", "wn1", "wn2"]
    for host in first.hosts:
        assert "master br-private" in _sh(lab, host, "ip -o link show dev eth0"), host
    second = run(lab.inventory)
    _assert_ok(second)
    assert {h: s.changed for h, s in second.hosts.items()} == dict.fromkeys(second.hosts, 0), (
        second.changed_tasks()
    )
    check = run(lab.inventory, check=True)  # check mode works on converged hosts and agrees
    _assert_ok(check)
    assert check.changed == 0, check.changed_tasks()


def test_libvirt_and_bridges(lab) -> None:  # type: ignore[no-untyped-def]
    for host in lab.hosts:
        assert _sh(lab, host, "systemctl is-active libvirtd.socket") == "active"
        assert _sh(lab, host, "systemctl is-enabled libvirtd.service") == "enabled"
        assert "<domain type='qemu'" in _sh(lab, host, "virsh -c qemu:///system capabilities")
        assert _sh(lab, host, "cat /etc/tmpfiles.d/b2ct-ksm.conf").endswith(
            "w /sys/kernel/mm/ksm/run - - - - 0"
        )
        # the bridge took over eth0 and its address; the host is still reachable at that address
        assert _sh(lab, host, "ip -o link show dev eth0").count("master br-private") == 1
        assert lab.ip(host) + "/24" in _sh(lab, host, "ip -o -4 addr show dev br-private")
        assert _sh(lab, host, "ip -o -4 addr show dev eth0") == ""
        assert lab.ssh(host, "true").returncode == 0
    for host in ("svc1", "svc2"):
        assert "master br-public" in _sh(lab, host, "ip -o link show dev eth1")
    for host in ("wn1", "wn2"):
        assert _sh(lab, host, "ip -o link show").count("br-public") == 0


def test_bridges_tag_runs_the_bridge_tasks(lab) -> None:  # type: ignore[no-untyped-def]
    # The bridge tasks are included (their file depends on the OS), and tags on an include select only
    # the include: without passing them on, --tags kvm_host_bridges silently configured nothing.
    result = run(lab.inventory, limit="svc1", tags="kvm_host_bridges")
    _assert_ok(result)
    ran = {e["task"] for e in result.events if e["event"] == "runner_on_ok" and e.get("host") == "svc1"}
    live = "Check that each NIC, bond, VLAN and bridge is where it belongs, with its address"
    assert {"Write the bridge devices", live} <= ran, sorted(ran)
    assert result.hosts["svc1"].changed == 0, result.changed_tasks()


@pytest.fixture
def writable_ksm(lab) -> Iterator[int]:  # type: ignore[no-untyped-def]
    original = int(KSM_RUN.read_text())
    try:
        written = lab.exec("wn1", f"echo {original} > /sys/kernel/mm/ksm/run")
        assert written.returncode == 0, (
            f"the lab must bind /sys/kernel/mm/ksm writable into workers: {written}"
        )
        yield original
    finally:
        KSM_RUN.write_text(f"{original}\n")


def test_ksm_units_are_stopped_and_disabled(lab) -> None:  # type: ignore[no-untyped-def]
    unit = "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
    _sh(
        lab,
        "wn2",
        f"printf '{unit}' > /etc/systemd/system/ksm.service && systemctl daemon-reload"
        " && systemctl enable --now ksm.service",
    )
    assert _sh(lab, "wn2", "systemctl is-active ksm.service") == "active"
    # Units only: the run flag is this machine's, which other labs' tests may be changing right now.
    result = run(lab.inventory, limit="wn2", tags="kvm_host_ksm_units")
    _assert_ok(result)
    assert result.hosts["wn2"].changed >= 1
    assert _sh(lab, "wn2", "systemctl is-enabled ksm.service || true") == "disabled"
    assert _sh(lab, "wn2", "systemctl is-active ksm.service || true") == "inactive"


def test_ksm_run_flag_is_0_now_and_at_boot(lab, writable_ksm: int) -> None:  # type: ignore[no-untyped-def]
    KSM_RUN.write_text("1\n")
    assert _sh(lab, "wn1", "cat /sys/kernel/mm/ksm/run") == "1"
    result = run(lab.inventory, limit="wn1", tags="kvm_host_ksm")
    _assert_ok(result)
    assert KSM_RUN.read_text().strip() == "0"
    assert result.hosts["wn1"].changed >= 1
    # What boot does: systemd-tmpfiles applies the role's entry.
    KSM_RUN.write_text("1\n")
    _sh(lab, "wn1", "systemd-tmpfiles --create /etc/tmpfiles.d/b2ct-ksm.conf")
    assert KSM_RUN.read_text().strip() == "0"


def test_datastore_disk_kept_refused_and_forced(lab) -> None:  # type: ignore[no-untyped-def]
    for host in ("wn1", "wn2"):
        assert _sh(lab, host, f"findmnt -no FSTYPE {DATASTORE}") == "xfs"
        assert _sh(lab, host, "grep -c ' /var/lib/one/datastores xfs ' /etc/fstab") == "1"
    # data on an already formatted disk survives a re-deploy
    uuid = _sh(lab, "wn1", f"findmnt -no UUID {DATASTORE}")
    _sh(lab, "wn1", f"echo precious > {DATASTORE}/keep")
    _assert_ok(run(lab.inventory, limit="wn1", tags="ephemeral_storage"))
    assert _sh(lab, "wn1", f"cat {DATASTORE}/keep") == "precious"
    assert _sh(lab, "wn1", f"findmnt -no UUID {DATASTORE}") == uuid

    # a disk with another filesystem is refused, with a message naming the disk and the filesystem
    disk = _sh(lab, "wn2", f"findmnt -no SOURCE {DATASTORE}")
    # -R: the image datastore (GlusterFS) is mounted inside it on workers
    _sh(lab, "wn2", f"umount -R {DATASTORE} && mkfs.ext2 -q -F {disk}")
    refused = run(lab.inventory, limit="wn2", tags="ephemeral_storage")
    assert refused.failed_hosts == ["wn2"]
    assert f"refusing to format {disk}" in refused.hosts["wn2"].error
    assert "ext2 filesystem" in refused.hosts["wn2"].error
    assert _sh(lab, "wn2", f"blkid -p -o value -s TYPE {disk}") == "ext2"

    # forced, and asked for ext4
    forced = run(
        lab.inventory,
        limit="wn2",
        tags="ephemeral_storage",
        extravars={"ephemeral_storage_force": True, "ephemeral_storage_fs": "ext4"},
    )
    _assert_ok(forced)
    assert _sh(lab, "wn2", f"findmnt -no FSTYPE {DATASTORE}") == "ext4"
    again = run(
        lab.inventory,
        limit="wn2",
        tags="ephemeral_storage",
        extravars={"ephemeral_storage_force": True, "ephemeral_storage_fs": "ext4"},
    )
    _assert_ok(again)
    assert again.changed == 0, again.changed_tasks()


def test_alloc_helper_on_the_datastores(lab) -> None:  # type: ignore[no-untyped-def]
    for host in ("wn1", "wn2"):  # XFS on wn1; ext4 on wn2 after the previous test (xfs if run alone)
        size = 64 * 1024 * 1024
        f = f"{DATASTORE}/alloc-test"
        assert _sh(lab, host, f"b2ct-alloc 64M {f}") == "fallocate"
        assert int(_sh(lab, host, f"du -B1 {f} | cut -f1")) >= size
        assert int(_sh(lab, host, f"stat -c %s {f}")) == size
        r = lab.exec(host, f"b2ct-alloc 100T {f}.big")
        assert r.returncode == 1 and "free" in r.stderr
        _sh(lab, host, f"rm -f {f}")
