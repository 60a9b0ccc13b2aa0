"""The asyncio shell of one call's media: a UDP socket, a timer, and the pure `MediaStream`.

It only moves datagrams and wakes up on time: what to send and what a datagram means
is decided in `stream.py`. The timer is one `call_later` per due slot, computed from
the absolute schedule, so a late wake-up is measured (`lateness`) and not carried over.

One wake-up a slot: while it sends, the session reads what arrived at every
`READ_EVERY`th slot's wake-up (80 ms at ptime 20) instead of being woken for each arrival.
A wake-up's cost is mostly the code and data it touches again after 20 ms of other work
(measured here: the slot's send path 6 us run twice in a row, 56 us at a wake-up),
so the receiving path is touched once for four packets. Each datagram keeps its arrival
time all the same, from the kernel's receive timestamp (SO_TIMESTAMPNS), so jitter and the
media timeout see when it came, not when it was read; without stamps, every wake-up reads.
A received digit is told at most 80 ms (160 at ptime 40) later. While nothing is sent
(hold), arrivals wake the loop as usual.

What reached the ports before the call was answered (while it rang) is read and thrown
away at `open`: a stranger's packets queued there must not be the first ones heard.
RTCP's own port (port + 1, when not multiplexed) is read when a report is due (every
5 s: within a slot's wake-up while sending) and when the call asks for `last_arrival`
(the media timeout): it needs no wake-up of its own.
"""

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable
from typing import Final

from ..address import Address
from ..calls import RtpFigures
from ..sip.negotiation import Negotiated
from . import stamps
from .lateness import LatenessSummary
from .ports import RtpPort
from .recording import Recorder
from .source import AudioSource
from .stream import MAX_DATAGRAM, DtmfRefused, MediaStream

log = logging.getLogger(__name__)

Clock = Callable[[], float]
OnDigit = Callable[[str], None]

READ_EVERY: Final = 4  # wake-ups while sending from one read of the RTP port to the next
MAX_READ: Final = 64  # datagrams read a slot (on hold: an arrival); the rest wait for the next
MAX_DRAIN: Final = 4096  # datagrams thrown away at the answer: more than a socket buffer holds
# RTCP datagrams read at once (every 5 s, or when the media timer asks): enough to empty a
# socket buffer a stranger filled, so that the peer's next report finds room.
MAX_RTCP_READ: Final = 1024
READ_SIZE: Final = MAX_DATAGRAM + 1  # one byte more: an oversized datagram stays oversized


class MediaSession:
    """RTP for one call, from answer to hang-up. Open with `MediaSession.open`."""

    def __init__(
        self,
        stream: MediaStream,
        port: RtpPort,
        sock: socket.socket,
        clock: Clock,
        on_digit: OnDigit,
        *,
        rtcp: socket.socket | None = None,
    ) -> None:
        self._stream, self._port, self._clock, self._on_digit = stream, port, clock, on_digit
        self._sock: socket.socket | None = sock
        self._rtcp: socket.socket | None = rtcp
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._on_due = self._due  # one bound method for every slot's timer
        self._reading = False  # the loop wakes us for each arrival (nothing is sent)
        self._unread = 0  # wake-ups since the RTP port was last read
        self._stamped = stamps.ask(sock) and (rtcp is None or stamps.ask(rtcp))
        self.unsent = 0  # packets dropped because the socket's buffer was full
        self.wakeups = 0  # times the loop ran us: about one a slot while sending

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
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> "MediaSession":
        """Start sending and receiving on a leased port.

        The session owns the port and the recorder from here: `close` releases the one
        and finishes the other (the caller closes the recorder's file). `our_key`: our
        SRTP key, needed when `negotiated.remote_key` is set, else ValueError (and the
        port and recorder stay the caller's). `on_digit` is called with each digit
        received (RFC 4733). `clock`, if given, must be the clock the event loop runs on
        (its `time`, the default): the timer wakes on the loop's clock, and uvloop's counts
        whole milliseconds.
        """
        clock = clock or asyncio.get_running_loop().time
        rng = rng or random.SystemRandom()
        stream = MediaStream(
            negotiated,
            source,
            rng,
            clock(),
            our_key=our_key,
            recorder=recorder,
            cname=f"{rng.getrandbits(64):016x}@intercom",  # RFC 7022: random, per call
            wall_offset=time.time() - clock(),
        )
        try:
            sock = port.detach()
        except ValueError:
            stream.close()
            raise
        rtcp = port.detach_rtcp()
        for each in (sock, rtcp):
            if each is not None:
                _drain(each)
        session = cls(stream, port, sock, clock, on_digit or _ignore, rtcp=rtcp)
        session._schedule()
        return session

    # --- what the call uses ---

    @property
    def port(self) -> int:
        return self._port.port

    @property
    def last_arrival(self) -> float | None:
        """When RTP or RTCP last came from the current source (the clock's seconds), for
        the media timeout; None: never. Reads what waits on the RTCP port first."""
        self._read_rtcp()
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

    def stats(self) -> RtpFigures:
        return self._stream.stats()

    def lateness(self) -> LatenessSummary:
        return self._stream.lateness.summary()

    @property
    def stream(self) -> MediaStream:
        """The pure state, for counters (`dropped`, `rtcp`, `skipped`) and the benchmark."""
        return self._stream

    @property
    def closed(self) -> bool:
        return self._sock is None

    def close(self) -> None:
        """Stop, close the socket, give the port back, finish the recording; idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sock is not None:
            self._read(MAX_READ * READ_EVERY)  # what came since the last read is counted
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._reading:
                self._loop.remove_reader(sock)
                self._reading = False
            sock.close()
        rtcp, self._rtcp = self._rtcp, None
        if rtcp is not None:
            rtcp.close()
        self._port.release()
        self._stream.close()

    # --- the schedule ---

    def _schedule(self) -> None:
        """Wake at the next slot while sending, else on each arrival; and for RTCP."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sock is None:
            return
        deadline = self._stream.deadline()
        if (deadline is None) != self._reading:
            self._read_on_arrival(deadline is None)
        # While sending, the report goes with the first slot at or after its time: no
        # wake-up of its own. On hold, one wake-up every 5 s for it.
        at = self._stream.report_due() if deadline is None else deadline
        self._timer = self._loop.call_later(max(0.0, at - self._clock()), self._on_due)

    def _read_on_arrival(self, wanted: bool) -> None:
        if self._sock is None or wanted == self._reading:
            return
        if wanted:
            self._loop.add_reader(self._sock, self._readable)
        else:
            self._loop.remove_reader(self._sock)
        self._reading = wanted

    def _due(self) -> None:
        self._timer = None
        self.wakeups += 1
        stream, now = self._stream, self._clock()
        for data, address in stream.tick(now):  # the slot's packet first: it is due now
            self._send(data, address)
        self._unread += 1
        digits = ""
        if self._unread >= READ_EVERY or not self._stamped:
            digits, self._unread = self._read(MAX_READ * self._unread), 0
        if now >= stream.report_due():
            self._read_rtcp()
            report = stream.report(now)
            if report is not None:
                self._send(*report, self._rtcp if not stream.rtcp_mux else None)
        self._schedule()
        if digits:
            self._tell(digits)

    def _readable(self) -> None:
        self.wakeups += 1
        digits = self._read(MAX_READ)
        if self._reading and self._stream.deadline() is not None:
            self._schedule()  # a first latch gave an address to send to: slots from now
        if digits:
            self._tell(digits)

    # --- the socket ---

    def _read(self, limit: int) -> str:
        """Everything waiting on the socket, up to `limit` datagrams: the digits it
        completes."""
        digits = ""
        sock = self._sock
        if sock is None:
            return digits
        receive, now, wall = self._stream.receive, 0.0, 0.0
        for count in range(limit):
            try:
                data, ancillary, _, address = sock.recvmsg(READ_SIZE, stamps.SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # ICMP errors queued on the socket: harmless
                log.debug("RTP port %d: %s", self._port.port, exc)
                break
            if not count:  # the clocks, read together, once something came
                now, wall = self._clock(), time.time()
            arrived = stamps.arrival(ancillary, now, wall) if self._stamped else now
            digits += receive(data, address[:2], arrived)  # (host, port) of v4 and v6
        return digits

    def _read_rtcp(self) -> None:
        """What waits on the RTCP port (port + 1), up to MAX_RTCP_READ datagrams."""
        sock = self._rtcp
        if sock is None:
            return
        now, wall = self._clock(), time.time()
        for _ in range(MAX_RTCP_READ):
            try:
                data, ancillary, _, address = sock.recvmsg(READ_SIZE, stamps.SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("RTCP port %d: %s", self._port.port + 1, exc)
                break
            arrived = stamps.arrival(ancillary, now, wall) if self._stamped else now
            self._stream.receive_rtcp(data, (str(address[0]), int(address[1])), arrived)

    def _send(self, data: bytes, address: Address, via: socket.socket | None = None) -> None:
        sock = via or self._sock
        if sock is None or self._sock is None:
            return
        try:
            sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            # The socket's buffer is full: drop the packet, it would be late anyway.
            self.unsent += 1
        except OSError as exc:  # e.g. ICMP port unreachable before the peer listens
            log.debug("RTP port %d: %s", self._port.port, exc)

    def _tell(self, digits: str) -> None:
        for digit in digits:
            self._on_digit(digit)


def _drain(sock: socket.socket) -> int:
    """Throw away what reached the socket before the answer; how many datagrams."""
    for count in range(MAX_DRAIN):
        try:
            sock.recv(1)
        except (BlockingIOError, InterruptedError):
            return count
        except OSError:  # a queued ICMP error: the datagrams behind it are read next time
            continue
    return MAX_DRAIN


def _ignore(digit: str) -> None:
    """No one listens for digits."""
