"""tests/lab/frames.py on a veth pair of this machine: a frame sent with an inline 802.1Q tag arrives with
the tag taken out by the kernel (this machine has no 8021q driver: the core does that) and is still read
as tagged, with its addresses; an untagged frame is read as untagged."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time

import pytest

from tests.lab.frames import ETH_P_8021Q, ETH_P_IP, Capture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="packet sockets and veths need root")


def _ipv4(src: str, dst: str) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20, 0, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    return header + b"\0" * 26


def test_tagged_and_untagged_frames_are_told_apart() -> None:
    a, b = f"b2f{os.getpid() % 100000}a", f"b2f{os.getpid() % 100000}b"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    try:
        for dev in (a, b):
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        dst, src = bytes.fromhex("02b2ffffff02"), bytes.fromhex("02b2ffffff01")
        tagged = (
            dst + src + struct.pack("!HHH", ETH_P_8021Q, 20, ETH_P_IP) + _ipv4("10.216.9.11", "10.216.9.12")
        )
        plain = dst + src + struct.pack("!H", ETH_P_IP) + _ipv4("10.213.9.11", "10.213.9.12")
        sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sender.bind((a, 0))
        with Capture(b) as cap:
            time.sleep(0.2)
            sender.send(tagged)
            sender.send(plain)
            time.sleep(0.5)
        sender.close()
        seen = {(f.vlan, f.src, f.dst) for f in cap.frames if f.ethertype == ETH_P_IP}
        assert (20, "10.216.9.11", "10.216.9.12") in seen, cap.frames
        assert (None, "10.213.9.11", "10.213.9.12") in seen, cap.frames
    finally:
        subprocess.run(["ip", "link", "delete", a], check=False)
