"""b2ct: turn a rack of bare servers into an OpenNebula/KVM cloud.

Its data (templates, tables, roles, playbooks, inventories) is found through b2ct.resources.
"""

__version__ = "0.1.0"
