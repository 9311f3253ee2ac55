"""The rack kickstart's %pre, run under bash with a fake sysfs: known machines install unattended,
unknown ones are asked on the console (through a real pty), and the result validates."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pexpect
import pytest

from b2ct.errors import B2ctError
from b2ct.inventory import load
from b2ct.kickstart import render, validate
from tests.conftest import EXAMPLE

HANDLERS = {"el6": "RHEL6", "el9": "RHEL9", "el10": "RHEL10"}


def pre_script(rack: str) -> str:
    match = re.search(r"^%pre --interpreter=/bin/bash\n(.*?)^%end$", rack, re.S | re.M)
    assert match, "rack kickstart has no bash %pre"
    return match.group(1)


def fake_sysfs(root: Path, nics: dict[str, str], disks: dict[str, int], serial: str | None = None) -> Path:
    sysfs = root / "sys"
    (sysfs / "class/net/lo").mkdir(parents=True)
    (sysfs / "class/net/lo/address").write_text("00:00:00:00:00:00\n")
    for name, mac in nics.items():
        (sysfs / "class/net" / name).mkdir(parents=True)
        (sysfs / "class/net" / name / "address").write_text(mac + "\n")
    for name, removable in disks.items():
        (sysfs / "block" / name).mkdir(parents=True)
        (sysfs / "block" / name / "removable").write_text(f"{removable}\n")
    if serial is not None:
        (sysfs / "class/dmi/id").mkdir(parents=True)
        (sysfs / "class/dmi/id/product_serial").write_text(serial + "\n")
    return sysfs


def combined(rack: str, out: Path) -> str:
    """The kickstart anaconda would parse: each %include replaced by the fragment %pre wrote."""

    def include(m: re.Match[str]) -> str:
        return (out / Path(m.group(1)).name).read_text()

    return re.sub(r"^%include /tmp/b2ct/(\S+)$", lambda m: include(m).rstrip("\n"), rack, flags=re.M)


@pytest.fixture(scope="module")
def site():
    return load(EXAMPLE)


@pytest.fixture
def env(tmp_path: Path):
    def make(sysfs: Path) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "B2CT_SYSFS": str(sysfs),
            "B2CT_OUT": str(tmp_path / "out"),
            "B2CT_TTY": "-",
            "TERM": "dumb",
        }

    return make


@pytest.mark.parametrize("release", ["el6", "el9", "el10"])
def test_known_mac_is_unattended(site, tmp_path: Path, env, release: str) -> None:
    rack = render(site, release).files["ks.cfg"]
    script = tmp_path / "pre.sh"
    script.write_text(pre_script(rack))
    # wn02's NIC sits second, behind a NIC the inventory does not know
    sysfs = fake_sysfs(tmp_path, {"eno1": "52:54:00:aa:bb:cc", "eno2": "52:54:00:10:00:22"}, {"sda": 0})
    proc = subprocess.run(
        ["bash", str(script)],
        env=env(sysfs),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "this machine is wn02" in proc.stdout
    out = tmp_path / "out"
    assert "--device=52:54:00:10:00:22" in (out / "network.ks").read_text()
    assert "--hostname=wn02" in (out / "network.ks").read_text()
    assert "B2CT_CLASS=worker" in (out / "host.conf").read_text()
    text = combined(rack, out)
    validate(text, HANDLERS[release], "combined ks.cfg")
    # the fragments are exactly what the per-host kickstart carries
    host_ks = render(site, release).files["ks/wn02.cfg"]
    assert (out / "network.ks").read_text() in host_ks
    assert (out / "storage.ks").read_text() in host_ks


def test_dmi_serial_identifies_a_machine_with_new_nics(site, tmp_path: Path, env) -> None:
    rack = render(site, "el9").files["ks.cfg"]
    script = tmp_path / "pre.sh"
    script.write_text(pre_script(rack))
    sysfs = fake_sysfs(tmp_path, {"eth0": "52:54:00:de:ad:01"}, {"nvme0n1": 0}, serial="CZJ0004WN")
    proc = subprocess.run(
        ["bash", str(script)],
        env=env(sysfs),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "this machine is wn04" in proc.stdout


def _answer(child: pexpect.spawn, prompt: str, reply: str) -> None:
    child.expect_exact(prompt, timeout=10)
    child.sendline(reply)


@pytest.mark.parametrize("release", ["el6", "el9", "el10"])
def test_unknown_mac_asks_and_rejects_bad_answers(site, tmp_path: Path, env, release: str) -> None:
    rack = render(site, release).files["ks.cfg"]
    script = tmp_path / "pre.sh"
    script.write_text(pre_script(rack))
    sysfs = fake_sysfs(tmp_path, {"ens3": "52:54:00:99:00:01"}, {"sda": 0, "sdb": 1, "loop0": 0})
    child = pexpect.spawn("bash", [str(script)], env=env(sysfs), encoding="utf-8", timeout=10)
    try:
        _answer(child, "Host class (service or worker) [worker]: ", "storage")
        child.expect_exact("invalid answer 'storage': type service or worker")
        child.sendline("worker")
        _answer(child, "Hostname: ", "wn01")  # taken by the inventory
        child.expect_exact("wn01 is another host of the inventory")
        child.sendline("wn99")
        _answer(child, "private interface (ens3) [ens3]: ", "")
        _answer(child, "private IPv4 address, or dhcp [dhcp]: ", "10.10.0.300")
        child.expect_exact("invalid answer '10.10.0.300': octet 300 is above 255")
        child.sendline("10.10.0.21")  # wn01's address
        child.expect_exact("10.10.0.21 belongs to another host of the inventory")
        child.sendline("10.10.0.99")
        _answer(child, "private prefix length [24]: ", "")
        _answer(child, "private gateway (empty: none) [10.10.0.1]: ", "10.20.0.1")
        child.expect_exact("10.20.0.1 is not in 10.10.0.99/24")
        child.sendline("")
        _answer(child, "private DNS servers, comma separated [10.10.0.1]: ", "10.10.0.1,8.8.8")
        child.expect_exact("invalid answer")
        child.sendline("10.10.0.1,10.10.0.2")
        # sdb is removable (the USB key itself) and loop0 is not a disk: neither is offered
        _answer(child, "Install disk (everything on it is erased) [sda]: ", "sdb")
        child.expect_exact("one of: sda")
        child.sendline("")
        _answer(child, "Install with these settings? (yes/no) [yes]: ", "yes")
        child.expect_exact("installing wn99 as a worker host")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    out = tmp_path / "out"
    network = (out / "network.ks").read_text()
    assert network.strip() == (
        "network --device=52:54:00:99:00:01 --onboot=yes --activate --bootproto=static --ip=10.10.0.99"
        " --netmask=255.255.255.0 --gateway=10.10.0.1 --nameserver=10.10.0.1,10.10.0.2 --hostname=wn99"
    )
    assert "--drives=sda" in (out / "storage.ks").read_text()
    assert "__DISK__" not in (out / "storage.ks").read_text()
    assert "B2CT_SOURCE=console" in (out / "host.conf").read_text()
    validate(combined(rack, out), HANDLERS[release], "combined ks.cfg")


def test_unknown_service_host_with_public_nic_and_dhcp(site, tmp_path: Path, env) -> None:
    rack = render(site, "el9").files["ks.cfg"]
    script = tmp_path / "pre.sh"
    script.write_text(pre_script(rack))
    sysfs = fake_sysfs(tmp_path, {"eno1": "52:54:00:99:00:01", "eno2": "52:54:00:99:00:02"}, {"vda": 0})
    child = pexpect.spawn("bash", [str(script)], env=env(sysfs), encoding="utf-8", timeout=10)
    try:
        _answer(child, "[worker]: ", "service")
        _answer(child, "Hostname: ", "svc9")
        _answer(child, "private interface (eno1 eno2) [eno1]: ", "")
        _answer(child, "private IPv4 address, or dhcp [dhcp]: ", "")
        _answer(child, "public interface (eno1 eno2) [eno2]: ", "")
        _answer(child, "public IPv4 address, or dhcp [dhcp]: ", "192.0.2.99")
        _answer(child, "public prefix length [24]: ", "")
        _answer(child, "public gateway (empty: none) [192.0.2.1]: ", "")
        _answer(child, "public DNS servers, comma separated [192.0.2.53]: ", "")
        _answer(child, "[vda]: ", "")
        _answer(child, "(yes/no) [yes]: ", "no")  # start over, as an operator who mistyped would
        _answer(child, "[worker]: ", "service")
        _answer(child, "Hostname: ", "svc9")
        for _ in range(2):
            child.expect_exact("interface (eno1 eno2)")
            child.sendline("")
            child.expect_exact("or dhcp [dhcp]: ")
            child.sendline("")
        _answer(child, "[vda]: ", "")
        _answer(child, "(yes/no) [yes]: ", "")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    out = tmp_path / "out"
    lines = (out / "network.ks").read_text().splitlines()
    assert lines[0].endswith("--bootproto=dhcp --nodefroute --hostname=svc9"), lines
    assert lines[1] == "network --device=52:54:00:99:00:02 --onboot=yes --activate --bootproto=dhcp"
    assert "logvol /var/lib/one " in (out / "storage.ks").read_text()  # the service-class layout
    validate(combined(rack, out), "RHEL9", "combined ks.cfg")


def test_end_of_input_stops_instead_of_looping(site, tmp_path: Path, env) -> None:
    rack = render(site, "el9").files["ks.cfg"]
    script = tmp_path / "pre.sh"
    script.write_text(pre_script(rack))
    sysfs = fake_sysfs(tmp_path, {"eth0": "52:54:00:99:00:05"}, {"sda": 0})
    proc = subprocess.run(
        ["bash", str(script)], env=env(sysfs), input="worker\n", capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1
    assert "no answer" in proc.stdout
    assert not (tmp_path / "out" / "network.ks").exists()


def test_combined_kickstart_with_broken_fragment_fails(site, tmp_path: Path) -> None:
    """The combination check is real: a fragment with a bad line is rejected."""
    rack = render(site, "el9").files["ks.cfg"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "network.ks").write_text("network --device=eth0 --bootproto=static --ip=10.0.0.1 --netmask\n")
    (out / "storage.ks").write_text("ignoredisk --only-use=sda\n")
    (out / "host.conf").write_text("")
    with pytest.raises(B2ctError):
        validate(combined(rack, out), "RHEL9", "combined")


def test_generated_pre_script_passes_shellcheck(site, tmp_path: Path) -> None:
    """The %pre runs once per machine at install time, far from any debugger: lint it."""
    import shutil

    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required (listed in .ci/packages/base.apt)"
    for release in ("el6", "el9"):
        script = tmp_path / f"pre-{release}.sh"
        script.write_text("#!/bin/bash\n" + pre_script(render(site, release).files["ks.cfg"]))
        proc = subprocess.run([shellcheck, "-S", "warning", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
