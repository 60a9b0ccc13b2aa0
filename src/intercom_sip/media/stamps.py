"""The kernel's receive time of each datagram (SO_TIMESTAMPNS), on a session's clock.

Linux stamps a datagram as it arrives only while some socket on the machine has asked for
stamps: the switch is one system-wide reference count whose enabling and disabling the
kernel defers to a worker. A socket that asks just after the last other one closed may be
served by the fallback instead, which stamps each datagram when it is *read*; then a busy
loop's delay would pass for network jitter and for the peer's silence. Measured here: of
ten sockets opened and closed in turn, the first got true arrival times and the nine
after it got read times; with one stamping socket held open, all ten got true ones
(`tests/media/test_stamps.py`). So the process holds one such socket for its whole life,
from the first port pool on (`keep_on`), and the count never falls to zero under a call.
"""

import atexit
import socket
import struct
import time
from typing import Final

SO_TIMESTAMPNS: Final = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; unnamed in Python
SPACE: Final = socket.CMSG_SPACE(16)  # struct timespec
PROBES: Final = 50
PROBE_WAIT: Final = 0.002  # seconds a probe datagram waits unread

_held: list[socket.socket] = []  # at most one: the socket that keeps stamping on


def keep_on() -> None:
    """Hold one stamping socket open for the process's life, and return once the kernel
    stamps on arrival (its switch is deferred: 2-4 ms here; at most PROBES waits).
    Idempotent; never raises: without stamps, arrivals are timed when read."""
    if _held:
        return
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
    except OSError:
        return
    if not ask(sock):
        sock.close()
        return
    _held.append(sock)
    atexit.register(sock.close)
    for _ in range(PROBES):
        if _stamped_on_arrival(sock):
            return


def _stamped_on_arrival(sock: socket.socket) -> bool:
    """Send ourselves a datagram, read it PROBE_WAIT later: was it stamped before that?"""
    try:
        sock.sendto(b"", sock.getsockname())
        sent = time.time()
        time.sleep(PROBE_WAIT)
        _, ancillary, _, _ = sock.recvmsg(1, SPACE)
    except OSError:
        return True  # cannot tell: do not wait for it
    wall = time.time()
    return arrival(ancillary, wall, wall) < sent + PROBE_WAIT / 2  # on the wall clock


def ask(sock: socket.socket) -> bool:
    """Ask the kernel for each datagram's receive time; False where it will not."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def arrival(ancillary: list[tuple[int, int, bytes]], now: float, wall: float) -> float:
    """A datagram's receive time on the session's clock: `now` and `wall` are that clock
    and the wall clock read together; a missing or future stamp counts as `now`."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            stamp: float = seconds + nanoseconds * 1e-9
            return min(now, now - (wall - stamp))
    return now
