"""The sans-IO core of a SIP port: routing, stray answers, client and server transactions
through bytes in and events out, CANCEL both ways, malformed input, and the bounds."""

import random

import pytest

from intercom_sip.sip.core import (
    CancelReceived,
    Channel,
    Core,
    CoreEvent,
    PortLimits,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    Transmit,
    TransportError,
)
from intercom_sip.sip.message import (
    Headers,
    Request,
    Response,
    parse,
    request_bytes,
    response_bytes,
    response_to,
)
from intercom_sip.sip.transactions import TransactionId
from intercom_sip.sip.trust import user_of

UDP = Channel("udp", False, ("192.0.2.1", 5060))
TCP = Channel(("tcp", 7), True, ("192.0.2.1", 40000))
SEED = 7


def tag(n: int = 1) -> str:
    """The n-th To-tag a core seeded with SEED draws (each tag is one getrandbits(32))."""
    rng = random.Random(SEED)
    return [f"{rng.getrandbits(32):08x}" for _ in range(n)][-1]


def incoming(
    method: str = "OPTIONS",
    user: str = "101",
    branch: str = "z9hG4bKin1",
    cseq: int = 1,
    extra: str = "",
) -> bytes:
    return (
        f"{method} sip:{user}@192.0.2.9:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n"
        "From: <sip:100@example.com>;tag=f1\r\n"
        f"To: <sip:{user}@example.com>{extra}\r\n"
        "Call-ID: in1@192.0.2.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def outgoing(method: str = "OPTIONS") -> Request:
    """A request of ours, its Via without a branch: the core adds one."""
    return Request(
        method,
        "sip:200@example.com",
        Headers(
            (
                ("Via", "SIP/2.0/UDP 192.0.2.9:5060;rport"),
                ("Max-Forwards", "70"),
                ("From", "<sip:101@example.com>;tag=me"),
                ("To", "<sip:200@example.com>"),
                ("Call-ID", "out1@192.0.2.9"),
                ("CSeq", f"1 {method}"),
            )
        ),
    )


def parsed(data: bytes) -> Request | Response:
    message = parse(data)
    assert isinstance(message, Request | Response), message
    return message


def drain(core: Core) -> list[CoreEvent]:
    events = []
    while (event := core.next_event()) is not None:
        events.append(event)
    return events


def sent(events: list[CoreEvent]) -> list[bytes]:
    return [event.data for event in events if isinstance(event, Transmit)]


def start_lines(events: list[CoreEvent]) -> list[str]:
    return [data.split(b"\r\n")[0].decode() for data in sent(events)]


def new_core(**limits: int) -> Core:
    core = Core(random.Random(SEED), limits=PortLimits(**limits))
    core.add_user("101")
    return core


def reply(data: bytes, code: int, reason: str, to_tag: str = "") -> bytes:
    request = parsed(data)
    assert isinstance(request, Request)
    return response_bytes(response_to(request, code, reason, to_tag))


# --- routing by Request-URI user --------------------------------------------------------------


def test_a_request_goes_to_its_user() -> None:
    core = new_core()
    core.receive(incoming(), UDP, 0.0)
    tid = TransactionId(True, "z9hG4bKin1", "OPTIONS", "192.0.2.1:5060")
    assert drain(core) == [RequestReceived(parsed(incoming()), tid, UDP, "101")]


def test_several_users_and_aliases_on_one_port() -> None:
    core = new_core()
    core.add_user("102")
    core.add_user("contact-5f", handler="101")
    for n, user in enumerate(("102", "contact-5f")):
        core.receive(incoming(user=user, branch=f"z9hG4bK{n}"), UDP, 0.0)
    assert [e.user for e in drain(core) if isinstance(e, RequestReceived)] == ["102", "101"]
    core.remove_user("102")
    core.receive(incoming(user="102", branch="z9hG4bK9"), UDP, 0.0)
    assert start_lines(drain(core)) == ["SIP/2.0 200 OK"]  # now a stray


@pytest.mark.parametrize(
    ("uri", "user"),
    [
        ("sip:101@192.0.2.9:5060;transport=udp", "101"),
        ("SIPS:%31%30%31@example.com", "101"),
        ("sip:alice:secret@example.com", "alice"),
        ("sip:user;par=u%40example.net@example.com", "user;par=u@example.net"),  # RFC 4475
        ("sip:example.com", ""),
        ("tel:+12125551212", ""),
        ("garbage", ""),
    ],
)
def test_user_of(uri: str, user: str) -> None:
    assert user_of(uri) == user


# --- strays: answered statefully from the table --------------------------------------------


def test_a_stray_options_gets_200_with_allow_and_one_to_tag_for_all_retransmissions() -> None:
    core = new_core()
    request = incoming(user="999")
    core.receive(request, UDP, 0.0)
    first = drain(core)
    core.receive(request, UDP, 0.4)
    expected = (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKin1\r\n"
        "From: <sip:100@example.com>;tag=f1\r\n"
        f"To: <sip:999@example.com>;tag={tag()}\r\n"
        "Call-ID: in1@192.0.2.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    assert sent(first) == sent(drain(core)) == [expected]


@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("INVITE", "SIP/2.0 404 Not Found"),
        ("BYE", "SIP/2.0 481 Call/Transaction Does Not Exist"),
        ("INFO", "SIP/2.0 481 Call/Transaction Does Not Exist"),
        ("CANCEL", "SIP/2.0 481 Call/Transaction Does Not Exist"),
        ("MESSAGE", "SIP/2.0 405 Method Not Allowed"),
    ],
)
def test_stray_answers(method: str, status: str) -> None:
    core = new_core()
    core.receive(incoming(method, user="999"), UDP, 0.0)
    assert start_lines(drain(core)) == [status]


def test_a_stray_invite_is_answered_again_until_its_ack_then_quiet() -> None:
    core = new_core()
    invite = incoming("INVITE", user="999")
    core.receive(invite, UDP, 0.0)
    [answer] = sent(drain(core))
    core.receive(invite, UDP, 0.3)  # retransmitted INVITE: the same 404
    assert sent(drain(core)) == [answer]
    core.tick(0.5)  # Timer G
    assert sent(drain(core)) == [answer]
    ack = incoming("ACK", user="999", extra=f";tag={tag()}")
    core.receive(ack, UDP, 0.6)
    core.tick(100.0)
    assert drain(core) == [] and core.deadline() is None


def test_an_ack_for_nobody_and_without_transaction_is_dropped() -> None:
    core = new_core()
    core.receive(incoming("ACK", user="999"), UDP, 0.0)
    assert drain(core) == []


# --- server transactions with a user ----------------------------------------------------


def test_an_invite_answered_200_then_its_ack_reaches_the_user() -> None:
    core = new_core()
    invite = incoming("INVITE")
    core.receive(invite, UDP, 0.0)
    [received] = drain(core)
    assert isinstance(received, RequestReceived) and received.transaction_id is not None
    tid = received.transaction_id
    request = received.request
    assert core.respond(tid, response_to(request, 180, "Ringing", "uas"), 0.05)
    assert core.respond(tid, response_to(request, 200, "OK", "uas"), 1.0)
    assert start_lines(drain(core)) == ["SIP/2.0 180 Ringing", "SIP/2.0 200 OK"]
    core.receive(invite, UDP, 1.2)  # RFC 6026 Accepted: absorbed; the TU resends the 2xx
    assert drain(core) == []
    assert core.respond(tid, response_to(request, 200, "OK", "uas"), 1.5)
    assert start_lines(drain(core)) == ["SIP/2.0 200 OK"]
    ack = incoming("ACK", branch="z9hG4bKack2", extra=";tag=uas")
    core.receive(ack, UDP, 1.6)
    assert drain(core) == [RequestReceived(parsed(ack), None, UDP, "101")]
    core.tick(1.0 + 32.0)  # Timer L
    assert not core.respond(tid, response_to(request, 200, "OK", "uas"), 40.0)


def test_no_100_trying_when_the_tu_answers_within_200_ms() -> None:
    core = new_core()
    core.receive(incoming("INVITE"), UDP, 0.0)
    [received] = drain(core)
    assert isinstance(received, RequestReceived) and received.transaction_id is not None
    core.respond(received.transaction_id, response_to(received.request, 180, "Ringing"), 0.1)
    core.tick(0.3)
    assert start_lines(drain(core)) == ["SIP/2.0 180 Ringing"]


def test_100_trying_when_the_tu_is_slow() -> None:
    core = new_core()
    core.receive(incoming("INVITE"), UDP, 0.0)
    drain(core)
    assert core.deadline() == 0.2
    core.tick(0.2)
    assert start_lines(drain(core)) == ["SIP/2.0 100 Trying"]


def test_respond_to_an_unknown_or_client_transaction_is_refused() -> None:
    core = new_core()
    unknown = TransactionId(True, "z9hG4bKnone", "OPTIONS", "192.0.2.1:5060")
    response = response_to(parsed(incoming()), 200, "OK")
    assert not core.respond(unknown, response, 0.0)
    tid = core.request(outgoing(), UDP, 0.0, owner="me")
    assert tid is not None and not core.respond(tid, response, 0.0)


# --- client transactions ---------------------------------------------------------------


def test_a_request_gets_a_branch_and_its_response_reaches_the_tu() -> None:
    core = new_core()
    tid = core.request(outgoing(), UDP, 0.0, owner="me")
    [transmit] = drain(core)
    assert isinstance(transmit, Transmit) and transmit.flow == UDP
    request = parsed(transmit.data)
    assert isinstance(request, Request)
    branch = f"z9hG4bK{random.Random(SEED).getrandbits(64):016x}"
    assert request.headers.get("Via") == f"SIP/2.0/UDP 192.0.2.9:5060;rport;branch={branch}"
    assert tid == TransactionId(False, branch, "OPTIONS")
    ok = response_bytes(response_to(request, 200, "OK", "far"))
    core.receive(ok, UDP, 0.1)
    core.receive(ok, UDP, 0.2)  # a retransmission: absorbed
    assert drain(core) == [ResponseReceived(parsed(ok), tid, "me")]


def test_a_response_matching_nothing_is_dropped() -> None:
    core = new_core()
    core.receive(reply(incoming(), 200, "OK"), UDP, 0.0)
    assert drain(core) == []


def test_a_request_that_gets_no_answer_times_out_after_retransmissions() -> None:
    core = new_core()
    tid = core.request(outgoing(), UDP, 0.0, owner="me")
    drain(core)
    times = []
    while (at := core.deadline()) is not None:
        core.tick(at)
        events = drain(core)
        times += [at] * len(sent(events))
        if TransactionTimedOut(tid, "me") in events:
            break
    assert (times, at) == ([0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5], 32.0)
    assert core.deadline() is None


def test_an_invite_refused_gets_its_ack_from_the_transaction() -> None:
    core = new_core()
    tid = core.request(outgoing("INVITE"), UDP, 0.0, owner="me")
    [invite] = sent(drain(core))
    busy = reply(invite, 486, "Busy Here", "far")
    core.receive(busy, UDP, 0.1)
    events = drain(core)
    assert start_lines(events) == ["ACK sip:200@example.com SIP/2.0"]
    assert events[1] == ResponseReceived(parsed(busy), tid, "me")
    core.receive(busy, UDP, 0.2)  # the 486 again: the ACK again, the TU hears nothing
    assert start_lines(drain(core)) == ["ACK sip:200@example.com SIP/2.0"]


def test_send_puts_a_new_branch_on_each_ack_for_a_2xx() -> None:
    core = new_core()
    ack = outgoing("ACK")
    core.send(ack, UDP)
    core.send(ack, UDP)
    first, second = (parsed(data) for data in sent(drain(core)))
    assert first.headers.get("Via") != second.headers.get("Via")


# --- CANCEL, both ways ------------------------------------------------------------------


def test_cancel_waits_for_a_provisional_response() -> None:
    core = new_core()
    tid = core.request(outgoing("INVITE"), UDP, 0.0, owner="me")
    assert tid is not None
    [invite] = sent(drain(core))
    cancel_id = core.cancel(tid, 0.1)
    assert cancel_id == TransactionId(False, tid.branch, "CANCEL")
    assert drain(core) == []  # §9.1: not before a 1xx
    core.receive(reply(invite, 180, "Ringing", "far"), UDP, 0.2)
    events = drain(core)
    assert isinstance(events[0], ResponseReceived)
    assert start_lines(events) == ["CANCEL sip:200@example.com SIP/2.0"]
    cancel = parsed(sent(events)[0])
    assert cancel.headers.get("Via") == parsed(invite).headers.get("Via")
    core.receive(reply(sent(events)[0], 200, "OK", "far"), UDP, 0.3)
    assert drain(core) == [
        ResponseReceived(parsed(reply(sent(events)[0], 200, "OK", "far")), cancel_id, "me")
    ]


def test_cancel_without_a_provisional_is_dropped_when_a_final_comes() -> None:
    core = new_core()
    tid = core.request(outgoing("INVITE"), UDP, 0.0, owner="me")
    assert tid is not None
    [invite] = sent(drain(core))
    core.cancel(tid, 0.1)
    core.receive(reply(invite, 486, "Busy Here", "far"), UDP, 0.2)
    assert start_lines(drain(core)) == ["ACK sip:200@example.com SIP/2.0"]
    assert core.cancel(tid, 0.3) is None  # a final response already


def test_a_cancelled_invite_without_final_gives_up_after_64_t1() -> None:
    core = new_core()
    tid = core.request(outgoing("INVITE"), TCP, 0.0, owner="me")
    assert tid is not None
    [invite] = sent(drain(core))
    core.receive(reply(invite, 180, "Ringing", "far"), TCP, 0.1)
    core.cancel(tid, 1.0)
    drain(core)
    core.tick(33.0)
    assert TransactionTimedOut(tid, "me") in drain(core)


def test_a_cancel_received_is_answered_200_and_its_invite_487_with_one_tag() -> None:
    core = new_core()
    core.receive(incoming("INVITE"), UDP, 0.0)
    [received] = drain(core)
    assert isinstance(received, RequestReceived) and received.transaction_id is not None
    core.respond(
        received.transaction_id, response_to(received.request, 180, "Ringing", "uas"), 0.0
    )
    drain(core)
    core.receive(incoming("CANCEL"), UDP, 1.0)
    events = drain(core)
    assert start_lines(events) == ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    tos = [parsed(data).headers.get("To") for data in sent(events)]
    assert tos == ["<sip:101@example.com>;tag=uas"] * 2
    assert events[-1] == CancelReceived(received.transaction_id, "101")
    core.receive(incoming("CANCEL"), UDP, 1.1)  # retransmitted CANCEL: the same 200
    assert start_lines(drain(core)) == ["SIP/2.0 200 OK"]


def test_a_cancel_after_the_final_response_gets_200_and_changes_nothing() -> None:
    core = new_core()
    core.receive(incoming("INVITE"), UDP, 0.0)
    [received] = drain(core)
    assert isinstance(received, RequestReceived) and received.transaction_id is not None
    core.respond(received.transaction_id, response_to(received.request, 200, "OK", "uas"), 0.0)
    drain(core)
    core.receive(incoming("CANCEL"), UDP, 1.0)
    assert start_lines(drain(core)) == ["SIP/2.0 200 OK"]


# --- RFC 4475 messages that concern transactions -----------------------------------------

INV2543 = (
    b"INVITE sip:UserB@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP iftgw.example.com\r\n"
    b"From: <sip:+13035551111@ift.client.example.net;user=phone>\r\n"
    b"Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\r\n"
    b"To: sip:+16505552222@ss1.example.net;user=phone\r\n"
    b"Call-ID: 1717@ift.client.example.net\r\n"
    b"CSeq: 56 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.5\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0\r\n"
)


def test_rfc4475_inv2543_is_one_transaction_by_the_fallback_rules() -> None:
    core = new_core()
    core.add_user("UserB")
    core.receive(INV2543, UDP, 0.0)
    core.receive(INV2543, UDP, 0.1)  # retransmitted: absorbed
    [received] = drain(core)
    assert isinstance(received, RequestReceived) and received.transaction_id is not None
    busy = response_to(received.request, 486, "Busy Here", "b1")
    core.respond(received.transaction_id, busy, 0.2)
    drain(core)
    ack = (
        INV2543.split(b"\r\n\r\n")[0]
        .replace(b"INVITE sip", b"ACK sip")
        .replace(b"56 INVITE", b"56 ACK")
        .replace(b"user=phone\r\nCall", b"user=phone;tag=b1\r\nCall")
        + b"\r\n\r\n"
    )
    core.receive(ack, UDP, 0.3)  # matched to the INVITE: Confirmed, nothing to the TU
    core.tick(0.4)
    assert drain(core) == []


def test_rfc4475_zeta_bare_magic_cookie_is_answered() -> None:
    core = new_core()
    core.receive(incoming(user="999", branch="z9hG4bK"), UDP, 0.0)
    assert start_lines(drain(core)) == ["SIP/2.0 200 OK"]


# --- malformed input ----------------------------------------------------------------------


def test_a_malformed_request_with_a_readable_via_gets_400() -> None:
    core = new_core()
    broken = incoming().replace(b"Call-ID: in1@192.0.2.1\r\n", b"")
    core.receive(broken, UDP, 0.0)
    expected = (
        "SIP/2.0 400 Missing Call-ID\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKin1\r\n"
        "From: <sip:100@example.com>;tag=f1\r\n"
        f"To: <sip:101@example.com>;tag={tag()}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    assert drain(core) == [Transmit(expected, UDP)]


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\xff garbage",
        incoming().replace(b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKin1\r\n", b""),
        incoming("ACK").replace(b"Call-ID: in1@192.0.2.1\r\n", b""),
        reply(incoming(), 200, "OK").replace(b"Call-ID", b"Call-Identity"),
    ],
    ids=["garbage", "no Via", "an ACK", "a response"],
)
def test_other_malformed_messages_are_dropped(data: bytes) -> None:
    core = new_core()
    core.receive(data, UDP, 0.0)
    assert drain(core) == []


# --- transport errors ---------------------------------------------------------------------


def test_a_closed_connection_fails_its_transactions() -> None:
    core = new_core()
    core.receive(incoming("INVITE").replace(b"UDP", b"TCP"), TCP, 0.0)
    [received] = drain(core)
    assert isinstance(received, RequestReceived) and received.transaction_id is not None
    client = core.request(outgoing(), UDP, 0.0, owner="me")
    core.flow_closed(TCP.key, 0.1)
    core.flow_closed(UDP.key, 0.1)  # not a connection: nothing happens
    assert drain(core)[1:] == [TransportError(received.transaction_id, "101")]
    assert client is not None
    core.send_failed(client, 0.2)
    assert drain(core) == [TransportError(client, "me")]


def test_over_a_reliable_flow_a_stray_transaction_ends_at_once() -> None:
    core = new_core()
    core.receive(incoming(user="999").replace(b"UDP", b"TCP"), TCP, 0.0)
    assert start_lines(drain(core)) == ["SIP/2.0 200 OK"]
    assert core.deadline() is None  # Timer J is zero: nothing left


# --- bounds --------------------------------------------------------------------------------


def test_beyond_the_transaction_cap_requests_get_503_and_requests_of_ours_none() -> None:
    core = new_core(transactions=2, ours=0)
    for n in range(2):
        core.receive(incoming(user="999", branch=f"z9hG4bK{n}"), UDP, 0.0)
    drain(core)
    core.receive(incoming(user="999", branch="z9hG4bK2"), UDP, 0.0)
    [busy] = sent(drain(core))
    response = parsed(busy)
    assert isinstance(response, Response)
    assert (response.code, response.headers.get("Retry-After")) == (503, "10")
    assert core.request(outgoing(), UDP, 0.0, owner="me") is None
    assert drain(core) == []
    core.tick(32.0)  # Timer J ends both; room again
    assert core.request(outgoing(), UDP, 32.0, owner="me") is not None


def test_the_event_queue_is_bounded() -> None:
    core = new_core(events=3)
    for n in range(10):
        core.receive(incoming(user="999", branch=f"z9hG4bK{n}"), UDP, 0.0)
    assert (len(drain(core)), core.dropped) == (3, 7)


def test_a_transmit_carries_its_transaction_for_send_failed() -> None:
    core = new_core()
    tid = core.request(outgoing(), UDP, 0.0, owner="me")
    [transmit] = drain(core)
    assert isinstance(transmit, Transmit) and transmit.transaction_id == tid
    assert isinstance(parsed(request_bytes(outgoing())), Request)
