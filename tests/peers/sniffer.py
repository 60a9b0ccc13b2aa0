"""What goes over the loopback interface: UDP datagrams seen with an AF_PACKET socket,
so a test can check what is on the wire (e.g. that SRTP is not G.711 in clear) without
tshark, and the media bench can time packets by the kernel's clock.

Needs root (CAP_NET_RAW), as the peer tests run here. Each datagram is seen once, as it
leaves its sender (PACKET_OUTGOING on `lo`), with the kernel's receive timestamp
(SO_TIMESTAMPNS). The list is bounded: past `limit` datagrams, the newest are dropped
and counted.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import process

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35  # Linux; Python's socket module does not name it
ETHERNET = 14  # lo frames carry a zeroed Ethernet header
UDP = 17
LIMIT = 100_000  # datagrams kept: about 16 minutes of one RTP stream each way
SO_ATTACH_FILTER = 26
RECEIVE_BUFFER = 8 << 20  # room for bursts while the reading thread waits its turn
DRAIN_SECONDS = 2.0  # at stop, reading what is queued takes at most this long
_SPACE = socket.CMSG_SPACE(16)  # one timestamp (struct timespec)
# Classic BPF, in the kernel: IPv4 (ethertype at 12) carrying UDP (protocol at 23), else
# drop, so that TCP on lo (an HTTP load beside a call) never reaches this process.
UDP_ONLY = (
    (0x28, 0, 0, 12),  # ldh [12]
    (0x15, 0, 3, 0x0800),  # jeq IPv4, else drop
    (0x30, 0, 0, 23),  # ldb [23]
    (0x15, 0, 1, UDP),  # jeq UDP, else drop
    (0x06, 0, 0, 0x40000),  # accept the frame
    (0x06, 0, 0, 0),  # drop
)


@dataclass(frozen=True)
class Datagram:
    """One UDP datagram on the wire: when (CLOCK_REALTIME, s), from, to, payload."""

    at: float
    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes


class SnifferError(RuntimeError):
    """The capture socket could not be opened (not root?)."""


class Sniffer(process.Peer):
    """Capture the UDP datagrams on `lo` that `wanted(datagram)` keeps."""

    def __init__(self, wanted: Callable[[Datagram], bool], limit: int = LIMIT) -> None:
        self.wanted, self.limit = wanted, limit
        self.datagrams: list[Datagram] = []
        self.dropped = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False

    def start(self) -> None:
        if os.geteuid() != 0:
            raise SnifferError("capturing on lo needs root (CAP_NET_RAW)")
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            _attach_udp_only(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind(("lo", 0))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError as error:
            raise SnifferError(f"cannot capture on lo: {error}") from error
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, daemon=True, name="sniffer")
        self._thread.start()

    def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop capturing, once what the kernel queued before now is read: the reading
        thread may lag on a loaded machine, and its last 0.1 s was once lost."""
        self._stopping = True
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._sock is not None:
            self._drain(self._sock)
            self._sock.close()
            self._sock = None

    def _drain(self, sock: socket.socket) -> None:
        """What is queued, read without waiting; bounded by a clock and the buffer's
        worth, so that traffic that goes on (a spray) cannot keep it reading."""
        sock.setblocking(False)
        deadline = time.monotonic() + DRAIN_SECONDS
        for _ in range(RECEIVE_BUFFER // 64):  # frames of 64 bytes at the least
            try:
                self._take(*sock.recvmsg(65600, _SPACE))
            except OSError:  # BlockingIOError: nothing left queued
                return
            if time.monotonic() > deadline:
                return

    def taken(self) -> list[Datagram]:
        """A copy of what was captured so far."""
        with self._lock:
            return list(self.datagrams)

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stopping:
            try:
                self._take(*self._sock.recvmsg(65600, _SPACE))
            except TimeoutError:
                continue
            except OSError:
                return

    def _take(self, frame: bytes, ancillary: list[Any], _: int, address: Any) -> None:
        if address[2] != PACKET_OUTGOING:
            return  # the same frame again, as lo receives it
        datagram = parse(frame, _stamp(ancillary))
        if datagram is None or not self.wanted(datagram):
            return
        with self._lock:
            if len(self.datagrams) < self.limit:
                self.datagrams.append(datagram)
            else:
                self.dropped += 1


def _attach_udp_only(sock: socket.socket) -> None:
    program = b"".join(struct.pack("HBBI", *instruction) for instruction in UDP_ONLY)
    buffer = ctypes.create_string_buffer(program)  # the kernel copies it at once
    fprog = struct.pack("HL", len(UDP_ONLY), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            stamp: float = seconds + nanoseconds / 1e9
            return stamp
    return 0.0


def parse(frame: bytes, at: float) -> Datagram | None:
    """An IPv4 UDP datagram from a lo frame, or None (IPv6, TCP, fragments, junk)."""
    ip = frame[ETHERNET:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != UDP:
        return None
    header = (ip[0] & 0x0F) * 4
    if struct.unpack("!H", ip[6:8])[0] & 0x3FFF:  # a fragment: not ours to reassemble
        return None
    udp = ip[header:]
    if len(udp) < 8:
        return None
    sport, dport, length = struct.unpack("!HHH", udp[:6])
    source, destination = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    return Datagram(at, (source, sport), (destination, dport), udp[8:length])


def rtp_payload(datagram: bytes) -> tuple[int, bytes] | None:
    """(payload type, payload) of an RTP packet (after CSRCs and any extension), or None."""
    if len(datagram) < 12 or datagram[0] >> 6 != 2:
        return None
    start = 12 + 4 * (datagram[0] & 0x0F)
    if datagram[0] & 0x10 and len(datagram) >= start + 4:
        start += 4 + 4 * struct.unpack("!H", datagram[start + 2 : start + 4])[0]
    return datagram[1] & 0x7F, datagram[start:]
