#!/usr/bin/python
# ruff: noqa: E402 - Ansible modules put their imports after the documentation strings
"""Ansible module: a reinstalled brick host takes back the UUID its pool knows it by, and rejoins."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gluster_rejoin
short_description: Give a reinstalled host's glusterd its old UUID and its pool's peers
description:
  - For a host whose glusterd is new (no peers, no volumes) while its pool knows it, under an old UUID,
    by its address, and whose kept bricks carry the identities of that pool's volumes (decided by
    M(b2ct.cloud.gluster_preflight) from every host's M(b2ct.cloud.gluster_facts)).
  - The procedure of gluster's documentation for a host replaced under the same name; with glusterd
    stopped, write the old UUID into glusterd.info and, into peers/, one file per other member of the
    pool as its members know each other ('Peer in Cluster'); start glusterd. The members then greet it
    as the peer they knew, it receives the volumes, glusterd starts its bricks, and self-heal brings
    them up to date. No probe, because probing from either side leaves both in 'Sent and Received peer
    request' (seen with glusterfs 10.3).
  - Waits until a member is connected and 'Peer in Cluster' and the volumes were received.
  - Idempotent (nothing to do when glusterd already has that UUID and peers). Check mode only reports.
options:
  uuid: {description: The UUID the pool knows this host by., type: str, required: true}
  op_version:
    description: operating-version for glusterd.info when this host's glusterd never wrote one.
    type: str
    default: ""
  peers:
    description: The other members of the pool, as dicts with uuid and hostnames.
    type: list
    elements: dict
    required: true
  volumes: {description: Volume names to wait for., type: list, elements: str, default: []}
  service: {description: glusterd's systemd unit., type: str, default: glusterd}
  store: {description: glusterd's working directory., type: path, default: /var/lib/glusterd}
  wait_timeout: {description: Seconds to wait for the pool and the volumes., type: int, default: 120}
author: b2ct developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Take back this host's place in the pool
  b2ct.cloud.gluster_rejoin:
    uuid: 2e2022f7-4a1f-4973-aeb2-c0f749625e60
    peers: [{uuid: a4e85ec0-5a0a-418c-b58e-f1d250026df0, hostnames: [10.0.0.11]}]
    volumes: [one-system]
"""

RETURN = r"""
peers: {description: UUIDs written as peers., type: list, returned: changed}
"""

import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.locale import get_best_parsable_locale
from ansible_collections.b2ct.cloud.plugins.module_utils.gluster import (
    GlusterError,
    parse_peers,
    parse_volumes,
)
from ansible_collections.b2ct.cloud.plugins.module_utils.gluster_identity import parse_kv

PEER_IN_CLUSTER_STATE = "3"  # glusterd's GD_FRIEND_STATE_BEFRIENDED, as the store writes it


def _info(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_kv(fh.read())
    except FileNotFoundError:
        return {}


def _write(path: str, values: dict[str, str]) -> None:
    # Temp file then rename: a file cut short would give the host yet another identity.
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(f"{k}={v}\n" for k, v in values.items()))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "uuid": {"type": "str", "required": True},
            "op_version": {"type": "str", "default": ""},
            "peers": {"type": "list", "elements": "dict", "required": True},
            "volumes": {"type": "list", "elements": "str", "default": []},
            "service": {"type": "str", "default": "glusterd"},
            "store": {"type": "path", "default": "/var/lib/glusterd"},
            "wait_timeout": {"type": "int", "default": 120},
        },
        supports_check_mode=True,
    )
    p = module.params
    locale = get_best_parsable_locale(module)
    module.run_command_environ_update = {
        "LANG": locale,
        "LC_ALL": locale,
        "LC_MESSAGES": locale,
        "LANGUAGE": "",
    }
    info_path = os.path.join(p["store"], "glusterd.info")
    peers_dir = os.path.join(p["store"], "peers")
    info = _info(info_path)
    if info.get("UUID") == p["uuid"] and os.path.isdir(peers_dir) and os.listdir(peers_dir):
        module.exit_json(changed=False)
    members = [(str(x["uuid"]), [str(n) for n in x.get("hostnames") or []]) for x in p["peers"]]
    if not members or not all(u and names for u, names in members):
        module.fail_json(msg=f"rejoin as {p['uuid']}: every peer needs a uuid and a hostname: {p['peers']}")
    if module.check_mode:
        module.exit_json(changed=True, msg=f"would give glusterd UUID {p['uuid']} and {len(members)} peer(s)")
    gluster = module.get_bin_path("gluster", required=True)
    systemctl = module.get_bin_path("systemctl", required=True)

    def systemd(action: str) -> None:
        rc, out, err = module.run_command([systemctl, action, p["service"]])
        if rc != 0:
            module.fail_json(msg=f"systemctl {action} {p['service']} failed: {(err or out).strip()}")

    def cli(*args: str) -> str:
        rc, out, err = module.run_command([gluster, "--mode=script", "--xml", *args])
        if rc != 0 and not out.strip():
            raise GlusterError(f"gluster {' '.join(args)}: {(err or out).strip()}")
        return out

    if os.path.isdir(peers_dir) and os.listdir(peers_dir):
        module.fail_json(
            msg=f"rejoin as {p['uuid']}: glusterd on this host has peers since the preflight: run again"
        )
    systemd("stop")
    os.makedirs(peers_dir, exist_ok=True)
    for uuid, names in members:
        values = {"uuid": uuid, "state": PEER_IN_CLUSTER_STATE}
        values.update({f"hostname{i}": n for i, n in enumerate(names, 1)})
        _write(os.path.join(peers_dir, uuid), values)
    values = {"UUID": p["uuid"], **{k: v for k, v in info.items() if k != "UUID"}}
    if "operating-version" not in values and p["op_version"]:
        values["operating-version"] = p["op_version"]
    _write(info_path, values)
    systemd("start")

    def joined() -> bool:
        try:
            if not any(x.in_cluster for x in parse_peers(cli("peer", "status"))):
                return False
            return set(p["volumes"]) <= set(parse_volumes(cli("volume", "info", "all")))
        except GlusterError:
            return False  # glusterd still starting

    deadline = time.monotonic() + p["wait_timeout"]
    while not joined():
        if time.monotonic() > deadline:
            module.fail_json(
                msg=f"rejoin as {p['uuid']}: after {p['wait_timeout']}s no member of the pool is connected "
                f"and 'Peer in Cluster', or volumes {', '.join(p['volumes'])} did not arrive"
            )
        time.sleep(2)
    module.exit_json(changed=True, peers=[u for u, _peer in members])


if __name__ == "__main__":
    main()
