"""OpenNebula 6.10 instantiating from a copy staged by `b2ct image stage`, on the lab's real cloud.

The design (docs/image.md): a workers' image datastore with the shared transfer driver (TM_MAD shared,
TM_MAD_SYSTEM ssh, as the site's `images` datastore) whose directory on the workers is a plain local
directory, not a mount. 6.10's tm/shared/clone.ssh then copies the image on the worker itself from
<datastore dir>/<image name>: from the staged copy, with no network. Shown here: before staging, the
VM's prolog fails on the worker (nothing fetches the image from the front-end); after staging it runs.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import pytest

from b2ct.opennebula.template import render
from tests.conftest import run_cli, wait_for
from tests.lab_plugin import Cloud

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LCM_RUNNING, LCM_PROLOG_FAILURE = 3, 39  # oned's LCM_STATES (vm.xsd)
DONE = 6


def _vm_outcome(one: Any, vmid: int) -> str:
    vm = one.vm.info(vmid)
    if int(vm.STATE) == 3 and int(vm.LCM_STATE) == LCM_RUNNING:
        return "running"
    if int(vm.LCM_STATE) == LCM_PROLOG_FAILURE or int(vm.STATE) == 7:
        return "prolog failure"
    return ""


def test_a_worker_instantiates_from_its_staged_copy(cloud: Cloud, tmp_path: Path) -> None:
    one = cloud.one()
    lab = cloud.lab
    workers_cluster = next(c.ID for c in one.clusterpool.info().CLUSTER if c.NAME == "workers")
    wn1 = next(h.ID for h in one.hostpool.info().HOST if h.NAME == "wn1")
    template_id = next(
        t.ID for t in one.templatepool.info(-2, -1, -1).VMTEMPLATE if t.NAME == "belle2-worker"
    )
    # DATASTORE_CAPACITY_CHECK: oned monitors a new datastore within MONITORING_INTERVAL_DATASTORE (300 s
    # in 6.10's oned.conf) and until then counts it as full; the check is a per-datastore attribute
    ds_template = {"NAME": "b2ct-staged", "TYPE": "IMAGE_DS", "DS_MAD": "fs", "TM_MAD": "shared",
                   "TM_MAD_SYSTEM": "ssh", "DRIVER": "qcow2", "DATASTORE_CAPACITY_CHECK": "NO"}  # fmt: skip
    ds = int(one.datastore.allocate(render(ds_template), workers_cluster))
    vms: list[int] = []
    image = None
    ds_dir = f"/var/lib/one/datastores/{ds}"
    try:
        # the front-end keeps the datastore's images on its own disk, as any fs datastore
        lab.ssh("svc1", f"install -d -o oneadmin -g oneadmin {ds_dir}", check=True)
        image = int(
            one.image.allocate(
                render({"NAME": "b2ct-staged-guest", "TYPE": "OS", "FORMAT": "qcow2",
                        "PATH": cloud.site.opennebula.belle2.image_url}),
                ds,
            )
        )  # fmt: skip
        wait_for("image READY", lambda: int(one.image.info(image).STATE) == 1, 180)
        source = str(one.image.info(image).SOURCE)
        assert posixpath.dirname(posixpath.normpath(source)) == ds_dir, source  # oned may write "one//"
        for host in ("wn1", "wn2"):  # a local directory on the workers, on their datastore disk
            assert lab.ssh(host, f"findmnt -n -o TARGET --target {ds_dir}").stdout.strip() != ds_dir
            assert lab.ssh(host, f"test -e {source}").returncode != 0

        extra = f'DISK = [ IMAGE_ID = "{image}" ]\nSCHED_REQUIREMENTS = "ID = {wn1}"\n'

        def instantiate(name: str) -> int:
            vmid = int(one.template.instantiate(template_id, name, False, extra, False))
            vms.append(vmid)
            return vmid

        before = instantiate("staged-before")
        assert wait_for("the first VM to settle", lambda: _vm_outcome(one, before), 180) == "prolog failure"
        log = lab.ssh("svc1", f"cat /var/log/one/{before}.log", check=True).stdout
        assert "Error copying" in log and source in log, log[-2000:]

        result = run_cli(
            "image", "stage", f"svc1:{source}", "--to", "worker", "--dest", posixpath.dirname(source),
            "-i", cloud.inventory,  # the site: wn1 and wn2 (wn3 is not in it yet)
            timeout=600,
        )  # fmt: skip
        assert result.rc == 0, result.err + result.out
        assert "2/2 host(s) staged" in result.out

        after = instantiate("staged-after")
        assert wait_for("the second VM to settle", lambda: _vm_outcome(one, after), 180) == "running"
        # tm/shared/clone.ssh converted wn1's own copy into the VM's disk there (qcow_dir_cmd: disk.0 is
        # a link into disk.0.snap/0)
        disk = lab.ssh("wn1", f"readlink /var/lib/one/datastores/*/{after}/disk.0", check=True).stdout
        assert disk.strip() == "disk.0.snap/0", disk
        history = one.vm.info(after).HISTORY_RECORDS.HISTORY
        last = history[-1] if isinstance(history, list) else history
        assert str(last.HOSTNAME) == "wn1"
    finally:
        for vmid in vms:
            one.vm.action("terminate-hard", vmid)
        for vmid in vms:
            wait_for(f"VM {vmid} DONE", lambda v=vmid: int(one.vm.info(v).STATE) == DONE, 180)
        if image is not None:
            one.image.delete(image)
            pool = one.imagepool.info
            wait_for("image deleted", lambda: image not in [i.ID for i in pool(-2, -1, -1).IMAGE], 180)
        one.datastore.delete(ds)
        for host in ("svc1", "wn1", "wn2"):
            lab.ssh(host, f"rm -rf {ds_dir}")
