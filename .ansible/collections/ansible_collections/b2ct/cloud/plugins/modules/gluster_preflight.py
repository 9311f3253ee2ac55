#!/usr/bin/python
# ruff: noqa: E402 - Ansible modules put their imports after the documentation strings
"""Ansible module: refuse bad GlusterFS volumes and unsafe brick paths before anything is changed."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gluster_preflight
short_description: Check GlusterFS volumes and brick paths before anything is changed
description:
  - Fails on volumes gluster would reject halfway (replica not dividing the brick count, a brick listed
    twice or in two volumes, two replicas on one host, a volume name defined twice).
  - Fails when a brick of this host would sit on the root filesystem (unless O(force)), or is a mount
    point itself (an unmounted brick filesystem would make gluster fill the root filesystem).
  - With O(identities) (every brick host's M(b2ct.cloud.gluster_facts)), fails when a brick carries another or
    an older volume's identity, when hosts belong to different trusted pools, or when a host's glusterd
    cannot join; every host fails with the same list, so nothing anywhere is changed. Each problem says
    the ways out. A reinstalled host that kept its brick disk is not a problem; the result says how it
    rejoins (RV(rejoin) for M(b2ct.cloud.gluster_rejoin)).
  - Changes nothing; runs in check mode too.
options:
  volumes:
    description: All volumes, inventory form (name, replica, bricks as host:/path).
    type: list
    elements: dict
    default: []
  paths:
    description: Brick directories on this host.
    type: list
    elements: str
    default: []
  planned_mounts:
    description: Brick filesystems the role will mount (not mounted yet on a fresh host).
    type: list
    elements: str
    default: []
  force:
    description: Allow bricks on the root filesystem (test setups only).
    type: bool
    default: false
  identities:
    description: Inventory host name to its M(b2ct.cloud.gluster_facts) C(identity); empty skips these checks.
    type: dict
    default: {}
  host_addresses:
    description: Inventory host name to the address gluster uses for it.
    type: dict
    default: {}
  host_name:
    description: This host's inventory name (what RV(rejoin) is for).
    type: str
    default: ""
  manager:
    description: The host that probes peers and creates volumes.
    type: str
    default: ""
author: b2ct developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check volumes and brick paths
  b2ct.cloud.gluster_preflight:
    volumes: "{{ glusterfs_volumes }}"
    paths: [/bricks/one-system/brick]
    planned_mounts: [/bricks]
"""

RETURN = r"""
filesystems:
  description: Brick path → mount point that will hold it.
  type: dict
  returned: always
rejoin:
  description: For a host that comes back (new glusterd, pool knows it) uuid, op_version, via; else null.
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.b2ct.cloud.plugins.module_utils.gluster import (
    GlusterError,
    brick_problem,
    check_volumes,
    mount_point_of,
)
from ansible_collections.b2ct.cloud.plugins.module_utils.gluster_identity import check_identities


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "volumes": {"type": "list", "elements": "dict", "default": []},
            "paths": {"type": "list", "elements": "str", "default": []},
            "planned_mounts": {"type": "list", "elements": "str", "default": []},
            "force": {"type": "bool", "default": False},
            "identities": {"type": "dict", "default": {}},
            "host_addresses": {"type": "dict", "default": {}},
            "host_name": {"type": "str", "default": ""},
            "manager": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    try:
        check_volumes(module.params["volumes"])
    except GlusterError as exc:
        module.fail_json(msg=str(exc))
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        # /proc/mounts escapes spaces as \040; brick paths with spaces are not supported anyway.
        mounts = [line.split()[1] for line in fh if len(line.split()) > 1]
    planned = module.params["planned_mounts"]
    problems = []
    where = {}
    for path in module.params["paths"]:
        problem = brick_problem(path, mounts, planned, module.params["force"])
        if problem:
            problems.append(problem)
        where[path] = mount_point_of(path, [*mounts, *planned])
    if problems:
        module.fail_json(msg="; ".join(problems), filesystems=where)
    rejoin = None
    if module.params["identities"]:
        # keyed by each host's name in the bricks (glusterfs_host_name), which its facts carry
        identities = {str(f.get("host") or h): f for h, f in module.params["identities"].items() if f}
        found = check_identities(
            module.params["volumes"],
            {str(k): str(v) for k, v in module.params["host_addresses"].items()},
            identities,
            module.params["manager"],
        )
        if found.problems:
            module.fail_json(msg=" | ".join(found.problems), problems=found.problems, filesystems=where)
        mine = found.rejoin.get(module.params["host_name"])
        rejoin = mine.as_dict() if mine else None
    module.exit_json(changed=False, filesystems=where, rejoin=rejoin)


if __name__ == "__main__":
    main()
