"""Calls between the monitor and baresip through Kamailio (issue 7, items 2 and 3): what
each side hears is measured (the frequency of the other's tone, not just "not silence"),
and DTMF goes both ways.

Tones: the monitor sends its default 425 Hz, baresip 1000 Hz, so a recording says whose
audio it holds.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.served import wait_for

from . import audio, sipp, sniffer
from .baresip import Account, Transport
from .conftest import MakeBaresip, require
from .kamailio import Kamailio, MakeKamailio
from .ports import free_rtp_port
from .test_calls import USERS as MONITORS
from .test_calls import Monitor, ended

pytestmark = pytest.mark.peers

USERS = {"101": MONITORS["101"], "201": "pw201", "202": "pw202"}
MONITOR_HZ, PHONE_HZ = 425, 1000  # the monitor's default tone; baresip's
STATUS = "/api/v1/call/status"


@pytest.fixture
def kamailio(kamailio_factory: MakeKamailio) -> Kamailio:
    require("baresip")
    return kamailio_factory(users=USERS)


@pytest.fixture
def monitor(tmp_path: Path, kamailio: Kamailio) -> Iterator[Callable[..., Monitor]]:
    made: list[Monitor] = []

    def make(transport: str = "udp", *extra: str, auto_answer: bool = True) -> Monitor:
        # test_calls' Monitor knows its users' passwords from its own table.
        one = Monitor(tmp_path, kamailio, "101", transport)
        made.append(one)
        return one.start(*extra, auto_answer=auto_answer)

    yield make
    for one in made:
        one.stop()


def recordings(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir(exist_ok=True)
    return folder


def heard(recording: audio.Recording, frequency: int, who: str) -> None:
    # A 0.1 s window: its bins are 10 Hz wide like the scan's steps. Over 1 s (the
    # default) a 425 Hz tone falls in the nulls between the 10 Hz steps (420 and 430 Hz
    # are whole cycles away) and noise wins.
    found = audio.dominant_frequency(recording, window=0.1)
    loud = audio.rms(audio.loudest_window(recording, 1.0)) > 1000
    assert abs(found - frequency) <= 10 and loud, (
        f"{who} heard {found} Hz, not {frequency} Hz "
        f"(rms {audio.rms(recording.samples):.0f}, {recording.seconds:.1f} s)"
    )


PCMU = 0
WAV_HEADER = 44


def rtp_ports(port: int) -> tuple[str, str]:
    """The monitor's options for a range of one port: every call of it leases `port`."""
    return "--rtp-ports", f"{port}-{port}"


@contextlib.contextmanager
def on_the_wire(*ports: int) -> Iterator[sniffer.Sniffer]:
    """A capture of the datagrams to and from `ports` (the monitor's RTP port, which the
    kernel chose, and its SIP port), while in the block."""

    def ours(d: sniffer.Datagram) -> bool:
        return d.source[1] in ports or d.destination[1] in ports

    capture = sniffer.Sniffer(ours)
    try:
        capture.start()
    except sniffer.SnifferError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield capture
    finally:
        capture.stop()


def clear_frames(hz: int, level: float) -> bytes:
    """Two periods of a tone as G.711 mu-law: every clear 20 ms frame of it is a slice."""
    period = 8000 // math.gcd(hz, 8000)
    samples = audio.tone(hz, 2 * max(period, 160) / 8000, level=level)
    return bytes(audio.mulaw_byte(s) for s in samples)


def wire(capture: sniffer.Sniffer, port: int) -> dict[str, tuple[int, int]]:
    """Per direction, (RTP packets, those whose payload is a clear frame of the tone), to
    and from the monitor's RTP `port`."""
    monitor_tone, phone_tone = clear_frames(MONITOR_HZ, 0.25), clear_frames(PHONE_HZ, 0.5)
    counts = {"from the monitor": [0, 0], "to the monitor": [0, 0]}
    for datagram in capture.taken():
        if port not in (datagram.source[1], datagram.destination[1]):
            continue
        rtp = sniffer.rtp_payload(datagram.payload)
        if rtp is None or rtp[0] != PCMU:
            continue
        out = datagram.source[1] == port
        name, tone = ("from the monitor", monitor_tone) if out else ("to the monitor", phone_tone)
        counts[name][0] += 1
        counts[name][1] += rtp[1][:160] in tone
    return {name: (n, clear) for name, (n, clear) in counts.items()}


def digits_in_status(monitor: Monitor, digits: str) -> None:
    wait_for(lambda: monitor.status()["dtmf_received"] == digits, 10)


def monitor_heard(recording: Path, seconds: float, timeout: float = 15) -> None:
    """Wait until the monitor's recording of the call holds `seconds` of audio."""
    want = WAV_HEADER + round(seconds * 8000) * 2
    wait_for(lambda: recording.exists() and recording.stat().st_size >= want, timeout)


# --- item 2: baresip calls the monitor ------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "srtp"), [("udp", False), ("tcp", False), ("tls", True)], ids=str
)
def test_baresip_calls_the_monitor_audio_and_dtmf_both_ways(
    tmp_path: Path,
    kamailio: Kamailio,
    monitor: Callable[..., Monitor],
    baresip_factory: MakeBaresip,
    transport: Transport,
    srtp: bool,
) -> None:
    """Over TLS, baresip offers RTP/SAVP (mediaenc=srtp-mand) and the monitor keys SRTP:
    the capture then holds no clear frame of either tone; over UDP and TCP it does (the
    capture's own proof)."""
    folder = recordings(tmp_path)
    port = free_rtp_port()
    mon = monitor(transport, "--recordings", str(folder), *rtp_ports(port))
    account = Account("201", "pw201", transport, srtp=srtp)
    with on_the_wire(port) as capture:
        phone = baresip_factory(kamailio, account, tone_hz=PHONE_HZ)
        phone.dial(phone.uri("101"))
        phone.wait_event("CALL_ESTABLISHED")
        active = mon.wait_state("active")
        phone.wait_heard(2.0)
        assert phone.strays() == []  # its RTP ports too are the ones reserved for it
    assert (active["direction"], active["codec"], active["srtp"]) == ("in", "PCMU", srtp)
    seen = wire(capture, port)
    for packets, clear in seen.values():
        assert packets > 50, seen
        assert clear == (0 if srtp else packets), seen
    if srtp:  # SDES-SRTP keyed on baresip's side too (MENC_EVENT_SECURE = 0)
        assert phone.wait_event("CALL_MENC")["param"] == "0,audio,AES_CM_128_HMAC_SHA1_80"

    status, answer = mon.call("POST", "/api/v1/call/dtmf", {"digits": "#"})
    assert status == 200, answer
    assert phone.wait_event("CALL_DTMF_START")["param"] == "#"
    phone.send_dtmf("5")
    digits_in_status(mon, "5")

    phone.hangup()
    assert phone.wait_event("CALL_CLOSED")["param"] == "Connection reset by user"
    mon.wait_state("idle")
    call = mon.last_call()
    assert ended(call) == ("in", "remote hangup", None, None)
    assert (call["id"], call["dtmf_received"]) == (active["id"], "5")
    assert phone.received_digits() == "#"
    heard(phone.heard(), MONITOR_HZ, "baresip")
    heard(audio.read_wav(folder / f"{active['id']}.wav"), PHONE_HZ, "the monitor")


# --- item 3: the monitor calls baresip, challenged by the proxy -------------------------------


@pytest.fixture
def strict(kamailio_factory: MakeKamailio) -> Kamailio:
    """A Kamailio that challenges every new INVITE from its users (407)."""
    require("baresip")
    return kamailio_factory(users=USERS, auth_invites=True)


def invite_auth(kamailio: Kamailio, user: str) -> list[str]:
    """What route[INVITE_AUTH] did with `user`'s INVITEs, in order."""
    return re.findall(rf"invite-auth {user}: (\w+)", kamailio.log_text())


def dial(mon: Monitor, path: str, number: str) -> dict[str, Any]:
    status, answer = mon.call("POST", path, {"number": number})
    assert status == 200, (answer, mon.log)
    assert answer["state"] == "calling"
    result: dict[str, Any] = answer
    return result


@pytest.mark.parametrize(
    ("path", "number", "transport"),
    [
        ("/api/v1/call/dial", "201", "udp"),
        ("/api/v1/system/debug/call/start", "sip:201@kamailio.test", "tcp"),
    ],
    ids=["call-dial-digits-udp", "vendor-alias-uri-tcp"],
)
def test_the_monitor_calls_baresip_through_a_challenge(
    tmp_path: Path,
    strict: Kamailio,
    baresip_factory: MakeBaresip,
    path: str,
    number: str,
    transport: Transport,
) -> None:
    folder = recordings(tmp_path)
    mon = Monitor(tmp_path, strict, "101", transport)
    try:
        mon.start("--recordings", str(folder))
        account = Account("201", "pw201", transport)
        phone = baresip_factory(strict, account, tone_hz=PHONE_HZ)
        calling = dial(mon, path, number)
        assert calling["remote"] == "sip:201@kamailio.test"
        phone.wait_event("CALL_ESTABLISHED")
        active = mon.wait_state("active")
        assert active["id"] == calling["id"]
        phone.wait_heard(2.0)
        monitor_heard(folder / f"{active['id']}.wav", 1.0)
        assert mon.call("POST", "/api/v1/call/hangup")[0] == 200
        assert phone.wait_event("CALL_CLOSED")["param"] == "Connection reset by peer"
        mon.wait_state("idle")
        call = mon.last_call()
    finally:
        mon.stop()
    assert invite_auth(strict, "101") == ["challenged", "authorized"]
    assert ended(call) == ("out", "local hangup", None, None)
    assert call["rtp"]["received"] > 50 and call["rtp"]["sent"] > 50
    assert mon.ended_line(call["id"]).endswith("ended: local hangup")
    heard(phone.heard(), MONITOR_HZ, "baresip")
    heard(audio.read_wav(folder / f"{call['id']}.wav"), PHONE_HZ, "the monitor")


def test_hanging_up_while_baresip_rings_sends_cancel(
    tmp_path: Path, strict: Kamailio, baresip_factory: MakeBaresip
) -> None:
    mon = Monitor(tmp_path, strict, "101", "udp")
    try:
        mon.start()
        phone = baresip_factory(strict, Account("201", "pw201", answer="manual"))
        dial(mon, "/api/v1/call/dial", "201")
        phone.wait_event("CALL_INCOMING")
        assert mon.status()["state"] == "calling"
        assert mon.call("POST", "/api/v1/call/hangup")[0] == 200
        closed = phone.wait_event("CALL_CLOSED")
        mon.wait_state("idle")
        call = mon.last_call()
    finally:
        mon.stop()
    # baresip closes a call on CANCEL as on BYE ("Connection reset by peer"): the proxy
    # says which it relayed.
    assert closed["param"] == "Connection reset by peer", closed
    assert re.findall(r"relay CANCEL from 101 to (\w+)", strict.log_text()) == ["201"]
    assert invite_auth(strict, "101") == ["challenged", "authorized"]
    assert ended(call) == ("out", "local hangup", None, None)
    assert (call["answered"], call["rtp"]) == (None, None)


def test_a_busy_baresip_is_logged_busy_486(
    tmp_path: Path, strict: Kamailio, baresip_factory: MakeBaresip
) -> None:
    mon = Monitor(tmp_path, strict, "101", "udp")
    try:
        mon.start()
        phone = baresip_factory(strict, Account("201", "pw201", answer="busy"))
        dial(mon, "/api/v1/call/dial", "201")
        phone.wait_event("CALL_CLOSED")
        mon.wait_state("idle")
        call = mon.last_call()
    finally:
        mon.stop()
    assert ended(call) == ("out", "busy", 486, "Rejected")
    assert mon.ended_line(call["id"]).endswith("ended: busy (486 Rejected)")


def test_a_refused_answer_to_the_407_is_not_answered_again(
    tmp_path: Path, strict: Kamailio, baresip_factory: MakeBaresip
) -> None:
    mon = Monitor(tmp_path, strict, "101", "udp")
    try:
        mon.start()
        baresip_factory(strict, Account("201", "pw201"))
        strict.set_password("101", "not-the-monitors")  # registered already, calls refused
        dial(mon, "/api/v1/call/dial", "201")
        mon.wait_state("idle")
        call = mon.last_call()
    finally:
        mon.stop()
    assert invite_auth(strict, "101") == ["challenged", "refused"]
    assert ended(call) == ("out", "failed", 407, "Proxy Authentication Required")
    assert mon.ended_line(call["id"]).endswith(
        "ended: failed (407 Proxy Authentication Required): refused"
    )


# --- item 4: keys never travel in the clear ------------------------------------------------


def test_an_rtp_savp_offer_over_udp_gets_488(
    kamailio: Kamailio, monitor: Callable[..., Monitor]
) -> None:
    mon = monitor("udp")
    result = sipp.run("uac_savp.xml", ("127.0.0.1", kamailio.sip_port), service="101")
    assert result.ok, result.report() + mon.log
    assert mon.status()["state"] == "idle"
    call = mon.last_call()
    assert ended(call) == ("in", "failed", 488, "Not Acceptable Here")
    assert (call["answered"], call["rtp"], call["srtp"]) == (None, None, None)
    assert mon.ended_line(call["id"]).endswith(
        "ended: failed (488 Not Acceptable Here): RTP/SAVP is refused without TLS"
    )


def test_the_monitor_calls_baresip_over_tls_with_srtp(
    tmp_path: Path,
    kamailio: Kamailio,
    monitor: Callable[..., Monitor],
    baresip_factory: MakeBaresip,
) -> None:
    """Our offer over TLS is RTP/SAVP with a key; baresip (srtp-mand) takes it."""
    folder = recordings(tmp_path)
    port = free_rtp_port()
    mon = monitor("tls", "--recordings", str(folder), *rtp_ports(port))
    account = Account("201", "pw201", "tls", srtp=True)
    with on_the_wire(port) as capture:
        phone = baresip_factory(kamailio, account, tone_hz=PHONE_HZ)
        dial(mon, "/api/v1/call/dial", "201")
        phone.wait_event("CALL_ESTABLISHED")
        active = mon.wait_state("active")
        phone.wait_heard(2.0)
        monitor_heard(folder / f"{active['id']}.wav", 1.0)
    assert (active["direction"], active["srtp"]) == ("out", True)
    assert phone.wait_event("CALL_MENC")["param"] == "0,audio,AES_CM_128_HMAC_SHA1_80"
    seen = wire(capture, port)
    for packets, clear in seen.values():
        assert (packets > 50, clear) == (True, 0), seen
    assert mon.call("POST", "/api/v1/call/hangup")[0] == 200
    phone.wait_event("CALL_CLOSED")
    call = mon.last_call()
    assert ended(call) == ("out", "local hangup", None, None)
    assert call["srtp"] is True
    heard(phone.heard(), MONITOR_HZ, "baresip")
    heard(audio.read_wav(folder / f"{call['id']}.wav"), PHONE_HZ, "the monitor")


# --- hold: a re-INVITE from baresip (sendonly), answered recvonly; then resumed --------------


def sent_by_monitor(capture: sniffer.Sniffer, port: int, start: float, end: float) -> int:
    """RTP packets the monitor sent from its `port` between two capture times (its RTCP
    reports aside: they go on through a hold, one every 5 s, multiplexed or not)."""
    return sum(
        1
        for d in capture.taken()
        if start <= d.at < end and d.source[1] == port and not 192 <= d.payload[1] <= 223
    )


def invite_answer(capture: sniffer.Sniffer, sip_port: int, nth: int) -> sniffer.Datagram:
    """The monitor's first 200 OK to its `nth` INVITE (1: the call's, 2: the first
    re-INVITE's ...; retransmissions of an answer are not counted), waited for."""
    cseq = re.compile(rb"^CSeq: *(\d+) INVITE\r$", re.MULTILINE | re.IGNORECASE)

    def answers() -> list[sniffer.Datagram]:
        first: dict[bytes, sniffer.Datagram] = {}
        for d in capture.taken():
            found = cseq.search(d.payload)
            if d.source[1] == sip_port and d.payload.startswith(b"SIP/2.0 200 ") and found:
                first.setdefault(found[1], d)
        return list(first.values())

    wait_for(lambda: len(answers()) >= nth, 15)
    return answers()[nth - 1]


def test_baresip_holds_and_resumes_the_call(
    kamailio: Kamailio, monitor: Callable[..., Monitor], baresip_factory: MakeBaresip
) -> None:
    """baresip's `hold` is a sendonly re-INVITE, and then it sends nothing: the monitor
    answers recvonly, sends nothing either, and does not end the held call as `no media`
    (the media timeout here is 2 s, the hold 3 s); `resume` brings both streams back.
    The capture holds the monitor's RTP port (the only one it may lease) and its SIP port,
    whose answers say when the hold and the resume took effect."""
    port = free_rtp_port()
    mon = monitor("udp", *rtp_ports(port))
    sip_port = mon.device.sip_port
    with on_the_wire(port, sip_port) as capture:
        phone = baresip_factory(kamailio, Account("201", "pw201"), tone_hz=PHONE_HZ)
        phone.dial(phone.uri("101"))
        phone.wait_event("CALL_ESTABLISHED")
        mon.wait_state("active")
        phone.wait_heard(1.0)
        phone.command("hold")
        hold = invite_answer(capture, sip_port, 2)
        held_from = hold.at + 0.1  # a packet already on its way is no fault
        # What matters is what does not happen meanwhile: no RTP, and no end of the call
        # though longer than the media timeout passes without any.
        time.sleep(max(0.0, held_from + 3.0 - time.time()))
        held_to = time.time()
        assert mon.status()["state"] == "active", mon.log
        phone.command("resume")
        resumed_from = invite_answer(capture, sip_port, 3).at
        wait_for(lambda: sent_by_monitor(capture, port, resumed_from, time.time()) > 80, 15)
        status = mon.status()
        phone.hangup()
        phone.wait_event("CALL_CLOSED")
    held = sent_by_monitor(capture, port, held_from, held_to)
    assert b"a=recvonly\r\n" in hold.payload, hold.payload
    assert status["state"] == "active", status
    assert held == 0, (held, mon.log)
    call = mon.last_call()
    assert ended(call) == ("in", "remote hangup", None, None)
