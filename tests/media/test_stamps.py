"""Arrival times from the kernel: true ones for every call, not only the first."""

import socket
import struct
import time

from intercom_sip.media import stamps

HELD = 0.15  # how long each datagram waits unread


def read_after_a_wait() -> float:
    """Open a stamping socket, let a datagram wait at least HELD seconds unread: how long
    before the read its stamp says it arrived (a stall anywhere only makes that longer;
    a stamp of the read time makes it about 0)."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer,
    ):
        ours.bind(("127.0.0.1", 0))
        assert stamps.ask(ours)
        peer.sendto(b"x", ours.getsockname())
        time.sleep(HELD)
        reading = time.monotonic()
        _, ancillary, _, _ = ours.recvmsg(16, stamps.SPACE)
        return reading - stamps.arrival(ancillary, time.monotonic(), time.time())


def test_every_socket_in_turn_gets_the_arrival_time_not_the_read_time() -> None:
    """Sockets opened one after another, each closed 0.1 s before the next: without a
    socket held stamping, all got the read time here (0.15 s late), as the kernel's
    deferred switch went off between them; the first right after `keep_on` too."""
    stamps.keep_on()
    before_read = []
    for _ in range(4):
        before_read.append(read_after_a_wait())
        time.sleep(0.1)
    assert all(early > HELD / 2 for early in before_read), before_read


def test_keep_on_holds_one_socket_however_often_it_is_called() -> None:
    stamps.keep_on()
    stamps.keep_on()
    assert len(stamps._held) == 1


def stamp(at: float) -> list[tuple[int, int, bytes]]:
    seconds = int(at)
    data = struct.pack("qq", seconds, round((at - seconds) * 1e9))
    return [(socket.SOL_SOCKET, stamps.SO_TIMESTAMPNS, data)]


def test_the_stamp_is_moved_onto_the_sessions_clock() -> None:
    assert abs(stamps.arrival(stamp(1000.0), now=50.0, wall=1000.25) - 49.75) < 1e-6


def test_no_stamp_or_one_from_the_future_counts_as_now() -> None:
    assert stamps.arrival([], now=50.0, wall=1000.0) == 50.0
    assert stamps.arrival(stamp(1001.0), now=50.0, wall=1000.0) == 50.0
    short = [(socket.SOL_SOCKET, stamps.SO_TIMESTAMPNS, b"short")]
    assert stamps.arrival(short, now=50.0, wall=1000.0) == 50.0
