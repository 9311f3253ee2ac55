"""squid.conf as the role renders it (real Ansible templating on this machine, no squid needed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TEMPLATE = Path(__file__).resolve().parents[2] / "roles" / "squid" / "templates" / "squid.conf.j2"


def render(tmp_path: Path, **overrides) -> str:
    values = {
        "squid_port": 3128,
        "squid_listen_addresses": ["10.10.0.10"],
        "squid_allowed_networks": ["10.10.0.0/24", "192.0.2.0/24"],
        "squid_allowed_destinations": [],
        "squid_allowed_ports": [80, 8000, 8080],
        "squid_cache_dir": "/var/spool/squid",
        "squid_cache_size_mb": 20000,
        "squid_memory_cache_mb": 1024,
        "squid_maximum_object_size_mb": 1024,
        "squid_maximum_object_size_in_memory_kb": 128,
        "squid_upstream_proxy": "",
        "__squid_log_dir": "/var/log/squid",
        **overrides,
    }
    (tmp_path / "vars.json").write_text(json.dumps(values))
    out = tmp_path / "squid.conf"
    proc = subprocess.run(
        ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", "ansible.builtin.template",
         "-a", f"src={TEMPLATE} dest={out}", "-e", f"@{tmp_path / 'vars.json'}",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out.read_text()


def lines(conf: str, directive: str) -> list[str]:
    return [line for line in conf.splitlines() if line.split()[:1] == [directive]]


def test_site_networks_only_sized_for_cvmfs(tmp_path):
    conf = render(tmp_path)
    assert lines(conf, "acl")[0] == "acl site_networks src 10.10.0.0/24 192.0.2.0/24"
    access = lines(conf, "http_access")
    assert access[-1] == "http_access deny all"
    assert "http_access allow site_networks" in access and "http_access deny CONNECT" in access
    # the service address for the site; loopback for the host's own health probe (b2ct check)
    assert lines(conf, "http_port") == ["http_port 10.10.0.10:3128", "http_port 127.0.0.1:3128"]
    assert access.index("http_access allow localhost to_localhost") < access.index("http_access deny all")
    assert lines(conf, "maximum_object_size") == ["maximum_object_size 1024 MB"]
    assert lines(conf, "cache_dir") == ["cache_dir ufs /var/spool/squid 20000 16 256"]
    assert lines(conf, "cache_mem") == ["cache_mem 1024 MB"]
    assert lines(conf, "collapsed_forwarding") == ["collapsed_forwarding on"]
    assert not lines(conf, "cache_peer") and not lines(conf, "never_direct")


def test_cvmfs_settings_in_the_documented_order(tmp_path):
    # CVMFS documentation, "Setting up a Local Squid Proxy".
    conf = render(tmp_path).splitlines()
    directives = [line.split()[0] for line in conf if line.strip() and not line.startswith("#")]
    assert lines("\n".join(conf), "minimum_expiry_time") == ["minimum_expiry_time 0 seconds"]
    assert directives.index("maximum_object_size") < directives.index("cache_dir")
    assert directives.count("maximum_object_size") == 1 and directives.count("cache_dir") == 1
    assert lines("\n".join(conf), "collapsed_forwarding") == ["collapsed_forwarding on"]


def test_upstream_proxy_and_destination_restriction(tmp_path):
    conf = render(
        tmp_path,
        squid_upstream_proxy="http://proxy.example.org:3128/",
        squid_allowed_destinations=["cvmfs-stratum-one.cern.ch"],
    )
    assert lines(conf, "cache_peer") == ["cache_peer proxy.example.org parent 3128 0 no-query default"]
    assert lines(conf, "never_direct") == ["never_direct allow all"]
    assert lines(conf, "always_direct") == ["always_direct allow to_localhost"]  # the health probe
    access = lines(conf, "http_access")
    # Destinations are checked before the site networks are allowed.
    deny, allow = "http_access deny !allowed_destinations", "http_access allow site_networks"
    assert access.index(deny) < access.index(allow)
    assert re.search(r"^acl allowed_destinations dstdomain cvmfs-stratum-one\.cern\.ch$", conf, re.M)
