"""Calls end to end (issue 7): SIPp callers and callees through Kamailio, the monitor as
a separate process. Each way a call ends is seen three times: in `call/status`, in the
call log (`call/history`) and in the service's log line."""

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.peers import sipp
from tests.peers.kamailio import Kamailio, MakeKamailio
from tests.peers.ports import free_rtp_window
from tests.peers.test_agent import Device, body, registered
from tests.served import wait_for

pytestmark = pytest.mark.peers

USERS = {f"1{n:02d}": f"secret{n}" for n in range(1, 10)}  # one account per monitor
FAST = ("--media-timeout", "2", "--ring-time", "30", "--auto-answer-delay", "0.2")
STATUS = "/api/v1/call/status"
HISTORY = "/api/v1/call/history"
AUTO_ANSWER = "/api/v1/device/call/auto_answer"


@pytest.fixture
def kamailio(kamailio_factory: MakeKamailio) -> Kamailio:
    return kamailio_factory(users=USERS)


class Monitor:
    """A Device registered as `user` over `transport`, with the call options of a test."""

    def __init__(self, root: Path, kamailio: Kamailio, user: str, transport: str) -> None:
        self.kamailio, self.user, self.transport = kamailio, user, transport
        self.device = Device(root / f"data-{user}", kamailio.ca_cert)
        self.device.extra = FAST
        self.device.log_level = "info"

    def start(self, *extra: str, auto_answer: bool = True, timeout: int = 120) -> "Monitor":
        # RTP ports from a random free one (a test's own --rtp-ports comes later: it wins)
        self.device.extra = (*FAST, "--rtp-ports", free_rtp_window(), *extra)
        self.device.start()
        settings = body(
            self.kamailio,
            self.transport,
            user=self.user,
            password=USERS[self.user],
            timeout=timeout,
        )
        assert self.device.post(settings)[0] == 200
        self.device.wait_status(registered)
        assert self.call("POST", AUTO_ANSWER, {"is_enabled": auto_answer})[0] == 200
        return self

    def settings(self, **changes: Any) -> None:
        settings = body(self.kamailio, self.transport, user=self.user, password=USERS[self.user])
        assert self.device.post({**settings, **changes})[0] == 200

    def call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        assert self.device.served is not None
        return self.device.served.call(method, path, self.device.token, payload)

    def status(self) -> dict[str, Any]:
        status, answer = self.call("GET", STATUS)
        assert status == 200
        result: dict[str, Any] = answer
        return result

    def wait_state(self, state: str, timeout: float = 15) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def check() -> bool:
            seen.append(self.status())
            return seen[-1]["state"] == state

        try:
            wait_for(check, timeout)
        except AssertionError:
            raise AssertionError(f"never {state}; last {seen[-1:]}\n{self.log}") from None
        return seen[-1]

    def history(self) -> list[dict[str, Any]]:
        status, answer = self.call("GET", HISTORY)
        assert status == 200
        calls: list[dict[str, Any]] = answer["calls"]
        return calls

    def last_call(self, timeout: float = 10) -> dict[str, Any]:
        wait_for(lambda: self.history() != [], timeout)
        return self.history()[0]

    def ended_line(self, call_id: str) -> str:
        # The call log's row can be read before the service's log line reaches us (its
        # stderr is read by a thread of ours): wait for the line, bounded.
        with contextlib.suppress(AssertionError):  # the assertion below says what is missing
            wait_for(lambda: re.search(rf"call {call_id} .* ended: ", self.log), 10)
        lines = [line for line in self.log.splitlines() if f"call {call_id} " in line]
        ended = [line for line in lines if " ended: " in line]
        assert len(ended) == 1, "\n".join(lines) or self.log
        return ended[0].partition(f"call {call_id} ")[2]

    @property
    def log(self) -> str:
        return "\n".join(
            line for line in self.device.log.splitlines() if "intercom_sip.access" not in line
        )

    def stop(self) -> int:
        return self.device.stop()


@pytest.fixture
def monitors(tmp_path: Path, kamailio: Kamailio) -> Iterator[Callable[..., Monitor]]:
    made: list[Monitor] = []

    def make(user: str = "101", transport: str = "udp") -> Monitor:
        monitor = Monitor(tmp_path, kamailio, user, transport)
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        monitor.stop()


def caller(
    kamailio: Kamailio, scenario: str, user: str, leg: str = "udp", **options: Any
) -> sipp.Sipp:
    """A SIPp caller through Kamailio (UDP or TCP; TLS is Kamailio's leg to the monitor)."""
    return sipp.Sipp(
        scenario, ("127.0.0.1", kamailio.sip_port), service=user, transport=leg, **options
    )


def ended(call: dict[str, Any]) -> tuple[Any, ...]:
    """What says how a logged call ended."""
    return (call["direction"], call["end_reason"], call["code"], call["reason"])


# --- the simplest call: answered, the caller hangs up -----------------------------------------


@pytest.mark.parametrize(("transport", "leg"), [("udp", "udp"), ("tcp", "tcp"), ("tls", "udp")])
def test_bye_from_the_caller(
    monitors: Callable[..., Monitor], kamailio: Kamailio, transport: str, leg: str
) -> None:
    monitor = monitors("101", transport).start()
    with caller(kamailio, "uac_bye.xml", "101", leg, pause_ms=3000, timeout=30) as sipp_caller:
        active = monitor.wait_state("active")
        assert (sipp_caller.strays(), kamailio.strays()) == ([], [])  # ports.py: only theirs
        result = sipp_caller.wait()
    assert result.ok, result.report() + monitor.log
    assert monitor.wait_state("idle")["id"] is None
    call = monitor.last_call()
    assert ended(call) == ("in", "remote hangup", None, None)
    assert call["id"] == active["id"]
    assert call["codec"] == "PCMU"
    assert call["rtp"]["received"] > 50
    assert call["rtp"]["sent"] > 50
    assert monitor.ended_line(call["id"]).endswith("ended: remote hangup")


# --- each way an incoming call ends (§6.8) -------------------------------------------------


def test_cancel_while_ringing(monitors: Callable[..., Monitor], kamailio: Kamailio) -> None:
    monitor = monitors().start(auto_answer=False)
    with caller(kamailio, "uac_cancel.xml", "101", pause_ms=1500, timeout=20) as sipp_caller:
        ringing = monitor.wait_state("ringing")
        result = sipp_caller.wait()
    assert result.ok, result.report() + monitor.log
    assert (ringing["direction"], ringing["answered"], ringing["ends_at"]) == ("in", None, None)
    monitor.wait_state("idle")
    call = monitor.last_call()
    assert ended(call) == ("in", "cancelled", 487, "Request Terminated")
    assert (call["answered"], call["rtp"]) == (None, None)
    assert monitor.ended_line(call["id"]).endswith("ended: cancelled (487 Request Terminated)")


def test_a_second_caller_while_busy_gets_486(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    monitor = monitors().start()
    with caller(kamailio, "uac_wait_bye.xml", "101", timeout=30) as first:
        active = monitor.wait_state("active")
        second = sipp.run("uac_busy.xml", ("127.0.0.1", kamailio.sip_port), service="101")
        assert monitor.status()["id"] == active["id"]  # the call goes on
        assert monitor.call("POST", "/api/v1/call/hangup")[0] == 200
        result = first.wait()
    assert second.ok, second.report() + monitor.log
    assert result.ok, result.report() + monitor.log
    monitor.wait_state("idle")
    wait_for(lambda: len(monitor.history()) == 2)
    hung_up, busy = monitor.history()
    assert ended(busy) == ("in", "busy", 486, "Busy Here")
    assert ended(hung_up) == ("in", "local hangup", None, None)
    assert monitor.ended_line(busy["id"]).endswith("ended: busy (486 Busy Here)")
    assert monitor.ended_line(hung_up["id"]).endswith("ended: local hangup")


def test_an_offer_without_g711_gets_488(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    monitor = monitors().start()
    result = sipp.run("uac_no_g711.xml", ("127.0.0.1", kamailio.sip_port), service="101")
    assert result.ok, result.report() + monitor.log
    assert monitor.status()["state"] == "idle"
    call = monitor.last_call()
    assert ended(call) == ("in", "failed", 488, "Not Acceptable Here")
    line = monitor.ended_line(call["id"])
    assert line.endswith("ended: failed (488 Not Acceptable Here): no G.711 in the offer")


def test_a_caller_that_stops_sending_rtp(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    monitor = monitors().start()  # --media-timeout 2
    with caller(kamailio, "uac_rtp_stops.xml", "101", timeout=20, tone_seconds=1) as sipp_caller:
        monitor.wait_state("active")
        result = sipp_caller.wait()
    assert result.ok, result.report() + monitor.log
    monitor.wait_state("idle")
    call = monitor.last_call()
    assert ended(call) == ("in", "no media", None, None)
    assert 2 <= call["duration"] <= 5
    assert monitor.ended_line(call["id"]).endswith("ended: no media")


def test_no_ack_ends_the_call(monitors: Callable[..., Monitor], kamailio: Kamailio) -> None:
    # --sip-t1 0.1: the 2xx is given up after 64*T1 = 6.4 s; no media timeout before that
    monitor = monitors().start("--media-timeout", "30")
    with caller(kamailio, "uac_no_ack.xml", "101", timeout=30) as sipp_caller:
        active = monitor.wait_state("active")
        result = sipp_caller.wait()
    assert result.ok, result.report() + monitor.log
    monitor.wait_state("idle")
    call = monitor.last_call()
    assert ended(call) == ("in", "failed", None, None)
    assert call["id"] == active["id"]
    assert 6 <= call["duration"] <= 8
    assert monitor.ended_line(call["id"]).endswith("ended: failed: no ACK")


def test_disabling_sip_ends_the_call_before_unregistering(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    monitor = monitors().start()
    with caller(kamailio, "uac_wait_bye.xml", "101", timeout=30) as sipp_caller:
        monitor.wait_state("active")
        monitor.settings(enable=False)
        result = sipp_caller.wait()
    assert result.ok, result.report() + monitor.log
    assert monitor.status()["state"] == "idle"
    call = monitor.last_call()
    assert ended(call) == ("in", "disabled", None, None)
    assert monitor.ended_line(call["id"]).endswith("ended: disabled")
    log = monitor.log
    assert log.index("ended: disabled") < log.index("unregistered")


def test_sigterm_ends_the_call(monitors: Callable[..., Monitor], kamailio: Kamailio) -> None:
    monitor = monitors().start()
    with caller(kamailio, "uac_wait_bye.xml", "101", timeout=30) as sipp_caller:
        active = monitor.wait_state("active")
        assert monitor.stop() == 0
        result = sipp_caller.wait()
    assert result.ok, result.report() + monitor.log
    log = monitor.log
    assert log.index("ended: shutdown") < log.index("unregistered")
    assert monitor.ended_line(active["id"]).endswith("ended: shutdown")
    monitor.device.start()  # the call log survived the stop
    call = monitor.last_call()
    assert ended(call) == ("in", "shutdown", None, None)
    assert call["id"] == active["id"]


# --- outgoing calls (§6.3) -------------------------------------------------------------------


def dial(monitor: Monitor, number: str) -> dict[str, Any]:
    status, answer = monitor.call("POST", "/api/v1/call/dial", {"number": number})
    assert status == 200, (answer, monitor.log)
    assert answer["state"] == "calling"
    result: dict[str, Any] = answer
    return result


def test_dial_answered_then_hang_up(monitors: Callable[..., Monitor], kamailio: Kamailio) -> None:
    monitor = monitors().start()
    with sipp.Sipp("uas_answer.xml", timeout=30) as callee:
        sipp.bind(kamailio.ctl, "203", callee.contact("203"))
        calling = dial(monitor, "203")
        assert calling["remote"] == "sip:203@kamailio.test"
        active = monitor.wait_state("active")
        wait_for(lambda: (monitor.status()["rtp"] or {}).get("received", 0) > 20, 15)
        assert monitor.call("POST", "/api/v1/call/hangup")[0] == 200
        result = callee.wait()
    assert result.ok, result.report() + monitor.log
    assert active["id"] == calling["id"]
    call = monitor.last_call()
    assert ended(call) == ("out", "local hangup", None, None)
    assert call["rtp"]["received"] > 20
    assert monitor.ended_line(call["id"]).endswith("ended: local hangup")


def test_hang_up_while_ringing_sends_cancel(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    monitor = monitors().start()
    with sipp.Sipp("uas_ring.xml", timeout=30) as callee:
        sipp.bind(kamailio.ctl, "203", callee.contact("203"))
        dial(monitor, "203")
        time.sleep(1)
        assert monitor.call("POST", "/api/v1/call/hangup")[0] == 200
        result = callee.wait()
    assert result.ok, result.report() + monitor.log
    assert re.search(r"^CANCEL sip:203@127\.0\.0\.1:", result.messages, re.MULTILINE)
    call = monitor.last_call()
    assert ended(call) == ("out", "local hangup", None, None)
    assert monitor.ended_line(call["id"]).endswith("ended: local hangup")


def test_a_busy_callee(monitors: Callable[..., Monitor], kamailio: Kamailio) -> None:
    monitor = monitors().start()
    with sipp.Sipp("uas_busy.xml", timeout=30) as callee:
        sipp.bind(kamailio.ctl, "203", callee.contact("203"))
        dial(monitor, "203")
        result = callee.wait()
    assert result.ok, result.report() + monitor.log
    monitor.wait_state("idle")
    call = monitor.last_call()
    assert ended(call) == ("out", "busy", 486, "Busy Here")
    assert monitor.ended_line(call["id"]).endswith("ended: busy (486 Busy Here)")


# --- the call timeout, at its real 120 s (§6.6) ------------------------------------------------

STAMP = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", re.MULTILINE)


def sipp_times(messages: str) -> list[tuple[float, str]]:
    """Each message of a SIPp -trace_msg log: when, and its text."""
    stamps = list(STAMP.finditer(messages))
    ends = [m.start() for m in stamps[1:]] + [len(messages)]
    return [
        (datetime.fromisoformat(m[1]).timestamp(), messages[m.end() : end])
        for m, end in zip(stamps, ends, strict=True)
    ]


def ok_and_bye(result: sipp.SippResult) -> tuple[float, float]:
    """When the caller received the 200 to its INVITE, and the BYE (Unix time)."""
    received = [(t, text) for t, text in sipp_times(result.messages) if "received" in text[:40]]
    ok = next(t for t, text in received if "SIP/2.0 200 OK" in text and "1 INVITE" in text)
    bye = next(t for t, text in received if re.search(r"^BYE sip:", text, re.MULTILINE))
    return ok, bye


def timed_call(monitor: Monitor, leg: str, lower_at: float | None = None) -> dict[str, Any]:
    """One call through Kamailio that waits for the monitor's BYE; `lower_at`: seconds
    after the answer at which the call's `timeout` goes from 300 down to 120."""
    with caller(monitor.kamailio, "uac_wait_bye.xml", monitor.user, leg, timeout=160) as c:
        active = monitor.wait_state("active", timeout=20)
        moved, posted = None, None
        if lower_at is not None:
            time.sleep(max(0.0, active["answered"] + lower_at - time.time()))
            posted = time.time()
            monitor.settings(timeout=120, enable=True)
            moved = monitor.status()
        result = c.wait()
    assert result.ok, result.report() + monitor.log
    ok, bye = ok_and_bye(result)
    return {"moved": moved, "seconds": bye - ok, "after_post": bye - (posted or ok)}


@pytest.mark.slow  # 130 s of real time (make test-slow); tests/sip/test_call.py: fake clock
def test_the_call_timeout_ends_calls_at_120_s_over_each_transport(
    monitors: Callable[..., Monitor], kamailio: Kamailio
) -> None:
    """Five monitors side by side: the 120 s timeout over UDP, TCP and TLS (the caller's leg
    is UDP then: Debian's SIPp has no TLS), a timeout lowered from 300 to 120 30 s into the
    call (ends_at moves), and one lowered 125 s into the call (already past: BYE now)."""
    runs = {
        "udp": (monitors("101", "udp"), "udp", None, 120),
        "tcp": (monitors("102", "tcp"), "tcp", None, 120),
        "tls": (monitors("103", "tls"), "udp", None, 120),
        "lowered": (monitors("104", "udp"), "udp", 30.0, 300),
        "past": (monitors("105", "udp"), "udp", 125.0, 300),
    }
    for monitor, _, _, timeout in runs.values():
        monitor.start(timeout=timeout)
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        monitor, leg, lower_at, _ = runs[name]
        try:
            results[name] = timed_call(monitor, leg, lower_at)
        except BaseException as exc:  # reported below, with its name
            results[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(200)
    failures = {name: r for name, r in results.items() if isinstance(r, BaseException)}
    assert not failures, failures
    figures = {name: round(r["seconds"], 3) for name, r in results.items()}
    print("200-to-BYE seconds:", json.dumps(figures))
    for name in ("udp", "tcp", "tls", "lowered"):
        assert 119 <= results[name]["seconds"] <= 121, figures
    moved = results["lowered"]["moved"]
    assert moved["ends_at"] == moved["answered"] + 120
    assert results["past"]["seconds"] > 123, figures  # 125 s after `answered` (whole seconds)
    assert 0 <= results["past"]["after_post"] <= 1, results["past"]  # BYE at once
    for name, (monitor, _, _, _) in runs.items():
        call = monitor.last_call()
        assert ended(call) == ("in", "timeout", None, None), name
        assert monitor.ended_line(call["id"]).endswith("ended: timeout")
        assert call["rtp"]["received"] > 5000, (name, call)
