"""What a call's wake-ups cost on the service's event loop, with and without the media code.

Run: .venv/bin/python bench/media_wakeups.py [--seconds 15] [--rounds 2] [--loop uvloop]

A peer process sends a 172-byte RTP packet (PCMU, 20 ms) every 20 ms to this process,
which answers in kind, three ways:

- "timer + reader": a bare loop, a timer for each send and a datagram protocol woken for
  each arrival (two wake-ups a slot: how `media/session.py` first worked);
- "timer, drain at send": a bare loop, the arrivals read at each send (one wake-up a slot);
- "MediaSession": the real session (`media/session.py`, a tone, the peer's packets taken
  in: latch, statistics, jitter), as a call runs it.

Prints each one's CPU (user + system, this process) as a share of one core, the wake-ups
per slot, rounds interleaved. The loop is the service's default (`--loop` in `serve`)
unless told. The gap between the second and third lines is what the media code costs.
"""

import argparse
import asyncio
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from intercom_sip.config import LOOPS as LOOP_NAMES
from intercom_sip.media import stamps
from intercom_sip.media.ports import PortPool, PortRange, RtpPort
from intercom_sip.media.session import MediaSession
from intercom_sip.media.source import Loop, tone
from intercom_sip.server import LOOPS, HttpOptions
from intercom_sip.sip.negotiation import Negotiated

HOST = "127.0.0.1"
FRAME = 0.020
PACKET = 172  # RTP header + 160 bytes of G.711
WARMUP = 3.0
MODES = ("timer + reader", "timer, drain at send", "MediaSession")

# The peer: real RTP (one SSRC, sequence and timestamp in step), on its own 20 ms grid.
PEER = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.setblocking(False)
target, start, n = ("127.0.0.1", int(sys.argv[2])), time.monotonic(), 0
while n < int(sys.argv[3]):
    n += 1
    time.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
    s.sendto(struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, 160 * n, 0x1234) + bytes(160), target)
    try:
        while True:
            s.recv(2000)
    except OSError:
        pass
"""


class Count(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received += 1


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def lease() -> RtpPort:
    port = PortPool(PortRange(20000, 65534)).take(HOST)
    assert isinstance(port, RtpPort), port
    return port


def measure(mode: str, seconds: float, loop: str) -> tuple[float, float]:
    """The process's CPU share and the wake-ups a slot, 50 packets a second each way."""
    me, peer = lease(), free_udp_port()
    slots = int((seconds + WARMUP + 1) / FRAME)
    args = [str(peer), str(me.port), str(slots)]
    child = subprocess.Popen([sys.executable, "-c", PEER, *args])
    try:
        with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
            return runner.run(RUNS[mode](seconds, me, (HOST, peer)))
    finally:
        child.kill()
        child.wait()
        me.release()


async def timed(seconds: float, wakeups: Callable[[], int]) -> tuple[float, float]:
    await asyncio.sleep(WARMUP)
    used, woken, wall = cpu(), wakeups(), time.perf_counter()
    await asyncio.sleep(seconds)
    used, woken, wall = cpu() - used, wakeups() - woken, time.perf_counter() - wall
    return used / wall, woken / (wall / FRAME)


async def bare(
    seconds: float, port: RtpPort, peer: tuple[str, int], reader: bool
) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    me, counter, woken = port.detach(), Count(), [0]
    if reader:
        transport, _ = await loop.create_datagram_endpoint(lambda: counter, sock=me)
        send: Callable[[], None] = lambda: transport.sendto(b"y" * PACKET, peer)  # noqa: E731
    else:

        def send() -> None:
            me.sendto(b"y" * PACKET, peer)
            try:
                while True:
                    me.recv(2000)
                    counter.received += 1
            except BlockingIOError:
                pass

    start, slot = loop.time(), 0

    def due() -> None:
        nonlocal slot
        slot += 1
        woken[0] += 1
        send()
        loop.call_at(start + slot * FRAME, due)

    loop.call_at(start, due)
    try:
        return await timed(seconds, lambda: woken[0] + (counter.received if reader else 0))
    finally:
        me.close()


async def session(seconds: float, port: RtpPort, peer: tuple[str, int]) -> tuple[float, float]:
    source = tone(425)
    assert isinstance(source, Loop)
    negotiated = Negotiated("PCMU", 0, 101, peer[0], peer[1], "sendrecv")
    media = await MediaSession.open(port, negotiated, source)
    try:
        return await timed(seconds, lambda: media.wakeups)
    finally:
        media.close()


RUNS: dict[str, Callable[[float, RtpPort, tuple[str, int]], Awaitable[tuple[float, float]]]] = {
    MODES[0]: lambda s, port, peer: bare(s, port, peer, reader=True),
    MODES[1]: lambda s, port, peer: bare(s, port, peer, reader=False),
    MODES[2]: session,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="each measure (15)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three (2)")
    parser.add_argument("--loop", choices=LOOP_NAMES, default=HttpOptions().loop)
    args = parser.parse_args()
    stamps.keep_on()  # as the service does from its first port pool on
    print(
        f"50 packets/s each way for {args.seconds:g} s on {args.loop}; this process's CPU "
        "(share of a core) and wake-ups per 20 ms slot"
    )
    for _ in range(args.rounds):
        for mode in MODES:
            share, woken = measure(mode, args.seconds, args.loop)
            print(f"  {mode:22s} {100 * share:5.2f} %   {woken:5.2f} wake-ups a slot")


if __name__ == "__main__":
    main()
