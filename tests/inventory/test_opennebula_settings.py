"""OpenNebula site settings (mirror, endpoint, vnets, Belle II VM, rOCCI): parsed into Site.opennebula by
b2ct.inventory.load; bad values are one-line errors naming the file:line of the bad value."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from b2ct.errors import B2ctError
from b2ct.inventory import Belle2, OpenNebulaSettings, Rocci, load
from tests.conftest import assert_one_line_error, run_cli

HOSTS = """\
all:
  children:
    frontend:
      hosts:
        svc1:
    service:
      hosts:
        svc1:
          b2ct_nics:
            private: {mac: "52:54:00:00:00:01", ip: 10.1.0.11}
            public: {mac: "52:54:00:00:01:01", ip: 192.0.2.11}
    worker:
      hosts:
        wn1:
          b2ct_nics: {private: {mac: "52:54:00:00:00:03", ip: 10.1.0.200}}
"""

ALL = """\
b2ct_site: lab
b2ct_os_release: debian12
b2ct_networks:
  private: {subnet: 10.1.0.0/24, gateway: 10.1.0.1, dns: [10.1.0.53], bridge: br-private}
  public: {subnet: 192.0.2.0/24, gateway: 192.0.2.1, bridge: br-public}
b2ct_ssh_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHweObhqHHrsbfiMspkUFfg8HNRysficbLwwF62TybM0 t@t"]
"""


def write(tmp: Path, extra: str) -> Path:
    (tmp / "group_vars").mkdir()
    (tmp / "hosts.yml").write_text(HOSTS)
    (tmp / "group_vars" / "all.yml").write_text(ALL + extra)
    return tmp


def line_of(text: str, fragment: str) -> int:
    """1-based line in group_vars/all.yml of the first line of ``extra`` containing ``fragment``."""
    lines = (ALL + text).splitlines()
    return next(i for i, line in enumerate(lines, 1) if fragment in line)


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    site = load(write(tmp_path, ""))
    assert site.opennebula == OpenNebulaSettings()
    assert site.opennebula.belle2.template_name == "belle2-worker" and not site.opennebula.rocci.enabled


def test_good_settings_reach_the_model(tmp_path: Path) -> None:
    site = load(
        write(
            tmp_path,
            """\
b2ct_opennebula_mirror: https://mirror.example.org/opennebula/
b2ct_opennebula_endpoint: http://one.example.org:2633/RPC2
b2ct_opennebula_vnets:
  vms: {network: private, ar_start: 10.1.0.100, ar_size: 50}
  public: {}
b2ct_belle2: {vcpu: 2, memory_mb: 4096, cpu: 0.5, cvmfs_repositories: belle.cern.ch}
b2ct_rocci: {enabled: true, package_url: /srv/pkgs/rocci-server.deb}
""",
        )
    )
    one = site.opennebula
    assert one.mirror == "https://mirror.example.org/opennebula"  # trailing slash dropped
    assert one.endpoint == "http://one.example.org:2633/RPC2"
    vms, public = one.vnets
    assert (vms.name, vms.network, vms.bridge, vms.ar_start, vms.ar_size) == (
        "vms",
        "private",
        "br-private",  # the network's bridge, resolved by the loader
        ipaddress.IPv4Address("10.1.0.100"),
        50,
    )
    # No range given: the upper half of the public subnet.
    assert (public.network, public.bridge, str(public.ar_start), public.ar_size) == (
        "public",
        "br-public",
        "192.0.2.128",
        127,
    )
    assert one.belle2 == Belle2(vcpu=2, memory_mb=4096, cpu=0.5, cvmfs_repositories=("belle.cern.ch",))
    assert one.rocci == Rocci(True, "/srv/pkgs/rocci-server.deb")


CASES = [
    ("mirror-not-url", "b2ct_opennebula_mirror: mirror.example.org\n", "mirror", ["not an http(s)"]),
    ("endpoint-not-url", "b2ct_opennebula_endpoint: one:2633\n", "endpoint", ["is not an http(s) URL"]),
    ("vnets-not-mapping", "b2ct_opennebula_vnets: [private]\n", "vnets", ["must be a mapping"]),
    (
        "vnet-unknown-key",
        "b2ct_opennebula_vnets:\n  vms:\n    network: private\n    ar_sise: 4\n",
        "ar_sise",
        ["unknown key 'ar_sise'", "did you mean 'ar_size'"],
    ),
    (
        "vnet-unknown-network",
        "b2ct_opennebula_vnets:\n  vms: {network: privat}\n",
        "vms:",
        ["network 'privat' is not in b2ct_networks", "did you mean 'private'"],
    ),
    (
        "vnet-bridge-of-other-network",
        "b2ct_opennebula_vnets:\n  vms: {network: private, bridge: br-public}\n",
        "vms:",
        ["bridge 'br-public' carries network public, not private"],
    ),
    (
        "vnet-bridge-unknown",
        "b2ct_opennebula_vnets:\n  vms: {network: private, bridge: br-nope}\n",
        "vms:",
        ["bridge 'br-nope' is no inventory bridge"],
    ),
    (
        "vnet-ar-start-not-ip",
        "b2ct_opennebula_vnets:\n  vms:\n    network: private\n    ar_start: 10.1.0.300\n",
        "ar_start",
        ["'10.1.0.300' is not an IPv4 address"],
    ),
    (
        "vnet-ar-size-zero",
        "b2ct_opennebula_vnets:\n  vms:\n    ar_start: 10.1.0.100\n    ar_size: 0\n",
        "ar_size",
        ["ar_size must be at least 1"],
    ),
    (
        "vnet-range-leaves-subnet",
        "b2ct_opennebula_vnets:\n  vms: {network: private, ar_start: 10.1.0.250, ar_size: 10}\n",
        "vms:",
        ["lease range 10.1.0.250–10.1.1.3 does not fit", "10.1.0.0/24"],
    ),
    (
        "vnet-range-holds-host",
        "b2ct_opennebula_vnets:\n  vms: {network: private, ar_start: 10.1.0.150, ar_size: 100}\n",
        "vms:",
        ["contains 10.1.0.200, host wn1"],
    ),
    (
        "vnet-default-range-holds-host",
        "b2ct_opennebula_vnets:\n  private: {}\n",
        "private: {}",
        ["lease range 10.1.0.128–10.1.0.254 contains 10.1.0.200, host wn1"],
    ),
    (
        "vnet-range-holds-gateway",
        "b2ct_opennebula_vnets:\n  vms: {network: private, ar_start: 10.1.0.1, ar_size: 5}\n",
        "vms:",
        ["contains 10.1.0.1, the gateway"],
    ),
    (
        "vnet-range-holds-dns",
        "b2ct_opennebula_vnets:\n  vms: {network: private, ar_start: 10.1.0.50, ar_size: 5}\n",
        "vms:",
        ["contains 10.1.0.53, a DNS server"],
    ),
    (
        "belle2-unknown-key",
        "b2ct_belle2:\n  image: x\n",
        "image: x",
        ["b2ct_belle2: unknown key 'image'"],
    ),
    ("belle2-vcpu-zero", "b2ct_belle2:\n  vcpu: 0\n", "vcpu", ["b2ct_belle2.vcpu must be at least 1"]),
    ("belle2-cpu-bool", "b2ct_belle2:\n  cpu: true\n", "cpu", ["b2ct_belle2.cpu must be a positive number"]),
    (
        "belle2-bad-repository",
        "b2ct_belle2:\n  cvmfs_repositories:\n    - belle.cern.ch\n    - Bad Repo\n",
        "Bad Repo",
        ["cvmfs_repositories[1] 'Bad Repo'"],
    ),
    (
        "belle2-bad-key",
        "b2ct_belle2:\n  ssh_key: hunter2\n",
        "ssh_key: hunter2",
        ["not an OpenSSH public key"],
    ),
    (
        "belle2-bad-image-name",
        "b2ct_belle2:\n  image_name: 'my image'\n",
        "image_name",
        ["b2ct_belle2.image_name 'my image'"],
    ),
    ("rocci-not-bool", "b2ct_rocci:\n  enabled: sometimes\n", "enabled", ["must be true or false"]),
    (
        "rocci-without-package",
        "b2ct_rocci:\n  enabled: true\n",
        "b2ct_rocci",
        ["enabled needs package_url"],
    ),
]


@pytest.mark.parametrize(("extra", "fragment", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_setting_names_file_and_line(
    tmp_path: Path, extra: str, fragment: str, expect: list[str]
) -> None:
    inv = write(tmp_path, extra)
    with pytest.raises(B2ctError) as info:
        load(inv)
    line = info.value.oneline()
    assert f"group_vars/all.yml:{line_of(extra, fragment)}" in line, line
    for part in expect:
        assert part in line, (part, line)


def test_site_setting_in_a_group_is_refused(tmp_path: Path) -> None:
    inv = write(tmp_path, "")
    (inv / "group_vars" / "worker.yml").write_text("b2ct_opennebula_endpoint: http://x:2633/RPC2\n")
    with pytest.raises(B2ctError, match="b2ct_opennebula_endpoint is a site setting"):
        load(inv)


def test_cli_reports_one_line(tmp_path: Path) -> None:
    extra = "b2ct_opennebula_vnets:\n  vms: {network: private, ar_start: 10.1.0.150, ar_size: 100}\n"
    inv = write(tmp_path, extra)
    r = run_cli("inventory", "check", "-i", inv)
    assert_one_line_error(r, f"all.yml:{line_of(extra, 'vms:')}", "contains 10.1.0.200, host wn1")
