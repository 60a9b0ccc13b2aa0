"""What a call's loop wake-ups cost, with no media logic at all: why bench/media.py finds
the monitor's CPU per call above baresip's.

Run: .venv/bin/python bench/media_wakeups.py [seconds]

A bare asyncio loop sends a 172-byte datagram every 20 ms to a peer process that sends
as many back, as a call's RTP does, in two ways: as `media/session.py` first did (a
timer for each send, and a datagram protocol woken for each arrival: two wake-ups a
slot), and as it does now (the arrivals read from the socket at each send: one wake-up
a slot; the session keeps each arrival's time from the kernel's timestamp). Prints the
loop process's CPU as a share of one core for each, twice, interleaved.
"""

import asyncio
import socket
import subprocess
import sys
import time

FRAME = 0.020
PACKET = 172  # RTP header + 160 bytes of G.711
WARMUP = 3.0

PEER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.setblocking(False)
target, start, n = ("127.0.0.1", int(sys.argv[2])), time.monotonic(), 0
while n < int(sys.argv[3]):
    n += 1
    time.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
    s.sendto(b"x" * 172, target)
    try:
        while True:
            s.recv(2000)
    except BlockingIOError:
        pass
"""


class Count(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received += 1


def free_udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def measure(mode: str, seconds: float) -> tuple[float, int]:
    """The loop's CPU share while sending and receiving 50 packets a second each way."""
    me, peer_probe = free_udp_socket(), free_udp_socket()
    peer = peer_probe.getsockname()
    peer_probe.close()
    slots = int((seconds + WARMUP + 1) / FRAME)
    args = [str(peer[1]), str(me.getsockname()[1]), str(slots)]
    child = subprocess.Popen([sys.executable, "-c", PEER, *args])
    try:
        return asyncio.run(run(mode, seconds, me, peer, slots))
    finally:
        child.kill()
        child.wait()
        me.close()


async def run(
    mode: str, seconds: float, me: socket.socket, peer: tuple[str, int], slots: int
) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    counter = Count()
    if mode == "timer + reader":
        transport, _ = await loop.create_datagram_endpoint(lambda: counter, sock=me)

        def send() -> None:
            transport.sendto(b"y" * PACKET, peer)
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
        send()
        if slot < slots:
            loop.call_at(start + slot * FRAME, due)

    loop.call_at(start, due)
    await asyncio.sleep(WARMUP)
    cpu = time.process_time()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / seconds, counter.received


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 15.0
    print(f"50 packets/s each way for {seconds:.0f} s; the loop process's CPU, share of a core")
    for _ in range(2):
        for mode in ("timer + reader", "timer, drain at send"):
            share, received = measure(mode, seconds)
            print(f"  {mode:22s} {100 * share:5.2f} %  ({received} received)")


if __name__ == "__main__":
    main()
