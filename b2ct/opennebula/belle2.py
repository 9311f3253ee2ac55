"""Belle II worker VM of the original recipe: a qcow2 image and a template whose contextualisation mounts
CVMFS through the site squid and installs the ssh key; register them and time one instantiation."""

from __future__ import annotations

import base64
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import pyone

from b2ct.errors import B2ctError
from b2ct.inventory import Site
from b2ct.opennebula.client import api_errors, template_dict
from b2ct.opennebula.plan import IMAGE_VOLUME, SERVICES, WORKERS
from b2ct.opennebula.template import render

LCM_RUNNING = int(pyone.LCM_STATE.RUNNING)
LCM_FAILURES = {
    int(pyone.LCM_STATE[name])
    for name in ("FAILURE", "BOOT_FAILURE", "BOOT_MIGRATE_FAILURE", "PROLOG_MIGRATE_FAILURE",
                 "PROLOG_FAILURE", "EPILOG_FAILURE", "EPILOG_STOP_FAILURE", "EPILOG_UNDEPLOY_FAILURE")
}  # fmt: skip
VM_ENDED = {int(pyone.VM_STATE.DONE), int(pyone.VM_STATE.FAILED)}


def squid_proxies(site: Site) -> str:
    """CVMFS_HTTP_PROXY: the service hosts' squids on the private network, load-balanced ('|')."""
    urls = [
        f"http://{h.nics['private'].ip}:{site.squid.port}"
        for h in site.service_hosts
        if h.nics.get("private") and h.nics["private"].ip
    ]
    if not urls:
        raise B2ctError("no service host with a static private IP to run squid for CVMFS", where=site.source)
    return "|".join(urls)


def start_script(site: Site) -> str:
    repos = ",".join(site.opennebula.belle2.cvmfs_repositories)
    return (
        "#!/bin/sh\n# b2ct: CVMFS through the site squid (each file downloaded once per site)\nset -e\n"
        "mkdir -p /etc/cvmfs\n"
        f"cat > /etc/cvmfs/default.local <<'EOF'\nCVMFS_REPOSITORIES={repos}\n"
        f'CVMFS_HTTP_PROXY="{squid_proxies(site)}"\nCVMFS_QUOTA_LIMIT=10000\nEOF\n'
        "command -v cvmfs_config >/dev/null && cvmfs_config setup && cvmfs_config probe || true\n"
    )


def image_template(site: Site) -> dict[str, Any]:
    b = site.opennebula.belle2
    return {
        "NAME": b.image_name,
        "TYPE": "OS",
        "PATH": b.image_url,
        "FORMAT": "qcow2",
        "DRIVER": "qcow2",
        "DESCRIPTION": "Belle II worker: minimal OS, CVMFS via the site squid (b2ct)",
    }


def vm_template(site: Site, workers_cluster_id: int | None = None) -> dict[str, Any]:
    b = site.opennebula.belle2
    key = b.ssh_key or (site.ssh_keys[0] if site.ssh_keys else None)
    if not key:
        raise B2ctError(
            "no ssh key for the Belle II VMs",
            where=site.source,
            hint="set b2ct_belle2.ssh_key or b2ct_ssh_keys",
        )
    t: dict[str, Any] = {
        "NAME": b.template_name,
        "CPU": f"{b.cpu:g}",
        "VCPU": str(b.vcpu),
        "MEMORY": str(b.memory_mb),
        "DISK": {"IMAGE": b.image_name, "IMAGE_UNAME": "oneadmin", "CACHE": "writeback", "DRIVER": "qcow2"},
        "NIC": {"NETWORK": "private", "NETWORK_UNAME": "oneadmin"},
        "GRAPHICS": {"TYPE": "VNC", "LISTEN": "0.0.0.0"},
        "OS": {"ARCH": "x86_64"},
        "CONTEXT": {
            "NETWORK": "YES",
            "SSH_PUBLIC_KEY": key,
            # Also as a plain context variable: one-context exports it to the guest's scripts.
            "CVMFS_HTTP_PROXY": squid_proxies(site),
            "START_SCRIPT_BASE64": base64.b64encode(start_script(site).encode()).decode(),
        },
    }
    if workers_cluster_id is not None:
        t["SCHED_REQUIREMENTS"] = f'CLUSTER_ID = "{workers_cluster_id}"'
    return t


def _find(pool: Any, attr: str, name: str) -> Any:
    return next((o for o in getattr(pool, attr) if name == o.NAME), None)


def register(one: Any, endpoint: str, site: Site) -> list[str]:
    """Create or update the image and the template (compare-then-update); return what changed."""
    changes: list[str] = []
    with api_errors(endpoint, "looking up the image datastore and workers cluster"):
        datastores = one.datastorepool.info()
        clusters = one.clusterpool.info()
    ds = _find(datastores, "DATASTORE", "images")
    if ds is None:
        raise B2ctError(
            f"image datastore 'images' (volume {IMAGE_VOLUME}) does not exist",
            where=endpoint,
            hint="run b2ct cloud apply first",
        )
    workers = _find(clusters, "CLUSTER", WORKERS)
    img = image_template(site)
    with api_errors(endpoint, f"registering image {img['NAME']}"):
        image = _find(one.imagepool.info(-2, -1, -1), "IMAGE", img["NAME"])
        if image is None:
            one.image.allocate(render(img), ds.ID, False)
            changes.append(f"image {img['NAME']}: create")
        else:
            want = {k: v for k, v in img.items() if k not in ("NAME", "PATH", "TYPE")}
            diff = {k: v for k, v in want.items() if str(template_dict(image).get(k, "")) != v}
            if diff:
                one.image.update(image.ID, render(diff), 1)
                changes.append(f"image {img['NAME']}: update {', '.join(sorted(diff))}")
    tpl = vm_template(site, workers.ID if workers is not None else None)
    with api_errors(endpoint, f"registering template {tpl['NAME']}"):
        existing = _find(one.templatepool.info(-2, -1, -1), "VMTEMPLATE", tpl["NAME"])
        if existing is None:
            one.template.allocate(render(tpl))
            changes.append(f"template {tpl['NAME']}: create")
        else:
            want = {k: v for k, v in tpl.items() if k != "NAME"}
            have = template_dict(existing)
            diff = {
                k: v
                for k, v in want.items()
                if (dict(have.get(k) or {}) if isinstance(v, dict) else str(have.get(k, ""))) != v
            }
            if diff:
                one.template.update(existing.ID, render(want), 0)
                changes.append(f"template {tpl['NAME']}: update {', '.join(sorted(diff))}")
    return changes


@dataclass(frozen=True)
class SmokeVM:
    """One smoke VM: where it ran and how long oned took from instantiate to RUNNING (seconds)."""

    id: int
    cluster: str
    host: str
    seconds: float


def _cluster_ids(one: Any, endpoint: str, names: list[str]) -> dict[str, int]:
    with api_errors(endpoint, "listing clusters"):
        have = {c.NAME: int(c.ID) for c in one.clusterpool.info().CLUSTER}
    missing = [n for n in names if n not in have]
    if missing:
        raise B2ctError(
            f"cluster {missing[0]} does not exist", where=endpoint, hint="run b2ct cloud apply first"
        )
    return {n: have[n] for n in names}


def smoke(
    one: Any,
    endpoint: str,
    template_name: str,
    *,
    clusters: tuple[str, ...] = (SERVICES, WORKERS),
    timeout: float = 300.0,
    poll: float = 0.2,
    keep: bool = False,
    extra: dict[str, Any] | None = None,
) -> list[SmokeVM]:
    """Instantiate the template once per cluster (all at once, each pinned to its cluster with
    SCHED_REQUIREMENTS) and wait until every VM is RUNNING; terminate them unless ``keep``.

    Returns the VMs in the order of ``clusters``. Raises B2ctError when a VM fails (naming its state
    and the reason oned logged) or is not RUNNING after ``timeout`` seconds; the VMs made are
    terminated then too. ``extra``: attributes merged into each instantiation (oned replaces the
    template's attributes of the same name, e.g. every DISK; its SCHED_REQUIREMENTS wins over the
    cluster's).
    """
    with api_errors(endpoint, f"finding template {template_name}"):
        tpl = _find(one.templatepool.info(-2, -1, -1), "VMTEMPLATE", template_name)
    if tpl is None:
        raise B2ctError(
            f"template {template_name} is not registered", where=endpoint, hint="run b2ct vm register"
        )
    ids = _cluster_ids(one, endpoint, list(clusters))
    started: dict[int, tuple[str, float]] = {}
    done: dict[int, SmokeVM] = {}
    ok = False
    try:
        for cluster in clusters:
            pinned: dict[str, Any] = {"SCHED_REQUIREMENTS": f'CLUSTER_ID = "{ids[cluster]}"'}
            if cluster == SERVICES:
                # No write cache on the shared datastore: what a VM wrote is on both bricks when its host
                # dies (the template's writeback is for the workers' local disks).
                pinned["DISK"] = {**tpl_disk(one, endpoint, template_name), "CACHE": "writethrough"}
            merged = render({**pinned, **(extra or {})})
            name = f"b2ct-smoke-{cluster}-{int(time.time())}"
            with api_errors(endpoint, f"instantiating {template_name} in cluster {cluster}"):
                vmid = int(one.template.instantiate(tpl.ID, name, False, merged, False))
            started[vmid] = (cluster, time.monotonic())
        while len(done) < len(started):
            for vmid, (cluster, t0) in started.items():
                if vmid in done:
                    continue
                with api_errors(endpoint, f"reading VM {vmid}"):
                    vm = one.vm.info(vmid)
                if vm.STATE == 3 and vm.LCM_STATE == LCM_RUNNING:
                    hist = vm.HISTORY_RECORDS.HISTORY
                    host = str(hist[-1].HOSTNAME) if hist else "?"
                    done[vmid] = SmokeVM(vmid, cluster, host, time.monotonic() - t0)
                elif vm.STATE in VM_ENDED or vm.LCM_STATE in LCM_FAILURES:
                    raise B2ctError(
                        f"VM {vmid} (cluster {cluster}) failed: state {state_name(vm)}: {_reason(vm)}",
                        where=endpoint,
                        hint=f"onevm show {vmid}; /var/log/one/{vmid}.log on the front-end",
                    )
                elif time.monotonic() - t0 > timeout:
                    raise B2ctError(
                        f"VM {vmid} (cluster {cluster}) not RUNNING after {timeout:.0f}s "
                        f"(state {state_name(vm)})" + (f": {_reason(vm)}" if _reason(vm) else ""),
                        where=endpoint,
                        hint="is a host of that cluster MONITORED with room for it? onevm show " + str(vmid),
                    )
            if len(done) < len(started):
                time.sleep(poll)
        ok = True
    finally:
        if not keep or not ok:
            for vmid in started:
                with contextlib.suppress(B2ctError), api_errors(endpoint, f"terminating smoke VM {vmid}"):
                    one.vm.action("terminate-hard", vmid)
    return [done[v] for v in started]


def tpl_disk(one: Any, endpoint: str, template_name: str) -> dict[str, str]:
    """The template's (first) DISK, as oned keeps it."""
    with api_errors(endpoint, f"reading template {template_name}"):
        tpl = _find(one.templatepool.info(-2, -1, -1), "VMTEMPLATE", template_name)
    disk = template_dict(tpl).get("DISK") if tpl is not None else None
    if isinstance(disk, list):
        disk = disk[0]
    return {str(k): str(v) for k, v in dict(disk or {}).items()}


def state_name(vm: Any) -> str:
    """A VM's state as `onevm show` names it: "ACTIVE/BOOT" while active, else "PENDING", "DONE", ...
    (the numbers of vm.xsd, names from pyone's VM_STATE and LCM_STATE)."""

    def name(enum: Any, value: Any) -> str:
        try:
            return str(enum(int(value)).name)
        except ValueError:
            return str(value)

    state = name(pyone.VM_STATE, vm.STATE)
    return f"{state}/{name(pyone.LCM_STATE, vm.LCM_STATE)}" if state == "ACTIVE" else state


def _reason(vm: Any) -> str:
    """The last error oned recorded for a VM (USER_TEMPLATE/ERROR or the scheduler's message)."""
    for attr in ("USER_TEMPLATE", "TEMPLATE"):
        t = getattr(vm, attr, None)
        if t:
            d = dict(t)
            for key in ("ERROR", "SCHED_MESSAGE"):
                if d.get(key):
                    return " ".join(str(d[key]).split())
    return ""
