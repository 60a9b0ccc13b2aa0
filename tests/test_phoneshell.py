"""The phone's shell wired to a real port core, over a fake UDP send (issue 7): what goes
out for an INVITE, the auto-answer, the ACK, a BYE, the call log written off the loop,
and the refusals (busy, not from the proxy, disabled)."""

import asyncio
import logging
import random
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Final

import pytest

from intercom_sip import calls
from intercom_sip.address import Address
from intercom_sip.agent import phone
from intercom_sip.agent.outbox import (
    CallChanged,
    CallEnded,
    DeviceEvent,
    DtmfReceived,
    DtmfSent,
    Outbox,
)
from intercom_sip.agent.phoneshell import Line, PhoneOptions, PhoneShell
from intercom_sip.contract.settings import Settings
from intercom_sip.media.ports import PortError, PortPool, PortRange
from intercom_sip.media.source import Loop, tone
from intercom_sip.sip import callevents, core, transactions
from intercom_sip.sip.port import SipPort
from intercom_sip.sip.transport import Flow
from tests.peers.ports import free_rtp_port

PROXY: Final = ("127.0.0.1", 5070)
TOKEN: Final = "5eed70c3a1b2c3d4e5f60718"
OUTSIDER: Final = ("127.0.0.9", 5060)
PATIENCE: Final = 5.0


class Peer(Flow):
    def __init__(self, remote: Address) -> None:
        self.transport, self.remote, self.local = "udp", remote, ("127.0.0.1", 5060)

    def send(self, data: bytes) -> None:
        raise AssertionError("the port sends UDP through its endpoint")


@dataclass
class Lines:
    current: Line | None = field(
        default_factory=lambda: Line(
            user="101",
            realm="example.test",
            aor="sip:101@example.test",
            credentials=None,
            contact=f"sip:101-{TOKEN}@127.0.0.1:5060;transport=udp",
            flow=core.Channel("udp", False, PROXY),
            bound=True,
            proxies=frozenset({PROXY[0]}),
            token=TOKEN,
        )
    )

    def line(self) -> Line | None:
        return self.current


@dataclass
class CallLog:
    records: list[calls.CallRecord] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)

    def save_call(self, record: calls.CallRecord) -> None:
        self.threads.append(threading.current_thread().name)
        self.records.append(record)


def rtp_pair() -> int:
    """A free even port, with the odd one above it (RTCP's) free too: never a
    fixed port that another process on the machine may hold."""
    while True:
        port = free_rtp_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtcp:
            try:
                rtcp.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


@dataclass
class Rig:
    shell: PhoneShell
    port: SipPort
    sent: list[tuple[bytes, Address]]
    log: CallLog
    rtp_port: int  # the one even port the shell's pool may lease
    events: list[DeviceEvent] = field(default_factory=list)  # what the shell emitted, in order

    def receive(self, text: str, source: Address = PROXY) -> None:
        self.port.receive(text.replace("\n", "\r\n").encode(), Peer(source))

    async def answer_starting(self, start: str, having: str = "") -> str:
        """The first message sent that starts so (and holds `having`), taken off the list."""
        async with asyncio.timeout(PATIENCE):
            while True:
                for data, _ in self.sent:
                    if data.startswith(start.encode()) and having.encode() in data:
                        self.sent.remove((data, _))
                        return data.decode()
                await asyncio.sleep(0.01)


def settings(**changes: object) -> Settings:
    base = Settings(
        enable=True,
        proxy="127.0.0.1:5070",
        realm="example.test",
        user="101",
        password="secret",
        transport="udp",
        user_id="",
        is_enable_ring_code=False,
        timeout=120,
        registration_interval=30,
        stun_ip="",
        stun_port=0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def run(
    test: Callable[[Rig], Awaitable[None]],
    auto_answer: bool = True,
    pool: PortPool | None = None,
    direct: bool = False,
    enabled: bool = True,
    limits: core.PortLimits | None = None,
) -> None:
    async def main() -> None:
        sent: list[tuple[bytes, Address]] = []
        rtp = rtp_pair()
        port = SipPort(
            core.Core(
                random.Random(1), transactions.SipTimers(t1=0.05), limits or core.PortLimits()
            )
        )
        port.attach(lambda data, address: sent.append((data, address)))
        source = tone()
        assert isinstance(source, Loop)
        options = callevents.Options(
            auto_answer_delay=0.05, timers=transactions.SipTimers(t1=0.05), allow_direct=direct
        )
        log = CallLog()
        outbox, emitted = Outbox(), list[DeviceEvent]()
        outbox.subscribe(emitted.append)
        shell = PhoneShell(
            port,
            Lines(),
            pool=pool or PortPool(PortRange(rtp, rtp + 1)),  # one even port: a known one
            source=source,
            call_log=log,
            options=PhoneOptions(options, "127.0.0.1"),
            rng=random.Random(2),
            outbox=outbox,
        )
        shell.start()
        shell.apply(settings(enable=enabled))
        shell.set_auto_answer(auto_answer)
        try:
            await test(Rig(shell, port, sent, log, rtp, emitted))
        finally:
            await shell.close(0.1)
            port.close()

    asyncio.run(asyncio.wait_for(main(), 4 * PATIENCE))


def invite(
    call_id: str = "call-1",
    branch: str = "z9hG4bKinv1",
    uri: str = f"sip:101-{TOKEN}@127.0.0.1:5060",
    sender: str = "<sip:door@example.test>",
) -> str:
    """An INVITE as the registrar delivers it: to our registered Contact, token and all."""
    sdp = (
        "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
        "m=audio 41998 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
    )
    return (
        f"INVITE {uri} SIP/2.0\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\n"
        f"From: {sender};tag=d1\nTo: <sip:101@example.test>\n"
        f"Call-ID: {call_id}\nCSeq: 1 INVITE\nContact: <sip:door@127.0.0.1:5070>\n"
        "Max-Forwards: 70\nContent-Type: application/sdp\n"
        f"Content-Length: {len(sdp.replace(chr(10), chr(13) + chr(10)))}\n\n{sdp}"
    )


def in_dialog(method: str, to_tag: str, cseq: int, branch: str) -> str:
    return (
        f"{method} sip:101@127.0.0.1:5060;transport=udp SIP/2.0\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\n"
        f"From: <sip:door@example.test>;tag=d1\nTo: <sip:101@example.test>;tag={to_tag}\n"
        f"Call-ID: call-1\nCSeq: {cseq} {method}\nMax-Forwards: 70\nContent-Length: 0\n\n"
    )


def to_tag(response: str) -> str:
    line = next(line for line in response.split("\r\n") if line.startswith("To:"))
    return line.partition(";tag=")[2]


async def wait_until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(PATIENCE):
        while not check():  # noqa: ASYNC110 - the checks read lists, not events
            await asyncio.sleep(0.01)


def test_an_incoming_call_rings_is_answered_and_ends_with_the_callers_bye() -> None:
    async def test(rig: Rig) -> None:
        rig.receive(invite())
        await rig.answer_starting("SIP/2.0 100 Trying")
        ringing = await rig.answer_starting("SIP/2.0 180 Ringing")
        assert rig.shell.status().state in ("ringing", "active")
        ok = await rig.answer_starting("SIP/2.0 200 OK")  # auto-answer after 50 ms
        assert to_tag(ok) == to_tag(ringing)
        assert "Contact: <sip:101@127.0.0.1:5060;transport=udp>" in ok
        assert f"m=audio {rig.rtp_port} RTP/AVP 0" in ok
        active = rig.shell.status()
        assert (active.state, active.direction, active.remote) == (
            "active",
            "in",
            "sip:door@example.test",
        )
        rig.receive(in_dialog("ACK", to_tag(ok), 1, "z9hG4bKack1"))
        rig.receive(in_dialog("BYE", to_tag(ok), 2, "z9hG4bKbye1"))
        await rig.answer_starting("SIP/2.0 200 OK", "CSeq: 2 BYE")
        assert rig.shell.status() == calls.IDLE
        await wait_until(lambda: rig.log.records != [])
        (record,) = rig.log.records
        assert (record.id, record.end_reason, record.codec) == (active.id, "remote hangup", "PCMU")
        assert rig.log.threads != [threading.current_thread().name]  # off the loop

    run(test)


def test_a_second_invite_while_busy_gets_486_and_a_log_entry() -> None:
    async def test(rig: Rig) -> None:
        rig.receive(invite())
        await rig.answer_starting("SIP/2.0 180 Ringing")
        rig.receive(invite("call-2", "z9hG4bKinv2"))
        busy = await rig.answer_starting("SIP/2.0 486 Busy Here")
        assert "Call-ID: call-2" in busy
        await wait_until(lambda: rig.log.records != [])
        assert [(r.end_reason, r.code) for r in rig.log.records] == [("busy", 486)]
        assert rig.shell.status().state == "ringing"

    run(test, auto_answer=False)


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("sip:101@127.0.0.1:5060", PROXY),  # a forged proxy source: no token
        ("sip:101@127.0.0.1:5060", ("127.0.0.1", 40000)),  # the proxy's IP, another port
        ("sip:nobody@127.0.0.1:5060", OUTSIDER),  # another user: the same refusal
        ("sip:101-0000000000000000@127.0.0.1:5060", OUTSIDER),  # a guessed token
    ],
)
def test_an_invite_without_the_token_gets_403_and_nothing_else(
    uri: str, source: Address, caplog: pytest.LogCaptureFixture
) -> None:
    async def test(rig: Rig) -> None:
        rig.receive(invite(uri=uri), source=source)
        await rig.answer_starting("SIP/2.0 403 Forbidden")
        await asyncio.sleep(0.3)  # what would be T1's resends (0.05 s) and auto-answer
        assert rig.sent == []  # no 180, no 403 again, no 200
        assert rig.log.records == []
        assert rig.shell.status() == calls.IDLE

    run(test)


def test_a_stranger_while_busy_gets_403_not_486_and_no_log_entry() -> None:
    """§6.2: the stranger check comes before busy, and writes no call-log row."""

    async def test(rig: Rig) -> None:
        rig.receive(invite())
        await rig.answer_starting("SIP/2.0 180 Ringing")
        for n in range(20):
            rig.receive(invite(f"s{n}", f"z9hG4bKs{n}", uri="sip:101@127.0.0.1"), OUTSIDER)
        await rig.answer_starting("SIP/2.0 403 Forbidden")
        await asyncio.sleep(0.2)
        forbidden = [d for d, _ in rig.sent if d.startswith(b"SIP/2.0 403 ")]
        assert (len(forbidden), rig.log.records) == (9, [])  # 10 a second, one taken above
        assert rig.shell.status().state == "ringing"

    run(test, auto_answer=False)


def test_an_outsider_with_the_dialogs_ids_gets_403_and_the_call_goes_on() -> None:
    async def test(rig: Rig) -> None:
        rig.receive(invite())
        ok = await rig.answer_starting("SIP/2.0 200 OK")
        tag = to_tag(ok)
        rig.receive(in_dialog("ACK", tag, 1, "z9hG4bKack"))
        await wait_until(lambda: rig.shell.status().state == "active")
        rig.receive(in_dialog("INVITE", tag, 2, "z9hG4bKre"), OUTSIDER)
        await rig.answer_starting("SIP/2.0 403 Forbidden", "CSeq: 2 INVITE")
        rig.receive(in_dialog("BYE", tag, 3, "z9hG4bKbye"), OUTSIDER)
        await rig.answer_starting("SIP/2.0 403 Forbidden", "CSeq: 3 BYE")
        await asyncio.sleep(0.1)
        assert rig.shell.status().state == "active"
        rig.receive(in_dialog("BYE", tag, 4, "z9hG4bKbye2"))  # the proxy's: taken
        await rig.answer_starting("SIP/2.0 200 OK", "CSeq: 4 BYE")
        await wait_until(lambda: rig.shell.status() == calls.IDLE)

    run(test)


@pytest.mark.parametrize("uri", ["sip:127.0.0.1", "sip:any@127.0.0.1:5060"])
def test_direct_calls_ring_any_user_with_sip_disabled(uri: str) -> None:
    async def test(rig: Rig) -> None:
        rig.receive(invite(uri=uri), source=("127.0.0.9", 5062))
        await rig.answer_starting("SIP/2.0 180 Ringing")
        assert rig.shell.status().remote == "sip:door@127.0.0.9:5062"
        rig.receive(invite("c2", "z9hG4bKc2", uri=uri), source=("127.0.0.9", 5062))
        await rig.answer_starting("SIP/2.0 486 Busy Here")

    run(test, auto_answer=False, direct=True, enabled=False)


@pytest.mark.parametrize("uri", ["sip:127.0.0.1", "sip:any@127.0.0.1:5060"])
def test_without_direct_calls_they_are_refused(uri: str) -> None:
    async def test(rig: Rig) -> None:
        rig.receive(invite(uri=uri), source=("127.0.0.9", 5062))
        await rig.answer_starting("SIP/2.0 403 Forbidden")
        assert rig.log.records == []

    run(test, auto_answer=False, enabled=False)


def test_a_strangers_from_is_logged_escaped(caplog: pytest.LogCaptureFixture) -> None:
    sender = "<sip:x@e.test>\x1b[2J\rforged line"

    async def test(rig: Rig) -> None:
        rig.receive(invite(uri="sip:101@127.0.0.1", sender=sender), OUTSIDER)
        await rig.answer_starting("SIP/2.0 403 Forbidden")

    with caplog.at_level(logging.WARNING, "intercom_sip.sip.port"):
        run(test)
    assert [r.getMessage() for r in caplog.records if r.name == "intercom_sip.sip.port"] == [
        "INVITE from <sip:x@e.test>\\x1b[2J\\rforged line;tag=d1 at 127.0.0.9:5060"
        " refused 403: not the proxy (see --direct-calls)"
    ]


def test_disabling_ends_the_call_with_bye() -> None:
    async def test(rig: Rig) -> None:
        rig.receive(invite())
        ok = await rig.answer_starting("SIP/2.0 200 OK")
        rig.receive(in_dialog("ACK", to_tag(ok), 1, "z9hG4bKack1"))
        rig.shell.apply(settings(enable=False))
        bye = await rig.answer_starting("BYE sip:door@127.0.0.1:5070 SIP/2.0")
        assert "CSeq: 1 BYE" in bye
        await wait_until(lambda: rig.log.records != [])
        assert [r.end_reason for r in rig.log.records] == ["disabled"]
        rig.receive(invite("call-2", "z9hG4bKinv2"))
        await rig.answer_starting("SIP/2.0 480 Temporarily Unavailable")

    run(test)


def test_dial_needs_a_registration_and_refuses_while_busy() -> None:
    async def test(rig: Rig) -> None:
        from intercom_sip.contract.dialing import parse_number

        target = parse_number("203")
        assert target is not None
        calling = rig.shell.dial(target)
        assert isinstance(calling, calls.CallStatus)
        assert (calling.state, calling.remote) == ("calling", "sip:203@example.test")
        sent = await rig.answer_starting("INVITE sip:203@example.test SIP/2.0")
        assert f"m=audio {rig.rtp_port} RTP/AVP 0 8 101" in sent
        assert rig.shell.dial(target) is phone.BUSY
        assert isinstance(rig.shell.hangup(), calls.CallStatus)
        assert rig.shell.status() == calls.IDLE

    run(test)


def test_a_dial_the_core_cannot_start_ends_failed_by_overload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No transaction left at the core: our INVITE is never sent, and the call ends at
    once, `failed` with the detail `overload`, in the call log and its log line."""

    async def test(rig: Rig) -> None:
        from intercom_sip.contract.dialing import parse_number

        target = parse_number("203")
        assert target is not None
        rig.shell.dial(target)
        await wait_until(lambda: bool(rig.log.records))
        (record,) = rig.log.records
        assert (record.direction, record.end_reason, record.detail) == (
            "out",
            "failed",
            "overload",
        )
        assert [data for data, _ in rig.sent if data.startswith(b"INVITE")] == []
        assert rig.shell.status() == calls.IDLE

    with caplog.at_level(logging.INFO, "intercom_sip.agent.phoneshell"):
        run(test, limits=core.PortLimits(transactions=0))
    lines = [r.getMessage() for r in caplog.records if r.name == "intercom_sip.agent.phoneshell"]
    # In the order it happened: the call was placed, then ended (the "calling" line once
    # came after the "ended" one).
    assert [line.split(" ", 2)[2] for line in lines if line.startswith("call ")] == [
        "out sip:203@example.test: calling",
        "out sip:203@example.test ended: failed: overload",
    ]


def test_an_invite_with_every_rtp_port_taken_gets_503_and_a_log_entry() -> None:
    """No RTP port, no call: 503 with Retry-After (the monitor is out of a resource for
    now; the offer is fine, so not 488), logged as failed, and the next INVITE, once a
    port is free again, rings."""
    first = rtp_pair()
    pool = PortPool(PortRange(first, first + 1))  # one even port
    held = pool.take("127.0.0.1")
    assert not isinstance(held, PortError)

    async def test(rig: Rig) -> None:
        rig.receive(invite())
        refused = await rig.answer_starting("SIP/2.0 503 Service Unavailable")
        assert "Retry-After: 5\r\n" in refused
        assert not any(data.startswith(b"SIP/2.0 180") for data, _ in rig.sent)
        await wait_until(lambda: rig.log.records != [])
        assert [(r.end_reason, r.code, r.reason) for r in rig.log.records] == [
            ("failed", 503, "Service Unavailable")
        ]
        assert rig.shell.status() == calls.IDLE
        held.release()
        rig.receive(invite("call-2", "z9hG4bKinv2"))
        ringing = await rig.answer_starting("SIP/2.0 180 Ringing")
        assert "Call-ID: call-2" in ringing

    run(test, auto_answer=False, pool=pool)


def test_a_callers_from_is_logged_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """§6.9: a value from the wire in the call's log lines, its control characters escaped."""

    async def test(rig: Rig) -> None:
        rig.receive(invite(sender="<sip:x\x1b[2J\rforged@e.test>"))
        await rig.answer_starting("SIP/2.0 180 Ringing")

    with caplog.at_level(logging.INFO, "intercom_sip.agent.phoneshell"):
        run(test, auto_answer=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "intercom_sip.agent.phoneshell"]
    assert [line.split(" ", 2)[2] for line in lines if "ringing" in line] == [
        "in sip:x\\x1b[2J\\rforged@e.test: ringing"
    ]


def info(to_tag: str, digit: str) -> str:
    body = f"Signal={digit}\nDuration=160\n"
    return (
        in_dialog("INFO", to_tag, 2, "z9hG4bKinfo1")
        .replace("Content-Length: 0", "Content-Type: application/dtmf-relay\nContent-Length: 24")
        .replace("\n\n", "\n\n" + body, 1)
    )


def test_each_change_of_the_call_is_emitted_as_it_happens() -> None:
    """Typed events, emitted before the input that made them returns: nothing to poll."""

    async def test(rig: Rig) -> None:
        rig.events.clear()  # the settings and the switch at the start changed no call
        rig.receive(invite())
        ringing = rig.shell.status()
        assert rig.events == [CallChanged(ringing)]
        assert ringing.state == "ringing"
        answered = rig.shell.answer()
        assert isinstance(answered, calls.CallStatus)
        assert rig.events[1:] == [CallChanged(answered)]
        ok = await rig.answer_starting("SIP/2.0 200 OK")
        rig.receive(in_dialog("ACK", to_tag(ok), 1, "z9hG4bKack1"))
        rig.events.clear()
        rig.receive(info(to_tag(ok), "5"))
        assert rig.events == [DtmfReceived("5"), CallChanged(rig.shell.status())]
        assert rig.shell.status().dtmf_received == "5"
        rig.events.clear()
        assert isinstance(rig.shell.dtmf("1#"), calls.CallStatus)
        assert rig.events[-1] == DtmfSent("1#")
        rig.events.clear()
        rig.shell.hangup()
        ended, idle = rig.events
        assert idle == CallChanged(calls.IDLE)
        assert isinstance(ended, CallEnded)
        assert (ended.record.id, ended.record.end_reason) == (answered.id, "local hangup")
        await wait_until(lambda: rig.log.records != [])
        assert rig.log.records == [ended.record]  # the emitted record is the logged one

    run(test, auto_answer=False)
