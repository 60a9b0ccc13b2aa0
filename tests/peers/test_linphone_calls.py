"""Calls between the monitor and linphone 5.1 (`linphonec`, a second SIP stack beside
baresip) through Kamailio over UDP and TCP (issue 11, item 2): each side answers the
other's call, hears the other's tone (its frequency, not just "not silence"), gets the
other's DTMF digit, and either side hangs up.

Tones: the monitor sends its default 425 Hz, linphone 1000 Hz.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import audio, ports
from .baresip import Account, Transport
from .conftest import MakeLinphone, require
from .kamailio import Kamailio, MakeKamailio
from .linphone import CONNECTED, ENDED, INCOMING, RINGING, TONE, Lines, Linphone, LinphoneError
from .test_baresip_calls import dial, digits_in_status, heard, recordings
from .test_calls import USERS as MONITORS
from .test_calls import Monitor, ended

pytestmark = pytest.mark.peers

USERS = {"101": MONITORS["101"], "201": "pw201"}
MONITOR_HZ, PHONE_HZ = 425, 1000  # the monitor's default tone; linphone's
HANGS_UP = ("linphone", "monitor")


@pytest.fixture
def kamailio(kamailio_factory: MakeKamailio) -> Kamailio:
    require("linphonec")
    return kamailio_factory(users=USERS)


def rtp_ports(size: int = 4) -> str:
    """`--rtp-ports` for `size` ports free now and reserved (tests/peers/ports.py).

    Not the default 10000-20000: every monitor started on this machine takes 10000 and
    10002 first, and RTP still flowing there from another test's call took this
    monitor's media (it latched to the stranger and sent linphone nothing; CALLS.md).
    """
    return ports.free_rtp_window(size // 2)


@pytest.fixture
def monitor(tmp_path: Path, kamailio: Kamailio) -> Iterator[Callable[..., Monitor]]:
    made: list[Monitor] = []

    def make(transport: str, *extra: str, auto_answer: bool = False) -> Monitor:
        one = Monitor(tmp_path, kamailio, "101", transport)
        made.append(one)
        return one.start("--rtp-ports", rtp_ports(), *extra, auto_answer=auto_answer)

    yield make
    for one in made:
        one.stop()


def talk(mon: Monitor, phone: Linphone) -> None:
    """Both ways: audio flows to linphone, and one DTMF digit each way arrives."""
    phone.wait_heard(1.5)
    assert phone.strays() == []  # its ports, RTP's too, are the kernel's (ports.py)
    status, answer = mon.call("POST", "/api/v1/call/dtmf", {"digits": "#"})
    assert status == 200, answer
    assert phone.wait(TONE)["digit"] == "#"
    phone.send_dtmf("5")
    digits_in_status(mon, "5")


def hang_up(who: str, mon: Monitor, phone: Linphone) -> str:
    """`who` ends the call; linphone's words for how it ended."""
    if who == "linphone":
        phone.hangup()
    else:
        assert mon.call("POST", "/api/v1/call/hangup")[0] == 200
    reason = phone.wait(ENDED)["reason"]
    mon.wait_state("idle")
    return reason


def both_heard(phone: Linphone, folder: Path, call_id: str) -> None:
    heard(phone.heard(), MONITOR_HZ, "linphone")
    heard(audio.read_wav(folder / f"{call_id}.wav"), PHONE_HZ, "the monitor")


def registered_over(kamailio: Kamailio, transport: Transport) -> None:
    """linphone's one binding at the proxy was made over `transport`."""
    bindings = [(b.transport, b.user_agent) for b in kamailio.bindings("201")]
    assert bindings == [(transport, "Linphonec/5.1.65")], bindings


# How the monitor logs the end, by who hung up. linphonec says "ended (No error)" for a
# BYE it sent and for one it got alike.
END_REASON = {"linphone": "remote hangup", "monitor": "local hangup"}


@pytest.mark.parametrize("who", HANGS_UP, ids=lambda who: f"{who}-hangs-up")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_linphone_calls_the_monitor(
    tmp_path: Path,
    kamailio: Kamailio,
    monitor: Callable[..., Monitor],
    linphone_factory: MakeLinphone,
    transport: Transport,
    who: str,
) -> None:
    """The monitor rings, is answered over the API, talks, and `who` hangs up."""
    folder = recordings(tmp_path)
    mon = monitor(transport, "--recordings", str(folder))
    phone = linphone_factory(kamailio, Account("201", "pw201", transport), tone_hz=PHONE_HZ)
    registered_over(kamailio, transport)
    phone.dial(phone.uri("101"))
    ringing = mon.wait_state("ringing")
    assert (ringing["direction"], ringing["remote"]) == ("in", "sip:201@127.0.0.1"), ringing
    phone.wait(RINGING)  # the monitor's 180, through the proxy
    assert mon.call("POST", "/api/v1/call/answer")[0] == 200
    phone.wait(CONNECTED)
    active = mon.wait_state("active")
    assert (active["id"], active["codec"], active["srtp"]) == (ringing["id"], "PCMU", False)
    talk(mon, phone)
    reason = hang_up(who, mon, phone)
    call = mon.last_call()
    assert (ended(call), reason) == (("in", END_REASON[who], None, None), "No error")
    assert (call["id"], call["dtmf_received"]) == (active["id"], "5")
    assert phone.received_digits() == "#"
    both_heard(phone, folder, call["id"])


@pytest.mark.parametrize("who", HANGS_UP, ids=lambda who: f"{who}-hangs-up")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_the_monitor_calls_linphone(
    tmp_path: Path,
    kamailio: Kamailio,
    monitor: Callable[..., Monitor],
    linphone_factory: MakeLinphone,
    transport: Transport,
    who: str,
) -> None:
    """linphone rings (answer manual), answers, talks, and `who` hangs up."""
    folder = recordings(tmp_path)
    mon = monitor(transport, "--recordings", str(folder))
    account = Account("201", "pw201", transport, answer="manual")
    phone = linphone_factory(kamailio, account, tone_hz=PHONE_HZ)
    registered_over(kamailio, transport)
    calling = dial(mon, "/api/v1/call/dial", "201")
    assert phone.wait(INCOMING)["uri"].startswith("sip:101@")
    phone.accept()
    phone.wait(CONNECTED)
    active = mon.wait_state("active")
    assert (active["id"], active["direction"], active["codec"]) == (calling["id"], "out", "PCMU")
    talk(mon, phone)
    reason = hang_up(who, mon, phone)
    call = mon.last_call()
    assert (ended(call), reason) == (("out", END_REASON[who], None, None), "No error")
    assert call["dtmf_received"] == "5"
    assert phone.received_digits() == "#"
    both_heard(phone, folder, call["id"])


# --- the fixture's own bound ------------------------------------------------------------------


def test_the_output_lines_kept_are_bounded_and_numbered_from_the_first() -> None:
    lines = Lines(limit=3)
    for n in range(5):
        lines.add(f"linphonec> line {n}")
    assert lines.count == 5
    assert [m.group(0) for m in lines.find(r"line \d")] == ["line 2", "line 3", "line 4"]
    assert [m.group(0) for m in lines.find(r"line \d", after=4)] == ["line 4"]


def test_a_refused_registration_fails_at_once_with_linphones_prompt(
    kamailio: Kamailio, linphone_factory: MakeLinphone
) -> None:
    """linphonec asks for a password on stdin when the registrar refuses it; the fixture
    must fail then, quoting the prompt, rather than wait out its registration timeout.

    A poll sent in the instant before the prompt is read as the password (linphonec then
    prints it after the prompt): the fixture fails the same way, so the message holds the
    prompt, not necessarily at its end."""
    with pytest.raises(LinphoneError) as caught:
        linphone_factory(kamailio, Account("201", "not-pw201"))
    message = str(caught.value)
    first = message.splitlines()[0]
    assert first == f"sip:201@127.0.0.1:{kamailio.sip_port} refused (wrong password?):"
    prompts = [line for line in message.splitlines() if line.startswith("Password for ")]
    assert prompts and prompts[0].startswith("Password for 201 on kamailio.test: "), message
