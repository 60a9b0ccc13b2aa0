"""RTP (RFC 3550 §5.1): parse and build the fixed header, and the sender's numbering.

Parsing never raises: a packet that is not RTP is an `RtpError` value, and RTCP sharing
the port (RFC 5761 §4: second octet 192..223) is an `Rtcp` value the caller ignores.
"""

import random
import struct
from dataclasses import dataclass
from typing import Final, NamedTuple

VERSION: Final = 2
HEADER: Final = struct.Struct("!BBHII")
SAMPLES_PER_FRAME: Final = 160  # 20 ms at 8 kHz

_RTCP_TYPES: Final = range(192, 224)  # RFC 5761 §4; SR..APP are 200..204

TOO_SHORT: Final = "shorter than an RTP header"
BAD_VERSION: Final = "not RTP version 2"
BAD_LENGTH: Final = "CSRC list, extension or padding past the end"


@dataclass(frozen=True)
class RtpError:
    """Why a datagram is not an RTP packet."""

    reason: str


@dataclass(frozen=True)
class Rtcp:
    """An RTCP packet on the RTP port: recognised, counted by nobody, ignored."""

    packet_type: int


class RtpPacket(NamedTuple):
    """One parsed packet. A named tuple: made for every datagram a call receives, and a
    tuple costs a fraction of a frozen dataclass to build."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()


def parse(data: bytes) -> RtpPacket | Rtcp | RtpError:
    """One datagram -> a packet, an RTCP marker, or why it is neither."""
    if len(data) < HEADER.size:
        return RtpError(TOO_SHORT)
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
    if first >> 6 != VERSION:
        return RtpError(BAD_VERSION)
    if second in _RTCP_TYPES:
        return Rtcp(second)
    start = HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:  # an extension: 16-bit profile, 16-bit length in 32-bit words
        if len(data) < start + 4:
            return RtpError(BAD_LENGTH)
        start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
    padding = data[-1] if first & 0x20 else 0
    if len(data) - padding < start or (first & 0x20 and padding == 0):
        return RtpError(BAD_LENGTH)
    count = first & 0x0F  # CSRCs: none in the usual packet, and no format string to make
    csrcs = struct.unpack_from(f"!{count}I", data, HEADER.size) if count else ()
    payload = data[start : len(data) - padding] if padding else data[start:]
    return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, payload, second > 0x7F, csrcs)


def build(packet: RtpPacket) -> bytes:
    """The packet on the wire: no padding, no extension."""
    first = (VERSION << 6) | len(packet.csrcs)
    second = (0x80 if packet.marker else 0) | packet.payload_type
    header = HEADER.pack(first, second, packet.sequence, packet.timestamp, packet.ssrc)
    return header + struct.pack(f"!{len(packet.csrcs)}I", *packet.csrcs) + packet.payload


class Sender:
    """Numbers one outgoing stream: SSRC, sequence (mod 2**16), timestamp (8 kHz, mod 2**32).

    Each call to `audio` or `event` is one slot (20, 30 or 40 ms: the offer's ptime). The
    first audio packet carries the marker bit (RFC 3551 §4.1: the start of a talkspurt),
    and so does the first packet of each telephone event (RFC 4733 §2.5.1.1).
    """

    def __init__(self, rng: random.Random) -> None:
        # Random starting points (RFC 3550 §5.1) make a known-plaintext attack harder.
        self.ssrc = rng.getrandbits(32)
        self.sequence = rng.getrandbits(16)
        self.timestamp = rng.getrandbits(32)
        self.sent = 0
        self.octets = 0  # payload octets sent, for RTCP's sender info
        self._talking = False

    def audio(self, payload_type: int, payload: bytes) -> bytes:
        """The next audio packet: one slot of G.711, a sample a byte."""
        # Each slot's packet: the header packed straight, no RtpPacket made on the way.
        second = payload_type if self._talking else payload_type | 0x80
        header = HEADER.pack(VERSION << 6, second, self.sequence, self.timestamp, self.ssrc)
        self._talking = True
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload)) & 0xFFFFFFFF
        self.sent += 1
        self.octets += len(payload)
        return header + payload

    def event(
        self, payload_type: int, payloads: tuple[bytes, ...], samples: int = SAMPLES_PER_FRAME
    ) -> tuple[bytes, ...]:
        """A telephone event's packets, one a slot of `samples`, all stamped with the
        event's start."""
        start = self.timestamp
        packets = tuple(
            self._packet(payload_type, payload, start, marker=index == 0)
            for index, payload in enumerate(payloads)
        )
        self.timestamp = (start + samples * len(payloads)) & 0xFFFFFFFF
        return packets

    def _packet(self, payload_type: int, payload: bytes, timestamp: int, marker: bool) -> bytes:
        packet = RtpPacket(payload_type, self.sequence, timestamp, self.ssrc, payload, marker)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.sent += 1
        self.octets += len(payload)
        return build(packet)
