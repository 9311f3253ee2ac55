"""Lab hosts as QEMU guests, for what a container cannot do: bond NICs and tag VLANs.

Containers share this machine's kernel, and a kernel built without the bonding and 802.1Q drivers
(CONFIG_BONDING, CONFIG_VLAN_8021Q) has neither in any namespace. A guest runs a kernel of its own: a
Debian kernel from /boot with its modules, booted directly (no bootloader) under TCG emulation, its root
filesystem an ext4 image made from the host's customised overlay of the lab's base image. Its NICs are
virtio devices on tap interfaces, which the lab puts on its bridges like the containers' veths; a NIC's
link state is switched through QEMU's monitor (QMP ``set_link``), as pulling its cable would.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from b2ct.errors import B2ctError
from b2ct.lab import net

BOOT = Path("/boot")
MODULES = Path("/usr/lib/modules")
# The drivers a bonded lab host needs beyond a plain Debian boot: the bond and its VLAN, FUSE for the
# GlusterFS mounts, XFS for bricks (the kernel loads the last ones on demand too).
DRIVERS = ("bonding", "8021q", "fuse", "xfs")
ROOT_SIZE = 4 * 1024**3  # sparse
MEMORY_MB = 1536


def kernel() -> tuple[Path, Path, str]:
    """(vmlinuz, initrd, version) of the newest kernel in /boot whose modules have the bonding and 802.1Q
    drivers, e.g. Debian's linux-image-cloud-amd64. Raises B2ctError when there is none."""
    found = []
    for image in BOOT.glob("vmlinuz-*"):
        version = image.name.removeprefix("vmlinuz-")
        initrd = BOOT / f"initrd.img-{version}"
        mods = MODULES / version / "kernel"
        if (
            initrd.is_file()
            and list(mods.glob("drivers/net/bonding/bonding.ko*"))
            and list(mods.glob("net/8021q/8021q.ko*"))
        ):
            found.append((image.stat().st_mtime, image, initrd, version))
    if not found:
        raise B2ctError(
            "bonded lab hosts are QEMU guests and need a kernel in /boot with the bonding and 8021q "
            "modules (and its initrd)",
            hint="apt-get install linux-image-cloud-amd64 qemu-system-x86",
        )
    _, image, initrd, version = max(found)
    return image, initrd, version


def check_tools() -> None:
    for tool in ("qemu-system-x86_64", "mkfs.ext4"):
        if shutil.which(tool) is None:
            raise B2ctError(f"{tool} not found", hint="apt-get install qemu-system-x86 e2fsprogs")


def make_root_image(root: Path, image: Path, version: str) -> None:
    """Put the kernel's modules and the drivers to load at boot into ``root`` (the host's overlay), then
    make ``image``, a sparse ext4 filesystem holding it (mkfs.ext4 -d)."""
    dest = root / "usr/lib/modules" / version
    if not dest.is_dir():
        shutil.copytree(MODULES / version, dest, symlinks=True)
    conf = root / "etc/modules-load.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "b2ct-lab-vm.conf").write_text(
        "# b2ct lab: a QEMU guest's drivers for bonds, VLANs, GlusterFS mounts and bricks\n"
        + "".join(f"{d}\n" for d in DRIVERS)
    )
    # The root filesystem is the boot disk: without an fstab entry systemd leaves it as the kernel mounted it.
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,relatime 0 1\n")
    with open(image, "wb") as fh:
        fh.truncate(ROOT_SIZE)
    net.run(["mkfs.ext4", "-q", "-F", "-L", "b2ct-root", "-d", str(root), str(image)])


def argv(
    *,
    name: str,
    kernel_image: Path,
    initrd: Path,
    root_image: Path,
    disk: Path,
    nics: list[dict[str, str]],
    qmp: Path,
    console: Path,
) -> list[str]:
    """The QEMU command line: direct kernel boot, root on the first virtio disk, ``disk`` as the second
    (/dev/vdb in the guest), one virtio NIC per item of ``nics`` ({id, tap, mac}) in that order."""
    cmd = [
        "qemu-system-x86_64", "-name", name, "-accel", "tcg", "-m", str(MEMORY_MB), "-smp", "1",
        "-nodefaults", "-display", "none", "-no-reboot",
        "-kernel", str(kernel_image), "-initrd", str(initrd),
        "-append", "root=/dev/vda rw console=ttyS0 panic=-1",
        "-drive", f"file={root_image},if=virtio,format=raw",
        "-drive", f"file={disk},if=virtio,format=raw",
        "-serial", f"file:{console}",
        "-qmp", f"unix:{qmp},server=on,wait=off",
    ]  # fmt: skip
    for nic in nics:
        cmd += [
            "-netdev", f"tap,id={nic['id']},ifname={nic['tap']},script=no,downscript=no",
            # a link speed, as real NICs report: balance-alb/tlb bonds take a member without one for down
            "-device", f"virtio-net-pci,netdev={nic['id']},mac={nic['mac']},speed=1000,duplex=full",
        ]  # fmt: skip
    return cmd


def qmp(sock: Path, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    """Run one QMP command on the guest's monitor socket; return its result. Raises B2ctError when the
    monitor does not answer or refuses the command (QEMU's QMP reference, qmp-spec)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = socket.socket(socket.AF_UNIX)
            conn.settimeout(timeout)
            conn.connect(str(sock))
            break
        except OSError as exc:
            conn.close()
            if time.monotonic() > deadline:
                raise B2ctError(f"QEMU monitor {sock} does not answer: {exc}") from None
            time.sleep(0.2)
    with conn, conn.makefile("rw") as fh:

        def call(cmd: dict[str, Any]) -> Any:
            fh.write(json.dumps(cmd) + "\n")
            fh.flush()
            while True:
                reply = json.loads(fh.readline() or "{}")
                if "event" in reply:
                    continue
                if "error" in reply or "return" not in reply:
                    raise B2ctError(f"QEMU monitor refused {cmd['execute']}: {reply.get('error', reply)}")
                return reply["return"]

        json.loads(fh.readline() or "{}")  # the greeting
        call({"execute": "qmp_capabilities"})
        return call({"execute": command, **({"arguments": arguments} if arguments else {})})


_TAP = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def add_tap(name: str, bridge: str) -> None:
    """A tap interface on ``bridge``, up, for a guest's NIC (QEMU opens it by name)."""
    if not _TAP.match(name):
        raise B2ctError(f"tap name {name!r} is not a valid interface name")
    net.run(["ip", "tuntap", "add", "mode", "tap", "name", name])
    net.run(["ip", "link", "set", name, "master", bridge, "up"])
