"""One call's media, pure: the 20 ms send schedule, latching, hold, DTMF, what is received.

The asyncio shell (`session.py`) reads the clock and moves datagrams; this decides what
to send and when, and what a received datagram means. Times are seconds of one monotonic
clock, passed in.

- Sending is on an absolute schedule: slot n is due at start + n * ptime (20, 30 or
  40 ms, the offer's), so a late wake-up never shifts the slots after it. A few slots
  late, the missed ones go at once; more than `MAX_BURST` late, they are skipped (the
  timestamp jumps, as for silence, and the sequence stays unbroken) rather than sent as
  a burst the peer cannot play.
- Packets are taken from, and sent to, the latch's current source (`latch.py`: the SDP
  address first; another only after probation, and never over a live one). Datagrams
  from any other source are dropped, not played nor counted.
- Nothing is sent on hold (a direction without "send", or no address). A digit is a
  telephone event taking the audio's slots (RFC 4733 §2.5.1), a short gap of audio
  after each.
- RTCP (`rtcp.py`): a report every 5 s, due with a slot while sending (no wake-up of
  its own then), on port + 1 or on the RTP port with rtcp-mux. RTCP from the current
  source (its port, or the one above) is a sign of life, as RTP is.
- A received datagram is checked (size, SRTP, RTP, payload type, source), counted into
  the stats, then decoded and recorded, or given to the digit receiver. Junk is
  counted by reason and dropped, never raised.
"""

import ipaddress
import random
from collections import deque
from dataclasses import dataclass
from typing import Final

from ..address import Address
from ..calls import RtpFigures
from ..sip.negotiation import ABILITIES, OUR_EVENT_TYPE, Negotiated
from ..sip.syntax import DTMF_DIGITS as DIGITS
from . import rtcp, rtp
from .dtmf import DigitReceiver, digit_payloads, parse_event
from .frames import Frames
from .g711 import CODECS, PCMA, PCMU, Codec
from .latch import Latch
from .lateness import Lateness
from .recording import Recorder
from .source import AudioSource
from .srtp import SrtpError, SrtpSession
from .stats import ReceiveStats

Datagram = tuple[bytes, Address]

FRAME: Final = 0.020  # the default slot (ptime 20)
SAMPLE_RATE: Final = 8000
MAX_BURST: Final = 3  # slots late that are still sent (60 ms a jitter buffer absorbs)
# A wake-up this little before a slot's time is on time. start + n * ptime carries float
# rounding, and a loop whose clock counts whole milliseconds (uvloop's) wakes at the slot's
# millisecond, which may read a hair below it: taken as early, the shell asked again for a
# wake-up "now" and the loop spun until its clock's next millisecond (20 wake-ups a slot).
SLACK: Final = 1e-6
MAX_DATAGRAM: Final = 1500
MAX_DIGITS: Final = 64  # waiting to be sent: two API requests' worth
DIGIT_GAP: Final = 3  # audio slots between two digits (60 ms)
COMFORT_NOISE: Final = 13  # RFC 3389: part of the stream, not played

TOO_LONG: Final = f"longer than {MAX_DATAGRAM} bytes"
FOREIGN: Final = "not from the current source"
UNKNOWN_TYPE: Final = "unexpected payload type"
NOT_RTCP: Final = "not RTCP"

NO_EVENTS: Final = "telephone-event was not negotiated"
NOT_DIGITS: Final = "DTMF digits are 0-9, *, #, A-D"
TOO_MANY_DIGITS: Final = f"more than {MAX_DIGITS} DTMF digits waiting"

_AUDIO, _EVENT, _OTHER = "audio", "event", "other"
_NOT_PACKETS: Final = (rtp.RtpError, rtp.Rtcp)


@dataclass(frozen=True)
class DtmfRefused:
    """Why digits were not queued (the call may send them as SIP INFO instead)."""

    reason: str


class MediaStream:
    """The media of one call: what to send at each slot, and what received packets mean."""

    def __init__(
        self,
        negotiated: Negotiated,
        source: AudioSource,
        rng: random.Random,
        now: float,
        *,
        our_key: bytes | None = None,
        recorder: Recorder | None = None,
        cname: str = "intercom",
        wall_offset: float = 0.0,
    ) -> None:
        """`wall_offset`: Unix time minus `now`'s clock, for the NTP time of our SRs."""
        self._source, self._rng, self._our_key, self._recorder = source, rng, our_key, recorder
        self._sender = rtp.Sender(rng)
        self._earlier_sent = 0  # by the senders a new key replaced
        self._srtp = _srtp(our_key, negotiated.remote_key)
        self._stats, self._digits_in = ReceiveStats(), DigitReceiver()
        self._digits_out: deque[str] = deque()
        self._event_packets: deque[bytes] = deque()
        self._gap = 0
        self._start: float | None = None  # when slot 0 was due; None: not sending
        self._slot = 0
        self._frame = FRAME  # seconds of audio a slot holds: the negotiated ptime
        self._frames = Frames(source, CODECS[negotiated.codec], _samples(negotiated))
        # Of the negotiated values, what each slot and each packet reads (set by _apply):
        self._sends = False  # the direction has "send" and there is an address
        self._kinds: dict[int, str] = {}  # payload type -> _AUDIO, _EVENT or _OTHER
        self._audio_type = negotiated.payload_type
        self.latch = Latch(_ip_address(negotiated), now)
        self.reporter = rtcp.Reporter(cname, now)
        self._wall_offset = wall_offset
        self.last_arrival: float | None = None  # RTP or RTCP from the current source
        self.rtcp = 0  # RTCP packets taken as a sign of life
        self.dropped: dict[str, int] = {}  # by reason: a fixed set of texts
        self.skipped = 0  # slots skipped because the shell woke too late
        self.lateness = Lateness()
        self._negotiated = negotiated
        self._apply(negotiated, now)

    # --- what the call asks ---

    def update(self, negotiated: Negotiated, now: float) -> None:
        """A re-INVITE's outcome: hold or resume, a new address, codec or key."""
        old, self._negotiated = self._negotiated, negotiated
        if (negotiated.remote_address, negotiated.remote_port) != (
            old.remote_address,
            old.remote_port,
        ):
            self.latch.move(_ip_address(negotiated), now)  # RFC 3264 §8.3.1: at once
        if negotiated.ptime != old.ptime and self._start is not None:
            due = self.deadline() or now
            self._start, self._slot = due, 0  # the next slot stays due when it was
        if negotiated.remote_key != old.remote_key:
            # A new key: a new SSRC too, so that no packet index is used twice with a key.
            self._earlier_sent += self._sender.sent
            self._sender = rtp.Sender(self._rng)
            self._srtp = _srtp(self._our_key, negotiated.remote_key)
        self._apply(negotiated, now)

    def send_dtmf(self, digits: str) -> DtmfRefused | None:
        """Queue digits as RFC 4733 events, sent in the coming slots."""
        if self._negotiated.event_payload_type is None:
            return DtmfRefused(NO_EVENTS)
        if not digits or any(d not in DIGITS for d in digits.upper()):
            return DtmfRefused(NOT_DIGITS)
        if len(self._digits_out) + len(digits) > MAX_DIGITS:
            return DtmfRefused(TOO_MANY_DIGITS)
        self._digits_out.extend(digits.upper())
        return None

    def stats(self) -> RtpFigures:
        summary = self._stats.summary()
        sent = self._earlier_sent + self._sender.sent
        return RtpFigures(sent, summary.received, summary.lost, summary.jitter_ms)

    @property
    def target(self) -> Address | None:
        """Where packets go now; None while nothing is sent."""
        return self.latch.current if self._sends else None

    @property
    def samples(self) -> int:
        """Samples in one slot: 160, 240 or 320 (ptime 20, 30, 40)."""
        return _samples(self._negotiated)

    # --- sending ---

    def deadline(self) -> float | None:
        """When the next slot is due; None while nothing is sent."""
        return None if self._start is None else self._start + self._slot * self._frame

    def tick(self, now: float) -> list[Datagram]:
        """The packets due by `now`: usually one; each one's lateness is recorded."""
        # Run 50 times a second, each time after 20 ms of other work: it reads each value
        # once and calls as little as it can (what a wake-up touches is what it costs).
        start, frame = self._start, self._frame
        target = self.latch.current if self._sends else None
        if target is None or start is None or now < (due := start + self._slot * frame) - SLACK:
            return []
        behind = int((now - due) / frame)
        if behind > MAX_BURST:
            for _ in range(behind):
                self._skip_slot()
            self.skipped += behind
        datagrams, srtp, record = [], self._srtp, self.lateness.record
        while (due := start + self._slot * frame) <= now + SLACK:
            if self._event_packets or self._digits_out:
                packet = self._next_event_packet()
            else:
                if self._gap:
                    self._gap -= 1
                packet = self._sender.audio(self._audio_type, self._frames.next())
            datagrams.append((packet if srtp is None else srtp.protect(packet), target))
            record(max(0.0, now - due))
            self._slot += 1
        return datagrams

    # --- RTCP ---

    @property
    def rtcp_mux(self) -> bool:
        return self._negotiated.rtcp_mux

    def report_due(self) -> float:
        """When our next RTCP report is due."""
        return self.reporter.due

    def report(self, now: float) -> Datagram | None:
        """Our RTCP report when it is due (None before, or with no one to send it to)."""
        if now < self.reporter.due:
            return None
        sending = self.target is not None
        sender = rtcp.SenderFigures(
            self._sender.ssrc, self._sender.timestamp, self._sender.sent, self._sender.octets
        )
        packet = self.reporter.build(
            now, now + self._wall_offset, sender, self._stats.figures(), sending
        )
        current = self.latch.current
        if current is None or self._negotiated.remote_address is None:
            return None
        address = current if self.rtcp_mux else (current[0], self._rtcp_port(current))
        return (packet if self._srtp is None else self._srtp.protect_rtcp(packet)), address

    def _rtcp_port(self, current: Address) -> int:
        """RFC 3605's port while sending to the SDP address; else the one above RTP's."""
        theirs = self._negotiated.rtcp_port
        return theirs if theirs is not None and current == self.latch.sdp else current[1] + 1

    def _next_event_packet(self) -> bytes:
        """The slot's packet while digits are sent: an event's, the start of the next
        digit's, or audio (between two digits)."""
        if self._event_packets:
            return self._event_packets.popleft()
        event_type = self._negotiated.event_payload_type
        if self._digits_out and not self._gap and event_type is not None:
            payloads = digit_payloads(self._digits_out[0], self.samples)
            first, *rest = self._sender.event(event_type, payloads, self.samples)
            self._digits_out.popleft()
            self._event_packets.extend(rest)
            self._gap = DIGIT_GAP
            return first
        self._gap = max(0, self._gap - 1)
        return self._sender.audio(self._audio_type, self._frames.next())

    def _skip_slot(self) -> None:
        """Let a slot pass unsent: audio time moves on; of an event, a growing packet is
        lost but never an end (a receiver that sees no end holds the digit, or loses it:
        a door code must arrive whole however late the loop woke)."""
        self._slot += 1
        if self._event_packets:
            if not _ends_event(self._event_packets[0]):
                self._event_packets.popleft()
            return
        self._gap = max(0, self._gap - 1)
        self._frames.skip()
        self._sender.timestamp = (self._sender.timestamp + self.samples) & 0xFFFFFFFF

    def _codec(self) -> Codec:
        return CODECS[self._negotiated.codec]

    def _apply(self, negotiated: Negotiated, now: float) -> None:
        self._frame = negotiated.ptime / 1000
        self._frames.tune(self._codec(), _samples(negotiated))
        self._sends = (
            "send" in ABILITIES[negotiated.direction] and negotiated.remote_address is not None
        )
        self._kinds = _kinds(negotiated)
        self._audio_type = negotiated.payload_type
        if negotiated.event_payload_type is None:
            self._digits_out.clear()  # they cannot be sent any more
        self._ensure_schedule(now)

    def _ensure_schedule(self, now: float) -> None:
        """Start the slots when sending starts; stop them while nothing is sent."""
        if self.target is None:
            self._start = None
        elif self._start is None:
            self._start, self._slot = now, 0

    # --- receiving ---

    def receive(self, data: bytes, source: Address, now: float) -> str:
        """One datagram from `source` at `now` -> the digits it completes (usually "")."""
        packet = self._check(data, source, now)
        if packet is None:
            return ""
        if isinstance(packet, str) or not self.latch.admit(
            source, packet.ssrc, packet.sequence, now
        ):
            self._drop(packet if isinstance(packet, str) else FOREIGN)
            return ""
        self.last_arrival = now
        if self._start is None:
            self._ensure_schedule(now)  # a first latch gives an address to send to
        kind = self._kinds[packet.payload_type]
        counted = self._stats.record(
            packet.ssrc, packet.sequence, packet.timestamp, now, audio=kind == _AUDIO
        )
        if not counted:  # on probation, or a jump the sequence check holds back: not junk
            return ""
        if kind == _AUDIO and self._recorder is not None:
            self._recorder.write(self._decoder(packet.payload_type).decode(packet.payload))
        if kind == _EVENT:
            return self._digits_in.receive(packet.timestamp, packet.payload)
        return ""

    @property
    def junk(self) -> int:
        """Datagrams dropped, whatever the reason."""
        return sum(self.dropped.values())

    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None

    def receive_rtcp(self, data: bytes, source: Address, now: float) -> None:
        """A datagram on the RTCP port (port + 1)."""
        if not rtcp.is_rtcp(data):
            self._drop(NOT_RTCP)
            return
        clear = self._unprotect(data)
        if isinstance(clear, str):
            self._drop(clear)
            return
        self._take_rtcp(clear, source, now)

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def _unprotect(self, data: bytes) -> bytes | str:
        """The datagram in clear, authenticated over SRTP; or why it is dropped."""
        if len(data) > MAX_DATAGRAM:
            return TOO_LONG
        clear = data if self._srtp is None else self._srtp.unprotect(data)
        return clear.reason if isinstance(clear, SrtpError) else clear

    def _take_rtcp(self, clear: bytes, source: Address, now: float) -> None:
        """RTCP from the current source is a sign of life; any other is dropped."""
        report = rtcp.parse(clear)
        if isinstance(report, rtcp.RtcpError):
            self._drop(report.reason)
        elif not self.latch.owns(source, self._negotiated.rtcp_port):
            self._drop(FOREIGN)
        else:
            self.rtcp += 1
            self.reporter.heard(report, now)
            self.last_arrival = now

    def _check(self, data: bytes, source: Address, now: float) -> rtp.RtpPacket | str | None:
        """The packet; a reason to drop the datagram; None for RTCP (taken apart)."""
        if self.latch.shut_to(source, now) and not rtcp.is_rtcp(data):
            return FOREIGN
        clear = self._unprotect(data)
        if isinstance(clear, str):
            return clear
        if rtcp.is_rtcp(clear):  # RFC 5761 §4; an RR may be shorter than an RTP header
            self._take_rtcp(clear, source, now)
            return None
        packet = rtp.parse(clear)
        if isinstance(packet, _NOT_PACKETS):
            return packet.reason if isinstance(packet, rtp.RtpError) else NOT_RTCP
        return packet if packet.payload_type in self._kinds else UNKNOWN_TYPE

    def _kind(self, payload_type: int) -> str:
        """What a payload type carries here; "" for one not expected."""
        return self._kinds.get(payload_type, "")

    def _decoder(self, payload_type: int) -> Codec:
        # The static types are the laws they name; the negotiated one may be dynamic.
        statics = {PCMU.payload_type: PCMU, PCMA.payload_type: PCMA}
        return statics.get(payload_type) or self._codec()


def _ip_address(negotiated: Negotiated) -> Address | None:
    """Where the SDP says to send; None on hold, or for a name (no DNS on the media path)."""
    if negotiated.remote_address is None:
        return None
    try:
        ipaddress.ip_address(negotiated.remote_address)
    except ValueError:
        return None
    return negotiated.remote_address, negotiated.remote_port


def _samples(negotiated: Negotiated) -> int:
    return negotiated.ptime * SAMPLE_RATE // 1000


def _kinds(negotiated: Negotiated) -> dict[int, str]:
    """What each expected payload type carries, from the negotiated ones: a table that
    each received packet's type is looked up in."""
    # Our offers name 101: the peer sends events with our number, we with its.
    kinds = {COMFORT_NOISE: _OTHER, OUR_EVENT_TYPE: _EVENT}
    if negotiated.event_payload_type is not None:
        kinds[negotiated.event_payload_type] = _EVENT
    # Audio last: a type named both ways is audio, as it always was here.
    for audio in (negotiated.payload_type, PCMU.payload_type, PCMA.payload_type):
        kinds[audio] = _AUDIO
    return kinds


def _srtp(our_key: bytes | None, their_key: bytes | None) -> SrtpSession | None:
    if their_key is None:
        return None
    if our_key is None:
        raise ValueError("an SRTP call needs our key as well as the peer's")
    return SrtpSession(our_key, their_key)


def _ends_event(packet: bytes) -> bool:
    """An RFC 4733 end packet of ours (a bare 12-byte header, then the event)."""
    event = parse_event(packet[rtp.HEADER.size :])
    return event is not None and event.end
