#!/usr/bin/python
# ruff: noqa: E402 - Ansible modules put their imports after the documentation strings
"""Ansible module: an idempotent GlusterFS volume (create, add whole replica sets, options, start)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gluster_volume
short_description: Create, extend, tune and start a GlusterFS volume, idempotently
description:
  - Reads C(gluster --xml volume info) and runs only the commands needed; reports changed only then.
  - Adds new bricks as whole replica sets; never removes a brick, changes the replica count or
    regroups replica sets (fails with the reason instead).
  - A brick of the volume is the inventory's when the paths are equal and the hosts are names of the
    same node of the pool (any name C(gluster peer status) lists, or resolving to the same address).
  - Waits until the brick hosts are connected peers in 'Peer in Cluster' state before creating.
  - Option groups (C(virt)) are expanded from /var/lib/glusterd/groups/ so that they can be compared;
    O(options) override them.
options:
  name: {description: Volume name., type: str, required: true}
  replica: {description: Replica count., type: int, default: 1}
  bricks:
    description: Bricks as host:/path, in replica-set order.
    type: list
    elements: str
    required: true
  option_groups:
    description: Names of files in /var/lib/glusterd/groups/ whose options are applied.
    type: list
    elements: str
    default: []
  options: {description: Volume options (override the groups)., type: dict, default: {}}
  start: {description: Start the volume., type: bool, default: true}
  force:
    description: Pass C(force) to create/add-brick (bricks on the root filesystem).
    type: bool
    default: false
  host_addresses:
    description: Host name → address used by gluster; bricks given as name:/path are translated.
    type: dict
    default: {}
  local_names:
    description: Names and addresses of this node (not waited for as peers).
    type: list
    elements: str
    default: []
  wait_timeout: {description: Seconds to wait for brick hosts to join the pool., type: int, default: 120}
  groups_dir: {description: Where option groups live., type: path, default: /var/lib/glusterd/groups}
author: b2ct developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Replica-2 volume for VM images
  b2ct.cloud.gluster_volume:
    name: one-images
    replica: 2
    bricks: [10.0.0.11:/bricks/one-images/brick, 10.0.0.12:/bricks/one-images/brick]
    option_groups: [virt]
    options: {cluster.quorum-type: none}
"""

RETURN = r"""
commands:
  description: gluster commands run (or, in check mode, that would run).
  type: list
  returned: always
added_bricks: {description: Bricks added., type: list, returned: always}
options_set: {description: Options changed., type: dict, returned: always}
"""

import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.locale import get_best_parsable_locale
from ansible_collections.b2ct.cloud.plugins.module_utils.gluster import (
    GlusterError,
    Pool,
    parse_local_uuid,
    parse_option_group,
    parse_peers,
    parse_volumes,
    peers_not_ready,
    plan_volume,
    translate_bricks,
)


def _xml(module: AnsibleModule, gluster: str, *args: str) -> str:
    rc, out, err = module.run_command([gluster, "--mode=script", "--xml", *args])
    if rc != 0 and module.check_mode:
        # A fresh host in check mode: glusterd is not running yet, so the volume would be created.
        module.exit_json(changed=True, commands=[], msg=f"glusterd not answering: {(err or out).strip()}")
    if rc != 0 and not out.strip():
        module.fail_json(msg=f"gluster {' '.join(args)} failed: {(err or out).strip()}")
    return out


def _resolve(name: str) -> frozenset[str]:
    # What glusterd does with a name it is given: compare the addresses it resolves to.
    try:
        return frozenset(str(a[4][0]) for a in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        return frozenset()


def _pool(module: AnsibleModule, gluster: str, bricks: list[str], current_bricks: tuple[str, ...]) -> Pool:
    local = parse_local_uuid(_xml(module, gluster, "system::", "uuid", "get"))
    peers = parse_peers(_xml(module, gluster, "peer", "status"))
    names = set(module.params["local_names"]) | {n for p in peers for n in p.hostnames}
    names |= {b.partition(":")[0] for b in [*bricks, *current_bricks]}
    return Pool(local, tuple(module.params["local_names"]), tuple(peers), {n: _resolve(n) for n in names})


def _wanted_options(module: AnsibleModule) -> dict[str, str]:
    options: dict[str, str] = {}
    for group in module.params["option_groups"]:
        path = os.path.join(module.params["groups_dir"], group)
        try:
            with open(path, encoding="utf-8") as fh:
                options.update(parse_option_group(fh.read()))
        except OSError as exc:
            module.fail_json(msg=f"option group {group!r}: cannot read {path}: {exc.strerror}")
    options.update({k: str(v) for k, v in module.params["options"].items()})
    return options


def _wait_for_peers(module: AnsibleModule, gluster: str, hosts: list[str]) -> None:
    deadline = time.monotonic() + module.params["wait_timeout"]
    while True:
        missing = peers_not_ready(
            hosts, module.params["local_names"], parse_peers(_xml(module, gluster, "peer", "status"))
        )
        if not missing:
            return
        if time.monotonic() > deadline:
            module.fail_json(msg="brick hosts not in 'Peer in Cluster' state: " + ", ".join(missing))
        time.sleep(2)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "replica": {"type": "int", "default": 1},
            "bricks": {"type": "list", "elements": "str", "required": True},
            "option_groups": {"type": "list", "elements": "str", "default": []},
            "options": {"type": "dict", "default": {}},
            "start": {"type": "bool", "default": True},
            "force": {"type": "bool", "default": False},
            "host_addresses": {"type": "dict", "default": {}},
            "local_names": {"type": "list", "elements": "str", "default": []},
            "wait_timeout": {"type": "int", "default": 120},
            "groups_dir": {"type": "path", "default": "/var/lib/glusterd/groups"},
        },
        supports_check_mode=True,
    )
    p = module.params
    locale = get_best_parsable_locale(module)
    # gluster's output is parsed: untranslated, whatever the host's or the controller's locale.
    module.run_command_environ_update = {
        "LANG": locale,
        "LC_ALL": locale,
        "LC_MESSAGES": locale,
        "LANGUAGE": "",
    }
    gluster = module.get_bin_path("gluster", required=True)
    bricks = translate_bricks(p["bricks"], p["host_addresses"])
    try:
        current = parse_volumes(_xml(module, gluster, "volume", "info", "all")).get(p["name"])
        plan = plan_volume(
            p["name"],
            p["replica"],
            bricks,
            current,
            _wanted_options(module),
            start=p["start"],
            force=p["force"],
            pool=_pool(module, gluster, bricks, current.bricks) if current else None,
        )
        result = {
            "changed": plan.changed,
            "commands": [" ".join(["gluster", *c]) for c in plan.commands],
            "added_bricks": plan.added_bricks,
            "options_set": plan.options,
        }
        if module.check_mode or not plan.changed:
            module.exit_json(**result)
        if plan.created or plan.added_bricks:
            _wait_for_peers(module, gluster, [b.partition(":")[0] for b in bricks])
        for cmd in plan.commands:
            rc, out, err = module.run_command([gluster, "--mode=script", *cmd])
            if rc != 0:
                module.fail_json(msg=f"gluster {' '.join(cmd)} failed: {(err or out).strip()}", **result)
    except GlusterError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
