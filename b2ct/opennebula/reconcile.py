"""Compare-then-update of the cloud objects: read the pools once, change only what differs.

A second run against an unchanged cloud makes no allocate/update call at all. With ``check=True``
nothing is changed and the returned list says what would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from b2ct.errors import B2ctError
from b2ct.inventory import Site
from b2ct.opennebula import client, plan
from b2ct.opennebula.client import api_errors, template_dict
from b2ct.opennebula.plan import CloudPlan, DatastoreSpec, HookSpec, VnetSpec
from b2ct.opennebula.template import render


@dataclass(frozen=True)
class Change:
    kind: str  # cluster, datastore, vnet, host
    name: str
    action: str  # create, update, join <cluster>, rename
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.action}" + (f" ({self.detail})" if self.detail else "")


def _differs(want: dict[str, Any], have: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in want.items() if str(have.get(k, "")) != str(v)}


class Reconciler:
    def __init__(self, one: Any, endpoint: str, check: bool = False):
        self.one = one
        self.endpoint = endpoint
        self.check = check
        self.changes: list[Change] = []

    def _do(self, change: Change, call: Any = None, *args: Any) -> Any:
        self.changes.append(change)
        if self.check or call is None:
            return None
        with api_errors(self.endpoint, str(change)):
            return call(*args)

    def _read(self, call: Any, doing: str, *args: Any) -> Any:
        with api_errors(self.endpoint, doing):
            return call(*args)

    def apply(self, plan: CloudPlan) -> list[Change]:
        version = str(self._read(self.one.system.version, "reading the version"))
        if not version.startswith(plan.version + ".") and version != plan.version:
            raise B2ctError(
                f"OpenNebula answers version {version}, the inventory says {plan.version}",
                where=self.endpoint,
                hint="upgrade first (b2ct upgrade) or fix b2ct_opennebula_version",
            )
        clusters = self._clusters(plan)
        for ds in plan.datastores:
            self._datastore(ds, clusters)
        for vn in plan.vnets:
            self._vnet(vn, clusters)
        self._hosts(plan, clusters)
        for hook in plan.hooks:
            self._hook(hook)
        return self.changes

    def _clusters(self, plan: CloudPlan) -> dict[str, int]:
        pool = self._read(self.one.clusterpool.info, "listing clusters")
        have = {c.NAME: c.ID for c in pool.CLUSTER}
        for name in plan.clusters:
            if name not in have:
                have[name] = self._do(Change("cluster", name, "create"), self.one.cluster.allocate, name)
        return have

    def _join(
        self,
        kind: str,
        name: str,
        oid: int | None,
        have: list[int],
        want: tuple[str, ...],
        clusters: dict[str, int],
        method: str,
    ) -> None:
        for cname in want:
            cid = clusters.get(cname)
            if cid is None or oid is None or cid not in have:
                self._do(
                    Change(kind, name, f"join {cname}"),
                    None if oid is None or cid is None else getattr(self.one.cluster, method),
                    cid,
                    oid,
                )

    def _datastore(self, spec: DatastoreSpec, clusters: dict[str, int]) -> None:
        pool = self._read(self.one.datastorepool.info, "listing datastores")
        by_name = {d.NAME: d for d in pool.DATASTORE}
        by_id = {d.ID: d for d in pool.DATASTORE}
        want = {k: v for k, v in spec.template.items() if k != "NAME"}
        ds = by_name.get(spec.name)
        if ds is None and spec.expected_id is not None and spec.expected_id in by_id:
            # The mount fixes the id (e.g. the image datastore on .../datastores/1 is oned's "default"):
            # adopt that datastore instead of creating one whose directory nobody mounted.
            ds = by_id[spec.expected_id]
            if {"IMAGE_DS": 0, "SYSTEM_DS": 1}[spec.template["TYPE"]] != ds.TYPE:
                raise B2ctError(
                    f"datastore {ds.ID} ({ds.NAME}) is not a {spec.template['TYPE']}, but the mount "
                    f"{spec.mount} is meant for datastore {spec.name}",
                    where=self.endpoint,
                )
            self._do(
                Change("datastore", spec.name, "rename", f"was {ds.NAME}, id {ds.ID}"),
                self.one.datastore.rename,
                ds.ID,
                spec.name,
            )
        if ds is None:
            dsid = self._do(
                Change("datastore", spec.name, "create"),
                self.one.datastore.allocate,
                render(spec.template),
                clusters.get(spec.clusters[0], -1),
            )
            if dsid is not None and spec.expected_id is not None and dsid != spec.expected_id:
                raise B2ctError(
                    f"datastore {spec.name} got id {dsid}, "
                    f"but its GlusterFS volume is mounted at {spec.mount}",
                    where=self.endpoint,
                    hint=f"mount the volume at {spec.mount.rpartition('/')[0]}/{dsid}",
                )
            self._join(
                "datastore",
                spec.name,
                dsid,
                [clusters.get(spec.clusters[0], -1)],
                spec.clusters,
                clusters,
                "adddatastore",
            )
            return
        diff = _differs(want, template_dict(ds))
        if diff:
            self._do(
                Change("datastore", spec.name, "update", ", ".join(sorted(diff))),
                self.one.datastore.update,
                ds.ID,
                render(diff),
                1,
            )
        self._join(
            "datastore", spec.name, ds.ID, list(ds.CLUSTERS.ID), spec.clusters, clusters, "adddatastore"
        )

    def _vnet(self, spec: VnetSpec, clusters: dict[str, int]) -> None:
        pool = self._read(self.one.vnpool.info, "listing virtual networks", -2, -1, -1)
        vn = next((v for v in pool.VNET if spec.name == v.NAME), None)
        if vn is None:
            vid = self._do(
                Change("vnet", spec.name, "create", f"bridge {spec.template['BRIDGE']}"),
                self.one.vn.allocate,
                render(spec.template),
                clusters.get(spec.clusters[0], -1),
            )
            self._join(
                "vnet",
                spec.name,
                vid,
                [clusters.get(spec.clusters[0], -1)],
                spec.clusters,
                clusters,
                "addvnet",
            )
            return
        want = {k: v for k, v in spec.template.items() if k not in ("NAME", "AR")}
        diff = _differs(want, template_dict(vn))
        if diff:
            self._do(
                Change("vnet", spec.name, "update", ", ".join(sorted(diff))),
                self.one.vn.update,
                vn.ID,
                render(diff),
                1,
            )
        ar_want = spec.template["AR"]
        assert isinstance(ar_want, dict)
        ars = list(vn.AR_POOL.AR) if vn.AR_POOL is not None else []
        if not ars:
            self._do(
                Change("vnet", spec.name, "add address range"),
                self.one.vn.add_ar,
                vn.ID,
                render({"AR": ar_want}),
            )
        elif str(ars[0].IP) != ar_want["IP"] or str(ars[0].SIZE) != ar_want["SIZE"]:
            self._do(
                Change("vnet", spec.name, "update address range", f"{ar_want['IP']}+{ar_want['SIZE']}"),
                self.one.vn.update_ar,
                vn.ID,
                render({"AR": {"AR_ID": ars[0].AR_ID, **ar_want}}),
            )
        self._join("vnet", spec.name, vn.ID, list(vn.CLUSTERS.ID), spec.clusters, clusters, "addvnet")

    def _hook(self, spec: HookSpec) -> None:
        pool = self._read(self.one.hookpool.info, "listing hooks", -2, -1, -1)
        hook = next((h for h in pool.HOOK if spec.name == h.NAME), None)
        if hook is None:
            self._do(Change("hook", spec.name, "create"), self.one.hook.allocate, render(spec.template))
            return
        want = {k: v for k, v in spec.template.items() if k != "NAME"}
        if str(getattr(hook, "TYPE", want["TYPE"])) != want["TYPE"]:
            raise B2ctError(
                f"hook {spec.name} (id {hook.ID}) is a {hook.TYPE} hook, not a {want['TYPE']} hook",
                where=self.endpoint,
                hint=f"a hook's type cannot be updated: remove it (onehook delete {hook.ID}) and run again",
            )
        # oned keeps TYPE beside the template (<HOOK><TYPE>), not inside it: compare the rest.
        diff = _differs({k: v for k, v in want.items() if k != "TYPE"}, template_dict(hook))
        if diff:
            # A hook's template is replaced whole (update type 0): its keys are all ours.
            self._do(
                Change("hook", spec.name, "update", ", ".join(sorted(diff))),
                self.one.hook.update,
                hook.ID,
                render(want),
                0,
            )

    def _hosts(self, plan: CloudPlan, clusters: dict[str, int]) -> None:
        pool = self._read(self.one.hostpool.info, "listing hosts")
        have = {h.NAME: h for h in pool.HOST}
        for spec in plan.hosts:
            cid = clusters.get(spec.cluster)
            h = have.get(spec.name)
            if h is None:
                self._do(
                    Change("host", spec.name, "create", f"cluster {spec.cluster}"),
                    self.one.host.allocate if cid is not None else None,
                    spec.name,
                    spec.im_mad,
                    spec.vm_mad,
                    cid,
                )
                continue
            if (spec.im_mad, spec.vm_mad) != (h.IM_MAD, h.VM_MAD):
                raise B2ctError(
                    f"host {spec.name} is registered with drivers {h.IM_MAD}/{h.VM_MAD}, not "
                    f"{spec.im_mad}/{spec.vm_mad}",
                    where=self.endpoint,
                    hint=f"remove it (onehost delete {spec.name}) and run again",
                )
            if cid != h.CLUSTER_ID:
                self._do(
                    Change("host", spec.name, f"join {spec.cluster}", f"was in {h.CLUSTER}"),
                    self.one.cluster.addhost if cid is not None else None,
                    cid,
                    h.ID,
                )


def apply_site(
    site: Site,
    inventory: Path,
    *,
    auth: str | Path | None = None,
    endpoint: str | None = None,
    check: bool = False,
) -> tuple[str, list[Change]]:
    """`b2ct cloud apply` for a loaded site: (endpoint, changes). For callers such as `b2ct demo`.

    The plan is built before anything is read or connected, so bad input fails without a call to oned.
    """
    the_plan = plan.build(site)
    ep = endpoint or client.endpoint_for(site)
    one = client.connect(ep, client.session_for(site, inventory, auth))
    return ep, Reconciler(one, ep, check=check).apply(the_plan)
