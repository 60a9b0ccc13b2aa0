"""Cutting a byte stream into SIP messages and keep-alives (RFC 3261 §18.3, RFC 5626)."""

from intercom_sip.sip.framer import PING, PONG, Event, Framer, Ping, Pong
from intercom_sip.sip.message import MAX_MESSAGE, ParseError

MESSAGE = (
    b"MESSAGE sip:101@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:100@example.com>;tag=a\r\n"
    b"To: <sip:101@example.com>\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 2 MESSAGE\r\n"
    b"Content-Length: 12\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"hello\r\n\r\nbye"
)
RESPONSE = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bK1\r\nl: 0\r\n\r\n"


def drain(framer: Framer) -> list[Event]:
    events = []
    while (event := framer.next_event()) is not None:
        events.append(event)
        if isinstance(event, ParseError):
            break
    return events


def test_a_whole_message_comes_out_whole() -> None:
    framer = Framer()
    framer.feed(MESSAGE)
    assert drain(framer) == [MESSAGE]
    assert framer.next_event() is None


def test_one_byte_at_a_time() -> None:
    framer = Framer()
    events: list[Event] = []
    for octet in MESSAGE:
        framer.feed(bytes([octet]))
        events += drain(framer)
    assert events == [MESSAGE]


def test_every_split_into_two_chunks() -> None:
    for cut in range(len(MESSAGE) + 1):
        framer = Framer()
        framer.feed(MESSAGE[:cut])
        first = drain(framer)
        framer.feed(MESSAGE[cut:])
        assert first + drain(framer) == [MESSAGE], cut


def test_content_length_anywhere_in_the_headers() -> None:
    for data in (
        MESSAGE,
        RESPONSE,
        MESSAGE.replace(b"Content-Length: 12", b"content-LENGTH :12 "),
    ):
        framer = Framer()
        framer.feed(data)
        assert drain(framer) == [data]


def test_two_pipelined_messages() -> None:
    framer = Framer()
    framer.feed(MESSAGE + RESPONSE + MESSAGE[:10])
    assert drain(framer) == [MESSAGE, RESPONSE]
    framer.feed(MESSAGE[10:])
    assert drain(framer) == [MESSAGE]


def test_keepalives() -> None:
    framer = Framer()
    framer.feed(b"\r\n\r\n")
    assert drain(framer) == [Ping()]
    framer.feed(b"\r\n")
    assert drain(framer) == [Pong()]
    assert (Ping(), Pong()) == (PING, PONG)


def test_keepalives_between_messages() -> None:
    framer = Framer()
    framer.feed(b"\r\n\r\n" + MESSAGE + b"\r\n" + RESPONSE + b"\r\n\r\n" + MESSAGE)
    assert drain(framer) == [PING, MESSAGE, PONG, RESPONSE, PING, MESSAGE]


def test_a_message_without_content_length_is_an_error() -> None:
    framer = Framer()
    framer.feed(MESSAGE.replace(b"Content-Length: 12\r\n", b""))
    assert drain(framer) == [ParseError(400, "Missing Content-Length")]


def test_a_header_block_over_64_kib_without_an_end_is_413() -> None:
    framer = Framer()
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\nSubject: " + b"x" * MAX_MESSAGE)
    assert drain(framer) == [ParseError(413, "Message Too Large")]


def test_a_partial_header_block_under_the_limit_waits() -> None:
    framer = Framer()
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\nSubject: " + b"x" * 1000)
    assert framer.next_event() is None


def test_a_content_length_past_64_kib_is_413() -> None:
    framer = Framer()
    framer.feed(MESSAGE.replace(b"Content-Length: 12", b"Content-Length: %d" % MAX_MESSAGE))
    assert drain(framer) == [ParseError(413, "Message Too Large")]


def test_the_body_arriving_later() -> None:
    head, body = MESSAGE[: -len(b"hello\r\n\r\nbye")], b"hello\r\n\r\nbye"
    framer = Framer()
    framer.feed(head)
    assert framer.next_event() is None
    framer.feed(body[:5])
    assert framer.next_event() is None
    framer.feed(body[5:] + b"\r\n")
    assert drain(framer) == [MESSAGE, PONG]


def test_a_folded_content_length() -> None:
    data = MESSAGE.replace(b"Content-Length: 12", b"Content-Length:\r\n  12")
    framer = Framer()
    framer.feed(data)
    assert drain(framer) == [data]
