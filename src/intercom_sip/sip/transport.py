"""The asyncio shell's sockets: one UDP endpoint, and TCP/TLS flows to the proxy.

Errors leave as `FlowError` with the status text's local cause ("connection
refused", "timeout", "TLS verification failed").
"""

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from intercom_sip.sip import framer, stun
from intercom_sip.sip.message import ParseError

log = logging.getLogger(__name__)

Address = tuple[str, int]
Receive = Callable[[bytes, "Flow"], None]

CONNECT_TIMEOUT: Final = 5.0
KEEPALIVE: Final = b"\r\n\r\n"


class FlowError(Exception):
    """A flow could not be opened or used; str() is the cause the status shows."""


@dataclass(frozen=True)
class TlsOptions:
    ca_file: str | None = None
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        """Raises FlowError when the CA file cannot be used: missing, unreadable, no PEM."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except OSError as exc:  # ssl.SSLError is one
            unreadable = exc.strerror if not isinstance(exc, ssl.SSLError) else None
            reason = unreadable or "no CA certificate in it"
            raise FlowError(f"cannot use the TLS CA file {self.ca_file}: {reason}") from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class Flow:
    """Where a request goes and its answers come from: a UDP peer or a connection."""

    transport: str
    local: Address
    remote: Address

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing for UDP; the connection for TCP/TLS."""

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


class UdpFlow(Flow):
    def __init__(self, endpoint: "UdpEndpoint", remote: Address, local: Address) -> None:
        self.transport, self.remote, self.local = "udp", remote, local
        self._endpoint = endpoint

    def send(self, data: bytes) -> None:
        self._endpoint.send(data, self.remote)


class UdpEndpoint(asyncio.DatagramProtocol):
    """The fixed local SIP port: requests, answers and STUN share it."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.stun_answers: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)
        self._transport: asyncio.DatagramTransport | None = None
        self.bound: Address = ("0.0.0.0", 0)  # noqa: S104

    @classmethod
    async def open(cls, sock: socket.socket, receive: Receive) -> "UdpEndpoint":
        loop = asyncio.get_running_loop()
        _, endpoint = await loop.create_datagram_endpoint(lambda: cls(receive), sock=sock)
        return endpoint

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own UDP transport does not subclass DatagramTransport: cast.
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.bound = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        remote = (str(addr[0]), int(addr[1]))
        if stun.is_stun(data):
            if not self.stun_answers.full():
                self.stun_answers.put_nowait(data)
        elif data.strip(b"\r\n"):
            self._receive(data, UdpFlow(self, remote, self.bound))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)

    def send(self, data: bytes, remote: Address) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, remote)

    def flow_to(self, remote: Address) -> UdpFlow:
        return UdpFlow(self, remote, (self._source_toward(remote), self.bound[1]))

    def _source_toward(self, remote: Address) -> str:
        if self.bound[0] not in ("0.0.0.0", ""):  # noqa: S104
            return self.bound[0]
        # Bound to every address: ask the routing table which one reaches the proxy.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(remote)
            return str(probe.getsockname()[0])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class StreamFlow(Flow, asyncio.Protocol):
    """One TCP or TLS connection to the proxy, reused for every request."""

    def __init__(
        self, transport_name: str, receive: Receive, closed: Callable[["StreamFlow"], None]
    ) -> None:
        self.transport = transport_name
        self._receive, self._closed = receive, closed
        self._framer = framer.Framer()
        self._stream: asyncio.Transport | None = None
        self.local = self.remote = ("", 0)

    @classmethod
    async def connect(
        cls,
        transport: str,
        *,
        remote: Address,
        receive: Receive,
        closed: Callable[["StreamFlow"], None],
        tls: ssl.SSLContext | None,
        server_name: str | None,
    ) -> "StreamFlow":
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, flow = await loop.create_connection(
                    lambda: cls(transport, receive, closed),
                    remote[0],
                    remote[1],
                    ssl=tls,
                    server_hostname=server_name if tls else None,
                )
        except ssl.SSLCertVerificationError as exc:
            raise FlowError("TLS verification failed") from exc
        except ssl.SSLError as exc:
            raise FlowError("TLS failure") from exc
        except ConnectionRefusedError as exc:
            raise FlowError("connection refused") from exc
        except TimeoutError as exc:
            raise FlowError("timeout") from exc
        except OSError as exc:
            raise FlowError(exc.strerror or "connection failed") from exc
        return flow

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._stream = transport
        self.local = transport.get_extra_info("sockname")[:2]
        self.remote = transport.get_extra_info("peername")[:2]

    def data_received(self, data: bytes) -> None:
        self._framer.feed(data)
        while (event := self._framer.next_event()) is not None:
            if isinstance(event, bytes):
                self._receive(event, self)
            elif isinstance(event, framer.Ping):
                self.send(b"\r\n")
            elif isinstance(event, ParseError):
                log.warning("closing %s flow to %s: %s", self.transport, self.remote, event.reason)
                self.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self._stream = None
        self._closed(self)

    def send(self, data: bytes) -> None:
        if self._stream is None or self._stream.is_closing():
            raise FlowError("connection closed")
        self._stream.write(data)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    @property
    def open(self) -> bool:
        return self._stream is not None and not self._stream.is_closing()
