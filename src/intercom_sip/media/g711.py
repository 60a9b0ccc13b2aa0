"""G.711 (ITU-T G.711) µ-law and A-law, by tables: 16-bit linear PCM <-> 8-bit codewords.

`audioop` is gone from Python 3.13, so the companding is ours. Each law's encoder is a
function of the sample's top 14 (µ-law) or 13 (A-law) bits; expanded to a table of all
65536 16-bit values (built on first use) it turns a 20 ms frame into one
`bytes(map(...))`, and decoding is a join over 256 precomputed 2-byte samples. The
quantisation follows the standard's tables (segment and mantissa of each codeword).
"""

import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from itertools import chain
from typing import Final

_ULAW_BIAS: Final = 33  # in 14-bit units: 0x84 >> 2
_ULAW_CLIP: Final = 8158  # the largest 14-bit magnitude µ-law represents


def ulaw_encode_sample(sample: int) -> int:
    """The µ-law codeword of one 16-bit sample."""
    value = sample >> 2  # 14-bit; the arithmetic shift makes -1..-4 magnitude 1
    magnitude, mask = (-value, 0x7F) if value < 0 else (value, 0xFF)
    biased = min(magnitude, _ULAW_CLIP) + _ULAW_BIAS
    segment = biased.bit_length() - 6  # 33..63 is segment 0, 4096..8191 segment 7
    mantissa = (biased >> (segment + 1)) & 0x0F
    return ((segment << 4) | mantissa) ^ mask


def ulaw_decode_sample(code: int) -> int:
    """The 16-bit value a µ-law codeword stands for."""
    inverted = ~code & 0xFF
    segment, mantissa = (inverted >> 4) & 0x07, inverted & 0x0F
    level = (((mantissa << 3) + 0x84) << segment) - 0x84
    return -level if inverted & 0x80 else level


def alaw_encode_sample(sample: int) -> int:
    """The A-law codeword of one 16-bit sample."""
    value = sample >> 3  # 13-bit
    magnitude, mask = (-value - 1, 0x55) if value < 0 else (value, 0xD5)
    segment = max(0, magnitude.bit_length() - 5)  # 0..31 segment 0, 2048..4095 segment 7
    mantissa = (magnitude >> max(segment, 1)) & 0x0F
    return ((segment << 4) | mantissa) ^ mask


def alaw_decode_sample(code: int) -> int:
    """The 16-bit value an A-law codeword stands for."""
    toggled = code ^ 0x55
    segment, mantissa = (toggled >> 4) & 0x07, toggled & 0x0F
    level = (mantissa << 4) + 8 if segment == 0 else ((mantissa << 4) + 0x108) << (segment - 1)
    return level if toggled & 0x80 else -level


def _encode_table(encode: Callable[[int], int], shift: int) -> bytes:
    """Every 16-bit sample, read as unsigned, -> its codeword.

    The law sees only the top 16 - `shift` bits, so one call per distinct top part is
    enough; each result then stands for 2**shift consecutive samples.
    """
    top = 1 << (16 - shift)
    signed = (part - top if part >= top // 2 else part for part in range(top))
    codes = bytes(encode(value << shift) for value in signed)
    return bytes(chain.from_iterable(zip(*[codes] * (1 << shift), strict=True)))


@cache
def _tables(law: str) -> tuple[bytes, tuple[bytes, ...]]:
    # Built on first use, not at import (about 20 ms for µ-law).
    encode, decode, shift = _LAWS[law]
    decoded = tuple(decode(code).to_bytes(2, "little", signed=True) for code in range(256))
    return _encode_table(encode, shift), decoded


_LAWS: Final = {
    "PCMU": (ulaw_encode_sample, ulaw_decode_sample, 2),
    "PCMA": (alaw_encode_sample, alaw_decode_sample, 3),
}


@dataclass(frozen=True)
class Codec:
    """One G.711 law: its SDP name and static payload type (RFC 3551), and its converters."""

    name: str
    payload_type: int

    def encode(self, pcm: bytes) -> bytes:
        """16-bit little-endian PCM (an even number of bytes) -> one codeword a sample."""
        samples = array("H", pcm)
        if sys.byteorder == "big":
            samples.byteswap()
        return bytes(map(_tables(self.name)[0].__getitem__, samples))

    def decode(self, payload: bytes) -> bytes:
        """Codewords -> 16-bit little-endian PCM, two bytes a codeword."""
        return b"".join(map(_tables(self.name)[1].__getitem__, payload))


PCMU: Final = Codec("PCMU", 0)
PCMA: Final = Codec("PCMA", 8)
CODECS: Final = {codec.name: codec for codec in (PCMU, PCMA)}
