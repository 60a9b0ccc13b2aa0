"""SRTP for one call (RFC 3711, `AES_CM_128_HMAC_SHA1_80`): the adapter over libsrtp.

pylibsrtp (the aiortc project's binding, libsrtp 2 inside its wheel) does the
cryptography. This module turns its exceptions into ours: a packet from the network
that fails authentication, is replayed, or is not SRTP becomes an `SrtpError` value,
never an exception. `protect` takes only packets we built, so its failures are bugs
and raise `ValueError`.

Keys come from SDES (RFC 4568): 30 bytes each way, a 128-bit master key then a 112-bit
master salt. The key material lives inside libsrtp and nowhere in this object's repr.
"""

import random
import struct
from dataclasses import dataclass
from typing import Final

import pylibsrtp

from ..sip.sdes import KEY_BYTES

# pylibsrtp processes packets in one 1500-byte buffer and keeps 144 bytes of it for the
# trailer it may add (a tag and an MKI).
MAX_PROTECT: Final = 1500 - 144
MAX_UNPROTECT: Final = 1500
# One stream per SSRC inside libsrtp; a peer changes its SSRC rarely (a re-INVITE, a
# transfer), so more than this in one call is refused rather than grown without end.
MAX_SOURCES: Final = 8

_RTP_HEADER: Final = 12
_RTCP_HEADER: Final = 8  # up to the sender's SSRC
_RTCP_TYPES: Final = range(192, 224)  # RFC 5761 §4, as in rtp.py

AUTH_FAILED: Final = "authentication failed"
REPLAYED: Final = "replayed packet"
TOO_OLD: Final = "packet older than the replay window"
NOT_SRTP: Final = "not an SRTP packet"
TOO_LONG: Final = f"longer than {MAX_UNPROTECT} bytes"
TOO_MANY_SOURCES: Final = f"more than {MAX_SOURCES} SSRCs in one call"
REFUSED: Final = "refused by libsrtp"

# libsrtp's status texts, as pylibsrtp words them, to ours; any other is REFUSED.
_REASONS: Final = {
    "authentication failure": AUTH_FAILED,
    "replay check failed (bad index)": REPLAYED,
    "replay check failed (index too old)": TOO_OLD,
    "packet index is too old to consider": TOO_OLD,
    "error parsing data": NOT_SRTP,
    "unsupported parameter": NOT_SRTP,
}


@dataclass(frozen=True)
class SrtpError:
    """Why an incoming datagram was dropped."""

    reason: str


def new_key(rng: random.Random) -> bytes:
    """Fresh key material for one call: pass `random.SystemRandom()` (os.urandom)."""
    return rng.randbytes(KEY_BYTES)


class SrtpSession:
    """Both directions of one call: ours protected with our key, the peer's checked."""

    def __init__(self, our_key: bytes, their_key: bytes) -> None:
        self._outbound = _session(our_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self._inbound = _session(their_key, pylibsrtp.Policy.SSRC_ANY_INBOUND)
        self._sent: set[int] = set()
        self._received: set[int] = set()

    def __repr__(self) -> str:
        return f"SrtpSession(sent={len(self._sent)} SSRCs, received={len(self._received)})"

    def protect(self, rtp: bytes) -> bytes:
        """Our RTP packet -> SRTP. Raises ValueError for a packet we should not have made."""
        if not _RTP_HEADER <= len(rtp) <= MAX_PROTECT:
            raise ValueError(f"an RTP packet to protect has 12..{MAX_PROTECT} bytes")
        ssrc = _ssrc(rtp, 8)
        if ssrc not in self._sent and len(self._sent) >= MAX_SOURCES:
            raise ValueError(TOO_MANY_SOURCES)
        try:
            srtp = self._outbound.protect(rtp)
        except pylibsrtp.Error as error:  # a repeated sequence number: the sender's bug
            raise ValueError(f"SRTP protect: {error}") from None
        self._sent.add(ssrc)
        return srtp

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """Our RTCP compound packet -> SRTCP (RFC 3711 §3.4). Raises ValueError as `protect`."""
        if not _RTCP_HEADER <= len(rtcp) <= MAX_PROTECT:
            raise ValueError(f"an RTCP packet to protect has 8..{MAX_PROTECT} bytes")
        try:
            return self._outbound.protect_rtcp(rtcp)
        except pylibsrtp.Error as error:
            raise ValueError(f"SRTCP protect: {error}") from None

    def unprotect(self, srtp: bytes) -> bytes | SrtpError:
        """A datagram from the peer -> its RTP or RTCP in clear, or why it is dropped.

        RTCP sharing the port (RFC 5761) is checked as SRTCP and given back in clear, for
        `rtp.parse` to recognise and the caller to ignore.
        """
        rtcp = len(srtp) >= 2 and srtp[1] in _RTCP_TYPES
        where, header = (4, _RTCP_HEADER) if rtcp else (8, _RTP_HEADER)
        refusal = self._refusal(srtp, header)
        if refusal is not None:
            return refusal
        ssrc = _ssrc(srtp, where)
        if ssrc not in self._received and len(self._received) >= MAX_SOURCES:
            return SrtpError(TOO_MANY_SOURCES)
        process = self._inbound.unprotect_rtcp if rtcp else self._inbound.unprotect
        try:
            clear = process(srtp)
        except pylibsrtp.Error as error:
            return SrtpError(_REASONS.get(str(error), REFUSED))
        self._received.add(ssrc)  # libsrtp made a stream for it: it authenticated
        return clear

    @staticmethod
    def _refusal(srtp: bytes, header: int) -> SrtpError | None:
        if len(srtp) > MAX_UNPROTECT:
            return SrtpError(TOO_LONG)
        if len(srtp) < header or srtp[0] >> 6 != 2:
            return SrtpError(NOT_SRTP)
        return None


def _session(key: bytes, ssrc_type: int) -> pylibsrtp.Session:
    if len(key) != KEY_BYTES:
        raise ValueError(f"SRTP key material has {KEY_BYTES} bytes")
    # The policy (and its copy of the key) is dropped here: libsrtp keeps the keys it
    # derived, and a template stream that each new SSRC is cloned from once it authenticates.
    return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=ssrc_type))


def _ssrc(packet: bytes, offset: int) -> int:
    value: int = struct.unpack_from("!I", packet, offset)[0]
    return value
