"""The lab's VM image: a 1 MiB disk whose boot sector proves that a VM ran and kept its disk.

On each boot the guest adds one to a counter in the disk's second sector, writes it back, prints
``b2ct-guest: up, boot NNNN`` (hexadecimal) on its first serial port and halts: no operating system to
download, and it runs in well under a second under QEMU's emulation. The code is
``guest_bootsector.asm``; its bytes are below, and a test assembles the source with nasm and compares.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from b2ct import tools
from b2ct.errors import B2ctError

SOURCE = Path(__file__).with_name("guest_bootsector.asm")
SIZE = 1 << 20
# nasm -f bin guest_bootsector.asm, without the zero padding and the 0x55 0xaa signature.
_CODE = bytes.fromhex(
    "fa31c08ed88ec08ed0bc007cfbfc8816aa7cbe817ce84600b80102e831007227ff060080b80103e82500721bbe907ce8"
    "2c00a00180e83200a00080e82c00be987ce81a00f4ebfdbe9b7ce81100ebf5b9020030f68a16aa7cbb0080cd13c3baf8"
    "03ac84c07403eeebf8c350c0e804e8030058240f04303c3976020407baf803eec3623263742d67756573743a20757000"
    "2c20626f6f7420000d0a002c206469736b206572726f720d0a"
)
BANNER = re.compile(rb"b2ct-guest: up, boot ([0-9A-F]{4})")


def boot_sector() -> bytes:
    """The 512-byte MBR boot sector (code, zero padding, signature 0x55 0xAA)."""
    return _CODE.ljust(510, b"\0") + b"\x55\xaa"


def boots(serial_output: bytes) -> list[int]:
    """The boot counters a guest printed on its serial port, in order (empty if it never ran)."""
    return [int(m.group(1), 16) for m in BANNER.finditer(serial_output)]


def write_image(path: Path, fmt: str = "qcow2") -> Path:
    """Write the guest disk to ``path`` as ``fmt`` (``raw`` or ``qcow2``, made by qemu-img).

    Raises B2ctError when qemu-img is missing or fails."""
    raw = path.with_name(path.name + ".raw") if fmt != "raw" else path
    raw.write_bytes(boot_sector().ljust(SIZE, b"\0"))
    if fmt == "raw":
        return path
    try:
        proc = subprocess.run(
            [tools.need("qemu-img"), "convert", "-q", "-f", "raw", "-O", fmt, str(raw), str(path)],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    finally:
        raw.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise B2ctError(f"qemu-img convert failed: {proc.stderr.strip()}", where=path)
    return path
