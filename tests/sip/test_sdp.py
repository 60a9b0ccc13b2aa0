"""SDP (RFC 8866) parse and build: whole descriptions, bounds, and malformed input."""

import pytest

from intercom_sip.sip.sdp import (
    BAD_CONNECTION,
    BAD_LINE,
    BAD_MEDIA,
    BAD_ORIGIN,
    MAX_LINES,
    MAX_MEDIA,
    MAX_SDP,
    NO_ORIGIN,
    NO_VERSION,
    NOT_TEXT,
    TOO_LARGE,
    TOO_MANY_LINES,
    TOO_MANY_MEDIA,
    ConnectionData,
    Media,
    Origin,
    SdpError,
    SessionDescription,
    build,
    parse,
)

BARESIP = (
    b"v=0\r\n"
    b"o=- 1457285934 3258712413 IN IP4 192.0.2.7\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.7\r\n"
    b"t=0 0\r\n"
    b"a=tool:baresip 1.0.0\r\n"
    b"m=audio 10002 RTP/AVP 0 8 101\r\n"
    b"b=AS:64\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=sendrecv\r\n"
    b"a=rtcp-rsize\r\n"
)


def test_parse_a_whole_description() -> None:
    session = parse(BARESIP)
    assert session == SessionDescription(
        Origin("-", 1457285934, 3258712413, "IP4", "192.0.2.7"),
        "-",
        ConnectionData("IP4", "192.0.2.7"),
        (("tool", "baresip 1.0.0"),),
        (
            Media(
                "audio",
                10002,
                "RTP/AVP",
                ("0", "8", "101"),
                None,
                (
                    ("rtpmap", "0 PCMU/8000"),
                    ("rtpmap", "8 PCMA/8000"),
                    ("rtpmap", "101 telephone-event/8000"),
                    ("fmtp", "101 0-15"),
                    ("sendrecv", None),
                    ("rtcp-rsize", None),
                ),
            ),
        ),
    )


def test_build_writes_what_parse_reads() -> None:
    session = parse(BARESIP)
    assert isinstance(session, SessionDescription)
    assert build(session) == BARESIP.replace(b"b=AS:64\r\n", b"")  # bandwidth is not kept
    assert parse(build(session)) == session


def test_lf_line_ends_media_connections_ipv6_and_ttl() -> None:
    text = (
        b"v=0\no=bob 1 2 IN IP6 2001:db8::1\ns= \nt=0 0\n"
        b"m=audio 4000/2 RTP/AVP 0\nc=IN IP6 2001:db8::2\n"
        b"m=video 0 RTP/AVP 31\nc=IN IP4 224.2.1.1/127/3\n"
    )
    assert parse(text) == SessionDescription(
        Origin("bob", 1, 2, "IP6", "2001:db8::1"),
        " ",
        None,
        (),
        (
            Media("audio", 4000, "RTP/AVP", ("0",), ConnectionData("IP6", "2001:db8::2")),
            Media("video", 0, "RTP/AVP", ("31",), ConnectionData("IP4", "224.2.1.1")),
        ),
    )


def test_media_attribute_lookups() -> None:
    session = parse(BARESIP)
    assert isinstance(session, SessionDescription)
    media = session.media[0]
    assert media.values("rtpmap") == ["0 PCMU/8000", "8 PCMA/8000", "101 telephone-event/8000"]
    assert (media.has("sendrecv"), media.has("sendonly")) == (True, False)


def test_keys_in_attributes_stay_out_of_the_repr() -> None:
    text = (
        BARESIP + b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\r\n"
    )
    assert "inline" not in repr(parse(text))


VALID_HEAD = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", NO_VERSION),
        (b"o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n", NO_VERSION),
        (b"v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n", NO_VERSION),
        (b"v=0\r\ns=-\r\n", NO_ORIGIN),
        (b"v=0\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\no=- 1 1 IN IP4 192.0.2.1\r\n", NO_ORIGIN),
        (b"v=0\r\no=- 1 1 IN IP4\r\n", BAD_ORIGIN),
        (b"v=0\r\no=- x 1 IN IP4 192.0.2.1\r\n", BAD_ORIGIN),
        (b"v=0\r\no=- 1 1 IN IPX 192.0.2.1\r\n", BAD_ORIGIN),
        (b"v=0\r\no=- 123456789012345678901 1 IN IP4 a\r\n", BAD_ORIGIN),
        (VALID_HEAD + b"c=IN IP4\r\n", BAD_CONNECTION),
        (VALID_HEAD + b"c=ATM NSAP 47.0091\r\n", BAD_CONNECTION),
        (VALID_HEAD + b"m=audio 1 RTP/AVP 0\r\nc=IN IP4 a b\r\n", BAD_CONNECTION),
        (VALID_HEAD + b"m=audio 65536 RTP/AVP 0\r\n", BAD_MEDIA),
        (VALID_HEAD + b"m=audio RTP/AVP 0\r\n", BAD_MEDIA),
        (VALID_HEAD + b"m=audio 4000 RTP/AVP\r\n", BAD_MEDIA),
        (VALID_HEAD + b"m=audio -1 RTP/AVP 0\r\n", BAD_MEDIA),
        (VALID_HEAD + b"no equals sign\r\n", BAD_LINE),
        (VALID_HEAD + b"x=unknown type\r\n", BAD_LINE),
        (VALID_HEAD + b"A=upper case\r\n", BAD_LINE),
        (VALID_HEAD + b"a=\xff\xfe\r\n", NOT_TEXT),
    ],
)
def test_malformed_descriptions_are_error_values(body: bytes, reason: str) -> None:
    assert parse(body) == SdpError(reason)


def test_the_size_bound() -> None:
    filler = b"a=x\r\n"
    assert isinstance(parse(VALID_HEAD.ljust(MAX_SDP, b"\n")), SessionDescription)
    assert parse(VALID_HEAD + filler * (MAX_SDP // len(filler))) == SdpError(TOO_LARGE)


def test_the_line_bound() -> None:
    head_lines = VALID_HEAD.count(b"\n")
    assert isinstance(
        parse(VALID_HEAD + b"a=x\r\n" * (MAX_LINES - head_lines)), SessionDescription
    )
    too_many = VALID_HEAD + b"a=x\r\n" * (MAX_LINES - head_lines + 1)
    assert parse(too_many) == SdpError(TOO_MANY_LINES)


def test_the_media_bound() -> None:
    section = b"m=audio 0 RTP/AVP 0\r\n"
    session = parse(VALID_HEAD + section * MAX_MEDIA)
    assert isinstance(session, SessionDescription) and len(session.media) == MAX_MEDIA
    assert parse(VALID_HEAD + section * (MAX_MEDIA + 1)) == SdpError(TOO_MANY_MEDIA)


def test_parse_never_raises_on_any_prefix() -> None:
    for end in range(len(BARESIP) + 1):
        assert isinstance(parse(BARESIP[:end]), SessionDescription | SdpError)
