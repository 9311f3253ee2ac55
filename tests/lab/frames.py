"""Frames seen on an interface of this machine, 802.1Q tags included, through the kernel's packet socket
(AF_PACKET, packet(7)); no capture tool is needed.

The kernel takes a received frame's VLAN tag out of the frame before packet sockets see it and hands it
over as PACKET_AUXDATA (struct tpacket_auxdata, linux/if_packet.h: tp_vlan_tci valid when tp_status has
TP_STATUS_VLAN_VALID); a frame sent with its tag still inline shows it at offset 12 (ETH_P_8021Q). Both
are read, so a tagged frame is seen as tagged either way.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
ETH_P_IP = 0x0800
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
_AUXDATA = struct.Struct(
    "IIIHHHH"
)  # tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid


@dataclass(frozen=True)
class Frame:
    vlan: int | None  # 802.1Q VLAN id, None for an untagged frame
    ethertype: int
    src: str = ""  # IPv4 source and destination, for IPv4 frames
    dst: str = ""


def parse(data: bytes, vlan: int | None) -> Frame:
    ethertype, offset = struct.unpack("!H", data[12:14])[0], 14
    if ethertype == ETH_P_8021Q:
        vlan = struct.unpack("!H", data[14:16])[0] & 0x0FFF
        ethertype, offset = struct.unpack("!H", data[16:18])[0], 18
    if ethertype == ETH_P_IP and len(data) >= offset + 20:
        src = socket.inet_ntoa(data[offset + 12 : offset + 16])
        dst = socket.inet_ntoa(data[offset + 16 : offset + 20])
        return Frame(vlan, ethertype, src, dst)
    return Frame(vlan, ethertype)


class Capture:
    """Frames on ``ifname`` (in this machine's network namespace) while the ``with`` block runs."""

    def __init__(self, ifname: str):
        self.ifname = ifname
        self.frames: list[Frame] = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self._sock.bind((ifname, 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, _ = self._sock.recvmsg(65535, socket.CMSG_SPACE(_AUXDATA.size))
            except TimeoutError:
                continue
            except OSError:
                return
            vlan = None
            for level, kind, cdata in ancillary:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= _AUXDATA.size:
                    status, _, _, _, _, tci, _ = _AUXDATA.unpack(cdata[: _AUXDATA.size])
                    if status & TP_STATUS_VLAN_VALID:
                        vlan = tci & 0x0FFF
            if len(data) >= 14:
                self.frames.append(parse(data, vlan))

    def __enter__(self) -> Capture:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
