"""The asyncio shell of one call's media: a UDP socket, a timer, and the pure `MediaStream`.

It only moves datagrams and wakes up on time: what to send and what a datagram means
is decided in `stream.py`. The timer is one `call_later` per due slot, computed from
the absolute schedule, so a late wake-up is measured (`lateness`) and not carried over.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import cast

from ..sip.negotiation import Negotiated
from .lateness import LatenessSummary
from .ports import RtpPort
from .recording import Recorder
from .source import AudioSource
from .stream import Address, DtmfRefused, MediaStream, RtpStats

log = logging.getLogger(__name__)

Clock = Callable[[], float]
OnDigit = Callable[[str], None]


class MediaSession(asyncio.DatagramProtocol):
    """RTP for one call, from answer to hang-up. Open with `MediaSession.open`."""

    def __init__(
        self, stream: MediaStream, port: RtpPort, clock: Clock, on_digit: OnDigit
    ) -> None:
        self._stream, self._port, self._clock, self._on_digit = stream, port, clock, on_digit
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False  # asyncio's buffer for the socket is past its high-water mark
        self.unsent = 0  # packets dropped because the socket's buffer was full

    @classmethod
    async def open(
        cls,
        port: RtpPort,
        negotiated: Negotiated,
        source: AudioSource,
        *,
        our_key: bytes | None = None,
        recorder: Recorder | None = None,
        on_digit: OnDigit | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> "MediaSession":
        """Start sending and receiving on a leased port.

        The session owns the port and the recorder from here: `close` releases the one
        and finishes the other (the caller closes the recorder's file). `our_key`: our
        SRTP key, needed when `negotiated.remote_key` is set, else ValueError (and the
        port and recorder stay the caller's). `on_digit` is called with each digit
        received (RFC 4733). `clock` must be the clock the event loop runs on
        (`time.monotonic` for asyncio's own loops).
        """
        stream = MediaStream(
            negotiated,
            source,
            rng or random.SystemRandom(),
            clock(),
            our_key=our_key,
            recorder=recorder,
        )
        loop = asyncio.get_running_loop()
        try:
            sock = port.detach()
        except ValueError:
            stream.close()
            raise
        try:
            _, session = await loop.create_datagram_endpoint(
                lambda: cls(stream, port, clock, on_digit or _ignore), sock=sock
            )
        except BaseException:
            sock.close()
            port.release()
            stream.close()
            raise
        return session

    # --- what the call uses ---

    @property
    def port(self) -> int:
        return self._port.port

    @property
    def last_arrival(self) -> float | None:
        """When RTP last arrived (the clock's seconds), for the media timeout; None: never."""
        return self._stream.last_arrival

    @property
    def target(self) -> Address | None:
        return self._stream.target

    def update(self, negotiated: Negotiated) -> None:
        """A re-INVITE's outcome: hold, resume, a new address, codec or key."""
        self._stream.update(negotiated, self._clock())
        self._schedule()

    def send_dtmf(self, digits: str) -> DtmfRefused | None:
        """Queue digits as RFC 4733 events; refused when not negotiated (use SIP INFO)."""
        return self._stream.send_dtmf(digits)

    def stats(self) -> RtpStats:
        return self._stream.stats()

    def lateness(self) -> LatenessSummary:
        return self._stream.lateness.summary()

    @property
    def stream(self) -> MediaStream:
        """The pure state, for counters (`dropped`, `rtcp`, `skipped`) and the benchmark."""
        return self._stream

    @property
    def closed(self) -> bool:
        return self._transport is None

    def close(self) -> None:
        """Stop, close the socket, give the port back, finish the recording; idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._port.release()
        self._stream.close()

    # --- asyncio ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own UDP transport does not subclass DatagramTransport: cast.
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._schedule()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        digits = self._stream.receive(data, (str(addr[0]), int(addr[1])), self._clock())
        if self._timer is None:
            self._schedule()  # latching may have given a first address to send to
        for digit in digits:
            self._on_digit(digit)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the peer is not listening yet: harmless.
        log.debug("RTP port %d: %s", self._port.port, exc)

    def pause_writing(self) -> None:
        # asyncio queues what the socket will not take at once (up to 64 KiB by default
        # before it says so): packets are dropped until it drains, they would be late.
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:  # closed under us, not by `close`
            self.close()

    # --- the schedule ---

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._stream.deadline()
        if deadline is None or self._transport is None:
            return
        delay = max(0.0, deadline - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._due)

    def _due(self) -> None:
        self._timer = None
        for data, address in self._stream.tick(self._clock()):
            self._send(data, address)
        self._schedule()

    def _send(self, data: bytes, address: Address) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._paused:
            self.unsent += 1
            return
        transport.sendto(data, address)


def _ignore(digit: str) -> None:
    """No one listens for digits."""
