"""The media shell's send schedule on one event loop: lateness against 20 ms, and CPU.

Run: .venv/bin/python bench/media_loop.py [seconds] [busy-ms]

Two MediaSessions talk over 127.0.0.1 in this process (a call's two ends), first on an
idle loop, then beside a task that keeps the loop busy in `busy-ms` slices (a stand-in
for request handlers; `bench/media.py` puts real HTTP load beside a real call). Prints
the lateness of one end's packets (p50, p99 of the last minute, max of all), the slots
skipped, and CPU time per call end as a share of one core.
"""

import asyncio
import sys
import time

from intercom_sip.media.ports import PortPool, PortRange, RtpPort
from intercom_sip.media.session import MediaSession
from intercom_sip.media.source import Loop, tone
from intercom_sip.sip.negotiation import Negotiated

HOST = "127.0.0.1"


async def hog(busy: float) -> None:
    """Hold the loop `busy` seconds at a time, yielding between slices."""
    while True:
        end = time.perf_counter() + busy
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(0)


def lease(pool: PortPool) -> RtpPort:
    port = pool.take(HOST)
    assert isinstance(port, RtpPort), port
    return port


async def call(seconds: float, busy: float) -> str:
    pool = PortPool(PortRange(44000, 44998))
    port_a, port_b = lease(pool), lease(pool)
    sources = [tone(425), tone(1000)]
    assert all(isinstance(s, Loop) for s in sources)
    a = await MediaSession.open(
        port_a, Negotiated("PCMU", 0, 101, HOST, port_b.port, "sendrecv"), sources[0]
    )
    b = await MediaSession.open(
        port_b, Negotiated("PCMU", 0, 101, HOST, port_a.port, "sendrecv"), sources[1]
    )
    load = asyncio.create_task(hog(busy)) if busy else None
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if load is not None:
        load.cancel()
    a.close()
    b.close()
    late = a.lateness()
    stats = a.stats()
    share = "n/a (the load spins)" if busy else f"{100 * cpu / wall / 2:.2f} % of a core"
    return (
        f"packets {late.count}  p50 {late.p50_ms:.3f} ms  p99 {late.p99_ms:.3f} ms  "
        f"max {late.max_ms:.3f} ms  skipped {a.stream.skipped}  "
        f"peer received {b.stats().received}/{stats.sent} lost {b.stats().lost}  "
        f"CPU per call end {share}"
    )


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    busy_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    print(f"idle loop, {seconds:g} s:        {asyncio.run(call(seconds, 0.0))}")
    label = f"loop busy in {busy_ms:g} ms slices"
    print(f"{label}, {seconds:g} s: {asyncio.run(call(seconds, busy_ms / 1000))}")


if __name__ == "__main__":
    main()
