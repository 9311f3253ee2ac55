"""The smoke domain: a tiny transient libvirt domain (direct kernel boot, busybox initrd, no disk).

Started paused, its serial console attached through the same libvirt connection, resumed; it passes when
the guest's init prints MARKER on the console, which proves that the hypervisor ran guest code end to end.
Always destroyed afterwards (transient: nothing is left defined on the host).
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import io
import os
import secrets
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from b2ct.check.decide import SmokeOutcome
from b2ct.check.script import SMOKE_DIR

MARKER = b"B2CT-SMOKE-OK"
INIT = b"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
while true; do echo B2CT-SMOKE-OK; /bin/busybox sleep 1; done
"""


@dataclass(frozen=True)
class SmokeFiles:
    kernel: bytes
    initrd: bytes

    def digests(self) -> dict[str, str]:
        return {
            "vmlinuz": hashlib.sha256(self.kernel).hexdigest(),
            "initrd.img": hashlib.sha256(self.initrd).hexdigest(),
        }

    def tarball(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("vmlinuz", self.kernel), ("initrd.img", self.initrd)):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def _cpio_entry(
    name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 1
) -> bytes:
    # newc format: the only one the kernel's initramfs unpacker reads. Fixed mtimes: same bytes every run,
    # so the digest matches and hosts that have the files are not sent them again.
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    head = b"070701" + b"".join(f"{f:08X}".encode() for f in fields)
    out = head + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def build_initrd(busybox: Path) -> bytes:
    """A gzip'd newc cpio: /init (a busybox sh script), /bin/busybox, /dev/console, /proc."""
    entries = [
        ("dev", 0o040755, b"", (0, 0)),
        ("dev/console", 0o020600, b"", (5, 1)),  # init's stdout: the initramfs has no devtmpfs mounted
        ("proc", 0o040755, b"", (0, 0)),
        ("bin", 0o040755, b"", (0, 0)),
        ("bin/busybox", 0o100755, busybox.read_bytes(), (0, 0)),
        ("init", 0o100755, INIT, (0, 0)),
    ]
    raw = b"".join(_cpio_entry(n, m, d, r, i + 1) for i, (n, m, d, r) in enumerate(entries))
    raw += _cpio_entry("TRAILER!!!", 0, ino=0)
    return gzip.compress(raw, mtime=0)


def find_kernel() -> Path | None:
    """This machine's newest readable kernel image (Debian: /boot/vmlinuz-*)."""
    candidates = [Path(p) for p in glob.glob("/boot/vmlinuz-*") if os.access(p, os.R_OK)]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def find_busybox() -> Path | None:
    for p in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox") or ""):
        if p and Path(p).is_file():
            return Path(p)
    return None


def load_files(kernel: Path | None) -> SmokeFiles | str:
    """The files to boot, or why there are none."""
    kernel = kernel or find_kernel()
    if kernel is None:
        return "no kernel found in /boot on this machine"
    busybox = find_busybox()
    if busybox is None:
        return "no busybox on this machine (apt-get install busybox-static)"
    try:
        return SmokeFiles(kernel.read_bytes(), build_initrd(busybox))
    except OSError as exc:
        return f"cannot read {exc.filename}: {exc.strerror}"


def domain_xml(name: str, domain_type: str, arch: str = "x86_64") -> str:
    return f"""<domain type='{domain_type}'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='{arch}'>hvm</type>
    <kernel>{SMOKE_DIR}/vmlinuz</kernel>
    <initrd>{SMOKE_DIR}/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def run(conn: Any, host: str, domain_type: str, timeout: float) -> SmokeOutcome:
    """Create, watch and destroy the smoke domain on an open libvirt connection."""
    import libvirt

    name = f"b2ct-smoke-{host}-{secrets.token_hex(3)}"
    start = time.monotonic()
    try:
        dom = conn.createXML(domain_xml(name, domain_type), libvirt.VIR_DOMAIN_START_PAUSED)
    except libvirt.libvirtError as exc:
        return SmokeOutcome(domain_type=domain_type, error=_msg(exc), seconds=time.monotonic() - start)
    seen = threading.Event()
    running = destroyed = False
    error: str | None = None
    stream = None
    try:
        stream = conn.newStream(0)
        dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        reader = threading.Thread(target=_read_console, args=(stream, seen), daemon=True)
        reader.start()
        dom.resume()
        deadline = start + timeout
        while time.monotonic() < deadline and not running:
            running = dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
            if not running:
                time.sleep(0.1)
        if running:
            seen.wait(max(0.0, deadline - time.monotonic()))
    except libvirt.libvirtError as exc:
        error = _msg(exc)
    finally:
        elapsed = time.monotonic() - start
        try:
            dom.destroy()  # also ends the console stream, which unblocks the reader
            destroyed = True
        except libvirt.libvirtError as exc:
            destroyed = already_gone(exc)
        if stream is not None:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
    return SmokeOutcome(
        domain_type=domain_type,
        started=True,
        reached_running=running,
        console_marker=seen.is_set(),
        destroyed=destroyed,
        seconds=elapsed,
        error=error,
    )


def _read_console(stream: Any, seen: threading.Event) -> None:
    import libvirt

    tail = b""
    try:
        while not seen.is_set():
            data = stream.recv(4096)
            if not isinstance(data, bytes) or not data:
                return
            tail = (tail + data)[-256:]
            if MARKER in tail:
                seen.set()
    except libvirt.libvirtError:
        return


def already_gone(exc: Exception) -> bool:
    """Whether a libvirtError from ``destroy`` means the domain had stopped or vanished by itself.

    Decided by libvirt's error code (VIR_ERR_NO_DOMAIN, VIR_ERR_OPERATION_INVALID: "domain is not
    running"), never by the message, which libvirt translates, the daemon's side in its own locale.
    """
    import libvirt

    code = exc.get_error_code() if isinstance(exc, libvirt.libvirtError) else None
    return code in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID)


def _msg(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
