"""A local stand-in for OpenNebula's oned XML-RPC API (test double).

OpenNebula's daemon and packages cannot be had on our machines (no OpenNebula repositories), so the
API-object logic is tested against this server with the real pyone client. It answers the methods
b2ct calls with responses shaped as OpenNebula 6.10/7.0 documents them: every call returns
``[success, body_or_error, error_code]``; ``*.info`` bodies are XML following the published schemas
(cluster.xsd, datastore.xsd, host.xsd, vnet.xsd, image.xsd, vmtemplate.xsd, vm.xsd and their pools),
parsed by pyone's bindings generated from those schemas; error codes are the documented ones
(0x0100 AUTHENTICATION, 0x0400 NO_EXISTS, 0x0800 ACTION, 0x1000 XML_RPC_API, 0x4000 ALLOCATE).

A fresh oned has cluster 0 "default" and datastores 0 "system", 1 "default", 2 "files"; user objects
of those pools are numbered from 100, hosts/vnets/images/templates/VMs from 0 — as here.

VM life is simulated with the clock: a VM is scheduled on the first enabled host of the template's
cluster (or any) and becomes RUNNING ``boot_delay`` seconds after instantiation; seeded VMs may end
by themselves after a given time (a drained host empties); live migration takes ``migrate_delay``.
Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from b2ct.opennebula.template import parse as parse_template

AUTHENTICATION, AUTHORIZATION, NO_EXISTS, ACTION, XML_RPC_API, INTERNAL, ALLOCATE = (
    0x0100,
    0x0200,
    0x0400,
    0x0800,
    0x1000,
    0x2000,
    0x4000,
)

HOST_MONITORED, HOST_DISABLED, HOST_OFFLINE = 2, 4, 8
VM_PENDING, VM_ACTIVE, VM_DONE = 1, 3, 6
LCM_INIT, LCM_RUNNING, LCM_MIGRATE = 0, 3, 4


class Fail(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Obj:
    id: int
    name: str
    template: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


def _xml_value(key: str, value: Any) -> str:
    if isinstance(value, list):
        return "".join(_xml_value(key, v) for v in value)
    if isinstance(value, dict):
        return f"<{key}>" + "".join(_xml_value(k, v) for k, v in value.items()) + f"</{key}>"
    return f"<{key}><![CDATA[{value}]]></{key}>"


def _template_xml(template: dict[str, Any], tag: str = "TEMPLATE") -> str:
    return f"<{tag}>" + "".join(_xml_value(k, v) for k, v in template.items()) + f"</{tag}>"


def _ids(tag: str, ids: list[int]) -> str:
    return f"<{tag}>" + "".join(f"<ID>{i}</ID>" for i in ids) + f"</{tag}>"


_PERMS = (
    "<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A><GROUP_U>0</GROUP_U>"
    "<GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A>"
    "</PERMISSIONS>"
)
_OWNER = "<UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>"


class FakeOned:
    """The state and the API; ``start()`` serves it on 127.0.0.1 and returns the endpoint URL."""

    def __init__(
        self,
        version: str = "6.10.0",
        user: str = "oneadmin",
        password: str = "opennebula",
        boot_delay: float = 0.3,
        migrate_delay: float = 0.2,
    ):
        self.version = version
        self.session = f"{user}:{password}"
        self.boot_delay = boot_delay
        self.migrate_delay = migrate_delay
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.lock = threading.RLock()
        self.pools: dict[str, dict[int, Obj]] = {
            k: {} for k in ("cluster", "datastore", "host", "vn", "image", "template", "vm")
        }
        self.next_id = {
            "cluster": 100,
            "datastore": 100,
            "host": 0,
            "vn": 0,
            "image": 0,
            "template": 0,
            "vm": 0,
        }
        self.pools["cluster"][0] = Obj(0, "default", {}, {"hosts": [], "datastores": [0, 1, 2], "vnets": []})
        for i, name, typ, tm in (
            (0, "system", "1", "ssh"),
            (1, "default", "0", "ssh"),
            (2, "files", "2", "ssh"),
        ):
            self.pools["datastore"][i] = Obj(
                i,
                name,
                {"TYPE": ["IMAGE_DS", "SYSTEM_DS", "FILE_DS"][int(typ)], "TM_MAD": tm, "DS_MAD": "fs"},
                {"type": int(typ), "clusters": [0]},
            )
        self._server: SimpleXMLRPCServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ server

    def start(self) -> str:
        class Quiet(SimpleXMLRPCRequestHandler):
            rpc_paths = ("/RPC2",)

            def log_message(self, *args: Any) -> None:
                pass

        server = SimpleXMLRPCServer(
            ("127.0.0.1", 0), requestHandler=Quiet, allow_none=False, logRequests=False
        )
        server.register_instance(self)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-oned", daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{server.server_address[1]}/RPC2"

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[FakeOned]:
        """A started double with its endpoint in ``.url``, stopped afterwards (the tests' fixture)."""
        server = cls()
        server.url = server.start()  # type: ignore[attr-defined]
        try:
            yield server
        finally:
            server.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> list[Any]:
        with self.lock:
            self.calls.append((method, tuple(params[1:])))
            if not params or params[0] != self.session:
                return [False, f"[{method}] User couldn't be authenticated, aborting call.", AUTHENTICATION]
            handler = getattr(self, "m_" + method.removeprefix("one.").replace(".", "_"), None)
            if handler is None:
                return [False, f"[{method}] method not implemented by the test server", XML_RPC_API]
            self._tick()
            try:
                return [True, handler(*params[1:]), 0]
            except Fail as exc:
                return [False, f"[{method}] {exc}", exc.code]
            except TypeError as exc:
                return [False, f"[{method}] wrong parameters: {exc}", XML_RPC_API]

    def changing_calls(self) -> list[str]:
        """Methods called that change state (not info/version): compare-then-update must make none twice."""
        return [m for m, _ in self.calls if not (m.endswith(".info") or m.endswith("version"))]

    # ------------------------------------------------------------------------------------------ helpers

    def _get(self, pool: str, oid: int, what: str) -> Obj:
        if not isinstance(oid, int) or oid not in self.pools[pool]:
            raise Fail(NO_EXISTS, f"Error getting {what} [{oid}].")
        return self.pools[pool][oid]

    def _new(self, pool: str, name: str, kind: str, template: dict[str, Any], **attrs: Any) -> Obj:
        for o in self.pools[pool].values():
            if o.name == name and not (pool == "vm"):
                raise Fail(
                    ALLOCATE,
                    f"Error allocating a new {kind.lower()}. NAME is already taken by {kind.upper()} {o.id}.",
                )
        oid = self.next_id[pool]
        self.next_id[pool] += 1
        obj = Obj(oid, name, template, attrs)
        self.pools[pool][oid] = obj
        return obj

    @staticmethod
    def _merge(obj: Obj, text: str, kind: int) -> None:
        new = parse_template(text)
        new.pop("NAME", None)
        if kind == 1:
            obj.template.update(new)
        elif kind == 0:
            obj.template = new
        else:
            raise Fail(XML_RPC_API, f"Wrong update type {kind}")

    def _tick(self) -> None:
        now = time.monotonic()
        for vm in self.pools["vm"].values():
            a = vm.attrs
            if a["state"] == VM_DONE:
                continue
            if a.get("ends_at") is not None and now >= a["ends_at"]:
                self._end_vm(vm)
                continue
            if a["state"] == VM_PENDING and now >= a["created"] + self.boot_delay:
                host = self._schedulable(a.get("cluster"))
                if host is not None:
                    a.update(state=VM_ACTIVE, lcm=LCM_RUNNING, host=host.id)
                    host.attrs["vms"].append(vm.id)
            if a["lcm"] == LCM_MIGRATE and now >= a["migrate_at"]:
                old = self.pools["host"][a["host"]]
                old.attrs["vms"].remove(vm.id)
                a.update(host=a.pop("migrate_to"), lcm=LCM_RUNNING)
                self.pools["host"][a["host"]].attrs["vms"].append(vm.id)

    def _schedulable(self, cluster: int | None) -> Obj | None:
        for h in self.pools["host"].values():
            if h.attrs["state"] == HOST_MONITORED and (cluster is None or h.attrs["cluster"] == cluster):
                return h
        return None

    def _end_vm(self, vm: Obj) -> None:
        if vm.attrs.get("host") is not None:
            host = self.pools["host"][vm.attrs["host"]]
            if vm.id in host.attrs["vms"]:
                host.attrs["vms"].remove(vm.id)
        vm.attrs.update(state=VM_DONE, lcm=LCM_INIT)

    def seed_vm(self, host_name: str, name: str = "job", lifetime: float | None = None) -> int:
        """Put a running VM on a host (test set-up); it ends by itself after ``lifetime`` seconds."""
        with self.lock:
            host = next(h for h in self.pools["host"].values() if h.name == host_name)
            vm = self._new(
                "vm",
                name,
                "VM",
                {},
                state=VM_ACTIVE,
                lcm=LCM_RUNNING,
                host=host.id,
                created=time.monotonic(),
                cluster=host.attrs["cluster"],
                ends_at=None if lifetime is None else time.monotonic() + lifetime,
            )
            host.attrs["vms"].append(vm.id)
            return vm.id

    # ------------------------------------------------------------------------------------------- system

    def m_system_version(self) -> str:
        return self.version

    # ------------------------------------------------------------------------------------------ cluster

    def _cluster_xml(self, c: Obj) -> str:
        a = c.attrs
        return (
            f"<CLUSTER><ID>{c.id}</ID><NAME>{escape(c.name)}</NAME>{_ids('HOSTS', a['hosts'])}"
            f"{_ids('DATASTORES', a['datastores'])}{_ids('VNETS', a['vnets'])}"
            f"{_template_xml(c.template)}</CLUSTER>"
        )

    def m_clusterpool_info(self) -> str:
        return (
            "<CLUSTER_POOL>"
            + "".join(self._cluster_xml(c) for c in self.pools["cluster"].values())
            + "</CLUSTER_POOL>"
        )

    def m_cluster_info(self, oid: int, decrypt: bool = False) -> str:
        return self._cluster_xml(self._get("cluster", oid, "cluster"))

    def m_cluster_allocate(self, name: str) -> int:
        return self._new("cluster", name, "CLUSTER", {}, hosts=[], datastores=[], vnets=[]).id

    def _move(self, pool: str, key: str, cid: int, oid: int, what: str, exclusive: bool) -> int:
        cluster = self._get("cluster", cid, "cluster")
        obj = self._get(pool, oid, what)
        if exclusive:  # a host (or vnet/datastore in the default cluster) belongs to one cluster
            for c in self.pools["cluster"].values():
                if oid in c.attrs[key] and (c.id != cid) and (pool == "host" or c.id == 0):
                    c.attrs[key].remove(oid)
                    if pool != "host":
                        obj.attrs["clusters"].remove(c.id)
        if oid not in cluster.attrs[key]:
            cluster.attrs[key].append(oid)
        if pool == "host":
            obj.attrs["cluster"] = cid
        elif cid not in obj.attrs["clusters"]:
            obj.attrs["clusters"].append(cid)
        return cid

    def m_cluster_addhost(self, cid: int, hid: int) -> int:
        return self._move("host", "hosts", cid, hid, "host", True)

    def m_cluster_adddatastore(self, cid: int, dsid: int) -> int:
        return self._move("datastore", "datastores", cid, dsid, "datastore", True)

    def m_cluster_addvnet(self, cid: int, vnid: int) -> int:
        return self._move("vn", "vnets", cid, vnid, "virtual network", True)

    # ---------------------------------------------------------------------------------------- datastore

    def _ds_xml(self, d: Obj) -> str:
        t = d.template
        return (
            f"<DATASTORE><ID>{d.id}</ID>{_OWNER}<NAME>{escape(d.name)}</NAME>{_PERMS}"
            f"<DS_MAD><![CDATA[{t.get('DS_MAD', '-')}]]></DS_MAD>"
            f"<TM_MAD><![CDATA[{t.get('TM_MAD', '')}]]></TM_MAD>"
            f"<BASE_PATH><![CDATA[/var/lib/one//datastores/{d.id}]]></BASE_PATH><TYPE>{d.attrs['type']}</TYPE>"
            f"<DISK_TYPE>0</DISK_TYPE><STATE>0</STATE>{_ids('CLUSTERS', d.attrs['clusters'])}"
            f"<TOTAL_MB>0</TOTAL_MB><FREE_MB>0</FREE_MB><USED_MB>0</USED_MB>"
            f"{_ids('IMAGES', [i.id for i in self.pools['image'].values() if i.attrs['ds'] == d.id])}"
            f"{_template_xml(d.template)}</DATASTORE>"
        )

    def m_datastorepool_info(self) -> str:
        return (
            "<DATASTORE_POOL>"
            + "".join(self._ds_xml(d) for d in self.pools["datastore"].values())
            + "</DATASTORE_POOL>"
        )

    def m_datastore_info(self, oid: int, decrypt: bool = False) -> str:
        return self._ds_xml(self._get("datastore", oid, "datastore"))

    def m_datastore_allocate(self, text: str, cid: int = -1) -> int:
        t = parse_template(text)
        if "NAME" not in t:
            raise Fail(INTERNAL, "No NAME in template for Datastore.")
        if "TM_MAD" not in t:
            raise Fail(INTERNAL, "No TM_MAD in template.")
        typ = {"IMAGE_DS": 0, "SYSTEM_DS": 1, "FILE_DS": 2}.get(t.get("TYPE", "IMAGE_DS"))
        if typ is None:
            raise Fail(INTERNAL, f"Wrong datastore TYPE {t.get('TYPE')}")
        cid = 0 if cid == -1 else cid
        self._get("cluster", cid, "cluster")
        d = self._new("datastore", t.pop("NAME"), "DATASTORE", t, type=typ, clusters=[])
        self._move("datastore", "datastores", cid, d.id, "datastore", False)
        return d.id

    def m_datastore_update(self, oid: int, text: str, kind: int = 0) -> int:
        self._merge(self._get("datastore", oid, "datastore"), text, kind)
        return oid

    def m_datastore_rename(self, oid: int, name: str) -> int:
        obj = self._get("datastore", oid, "datastore")
        if any(o.name == name and o.id != oid for o in self.pools["datastore"].values()):
            raise Fail(ACTION, f"Cannot rename datastore. NAME is already taken by DATASTORE {oid}.")
        obj.name = name
        return oid

    # --------------------------------------------------------------------------------------------- host

    def _host_xml(self, h: Obj) -> str:
        a = h.attrs
        cluster = self.pools["cluster"][a["cluster"]].name
        share = (
            "<HOST_SHARE><MEM_USAGE>0</MEM_USAGE><CPU_USAGE>0</CPU_USAGE><TOTAL_MEM>0</TOTAL_MEM>"
            "<TOTAL_CPU>0</TOTAL_CPU><MAX_MEM>0</MAX_MEM><MAX_CPU>0</MAX_CPU>"
            f"<RUNNING_VMS>{len(a['vms'])}</RUNNING_VMS><VMS_THREAD>0</VMS_THREAD>"
            "<DATASTORES><DISK_USAGE>0</DISK_USAGE><FREE_DISK>0</FREE_DISK><MAX_DISK>0</MAX_DISK>"
            "<USED_DISK>0</USED_DISK></DATASTORES><PCI_DEVICES/><NUMA_NODES/></HOST_SHARE>"
        )
        return (
            f"<HOST><ID>{h.id}</ID><NAME>{escape(h.name)}</NAME><STATE>{a['state']}</STATE>"
            f"<PREV_STATE>{a.get('prev', a['state'])}</PREV_STATE><IM_MAD><![CDATA[{a['im']}]]></IM_MAD>"
            f"<VM_MAD><![CDATA[{a['vmm']}]]></VM_MAD><CLUSTER_ID>{a['cluster']}</CLUSTER_ID>"
            f"<CLUSTER>{escape(cluster)}</CLUSTER>{share}{_ids('VMS', a['vms'])}"
            f"{_template_xml(h.template)}<MONITORING/></HOST>"
        )

    def m_hostpool_info(self) -> str:
        return (
            "<HOST_POOL>" + "".join(self._host_xml(h) for h in self.pools["host"].values()) + "</HOST_POOL>"
        )

    def m_host_info(self, oid: int, decrypt: bool = False) -> str:
        return self._host_xml(self._get("host", oid, "host"))

    def m_host_allocate(self, name: str, im: str, vmm: str, cid: int = -1) -> int:
        cid = 0 if cid == -1 else cid
        self._get("cluster", cid, "cluster")
        h = self._new("host", name, "HOST", {}, state=HOST_MONITORED, im=im, vmm=vmm, cluster=cid, vms=[])
        self.pools["cluster"][cid].attrs["hosts"].append(h.id)
        return h.id

    def m_host_status(self, oid: int, status: int) -> int:
        h = self._get("host", oid, "host")
        states = {0: HOST_MONITORED, 1: HOST_DISABLED, 2: HOST_OFFLINE}
        if status not in states:
            raise Fail(XML_RPC_API, f"Wrong status {status}")
        h.attrs["prev"] = h.attrs["state"]
        h.attrs["state"] = states[status]
        return oid

    # --------------------------------------------------------------------------------------------- vnet

    def _vn_xml(self, v: Obj) -> str:
        a = v.attrs
        ars = "".join(
            f"<AR><AR_ID>{i}</AR_ID><IP><![CDATA[{ar.get('IP', '')}]]></IP>"
            f"<MAC><![CDATA[02:00:00:00:00:{i:02x}]]>"
            f"</MAC><SIZE>{ar.get('SIZE', '1')}</SIZE><TYPE><![CDATA[{ar.get('TYPE', 'IP4')}]]></TYPE>"
            f"<USED_LEASES>0</USED_LEASES><LEASES/></AR>"
            for i, ar in enumerate(a["ars"])
        )
        return (
            f"<VNET><ID>{v.id}</ID>{_OWNER}<NAME>{escape(v.name)}</NAME>{_PERMS}"
            f"{_ids('CLUSTERS', a['clusters'])}<BRIDGE><![CDATA[{v.template.get('BRIDGE', '')}]]></BRIDGE>"
            f"<BRIDGE_TYPE><![CDATA[linux]]></BRIDGE_TYPE><STATE>1</STATE><PREV_STATE>0</PREV_STATE>"
            f"<PARENT_NETWORK_ID/><VN_MAD><![CDATA[{v.template.get('VN_MAD', '')}]]></VN_MAD><PHYDEV/>"
            f"<VLAN_ID/><OUTER_VLAN_ID/><VLAN_ID_AUTOMATIC>0</VLAN_ID_AUTOMATIC>"
            f"<OUTER_VLAN_ID_AUTOMATIC>0</OUTER_VLAN_ID_AUTOMATIC><USED_LEASES>0</USED_LEASES><VROUTERS/>"
            f"<UPDATED_VMS/><OUTDATED_VMS/><UPDATING_VMS/><ERROR_VMS/>"
            f"{_template_xml(v.template)}<AR_POOL>{ars}</AR_POOL></VNET>"
        )

    def m_vnpool_info(self, flt: int = -2, start: int = -1, end: int = -1) -> str:
        return "<VNET_POOL>" + "".join(self._vn_xml(v) for v in self.pools["vn"].values()) + "</VNET_POOL>"

    def m_vn_info(self, oid: int, decrypt: bool = False) -> str:
        return self._vn_xml(self._get("vn", oid, "virtual network"))

    def m_vn_allocate(self, text: str, cid: int = -1) -> int:
        t = parse_template(text)
        if "NAME" not in t:
            raise Fail(INTERNAL, "No NAME in template for Virtual Network.")
        if "VN_MAD" not in t:
            raise Fail(INTERNAL, "No VN_MAD in template for Virtual Network.")
        ars = t.pop("AR", [])
        ars = ars if isinstance(ars, list) else [ars]
        cid = 0 if cid == -1 else cid
        self._get("cluster", cid, "cluster")
        v = self._new("vn", t.pop("NAME"), "NET", t, clusters=[], ars=ars)
        self._move("vn", "vnets", cid, v.id, "virtual network", False)
        return v.id

    def m_vn_update(self, oid: int, text: str, kind: int = 0) -> int:
        self._merge(self._get("vn", oid, "virtual network"), text, kind)
        return oid

    def m_vn_update_ar(self, oid: int, text: str) -> int:
        v = self._get("vn", oid, "virtual network")
        ar = parse_template(text)["AR"]
        i = int(ar.pop("AR_ID", "-1"))
        if not 0 <= i < len(v.attrs["ars"]):
            raise Fail(ACTION, f"Cannot update address range. Address Range with ID {i} does not exist.")
        v.attrs["ars"][i].update(ar)
        return oid

    def m_vn_add_ar(self, oid: int, text: str) -> int:
        v = self._get("vn", oid, "virtual network")
        v.attrs["ars"].append(parse_template(text)["AR"])
        return oid

    # -------------------------------------------------------------------------------- image / template

    def _image_xml(self, i: Obj) -> str:
        ds = self.pools["datastore"][i.attrs["ds"]]
        return (
            f"<IMAGE><ID>{i.id}</ID>{_OWNER}<NAME>{escape(i.name)}</NAME><LOCK/>{_PERMS}"
            f"<TYPE>{ {'OS': 0, 'CDROM': 1, 'DATABLOCK': 2}.get(i.template.get('TYPE', 'OS'), 0) }</TYPE>"
            f"<DISK_TYPE>0</DISK_TYPE><PERSISTENT>0</PERSISTENT><REGTIME>0</REGTIME><MODTIME>0</MODTIME>"
            f"<SOURCE><![CDATA[/var/lib/one//datastores/{ds.id}/{i.id:032x}]]></SOURCE>"
            f"<PATH><![CDATA[{i.template.get('PATH', '')}]]></PATH>"
            f"<FORMAT><![CDATA[{i.template.get('FORMAT', 'qcow2')}]]></FORMAT><FS/>"
            f"<SIZE>2048</SIZE><STATE>1</STATE><PREV_STATE>0</PREV_STATE><RUNNING_VMS>0</RUNNING_VMS>"
            f"<CLONING_OPS>0</CLONING_OPS><CLONING_ID>-1</CLONING_ID><TARGET_SNAPSHOT>-1</TARGET_SNAPSHOT>"
            f"<DATASTORE_ID>{ds.id}</DATASTORE_ID><DATASTORE>{escape(ds.name)}</DATASTORE>"
            f"<VMS/><CLONES/><APP_CLONES/>{_template_xml(i.template)}<SNAPSHOTS><ALLOW_ORPHANS>NO"
            f"</ALLOW_ORPHANS><CURRENT_BASE>-1</CURRENT_BASE><NEXT_SNAPSHOT>0</NEXT_SNAPSHOT></SNAPSHOTS>"
            f"</IMAGE>"
        )

    def m_imagepool_info(self, flt: int = -2, start: int = -1, end: int = -1) -> str:
        return (
            "<IMAGE_POOL>"
            + "".join(self._image_xml(i) for i in self.pools["image"].values())
            + "</IMAGE_POOL>"
        )

    def m_image_info(self, oid: int, decrypt: bool = False) -> str:
        return self._image_xml(self._get("image", oid, "image"))

    def m_image_allocate(self, text: str, dsid: int, check_capacity: bool = True) -> int:
        t = parse_template(text)
        ds = self._get("datastore", dsid, "datastore")
        if ds.attrs["type"] != 0:
            raise Fail(ACTION, f"Error allocating a new image. Datastore {dsid} is not an image datastore.")
        if "NAME" not in t or not (t.get("PATH") or t.get("SOURCE")):
            raise Fail(INTERNAL, "Error allocating a new image. No NAME or PATH in template.")
        return self._new("image", t.pop("NAME"), "IMAGE", t, ds=dsid).id

    def m_image_update(self, oid: int, text: str, kind: int = 0) -> int:
        self._merge(self._get("image", oid, "image"), text, kind)
        return oid

    def _tmpl_xml(self, t: Obj) -> str:
        return (
            f"<VMTEMPLATE><ID>{t.id}</ID>{_OWNER}<NAME>{escape(t.name)}</NAME><LOCK/>{_PERMS}"
            f"<REGTIME>0</REGTIME>{_template_xml(t.template)}</VMTEMPLATE>"
        )

    def m_templatepool_info(self, flt: int = -2, start: int = -1, end: int = -1) -> str:
        return (
            "<VMTEMPLATE_POOL>"
            + "".join(self._tmpl_xml(t) for t in self.pools["template"].values())
            + "</VMTEMPLATE_POOL>"
        )

    def m_template_info(self, oid: int, extended: bool = False, decrypt: bool = False) -> str:
        return self._tmpl_xml(self._get("template", oid, "template"))

    def m_template_allocate(self, text: str) -> int:
        t = parse_template(text)
        if "NAME" not in t:
            raise Fail(INTERNAL, "Error allocating a new template. No NAME in template.")
        return self._new("template", t.pop("NAME"), "TEMPLATE", t).id

    def m_template_update(self, oid: int, text: str, kind: int = 0) -> int:
        self._merge(self._get("template", oid, "template"), text, kind)
        return oid

    def m_template_instantiate(
        self, oid: int, name: str = "", hold: bool = False, extra: str = "", persistent: bool = False
    ) -> int:
        tmpl = self._get("template", oid, "template")
        disk = tmpl.template.get("DISK")
        for d in disk if isinstance(disk, list) else [disk] if disk else []:
            if not any(i.name == d.get("IMAGE") for i in self.pools["image"].values()):
                raise Fail(ACTION, f"Cannot get image {d.get('IMAGE')}: image does not exist.")
        cluster = None
        req = str(tmpl.template.get("SCHED_REQUIREMENTS", ""))
        for c in self.pools["cluster"].values():
            if f'CLUSTER_ID = "{c.id}"' in req or f"CLUSTER_ID={c.id}" in req.replace(" ", "").replace(
                '"', ""
            ):
                cluster = c.id
        vm = self._new(
            "vm",
            name or f"{tmpl.name}-{self.next_id['vm']}",
            "VM",
            dict(tmpl.template),
            state=VM_PENDING,
            lcm=LCM_INIT,
            host=None,
            created=time.monotonic(),
            cluster=cluster,
        )
        return vm.id

    # ----------------------------------------------------------------------------------------------- vm

    def _vm_xml(self, vm: Obj) -> str:
        a = vm.attrs
        hist = ""
        if a.get("host") is not None:
            h = self.pools["host"][a["host"]]
            hist = (
                f"<HISTORY><OID>{vm.id}</OID><SEQ>0</SEQ><HOSTNAME>{escape(h.name)}</HOSTNAME><HID>{h.id}</HID>"
                f"<CID>{h.attrs['cluster']}</CID><STIME>0</STIME><ETIME>0</ETIME><VM_MAD>kvm</VM_MAD>"
                f"<TM_MAD>ssh</TM_MAD><DS_ID>0</DS_ID><PSTIME>0</PSTIME><PETIME>0</PETIME><RSTIME>0</RSTIME>"
                f"<RETIME>0</RETIME><ESTIME>0</ESTIME><EETIME>0</EETIME><ACTION>0</ACTION><UID>-1</UID>"
                f"<GID>-1</GID><REQUEST_ID>-1</REQUEST_ID></HISTORY>"
            )
        return (
            f"<VM><ID>{vm.id}</ID>{_OWNER}<NAME>{escape(vm.name)}</NAME>{_PERMS}<LAST_POLL>0</LAST_POLL>"
            f"<STATE>{a['state']}</STATE><LCM_STATE>{a['lcm']}</LCM_STATE><PREV_STATE>{a['state']}</PREV_STATE>"
            f"<PREV_LCM_STATE>{a['lcm']}</PREV_LCM_STATE><RESCHED>0</RESCHED><STIME>0</STIME><ETIME>0</ETIME>"
            f"<DEPLOY_ID/><MONITORING/><TEMPLATE><VMID>{vm.id}</VMID></TEMPLATE>"
            f"{_template_xml(vm.template, 'USER_TEMPLATE')}<HISTORY_RECORDS>{hist}</HISTORY_RECORDS></VM>"
        )

    def m_vm_info(self, oid: int, decrypt: bool = False) -> str:
        return self._vm_xml(self._get("vm", oid, "virtual machine"))

    def m_vmpool_info(
        self, flt: int = -2, start: int = -1, end: int = -1, state: int = -1, *rest: Any
    ) -> str:
        vms = [v for v in self.pools["vm"].values() if (state == -2 or v.attrs["state"] != VM_DONE)]
        return "<VM_POOL>" + "".join(self._vm_xml(v) for v in vms) + "</VM_POOL>"

    def m_vm_action(self, action: str, oid: int) -> int:
        vm = self._get("vm", oid, "virtual machine")
        if action in ("terminate", "terminate-hard"):
            self._end_vm(vm)
            return oid
        raise Fail(XML_RPC_API, f"action {action} not supported by the test server")

    def m_vm_migrate(
        self, oid: int, hid: int, live: bool = False, enforce: bool = False, dsid: int = -1, mtype: int = 0
    ) -> int:
        vm = self._get("vm", oid, "virtual machine")
        target = self._get("host", hid, "host")
        if vm.attrs["state"] != VM_ACTIVE or vm.attrs["lcm"] != LCM_RUNNING:
            raise Fail(
                ACTION,
                f'Error performing action "migrate": This action is not available for state '
                f"{vm.attrs['state']}",
            )
        if enforce and target.attrs["state"] != HOST_MONITORED:
            raise Fail(ACTION, f"Host {hid} is not enabled.")
        vm.attrs.update(lcm=LCM_MIGRATE, migrate_to=hid, migrate_at=time.monotonic() + self.migrate_delay)
        return oid
