"""The sockets' bounds, on loopback in one process: a connection that does not read, one
that sends no whole message, one that carries nothing, too many at once; and ICMP errors
on the shared UDP port."""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from intercom_sip.sip.message import MAX_MESSAGE
from intercom_sip.sip.transport import (
    IP_RECVERR,
    OURS_FOR,
    PER_TURN,
    Flow,
    Inbound,
    InboundLimits,
    OurAddresses,
    UdpEndpoint,
    icmp_errno,
    longest_idle,
)

OPTIONS = (
    b"OPTIONS sip:101@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:101@127.0.0.1>\r\n"
    b"Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
ANSWER = b"x" * 400  # what a peer's OPTIONS makes us write


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 60))


@asynccontextmanager
async def listening(
    limits: InboundLimits, favoured: str = ""
) -> AsyncIterator[tuple[Inbound, int]]:
    """Our inbound side on a free port: every message is answered with ANSWER; a
    connection from `favoured` is the proxy's."""

    def answer(data: bytes, flow: Flow) -> None:
        flow.send(ANSWER)

    inbound = Inbound(answer, limits, closed=lambda flow: None, favoured=favoured.__eq__)
    server = await asyncio.get_running_loop().create_server(inbound.protocol, "127.0.0.1", 0)
    try:
        yield inbound, server.sockets[0].getsockname()[1]
    finally:
        inbound.close()
        server.close()


async def connect(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the other side has closed (EOF or reset), reading what comes meanwhile."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def test_a_peer_that_does_not_read_is_dropped_at_the_output_bound() -> None:
    async def scenario() -> tuple[bool, int]:
        async with listening(InboundLimits()) as (inbound, port):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            sent, dropped = 0, False
            while sent < 64 * 1024 * 1024:  # far past every kernel buffer and our bound
                try:
                    await asyncio.wait_for(
                        asyncio.get_running_loop().sock_sendall(sock, OPTIONS * 100), 5
                    )
                except (ConnectionResetError, BrokenPipeError):
                    dropped = True
                    break
                sent += len(OPTIONS) * 100
            sock.close()
            return dropped, len(inbound)

    dropped, left = run(scenario)
    assert (dropped, left) == (True, 0)


def test_a_peer_that_never_ends_a_header_is_dropped_at_the_framer_bound() -> None:
    async def scenario() -> bytes:
        async with listening(InboundLimits()) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"OPTIONS sip:a SIP/2.0\r\nX: " + b"y" * (MAX_MESSAGE + 1))
            await writer.drain()
            closed = await closed_by_peer(reader)
            writer.close()
            return b"closed" if closed else b"open"

    assert run(scenario) == b"closed"


def test_a_connection_that_carries_nothing_is_closed_after_the_idle_time() -> None:
    async def scenario() -> tuple[bytes, bytes]:
        async with listening(InboundLimits(idle=0.3)) as (_, port):
            reader, writer = await connect(port)
            writer.write(OPTIONS)  # activity first: the idle time counts from the last
            first = await reader.readexactly(len(ANSWER))
            await closed_by_peer(reader)
            writer.close()
            return first[:1], await reader.read()

    assert run(scenario) == (b"x", b"")


def test_at_the_cap_the_longest_idle_connection_makes_room() -> None:
    async def scenario() -> tuple[list[bool], int]:
        async with listening(InboundLimits(max_connections=3, min_idle=0.0)) as (inbound, port):
            peers = [await connect(port) for _ in range(3)]
            await asyncio.sleep(0.05)
            for reader, writer in peers[1:]:  # the first stays idle longest
                writer.write(OPTIONS)
                await reader.readexactly(len(ANSWER))
            newest = await connect(port)
            newest[1].write(OPTIONS)
            await newest[0].readexactly(len(ANSWER))
            oldest_closed = await asyncio.wait_for(closed_by_peer(peers[0][0]), 10)
            others = []
            for reader, writer in [*peers[1:], newest]:
                writer.write(OPTIONS)
                others.append(len(await reader.readexactly(len(ANSWER))) == len(ANSWER))
            for _, writer in [*peers, newest]:
                writer.close()
            return [oldest_closed, *others], len(inbound)

    assert run(scenario) == ([True, True, True, True], 3)


def test_at_the_cap_with_none_idle_a_new_connection_is_refused() -> None:
    async def scenario() -> tuple[bool, int]:
        async with listening(InboundLimits(max_connections=2, min_idle=60.0)) as (inbound, port):
            kept = [await connect(port) for _ in range(2)]
            reader, writer = await connect(port)
            refused = await asyncio.wait_for(closed_by_peer(reader), 10)
            for kept_reader, kept_writer in kept:
                kept_writer.write(OPTIONS)
                await kept_reader.readexactly(len(ANSWER))
            for _, kept_writer in [*kept, (reader, writer)]:
                kept_writer.close()
            return refused, len(inbound)

    assert run(scenario) == (True, 2)


def test_one_source_gets_at_most_per_source_connections() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        limits = InboundLimits(max_connections=64, min_idle=60.0, per_source=2)
        async with listening(limits) as (inbound, port):
            kept = [await connect(port, "127.0.0.2") for _ in range(2)]
            third = await connect(port, "127.0.0.2")
            refused = await asyncio.wait_for(closed_by_peer(third[0]), 10)
            other = await connect(port, "127.0.0.3")  # another source has its own
            other[1].write(OPTIONS)
            answered = len(await other[0].readexactly(len(ANSWER))) == len(ANSWER)
            for _, writer in [*kept, third, other]:
                writer.close()
            return refused, answered, len(inbound)

    assert run(scenario) == (True, True, 3)


def test_crlf_keepalives_are_not_activity() -> None:
    """§6.9: a connection that only sends keep-alives is closed at the idle time."""

    async def scenario() -> bool:
        async with listening(InboundLimits(idle=0.5)) as (_, port):
            reader, writer = await connect(port)

            async def keep_alive() -> None:
                while True:
                    writer.write(b"\r\n\r\n")
                    await asyncio.sleep(0.1)  # the pace of the pings, not a wait

            pinging = asyncio.create_task(keep_alive())
            try:
                closed = await asyncio.wait_for(closed_by_peer(reader), 10)
            finally:
                pinging.cancel()
            writer.close()
            return closed

    assert run(scenario) is True


def test_the_proxys_connection_is_never_refused() -> None:
    """§6.9: at the cap, with nobody idle, the proxy's new connection closes another's."""

    async def scenario() -> tuple[bool, bool, int]:
        limits = InboundLimits(max_connections=2, min_idle=60.0)
        async with listening(limits, favoured="127.0.0.3") as (inbound, port):
            held = [await connect(port, "127.0.0.2") for _ in range(2)]
            proxy = await connect(port, "127.0.0.3")
            proxy[1].write(OPTIONS)
            answered = len(await proxy[0].readexactly(len(ANSWER))) == len(ANSWER)
            evicted = await asyncio.wait_for(closed_by_peer(held[0][0]), 10)
            for _, writer in [*held, proxy]:
                writer.close()
            return answered, evicted, len(inbound)

    assert run(scenario) == (True, True, 2)


@pytest.mark.parametrize(
    ("heard", "now", "expected"),
    [
        ([], 10.0, None),
        ([("a", 5.0), ("b", 2.0), ("c", 8.0)], 10.0, "b"),
        ([("a", 9.5), ("b", 9.8)], 10.0, None),  # none idle for min_idle (1 s)
        ([("a", 9.0), ("b", 9.8)], 10.0, "a"),
    ],
)
def test_longest_idle(heard: list[tuple[str, float]], now: float, expected: str | None) -> None:
    assert longest_idle(heard, now, 1.0) == expected


def test_icmp_errno_reads_the_extended_error() -> None:
    refused = (socket.IPPROTO_IP, IP_RECVERR, b"o\x00\x00\x00\x02\x03\x03\x00" + bytes(8))
    assert [icmp_errno([refused]), icmp_errno([]), icmp_errno([(0, 1, b"")])] == [111, None, None]


def test_icmp_port_unreachable_names_the_peer_and_spares_the_next_send() -> None:
    async def scenario() -> tuple[list[tuple[str, int]], int, bytes]:
        unreachable: list[tuple[str, int]] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
            dead.bind(("127.0.0.1", 0))
            dead_port = dead.getsockname()[1]  # closed below: nothing listens there
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5)
        ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ours.bind(("0.0.0.0", 0))
        endpoint = await UdpEndpoint.open(ours, lambda data, flow: None, unreachable.append)
        try:
            endpoint.send(b"to the dead", ("127.0.0.1", dead_port))
            # The error may still be pending here: this send must go out all the same.
            endpoint.send(b"to the living", listener.getsockname())
            for _ in range(100):
                if unreachable:
                    break
                await asyncio.sleep(0.02)
            heard = await asyncio.to_thread(listener.recv, 100)
        finally:
            endpoint.close()
            listener.close()
        return unreachable, dead_port, heard

    unreachable, dead_port, heard = run(scenario)
    assert (unreachable, heard) == ([("127.0.0.1", dead_port)], b"to the living")


def test_a_flood_on_one_connection_is_served_a_batch_per_turn_of_the_loop() -> None:
    """A read of pipelined requests is handled a few at a time, so that every other client
    gets its turn; all of them are still answered, in order."""

    async def scenario() -> tuple[list[int], list[bytes]]:
        turns, seen = [0], []
        turn_of_each: list[int] = []
        loop = asyncio.get_running_loop()

        def ticker() -> None:  # one tick per turn of the loop
            turns[0] += 1
            if len(seen) < 1000:
                loop.call_soon(ticker)

        all_seen = asyncio.Event()

        def answer(data: bytes, flow: Flow) -> None:
            seen.append(data)
            turn_of_each.append(turns[0])
            if len(seen) == 1000:
                all_seen.set()

        inbound = Inbound(answer, InboundLimits(), closed=lambda flow: None)
        server = await loop.create_server(inbound.protocol, "127.0.0.1", 0)
        try:
            _, writer = await connect(server.sockets[0].getsockname()[1])
            writer.write(
                b"".join(OPTIONS.replace(b"CSeq: 1", b"CSeq: %d" % n) for n in range(1000))
            )
            await writer.drain()
            loop.call_soon(ticker)
            await asyncio.wait_for(all_seen.wait(), 20)
            writer.close()
        finally:
            inbound.close()
            server.close()
        per_turn = [turn_of_each.count(turn) for turn in set(turn_of_each)]
        return per_turn, seen

    per_turn, seen = run(scenario)
    assert max(per_turn) <= PER_TURN
    assert [b"CSeq: %d " % n in message for n, message in enumerate(seen)] == [True] * 1000


def test_our_addresses_for_direct_calls() -> None:
    """The interfaces' addresses (looked at again after OURS_FOR), the bound one and the
    registered contact's host."""
    now = [0.0]
    ours = OurAddresses("127.0.0.3", clock=lambda: now[0])
    found = ours.get("sip:101-9f3a@203.0.113.7:5060;transport=udp")
    assert {"127.0.0.1", "127.0.0.3", "203.0.113.7"} <= found
    assert ours.get(None) == found - {"203.0.113.7"}
    now[0] = OURS_FOR + 1  # looked at again: the same host
    assert ours.get(None) == found - {"203.0.113.7"}
    assert "0.0.0.0" not in OurAddresses("0.0.0.0").get(None)
