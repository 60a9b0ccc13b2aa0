"""G.711 against the standard's values, round trips within the quantisation step."""

import struct

import pytest

from intercom_sip.media.g711 import (
    CODECS,
    PCMA,
    PCMU,
    Codec,
    alaw_decode_sample,
    alaw_encode_sample,
    ulaw_decode_sample,
    ulaw_encode_sample,
)

ALL_SAMPLES = struct.pack("<65536h", *range(-32768, 32768))


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xFF, 0),  # positive zero
        (0x7F, 0),  # negative zero
        (0x80, 32124),  # the extremes
        (0x00, -32124),
        (0xFE, 8),  # segment 0, mantissa 1: ((2 + 33) - 33) * 4
        (0xEF, 132),  # segment 1, mantissa 0: (33 * 2 - 33) * 4
        (0x8F, 16764),  # segment 7, mantissa 0: (33 * 128 - 33) * 4
        (0x0F, -16764),
    ],
)
def test_ulaw_decodes_to_the_standard_values(code: int, value: int) -> None:
    assert ulaw_decode_sample(code) == value


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xD5, 8),  # the smallest positive and negative levels
        (0x55, -8),
        (0xAA, 32256),  # the extremes
        (0x2A, -32256),
        (0xD4, 24),  # segment 0, mantissa 1
        (0xC5, 264),  # segment 1, mantissa 0
        (0xA5, 16896),  # segment 7, mantissa 0
    ],
)
def test_alaw_decodes_to_the_standard_values(code: int, value: int) -> None:
    assert alaw_decode_sample(code) == value


@pytest.mark.parametrize(
    ("sample", "ulaw", "alaw"),
    [
        (0, 0xFF, 0xD5),
        (-1, 0x7E, 0x55),  # µ-law's -1 has magnitude 1 (14-bit), A-law's is level 0
        (32767, 0x80, 0xAA),
        (-32768, 0x00, 0x2A),
        (32124, 0x80, 0xAA),
        (1000, 0xCE, 0xFA),
        (-1000, 0x4E, 0x7A),
    ],
)
def test_samples_encode_to_the_standard_codewords(sample: int, ulaw: int, alaw: int) -> None:
    assert (ulaw_encode_sample(sample), alaw_encode_sample(sample)) == (ulaw, alaw)


def test_every_codeword_survives_decode_then_encode() -> None:
    # µ-law's negative zero (0x7F) decodes to 0, which encodes as positive zero.
    assert [ulaw_encode_sample(ulaw_decode_sample(c)) for c in range(256)] == [
        0xFF if c == 0x7F else c for c in range(256)
    ]
    assert [alaw_encode_sample(alaw_decode_sample(c)) for c in range(256)] == list(range(256))


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_every_sample_round_trips_within_its_quantisation_step(codec: Codec) -> None:
    decoded = struct.unpack("<65536h", codec.decode(codec.encode(ALL_SAMPLES)))
    limit = 32124 if codec is PCMU else 32767  # µ-law clips above its largest level
    # A segment's step is 1/16 of its range; the coder rounds to the middle of the step.
    excess = [
        abs(out - sample) - max(16, abs(sample) // 16)
        for sample, out in zip(range(-32768, 32768), decoded, strict=True)
        if abs(sample) <= limit
    ]
    assert max(excess) <= 0


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_frames_match_the_sample_functions(codec: Codec) -> None:
    encode = ulaw_encode_sample if codec is PCMU else alaw_encode_sample
    decode = ulaw_decode_sample if codec is PCMU else alaw_decode_sample
    samples = [(i * 409) % 65536 - 32768 for i in range(160)]
    payload = codec.encode(pcm(*samples))
    assert payload == bytes(encode(s) for s in samples)
    assert codec.decode(payload) == pcm(*(decode(c) for c in payload))


def test_a_frame_of_silence() -> None:
    assert PCMU.encode(bytes(320)) == b"\xff" * 160
    assert PCMA.encode(bytes(320)) == b"\xd5" * 160
    assert PCMU.decode(b"\xff" * 160) == bytes(320)


def test_codecs_by_name_with_their_static_payload_types() -> None:
    assert {name: codec.payload_type for name, codec in CODECS.items()} == {"PCMU": 0, "PCMA": 8}
