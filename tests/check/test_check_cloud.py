"""`b2ct check`'s OpenNebula row against the real oned of the session's cloud (tests/lab_plugin.py):
host states as oned reports them, a node made to fail for real, credentials read on the front-end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.check.tests_check_util import by_check, run_check
from tests.conftest import wait_for
from tests.lab_plugin import Cloud

pytestmark = [pytest.mark.slow, pytest.mark.lab]

HOST_ERROR = 3
LIBVIRT_UNITS = "libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket libvirtd.service"


def _hostpool_calls_from(cloud: Cloud, ip: str) -> int:
    """How many one.hostpool.info calls oned logged from ``ip`` (oned.conf DEBUG_LEVEL 3 logs each)."""
    log = cloud.lab.ssh("svc1", "cat /var/log/one/oned.log", check=True).stdout
    return sum(1 for line in log.splitlines() if f"IP:{ip} one.hostpool.info invoked" in line)


def test_opennebula_row_reads_real_host_states(
    cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Healthy: every host PASSes as MONITORED, with oneadmin's credentials read on the front-end and
    one host-pool query per run. Then wn1 disabled and wn2's libvirtd stopped: FAIL with the state and
    the reason oned gives."""
    monkeypatch.delenv("ONE_AUTH", raising=False)  # the CLI subprocess inherits the environment
    inv = cloud.inventory
    calls = _hostpool_calls_from(cloud, cloud.lab.host_ip)
    rc, report = run_check(inv, "--no-smoke")
    rows = {h["name"]: by_check(h)["opennebula"] for h in report["hosts"]}
    for name, row in rows.items():
        assert row["status"] == "pass" and "MONITORED by OpenNebula 6.10.5" in row["reason"], (name, row)
    assert _hostpool_calls_from(cloud, cloud.lab.host_ip) == calls + 1, "one query per run, not per host"
    one = cloud.one()
    ids = {h.NAME: int(h.ID) for h in one.hostpool.info().HOST}
    try:
        one.host.status(ids["wn1"], 1)  # disabled, as a stopped `b2ct upgrade` leaves it
        cloud.lab.ssh("wn2", f"systemctl stop {LIBVIRT_UNITS}", check=True)
        # oned notices at its next host monitoring (up to 10 min); an admin asks for it at once.
        cloud.oneadmin("onehost forceupdate wn2")
        wait_for("wn2 in ERROR", lambda: cloud.host_states()["wn2"] == HOST_ERROR, 120)
        rc, report = run_check(inv, "--no-smoke")
        assert rc == 1
        hosts = {h["name"]: by_check(h) for h in report["hosts"]}
        assert (
            hosts["wn1"]["opennebula"]["status"] == "fail"
            and "DISABLED" in hosts["wn1"]["opennebula"]["reason"]
        )
        wn2 = hosts["wn2"]["opennebula"]
        assert wn2["status"] == "fail" and "cannot monitor it (ERROR" in wn2["reason"], wn2
        assert "Error monitoring Host wn2" in wn2["reason"], wn2  # oned's own words
        assert hosts["wn2"]["libvirt"]["status"] == "fail"  # and the host's own probe agrees
        assert hosts["svc1"]["opennebula"]["status"] == "pass"
        # Wrong --one-auth: not a verdict on the hosts, a warning about the credentials.
        bad = tmp_path / "one_auth"
        bad.write_text("oneadmin:wrong\n")
        rc, report = run_check(inv, "--no-smoke", "--limit", "svc2", "--one-auth", bad)
        row = by_check(report["hosts"][0])["opennebula"]
        assert row["status"] == "warn" and f"refused the credentials from {bad}" in row["reason"], row
    finally:
        one.host.status(ids["wn1"], 0)
        cloud.lab.ssh("wn2", f"systemctl start {LIBVIRT_UNITS}")
        cloud.oneadmin("onehost forceupdate wn2")
        cloud.wait_monitored()
