"""The RTP header (RFC 3550 §5.1), RTCP recognised (RFC 5761 §4), and the sender."""

import random
import struct

import pytest

from intercom_sip.media.rtp import (
    BAD_LENGTH,
    BAD_VERSION,
    TOO_SHORT,
    Rtcp,
    RtpError,
    RtpPacket,
    Sender,
    build,
    parse,
)

PACKET = bytes.fromhex("80 00 1234 00000a00 deadbeef") + b"\xff" * 160


def test_parse_a_plain_packet() -> None:
    assert parse(PACKET) == RtpPacket(0, 0x1234, 0xA00, 0xDEADBEEF, b"\xff" * 160)


def test_build_is_the_inverse_of_parse() -> None:
    packet = RtpPacket(8, 65535, 2**32 - 1, 7, b"\xd5" * 160, marker=True, csrcs=(1, 2))
    assert parse(build(packet)) == packet
    assert build(parse(PACKET)) == PACKET  # type: ignore[arg-type]


def test_csrcs_extension_and_padding_are_skipped() -> None:
    header = bytes.fromhex("b1 e5 0001 00000002 00000003") + struct.pack("!I", 99)
    extension = bytes.fromhex("bede 0002") + bytes(8)
    data = header + extension + b"abc" + bytes.fromhex("00 00 03")
    assert parse(data) == RtpPacket(101, 1, 2, 3, b"abc", marker=True, csrcs=(99,))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", TOO_SHORT),
        (PACKET[:11], TOO_SHORT),
        (bytes.fromhex("40") + PACKET[1:], BAD_VERSION),
        (bytes.fromhex("00") + PACKET[1:], BAD_VERSION),
        (bytes.fromhex("8f") + PACKET[1:40], BAD_LENGTH),  # 15 CSRCs in 28 bytes
        (bytes.fromhex("90") + PACKET[1:12] + b"\xbe\xde", BAD_LENGTH),  # half an extension
        (bytes.fromhex("90") + PACKET[1:12] + bytes.fromhex("bede ffff"), BAD_LENGTH),
        (bytes.fromhex("a0") + PACKET[1:12] + b"\x05", BAD_LENGTH),  # padding past the header
        (bytes.fromhex("a0") + PACKET[1:12] + b"\x00", BAD_LENGTH),  # a padding count of 0
    ],
)
def test_what_is_not_rtp_is_an_error_value(data: bytes, error: str) -> None:
    assert parse(data) == RtpError(error)


@pytest.mark.parametrize("packet_type", [192, 200, 201, 202, 203, 204, 223])
def test_rtcp_on_the_port_is_recognised(packet_type: int) -> None:
    receiver_report = bytes([0x81, packet_type]) + bytes.fromhex("0001 deadbeef")
    assert parse(receiver_report + bytes(24)) == Rtcp(packet_type)


def test_payload_types_beside_the_rtcp_range_are_rtp() -> None:
    # 72..76 with the marker set would be 200..204: RFC 5761 keeps them out of RTP's way,
    # but 191 (63 + marker) and 224 (96 + marker) are RTP.
    assert parse(bytes([0x80, 191]) + PACKET[2:]) == RtpPacket(
        63, 0x1234, 0xA00, 0xDEADBEEF, PACKET[12:], marker=True
    )
    assert parse(bytes([0x80, 224]) + PACKET[2:]) == RtpPacket(
        96, 0x1234, 0xA00, 0xDEADBEEF, PACKET[12:], marker=True
    )


def test_parse_never_raises_on_any_short_prefix() -> None:
    data = bytes.fromhex("bf e5 0001 00000002 00000003") + bytes(range(256))
    for end in range(len(data) + 1):
        assert isinstance(parse(data[:end]), RtpPacket | RtpError)


def sender_at(sequence: int, timestamp: int) -> Sender:
    sender = Sender(random.Random(1))
    sender.ssrc, sender.sequence, sender.timestamp = 0x11223344, sequence, timestamp
    return sender


def test_sender_numbers_packets_and_marks_the_first() -> None:
    sender = sender_at(65534, 2**32 - 160)
    packets = [parse(sender.audio(0, b"\xff" * 160)) for _ in range(3)]
    assert packets == [
        RtpPacket(0, 65534, 2**32 - 160, 0x11223344, b"\xff" * 160, marker=True),
        RtpPacket(0, 65535, 0, 0x11223344, b"\xff" * 160),
        RtpPacket(0, 0, 160, 0x11223344, b"\xff" * 160),
    ]
    assert sender.sent == 3


def test_an_event_shares_the_numbering_and_keeps_its_start_time() -> None:
    sender = sender_at(10, 1600)
    sender.audio(0, b"\xff" * 160)
    event = [parse(data) for data in sender.event(101, (b"a", b"b", b"c"))]
    after = parse(sender.audio(0, b"\xff" * 160))
    assert event == [
        RtpPacket(101, 11, 1760, 0x11223344, b"a", marker=True),
        RtpPacket(101, 12, 1760, 0x11223344, b"b"),
        RtpPacket(101, 13, 1760, 0x11223344, b"c"),
    ]
    assert after == RtpPacket(0, 14, 1760 + 3 * 160, 0x11223344, b"\xff" * 160)


def test_the_starting_numbers_come_from_the_rng() -> None:
    first, second = Sender(random.Random(5)), Sender(random.Random(5))
    other = Sender(random.Random(6))
    numbers = (first.ssrc, first.sequence, first.timestamp)
    assert numbers == (second.ssrc, second.sequence, second.timestamp)
    assert numbers != (other.ssrc, other.sequence, other.timestamp)
