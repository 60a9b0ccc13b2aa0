"""RTCP (RFC 3550 §6): the reports we build, byte for byte, and the checks of what arrives."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intercom_sip.media.rtcp import (
    BAD_LENGTH,
    INTERVAL,
    MAX_PACKETS,
    MAX_RTCP,
    NOT_RTCP,
    NTP_EPOCH,
    RR,
    SDES,
    SR,
    TOO_LONG,
    TOO_MANY,
    TOO_SHORT,
    Compound,
    Reporter,
    RtcpError,
    SenderFigures,
    SourceFigures,
    is_rtcp,
    parse,
)

T0 = 100.0
SENDER = SenderFigures(ssrc=0x11223344, rtp_timestamp=8000, packets=50, octets=8000)
SOURCE = SourceFigures(ssrc=0xAABBCCDD, highest=70099, expected=100, received=90, jitter=12)
SDES_PART = (
    bytes([0x81, SDES, 0, 4])  # one chunk, 5 words long in all
    + bytes.fromhex("11223344")
    + bytes([1, 8])
    + b"abc@host"
    + bytes(2)  # END and padding to a word
)


def test_a_receiver_report_while_nothing_is_sent() -> None:
    reporter = Reporter("abc@host", T0)
    assert reporter.due == T0 + INTERVAL / 2
    packet = reporter.build(T0 + 2.5, 0.0, SENDER, SOURCE, sending=False)
    block = struct.pack("!IIIIII", 0xAABBCCDD, (25 << 24) | 10, 70099, 12, 0, 0)
    assert packet == bytes([0x81, RR, 0, 7]) + bytes.fromhex("11223344") + block + SDES_PART
    assert reporter.due == T0 + 2.5 + INTERVAL
    assert parse(packet) == Compound(0x11223344, (RR, SDES), None)


def test_a_sender_report_while_sending_carries_the_ntp_time_and_our_counts() -> None:
    reporter = Reporter("abc@host", T0)
    wall = 1_764_441_600.5
    packet = reporter.build(T0, wall, SENDER, None, sending=True)
    info = struct.pack("!IIIII", int(wall) + NTP_EPOCH, 1 << 31, 8000, 50, 8000)
    assert packet == bytes([0x80, SR, 0, 6]) + bytes.fromhex("11223344") + info + SDES_PART
    middle = ((int(wall) + NTP_EPOCH) & 0xFFFF) << 16 | 0x8000
    assert parse(packet) == Compound(0x11223344, (SR, SDES), middle)


def test_the_peer_sr_goes_back_as_lsr_and_dlsr() -> None:
    reporter = Reporter("abc@host", T0)
    reporter.heard(Compound(1, (SR,), 0x12345678), T0)
    packet = reporter.build(T0 + 1.5, 0.0, SENDER, SOURCE, sending=False)
    lsr, dlsr = struct.unpack_from("!II", packet, 8 + 16)
    assert (lsr, dlsr) == (0x12345678, int(1.5 * 65536))
    # Fraction lost is since the last report: none lost since, none reported.
    again = reporter.build(T0 + 6.5, 0.0, SENDER, SOURCE, sending=False)
    assert struct.unpack_from("!I", again, 12)[0] == 10


def test_a_long_cname_is_cut_to_an_sdes_item() -> None:
    packet = Reporter("x" * 400, T0).build(T0, 0.0, SENDER, None, sending=False)
    assert len(packet) == 8 + 4 + 4 + (2 + 255 + 1 + 2)
    assert parse(packet) == Compound(0x11223344, (RR, SDES), None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", TOO_SHORT),
        (bytes([0x80, RR, 0, 1, 0, 0, 0]), TOO_SHORT),
        (bytes([0x40, RR, 0, 1]) + bytes(4), NOT_RTCP),  # version 1
        (bytes([0xA0, RR, 0, 1]) + bytes(4), NOT_RTCP),  # padding on the first packet
        (bytes([0x81, SDES, 0, 1]) + bytes(4), NOT_RTCP),  # SDES first
        (bytes([0x80, RR, 0, 2]) + bytes(4), BAD_LENGTH),  # says 12 bytes, has 8
        (bytes([0x80, RR, 0, 1]) + bytes(4) + bytes([0x80, SDES]), BAD_LENGTH),
        (bytes([0x80, RR, 0, 1]) + bytes(4) + bytes([0x40, SDES, 0, 0]), BAD_LENGTH),
        (bytes([0x80, RR, 0, 0]) + bytes(MAX_RTCP), TOO_LONG),
        (bytes([0x80, RR, 0, 0]) * (MAX_PACKETS + 1), TOO_MANY),
    ],
)
def test_what_is_not_a_compound_packet_is_refused(data: bytes, reason: str) -> None:
    assert parse(data) == RtcpError(reason)


def test_as_many_packets_as_allowed_pass() -> None:
    data = bytes([0x80, RR, 0, 0]) * MAX_PACKETS
    assert parse(data) == Compound(0x80C90000, (RR,) * MAX_PACKETS, None)


def test_rtcp_is_told_from_rtp_by_its_second_octet() -> None:
    assert is_rtcp(bytes([0x80, RR]))
    assert not is_rtcp(bytes([0x80, 0]))
    assert not is_rtcp(bytes([0x80]))


@given(st.binary(max_size=2000))
def test_parse_never_raises(data: bytes) -> None:
    assert isinstance(parse(data), Compound | RtcpError)
