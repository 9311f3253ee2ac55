"""On lab hosts, for real: MariaDB backend, oned.conf, backups, libvirt settings, oneadmin ssh trust,
idempotence; and a rolling upgrade with --serial 1 that stops at a failing host.

OpenNebula's packages and daemon cannot be had here: the lab inventory sets ``*_install_packages: false``
(the roles say what they skip), and the upgrade's disable/drain/enable API calls go to the local test
double (tests/opennebula/fake_oned.py); the package upgrade, reboot decision, ssh wait
and checks run with real Ansible on the lab hosts.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from b2ct import deploy
from b2ct.deploy import DeployResult
from b2ct.errors import B2ctError
from b2ct.inventory import load
from b2ct.lab.core import Lab
from b2ct.opennebula import plan, upgrade
from b2ct.opennebula.client import connect
from b2ct.opennebula.template import parse

sys.path.insert(0, str(Path(__file__).parent))
from fake_oned import HOST_DISABLED, HOST_MONITORED, FakeOned

from tests.lab_plugin import make_lab

pytestmark = [pytest.mark.slow, pytest.mark.lab]


def _deploy(inventory: Path) -> DeployResult:
    # As `b2ct deploy` runs playbooks. No -e here: the lab's own group_vars say that OpenNebula's packages
    # cannot be installed, so this also proves that switch reaches both roles from the inventory.
    return deploy.run(inventory, playbook="opennebula.yml", keep_logs=False)


def _ran(result: DeployResult, task: str) -> set[str]:
    return {e["host"] for e in result.events if e["event"] == "runner_on_ok" and e["task"] == task}


def _skipped(result: DeployResult, task: str) -> set[str]:
    return {e["host"] for e in result.events if e["event"] == "runner_on_skipped" and e["task"] == task}


def _boot_problem(lab) -> str | None:  # type: ignore[no-untyped-def]
    """None when every host finished booting with no failed unit (failed boot units are started once
    more, up to three times), else what went wrong."""
    for host in lab.hosts:
        state = lab.ssh(host, "timeout 180 systemctl is-system-running --wait").stdout.strip()
        for _ in range(3):
            if state != "degraded":
                break
            lab.ssh(host, "u=$(systemctl --failed --plain --no-legend | awk '{print $1}'); "
                    "systemctl reset-failed; [ -z \"$u\" ] || systemctl start $u; sleep 1")  # fmt: skip
            state = lab.ssh(host, "systemctl is-system-running").stdout.strip()
        if state != "running":
            failed = lab.ssh(host, "systemctl --failed --plain --no-legend").stdout.strip()
            return f"{host} {state}: {failed}"
    return None


@pytest.fixture(scope="module")
def one_lab() -> Iterator[Lab]:
    # A lab of our own, not the session's: other areas' tests change the session lab's hosts, and the
    # changed=0 and ssh-trust assertions here must see only what opennebula.yml did.
    # `lab up` returns once sshd answers. On a loaded machine a lab host's early oneshot units sometimes
    # fail with status=219/CGROUP (a lab flaw, reported to its owner); when that hits b2ct-lab-sysfs or
    # systemd-user-sessions (whose /run/nologin then refuses every login but root's), the host is not a
    # fair target. A real site deploys to cleanly booted hosts: start the failed boot units again, and
    # if that does not help take a fresh lab, up to three times.
    problems = []
    for _ in range(3):
        with make_lab() as lab:
            problem = _boot_problem(lab)
            if problem is None:
                yield lab
                return
            problems.append(problem)
    pytest.fail("no cleanly booted lab in 3 tries: " + "; ".join(problems))


@pytest.fixture(scope="module")
def deployed(one_lab):  # type: ignore[no-untyped-def]
    lab = one_lab
    first = _deploy(lab.inventory)
    assert first.ok, {h: s.error for h, s in first.hosts.items() if s.error}
    second = _deploy(lab.inventory)
    assert second.ok, {h: s.error for h, s in second.hosts.items() if s.error}
    return lab, first, second


def test_lab_inventory_is_a_cloud_plan(one_lab) -> None:  # type: ignore[no-untyped-def]
    """The lab's inventory has what `b2ct cloud apply` needs: both GlusterFS datastores and the vnets."""
    p = plan.build(load(one_lab.inventory))
    ds = {d.name: (d.expected_id, d.mount) for d in p.datastores}
    assert ds == {
        "services-system": (100, "/var/lib/one/datastores/100"),
        "workers-local": (None, None),
        "images": (1, "/var/lib/one/datastores/1"),
    }
    assert [v.name for v in p.vnets] == ["private", "public"]


def test_second_deploy_changes_nothing(deployed) -> None:  # type: ignore[no-untyped-def]
    lab, first, second = deployed
    # The packages were skipped because the inventory says so, and said so on every host.
    assert _ran(first, "Say that OpenNebula's packages are skipped") == {"svc1"}
    assert _skipped(first, "OpenNebula front-end packages") == {"svc1"}
    assert _ran(first, "Say that the OpenNebula node package is skipped") == set(lab.hosts)
    assert set(second.hosts) == set(lab.hosts)
    assert first.changed > 0  # the first run did configure things
    assert {h: s.changed for h, s in second.hosts.items()} == {h: 0 for h in lab.hosts}, (
        second.changed_tasks()
    )


def test_mariadb_backend_and_password_file(deployed) -> None:  # type: ignore[no-untyped-def]
    lab, _, _ = deployed
    st = lab.ssh("svc1", "stat -c '%a %U' /etc/one/b2ct-db.password", check=True).stdout.split()
    assert st == ["600", "root"]
    pw = lab.ssh("svc1", "cat /etc/one/b2ct-db.password", check=True).stdout.strip()
    assert len(pw) == 32
    # The generated password really opens the database as the oned user.
    r = lab.ssh("svc1", f"mysql -u oneadmin -p{pw} -h localhost opennebula -N -e 'select current_user()'")
    assert r.returncode == 0 and r.stdout.strip() == "oneadmin@localhost", r.stderr
    assert lab.ssh("svc1", "mysql -u oneadmin -pwrong opennebula -e 'select 1'").returncode != 0
    timer = lab.ssh(
        "svc1", "systemctl is-enabled b2ct-one-db-backup.timer; systemctl is-active b2ct-one-db-backup.timer"
    )
    assert timer.stdout.split() == ["enabled", "active"]
    dump = lab.ssh("svc1", "systemctl start b2ct-one-db-backup.service && ls /var/lib/one/backups/db")
    assert dump.returncode == 0 and re.search(r"opennebula-\d{8}T\d{6}\.sql\.gz", dump.stdout), dump.stderr


def test_oned_conf_parsed_back(deployed) -> None:  # type: ignore[no-untyped-def]
    lab, _, _ = deployed
    text = lab.ssh("svc1", "cat /etc/one/oned.conf", check=True).stdout
    conf = parse(text)
    pw = lab.ssh("svc1", "cat /etc/one/b2ct-db.password", check=True).stdout.strip()
    assert conf["DB"]["BACKEND"] == "mysql"
    assert (conf["DB"]["DB_NAME"], conf["DB"]["USER"], conf["DB"]["PASSWD"]) == ("opennebula", "oneadmin", pw)
    assert conf["PORT"] == "2633" and not isinstance(conf["DB"], list)
    assert lab.ssh("svc1", "stat -c %a /etc/one/oned.conf").stdout.strip() == "640"


def test_node_libvirt_settings(deployed) -> None:  # type: ignore[no-untyped-def]
    lab, _, _ = deployed
    for host in lab.hosts:
        qemu = parse(
            "\n".join(
                line
                for line in lab.ssh(host, "cat /etc/libvirt/qemu.conf").stdout.splitlines()
                if re.match(r"^(user|group|dynamic_ownership)\s*=", line)
            )
        )
        assert qemu == {"USER": "oneadmin", "GROUP": "oneadmin", "DYNAMIC_OWNERSHIP": "0"}, host
        libvirtd = lab.ssh(
            host, "grep -E '^(unix_sock_group|auth_unix_rw)' /etc/libvirt/libvirtd.conf"
        ).stdout
        assert 'unix_sock_group = "oneadmin"' in libvirtd and 'auth_unix_rw = "none"' in libvirtd
        groups = lab.ssh(host, "id -nG oneadmin", check=True).stdout.split()
        assert "libvirt" in groups, (host, groups)
        # oneadmin really talks to this libvirtd through the socket those settings opened.
        r = lab.ssh(host, "su -s /bin/sh oneadmin -c 'virsh -c qemu:///system uri'")
        assert r.returncode == 0 and "qemu:///system" in r.stdout, (host, r.stderr)


def test_oneadmin_reaches_every_node_without_prompt(deployed) -> None:  # type: ignore[no-untyped-def]
    lab, _, _ = deployed
    for host in lab.hosts:
        cmd = (
            f"su - oneadmin -c 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=5 "
            f"{lab.ip(host)} hostname'"
        )
        r = lab.ssh("svc1", cmd)
        why = lab.ssh(host, "cat /run/nologin; systemctl is-system-running").stdout if r.returncode else ""
        assert r.returncode == 0, (host, r.stderr, why)
        assert r.stdout.strip() == host


def test_rolling_upgrade_stops_at_failed_host(deployed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab, _, _ = deployed
    site = load(lab.inventory)
    fake = FakeOned()
    url = fake.start()
    try:
        for h in site.hosts:
            fake.m_host_allocate(h.name, "kvm", "kvm", 0)
        fake.seed_vm("wn1", lifetime=1.0)  # a worker waits for its jobs to end
        fake.seed_vm("svc2")  # a service VM would be live-migrated (never reached: the roll stops first)
        # wn2 made to fail: its hypervisor does not come back after the upgrade.
        lab.ssh("wn2", "systemctl mask --now libvirtd", check=True)
        events = tmp_path / "events.jsonl"
        limits: list[list[str]] = []

        def batch(inventory: Path, hosts: list[str], extravars: dict) -> upgrade.BatchOutcome:
            limits.append(hosts)  # the real Ansible run; only recorded, to prove who it touched
            return upgrade.ansible_batch(inventory, hosts, extravars)

        with pytest.raises(B2ctError) as err:
            upgrade.run(
                site,
                lab.inventory,
                connect(url, fake.session),
                url,
                serial=1,
                events_path=events,
                extravars={"b2ct_upgrade_update_cache": False},
                run_batch=batch,
                poll=0.2,
            )
        msg = err.value.oneline()
        assert "upgrade stopped at host wn2 (batch 2/4)" in msg and "libvirtd is not running" in msg, msg
        assert "not upgraded: svc2, svc1" in msg, msg
        assert limits == [["wn1"], ["wn2"]]  # Ansible never ran on the service hosts
        log = [json.loads(x) for x in events.read_text().splitlines()]
        order = [e["host"] for e in log]
        # One host at a time: wn1's whole cycle, then wn2 until it failed; svc2 and svc1 never appear.
        assert order == ["wn1"] * 5 + ["wn2"] * 4
        phases = [(e["host"], e["phase"] + ":" + e["status"]) for e in log]
        assert phases == [
            ("wn1", "drain:start"),
            ("wn1", "drain:done"),
            ("wn1", "upgrade:start"),
            ("wn1", "upgrade:done"),
            ("wn1", "enable:done"),
            ("wn2", "drain:start"),
            ("wn2", "drain:done"),
            ("wn2", "upgrade:start"),
            ("wn2", "upgrade:failed"),  # never re-enabled: it stays disabled for the operator
        ]
        states = {h.name: h.attrs["state"] for h in fake.pools["host"].values()}
        assert states == {
            "svc1": HOST_MONITORED,
            "svc2": HOST_MONITORED,
            "wn1": HOST_MONITORED,
            "wn2": HOST_DISABLED,
        }
        status_calls = [a for m, a in fake.calls if m == "one.host.status"]
        touched = {fake.pools["host"][a[0]].name for a in status_calls}
        assert touched == {"wn1", "wn2"}
    finally:
        lab.ssh("wn2", "systemctl unmask libvirtd && systemctl start libvirtd")
        fake.stop()
