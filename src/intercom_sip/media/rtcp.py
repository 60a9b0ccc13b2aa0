"""RTCP (RFC 3550 §6): the reports a call sends every 5 s, and what one received says.

Pure: a compound packet is built from figures passed in (an SR while we send, else an
RR, then an SDES with our CNAME, §6.1), and a received datagram is checked as §A.2 says
(version 2, an SR or RR first, lengths that add up to the datagram) within fixed bounds.
Parsing never raises: a datagram that is not RTCP is an `RtcpError` value.
"""

import struct
from dataclasses import dataclass
from typing import Final

VERSION: Final = 2
SR: Final = 200
RR: Final = 201
SDES: Final = 202
CNAME: Final = 1
INTERVAL: Final = 5.0  # seconds between our reports (the contract's, not §6.2's formula)
MAX_RTCP: Final = 1500  # bytes of one compound packet we look at
MAX_PACKETS: Final = 16  # packets in one compound; more is refused
MAX_CNAME: Final = 255  # an SDES item's length is one octet
NTP_EPOCH: Final = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)

_HEADER: Final = struct.Struct("!BBHI")  # V/P/count, type, length in words - 1, SSRC
_SENDER_INFO: Final = struct.Struct("!IIIII")  # NTP seconds, fraction, RTP time, packets, octets
_BLOCK: Final = struct.Struct("!IIIIII")

TOO_SHORT: Final = "shorter than an RTCP header"
TOO_LONG: Final = f"RTCP longer than {MAX_RTCP} bytes"
NOT_RTCP: Final = "not RTCP version 2 starting with SR or RR"
BAD_LENGTH: Final = "RTCP lengths do not add up"
TOO_MANY: Final = f"more than {MAX_PACKETS} RTCP packets in one"


@dataclass(frozen=True)
class RtcpError:
    """Why a datagram is not a compound RTCP packet."""

    reason: str


@dataclass(frozen=True)
class Compound:
    """What a compound packet told us: who sent it, and the middle of its SR's NTP time."""

    ssrc: int
    packet_types: tuple[int, ...]
    ntp_middle: int | None  # for the LSR of our next report block; None: no SR


@dataclass(frozen=True)
class SenderFigures:
    """What we sent, for an SR's sender info."""

    ssrc: int
    rtp_timestamp: int
    packets: int
    octets: int


@dataclass(frozen=True)
class SourceFigures:
    """What we received from one SSRC (RFC 3550 A.3 and A.8), for a report block."""

    ssrc: int
    highest: int  # the extended highest sequence number received
    expected: int
    received: int
    jitter: int  # timestamp units


def is_rtcp(data: bytes) -> bool:
    """An RTCP packet sharing the RTP port (RFC 5761 §4: second octet 192..223)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse(data: bytes) -> Compound | RtcpError:
    """A compound packet -> its sender and types, or why it is refused (RFC 3550 A.2)."""
    if len(data) > MAX_RTCP:
        return RtcpError(TOO_LONG)
    if len(data) < _HEADER.size:
        return RtcpError(TOO_SHORT)
    first, kind, _, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != VERSION or first & 0x20 or kind not in (SR, RR):
        return RtcpError(NOT_RTCP)
    types = _types(data)
    if isinstance(types, RtcpError):
        return types
    middle = None
    if kind == SR and len(data) >= _HEADER.size + _SENDER_INFO.size:
        seconds, fraction = struct.unpack_from("!II", data, _HEADER.size)
        middle = ((seconds & 0xFFFF) << 16) | (fraction >> 16)
    return Compound(ssrc, types, middle)


def _types(data: bytes) -> tuple[int, ...] | RtcpError:
    """The packet types of a compound, whose lengths must add up to the datagram."""
    types: list[int] = []
    offset = 0
    while offset < len(data):
        if len(types) == MAX_PACKETS:
            return RtcpError(TOO_MANY)
        if len(data) - offset < 4 or data[offset] >> 6 != VERSION:
            return RtcpError(BAD_LENGTH)
        types.append(data[offset + 1])
        offset += 4 * (struct.unpack_from("!H", data, offset + 2)[0] + 1)
    return tuple(types) if offset == len(data) else RtcpError(BAD_LENGTH)


class Reporter:
    """Our side of RTCP for one call: when the next report is due, and what it holds."""

    def __init__(self, cname: str, now: float) -> None:
        self._cname = cname.encode()[:MAX_CNAME]
        self.due = now + INTERVAL / 2  # the first report early, as §6.2 advises
        self._prior: tuple[int, int] = (0, 0)  # expected, received at the last report
        self._last_sr: tuple[int, float] | None = None  # the peer's SR: NTP middle, when
        self.sent = 0
        self.received = 0

    def heard(self, report: Compound, now: float) -> None:
        """A report from the peer: its SR's time goes back in our next block's LSR."""
        self.received += 1
        if report.ntp_middle is not None:
            self._last_sr = (report.ntp_middle, now)

    def build(
        self,
        now: float,
        wall: float,
        sender: SenderFigures,
        source: SourceFigures | None,
        sending: bool,
    ) -> bytes:
        """The compound packet due now (an SR while `sending`, else an RR) and the next due
        time."""
        self.due = now + INTERVAL
        self.sent += 1
        blocks = self._block(source, now) if source is not None else b""
        count = 1 if blocks else 0
        if sending:
            ntp = wall + NTP_EPOCH
            seconds, fraction = int(ntp) & 0xFFFFFFFF, int((ntp % 1) * (1 << 32)) & 0xFFFFFFFF
            info = _SENDER_INFO.pack(
                seconds,
                fraction,
                sender.rtp_timestamp & 0xFFFFFFFF,
                sender.packets & 0xFFFFFFFF,
                sender.octets & 0xFFFFFFFF,
            )
            report = _packet(SR, count, sender.ssrc, info + blocks)
        else:
            report = _packet(RR, count, sender.ssrc, blocks)
        return report + self._sdes(sender.ssrc)

    def _block(self, source: SourceFigures, now: float) -> bytes:
        expected, received = source.expected - self._prior[0], source.received - self._prior[1]
        self._prior = (source.expected, source.received)
        lost_now = expected - received
        fraction = (lost_now << 8) // expected if expected > 0 and lost_now > 0 else 0
        lost = max(-(1 << 23), min((1 << 23) - 1, source.expected - source.received))
        lsr, dlsr = 0, 0
        if self._last_sr is not None:
            lsr = self._last_sr[0]
            dlsr = int((now - self._last_sr[1]) * 65536) & 0xFFFFFFFF
        return _BLOCK.pack(
            source.ssrc,
            (min(fraction, 255) << 24) | (lost & 0xFFFFFF),
            source.highest & 0xFFFFFFFF,
            source.jitter & 0xFFFFFFFF,
            lsr,
            dlsr,
        )

    def _sdes(self, ssrc: int) -> bytes:
        item = bytes((CNAME, len(self._cname))) + self._cname + b"\x00"  # then END
        item += b"\x00" * (-(4 + len(item)) % 4)
        return _packet(SDES, 1, ssrc, item)


def _packet(kind: int, count: int, ssrc: int, body: bytes) -> bytes:
    words = (_HEADER.size + len(body)) // 4 - 1
    return _HEADER.pack((VERSION << 6) | count, kind, words, ssrc) + body
