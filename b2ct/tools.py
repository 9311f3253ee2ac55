"""The system tools b2ct runs, which command needs each, and the package that provides it.

One table (TOOLS) drives both `b2ct doctor` (present or missing, with the packages to install) and the
one-line error a command gives when a tool it needs is missing (``need``). Package names are Debian 12's
(``dpkg -S``) and AlmaLinux/RHEL 9's (``dnf provides``), "(EPEL)" where only EPEL has it, "" where EL
has none b2ct can use (apt-ftparchive is Debian's; syslinux's files lie elsewhere on EL, and make-usb
reads Debian's paths).

Python programs b2ct depends on (ansible-playbook, ansible-inventory) are installed with b2ct itself, in
the same environment: ``python_bin()`` is searched before PATH, so a pipx install, whose environment is
not on PATH, runs its own.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from b2ct.errors import B2ctError

# Where system administration tools live; a non-root PATH often lacks them (mkfs.fat, losetup, sfdisk).
SBIN = "/usr/sbin:/sbin"


@dataclass(frozen=True)
class Tool:
    """A program (or, with ``path``, a data file) b2ct needs on the machine it runs on."""

    name: str  # the executable's name, or a short name for a file
    commands: tuple[str, ...]  # the b2ct commands that need it ("tests": the test suite only)
    debian: str  # Debian 12 package
    el: str  # EL 9 package ("" when there is none)
    why: str  # what b2ct does with it
    path: str = ""  # a file rather than a program: its absolute path
    pip: bool = False  # a Python program installed with b2ct (pip), not a system package

    def install_hint(self) -> str:
        if self.pip:
            return f"pip install {self.debian} (a b2ct dependency: reinstall b2ct)"
        el = f"dnf install {self.el}" if self.el else "no EL package"
        return f"apt-get install {self.debian}; {el}"


def _t(name: str, commands: str, debian: str, el: str, why: str, path: str = "", pip: bool = False) -> Tool:
    return Tool(name, tuple(commands.split()), debian, el, why, path, pip)


TOOLS: tuple[Tool, ...] = (
    # install media
    _t("xorriso", "build-iso make-usb", "xorriso", "xorriso", "reads and grows ISO 9660 images"),
    _t("mtype", "build-iso make-usb", "mtools", "mtools", "reads files inside EFI boot images"),
    _t("mcopy", "build-iso make-usb", "mtools", "mtools", "writes files inside EFI boot images"),
    _t("mdir", "build-iso make-usb", "mtools", "mtools", "lists EFI boot images"),
    _t("sfdisk", "make-usb", "fdisk", "util-linux", "writes the key's partition table"),
    _t("mkfs.fat", "make-usb", "dosfstools", "dosfstools", "formats the key's FAT32"),
    _t("syslinux", "make-usb", "syslinux", "syslinux", "makes the key BIOS-bootable"),
    _t(
        "mbr.bin",
        "make-usb",
        "syslinux-common",
        "syslinux",
        "the key's boot code (MBR)",
        path="/usr/lib/syslinux/mbr/mbr.bin",
    ),
    _t(
        "syslinux modules",
        "make-usb",
        "syslinux-common",
        "syslinux",
        "the key's BIOS boot menu",
        path="/usr/lib/syslinux/modules/bios/menu.c32",
    ),
    # configuring hosts
    _t("ansible-playbook", "deploy upgrade demo", "ansible-core", "", "runs the roles", pip=True),
    _t("ansible-inventory", "check cloud vm", "ansible-core", "", "reads how to reach hosts", pip=True),
    _t("ssh", "deploy upgrade check lab demo", "openssh-client", "openssh-clients", "reaches the hosts"),
    _t("setpriv", "deploy upgrade", "util-linux", "util-linux", "ends ansible-playbook when b2ct dies"),
    _t("busybox", "check", "busybox-static", "busybox (EPEL)", "the smoke domain's initrd"),
    # the lab (test hosts on this machine)
    _t("systemd-nspawn", "lab demo", "systemd-container", "systemd-container", "runs the lab's hosts"),
    _t("debootstrap", "lab demo", "debootstrap", "debootstrap (EPEL)", "builds the lab's image"),
    _t("ip", "lab demo", "iproute2", "iproute", "the lab's network namespaces and bridges"),
    _t("losetup", "lab demo", "mount", "util-linux", "the lab hosts' data disks"),
    _t("mount", "lab demo", "mount", "util-linux", "the lab hosts' root filesystems (overlayfs)"),
    _t("nsenter", "lab demo", "util-linux", "util-linux", "runs commands inside lab hosts"),
    _t("ssh-keygen", "lab demo", "openssh-client", "openssh", "the lab hosts' keys"),
    _t("openssl", "lab demo", "openssl", "openssl", "the lab's root password hash"),
    _t("apt-ftparchive", "lab demo", "apt-utils", "", "indexes the lab's OpenNebula mirror"),
    _t("gpg", "lab demo", "gnupg", "gnupg2", "signs the lab's OpenNebula mirror"),
    _t("gpgconf", "lab demo", "gnupg", "gnupg2", "stops the signing agent"),
    _t("qemu-img", "lab demo", "qemu-utils", "qemu-img", "the lab's VM image"),
    # only the test suite
    _t("qemu-system-x86_64", "tests", "qemu-system-x86", "", "boots the built media"),
    _t("nasm", "tests", "nasm", "nasm", "re-assembles the lab VM's boot sector"),
    _t("fsck.fat", "tests", "dosfstools", "dosfstools", "judges the keys make-usb writes"),
    _t("implantisomd5", "tests", "isomd5sum", "isomd5sum", "the reference for the media checksum"),
    _t("shellcheck", "tests", "shellcheck", "ShellCheck (EPEL)", "lints the rack kickstart's %pre"),
)
BY_NAME = {t.name: t for t in TOOLS}


@dataclass(frozen=True)
class PythonModule:
    """An optional Python module: b2ct's extra ``extra`` installs it, or the distribution's package."""

    name: str  # what is imported
    commands: tuple[str, ...]
    extra: str  # pip install 'b2ct[EXTRA]'
    debian: str  # the distribution's build of it (for pipx --system-site-packages)
    el: str
    build_debian: str  # what pip needs to build it
    build_el: str
    why: str

    def install_hint(self) -> str:
        return (
            f"pip install 'b2ct[{self.extra}]' (builds against libvirt: apt-get install {self.build_debian}; "
            f"dnf install {self.build_el}), or use the distribution's {self.debian} ({self.el} on EL)"
        )


MODULES: tuple[PythonModule, ...] = (
    PythonModule(
        "libvirt", ("check",), "check", "python3-libvirt", "python3-libvirt",
        "libvirt-dev pkg-config gcc python3-dev", "libvirt-devel pkgconf-pkg-config gcc python3-devel",
        "libvirt-python: reads each host's libvirt over ssh",
    ),
)  # fmt: skip


def need_module(name: str) -> None:
    """Import check for an optional module of MODULES; raises B2ctError saying how to install it."""
    import importlib

    entry = next(m for m in MODULES if m.name == name)
    try:
        importlib.import_module(name)
    except ImportError:
        raise B2ctError(f"{entry.why.split(':')[0]} is not installed", hint=entry.install_hint()) from None


def python_bin() -> Path:
    """The directory of the Python running b2ct: where pip put the programs installed with it."""
    return Path(sys.executable).parent


def search_path() -> str:
    """Where b2ct looks for programs: this Python's bin directory, PATH, then /usr/sbin:/sbin."""
    return os.pathsep.join([str(python_bin()), os.environ.get("PATH", os.defpath), SBIN])


def find(tool: str | Tool) -> str | None:
    """The absolute path of ``tool`` (an executable name, or a TOOLS entry), or None when missing."""
    entry = tool if isinstance(tool, Tool) else BY_NAME.get(tool)
    if entry is not None and entry.path:
        return entry.path if os.path.isfile(entry.path) else None
    name = entry.name if entry is not None else str(tool)
    if entry is not None and not entry.pip:
        # System tools: PATH first, as the user set it; this Python's directory is for pip's programs.
        return shutil.which(name) or shutil.which(name, path=SBIN)
    return shutil.which(name, path=search_path())


def need(tool: str) -> str:
    """The absolute path of ``tool``; raises B2ctError naming the commands that need it and the package
    to install when it is missing."""
    found = find(tool)
    if found is not None:
        return found
    entry = BY_NAME.get(tool)
    if entry is None:  # not in the table (tests/test_tools.py keeps every tool b2ct runs in it)
        raise B2ctError(f"{tool} not found", hint=f"install the package that provides {tool}")
    needed_by = ", ".join(entry.commands)
    raise B2ctError(
        f"{entry.path or tool} not found (needed by b2ct {needed_by}: {entry.why})",
        hint=entry.install_hint(),
    )


def need_for(command: str) -> None:
    """``need`` every tool of ``command`` (a b2ct command name in TOOLS), before it starts its work: a
    missing one stops it before anything is written."""
    for tool in for_command(command):
        need(tool.name)


def for_command(command: str) -> tuple[Tool, ...]:
    return tuple(t for t in TOOLS if command in t.commands)
