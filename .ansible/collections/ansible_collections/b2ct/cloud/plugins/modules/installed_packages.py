#!/usr/bin/python
"""Installed packages as ansible.builtin.package_facts reports them, read with one dpkg-query or rpm."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: installed_packages
short_description: The installed packages, in package_facts' format, from one dpkg-query or rpm call
description:
  - Sets C(ansible_facts.packages) exactly as M(ansible.builtin.package_facts) does (package name to a
    list of installed versions), so roles that test C(ansible_facts['packages']) work with either.
  - Reads the package database with C(dpkg-query) on Debian-family hosts and C(rpm) on Red Hat-family
    hosts. package_facts loads python-apt's whole cache for the same answer, about two seconds per
    host on every run.
options: {}
author: b2ct developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the installed packages
  b2ct.cloud.installed_packages:

- name: Install qemu when missing
  ansible.builtin.package:
    name: qemu-utils
  when: "'qemu-utils' not in ansible_facts['packages']"
"""

RETURN = r"""
ansible_facts:
  description: C(packages), a dict of package name to a list of C(name), C(version), C(arch), C(source).
  returned: always
  type: dict
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# dpkg's second status letter: installed, or installed with triggers pending.
_DPKG_INSTALLED = ("i", "W", "t")


def _dpkg(module: AnsibleModule, tool: str) -> dict[str, list[dict[str, str]]]:
    fmt = "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"
    rc, out, err = module.run_command([tool, "--show", f"--showformat={fmt}"])
    if rc != 0:
        module.fail_json(msg=f"dpkg-query failed: {err.strip()}")
    packages: dict[str, list[dict[str, str]]] = {}
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and len(fields[0]) >= 2 and fields[0][1] in _DPKG_INSTALLED:
            _status, name, version, arch = fields
            packages.setdefault(name, []).append(
                {"name": name, "version": version, "arch": arch, "source": "apt"}
            )
    return packages


def _rpm(module: AnsibleModule, tool: str) -> dict[str, list[dict[str, str | int | None]]]:
    fmt = "%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n"
    rc, out, err = module.run_command([tool, "--query", "--all", "--queryformat", fmt])
    if rc != 0:
        module.fail_json(msg=f"rpm failed: {err.strip()}")
    packages: dict[str, list[dict[str, str | int | None]]] = {}
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) == 5:
            name, epoch, version, release, arch = fields
            packages.setdefault(name, []).append(
                {
                    "name": name,
                    "epoch": None if epoch == "(none)" else int(epoch),
                    "version": version,
                    "release": release,
                    "arch": arch,
                    "source": "rpm",
                }
            )
    return packages


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    # The database that describes the running system decides, not which tools happen to be installed.
    dpkg = module.get_bin_path("dpkg-query")
    rpm = module.get_bin_path("rpm")
    if dpkg and os.path.isfile("/var/lib/dpkg/status") and os.path.getsize("/var/lib/dpkg/status") > 0:
        packages: dict = _dpkg(module, dpkg)
    elif rpm:
        packages = _rpm(module, rpm)
    else:
        module.fail_json(msg="neither dpkg-query nor rpm found: cannot list the installed packages")
    module.exit_json(changed=False, ansible_facts={"packages": packages})


if __name__ == "__main__":
    main()
