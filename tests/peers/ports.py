"""Free loopback ports for peers, chosen just before they start."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
# Where a port is probed: every address, so that it suits a peer or a service that binds
# 0.0.0.0 too (such a bind fails on a port any address uses, e.g. another program's
# outgoing connection). The probe socket is closed at once and never talks.
ANY = "0.0.0.0"


def free_port(both: bool = False) -> int:
    """A loopback port free for UDP, and for TCP too when `both`.

    The port is released before the peer binds it; a race with another process is possible
    but unlikely on a test machine, and the peer then fails loudly at start.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((ANY, 0))
            port: int = udp.getsockname()[1]
        if not both or _tcp_free(port):
            return port


def free_tcp_port() -> int:
    """A loopback port free for TCP."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((ANY, 0))
        port: int = tcp.getsockname()[1]
        return port


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        try:
            tcp.bind((ANY, port))
        except OSError:
            return False
    return True


def free_rtp_port() -> int:
    """An even loopback UDP port the kernel chose, for a monitor's `--rtp-ports P-P`: the
    one port its call leases, so that a capture can filter on it alone."""
    while True:
        port = free_port()
        if port % 2 == 0:
            return port


def free_rtp_window(ports: int = 4) -> str:
    """A monitor's `--rtp-ports` value: `ports` even ports from one the kernel chose.

    Not the service's default range (10000-20000), which every monitor on the machine
    starts from: a port another suite's call just released may still receive that
    call's stray RTP, and a monitor latching to it would send its audio astray.
    """
    first = free_rtp_port()
    return f"{first}-{min(first + 2 * (ports - 1), 65534)}"
