"""The asyncio shell's sockets: one UDP endpoint, and TCP/TLS flows in and out.

Errors leave as `FlowError` with the status text's local cause ("connection
refused", "timeout", "TLS verification failed"). Every flow is bounded: what it may
have waiting to go out (a peer that does not read is dropped), what it may have
buffered unparsed (the framer), and, for connections made to us, how long it may
carry nothing and how many there may be at once.
"""

import asyncio
import contextlib
import errno
import fcntl
import logging
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, TypeVar, cast

from intercom_sip.address import Address
from intercom_sip.loglimit import LogLimit
from intercom_sip.sip import framer, stun
from intercom_sip.sip.message import ParseError

log = logging.getLogger(__name__)
limited = LogLimit(log)

Receive = Callable[[bytes, "Flow"], None]
Unreachable = Callable[[Address], None]

CONNECT_TIMEOUT: Final = 5.0
KEEPALIVE: Final = b"\r\n\r\n"
MAX_OUTPUT: Final = 256 * 1024  # bytes waiting to go out on one connection
# Messages one connection may have handled per turn of the event loop, and all of them
# together: a read of 256 KiB holds a thousand pipelined OPTIONS, and answering them in one
# go held every other client (the API too) for ~100 ms.
PER_FLOW: Final = 16
PER_TURN: Final = 64
# Linux <linux/in.h>; Python 3.11's socket module does not name it.
IP_RECVERR: Final = 11
# What ICMP tells about a UDP peer that counts as a transport error (RFC 3261 §18.4).
UNREACHABLE: Final = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}
)
_EE_ERRNO: Final = struct.Struct("=I")  # struct sock_extended_err begins with ee_errno


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


@dataclass(frozen=True)
class InboundLimits:
    """Connections made to our SIP port: closed after `idle` seconds carrying nothing; at
    most `max_connections`, where a new one closes the longest idle (idle `min_idle` at
    least), else is refused."""

    idle: float = 120.0
    max_connections: int = 64
    min_idle: float = 1.0
    per_source: int = 8  # from one address (CONTRACT §6.9); the proxy's are never refused


SIOCGIFADDR: Final = 0x8915  # <linux/sockios.h>: an interface's IPv4 address
OURS_FOR: Final = 30.0  # seconds the interfaces' addresses are kept before a new look


def interface_addresses() -> frozenset[str]:
    """The IPv4 addresses of this host's interfaces (one per interface: its primary)."""
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            with contextlib.suppress(OSError):
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
                found.add(socket.inet_ntoa(answer[20:24]))
    return frozenset(found)


class OurAddresses:
    """The monitor's addresses, for direct calls (CONTRACT §6.2): the bound one, the
    interfaces' (looked at again every `OURS_FOR` seconds) and the registered contact's
    host (a public address learned by STUN or `received`)."""

    def __init__(self, bound: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._bound, self._clock = bound, clock
        self._cached: frozenset[str] = frozenset()
        self._until = float("-inf")

    def get(self, contact: str | None) -> frozenset[str]:
        now = self._clock()
        if now >= self._until:
            self._cached, self._until = interface_addresses(), now + OURS_FOR
        extra = {self._bound} if self._bound not in ("", "0.0.0.0") else set()  # noqa: S104
        if contact:
            extra.add(contact.partition("@")[2].partition(":")[0].partition(";")[0])
        return self._cached | extra


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


def icmp_errno(ancillary: Iterable[tuple[int, int, bytes]]) -> int | None:
    """The errno an IP_RECVERR error-queue entry carries (its sock_extended_err)."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_RECVERR and len(data) >= _EE_ERRNO.size:
            return int(_EE_ERRNO.unpack_from(data)[0])
    return None


class UdpEndpoint(asyncio.DatagramProtocol):
    """The fixed local SIP port: requests, answers and STUN share it.

    ICMP errors: the one socket serves every peer, so it cannot be connected (which is how
    a UDP socket normally hears of them). With IP_RECVERR the kernel queues each error
    with the destination it concerns; `unreachable(destination)` tells the agent.
    """

    def __init__(self, receive: Receive, unreachable: Unreachable | None = None) -> None:
        self._receive = receive
        self._unreachable = unreachable
        self.stun_answers: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)
        self._transport: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        self._send_failed = False
        self.bound: Address = ("0.0.0.0", 0)  # noqa: S104

    @classmethod
    async def open(
        cls, sock: socket.socket, receive: Receive, unreachable: Unreachable | None = None
    ) -> "UdpEndpoint":
        if sys.platform == "linux":
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        loop = asyncio.get_running_loop()
        _, endpoint = await loop.create_datagram_endpoint(
            lambda: cls(receive, unreachable), sock=sock
        )
        endpoint._sock = sock
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
        self._send_failed = True
        for destination in self._queued_errors():
            limited.log("icmp", logging.INFO, "UDP: %s:%d is unreachable", *destination)
            if self._unreachable is not None:
                self._unreachable(destination)

    def _queued_errors(self) -> list[Address]:
        """Empty the socket's error queue: the destinations ICMP says are unreachable."""
        found: list[Address] = []
        for _ in range(64):  # bounded: the queue is drained at every error
            try:
                assert self._sock is not None
                _, ancillary, _, destination = self._sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except (OSError, AssertionError):
                break
            if icmp_errno(ancillary) in UNREACHABLE and destination:
                found.append((str(destination[0]), int(destination[1])))
        return found

    def send(self, data: bytes, remote: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._send_failed = False
        self._transport.sendto(data, remote)
        if self._send_failed:
            # The kernel hands a pending ICMP error to the next send, which then goes
            # nowhere; that error was about another peer, so send this one again.
            self._transport.sendto(data, remote)

    def flow_to(self, remote: Address) -> UdpFlow:
        return UdpFlow(self, remote, (source_toward(self.bound[0], remote), self.bound[1]))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def source_toward(bound: str, remote: Address) -> str:
    """Our address as `remote` sees it: the bound one, or, bound to every address, the
    one the routing table picks; never an unspecified address in a Contact or Via."""
    if bound not in ("0.0.0.0", ""):  # noqa: S104
        return bound
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(remote)  # a UDP connect sends nothing: it only picks the route
        return str(probe.getsockname()[0])


class StreamFlow(Flow, asyncio.Protocol):
    """One TCP or TLS connection: to the proxy, reused for every request, or to us."""

    def __init__(
        self,
        transport_name: str,
        receive: Receive,
        closed: Callable[["StreamFlow"], None],
        inbound: "Inbound | None" = None,
    ) -> None:
        self.transport = transport_name
        self._receive, self._closed = receive, closed
        self._inbound = inbound
        self._framer = framer.Framer()
        self._stream: asyncio.Transport | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self.last_heard = 0.0  # a loop-clock instant
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
        self._stream = cast(asyncio.Transport, transport)  # uvloop's is one, not by type
        self.local = transport.get_extra_info("sockname")[:2]
        self.remote = transport.get_extra_info("peername")[:2]
        self.last_heard = _now()
        if self._inbound is not None:
            self._inbound.accept(self)

    def data_received(self, data: bytes) -> None:
        self._framer.feed(data)
        if self.work(PER_FLOW) and self._stream is not None:
            # The rest waits for later turns of the loop, and reading waits with it, so
            # that what is buffered stays one read's worth.
            self._stream.pause_reading()
            BACKLOG.add(self)

    def work(self, budget: int) -> bool:
        """Handle at most `budget` waiting messages; True when more may wait."""
        for _ in range(budget):
            event = self._framer.next_event() if self.open else None
            if event is None:
                return False
            self._take(event)
        return True

    def caught_up(self) -> None:
        """Every waiting message is handled: read again."""
        if self.open and self._stream is not None:
            self._stream.resume_reading()

    def _take(self, event: framer.Event) -> None:
        if isinstance(event, bytes):
            # Only a whole message is activity (§6.9): CRLF keep-alives and a message
            # that never ends cannot keep a connection open.
            self.last_heard = _now()
            self._receive(event, self)
        elif isinstance(event, framer.Ping):
            self._send_quietly(b"\r\n")
        elif isinstance(event, ParseError):
            limited.log(
                "framing",
                logging.WARNING,
                "closing %s flow to %s: %s",
                self.transport,
                self.remote,
                event.reason,
            )
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stream = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._closed(self)
        if self._inbound is not None:
            self._inbound.forget(self)

    def send(self, data: bytes) -> None:
        if self._stream is None or self._stream.is_closing():
            raise FlowError("connection closed")
        self._stream.write(data)
        if self._stream.get_write_buffer_size() > MAX_OUTPUT:
            # The peer does not read what we answer: holding more for it only grows us.
            limited.log(
                "output",
                logging.WARNING,
                "dropping the %s flow to %s: it does not read (%d bytes waiting)",
                self.transport,
                self.remote,
                self._stream.get_write_buffer_size(),
            )
            self.abort()
            raise FlowError("connection dropped")

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(FlowError):  # the closed flow's event follows
            self.send(data)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def abort(self) -> None:
        """Close at once, dropping what waits to go out."""
        if self._stream is not None:
            self._stream.abort()

    def watch_idle(self, idle: float) -> None:
        """Close this connection once it has carried nothing for `idle` seconds."""
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_at(self.last_heard + idle, self._check_idle, idle)

    def _check_idle(self, idle: float) -> None:
        if not self.open:
            return
        if _now() - self.last_heard >= idle:
            limited.log(
                "idle",
                logging.INFO,
                "closing the idle %s flow from %s",
                self.transport,
                self.remote,
            )
            self.close()
        else:
            self.watch_idle(idle)

    @property
    def open(self) -> bool:
        return self._stream is not None and not self._stream.is_closing()


class Backlog:
    """Connections with messages waiting, served round robin, a few at a time, at most
    PER_TURN messages in each turn of the event loop: a flood on the SIP port then costs
    every other client one short batch, not a whole read."""

    def __init__(self) -> None:
        self._waiting: dict[StreamFlow, None] = {}  # insertion-ordered set
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, flow: StreamFlow) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run several): start afresh
            self._loop, self._waiting, self._scheduled = loop, {}, False
        self._waiting[flow] = None
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._scheduled = False
        budget = PER_TURN
        while budget > 0 and self._waiting:
            flow = next(iter(self._waiting))
            del self._waiting[flow]
            share = min(PER_FLOW, budget)
            budget -= share
            if flow.work(share):
                self._waiting[flow] = None  # to the back of the queue
            else:
                flow.caught_up()
        if self._waiting:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._turn)


BACKLOG: Final = Backlog()  # one event loop per process: one backlog

Idler = TypeVar("Idler")


def longest_idle(
    last_heard: Iterable[tuple[Idler, float]], now: float, min_idle: float
) -> Idler | None:
    """The one heard from longest ago, if that is at least `min_idle` seconds ago (pure)."""
    oldest = min(last_heard, key=lambda pair: pair[1], default=None)
    if oldest is None or now - oldest[1] < min_idle:
        return None
    return oldest[0]


class Inbound:
    """The connections made to our SIP port: counted, capped, and closed when idle."""

    def __init__(
        self,
        receive: Receive,
        limits: InboundLimits,
        *,
        closed: Callable[[Flow], None],
        favoured: Callable[[str], bool] = lambda host: False,
    ) -> None:
        """`closed` is told of every connection that ends (the port's core: the
        transactions on it can send and hear nothing more); `favoured(host)`: whether
        a connection from `host` is the proxy's, and so never refused."""
        self._receive, self._limits, self._closed = receive, limits, closed
        self._favoured = favoured
        self._flows: dict[StreamFlow, None] = {}  # insertion-ordered set

    def protocol(self) -> StreamFlow:
        """A protocol factory for `loop.create_server`."""
        return StreamFlow("tcp", self._receive, self._closed, inbound=self)

    def __len__(self) -> int:
        return len(self._flows)

    def accept(self, flow: StreamFlow) -> None:
        limits, host = self._limits, flow.remote[0]
        favoured = self._favoured(host)
        same = [f for f in self._flows if f.remote[0] == host]
        crowded = not favoured and len(same) >= limits.per_source
        if crowded and not self._make_room(flow, same, limits.min_idle):
            return
        if len(self._flows) >= limits.max_connections:
            others = [f for f in self._flows if not self._favoured(f.remote[0])]
            # The proxy's connection takes the place of the longest idle of anyone else's.
            room = self._make_room(flow, others, limits.min_idle) or (
                favoured and self._make_room(flow, others or list(self._flows), 0.0)
            )
            if not room:
                return
        self._flows[flow] = None
        flow.watch_idle(limits.idle)

    def _make_room(self, flow: StreamFlow, among: list[StreamFlow], min_idle: float) -> bool:
        """Close the longest idle of `among` (idle `min_idle` at least); else refuse
        `flow` (unless a later try may still make room). True when there is room."""
        victim = longest_idle(((f, f.last_heard) for f in among), _now(), min_idle)
        if victim is None:
            if min_idle > 0.0 and self._favoured(flow.remote[0]):
                return False  # the caller tries again, harder
            limited.log(
                "cap",
                logging.WARNING,
                "SIP TCP: %d connections (%d from %s), refusing it",
                len(self._flows),
                len(among),
                flow.remote[0],
            )
            flow.abort()
            return False
        limited.log(
            "cap",
            logging.INFO,
            "SIP TCP: %d connections, closing the idle one from %s",
            len(self._flows),
            victim.remote,
        )
        self.forget(victim)
        victim.abort()
        return True

    def forget(self, flow: StreamFlow) -> None:
        self._flows.pop(flow, None)

    def close(self) -> None:
        for flow in list(self._flows):
            flow.abort()
        self._flows.clear()


def _now() -> float:
    return asyncio.get_running_loop().time()
