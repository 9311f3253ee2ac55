"""Parse libvirt's capabilities XML (virConnectGetCapabilities) into the few facts the checks need."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from b2ct.errors import B2ctError


@dataclass(frozen=True)
class Guest:
    os_type: str
    arch: str
    domain_types: tuple[str, ...]
    emulator: str


@dataclass(frozen=True)
class Capabilities:
    host_arch: str
    cpu_vendor: str
    cpu_model: str
    cpu_features: frozenset[str]
    guests: tuple[Guest, ...]

    def domain_types(self, arch: str | None = None, os_type: str = "hvm") -> set[str]:
        arch = arch or self.host_arch
        return {t for g in self.guests if g.arch == arch and g.os_type == os_type for t in g.domain_types}

    @property
    def kvm(self) -> bool:
        return "kvm" in self.domain_types()

    @property
    def virt_flag(self) -> str | None:
        """The CPU virtualization extension libvirt sees on the host CPU: vmx (Intel) or svm (AMD)."""
        for flag in ("vmx", "svm"):
            if flag in self.cpu_features:
                return flag
        return None


def parse(xml: str) -> Capabilities:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise B2ctError(f"unreadable libvirt capabilities XML: {exc}") from exc
    if root.tag != "capabilities":
        raise B2ctError(f"not libvirt capabilities XML (root element <{root.tag}>)")
    cpu = root.find("host/cpu")
    host_arch = (cpu.findtext("arch") if cpu is not None else None) or ""
    vendor = (cpu.findtext("vendor") if cpu is not None else None) or ""
    model = (cpu.findtext("model") if cpu is not None else None) or ""
    features = (
        frozenset(f.get("name", "") for f in cpu.findall("feature")) if cpu is not None else frozenset()
    )
    guests = []
    for g in root.findall("guest"):
        os_type = g.findtext("os_type") or ""
        for arch in g.findall("arch"):
            guests.append(
                Guest(
                    os_type=os_type,
                    arch=arch.get("name", ""),
                    domain_types=tuple(d.get("type", "") for d in arch.findall("domain")),
                    emulator=arch.findtext("emulator") or "",
                )
            )
    return Capabilities(host_arch, vendor, model, features, tuple(guests))
