"""Calls that survive the network (CONTRACT §6.10, issue 11): Kamailio restarted in the
middle of a call over TCP and TLS, a callee that redirects with 302, OPTIONS answered as
an INVITE would be, and auto-answer that sends no RTP before the ACK (§6.9). The monitor
runs as a separate process, the peers are Kamailio and SIPp."""

import contextlib
import re
import socket
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from intercom_sip.media import stamps
from tests.peers import sipp
from tests.peers.kamailio import Kamailio
from tests.peers.test_calls import (
    Monitor,
    caller,
    dial,
    ended,
    kamailio,
    monitors,
    sipp_times,
)
from tests.served import wait_for

pytestmark = pytest.mark.peers
__all__ = ["kamailio", "monitors"]  # the fixtures of test_calls, used here by name

PROXY_HOST = "127.0.0.1"


# --- Kamailio restarted mid-call: the BYE goes on a new connection (§6.10) -----------------


@pytest.mark.parametrize("transport", ["tcp", "tls"])
@pytest.mark.parametrize("hang_up", ["re-registered", "at once"])
def test_a_bye_after_kamailio_restarted_reaches_the_caller(
    monitors: Callable[..., Monitor], kamailio: Kamailio, transport: str, hang_up: str
) -> None:
    """Hung up once the monitor has re-registered (the BYE takes the registration's new
    connection), or at once (whichever of the monitor's connections is up first)."""
    monitor = monitors("101", transport).start()
    with caller(kamailio, "uac_wait_bye.xml", "101", "udp", timeout=60) as sipp_caller:
        active = monitor.wait_state("active")
        # The caller is in the call once its ACK is in: auto-answer's media starts then
        # (§6.9). A restart before that could lose the 200 on its way through Kamailio.
        wait_for(lambda: (monitor.status()["rtp"] or {}).get("sent", 0) > 0, 10)
        kamailio.restart()  # every connection and binding is gone; the ports stay
        if hang_up == "re-registered":
            wait_for(lambda: kamailio.bindings("101") != [], 30)
        assert monitor.status()["id"] == active["id"]  # the call went on meanwhile
        hung_up = time.time()
        assert monitor.call("POST", "/api/v1/call/hangup")[0] == 200
        result = sipp_caller.wait(30)
    assert result.ok, result.report() + monitor.log
    bye = next(t for t, text in sipp_times(result.messages) if "\nBYE sip:" in text[:80])
    print(f"{transport} {hang_up}: hang-up to BYE at the caller {1000 * (bye - hung_up):.0f} ms")
    assert re.search(r"^BYE sip:sipp@", result.messages, re.MULTILINE), result.messages
    call = monitor.last_call()
    assert ended(call) == ("in", "local hangup", None, None)
    assert call["id"] == active["id"]
    assert monitor.ended_line(call["id"]).endswith("ended: local hangup")
    assert "cannot send" not in monitor.log  # the BYE never met the closed connection
    moved = [line for line in monitor.log.splitlines() if "phoneshell: call flow to" in line]
    assert len(moved) == 1 and " gone: on " in moved[0], moved


# --- a callee that redirects (§6.10, RFC 3261 §8.1.3.4) ---------------------------------------


def test_a_302_is_followed_to_the_callee_it_names(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    monitor = monitors().start()
    with (
        sipp.Sipp("uas_answer.xml", timeout=30) as second,
        sipp.Sipp(
            "uas_redirect.xml", timeout=30, keys={"redirect": "sip:204@kamailio.test"}
        ) as first,
    ):
        sipp.bind(kamailio.ctl, "203", first.contact("203"))
        sipp.bind(kamailio.ctl, "204", second.contact("204"))
        calling = dial(monitor, "203")
        active = monitor.wait_state("active")
        assert monitor.call("POST", "/api/v1/call/hangup")[0] == 200
        redirected, answered = first.wait(), second.wait()
    assert redirected.ok, redirected.report() + monitor.log
    assert answered.ok, answered.report() + monitor.log
    invite = answered.messages.partition("INVITE sip:")[2].partition("\n\n")[0]
    assert invite.startswith(f"204@127.0.0.1:{second.port};transport=udp SIP/2.0"), invite
    assert "\nCSeq: 2 INVITE" in invite  # the same call, its INVITE again (§8.1.3.4)
    assert "\nTo: <sip:203@kamailio.test>" in invite
    assert active["id"] == calling["id"]
    assert active["remote"] == "sip:203@kamailio.test"
    call = monitor.last_call()
    assert ended(call) == ("out", "local hangup", None, None)
    assert monitor.ended_line(call["id"]).endswith("ended: local hangup")


def test_a_loop_of_redirects_ends_failed_302_after_three(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    monitor = monitors().start()
    with sipp.Sipp("uas_redirect_loop.xml", timeout=30) as callee:
        sipp.bind(kamailio.ctl, "203", callee.contact("203"))
        dial(monitor, "203")
        monitor.wait_state("idle")
        result = callee.wait()
    assert result.ok, result.report() + monitor.log
    invites = re.findall(r"^INVITE (\S+) SIP/2\.0", result.messages, re.M)
    assert invites == [
        "sip:203@127.0.0.1:" + str(callee.port) + ";transport=udp",
        *(f"sip:r{n}@127.0.0.1:{callee.port}" for n in (1, 2, 3)),
    ]
    call = monitor.last_call()
    assert ended(call) == ("out", "failed", 302, "Moved Temporarily")
    line = monitor.ended_line(call["id"])
    assert line.endswith("ended: failed (302 Moved Temporarily): too many redirects")


# --- OPTIONS as an INVITE would be answered (§6.10, RFC 3261 §11.2) ---------------------------


def options_answer(kamailio: Kamailio, user: str = "101") -> str:
    """The monitor's answer to an OPTIONS through Kamailio: status line to the blank line."""
    result = sipp.run("uac_options.xml", (PROXY_HOST, kamailio.sip_port), service=user)
    assert result.ok, result.report()
    found = re.search(r"^(SIP/2\.0 [0-9]{3} .*?)\r?\n\r?\n", result.messages, re.M | re.S)
    assert found, result.messages
    return found[1]


def capabilities(text: str) -> list[str]:
    lines = text.splitlines()
    wanted = ("Allow:", "Accept:", "Supported:")
    return [lines[0], *(line.rstrip() for line in lines if line.startswith(wanted))]


ALLOW = "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"


def test_options_idle_200_busy_486_disabled_480(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    monitor = monitors().start()
    assert capabilities(options_answer(kamailio)) == [
        "SIP/2.0 200 OK",
        ALLOW,
        "Accept: application/sdp",
        "Supported:",
    ]
    with caller(kamailio, "uac_wait_bye.xml", "101", timeout=30) as sipp_caller:
        active = monitor.wait_state("active")
        busy = options_answer(kamailio)
        assert monitor.status()["id"] == active["id"]  # the call goes on
        assert monitor.call("POST", "/api/v1/call/hangup")[0] == 200
        assert sipp_caller.wait().ok
    assert capabilities(busy) == [
        "SIP/2.0 486 Busy Here",
        ALLOW,
        "Accept: application/sdp",
        "Supported:",
    ]
    (binding,) = kamailio.bindings("101")
    monitor.settings(enable=False)
    wait_for(lambda: kamailio.bindings("101") == [])
    sipp.bind(kamailio.ctl, "101", binding.contact)  # Kamailio still routes to the monitor
    assert capabilities(options_answer(kamailio)) == [
        "SIP/2.0 480 Temporarily Unavailable",
        ALLOW,
        "Accept: application/sdp",
        "Supported:",
    ]
    assert len(monitor.history()) == 1  # only the call: OPTIONS write no call-log row


# --- auto-answer: no RTP before the ACK (§6.9) ------------------------------------------------

STAMP = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", re.MULTILINE)


def sent_at(messages: str, first_line: str) -> float:
    """When SIPp sent the message that starts with `first_line` (Unix time)."""
    stamps = list(STAMP.finditer(messages))
    for stamp, following in zip(stamps, [*stamps[1:], None], strict=True):
        text = messages[stamp.end() : following.start() if following else None]
        if "sent" in text[:60] and re.search(f"^{re.escape(first_line)}", text, re.M):
            return datetime.fromisoformat(stamp[1]).timestamp()
    raise AssertionError(f"never sent {first_line!r}:\n{messages}")


def arrived(sink: socket.socket) -> float:
    """The next datagram's arrival, by the kernel's stamp (wall clock)."""
    _, ancillary, _, _ = sink.recvmsg(2048, stamps.SPACE)
    wall = time.time()
    return stamps.arrival(ancillary, wall, wall)


def test_auto_answer_sends_no_rtp_before_the_ack(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    monitor = monitors().start("--media-timeout", "30")  # auto-answer after 0.2 s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind((PROXY_HOST, 0))
        sink.settimeout(0.2)
        # Each packet's arrival as the kernel stamped it: a reader that a loaded machine
        # holds back would stamp an early packet late, after the ACK.
        assert stamps.ask(sink)
        keys = {"rtp_sink": str(sink.getsockname()[1])}
        arrivals: list[float] = []
        with caller(kamailio, "uac_late_ack.xml", "101", pause_ms=3000, keys=keys) as late:
            deadline = time.monotonic() + 20
            while late.running and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    arrivals.append(arrived(sink))
            result = late.wait()
        sink.setblocking(False)  # and what came before SIPp ended but was not read yet
        with contextlib.suppress(BlockingIOError):
            while True:
                arrivals.append(arrived(sink))
    assert result.ok, result.report() + monitor.log
    ack = sent_at(result.messages, "ACK sip:")
    answered = monitor.last_call()["answered"]
    assert ack - answered >= 2.5  # the ACK came 3 s after the 200
    early = [round(ack - t, 3) for t in arrivals if t < ack]
    assert early == [], f"{len(early)} RTP packets before the ACK, up to {max(early)} s early"
    assert len(arrivals) > 50  # 2 s of call after the ACK: the media does flow
