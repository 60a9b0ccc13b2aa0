"""The STUN adapter's `query` against a real coturn, from an asyncio UDP socket."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from intercom_sip.sip.stun import is_stun, query

from .coturn import Coturn
from .relay import UdpRelay

Address = tuple[str, int]


class SipSocket(asyncio.DatagramProtocol):
    """What the SIP transport does with its socket: STUN datagrams go to a queue."""

    def __init__(self) -> None:
        self.stun: asyncio.Queue[bytes] = asyncio.Queue()
        self.sip: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if is_stun(data):
            self.stun.put_nowait(data)
        else:
            self.sip.append(data)

    def send(self, datagram: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(datagram, to)


async def mapped_through(server: Address, within: float = 2.0) -> tuple[Address | None, Address]:
    """Query `server` from a fresh socket: (the mapped address, the socket's own)."""
    loop = asyncio.get_running_loop()
    transport, sock = await loop.create_datagram_endpoint(SipSocket, local_addr=("127.0.0.1", 0))
    try:
        mapped = await query(sock.send, sock.stun, server, timeout=within)
        return mapped, transport.get_extra_info("sockname")
    finally:
        transport.close()


@pytest.mark.peers
def test_query_maps_a_direct_socket_to_itself(coturn: Coturn) -> None:
    mapped, own = asyncio.run(mapped_through(coturn.address))
    assert mapped == own


@pytest.mark.peers
def test_query_through_a_nat_maps_the_outside_port(coturn: Coturn) -> None:
    with UdpRelay(coturn.address) as relay:
        mapped, own = asyncio.run(mapped_through(relay.address))
        assert (mapped, mapped != own) == (relay.outside(own), True)


@pytest.mark.peers
def test_query_to_a_silent_server_is_none(coturn: Coturn) -> None:
    coturn.stop()  # its port now answers nothing, or an ICMP error the socket swallows
    mapped, _ = asyncio.run(mapped_through(coturn.address, within=0.6))
    assert mapped is None
