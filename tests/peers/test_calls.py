"""Calls end to end (issue 7): SIPp callers and callees through Kamailio, the monitor as
a separate process. Each way a call ends is seen three times: in `call/status`, in the
call log (`call/history`) and in the service's log line."""

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
        self.device.extra = (*FAST, *extra)
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


def caller(kamailio: Kamailio, scenario: str, user: str, leg: str = "udp", **options: Any) -> sipp.Sipp:
    """A SIPp caller through Kamailio (UDP or TCP; TLS is Kamailio's leg to the monitor)."""
    return sipp.Sipp(
        scenario, ("127.0.0.1", kamailio.sip_port), service=user, transport=leg, **options
    )


def ended(call: dict[str, Any]) -> tuple[Any, ...]:
    """What says how a logged call ended."""
    return (call["direction"], call["end_reason"], call["code"], call["reason"])


# --- the simplest call: answered, the caller hangs up -----------------------------------------


def test_bye_from_the_caller(monitors: Callable[..., Monitor], kamailio: Kamailio) -> None:
    monitor = monitors().start()
    with caller(kamailio, "uac_bye.xml", "101", pause_ms=2000, timeout=20) as sipp_caller:
        active = monitor.wait_state("active")
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
