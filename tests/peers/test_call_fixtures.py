"""The call peers proven among themselves, before our monitor joins them: baresip calls
baresip and a SIPp callee through Kamailio, SIPp callers call baresip, and the audio each
one hears is measured (the frequency of the other side's tone, not just "not silence").

Tones: baresip A sends 1000 Hz, baresip B 600 Hz, SIPp 800 Hz, so that a recording says
whose audio it holds.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import audio, sipp
from .baresip import (
    MAX_EVENTS,
    Account,
    Baresip,
    BaresipError,
    Registrar,
    Transport,
    split_netstrings,
)
from .conftest import MakeBaresip, require
from .kamailio import Kamailio, MakeKamailio

peers = pytest.mark.peers

USERS = {"201": "pw201", "202": "pw202", "203": "pw203"}
A_HZ, B_HZ, SIPP_HZ = 1000, 600, 800


@pytest.fixture
def server(kamailio_factory: MakeKamailio) -> Kamailio:
    """Kamailio knowing users 201 to 203."""
    require("baresip", "sipp")
    return kamailio_factory(users=USERS)


@pytest.fixture
def callee_b(server: Kamailio) -> Iterator[Baresip]:
    """baresip 202 over UDP, answering at once, sending 600 Hz."""
    with Baresip(Registrar.of(server), Account("202", "pw202"), tone_hz=B_HZ) as phone:
        yield phone


def proxy(server: Kamailio, transport: sipp.Transport = "udp") -> tuple[str, int]:
    return "127.0.0.1", server.sip_port  # UDP and TCP share the port


def hears(phone: Baresip, frequency: int) -> None:
    recording = phone.heard()
    found = audio.dominant_frequency(recording)
    assert abs(found - frequency) <= 20, (
        f"{phone.account.user} heard {found} Hz, not {frequency} Hz "
        f"(rms {audio.rms(recording.samples):.0f}, {recording.seconds:.1f} s)"
    )


# -- baresip calls


@peers
@pytest.mark.parametrize(
    ("transport", "srtp"), [("udp", False), ("tcp", False), ("tls", True)], ids=str
)
def test_baresip_calls_baresip_with_audio_and_dtmf_both_ways(
    server: Kamailio, baresip_factory: MakeBaresip, transport: Transport, srtp: bool
) -> None:
    a = baresip_factory(server, Account("201", "pw201", transport, srtp=srtp), tone_hz=A_HZ)
    b = baresip_factory(server, Account("202", "pw202", transport, srtp=srtp), tone_hz=B_HZ)
    a.dial(a.uri("202"))
    a.wait_event("CALL_ESTABLISHED")
    b.wait_event("CALL_ESTABLISHED")
    b.wait_heard(1.0)
    a.wait_heard(1.0)
    a.send_dtmf("#")
    b.wait_event("CALL_DTMF_START")
    b.send_dtmf("1")
    a.wait_event("CALL_DTMF_START")
    a.hangup()
    a.wait_event("CALL_CLOSED")
    closed = b.wait_event("CALL_CLOSED")

    assert (b.received_digits(), a.received_digits()) == ("#", "1")
    assert closed["param"] == "Connection reset by peer"
    hears(b, A_HZ)
    hears(a, B_HZ)
    if srtp:
        for phone in (a, b):  # SDES-SRTP keyed on both sides (MENC_EVENT_SECURE = 0)
            assert phone.wait_event("CALL_MENC")["param"] == "0,audio,AES_CM_128_HMAC_SHA1_80"


@peers
def test_baresip_calls_a_sipp_callee_and_hangs_up(server: Kamailio) -> None:
    with (
        Baresip(Registrar.of(server), Account("201", "pw201"), tone_hz=A_HZ) as a,
        sipp.Sipp("uas_answer.xml", tone_hz=SIPP_HZ) as callee,
    ):
        sipp.bind(server.ctl, "203", callee.contact("203"))
        a.dial(a.uri("203"))
        a.wait_event("CALL_ESTABLISHED")
        a.wait_heard(1.0)
        a.hangup()
        a.wait_event("CALL_CLOSED")
        result = callee.wait(20)

        assert result.ok, result.report()
        hears(a, SIPP_HZ)


@peers
@pytest.mark.parametrize("callee", ["sipp", "baresip"])
def test_a_busy_callee_answers_486(server: Kamailio, callee: str) -> None:
    reg = Registrar.of(server)
    with (
        Baresip(reg, Account("201", "pw201")) as a,
        Baresip(reg, Account("202", "pw202", answer="busy")) as b,
        sipp.Sipp("uas_busy.xml") as sipp_callee,
    ):
        sipp.bind(server.ctl, "203", sipp_callee.contact("203"))
        a.dial(a.uri("203" if callee == "sipp" else "202"))
        closed = a.wait_event("CALL_CLOSED")

        assert closed["param"].startswith("486 "), closed
        if callee == "sipp":
            result = sipp_callee.wait(20)
            assert result.ok, result.report()
        else:
            assert b.wait_event("CALL_CLOSED")["param"] == "Connection reset by user"


@peers
def test_baresip_cancels_a_ringing_sipp_callee(server: Kamailio) -> None:
    with (
        Baresip(Registrar.of(server), Account("201", "pw201")) as a,
        sipp.Sipp("uas_ring.xml") as callee,
    ):
        sipp.bind(server.ctl, "203", callee.contact("203"))
        a.dial(a.uri("203"))
        a.wait_event("CALL_RINGING")
        a.hangup()
        result = callee.wait(20)

        assert result.ok, result.report()


# -- SIPp calls


@peers
@pytest.mark.parametrize(
    ("caller_leg", "callee_leg"), [("udp", "udp"), ("tcp", "tcp"), ("udp", "tls")], ids=str
)
def test_a_sipp_caller_streams_rtp_until_the_callee_hangs_up(
    server: Kamailio, caller_leg: sipp.Transport, callee_leg: Transport
) -> None:
    # SIPp here has no TLS: the TLS case is SIPp -UDP-> Kamailio -TLS-> the callee's flow.
    account = Account("202", "pw202", transport=callee_leg)
    with (
        Baresip(Registrar.of(server), account, tone_hz=B_HZ) as callee,
        sipp.Sipp(
            "uac_wait_bye.xml", proxy(server, caller_leg), service="202",
            transport=caller_leg, timeout=30, tone_hz=SIPP_HZ,
        ) as caller,
    ):  # fmt: skip
        callee.wait_heard(1.0)
        callee.hangup()
        callee.wait_event("CALL_CLOSED")
        result = caller.wait()

        assert result.ok, result.report()
        assert "BYE sip:" in result.messages
        hears(callee, SIPP_HZ)
        assert server.bindings("202")[0].transport == callee_leg


@peers
def test_a_sipp_caller_hangs_up_after_its_pause(server: Kamailio, callee_b: Baresip) -> None:
    result = sipp.run("uac_bye.xml", proxy(server), service="202", pause_ms=1500, timeout=20)

    assert result.ok, result.report()
    assert callee_b.wait_event("CALL_CLOSED")["param"] == "Connection reset by peer"


@peers
def test_a_sipp_caller_cancels_while_it_rings(server: Kamailio) -> None:
    with Baresip(Registrar.of(server), Account("202", "pw202", answer="manual")) as b:
        result = sipp.run("uac_cancel.xml", proxy(server), service="202", pause_ms=500)
        closed = b.wait_event("CALL_CLOSED")

    assert result.ok, result.report()
    assert "CALL_ESTABLISHED" not in b.event_types()
    assert closed["param"] == "Connection reset by peer", closed


@peers
def test_a_sipp_caller_whose_rtp_stops_gets_bye(server: Kamailio) -> None:
    account = Account("202", "pw202")
    with Baresip(Registrar.of(server), account, rtp_timeout=2) as b:
        result = sipp.run(
            "uac_rtp_stops.xml", proxy(server), service="202", timeout=20, tone_seconds=1
        )
        closed = b.wait_event("CALL_CLOSED")

    assert result.ok, result.report()
    assert closed["param"] == "rtp stream error"


@peers
@pytest.mark.slow
def test_a_sipp_caller_that_never_acks_gets_bye_after_64_t1(server: Kamailio) -> None:
    # The one real-time proof of 64*T1 = 32 s (make test-slow): baresip's, not ours to
    # shorten; ours, at T1 = 0.1 s, is test_calls.test_no_ack_ends_the_call.
    with Baresip(Registrar.of(server), Account("202", "pw202"), tone_seconds=40) as b:
        result = sipp.run("uac_no_ack.xml", proxy(server), service="202", timeout=50)
        closed = b.wait_event("CALL_CLOSED")

    assert result.ok, result.report()
    assert "ACK sip:" not in result.messages
    assert closed["param"] == "Connection timed out"


@peers
@pytest.mark.parametrize("scenario", ["uac_no_g711.xml", "uac_savp.xml"])
def test_offers_baresip_cannot_take_get_488(
    server: Kamailio, callee_b: Baresip, scenario: str
) -> None:
    result = sipp.run(scenario, proxy(server), service="202", timeout=20)

    assert result.ok, result.report()
    assert "SIP/2.0 488 " in result.messages


# -- the pure parts, no peers


def test_the_tone_frequency_is_measured_in_a_recording(tmp_path: Path) -> None:
    silence = [0] * 4000
    path = audio.write_wav(tmp_path / "x.wav", silence + audio.tone(800, 1.5) + silence)
    recording = audio.read_wav(path)

    assert (recording.rate, recording.seconds) == (8000, 2.5)
    assert audio.dominant_frequency(recording) == 800
    assert audio.has_tone(recording, 800)
    assert not audio.has_tone(recording, 1000)
    assert not audio.has_tone(audio.Recording(tuple(silence), 8000), 800)


def test_mulaw_bytes_are_g711s() -> None:
    samples = [0, -1, 32767, -32768, 1000, -1000, 8159]
    assert [audio.mulaw_byte(s) for s in samples] == [0xFF, 0x7F, 0x80, 0x00, 0xCE, 0x4E, 0x9F]


def test_netstrings_split_at_their_commas() -> None:
    assert split_netstrings(b"2:{},3:abc,4:ab") == ([b"{}", b"abc"], b"4:ab")
    with pytest.raises(BaresipError, match="without its comma"):
        split_netstrings(b"2:abc")
    with pytest.raises(BaresipError, match="netstring of 1048577 bytes"):
        split_netstrings(b"1048577:")


def test_baresip_keeps_the_last_events_only() -> None:
    phone = Baresip(Registrar(5060, 5061), Account("201", "pw"))
    for n in range(MAX_EVENTS + 5):
        phone._dispatch(b'{"event": true, "type": "CALL_DTMF_START", "param": "%d"}' % (n % 10))
    assert len(phone.events) == MAX_EVENTS
    assert phone.events[0]["param"] == "5"  # the first five were dropped


def test_an_account_line_says_transport_answer_mode_and_srtp() -> None:
    reg = Registrar(5060, 5061)
    line = Account("201", "pw", transport="tls", answer="busy", srtp=True).line(reg)
    assert line == (
        "<sip:201@127.0.0.1:5061;transport=tls>;auth_pass=pw;answermode=manual;regint=600;"
        "mediaenc=srtp-mand"
    )
    assert "pw" not in repr(Account("201", "pw"))


@pytest.mark.parametrize("path", sorted(sipp.SCENARIOS.glob("*.xml")), ids=lambda p: p.name)
def test_scenarios_are_well_formed_and_commented(path: Path) -> None:
    text = path.read_text()
    root = ET.fromstring(text.split("?>", 1)[1])  # noqa: S314 (our own files)
    assert root.tag == "scenario"
    assert "<!--" in text.split("<scenario", 1)[0]  # says what it is for
