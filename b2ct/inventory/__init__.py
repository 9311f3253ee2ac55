"""Inventory: a standard Ansible YAML inventory validated into one typed Site model."""

from b2ct.inventory.load import HOST_SETTINGS, SITE_SETTINGS, load
from b2ct.inventory.model import (
    RELEASES,
    Belle2,
    Bond,
    Brick,
    GlusterVolume,
    Host,
    Network,
    Nic,
    OpenNebulaSettings,
    OpenNebulaVnet,
    Release,
    Rocci,
    Site,
    Squid,
)

__all__ = [
    "HOST_SETTINGS",
    "RELEASES",
    "SITE_SETTINGS",
    "Belle2",
    "Bond",
    "Brick",
    "GlusterVolume",
    "Host",
    "Network",
    "Nic",
    "OpenNebulaSettings",
    "OpenNebulaVnet",
    "Release",
    "Rocci",
    "Site",
    "Squid",
    "load",
]
