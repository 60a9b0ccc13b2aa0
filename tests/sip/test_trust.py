"""Who may ring (§6.9): the pure verdict, the per-source budget, and the core's stateless
answer to strangers, under a fake clock."""

import random

import pytest

from intercom_sip.sip.core import (
    Channel,
    Core,
    CoreEvent,
    FlowRefused,
    PortLimits,
    RequestReceived,
    StrangerRefused,
    Transmit,
)
from intercom_sip.sip.message import Headers, Request, parse
from intercom_sip.sip.trust import (
    Budget,
    Trust,
    Verdict,
    has_token,
    judge,
    uri_host,
    without_token,
)

TOKEN = "9f3a0c1d2e4b5a6978"
PROXY_IP = "192.0.2.1"
TRUST = Trust(
    token=TOKEN,
    proxies=frozenset({PROXY_IP}),
    registration="reg-flow",
    peers=frozenset({"198.51.100.7"}),
    ours=frozenset({"192.0.2.9"}),
    direct=False,
    direct_to="phone",
)
PROXY_UDP = Channel("udp", False, (PROXY_IP, 5060))
PROXY_OTHER_PORT = Channel("udp", False, (PROXY_IP, 40000))
STRANGER = Channel("udp", False, ("203.0.113.66", 5060))
REG_FLOW = Channel("reg-flow", True, STRANGER.remote)
PEER = Channel("u", False, ("198.51.100.7", 9))


def request(
    method: str = "INVITE", uri: str = f"sip:101-{TOKEN}@192.0.2.9:5060", to_tag: str = ""
) -> Request:
    to = "<sip:101@example.com>" + (f";tag={to_tag}" if to_tag else "")
    headers = (
        ("Via", f"SIP/2.0/UDP {PROXY_IP}:5060;branch=z9hG4bKx1"),
        ("From", "<sip:100@example.com>;tag=f1"),
        ("To", to),
        ("Call-ID", "c1@192.0.2.1"),
        ("CSeq", f"1 {method}"),
    )
    return Request(method, uri, Headers(headers))


def wire(method: str, uri: str, branch: str, sender: str = "<sip:100@example.com>") -> bytes:
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 203.0.113.66:5060;branch={branch}\r\n"
        f"From: {sender};tag=f1\r\n"
        "To: <sip:101@example.com>\r\n"
        f"Call-ID: {branch}@203.0.113.66\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


# --- the verdict -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "req", "flow", "verdict"),
    [
        ("udp with the token", request(), STRANGER, Verdict.PROXY),
        ("udp from the proxy, no token", request(uri="sip:101@192.0.2.9"), PROXY_UDP, "S"),
        ("udp proxy ip other port", request(uri="sip:101@192.0.2.9"), PROXY_OTHER_PORT, "S"),
        ("a wrong token", request(uri="sip:101-0000@192.0.2.9"), PROXY_UDP, "S"),
        ("options from the proxy", request("OPTIONS", "sip:101@192.0.2.9"), PROXY_UDP, "P"),
        ("options from a stranger", request("OPTIONS", "sip:101@192.0.2.9"), STRANGER, "S"),
        ("tcp: registration flow", request(uri="sip:101@x"), REG_FLOW, "P"),
        ("tcp: from the proxy", request(uri="sip:101@x"), Channel("c", True, (PROXY_IP, 1)), "P"),
        ("tcp: anyone else", request(), Channel("c", True, STRANGER.remote), "S"),
        ("in dialog: the proxy", request("BYE", to_tag="t"), PROXY_OTHER_PORT, Verdict.PEER),
        ("in dialog: the peer", request("BYE", to_tag="t"), PEER, Verdict.PEER),
        ("in dialog: an outsider", request("BYE", to_tag="t"), STRANGER, "S"),
        ("direct calls off", request(uri="sip:192.0.2.9"), STRANGER, "S"),
    ],
)
def test_the_verdict(case: str, req: Request, flow: Channel, verdict: Verdict | str) -> None:
    short = {"S": Verdict.STRANGER, "P": Verdict.PROXY}
    expected = short.get(verdict, verdict) if isinstance(verdict, str) else verdict
    assert judge(TRUST, req, flow.remote[0], flow.reliable, flow.key) == expected, case


@pytest.mark.parametrize(
    "uri", ["sip:192.0.2.9", "sip:any@192.0.2.9", "sip:101@192.0.2.9:5062;transport=udp"]
)
def test_direct_calls_to_our_address_whatever_the_user(uri: str) -> None:
    on = Trust(ours=frozenset({"192.0.2.9"}), direct=True, direct_to="phone")
    assert judge(on, request(uri=uri), STRANGER.remote[0], False, "udp") == Verdict.DIRECT
    other = request(uri="sip:any@192.0.2.10")
    assert judge(on, other, STRANGER.remote[0], False, "udp") == Verdict.STRANGER


def test_token_helpers() -> None:
    assert has_token(f"sip:101-{TOKEN}@h", TOKEN)
    assert not has_token(f"sip:101-{TOKEN}x@h", TOKEN)
    assert not has_token("sip:101-@h", "")
    assert without_token(f"101-{TOKEN}", TOKEN) == "101"
    assert without_token("101", TOKEN) == "101"
    assert [uri_host(u) for u in ("sip:A.b@[::1]:5060", "sips:Host.X;transport=tls", "tel:1")] == [
        "::1",
        "host.x",
        "",
    ]


# --- the budget ------------------------------------------------------------------------------


def test_the_budget_is_ten_answers_a_second_per_source() -> None:
    budget = Budget()
    answered = [budget.admit("203.0.113.66", 0.01 * n) for n in range(30)]  # 30 in 0.3 s
    assert answered == [True] * 10 + [False] * 20
    assert budget.admit("203.0.113.67", 0.3)  # another source has its own
    assert budget.admit("203.0.113.66", 1.0)  # a new second


def test_the_budget_holds_in_any_second_not_only_in_fixed_ones() -> None:
    budget = Budget()
    assert all(budget.admit("203.0.113.66", 0.9 + 0.001 * n) for n in range(10))
    assert not budget.admit("203.0.113.66", 1.2)  # a fixed window would have begun anew
    assert budget.admit("203.0.113.66", 1.95)


def test_the_budget_table_is_bounded() -> None:
    budget = Budget(max_sources=4)
    assert all(budget.admit(f"10.0.0.{n}", 0.0) for n in range(4))
    assert not budget.admit("10.0.0.9", 0.5)  # full, and nobody's window is over
    assert len(budget) == 4
    assert budget.admit("10.0.0.9", 1.5)  # the stale ones are forgotten
    assert len(budget) == 1


# --- the core --------------------------------------------------------------------------------


def guarded(**limits: int) -> Core:
    core = Core(random.Random(7), limits=PortLimits(**limits))
    core.add_user("101", "phone")
    core.trust = TRUST
    return core


def drain(core: Core) -> list[CoreEvent]:
    events = []
    while (event := core.next_event()) is not None:
        events.append(event)
    return events


def first_line(data: bytes) -> str:
    return data.split(b"\r\n")[0].decode()


@pytest.mark.parametrize("user", ["101", "nobody", ""])
def test_a_stranger_gets_one_stateless_403_whatever_the_user(user: str) -> None:
    core = guarded()
    uri = f"sip:{user}@192.0.2.9" if user else "sip:192.0.2.9"
    core.receive(wire("INVITE", uri, "z9hG4bKs1"), STRANGER, 0.0)
    events = drain(core)
    assert [first_line(e.data) for e in events if isinstance(e, Transmit)] == [
        "SIP/2.0 403 Forbidden"
    ]
    assert events[1:] == [
        StrangerRefused("INVITE", "<sip:100@example.com>;tag=f1", STRANGER.remote, 0)
    ]
    assert core.deadline() is None  # no transaction: nothing is ever resent
    core.tick(100.0)
    assert drain(core) == []


def test_a_forged_proxy_source_without_the_token_is_a_stranger() -> None:
    core = guarded()
    core.receive(wire("INVITE", "sip:101@192.0.2.9", "z9hG4bKf1"), PROXY_UDP, 0.0)
    assert [type(e) for e in drain(core)] == [Transmit, StrangerRefused]
    core.receive(wire("INVITE", f"sip:101-{TOKEN}@192.0.2.9", "z9hG4bKf2"), PROXY_UDP, 0.0)
    [received] = [e for e in drain(core) if isinstance(e, RequestReceived)]
    assert (received.user, received.direct) == ("phone", False)


def test_a_flood_gets_ten_answers_a_second_and_five_log_lines() -> None:
    core = guarded()
    events: list[CoreEvent] = []
    for n in range(100):  # 100 in one second
        core.receive(wire("OPTIONS", "sip:101@192.0.2.9", f"z9hG4bK{n}"), STRANGER, n / 100)
        events += drain(core)
    assert sum(isinstance(e, Transmit) for e in events) == 10
    assert sum(isinstance(e, StrangerRefused) for e in events) == 5
    assert core.deadline() is None
    core.receive(wire("OPTIONS", "sip:101@192.0.2.9", "z9hG4bKlast"), STRANGER, 1.5)
    told = [e for e in drain(core) if isinstance(e, StrangerRefused)]
    assert told == [StrangerRefused("OPTIONS", "<sip:100@example.com>;tag=f1", STRANGER.remote, 5)]


def test_a_strangers_ack_gets_nothing() -> None:
    core = guarded()
    core.receive(wire("ACK", "sip:101@192.0.2.9", "z9hG4bKa"), STRANGER, 0.0)
    assert drain(core) == []


def test_room_is_kept_for_the_proxy_and_our_requests() -> None:
    core = guarded(transactions=8, ours=2, direct=4)
    core.trust = Trust(
        TOKEN, frozenset({PROXY_IP}), ours=frozenset({"192.0.2.9"}), direct=True, direct_to="phone"
    )
    for n in range(6):  # a direct-call source: 8 - 4 = 4 at most
        core.receive(wire("OPTIONS", "sip:x@192.0.2.9", f"z9hG4bKd{n}"), STRANGER, 0.0)
    lines = [first_line(e.data) for e in drain(core) if isinstance(e, Transmit)]
    assert lines.count("SIP/2.0 503 Service Unavailable") == 2
    for n in range(4):  # the proxy's: up to 8 - 2
        core.receive(wire("INVITE", f"sip:101-{TOKEN}@192.0.2.9", f"z9hG4bKp{n}"), PROXY_UDP, 0.0)
    kinds = [type(e).__name__ for e in drain(core)]
    assert kinds.count("RequestReceived") == 2
    assert kinds.count("Transmit") == 2  # the two beyond: 503
    assert (
        core.request(parse_request(), PROXY_UDP, 0.0, owner="registration") is not None
    )  # our REGISTER
    assert (
        core.request(parse_request("z9hG4bKr2"), PROXY_UDP, 0.0, owner="registration") is not None
    )


def parse_request(branch: str = "z9hG4bKr1") -> Request:
    message = parse(
        (
            "REGISTER sip:example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.9:5060;branch={branch}\r\n"
            "From: <sip:101@example.com>;tag=r\r\nTo: <sip:101@example.com>\r\n"
            f"Call-ID: {branch}\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


def test_a_dialogs_peer_reaches_the_phone_whatever_user_it_names() -> None:
    """Our Contact in a direct call made while no account is set up names a user the core
    does not serve; the call's peer still reaches the phone, an outsider does not."""
    core = guarded()
    bye = wire("BYE", "sip:intercom@192.0.2.9:5060", "z9hG4bKb1").replace(
        b"To: <sip:101@example.com>", b"To: <sip:101@example.com>;tag=ours"
    )
    core.receive(bye, PEER, 0.0)
    [received] = [e for e in drain(core) if isinstance(e, RequestReceived)]
    assert (received.user, received.request.method) == ("phone", "BYE")
    core.receive(bye.replace(b"z9hG4bKb1", b"z9hG4bKb2"), STRANGER, 0.0)
    assert [first_line(e.data) for e in drain(core) if isinstance(e, Transmit)] == [
        "SIP/2.0 403 Forbidden"
    ]


def test_the_token_is_not_in_the_trusts_repr() -> None:
    assert TOKEN not in repr(TRUST)


STRANGER_TCP = Channel("conn-1", True, ("203.0.113.66", 40000))


@pytest.mark.parametrize(
    ("channel", "refused"),
    [(STRANGER_TCP, [FlowRefused(STRANGER_TCP)] * 3), (STRANGER, [])],
)
def test_a_stranger_past_its_budget_on_a_connection_loses_it(
    channel: Channel, refused: list[FlowRefused]
) -> None:
    """A pipelined flood over TCP is closed, not read: the 11th request in a second on a
    stranger's connection asks the shell to close it (and ACKs count). Over UDP there is
    nothing to close. (A connection from the proxy's address is never a stranger's.)"""
    core = guarded()
    events: list[CoreEvent] = []
    for n in range(13):
        method = "ACK" if n == 0 else "OPTIONS"
        core.receive(wire(method, "sip:101@192.0.2.9", f"z9hG4bKt{n}"), channel, n / 100)
        events += drain(core)
    assert sum(isinstance(e, Transmit) for e in events) == 9  # the ACK took one, unanswered
    assert [e for e in events if isinstance(e, FlowRefused)] == refused
