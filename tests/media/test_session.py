"""The media shell over real sockets on 127.0.0.1: two sessions talking to each other."""

import asyncio
import io
import math
import random
import socket
import time
import wave
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, cast

import pytest
import uvloop

from intercom_sip.media import rtp
from intercom_sip.media.g711 import PCMU
from intercom_sip.media.ports import PortPool, PortRange, RtpPort
from intercom_sip.media.recording import Recorder
from intercom_sip.media.session import MAX_READ, READ_EVERY, MediaSession
from intercom_sip.media.source import Loop, tone
from intercom_sip.media.stream import FOREIGN, FRAME, TOO_LONG, UNKNOWN_TYPE
from intercom_sip.sip.negotiation import Negotiated
from tests.peers.ports import free_rtp_port

HOST = "127.0.0.1"
KEY_A = bytes(range(30))
KEY_B = bytes(range(100, 130))
PATIENCE = 10.0  # seconds: the machine is shared and loaded; a pass takes far less
FLOOD = 600  # datagrams at once: more than two reads' worth


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 4 * PATIENCE))


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(PATIENCE):
        while not condition():  # noqa: ASYNC110 - the conditions are counters, not events
            await asyncio.sleep(0.01)


@pytest.fixture
def pool() -> Iterator[PortPool]:
    # From a free port picked at random, not a fixed range: another suite's calls on the same
    # machine may use a fixed one, and a stray packet of theirs would land here.
    first = free_rtp_port()
    pool = PortPool(PortRange(first, min(first + 200, 65534)))
    yield pool
    assert pool.leased == 0  # every session gave its port back


def lease(pool: PortPool) -> RtpPort:
    taken = pool.take(HOST)
    assert isinstance(taken, RtpPort), taken
    return taken


def to(port: int, **changes: Any) -> Negotiated:
    return replace(Negotiated("PCMU", 0, 101, HOST, port, "sendrecv"), **changes)


def source(frequency: int) -> Loop:
    loop = tone(frequency)
    assert isinstance(loop, Loop)
    return loop


@dataclass
class Recording:
    file: io.BytesIO = field(default_factory=io.BytesIO)

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.file)

    def samples(self) -> list[int]:
        self.file.seek(0)
        with wave.open(self.file, "rb") as reader:
            pcm = reader.readframes(reader.getnframes())
        return [
            int.from_bytes(pcm[i : i + 2], "little", signed=True) for i in range(0, len(pcm), 2)
        ]


def goertzel(samples: list[int], frequency: float) -> float:
    """The power of one frequency in 8 kHz samples."""
    k = 2 * math.cos(2 * math.pi * frequency / 8000)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def loudest(samples: list[int]) -> int:
    """The strongest frequency, 200..3000 Hz in 25 Hz steps."""
    return max(range(200, 3001, 25), key=lambda f: goertzel(samples, f))


class Listener(asyncio.DatagramProtocol):
    """A plain UDP socket that keeps what it receives; a relay when given two ends."""

    def __init__(self, ends: tuple[tuple[str, int], tuple[str, int]] | None = None) -> None:
        self.received: list[bytes] = []
        self.ends = ends
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append(data)
        if self.ends is not None and self.transport is not None:
            a, b = self.ends
            self.transport.sendto(data, b if (addr[0], addr[1]) == a else a)


async def listener(
    port: int, ends: tuple[tuple[str, int], tuple[str, int]] | None = None
) -> Listener:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: Listener(ends), local_addr=(HOST, port)
    )
    return protocol


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


# --- talking ---


@pytest.mark.parametrize(("codec", "payload_type"), [("PCMU", 0), ("PCMA", 8)])
def test_two_sessions_hear_each_others_tone(pool: PortPool, codec: str, payload_type: int) -> None:
    async def talk() -> None:
        port_a, port_b = lease(pool), lease(pool)
        heard_a, heard_b = Recording(), Recording()
        a_to_b = to(port_b.port, codec=codec, payload_type=payload_type)
        b_to_a = to(port_a.port, codec=codec, payload_type=payload_type)
        a = await MediaSession.open(port_a, a_to_b, source(425), recorder=heard_b.recorder)
        b = await MediaSession.open(port_b, b_to_a, source(1000), recorder=heard_a.recorder)
        await until(lambda: min(a.stats().received, b.stats().received) >= 25)
        # Both stop sending (hold), and what is on the way arrives: nothing is lost.
        a.update(replace(a_to_b, direction="recvonly"))
        b.update(replace(b_to_a, direction="recvonly"))
        await until(lambda: a.stats().received == b.stats().sent)
        await until(lambda: b.stats().received == a.stats().sent)
        stats = a.stats(), b.stats()
        a.close()
        b.close()
        a.close()  # idempotent
        assert [(s.received, s.lost) for s in stats] == [(b.stats().sent, 0), (a.stats().sent, 0)]
        assert (a.stream.junk, b.stream.junk, a.lateness().count) == (0, 0, a.stats().sent)
        b_heard, a_heard = heard_b.samples(), heard_a.samples()
        assert loudest(b_heard) == 1000  # A recorded B's tone
        assert loudest(a_heard) == 425
        assert goertzel(a_heard, 425) > 1000 * goertzel(a_heard, 1000)

    run(talk)


def test_packets_follow_the_source_address_when_it_differs_from_the_sdp(pool: PortPool) -> None:
    async def latch() -> None:
        port_a, port_b = lease(pool), lease(pool)
        decoy = await listener(free_port())  # what A's SDP names: B is not there
        assert decoy.transport is not None
        decoy_port = decoy.transport.get_extra_info("sockname")[1]
        a = await MediaSession.open(port_a, to(decoy_port), source(425))
        await until(lambda: len(decoy.received) >= 2)
        b = await MediaSession.open(port_b, to(port_a.port), source(1000))
        await until(lambda: b.stats().received >= 10)
        assert a.target == (HOST, port_b.port)
        before = len(decoy.received)
        await asyncio.sleep(10 * FRAME)
        assert len(decoy.received) == before  # nothing more to the SDP address
        a.close()
        b.close()
        decoy.transport.close()

    run(latch)


def test_a_held_session_sends_nothing(pool: PortPool) -> None:
    async def hold() -> None:
        port_a, port_b = lease(pool), lease(pool)
        a = await MediaSession.open(port_a, to(port_b.port, direction="recvonly"), source(425))
        b = await MediaSession.open(port_b, to(port_a.port), source(1000))
        await until(lambda: a.stats().received >= 20)
        assert (a.stats().sent, b.stats().received, a.target) == (0, 0, None)
        a.update(to(port_b.port))  # resumed
        await until(lambda: b.stats().received >= 5)
        a.close()
        b.close()

    run(hold)


def test_dtmf_digits_arrive_once_each(pool: PortPool) -> None:
    async def dtmf() -> None:
        port_a, port_b = lease(pool), lease(pool)
        digits: list[str] = []
        a = await MediaSession.open(port_a, to(port_b.port), source(425))
        b = await MediaSession.open(port_b, to(port_a.port), source(1000), on_digit=digits.append)
        await until(lambda: b.stats().received >= 5)
        assert a.send_dtmf("1#5") is None
        await until(lambda: len(digits) >= 3)
        await asyncio.sleep(10 * FRAME)  # the end packets' repeats come and go
        assert digits == ["1", "#", "5"]
        a.close()
        b.close()

    run(dtmf)


def test_srtp_both_ways_and_the_wire_is_not_clear(pool: PortPool) -> None:
    async def srtp() -> None:
        port_a, port_b = lease(pool), lease(pool)
        relay_port = free_port()
        relay = await listener(relay_port, ((HOST, port_a.port), (HOST, port_b.port)))
        heard_a, heard_b = Recording(), Recording()
        a = await MediaSession.open(
            port_a,
            to(relay_port, remote_key=KEY_B),
            source(425),
            our_key=KEY_A,
            recorder=heard_b.recorder,
        )
        b = await MediaSession.open(
            port_b,
            to(relay_port, remote_key=KEY_A),
            source(1000),
            our_key=KEY_B,
            recorder=heard_a.recorder,
        )
        await until(lambda: min(a.stats().received, b.stats().received) >= 25)
        a.close()
        b.close()
        assert relay.transport is not None
        relay.transport.close()
        assert (a.stream.junk, b.stream.junk) == (0, 0)
        assert loudest(heard_a.samples()) == 425
        assert loudest(heard_b.samples()) == 1000
        tone_a, tone_b = source(425), source(1000)
        clear = {PCMU.encode(loop.next_frame()) for loop in (tone_a, tone_b) for _ in range(8)}
        assert len(relay.received) >= 50
        assert all(len(data) == 12 + 160 + 10 for data in relay.received)
        assert not any(data[12:172] in clear for data in relay.received)

    run(srtp)


def test_junk_is_counted_and_ignored(pool: PortPool) -> None:
    async def junk() -> None:
        port_a, port_b = lease(pool), lease(pool)
        a = await MediaSession.open(port_a, to(port_b.port), source(425))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            for data in (
                b"hello",
                bytes(2000),
                rtp.build(rtp.RtpPacket(99, 1, 1, 1, b"x")),
                bytes([0x80, 200, 0, 6]) + bytes(24),  # an RTCP sender report
            ):
                stranger.sendto(data, (HOST, port_a.port))
            await until(lambda: a.stream.junk == 4)
        # The RTCP is a stranger's (not the SDP address's port or the one above).
        assert a.stream.dropped == {rtp.TOO_SHORT: 1, TOO_LONG: 1, UNKNOWN_TYPE: 1, FOREIGN: 1}
        assert a.last_arrival is None
        b = await MediaSession.open(port_b, to(port_a.port), source(1000))
        await until(lambda: a.stats().received >= 5)
        assert a.last_arrival is not None
        a.close()
        b.close()

    run(junk)


def test_close_gives_the_port_back_and_finishes_the_recording(pool: PortPool) -> None:
    async def close() -> None:
        port_a = lease(pool)
        heard = Recording()
        a = await MediaSession.open(
            port_a, to(free_port()), source(425), recorder=heard.recorder, rng=random.Random(1)
        )
        assert (a.port, pool.leased, a.closed) == (port_a.port, 1, False)
        await asyncio.sleep(5 * FRAME)
        a.close()
        assert (pool.leased, a.closed) == (0, True)
        assert a.stats().sent >= 1
        sent = a.stats().sent
        await asyncio.sleep(5 * FRAME)
        assert a.stats().sent == sent  # the timer is gone
        assert heard.samples() == []
        again = lease(pool)  # a port can be leased again (the pick is random: maybe this one)
        again.release()
        assert pool.leased == 0

    run(close)


def test_an_arrival_is_timed_when_it_came_not_when_the_loop_read_it(pool: PortPool) -> None:
    """The media timeout and the jitter see when a packet arrived: a busy loop that reads
    it later (here blocked for BLOCKED seconds) does not move its arrival time."""
    blocked = 0.5

    async def arrival() -> None:
        port_a, port_b = lease(pool), lease(pool)
        a = await MediaSession.open(port_a, to(port_b.port), source(425))
        packet = rtp.build(rtp.RtpPacket(0, 1, 160, 1234, bytes(160)))
        with port_b.detach() as peer:  # the SDP's address: what a latches to
            peer.setblocking(True)
            peer.sendto(packet, (HOST, port_a.port))
            time.sleep(blocked)  # noqa: ASYNC251 - the point: the loop cannot run
            unblocked = time.monotonic()  # the earliest the loop could read it
            await until(lambda: a.last_arrival is not None)
        assert a.last_arrival is not None
        # Before the loop could read it by at least most of the block (a stall anywhere
        # only adds to that); a read time would be after `unblocked`.
        early = unblocked - a.last_arrival
        a.close()
        port_b.release()
        assert early > blocked / 2, early

    run(arrival)


# --- what a stranger sends, and RTCP ---


def bound(host: str, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def bound_pair(host: str) -> tuple[socket.socket, socket.socket]:
    """A port the kernel chose and the one above it, both bound (the kernel's choice may
    have its neighbour taken: choose again)."""
    while True:
        rtp_sock = bound(host)
        try:
            return rtp_sock, bound(host, rtp_sock.getsockname()[1] + 1)
        except OSError:
            rtp_sock.close()


def waiting(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(2048))
        except BlockingIOError:
            return got


def test_what_reached_the_port_before_the_answer_is_thrown_away(pool: PortPool) -> None:
    """A stranger (on 127.0.0.2) sprays a perfect run at the leased port while the call
    rings: at the answer it is drained, so the first packet heard is the peer's and the
    stranger gets nothing (on the old code it was latched and got the call's audio)."""

    async def drained() -> None:
        port = lease(pool)
        with bound("127.0.0.2") as stranger, bound(HOST) as peer:
            for n in range(20):
                packet = rtp.build(rtp.RtpPacket(0, 100 + n, 160 * n, 99, bytes(160)))
                stranger.sendto(packet, (HOST, port.port))
            a = await MediaSession.open(port, to(peer.getsockname()[1]), source(425))
            assert (a.stream.junk, a.stats().received) == (0, 0)
            await until(lambda: a.stats().sent >= 10)
            assert len(waiting(peer)) >= 10
            assert waiting(stranger) == []
            a.close()

    run(drained)


def test_rtcp_alone_on_the_port_above_keeps_the_call_alive(pool: PortPool) -> None:
    """A peer whose RTP stopped but whose RTCP goes on (RFC 3550 §6): each report moves
    `last_arrival`; our own reports go to its port + 1."""

    async def rtcp_only() -> None:
        port = lease(pool)
        peer_rtp, peer_rtcp = bound_pair(HOST)
        with peer_rtp, peer_rtcp:
            peer_port = peer_rtp.getsockname()[1]
            a = await MediaSession.open(port, to(peer_port), source(425))
            assert a.last_arrival is None
            report = bytes([0x80, 201, 0, 1]) + bytes(4)
            peer_rtcp.sendto(report, (HOST, port.port + 1))
            await until(lambda: a.last_arrival is not None)
            first = a.last_arrival
            peer_rtcp.sendto(report, (HOST, port.port + 1))
            await until(lambda: a.last_arrival != first)
            await until(lambda: waiting(peer_rtcp) != [])  # ours, within 2.5 s
            assert a.stream.rtcp == 2
            assert a.stats().received == 0
            a.close()

    run(rtcp_only)


def test_with_rtcp_mux_reports_share_the_rtp_port(pool: PortPool) -> None:
    async def muxed() -> None:
        port = lease(pool)
        with bound(HOST) as peer:
            peer_port = peer.getsockname()[1]
            a = await MediaSession.open(port, to(peer_port, rtcp_mux=True), source(425))
            peer.sendto(bytes([0x80, 201, 0, 1]) + bytes(4), (HOST, port.port))
            await until(lambda: a.stream.rtcp == 1)
            got: list[bytes] = []

            def a_report() -> bool:
                got.extend(waiting(peer))
                return any(data[1] == 200 for data in got)  # an SR, among the RTP

            await until(a_report)
            a.close()

    run(muxed)


def test_rtcp_adds_no_wakeup_while_sending_and_one_per_report_on_hold(pool: PortPool) -> None:
    """One wake-up a slot stays the rule (bench-media measures it): the report rides the
    first slot due after its time. On hold the session wakes for the report alone."""

    async def wakeups() -> None:
        port = lease(pool)
        peer_rtp, peer_rtcp = bound_pair(HOST)
        with peer_rtp, peer_rtcp:
            peer_port = peer_rtp.getsockname()[1]
            a = await MediaSession.open(port, to(peer_port), source(425))
            await until(lambda: waiting(peer_rtcp) != [])  # the first report, at 2.5 s
            assert a.wakeups <= a.stats().sent
            a.update(to(peer_port, direction="recvonly"))  # hold: nothing sent
            held_at, woken = a.stats().sent, a.wakeups
            await until(lambda: waiting(peer_rtcp) != [])  # the next, 5 s on
            assert a.stats().sent == held_at
            assert a.wakeups - woken <= 2  # the report's, and perhaps a slot's
            a.close()

    run(wakeups)


@pytest.mark.parametrize("ptime", [20, 30, 40])
def test_one_wakeup_a_slot_on_uvloop(pool: PortPool, ptime: int) -> None:
    """uvloop's clock counts whole milliseconds, and a slot's time (start + n * ptime)
    may lie a hair past the millisecond the loop wakes at: that wake-up is the slot's,
    not one to repeat until the clock moves on (which spun the loop 20 times a slot)."""

    async def slots() -> None:
        port = lease(pool)
        with bound(HOST) as peer:
            a = await MediaSession.open(port, to(peer.getsockname()[1], ptime=ptime), source(425))
            await until(lambda: a.stats().sent >= 50)
            sent, woken = a.stats().sent, a.wakeups
            a.close()
        assert woken <= sent + 1, (woken, sent)  # a late wake-up may send two: fewer

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(slots(), 4 * PATIENCE))


def test_a_flood_is_read_a_bounded_batch_at_a_time(pool: PortPool) -> None:
    """While sending, the port is read every READ_EVERY wake-ups, at most MAX_READ
    datagrams for each wake-up since the last read: a flood waits in the socket's buffer
    (the kernel's bound) and is taken in bounded batches, counted whole in the end."""

    async def flood() -> None:
        leased = lease(pool)  # its socket made to hold the whole flood, as root may
        sock, rtcp = leased.detach(), leased.detach_rtcp()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        port = RtpPort(pool, leased.port, sock, rtcp)
        with bound(HOST) as peer, bound(HOST) as stranger:
            a = await MediaSession.open(port, to(peer.getsockname()[1]), source(425))
            stranger.setblocking(True)
            for _ in range(FLOOD):
                stranger.sendto(b"junk", (HOST, port.port))
            seen = [(a.wakeups, a.stream.junk)]
            async with asyncio.timeout(PATIENCE):
                while a.stream.junk < MAX_READ * READ_EVERY + 1:
                    await asyncio.sleep(0)  # each of the session's wake-ups is one turn
                    seen.append((a.wakeups, a.stream.junk))
            a.close()
        reads = [(woken, j2 - j1) for (_, j1), (woken, j2) in pairwise(seen) if j2 > j1]
        assert len(reads) >= 2, reads
        for (before, _), (woken, taken) in pairwise([(0, 0), *reads]):
            assert taken <= MAX_READ * min(woken - before, READ_EVERY), reads

    run(flood)


def test_a_first_latch_starts_sending_at_once(pool: PortPool) -> None:
    """An SDP address that is a name (no DNS on the media path): the first source to pass
    the probation is where packets go, from its next slot, not from the next report."""

    async def latched() -> None:
        port = lease(pool)
        with bound(HOST) as peer:
            a = await MediaSession.open(port, to(0, remote_address="panel.example"), source(425))
            for n in range(6):
                peer.sendto(
                    rtp.build(rtp.RtpPacket(0, n, 160 * n, 5, bytes(160))), (HOST, port.port)
                )
            await until(lambda: a.target == peer.getsockname())
            opened = time.monotonic()
            await until(lambda: len(waiting(peer)) > 0)
            assert time.monotonic() - opened < 1.0
            a.close()

    run(latched)


def test_what_came_since_the_last_read_is_counted_at_close(pool: PortPool) -> None:
    """The RTP port is read every few slots: what came after the last read is read at
    `close`, so the call's record counts every packet that reached us before the end."""

    async def counted() -> None:
        port_a, port_b = lease(pool), lease(pool)
        a = await MediaSession.open(port_a, to(port_b.port), source(425))
        with port_b.detach() as peer:  # the SDP's address: what a latches to
            peer.setblocking(True)
            for n in range(6):
                peer.sendto(
                    rtp.build(rtp.RtpPacket(0, n, 160 * n, 77, bytes(160))), (HOST, port_a.port)
                )
            a.close()  # no slot has run since: nothing was read before
        port_b.release()
        assert a.stats().received == 6

    run(counted)
