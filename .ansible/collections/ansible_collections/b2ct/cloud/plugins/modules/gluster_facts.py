#!/usr/bin/python
# ruff: noqa: E402 - Ansible modules put their imports after the documentation strings
"""Ansible module: what this host's glusterd and brick filesystems say about who they are (read only)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gluster_facts
short_description: Read this host's GlusterFS identity, changing nothing
description:
  - Reads glusterd's store (UUID, operating version, peers and their names, volumes with their ids and
    bricks) from its files, so it works whether glusterd runs or not, and, for each brick directory of
    this host, its volume id (xattr C(trusted.glusterfs.volume-id)) and whether it holds a
    C(.glusterfs) directory.
  - A brick filesystem that is not mounted (a reinstalled host keeps its brick disk, not its fstab) is
    mounted read-only (XFS with C(norecovery)) on a private temporary directory for the reading, and
    unmounted right after.
  - Resolves the names it is given and the names in the store, as glusterd compares them.
  - Changes nothing; runs in check mode too. M(b2ct.cloud.gluster_preflight) decides from all hosts' answers.
options:
  paths: {description: Brick directories of this host., type: list, elements: str, default: []}
  brick_disk: {description: Disk holding the brick filesystem ("" for none)., type: str, default: ""}
  brick_mount: {description: Where the role mounts the brick filesystem., type: path, default: /bricks}
  names: {description: Host names and addresses to resolve., type: list, elements: str, default: []}
  store: {description: glusterd's working directory., type: path, default: /var/lib/glusterd}
  host: {description: This host's name in the bricks (returned as is)., type: str, default: ""}
author: b2ct developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read this host's GlusterFS identity
  b2ct.cloud.gluster_facts:
    paths: [/bricks/one-system/brick]
    brick_disk: /dev/sdb
  register: identity
"""

RETURN = r"""
identity:
  description: uuid, op_version, peers, volumes, bricks (path to exists/volume_id/glusterfs_dir), resolved.
  type: dict
  returned: always
"""

import contextlib
import os
import socket
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.locale import get_best_parsable_locale
from ansible_collections.b2ct.cloud.plugins.module_utils.gluster_identity import brick_marks, read_store


def _resolve(name: str) -> list[str]:
    try:
        return sorted({str(a[4][0]) for a in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)})
    except (OSError, UnicodeError):
        return []


def _mounted_at(disk: str) -> str | None:
    """Where the filesystem on block device ``disk`` is mounted now, if anywhere."""
    try:
        rdev = os.stat(disk).st_rdev
    except OSError:
        return None
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 2 or not fields[0].startswith("/"):
                continue
            with contextlib.suppress(OSError):
                st = os.stat(fields[0])
                if stat.S_ISBLK(st.st_mode) and st.st_rdev == rdev:
                    return fields[1].replace("\\040", " ")
    return None


def _marks(paths: list[str], root: str | None, mount: str) -> dict[str, dict]:
    """Brick marks, reading below ``root`` what the role will find below ``mount``."""
    out = {}
    for path in paths:
        norm = os.path.normpath(path)
        rel = os.path.relpath(norm, mount)
        if root is not None and not rel.startswith(".."):
            out[norm] = brick_marks(os.path.join(root, rel))
        else:
            out[norm] = brick_marks(norm)
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "str", "default": []},
            "brick_disk": {"type": "str", "default": ""},
            "brick_mount": {"type": "path", "default": "/bricks"},
            "names": {"type": "list", "elements": "str", "default": []},
            "store": {"type": "path", "default": "/var/lib/glusterd"},
            "host": {"type": "str", "default": ""},
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
    try:
        facts = read_store(p["store"])
    except OSError as exc:
        module.fail_json(msg=f"cannot read glusterd's store {p['store']}: {exc}")
    mount = os.path.normpath(p["brick_mount"])
    disk = p["brick_disk"]
    read_from = "the brick directories"
    if not disk or not p["paths"]:
        facts["bricks"] = _marks(p["paths"], None, mount)
    elif (where := _mounted_at(disk)) is not None:
        facts["bricks"] = _marks(p["paths"], where, mount)
        read_from = f"{disk} mounted at {where}"
    else:
        rc, out, _err = module.run_command(["blkid", "-p", "-o", "value", "-s", "TYPE", disk])
        fstype = out.strip() if rc == 0 else ""
        if not fstype:  # a blank disk (or no such disk: the role says so when it formats it)
            blank = {"exists": False, "volume_id": "", "glusterfs_dir": False}
            facts["bricks"] = {os.path.normpath(x): dict(blank) for x in p["paths"]}
            read_from = f"{disk}: no filesystem yet"
        else:
            tmp = tempfile.mkdtemp(prefix="b2ct-brick-ro.", dir="/run" if os.path.isdir("/run") else None)
            opts = "ro,norecovery" if fstype == "xfs" else "ro"
            try:
                rc, out, err = module.run_command(["mount", "-t", fstype, "-o", opts, disk, tmp])
                if rc != 0:
                    module.fail_json(
                        msg=f"cannot read the brick filesystem on {disk} (mount -o {opts}): "
                        + (err or out).strip()
                    )
                try:
                    facts["bricks"] = _marks(p["paths"], tmp, mount)
                finally:
                    module.run_command(["umount", tmp], check_rc=True)
            finally:
                with contextlib.suppress(OSError):
                    os.rmdir(tmp)
            read_from = f"{disk} ({fstype}) mounted read-only for the reading"
    names = set(p["names"]) | {n for peer in facts["peers"] for n in peer["hostnames"]}
    names |= {b["brick"].partition(":")[0] for v in facts["volumes"].values() for b in v["bricks"]}
    facts["resolved"] = {n: _resolve(n) for n in sorted(names) if n}
    facts["read_from"] = read_from
    facts["host"] = p["host"]
    module.exit_json(changed=False, identity=facts)


if __name__ == "__main__":
    main()
