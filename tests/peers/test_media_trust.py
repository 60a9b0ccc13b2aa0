"""Media that cannot be stolen, follows a moved stream, and lives on RTCP (issue 11, CONTRACT
§6.6 and §6.7), against real peers: baresip through Kamailio, and a scripted caller
(`uac.py`) where a peer must do what no packaged one does on cue.

An attacker on another loopback address (127.0.0.2) sprays well-formed RTP, a perfect
run of one SSRC per port, at every even port of the monitor's range, while the call
rings and while it is up.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from intercom_sip.media import rtcp
from tests.served import wait_for

from . import ports, sniffer, uac
from .baresip import Account
from .conftest import MakeBaresip, require
from .kamailio import Kamailio, MakeKamailio
from .test_calls import USERS as MONITORS
from .test_calls import Monitor

pytestmark = pytest.mark.peers

USERS = {"101": MONITORS["101"], "201": "pw201"}
ATTACKER = "127.0.0.2"
MEDIA_TIMEOUT = 2  # seconds: the service option, lowered
DTMF = "/api/v1/call/dtmf"


@pytest.fixture
def kamailio(kamailio_factory: MakeKamailio) -> Kamailio:
    return kamailio_factory(users=USERS)


@pytest.fixture
def monitor(tmp_path: Path, kamailio: Kamailio) -> Iterator[Callable[..., Monitor]]:
    made: list[Monitor] = []

    def make(*extra: str, auto_answer: bool = True) -> Monitor:
        one = Monitor(tmp_path, kamailio, "101", "udp")
        made.append(one)
        return one.start("--media-timeout", str(MEDIA_TIMEOUT), *extra, auto_answer=auto_answer)

    yield make
    for one in made:
        one.stop()


class Sprayer:
    """Well-formed RTP at every even port, one packet a port every 20 ms (a stream's pace),
    each port its own in-sequence run: what a tool for RTP Bleed sends. Keeps what comes
    back."""

    def __init__(self, host: str, ports: range) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.ports = ports
        self.rounds = 0
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sprayer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._collect()
        self.sock.close()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(max(0.0, start + self.rounds * 0.02 - time.monotonic())):
            for port in self.ports:
                header = struct.pack("!BBHII", 0x80, 0, self.rounds, 160 * self.rounds, port)
                try:
                    self.sock.sendto(header + b"\xff" * 160, ("127.0.0.1", port))
                except OSError:
                    continue  # ICMP port unreachable from a port nobody holds
            self.rounds += 1
            self._collect()

    def _collect(self) -> None:
        while True:
            try:
                self.received.append(self.sock.recvfrom(2048))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue


def from_ports(first: int, last: int) -> sniffer.Sniffer:
    def ours(d: sniffer.Datagram) -> bool:
        return first <= d.source[1] <= last and d.source[0] == "127.0.0.1"

    capture = sniffer.Sniffer(ours)
    try:
        capture.start()
    except sniffer.SnifferError as error:
        pytest.fail(str(error), pytrace=False)
    return capture


# --- RTP spraying ---------------------------------------------------------------------------


def test_rtp_sprayed_at_every_port_takes_nothing_from_a_real_call(
    kamailio: Kamailio, monitor: Callable[..., Monitor], baresip_factory: MakeBaresip
) -> None:
    """Issue 11: on the old code the attacker got every packet of the call and the door
    code; the real peer none."""
    require("baresip")
    first, last = ports.rtp_range(12)
    mon = monitor("--rtp-ports", f"{first}-{last}", auto_answer=False)
    phone = baresip_factory(kamailio, Account("201", "pw201"), tone_hz=1000)
    capture = from_ports(first, last)
    try:
        with Sprayer(ATTACKER, range(first, last + 1, 2)) as attacker:
            phone.dial(phone.uri("101"))
            mon.wait_state("ringing")
            rounds = attacker.rounds
            wait_for(lambda: attacker.rounds >= rounds + 25, 10)  # 0.5 s sprayed while ringing
            assert mon.call("POST", "/api/v1/call/answer")[0] == 200
            phone.wait_event("CALL_ESTABLISHED")
            active = mon.wait_state("active")
            phone.wait_heard(2.0)
            status, answer = mon.call("POST", DTMF, {"digits": "1234#"})
            assert status == 200, answer
            wait_for(lambda: phone.received_digits() == "1234#", 10)
            phone.hangup()
            mon.wait_state("idle")
    finally:
        capture.stop()
    call = mon.last_call()
    assert call["id"] == active["id"]
    assert attacker.received == []
    destinations = {d.destination for d in capture.taken()}
    assert all(host == "127.0.0.1" for host, _ in destinations), destinations
    sent = [d for d in capture.taken() if d.payload[1] & 0x7F in (0, 101)]
    assert len({d.destination for d in sent}) == 1  # baresip's RTP address, and only it
    # Every packet the monitor counted reached the wire, but the last few: between baresip
    # closing its port and its BYE reaching the monitor (slower on a loaded machine), a
    # send meets the closed port's ICMP error instead.
    assert 0 <= call["rtp"]["sent"] - len(sent) <= 5, (call["rtp"], len(sent))
    assert call["rtp"]["sent"] > 100
    assert phone.received_digits() == "1234#"


# --- a moved stream -----------------------------------------------------------------------


@pytest.mark.parametrize("linger", [0.04, 0.3], ids=["40ms", "300ms"])
def test_a_reinvite_moves_the_media_and_the_old_source_cannot_pull_it_back(
    kamailio: Kamailio, monitor: Callable[..., Monitor], linger: float
) -> None:
    """RFC 3264 §8.3.1, as a PBX switching to direct media does: on the old code the
    monitor went back to the old address and hung up `no media`."""
    mon = monitor()
    caller = uac.Caller(("127.0.0.1", kamailio.sip_port), "101")
    old, new = uac.Stream(uac.bind_pair()), uac.Stream(uac.bind_pair())
    try:
        assert caller.invite(uac.offer(old.port, 1, uac.PLAIN_MEDIA)).status == 200
        target = uac.answered_port(caller.answer)
        old.start(target)
        mon.wait_state("active")
        wait_for(lambda: old.rtp.count() > 25, 10)
        assert caller.reinvite(uac.offer(new.port, 2, uac.PLAIN_MEDIA)).status == 200
        moved = time.monotonic()
        new.start(target)
        threading.Event().wait(linger)  # the old source still sends this long: the scenario
        old.send_rtp = False
        # Three media timeouts of the new stream alone (50 packets a second).
        wait_for(lambda: len(new.rtp.since(moved)) >= 3 * MEDIA_TIMEOUT * 50, 20)
        assert mon.status()["state"] == "active"
        assert old.rtp.since(moved + 0.1) == []
        assert caller.bye().status == 200
    finally:
        for stream in (old, new):
            stream.stop()
        caller.close()
    call = mon.last_call()
    assert (call["end_reason"], call["code"]) == ("remote hangup", None)


# --- RTCP ----------------------------------------------------------------------------------


def reports(inbox: uac.Inbox, since: float) -> list[rtcp.Compound]:
    parsed = [rtcp.parse(data) for data in inbox.since(since)]
    return [report for report in parsed if isinstance(report, rtcp.Compound)]


def test_a_peer_whose_rtp_stops_but_rtcp_goes_on_is_not_hung_up(
    kamailio: Kamailio, monitor: Callable[..., Monitor]
) -> None:
    """CONTRACT §6.6: RTCP is a sign of life (silence suppression, a muted phone). The
    monitor's own reports come every 5 s on port + 1, an SR with an SDES CNAME."""
    mon = monitor()
    caller = uac.Caller(("127.0.0.1", kamailio.sip_port), "101")
    peer = uac.Stream(uac.bind_pair())
    try:
        assert caller.invite(uac.offer(peer.port, 1, uac.PLAIN_MEDIA)).status == 200
        peer.start(uac.answered_port(caller.answer))
        mon.wait_state("active")
        wait_for(lambda: peer.rtp.count() > 25, 10)
        peer.rtcp_every, peer.send_rtp = 0.5, False
        stopped = time.monotonic()
        # Two of the monitor's reports after the RTP stopped: 5 s, over twice the timeout.
        wait_for(lambda: len(reports(peer.rtcp, stopped)) >= 2, 20)
        assert mon.status()["state"] == "active"
        assert [r.packet_types for r in reports(peer.rtcp, stopped)][:2] == [(200, 202)] * 2
        assert caller.bye().status == 200
    finally:
        peer.stop()
        caller.close()
    assert mon.last_call()["end_reason"] == "remote hangup"


def test_a_peer_with_neither_rtp_nor_rtcp_is_ended_no_media(
    kamailio: Kamailio, monitor: Callable[..., Monitor]
) -> None:
    mon = monitor()
    caller = uac.Caller(("127.0.0.1", kamailio.sip_port), "101")
    peer = uac.Stream(uac.bind_pair())
    try:
        assert caller.invite(uac.offer(peer.port, 1, uac.PLAIN_MEDIA)).status == 200
        peer.start(uac.answered_port(caller.answer))
        mon.wait_state("active")
        wait_for(lambda: peer.rtp.count() > 25, 10)
        peer.send_rtp = False
        assert caller.wait_bye(5 * MEDIA_TIMEOUT) is not None
    finally:
        peer.stop()
        caller.close()
    assert mon.last_call()["end_reason"] == "no media"


# --- capitals and ptime ----------------------------------------------------------------------


def monitor_audio(inbox: uac.Inbox) -> list[tuple[int, int, int, bytes]]:
    """The monitor's packets: (payload type, sequence, timestamp, payload)."""
    packets = []
    for data in inbox.since(0.0):
        if len(data) >= 12:
            _, second, sequence, timestamp, _ = struct.unpack_from("!BBHII", data)
            packets.append((second & 0x7F, sequence, timestamp, data[12:]))
    return packets


@pytest.mark.parametrize("ptime", [30, 40])
def test_capitals_and_the_offer_ptime(
    kamailio: Kamailio, monitor: Callable[..., Monitor], ptime: int
) -> None:
    """RFC 8866 §6.6: `TELEPHONE-EVENT` is telephone-event, both ways; the monitor sends
    packets of the offer's ptime (on the old code: INFO for its digits, the peer's lost,
    and 20 ms packets)."""
    mon = monitor()
    caller = uac.Caller(("127.0.0.1", kamailio.sip_port), "101")
    peer = uac.Stream(uac.bind_pair(), ptime=ptime)
    media = (
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 TELEPHONE-EVENT/8000\r\n"
        f"a=fmtp:101 0-15\r\na=ptime:{ptime}\r\na=sendrecv\r\n"
    )
    try:
        assert caller.invite(uac.offer(peer.port, 1, media)).status == 200
        assert "m=audio " in caller.answer.decode()
        assert "a=rtpmap:101 telephone-event/8000\r\n" in caller.answer.decode()
        peer.start(uac.answered_port(caller.answer))
        mon.wait_state("active")
        wait_for(lambda: peer.rtp.count() > 20, 10)
        assert mon.call("POST", DTMF, {"digits": "1#"})[0] == 200
        peer.queue_digit(101, 5)
        wait_for(lambda: mon.status()["dtmf_received"] == "5", 10)

        def ends() -> list[tuple[int, int]]:
            """(timestamp, event) of each digit the monitor ended."""
            packets = monitor_audio(peer.rtp)
            return sorted({(ts, p[0]) for pt, _, ts, p in packets if pt == 101 and p[1] & 0x80})

        wait_for(lambda: len(ends()) == 2, 10)
        assert [code for _, code in ends()] == [1, 11]
        assert caller.bye().status == 200
    finally:
        peer.stop()
        caller.close()
    audio = [p for p in monitor_audio(peer.rtp) if p[0] == 0]
    assert {len(payload) for *_, payload in audio} == {8 * ptime}
    steps = {
        (b[2] - a[2]) % (1 << 32) for a, b in pairwise(audio) if (b[1] - a[1]) % (1 << 16) == 1
    }
    # One slot's step between packets in sequence; a loaded machine may skip whole slots
    # (the timestamp keeps time, the sequence does not count the packets not sent).
    assert 8 * ptime in steps and all(step % (8 * ptime) == 0 for step in steps), steps
    assert mon.last_call()["dtmf_received"] == "5"
