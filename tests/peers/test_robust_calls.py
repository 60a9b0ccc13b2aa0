"""Calls that survive the network (CONTRACT §6.10, issue 11): Kamailio restarted in the
middle of a call over TCP and TLS, a callee that redirects with 302, OPTIONS answered as
an INVITE would be, and auto-answer that sends no RTP before the ACK (§6.9). The monitor
runs as a separate process, the peers are Kamailio and SIPp."""

import re
import socket
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from tests.peers import sipp
from tests.peers.kamailio import Kamailio
from tests.peers.test_calls import USERS, Monitor, caller, dial, ended, kamailio, monitors
from tests.served import wait_for

pytestmark = pytest.mark.peers
__all__ = ["kamailio", "monitors"]  # the fixtures of test_calls, used here by name

PROXY_HOST = "127.0.0.1"


# --- Kamailio restarted mid-call: the BYE goes on a new connection (§6.10) -----------------


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_a_bye_after_kamailio_restarted_reaches_the_caller(
    monitors: Callable[..., Monitor], kamailio: Kamailio, transport: str
) -> None:
    monitor = monitors("101", transport).start()
    with caller(kamailio, "uac_wait_bye.xml", "101", "udp", timeout=60) as sipp_caller:
        active = monitor.wait_state("active")
        kamailio.restart()  # every connection and binding is gone; the ports stay
        wait_for(lambda: kamailio.bindings("101") != [], 30)  # the monitor re-registered
        assert monitor.status()["id"] == active["id"]  # the call went on meanwhile
        assert monitor.call("POST", "/api/v1/call/hangup")[0] == 200
        result = sipp_caller.wait(30)
    assert result.ok, result.report() + monitor.log
    assert re.search(r"^BYE sip:sipp@", result.messages, re.MULTILINE), result.messages
    call = monitor.last_call()
    assert ended(call) == ("in", "local hangup", None, None)
    assert call["id"] == active["id"]
    assert monitor.ended_line(call["id"]).endswith("ended: local hangup")
    assert "connection closed" not in monitor.log
