"""Offer/answer (RFC 3264) for our one G.711 stream, with the examples of RFC 4317.

RFC 4317 sections used: 2.1, 2.2, 2.3, 2.4, 2.6 and 2.8 (codec choice, refused
streams kept in order), 2.5, 2.7, 4.3 and 5.1 (offers without G.711: 488), 2.2 and 2.5
(the o= version: one more when our SDP changes, the same when it does not), 3.1 and 3.2
(hold by a=sendonly, both as answerer and reading an answer), 5.2 and 5.3 (hold by
c=0.0.0.0, as answerer and reading an answer). Where an example uses iLBC only and the
point is not the codec, PCMU (0) stands in for iLBC (97), said at the test.
"""

import base64

import pytest

from intercom_sip.sip.negotiation import (
    BAD_PROTO,
    NO_ADDRESS,
    NO_AUDIO,
    NO_G711,
    NO_KEY,
    REFUSED,
    SRTP_REFUSED,
    Local,
    Negotiated,
    NotAcceptable,
    SdpAnswer,
    answer,
    make_offer,
    read_answer,
    revise,
)
from intercom_sip.sip.sdp import SessionDescription, build, parse

LOCAL = Local("192.0.2.10", 40000, 7000)
KEY = bytes(range(30))
THEIR_KEY = bytes(range(100, 130))
OUR_HEAD = "v=0\no=- 7000 {version} IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\n"
ALICE = (
    "v=0\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\ns= \n"
    "c=IN IP4 host.atlanta.example.com\nt=0 0\n"
)
BOB = (
    "v=0\no=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com\ns= \n"
    "c=IN IP4 host.biloxi.example.com\nt=0 0\n"
)
AUDIO_VIDEO = (  # the offer of RFC 4317 2.1, 2.2 and 2.8
    "m=audio 49170 RTP/AVP 0 8 97\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\n"
    "a=rtpmap:97 iLBC/8000\nm=video 51372 RTP/AVP 31 32\na=rtpmap:31 H261/90000\n"
    "a=rtpmap:32 MPV/90000\n"
)


TAKEN = "m=audio 40000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=ptime:20\na=sendrecv\n"


def sdp(text: str) -> SessionDescription:
    session = parse(text.replace("\n", "\r\n").encode())
    assert isinstance(session, SessionDescription)
    return session


def text(session: SessionDescription) -> str:
    return build(session).decode().replace("\r\n", "\n")


def ours(version: int, media: str) -> str:
    return OUR_HEAD.format(version=version) + media


def answered(offer: str, local: Local = LOCAL, srtp: bool = False) -> SdpAnswer:
    result = answer(sdp(offer), local, srtp)
    assert isinstance(result, SdpAnswer)
    return result


def pcmu(
    address: str | None, port: int, direction: str = "sendrecv", events: int | None = None
) -> Negotiated:
    return Negotiated("PCMU", 0, events, address, port, direction)


# -- our offers


def test_our_offer() -> None:
    assert text(make_offer(LOCAL)) == ours(
        7000,
        "m=audio 40000 RTP/AVP 0 8 101\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\na=ptime:20\na=sendrecv\n",
    )


def test_our_offer_with_srtp_and_over_ipv6() -> None:
    local = Local("2001:db8::10", 40002, 7000, key=KEY)
    assert text(make_offer(local)) == (
        "v=0\no=- 7000 7000 IN IP6 2001:db8::10\ns=-\nc=IN IP6 2001:db8::10\nt=0 0\n"
        "m=audio 40002 RTP/SAVP 0 8 101\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\na=ptime:20\na=sendrecv\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\n"
    )
    assert "AAECAwQF" not in repr(local)


def test_a_hold_reoffer_is_the_next_version_and_unhold_the_one_after() -> None:
    first = make_offer(LOCAL)
    held = make_offer(Local("192.0.2.10", 40000, 7000, direction="sendonly"), previous=first)
    assert text(held) == text(first).replace("sendrecv", "sendonly").replace(
        " 7000 7000 ", " 7000 7001 "
    )
    resumed = make_offer(LOCAL, previous=held)
    assert resumed.origin.version == 7002
    assert make_offer(LOCAL, previous=resumed) is resumed  # nothing changed: same version


# -- answering: codec choice and refused streams (RFC 4317 section 2)


def test_rfc4317_2_1_audio_taken_video_refused() -> None:
    result = answered(ALICE + AUDIO_VIDEO)
    assert text(result.sdp) == ours(
        7000,
        TAKEN + "m=video 0 RTP/AVP 31 32\n",
    )
    assert result.media == pcmu("host.atlanta.example.com", 49170)


def test_rfc4317_2_2_second_offer_changes_our_answer_so_its_version() -> None:
    first = answered(ALICE + AUDIO_VIDEO)
    second_offer = (
        ALICE.replace("2890844526 IN", "2890844527 IN")
        + "m=audio 51372 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
        + "m=video 0 RTP/AVP 31\na=rtpmap:31 H261/90000\n"
    )
    second = answer(sdp(second_offer), LOCAL, srtp=False, previous=first.sdp)
    assert isinstance(second, SdpAnswer)
    assert text(second.sdp) == ours(
        7001,
        TAKEN + "m=video 0 RTP/AVP 31\n",
    )
    assert second.media == pcmu("host.atlanta.example.com", 51372)


def test_rfc4317_2_5_an_unchanged_answer_keeps_its_version() -> None:
    first = answered(ALICE + AUDIO_VIDEO)
    again = answer(sdp(ALICE + AUDIO_VIDEO), LOCAL, srtp=False, previous=first.sdp)
    assert isinstance(again, SdpAnswer) and again.sdp is first.sdp


@pytest.mark.parametrize(
    ("audio", "expected"),
    [
        (
            "m=audio 49170 RTP/AVP 8 0 97\na=rtpmap:97 iLBC/8000\n",
            ("PCMA", 8),
        ),  # the offer's order
        (
            "m=audio 49170 RTP/AVP 97 8\na=rtpmap:97 iLBC/8000\n",
            ("PCMA", 8),
        ),  # RFC 4317 2.3 reordered
        ("m=audio 49170 RTP/AVP 96\na=rtpmap:96 pcmu/8000\n", ("PCMU", 96)),  # dynamic, any case
        (
            "m=audio 49170 RTP/AVP 96 0\na=rtpmap:96 PCMU/16000\n",
            ("PCMU", 0),
        ),  # not 8 kHz: skipped
    ],
)
def test_the_first_g711_of_the_offer_is_taken(audio: str, expected: tuple[str, int]) -> None:
    media = answered(ALICE + audio).media
    assert (media.codec, media.payload_type) == expected


def test_rfc4317_2_4_a_second_audio_stream_is_refused_in_its_place() -> None:
    offer = ALICE + (
        "m=audio 49170 RTP/AVP 0 97\na=rtpmap:0 PCMU/8000\na=rtpmap:97 iLBC/8000\n"
        "m=audio 49172 RTP/AVP 98\na=rtpmap:98 telephone-event/8000\na=sendonly\n"
    )
    assert text(answered(offer).sdp) == ours(
        7000,
        TAKEN + "m=audio 0 RTP/AVP 98\n",
    )


def test_rfc4317_2_6_the_first_g711_stream_taken_the_other_refused() -> None:
    offer = ALICE + (
        "m=audio 49170 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
        "m=audio 51372 RTP/AVP 97 101\na=rtpmap:97 iLBC/8000\na=rtpmap:101 telephone-event/8000\n"
    )
    result = answered(offer)
    assert text(result.sdp) == ours(
        7000,
        TAKEN + "m=audio 0 RTP/AVP 97 101\n",
    )
    assert result.media == pcmu("host.atlanta.example.com", 49170)


def test_a_refused_audio_stream_first_then_ours() -> None:
    offer = (
        ALICE
        + "m=audio 49170 RTP/AVP 97\na=rtpmap:97 iLBC/8000\nm=audio 49172 RTP/AVP 8 101\n"
        + ("a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\n")
    )
    result = answered(offer)
    assert text(result.sdp) == ours(
        7000,
        "m=audio 0 RTP/AVP 97\nm=audio 40000 RTP/AVP 8 101\na=rtpmap:8 PCMA/8000\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\na=ptime:20\na=sendrecv\n",
    )
    assert result.media == Negotiated(
        "PCMA", 8, 101, "host.atlanta.example.com", 49172, "sendrecv"
    )


def test_telephone_event_keeps_the_offer_payload_type() -> None:
    offer = ALICE + "m=audio 49170 RTP/AVP 0 96\na=rtpmap:96 telephone-event/8000\n"
    result = answered(offer)
    assert result.media == pcmu("host.atlanta.example.com", 49170, events=96)
    assert "m=audio 40000 RTP/AVP 0 96\n" in text(result.sdp)
    assert "a=rtpmap:96 telephone-event/8000\na=fmtp:96 0-15\n" in text(result.sdp)


@pytest.mark.parametrize("name", ["TELEPHONE-EVENT", "Telephone-Event", "telephone-EVENT"])
def test_encoding_names_are_case_insensitive(name: str) -> None:
    """RFC 8866 §6.6: `TELEPHONE-EVENT` and `pcmu` are the names we know."""
    offer = ALICE + f"m=audio 49170 RTP/AVP 0 96\na=rtpmap:0 pcmu/8000\na=rtpmap:96 {name}/8000\n"
    result = answered(offer)
    assert result.media == pcmu("host.atlanta.example.com", 49170, events=96)
    reply = BOB + f"m=audio 49174 RTP/AVP 0 101\na=rtpmap:101 {name}/8000\n"
    negotiated = read_answer(sdp(reply), make_offer(LOCAL))
    assert negotiated == pcmu("host.biloxi.example.com", 49174, events=101)


@pytest.mark.parametrize(
    ("ptime", "taken"),
    [
        ("20", 20),
        ("30", 30),
        ("40", 40),
        ("10", 20),
        ("60", 20),
        ("x", 20),
        ("3000", 20),
        ("²", 20),  # a digit to str.isdigit, not to int()
        ("30.0", 20),
        ("9" * 5000, 20),
    ],
)
def test_the_offer_ptime_is_what_we_send(ptime: str, taken: int) -> None:
    offer = ALICE + f"m=audio 49170 RTP/AVP 0\na=ptime:{ptime}\n"
    result = answered(offer)
    assert result.media == Negotiated(
        "PCMU", 0, None, "host.atlanta.example.com", 49170, "sendrecv", ptime=taken
    )
    assert "a=ptime:20\n" in text(result.sdp)  # what we would like to receive


def test_rtcp_mux_offered_is_answered_and_taken() -> None:
    """RFC 5761 §5.1.1."""
    offer = ALICE + "m=audio 49170 RTP/AVP 0\na=rtcp-mux\n"
    result = answered(offer)
    assert result.media.rtcp_mux is True
    assert text(result.sdp) == ours(
        7000, "m=audio 40000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=ptime:20\na=sendrecv\na=rtcp-mux\n"
    )
    plain = answered(ALICE + "m=audio 49170 RTP/AVP 0\n")
    assert plain.media.rtcp_mux is False
    assert "rtcp-mux" not in text(plain.sdp)


@pytest.mark.parametrize(
    ("line", "port"),
    [
        ("a=rtcp:53020\n", 53020),
        ("a=rtcp:53020 IN IP4 126.16.64.4\n", 53020),  # RFC 3605 §2.1's example
        ("a=rtcp:0\n", None),
        ("a=rtcp:70000\n", None),
        ("a=rtcp:x\n", None),
        ("a=rtcp:²\n", None),
        ("", None),
    ],
)
def test_the_rtcp_port_attribute(line: str, port: int | None) -> None:
    result = answered(ALICE + f"m=audio 49170 RTP/AVP 0\n{line}")
    assert result.media.rtcp_port == port


def test_our_offer_keeps_ptime_20_and_no_rtcp_mux() -> None:
    offer = text(make_offer(LOCAL))
    assert "a=ptime:20\n" in offer
    assert "rtcp-mux" not in offer


@pytest.mark.parametrize(
    ("offer", "reason"),
    [
        # RFC 4317 2.5, 2.7 and 4.3: iLBC only, with or without video.
        (
            ALICE + "m=audio 49170 RTP/AVP 97\na=rtpmap:97 iLBC/8000\nm=video 51372 RTP/AVP 31\n",
            NO_G711,
        ),
        (ALICE + "m=audio 49170 RTP/AVP 99\na=rtpmap:99 iLBC/8000\n", NO_G711),
        (ALICE + "m=audio 49170 RTP/AVP 0\na=rtpmap:0 G729/8000\n", NO_G711),  # rtpmap wins
        (ALICE, NO_AUDIO),  # RFC 4317 5.1: no media at all
        (ALICE + "m=video 51372 RTP/AVP 31\n", NO_AUDIO),
        (ALICE + "m=audio 0 RTP/AVP 0\n", NO_AUDIO),
        (ALICE + "m=audio 49170 UDP/TLS/RTP/SAVPF 0\n", BAD_PROTO),
        (ALICE + "m=audio 49170 RTP/AVPF 0\n", BAD_PROTO),
        (
            ALICE.replace("c=IN IP4 host.atlanta.example.com\n", "") + "m=audio 49170 RTP/AVP 0\n",
            NO_ADDRESS,
        ),
    ],
)
def test_offers_we_cannot_take_are_488(offer: str, reason: str) -> None:
    assert answer(sdp(offer), LOCAL, srtp=False) == NotAcceptable(reason, 488)


# -- hold (RFC 4317 section 3 and 5.2)


@pytest.mark.parametrize(
    ("theirs", "our_answer"),
    [
        ("a=sendonly\n", "recvonly"),
        ("a=recvonly\n", "sendonly"),
        ("a=inactive\n", "inactive"),
        ("a=sendrecv\n", "sendrecv"),
        ("", "sendrecv"),
    ],
)
def test_rfc4317_3_2_the_direction_mirrors_the_offer(theirs: str, our_answer: str) -> None:
    # 3.2's second offer puts the audio on hold with a=sendonly (PCMU for its iLBC).
    result = answered(BOB + "m=audio 49172 RTP/AVP 0\n" + theirs)
    assert result.media.direction == our_answer
    assert f"a=ptime:20\na={our_answer}\n" in text(result.sdp)


def test_a_session_level_direction_applies_when_the_stream_has_none() -> None:
    offer = BOB.replace("t=0 0\n", "t=0 0\na=sendonly\n") + "m=audio 49172 RTP/AVP 0\n"
    assert answered(offer).media.direction == "recvonly"


def test_our_own_hold_is_combined_with_the_offer() -> None:
    held = Local("192.0.2.10", 40000, 7000, direction="sendonly")
    assert answered(BOB + "m=audio 49172 RTP/AVP 0\n", held).media.direction == "sendonly"
    assert (
        answered(BOB + "m=audio 49172 RTP/AVP 0\na=sendonly\n", held).media.direction == "inactive"
    )


def test_rfc4317_5_2_an_offer_on_0000_is_held_then_resumed() -> None:
    # PCMU stands in for the example's iLBC.
    held_offer = (
        ALICE.replace("c=IN IP4 host.atlanta.example.com", "c=IN IP4 0.0.0.0")
        + "m=audio 23442 RTP/AVP 0\n"
    )
    held = answered(held_offer)
    assert held.media == pcmu(None, 23442, "recvonly")
    assert "a=recvonly\n" in text(held.sdp)
    resumed_offer = ALICE.replace("2890844526 IN", "2890844527 IN") + "m=audio 49170 RTP/AVP 0\n"
    resumed = answer(sdp(resumed_offer), LOCAL, srtp=False, previous=held.sdp)
    assert isinstance(resumed, SdpAnswer)
    assert resumed.media == pcmu("host.atlanta.example.com", 49170)
    assert resumed.sdp.origin.version == 7001


def test_an_ipv6_hold_address() -> None:
    offer = "v=0\no=- 1 1 IN IP6 2001:db8::1\ns=-\nc=IN IP6 ::\nt=0 0\nm=audio 5000 RTP/AVP 0\n"
    assert answered(offer).media == pcmu(None, 5000, "recvonly")


# -- SRTP (RFC 4568)

CRYPTO = "a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{key}\n"
THEIRS = CRYPTO.format(tag=2, key=base64.b64encode(THEIR_KEY).decode())
SAVP = ALICE + "m=audio 49170 RTP/SAVP 0 101\na=rtpmap:101 telephone-event/8000\n"


def test_an_savp_offer_is_answered_with_our_key_under_its_tag() -> None:
    local = Local("192.0.2.10", 40000, 7000, key=KEY)
    offer = SAVP + CRYPTO.format(tag=1, key="bad") + THEIRS
    result = answered(offer, local, srtp=True)
    assert text(result.sdp) == ours(
        7000,
        "m=audio 40000 RTP/SAVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n"
        "a=fmtp:101 0-15\na=ptime:20\na=sendrecv\n"
        "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\n",
    )
    assert result.media == Negotiated(
        "PCMU", 0, 101, "host.atlanta.example.com", 49170, "sendrecv", THEIR_KEY
    )
    assert "remote_key" not in repr(result.media)


def test_an_savp_offer_without_tls_is_488() -> None:
    assert answer(sdp(SAVP + THEIRS), Local("192.0.2.10", 40000, 7000, key=KEY), srtp=False) == (
        NotAcceptable(SRTP_REFUSED)
    )
    assert answer(sdp(SAVP + THEIRS), LOCAL, srtp=True) == NotAcceptable(
        SRTP_REFUSED
    )  # no key of ours


@pytest.mark.parametrize(
    "crypto",
    [
        "",
        CRYPTO.format(tag=1, key=base64.b64encode(bytes(29)).decode()),  # short key
        CRYPTO.format(tag=1, key="!!!!"),  # not base64
        "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + base64.b64encode(THEIR_KEY).decode() + "\n",
        CRYPTO.format(tag=1, key=base64.b64encode(THEIR_KEY).decode() + "|2^20|1:4"),  # an MKI
        CRYPTO.format(tag=1, key=base64.b64encode(THEIR_KEY).decode() + " UNENCRYPTED_SRTP"),
    ],
)
def test_an_savp_offer_without_a_usable_key_is_488(crypto: str) -> None:
    local = Local("192.0.2.10", 40000, 7000, key=KEY)
    assert answer(sdp(SAVP + crypto), local, srtp=True) == NotAcceptable(NO_KEY)


def test_a_key_lifetime_is_accepted() -> None:
    crypto = CRYPTO.format(tag=1, key=base64.b64encode(THEIR_KEY).decode() + "|2^31")
    result = answer(sdp(SAVP + crypto), Local("192.0.2.10", 40000, 7000, key=KEY), srtp=True)
    assert isinstance(result, SdpAnswer) and result.media.remote_key == THEIR_KEY


def test_a_plain_offer_over_tls_is_answered_in_plain() -> None:
    result = answered(
        ALICE + "m=audio 49170 RTP/AVP 0\n", Local("192.0.2.10", 40000, 7000, key=KEY), srtp=True
    )
    assert "m=audio 40000 RTP/AVP 0\n" in text(result.sdp) and "crypto" not in text(result.sdp)
    assert result.media.remote_key is None


# -- reading the answer to our offer


def test_reading_an_answer() -> None:
    reply = BOB + "m=audio 49174 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\n"
    negotiated = read_answer(sdp(reply), make_offer(LOCAL))
    assert negotiated == Negotiated("PCMA", 8, 101, "host.biloxi.example.com", 49174, "sendrecv")


def test_rfc4317_2_8_a_media_level_connection_wins() -> None:
    reply = (
        BOB
        + "m=audio 49174 RTP/AVP 0\nc=IN IP4 otherhost.biloxi.example.com\nm=video 0 RTP/AVP 32\n"
    )
    assert read_answer(sdp(reply), make_offer(LOCAL)) == pcmu(
        "otherhost.biloxi.example.com", 49174
    )


def test_rfc4317_3_1_an_answer_that_holds_us() -> None:
    # The example's placeholder address and a=sendonly; PCMU for its iLBC.
    reply = (
        BOB.replace("c=IN IP4 host", "c=IN IP4 placeholder")
        + "m=audio 49172 RTP/AVP 0\na=sendonly\n"
    )
    assert read_answer(sdp(reply), make_offer(LOCAL)) == pcmu(
        "placeholder.biloxi.example.com", 49172, "recvonly"
    )


def test_rfc4317_5_3_an_answer_on_0000() -> None:
    reply = (
        BOB.replace("c=IN IP4 host.biloxi.example.com", "c=IN IP4 0.0.0.0")
        + "m=audio 9322 RTP/AVP 0\n"
    )
    assert read_answer(sdp(reply), make_offer(LOCAL)) == pcmu(None, 9322, "recvonly")


def test_reading_an_srtp_answer() -> None:
    offer = make_offer(Local("192.0.2.10", 40000, 7000, key=KEY))
    key = base64.b64encode(THEIR_KEY).decode()
    reply = BOB + "m=audio 49174 RTP/SAVP 0\n" + CRYPTO.format(tag=1, key=key)
    assert read_answer(sdp(reply), offer) == Negotiated(
        "PCMU", 0, None, "host.biloxi.example.com", 49174, "sendrecv", THEIR_KEY
    )
    assert read_answer(sdp(reply.replace("crypto:1", "crypto:2")), offer) == NotAcceptable(NO_KEY)
    assert read_answer(sdp(reply.replace("SAVP", "AVP")), offer) == NotAcceptable(BAD_PROTO)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (BOB, REFUSED),
        (BOB + "m=audio 0 RTP/AVP 0\n", REFUSED),
        (BOB + "m=audio 49174 RTP/AVP 97\na=rtpmap:97 iLBC/8000\n", NO_G711),
        (BOB + "m=audio 49174 RTP/AVP 18\n", NO_G711),  # not one we offered
        (BOB + "m=audio 49174 RTP/SAVP 0\n", BAD_PROTO),
        (
            BOB.replace("c=IN IP4 host.biloxi.example.com\n", "") + "m=audio 49174 RTP/AVP 0\n",
            NO_ADDRESS,
        ),
    ],
)
def test_answers_we_cannot_use(reply: str, reason: str) -> None:
    assert read_answer(sdp(reply), make_offer(LOCAL)) == NotAcceptable(reason)


def test_revise_numbers_from_the_previous_description() -> None:
    first = make_offer(LOCAL)
    assert revise(None, first) is first
    assert revise(first, first.with_version(1)) is first
    changed = make_offer(Local("192.0.2.10", 40002, 7000))
    assert revise(first, changed).origin.version == 7001
