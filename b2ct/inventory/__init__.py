"""Inventory: a standard Ansible YAML inventory validated into one typed Site model."""

from b2ct.inventory.load import HOST_SETTINGS, SITE_SETTINGS, load
from b2ct.inventory.model import RELEASES, Brick, GlusterVolume, Host, Network, Nic, Release, Site, Squid

__all__ = [
    "HOST_SETTINGS",
    "RELEASES",
    "SITE_SETTINGS",
    "Brick",
    "GlusterVolume",
    "Host",
    "Network",
    "Nic",
    "Release",
    "Site",
    "Squid",
    "load",
]
