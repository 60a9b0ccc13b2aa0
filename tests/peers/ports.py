"""Free loopback ports for peers, chosen just before they start, and reserved.

A port is picked at random between 20001 and 32767: above the service's default RTP range
(10000-20000, which every monitor on the machine starts from) and below the kernel's
ephemeral range (32768-60999 here). A port the kernel chose (bind to 0) came from that
ephemeral range, and between the probe and the peer's bind another process's outgoing
TCP connection could take it: a Kamailio then failed at start with "Address already in
use" while two suites and five builds ran on the machine.

Outside that range only another pick of ours can race us, and picks are reserved: each
port handed out holds a lock file (`flock`, in RESERVED) for as long as the test process
keeps it, so no other worker or suite on the machine (they all use this module) hands out
the same port meanwhile, however long the peer waits before it binds (a monitor binds its
RTP ports only when a call comes). A process keeps its last MAX_HELD reservations; the
kernel drops a process's locks when it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path

HOST = "127.0.0.1"
# Where a port is probed: every address, so that it suits a peer or a service that binds
# 0.0.0.0 too (such a bind fails on a port any address uses, e.g. another program's
# outgoing connection). The probe socket is closed at once and never talks.
ANY = "0.0.0.0"
FIRST, LAST = 20001, 32767
RESERVED = Path(tempfile.gettempdir()) / "intercom-sip-test-ports"
MAX_HELD = 512  # reservations a process keeps; the oldest go first (their tests are over)
_pick = random.SystemRandom()
_held: dict[int, int] = {}  # port -> the descriptor holding its lock, oldest first


def _reserve(*ports: int) -> bool:
    """Lock every one of `ports` for this process, or none of them."""
    if any(port in _held or not FIRST <= port <= LAST for port in ports):
        return False
    RESERVED.mkdir(exist_ok=True)
    taken: list[tuple[int, int]] = []
    for port in ports:
        fd = os.open(RESERVED / str(port), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            _release(taken)
            return False
        taken.append((port, fd))
    _held.update(taken)
    while len(_held) > MAX_HELD:
        oldest = next(iter(_held))
        os.close(_held.pop(oldest))
    return True


def _release(taken: list[tuple[int, int]]) -> None:
    for _, fd in taken:
        with contextlib.suppress(OSError):
            os.close(fd)


def _pick_free(count: int, *kinds: int, even: bool = False) -> int:
    """The first of `count` consecutive ports, each free for every one of `kinds` and
    reserved for this process."""
    while True:
        first = _pick.randint(FIRST, LAST - count + 1)
        if even and first % 2:
            continue
        span = range(first, first + count)
        if not _reserve(*span):
            continue
        if all(_free(kind, port) for port in span for kind in kinds):
            return first
        _release([(port, _held.pop(port)) for port in span])


def free_port(both: bool = False) -> int:
    """A loopback port free for UDP, and for TCP too when `both`, reserved for this
    process (a peer then fails loudly at start only if something else took it)."""
    kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if both else (socket.SOCK_DGRAM,)
    return _pick_free(1, *kinds)


def free_tcp_port() -> int:
    """A loopback port free for TCP, reserved."""
    return _pick_free(1, socket.SOCK_STREAM)


def _free(kind: int, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((ANY, port))
        except OSError:
            return False
    return True


def free_rtp_port() -> int:
    """An even free loopback UDP port with its RTCP neighbour free too, both reserved,
    for a monitor's `--rtp-ports P-P`: the one port its call leases, so that a capture
    can filter on it alone."""
    return _pick_free(2, socket.SOCK_DGRAM, even=True)


def free_rtp_window(ports: int = 4) -> str:
    """A monitor's `--rtp-ports` value: `ports` even ports, each with its RTCP port, all
    free and reserved.

    Not the service's default range (10000-20000), which every monitor on the machine
    starts from: a port another suite's call just released may still receive that
    call's stray RTP, and a monitor latching to it would send its audio astray.
    """
    first = _pick_free(2 * ports, socket.SOCK_DGRAM, even=True)
    return f"{first}-{first + 2 * (ports - 1)}"


def tcp_free(port: int) -> bool:
    """Whether `port` is free for TCP now."""
    return _free(socket.SOCK_STREAM, port)
