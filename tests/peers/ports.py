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

That holds only if no peer binds in this range what it was not given. baresip did: its
RTP ports came at random from its default range, 1024-49152, and on CI a call's port
was the one another test had just reserved and probed for a monitor, which then failed
at start ("cannot use SIP port 127.0.0.1:20950: Address already in use"). So every peer
gets each port it binds from here (baresip's RTP range and TLS port, SIPp's video port
too), or binds where the kernel picks (linphone, measured; our own clients: the
ephemeral range); `strays` finds a peer that does otherwise, and the call tests look
while a call is up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
from collections.abc import Collection
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
    return free_span(1, both)


def free_span(count: int, both: bool = False) -> int:
    """The first of `count` consecutive ports, each free for UDP (and TCP when `both`)
    and reserved: for a peer that binds beside its port (baresip's TLS on P + 1, SIPp's
    video on P + 2)."""
    kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if both else (socket.SOCK_DGRAM,)
    return _pick_free(count, *kinds)


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


def rtp_range(pairs: int) -> tuple[int, int]:
    """FIRST and LAST of `pairs` RTP/RTCP pairs of UDP ports, FIRST even, all free and
    reserved: a peer's or a monitor's RTP range."""
    first = _pick_free(2 * pairs, socket.SOCK_DGRAM, even=True)
    return first, first + 2 * pairs - 1


def free_rtp_window(ports: int = 4) -> str:
    """A monitor's `--rtp-ports` value: `ports` even ports, each with its RTCP port, all
    free and reserved.

    Not the service's default range (10000-20000), which every monitor on the machine
    starts from: a port another suite's call just released may still receive that
    call's stray RTP, and a monitor latching to it would send its audio astray.
    """
    first, last = rtp_range(ports)
    return f"{first}-{last - 1}"


def tcp_free(port: int) -> bool:
    """Whether `port` is free for TCP now."""
    return _free(socket.SOCK_STREAM, port)


def strays(pid: int, given: Collection[int] | None = None) -> list[int]:
    """The ports in our range (FIRST-LAST) that process `pid` or a descendant has bound
    and that are not `given` to it (by default: not held by this process).

    A peer that binds such a port can take one that another test reserved and probed,
    and that test's peer then fails at start ("Address already in use"): every peer is
    configured so that this stays empty, and the call tests look while a call is up.
    """
    allowed = _held if given is None else given
    return sorted(
        port for port in _bound(_family(pid)) if FIRST <= port <= LAST and port not in allowed
    )


def _family(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc."""
    found, todo = [], [pid]
    while todo:
        one = todo.pop()
        found.append(one)
        for task in Path(f"/proc/{one}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(child) for child in task.read_text().split()]
    return found


def _bound(pids: list[int]) -> set[int]:
    """The local ports of the IP sockets the processes `pids` hold open."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports = set()
    for table in ("udp", "udp6", "tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                fields = row.split()  # sl local_address rem_address st ... uid timeout inode
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
