"""RFC 4733 telephone-events: a digit's packets, and digits counted once on receipt."""

import pytest

from intercom_sip.media.dtmf import (
    DigitReceiver,
    Event,
    build_event,
    digit_payloads,
    parse_event,
)


def test_a_digit_is_growing_packets_then_three_end_packets() -> None:
    assert [parse_event(p) for p in digit_payloads("#")] == [
        Event(11, False, 10, 160),
        Event(11, False, 10, 320),
        Event(11, False, 10, 480),
        Event(11, False, 10, 640),
        Event(11, True, 10, 800),
        Event(11, True, 10, 800),
        Event(11, True, 10, 800),
    ]


def test_the_payload_bytes() -> None:
    assert digit_payloads("1")[-1] == bytes.fromhex("01 8a 0320")
    assert build_event(Event(15, False, 63, 65535)) == bytes.fromhex("0f 3f ffff")


@pytest.mark.parametrize(("digit", "event"), [("0", 0), ("9", 9), ("*", 10), ("A", 12), ("d", 15)])
def test_digits_map_to_events(digit: str, event: int) -> None:
    assert parse_event(digit_payloads(digit)[0]) == Event(event, False, 10, 160)


def test_short_payload_is_no_event() -> None:
    assert parse_event(b"\x01\x8a\x03") is None


def receive_all(receiver: DigitReceiver, stream: list[tuple[int, bytes]]) -> str:
    return "".join(receiver.receive(timestamp, payload) for timestamp, payload in stream)


def test_each_digit_counted_once_across_its_end_packets() -> None:
    stream = [(1000, p) for p in digit_payloads("1")] + [(3000, p) for p in digit_payloads("1")]
    assert receive_all(DigitReceiver(), [*stream, (3000, digit_payloads("1")[-1])]) == "11"


def test_a_digit_whose_end_packets_were_lost_is_counted_when_the_next_starts() -> None:
    lost_ends = [(1000, p) for p in digit_payloads("4")[:4]]
    stream = lost_ends + [(3000, p) for p in digit_payloads("#")]
    assert receive_all(DigitReceiver(), stream) == "4#"


def test_an_end_packet_alone_is_a_digit_and_other_events_are_not() -> None:
    receiver = DigitReceiver()
    assert receiver.receive(500, bytes.fromhex("05 8a 0320")) == "5"
    assert receiver.receive(900, bytes.fromhex("10 8a 0320")) == ""  # 16: flash
    assert receiver.receive(900, b"") == ""
