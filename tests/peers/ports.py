"""Free loopback ports for peers, chosen just before they start.

A port is picked at random between 20001 and 32767: above the service's default RTP range
(10000-20000, which every monitor on the machine starts from) and below the kernel's
ephemeral range (32768-60999 here). A port the kernel chose (bind to 0) came from that
ephemeral range, and between the probe and the peer's bind another process's outgoing
TCP connection could take it: a Kamailio then failed at start with "Address already in
use" while two suites and five builds ran on the machine. Outside the range only another
random pick can race us, about one chance in 12,000 per pick.
"""

from __future__ import annotations

import random
import socket

HOST = "127.0.0.1"
# Where a port is probed: every address, so that it suits a peer or a service that binds
# 0.0.0.0 too (such a bind fails on a port any address uses, e.g. another program's
# outgoing connection). The probe socket is closed at once and never talks.
ANY = "0.0.0.0"
FIRST, LAST = 20001, 32767
_pick = random.SystemRandom()


def free_port(both: bool = False) -> int:
    """A loopback port free for UDP, and for TCP too when `both`.

    The port is released before the peer binds it; a race with another process is possible
    but unlikely on a test machine, and the peer then fails loudly at start.
    """
    while True:
        port = _pick.randint(FIRST, LAST)
        if _free(socket.SOCK_DGRAM, port) and (not both or _free(socket.SOCK_STREAM, port)):
            return port


def free_tcp_port() -> int:
    """A loopback port free for TCP."""
    while True:
        port = _pick.randint(FIRST, LAST)
        if _free(socket.SOCK_STREAM, port):
            return port


def _free(kind: int, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((ANY, port))
        except OSError:
            return False
    return True


def free_rtp_port() -> int:
    """An even free loopback UDP port, for a monitor's `--rtp-ports P-P`: the
    one port its call leases, so that a capture can filter on it alone."""
    while True:
        port = free_port()
        if port % 2 == 0:
            return port


def free_rtp_window(ports: int = 4) -> str:
    """A monitor's `--rtp-ports` value: `ports` even ports from a free one.

    Not the service's default range (10000-20000), which every monitor on the machine
    starts from: a port another suite's call just released may still receive that
    call's stray RTP, and a monitor latching to it would send its audio astray.
    """
    first = free_rtp_port()
    return f"{first}-{min(first + 2 * (ports - 1), 65534)}"


def tcp_free(port: int) -> bool:
    """Whether `port` is free for TCP now."""
    return _free(socket.SOCK_STREAM, port)
