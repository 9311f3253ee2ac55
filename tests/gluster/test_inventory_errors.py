"""Bad Gluster settings in an inventory: one-line errors naming the file:line, from b2ct.inventory.load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from b2ct.errors import B2ctError
from b2ct.inventory import load

HOSTS = """\
all:
  children:
    frontend:
      hosts:
        svc1:
    service:
      hosts:
        svc1:
          b2ct_nics: {private: {mac: "52:54:00:00:00:01", ip: 10.1.0.11}}
          b2ct_brick_disk: /dev/loop1
        svc2:
          b2ct_nics: {private: {mac: "52:54:00:00:00:02", ip: 10.1.0.12}}
          b2ct_brick_disk: /dev/loop2
    worker:
      hosts:
        wn1:
          b2ct_nics: {private: {mac: "52:54:00:00:00:03", ip: 10.1.0.21}}
"""

ALL = """\
b2ct_site: lab
b2ct_os_release: debian12
b2ct_networks:
  private: {subnet: 10.1.0.0/24}
b2ct_ssh_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHweObhqHHrsbfiMspkUFfg8HNRysficbLwwF62TybM0 t@t"]
b2ct_gluster_volumes:
"""

GOOD = """\
  - name: one-system
    replica: 2
    bricks:
      - svc1:/bricks/one-system/brick
      - svc2:/bricks/one-system/brick
"""


def write(tmp: Path, volumes: str) -> Path:
    (tmp / "group_vars").mkdir()
    (tmp / "hosts.yml").write_text(HOSTS)
    (tmp / "group_vars" / "all.yml").write_text(ALL + volumes)
    return tmp


def error_of(tmp: Path, volumes: str) -> tuple[str, int]:
    with pytest.raises(B2ctError) as info:
        load(write(tmp, volumes))
    text = info.value.oneline()
    assert "\n" not in text
    m = re.match(r"^(\S+\.yml):(\d+): ", text)
    assert m, text
    assert Path(m.group(1)).name == "all.yml"
    return text, int(m.group(2))


def test_good_volume_loads(tmp_path):
    site = load(write(tmp_path, GOOD))
    (vol,) = site.gluster_volumes
    assert (vol.name, vol.replica, [str(b) for b in vol.bricks]) == (
        "one-system",
        2,
        ["svc1:/bricks/one-system/brick", "svc2:/bricks/one-system/brick"],
    )


def test_replica_not_dividing_bricks(tmp_path):
    text, line = error_of(tmp_path, GOOD.replace("replica: 2", "replica: 3"))
    assert "replica 3 needs a multiple of 3 bricks, got 2" in text
    assert line == 8  # the replica line


def test_volume_name_clash(tmp_path):
    second = GOOD.replace("/bricks/one-system", "/bricks/other")
    text, line = error_of(tmp_path, GOOD + second)
    assert "name clash" in text and "one-system" in text
    assert line == 12  # the second "- name:" line


def test_brick_on_a_worker(tmp_path):
    text, line = error_of(tmp_path, GOOD.replace("svc2:/bricks", "wn1:/bricks"))
    assert "worker" in text
    assert line == 11


def test_replicas_on_the_same_host(tmp_path):
    text, _ = error_of(tmp_path, GOOD.replace("svc2:/bricks/one-system", "svc1:/bricks/one-system2"))
    assert "same host" in text
