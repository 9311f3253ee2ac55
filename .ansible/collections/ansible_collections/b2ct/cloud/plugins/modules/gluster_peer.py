#!/usr/bin/python
# ruff: noqa: E402 - Ansible modules put their imports after the documentation strings
"""Ansible module: probe GlusterFS peers and wait until they are connected and 'Peer in Cluster'."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gluster_peer
short_description: Probe GlusterFS peers and wait for 'Peer in Cluster'
description:
  - Probes each wanted peer that the local glusterd does not know under any of its names, then waits
    until every wanted peer is connected and in state 'Peer in Cluster' (volume create fails before).
  - Never detaches a peer. Check mode reports which peers would be probed.
options:
  peers:
    description: Peer names or addresses, as bricks will name them. The local node may be listed.
    type: list
    elements: str
    required: true
  local_names:
    description: Names and addresses of this node (skipped, gluster refuses to probe itself).
    type: list
    elements: str
    default: []
  wait_timeout:
    description: Seconds to wait for all peers to be in the cluster.
    type: int
    default: 120
author: b2ct developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Form the trusted pool
  b2ct.cloud.gluster_peer:
    peers: [10.0.0.11, 10.0.0.12]
    local_names: [10.0.0.11]
"""

RETURN = r"""
probed:
  description: Peers probed by this run.
  type: list
  returned: always
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.locale import get_best_parsable_locale
from ansible_collections.b2ct.cloud.plugins.module_utils.gluster import (
    GlusterError,
    parse_peers,
    peers_not_ready,
    peers_to_probe,
)


def _status(module: AnsibleModule, gluster: str):
    rc, out, err = module.run_command([gluster, "--mode=script", "--xml", "peer", "status"])
    if rc != 0 and module.check_mode:
        # A fresh host in check mode: glusterd was only "started" in check mode, every peer is new.
        module.exit_json(
            changed=True, probed=module.params["peers"], msg=f"glusterd not answering: {err.strip()}"
        )
    if rc != 0 and not out.strip():
        module.fail_json(msg=f"gluster peer status failed: {err.strip() or out.strip()}")
    return parse_peers(out)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "peers": {"type": "list", "elements": "str", "required": True},
            "local_names": {"type": "list", "elements": "str", "default": []},
            "wait_timeout": {"type": "int", "default": 120},
        },
        supports_check_mode=True,
    )
    locale = get_best_parsable_locale(module)
    # gluster's output is parsed: untranslated, whatever the host's or the controller's locale.
    module.run_command_environ_update = {
        "LANG": locale,
        "LC_ALL": locale,
        "LC_MESSAGES": locale,
        "LANGUAGE": "",
    }
    gluster = module.get_bin_path("gluster", required=True)
    wanted, local = module.params["peers"], module.params["local_names"]
    try:
        todo = peers_to_probe(wanted, local, _status(module, gluster))
        if module.check_mode:
            module.exit_json(changed=bool(todo), probed=todo)
        for peer in todo:
            rc, out, err = module.run_command([gluster, "--mode=script", "peer", "probe", peer])
            if rc != 0:
                module.fail_json(msg=f"gluster peer probe {peer} failed: {(err or out).strip()}", probed=todo)
        deadline = time.monotonic() + module.params["wait_timeout"]
        while True:
            missing = peers_not_ready(wanted, local, _status(module, gluster))
            if not missing:
                break
            if time.monotonic() > deadline:
                module.fail_json(
                    msg=f"peers not in 'Peer in Cluster' state after {module.params['wait_timeout']}s: "
                    + ", ".join(missing),
                    probed=todo,
                )
            time.sleep(2)
    except GlusterError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(todo), probed=todo)


if __name__ == "__main__":
    main()
