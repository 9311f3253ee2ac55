"""DIRAC's cloud computing element (CloudCE) for this site: the configuration block, from the inventory and
the live cloud objects.

What DIRAC reads, and how (DIRAC v9, src/DIRAC/Resources/Computing/CloudComputingElement.py, whose module
docstring is the CloudCE's documentation page, and src/DIRAC/Resources/Computing/CloudProviders/
OpenNebula.py, the OpenNebula XML-RPC driver, "OpenNebula_6_0_NodeDriver"):

- ``CEType = Cloud``; ``CloudType`` = the driver's dotted class path (CloudCE registers it with libcloud);
- ``Driver_*`` options go, prefix stripped, to the libcloud driver's constructor as the strings the
  configuration holds: ``Driver_host``, ``Driver_port``, ``Driver_secure``. libcloud's Connection turns
  ``secure`` into ``secure and 1 or 0``: the string "False" means TLS. A plain-HTTP endpoint therefore gets
  an empty ``Driver_secure`` (the only false string); the driver always posts to the path ``/RPC2``;
- ``Instance_Image`` / ``Instance_Flavor`` are "the raw ID ... or the name ... prefixed by name:". The
  ids are written (libcloud's NodeImage/NodeSize keep them as strings, as CloudCE compares them): a name
  is matched against every user's images and templates (the driver lists them with filter -2), so another
  user's object of the same name could be taken; the names go into comments;
- the driver instantiates the template (``one.template.instantiate``), so the template's DISK and NIC decide
  the image and the network. ``Instance_Networks`` is not written: CloudCE would call the driver's
  ``ex_list_networks``, which the XML-RPC driver does not provide;
- the instantiation passes ``CONTEXT = [USERDATA, NETWORK]``, which replaces the template's whole CONTEXT
  (OpenNebula's Template::merge erases an attribute of the same name). The CVMFS proxies of the template's
  context never reach DIRAC's VMs: they go into the cloud-init user data, i.e. the ``Context_Template``.
  DIRAC's own template writes ``CVMFS_HTTP_PROXY="auto;DIRECT"``; ``site_context_template`` rewrites that
  file entry of the site's copy of it with the site squids;
- the driver reads every template's CPU with ``int()`` when it lists flavours (``_to_sizes``): one
  template with a fractional CPU (0.5) among those DIRAC's user sees makes every submission fail. The
  exported template's CPU must be whole; other such templates are named in a warning;
- queue ``MaxTotalJobs``: how many VMs of the template the workers hold (CPU and memory of every MONITORED
  host of the template's cluster, and the network's free leases). Site layout: DIRAC's docs/source/
  AdministratorGuide/Resources/site.rst and computingelements.rst.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import yaml

from b2ct.errors import B2ctError
from b2ct.inventory import Site
from b2ct.opennebula.belle2 import squid_proxies
from b2ct.opennebula.client import api_errors, template_dict

CLOUD_TYPE = "DIRAC.Resources.Computing.CloudProviders.OpenNebula.OpenNebula_6_0_NodeDriver"
RPC_PATH = "/RPC2"  # OpenNebula_6_0_NodeDriver's connection endpoint
CVMFS_FILE = "/etc/cvmfs/default.local"
HOST_MONITORED = 2
# oned's IMAGE_STATES (image.xsd) in which VMs cannot use the image; LOCKED (4) is one being copied in
IMAGE_UNUSABLE = {3: "DISABLED", 5: "ERROR", 7: "DELETE"}
_SITE_NAME = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_CFG_WORD = re.compile(r"^[A-Za-z0-9_.:/@+-]*$")


@dataclass
class Section:
    """One section of a DIRAC CFG file: options and subsections in order, each with comment lines."""

    options: list[tuple[str, str, list[str]]] = field(default_factory=list)
    sections: list[tuple[str, Section, list[str]]] = field(default_factory=list)

    def option(self, name: str, value: str | int, *comment: str) -> None:
        self.options.append((name, str(value), list(comment)))

    def section(self, name: str, *comment: str) -> Section:
        sub = Section()
        self.sections.append((name, sub, list(comment)))
        return sub

    def render(self, depth: int = 0) -> list[str]:
        pad = "  " * depth
        lines: list[str] = []
        for name, value, comment in self.options:
            lines += [f"{pad}# {c}" for c in comment]
            # DIRAC's CFG has no quoting; a comment must stand on its own line (the parser keeps
            # "value # text" as the value)
            lines.append(f"{pad}{name} = {value}".rstrip())
        for name, sub, comment in self.sections:
            lines += [f"{pad}# {c}" for c in comment]
            lines += [f"{pad}{name}", f"{pad}{{", *sub.render(depth + 1), f"{pad}}}"]
        return lines


@dataclass(frozen=True)
class CloudFacts:
    """What the live cloud says about the template DIRAC will instantiate."""

    template_id: int
    template_name: str
    image_id: int
    image_name: str
    vnet_id: int
    vnet_name: str
    vcpu: int
    capacity: int  # VMs of this template the template's hosts hold
    capacity_why: str
    fractional_cpu: tuple[str, ...] = ()  # other templates whose CPU DIRAC's driver cannot read


def _one(obj: Any, attr: str) -> list[Any]:
    return list(getattr(obj, attr, None) or [])


def _first(value: Any) -> dict[str, Any]:
    """A template's DISK/NIC: pyone gives a dict, or a list of them when there are several."""
    if isinstance(value, list):
        value = value[0] if value else {}
    return dict(value) if isinstance(value, dict) else {}


def cloud_facts(one: Any, endpoint: str, template_name: str) -> CloudFacts:
    """Read the template, its image and network, and the hosts' capacity from oned.

    Raises B2ctError naming the object when the template is missing, its disk or NIC do not name an
    existing image / network, or the image is not usable."""
    with api_errors(endpoint, "reading the template, images, networks and hosts"):
        templates = _one(one.templatepool.info(-2, -1, -1), "VMTEMPLATE")
        images = _one(one.imagepool.info(-2, -1, -1), "IMAGE")
        vnets = _one(one.vnpool.info(-2, -1, -1), "VNET")
        hosts = _one(one.hostpool.info(), "HOST")
    tpl = next((t for t in templates if template_name == t.NAME), None)
    if tpl is None:
        raise B2ctError(
            f"no VM template {template_name!r} in the cloud",
            where=endpoint,
            hint="run b2ct vm register first",
        )
    t = template_dict(tpl)
    disk, nic = _first(t.get("DISK")), _first(t.get("NIC"))
    image = next(
        (i for i in images if str(i.ID) == str(disk.get("IMAGE_ID", "")) or disk.get("IMAGE") == i.NAME), None
    )
    if image is None:
        raise B2ctError(
            f"template {template_name}: its DISK names no existing image ({disk})", where=endpoint
        )
    if int(image.STATE) in IMAGE_UNUSABLE:
        raise B2ctError(
            f"image {image.NAME} (id {image.ID}) is {IMAGE_UNUSABLE[int(image.STATE)]}: VMs cannot use it",
            where=endpoint,
            hint="see `oneimage show`",
        )
    vnet = next(
        (v for v in vnets if str(v.ID) == str(nic.get("NETWORK_ID", "")) or nic.get("NETWORK") == v.NAME),
        None,
    )
    if vnet is None:
        raise B2ctError(
            f"template {template_name}: its NIC names no existing network ({nic})", where=endpoint
        )

    def whole(value: Any) -> bool:
        return re.fullmatch(r"\s*\d+\s*", str(value)) is not None

    if "CPU" in t and not whole(t["CPU"]):
        raise B2ctError(
            f"template {template_name} has CPU = {t['CPU']}: DIRAC's OpenNebula driver reads a template's "
            "CPU with int() when it lists flavours, and fails on it",
            where=endpoint,
            hint="set b2ct_belle2.cpu to a whole number of cores and run b2ct vm register",
        )
    others = tuple(
        str(o.NAME)
        for o in templates
        if o is not tpl and "CPU" in template_dict(o) and not whole(template_dict(o)["CPU"])
    )
    cpu, memory_mb, vcpu = float(t.get("CPU", 1)), int(t.get("MEMORY", 0)), int(t.get("VCPU", 1) or 1)
    cluster = re.search(r'CLUSTER_ID\s*=\s*"?(\d+)', str(t.get("SCHED_REQUIREMENTS", "")))
    slots, counted = 0, []
    for h in hosts:
        if int(h.STATE) != HOST_MONITORED or (cluster and int(h.CLUSTER_ID) != int(cluster.group(1))):
            continue
        share = h.HOST_SHARE
        # TOTAL_CPU is in hundredths of a core, TOTAL_MEM in KiB (host.xsd)
        by_cpu = int(int(share.TOTAL_CPU) // (cpu * 100)) if cpu > 0 else 0
        by_mem = int(int(share.TOTAL_MEM) // (memory_mb * 1024)) if memory_mb > 0 else by_cpu
        slots += min(by_cpu, by_mem)
        counted.append(h.NAME)
    leases = sum(int(ar.SIZE) for ar in _one(vnet.AR_POOL, "AR")) - int(vnet.USED_LEASES or 0)
    capacity = min(slots, leases)
    why = (
        f"{slots} VM(s) of CPU {cpu:g} / {memory_mb} MiB on {', '.join(counted) or 'no MONITORED host'}"
        f"; {leases} free lease(s) on {vnet.NAME}"
    )
    return CloudFacts(
        int(tpl.ID), tpl.NAME, int(image.ID), image.NAME, int(vnet.ID), vnet.NAME, vcpu, capacity, why, others
    )


def driver_options(endpoint: str) -> tuple[str, str, str]:
    """(Driver_host, Driver_port, Driver_secure) for ``endpoint``; raises B2ctError for an endpoint the
    driver cannot reach (a path other than /RPC2, a scheme other than http/https)."""
    u = urllib.parse.urlsplit(endpoint)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise B2ctError(f"endpoint {endpoint!r}: DIRAC's driver speaks http or https to a host")
    if (u.path or "/") != RPC_PATH:
        raise B2ctError(
            f"endpoint {endpoint!r}: DIRAC's OpenNebula driver always posts to {RPC_PATH}",
            hint=f"serve oned's XML-RPC at {RPC_PATH} (a proxy may map it)",
        )
    port = u.port or (443 if u.scheme == "https" else 80)
    return u.hostname, str(port), "True" if u.scheme == "https" else ""


def site_context_template(dirac_template: str, site: Site, where: str) -> str:
    """The site's cloud-init template for DIRAC's VMs: ``dirac_template`` (the text of the template
    DIRAC ships, cloudinit.template, or the site's own copy of it) with the CVMFS client file pointing at
    the site squids. Lines of that file other than the proxy settings are kept; the file entry is added
    when the template has none. Raises B2ctError when the text is not a cloud-config mapping with a
    ``write_files`` list, as CloudCE needs."""
    try:
        doc = yaml.safe_load(dirac_template)
    except yaml.YAMLError as exc:
        raise B2ctError(f"not YAML: {' '.join(str(exc).split())}", where=where) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("write_files"), list):
        raise B2ctError("not a cloud-config with a write_files list (CloudCE fills it)", where=where)
    proxy = f'CVMFS_HTTP_PROXY="{squid_proxies(site)}"'
    entry = next((f for f in doc["write_files"] if isinstance(f, dict) and f.get("path") == CVMFS_FILE), None)
    if entry is None:
        entry = {"path": CVMFS_FILE, "content": ""}
        doc["write_files"].append(entry)
    kept = [
        line
        for line in str(entry.get("content", "")).splitlines()
        if line.strip() and not line.startswith(("CVMFS_HTTP_PROXY=", "CVMFS_PAC_URLS="))
    ]
    entry["content"] = "\n".join([*kept, proxy]) + "\n"
    entry.pop("encoding", None)
    return "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def check_names(dirac_site: str, ce: str, queue: str, context_template: str | None) -> None:
    """Raise B2ctError for a DIRAC site name that is not Domain.Site.co (DIRAC's site.rst), or a CE, queue
    or template path the CFG syntax cannot carry (it has no quoting)."""
    if not _SITE_NAME.match(dirac_site):
        raise B2ctError(
            f"--site {dirac_site!r}: DIRAC site names are Domain.Site.co (e.g. CLOUD.Torino.it)",
            hint="letters, digits, '_' and '-' in each of the three parts (DIRAC's site.rst)",
        )
    for what, word in (("--ce", ce), ("--queue", queue), ("--context-template-path", context_template)):
        if word is None and what == "--context-template-path":
            continue
        if not word or not _CFG_WORD.match(word):
            raise B2ctError(f"{what} {word!r}: letters, digits and . _ - : / @ + only")


def render_cfg(
    site: Site,
    endpoint: str,
    facts: CloudFacts,
    *,
    dirac_site: str,
    ce: str,
    queue: str,
    context_template: str | None,
) -> str:
    """The ``Resources/Sites`` block for DIRAC's configuration, as text. Raises B2ctError for a DIRAC
    site name that is not Domain.Site.co or names the CFG syntax cannot carry."""
    check_names(dirac_site, ce, queue, context_template)
    host, port, secure = driver_options(endpoint)
    domain = dirac_site.split(".", 1)[0]
    root = Section()
    sites = root.section(
        "Resources",
        f"DIRAC CloudCE for site {site.name}: written by `b2ct cloud export-dirac` from {endpoint}",
        f"on {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}; see docs/dirac.md",
        f"cloud.auth on the DIRAC server: a section [{ce}] with key = <OpenNebula user>, secret = <password>",
    ).section("Sites")
    s = sites.section(domain).section(dirac_site)
    s.option("Name", site.name)
    s.option("CE", ce)
    c = s.section("CEs").section(ce)
    c.option("CEType", "Cloud")
    c.option("CloudType", CLOUD_TYPE, "DIRAC's OpenNebula XML-RPC driver (libcloud)")
    c.option("Driver_host", host)
    c.option("Driver_port", port)
    c.option(
        "Driver_secure",
        secure,
        'empty: plain HTTP (libcloud reads any non-empty string, "False" too, as TLS)'
        if not secure
        else "TLS",
    )
    c.option(
        "Instance_Image",
        facts.image_id,
        f"image {facts.image_name}: by id, since a name may also be another user's image",
    )
    c.option(
        "Instance_Flavor",
        facts.template_id,
        f"template {facts.template_name}, instantiated as it is: its NIC puts the VMs on vnet "
        f"{facts.vnet_name} (id {facts.vnet_id})",
    )
    if context_template:
        c.option(
            "Context_Template",
            context_template,
            f"cloud-init for the VMs: CVMFS through the site squids ({squid_proxies(site)})",
        )
    c.option("architecture", "x86_64")
    c.option("NumberOfProcessors", facts.vcpu, "the template's VCPU")
    q = c.section("Queues").section(queue)
    q.option("MaxTotalJobs", facts.capacity, f"what the cloud holds: {facts.capacity_why}")
    return "\n".join(root.render()) + "\n"
