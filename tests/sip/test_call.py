"""The call machine (CONTRACT §6) under a fake clock: incoming, outgoing, answering and
ending, DTMF, the call timeout, the media timeout, and the RFC 4475 INVITEs that concern
a UAS's dialogs."""

import random
from collections.abc import Callable
from dataclasses import replace

import pytest

from intercom_sip.sip import sdp
from intercom_sip.sip.call import Handset
from intercom_sip.sip.callevents import (
    BUSY,
    DEFAULT_OPTIONS,
    MAX_ABANDONED,
    NO_CALL,
    TOO_MANY_DIGITS,
    WRONG_DIGITS,
    Answer,
    Answered,
    Calling,
    CallRecord,
    CallStatus,
    Dial,
    Dtmf,
    DtmfHeard,
    DtmfReceived,
    Ended,
    FlowMoved,
    Hangup,
    Input,
    NotStarted,
    Options,
    Output,
    Phase,
    Received,
    Refused,
    Rejected,
    Respond,
    Ringing,
    RtpArrived,
    SendAck,
    SendCancel,
    SendDtmf,
    SendRequest,
    SettingsChanged,
    Shutdown,
    StartMedia,
    StopMedia,
    Timer,
    UpdateMedia,
)
from intercom_sip.sip.callflow import Callee, Here, target_of
from intercom_sip.sip.core import (
    CancelReceived,
    Channel,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from intercom_sip.sip.digest import Credentials
from intercom_sip.sip.message import (
    Headers,
    Request,
    Response,
    parse,
    parse_name_addr,
    request_bytes,
    response_bytes,
)
from intercom_sip.sip.negotiation import Local
from intercom_sip.sip.transactions import TransactionId

PROXY = Channel("udp", False, ("192.0.2.1", 5060))
PANEL = Channel("udp", False, ("192.0.2.60", 5060))
LOCAL = Local("192.0.2.9", 40000, 1234)
HERE = Here("sip:101@192.0.2.9:5060;transport=udp", "192.0.2.9:5060", "UDP", LOCAL)
ON = SettingsChanged(enabled=True, timeout=120, auto_answer=False)
OFFSET = 1_764_441_600.0  # Unix time at the fake clock's 0

OFFER = (
    "v=0\r\no=- 5 5 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n"
    "m=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
ANSWER = (
    "v=0\r\no=- 9 9 IN IP4 192.0.2.70\r\ns=-\r\nc=IN IP4 192.0.2.70\r\nt=0 0\r\n"
    "m=audio 31000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)
INVITE_TID = TransactionId(True, "z9hG4bKc1", "INVITE", "192.0.2.1:5060")
OWNER = "phone"  # the core's user whose transactions the handset's are


def text_message(text: str) -> Request | Response:
    parsed = parse(text.encode())
    assert isinstance(parsed, Request | Response), parsed
    return parsed


def sip_request(
    method: str = "INVITE",
    cseq: int = 1,
    body: str = OFFER,
    to_tag: str = "",
    branch: str = "z9hG4bKc1",
    extra: str = "",
    content_type: str = "application/sdp",
) -> Request:
    lines = [
        f"{method} sip:101@192.0.2.9:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}",
        "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKpanel",
        "Record-Route: <sip:192.0.2.1;lr>",
        'From: "Door" <sip:100@example.com>;tag=f1',
        "To: <sip:101@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: call1@192.0.2.50",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:100@192.0.2.50:5060>",
        "Max-Forwards: 69",
    ]
    lines += [line for line in extra.split("\n") if line]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    request = text_message("\r\n".join(lines) + "\r\n\r\n" + body)
    assert isinstance(request, Request)
    return request


def tid_of(request: Request) -> TransactionId:
    via = request.headers.get("Via") or ""
    branch = via.split("branch=")[1].split(";")[0]
    method = "INVITE" if request.method == "ACK" else request.method
    return TransactionId(True, branch, method, "192.0.2.1:5060")


def received(request: Request, direct: bool = False, flow: Channel = PROXY) -> Received:
    tid = None if request.method == "ACK" else tid_of(request)
    return Received(request, tid, flow, HERE, direct)


def handset(options: Options = DEFAULT_OPTIONS, settings: SettingsChanged = ON) -> Handset:
    return Handset(random.Random(7), options, settings, clock_offset=OFFSET)


def responses(outputs: list[Output]) -> list[Response]:
    return [output.response for output in outputs if isinstance(output, Respond)]


def codes(outputs: list[Output]) -> list[int]:
    return [response.code for response in responses(outputs)]


def of_type(outputs: list[Output], kind: type) -> list[Output]:
    return [output for output in outputs if isinstance(output, kind)]


def to_tag(message: Request | Response) -> str:
    parsed = parse_name_addr(message.headers.get("To") or "")
    assert parsed is not None
    return parsed.params.get("tag", "")


def ended(outputs: list[Output]) -> CallRecord:
    found = of_type(outputs, Ended)
    assert len(found) == 1, outputs
    record = found[0]
    assert isinstance(record, Ended)
    return record.record


def ringing(h: Handset, now: float = 0.0, **kwargs: str) -> list[Output]:
    return h.handle(received(sip_request(**kwargs)), now)  # type: ignore[arg-type]


def active(h: Handset, now: float = 0.0) -> str:
    """Ring, answer at `now`, take the ACK: an active incoming call; its To-tag."""
    outputs = ringing(h, now)
    tag = to_tag(responses(outputs)[1])
    h.handle(Answer(), now)
    h.handle(received(sip_request("ACK", body="", to_tag=tag, branch="z9hG4bKack")), now)
    return tag


def without_body(response: Response) -> str:
    return response_bytes(replace(response, body=b"")).decode()


# --- incoming: ringing ----------------------------------------------------------------------


def test_an_invite_gets_100_then_180_with_our_tag_contact_and_record_route() -> None:
    h = handset()
    outputs = ringing(h)
    trying, ring = responses(outputs)
    tag = to_tag(ring)
    assert response_bytes(trying).decode() == (
        "SIP/2.0 100 Trying\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1\r\n"
        "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKpanel\r\n"
        'From: "Door" <sip:100@example.com>;tag=f1\r\n'
        "To: <sip:101@example.com>\r\n"
        "Call-ID: call1@192.0.2.50\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert response_bytes(ring).decode() == (
        "SIP/2.0 180 Ringing\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1\r\n"
        "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKpanel\r\n"
        'From: "Door" <sip:100@example.com>;tag=f1\r\n'
        f"To: <sip:101@example.com>;tag={tag}\r\n"
        "Call-ID: call1@192.0.2.50\r\n"
        "CSeq: 1 INVITE\r\n"
        "Record-Route: <sip:192.0.2.1;lr>\r\n"
        "Contact: <sip:101@192.0.2.9:5060;transport=udp>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    status = h.status(5.0)
    assert outputs[-1] == Ringing(replace(status))
    assert status == CallStatus(
        state="ringing",
        id=status.id,
        direction="in",
        remote="sip:100@example.com",
        started=int(OFFSET),
        codec=None,
        srtp=False,
        dtmf_received="",
    )
    assert h.pending() == {Timer.RING: 60.0}


def test_the_200_keeps_the_180s_tag_and_carries_contact_record_route_and_the_answer() -> None:
    h = handset()
    tag = to_tag(responses(ringing(h))[1])
    outputs = h.handle(Answer(), 3.0)
    (ok,) = responses(outputs)
    assert without_body(ok) == (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1\r\n"
        "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKpanel\r\n"
        'From: "Door" <sip:100@example.com>;tag=f1\r\n'
        f"To: <sip:101@example.com>;tag={tag}\r\n"
        "Call-ID: call1@192.0.2.50\r\n"
        "CSeq: 1 INVITE\r\n"
        "Record-Route: <sip:192.0.2.1;lr>\r\n"
        "Contact: <sip:101@192.0.2.9:5060;transport=udp>\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n"
        "Content-Type: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert ok.body.decode() == (
        "v=0\r\no=- 1234 1234 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
    (start,) = of_type(outputs, StartMedia)
    assert isinstance(start, StartMedia)
    assert (start.local, start.media.codec, start.media.remote_address) == (
        LOCAL,
        "PCMA",
        "192.0.2.50",
    )
    assert h.status(10.0) == replace(
        h.status(10.0),
        state="active",
        answered=int(OFFSET) + 3,
        ends_at=int(OFFSET) + 123,
        duration=7,
        codec="PCMA",
    )
    assert outputs[-1] == Answered(h.status(3.0))


# --- incoming: refusals --------------------------------------------------------------------

NO_G711 = OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 9").replace("a=rtpmap:8 PCMA/8000\r\n", "")
SAVP = OFFER.replace("RTP/AVP", "RTP/SAVP") + (
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40 + "\r\n"
)


@pytest.mark.parametrize(
    ("settings", "request_args", "code", "end_reason", "extra"),
    [
        (replace(ON, enabled=False), {}, 480, "disabled", ()),
        (ON, {"body": NO_G711}, 488, "failed", ()),
        (ON, {"body": SAVP}, 488, "failed", ()),  # keys over UDP: never (§6.7)
        (ON, {"body": "v=1\r\n"}, 400, "failed", ()),
        # RFC 4475 §3.3.6 (invut) and §3.1.1.11 (mpart01): a body we cannot read.
        (
            ON,
            {"content_type": "application/unknownformat"},
            415,
            "failed",
            (("Accept", "application/sdp"),),
        ),
        (
            ON,
            {"content_type": "multipart/mixed;boundary=x"},
            415,
            "failed",
            (("Accept", "application/sdp"),),
        ),
        # RFC 4475 §3.3.5 (bext01): an extension we do not have.
        (
            ON,
            {"extra": "Require: nothingSupportsThis, nothingSupportsThisEither"},
            420,
            "failed",
            (("Unsupported", "nothingSupportsThis, nothingSupportsThisEither"),),
        ),
        # RFC 4475 §3.3.8 (multi01): single-valued headers twice.
        (ON, {"extra": "Call-ID: other@192.0.2.50"}, 400, "failed", ()),
        (ON, {"extra": "CSeq: 2 INVITE"}, 400, "failed", ()),
        # RFC 4475 §3.3.15 (sdp01): an Accept that refuses SDP.
        (ON, {"extra": "Accept: text/nobodyKnowsThis"}, 406, "failed", ()),
    ],
)
def test_an_invite_refused_is_answered_and_logged(
    settings: SettingsChanged,
    request_args: dict[str, str],
    code: int,
    end_reason: str,
    extra: tuple[tuple[str, str], ...],
) -> None:
    h = handset(settings=settings)
    outputs = ringing(h, 4.0, **request_args)
    (response,) = responses(outputs)
    assert response.code == code
    assert response.headers.fields[-len(extra) :] == extra if extra else True
    assert to_tag(response)
    (rejected,) = of_type(outputs, Rejected)
    assert isinstance(rejected, Rejected)
    assert rejected.record == replace(
        rejected.record,
        direction="in",
        remote="sip:100@example.com",
        started=int(OFFSET) + 4,
        ended=int(OFFSET) + 4,
        answered=None,
        end_reason=end_reason,
        code=code,
        reason=response.reason,
    )
    assert h.phase is Phase.IDLE and h.pending() == {}


def test_a_second_caller_while_busy_gets_486_and_the_call_goes_on() -> None:
    h = handset()
    active(h)
    second = sip_request(branch="z9hG4bKc2").headers.fields
    other = Request(
        "INVITE",
        "sip:101@192.0.2.9:5060",
        type(sip_request().headers)(
            tuple((k, "call2@x" if k == "Call-ID" else v) for k, v in second)
        ),
        OFFER.encode(),
    )
    outputs = h.handle(received(other), 9.0)
    assert codes(outputs) == [486]
    rejected = of_type(outputs, Rejected)[0]
    assert isinstance(rejected, Rejected)
    assert (rejected.record.end_reason, rejected.record.reason) == ("busy", "Busy Here")
    assert h.phase is Phase.ACTIVE


def test_a_direct_call_rings_with_sip_disabled_and_names_the_panel() -> None:
    """§6.2: the core judged it a direct call (--direct-calls); the handset rings it
    whatever the settings, and the call names the panel's address."""
    h = handset(settings=replace(ON, enabled=False))
    outputs = h.handle(received(sip_request(), direct=True, flow=PANEL), 0.0)
    assert codes(outputs) == [100, 180]
    assert h.status(0.0).remote == "sip:100@192.0.2.60:5060"
    assert h.peers() == frozenset({"192.0.2.60", "192.0.2.50"})  # the source, its Contact


def test_an_invite_with_sip_disabled_is_480() -> None:
    h = handset(settings=replace(ON, enabled=False))
    outputs = h.handle(received(sip_request()), 0.0)
    assert codes(outputs) == [480]


def test_the_same_invite_by_another_path_is_482() -> None:
    """§8.2.2.2: a merged request (same Call-ID, From-tag and CSeq, another branch)."""
    h = handset()
    ringing(h)
    outputs = ringing(h, 0.1, branch="z9hG4bKother")
    assert codes(outputs) == [482]
    assert h.phase is Phase.RINGING


# --- incoming: how a ringing call ends ---------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "code", "reason", "end_reason"),
    [
        (Hangup(), 603, "Decline", "declined"),
        (SettingsChanged(False, 120, False), 480, "Temporarily Unavailable", "disabled"),
        (Shutdown(), 480, "Temporarily Unavailable", "shutdown"),
    ],
)
def test_a_ringing_call_ended_here(
    act: Hangup | SettingsChanged | Shutdown, code: int, reason: str, end_reason: str
) -> None:
    h = handset()
    tag = to_tag(responses(ringing(h))[1])
    outputs = h.handle(act, 2.0)
    (response,) = responses(outputs)
    assert (response.code, response.reason, to_tag(response)) == (code, reason, tag)
    assert (ended(outputs).end_reason, ended(outputs).code) == (end_reason, code)
    assert h.phase is Phase.IDLE and h.deadline() is None


def test_unanswered_for_the_ring_time_is_480_no_answer() -> None:
    h = handset(Options(ring_time=60.0))
    ringing(h)
    assert h.tick(59.9) == []
    outputs = h.tick(60.0)
    assert codes(outputs) == [480]
    assert (ended(outputs).end_reason, ended(outputs).code) == ("no answer", 480)


def test_cancelled_by_the_caller() -> None:
    h = handset()
    ringing(h)
    outputs = h.handle(CancelReceived(INVITE_TID, OWNER), 1.0)
    record = ended(outputs)
    assert (record.end_reason, record.code, record.reason) == (
        "cancelled",
        487,
        "Request Terminated",
    )
    assert h.handle(CancelReceived(INVITE_TID, OWNER), 1.0) == []


def test_a_bye_on_the_early_dialog_ends_the_invite_with_487() -> None:
    h = handset()
    tag = to_tag(responses(ringing(h))[1])
    bye = sip_request("BYE", 2, body="", to_tag=tag, branch="z9hG4bKbye")
    outputs = h.handle(received(bye), 1.0)
    assert codes(outputs) == [200, 487]
    assert ended(outputs).end_reason == "cancelled"


def test_auto_answer_after_the_delay() -> None:
    h = handset(Options(auto_answer_delay=1.0), replace(ON, auto_answer=True))
    ringing(h)
    assert h.pending() == {Timer.RING: 60.0, Timer.AUTO_ANSWER: 1.0}
    assert h.tick(0.9) == []
    outputs = h.tick(1.0)
    assert codes(outputs) == [200]
    assert h.phase is Phase.ACTIVE


def test_auto_answer_turned_on_while_ringing() -> None:
    h = handset(Options(auto_answer_delay=1.0))
    ringing(h)
    h.handle(replace(ON, auto_answer=True), 5.0)
    assert h.pending()[Timer.AUTO_ANSWER] == 5.0


# --- incoming: the 2xx until the ACK -----------------------------------------------------------


def test_the_200_is_retransmitted_until_the_ack() -> None:
    h = handset()
    tag = to_tag(responses(ringing(h))[1])
    (ok,) = responses(h.handle(Answer(), 0.0))
    sent = [at for at in (0.5, 1.5, 3.5, 7.5, 11.5) if responses(h.tick(at)) == [ok]]
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5]
    ack = sip_request("ACK", body="", to_tag=tag, branch="z9hG4bKack")
    assert h.handle(received(ack), 12.0) == []
    assert Timer.RETRANSMIT not in h.pending()


def test_no_ack_in_32_s_ends_the_call_with_bye() -> None:
    h = handset(Options(media_timeout=1000.0))
    tag = to_tag(responses(ringing(h))[1])
    h.handle(Answer(), 0.0)
    outputs: list[Output] = []
    now = 0.0
    while not of_type(outputs, Ended):
        now = h.deadline() or 0.0
        outputs = h.tick(now)
    assert now == 32.0
    (bye,) = of_type(outputs, SendRequest)
    assert isinstance(bye, SendRequest)
    branch = bye.transaction_id.branch
    assert request_bytes(bye.request).decode() == (
        "BYE sip:100@192.0.2.50:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.9:5060;branch={branch};rport\r\n"
        "Route: <sip:192.0.2.1;lr>\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:101@example.com>;tag={tag}\r\n"
        "To: <sip:100@example.com>;tag=f1\r\n"
        "Call-ID: call1@192.0.2.50\r\n"
        "CSeq: 1 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert bye.flow == PROXY and bye.transaction_id == TransactionId(False, branch, "BYE")
    assert (ended(outputs).end_reason, ended(outputs).detail) == ("failed", "no ACK")


def test_an_invite_without_offer_gets_ours_and_the_answer_comes_in_the_ack() -> None:
    h = handset()
    tag = to_tag(responses(ringing(h, body=""))[1])
    outputs = h.handle(Answer(), 0.0)
    (ok,) = responses(outputs)
    assert b"m=audio 40000 RTP/AVP 0 8 101" in ok.body
    assert of_type(outputs, StartMedia) == []
    ack = sip_request("ACK", body=ANSWER, to_tag=tag, branch="z9hG4bKack")
    (start,) = h.handle(received(ack), 0.2)
    assert isinstance(start, StartMedia)
    assert (start.media.codec, start.media.remote_port) == ("PCMU", 31000)


def test_an_ack_without_the_answer_we_need_ends_the_call() -> None:
    h = handset()
    tag = to_tag(responses(ringing(h, body=""))[1])
    h.handle(Answer(), 0.0)
    ack = sip_request("ACK", body="", to_tag=tag, branch="z9hG4bKack")
    outputs = h.handle(received(ack), 0.2)
    assert (ended(outputs).end_reason, ended(outputs).detail) == ("failed", "no SDP answer")
    assert len(of_type(outputs, SendRequest)) == 1


# --- incoming: in the dialog ---------------------------------------------------------------


def test_a_bye_from_the_caller() -> None:
    h = handset()
    tag = active(h)
    outputs = h.handle(received(sip_request("BYE", 2, "", tag, "z9hG4bKbye")), 33.0)
    assert codes(outputs) == [200]
    assert of_type(outputs, StopMedia) == [StopMedia()]
    record = ended(outputs)
    assert record == replace(
        record,
        answered=int(OFFSET),
        ended=int(OFFSET) + 33,
        duration=33,
        codec="PCMA",
        end_reason="remote hangup",
        code=None,
    )
    assert h.status(34.0) == CallStatus("idle")


def test_a_request_matching_no_dialog_is_481() -> None:
    """RFC 4475 §3.1.1.1 (wsinv) is such a request: an INVITE with a To-tag of nobody's."""
    h = handset()
    outputs = ringing(h, to_tag="8321234356")
    assert codes(outputs) == [481]
    assert h.phase is Phase.IDLE


def test_a_lower_cseq_in_the_dialog_is_500() -> None:
    h = handset()
    tag = active(h)
    h.handle(received(sip_request("INFO", 5, "", tag, "z9hG4bKi5")), 1.0)
    outputs = h.handle(received(sip_request("INFO", 4, "", tag, "z9hG4bKi4")), 1.0)
    assert [(r.code, r.reason) for r in responses(outputs)] == [(500, "CSeq out of order")]


def test_a_hold_reinvite_is_answered_recvonly_and_its_200_waits_for_the_ack() -> None:
    h = handset()
    tag = active(h)
    hold = OFFER.replace("a=sendrecv", "a=sendonly").replace("o=- 5 5", "o=- 5 6")
    reinvite = sip_request("INVITE", 2, hold, tag, "z9hG4bKre")
    outputs = h.handle(received(reinvite), 10.0)
    (ok,) = responses(outputs)
    assert ok.code == 200 and to_tag(ok) == tag
    assert b"a=recvonly" in ok.body and b"o=- 1234 1235 IN IP4" in ok.body
    (update,) = of_type(outputs, UpdateMedia)
    assert isinstance(update, UpdateMedia) and update.media.direction == "recvonly"
    # Another INVITE before the ACK: 500 with Retry-After (§14.2).
    again = h.handle(received(sip_request("INVITE", 3, hold, tag, "z9hG4bKre2")), 10.1)
    assert codes(again) == [500]
    assert responses(again)[0].headers.get("Retry-After") is not None
    h.handle(received(sip_request("ACK", 2, "", tag, "z9hG4bKack2")), 10.2)
    assert Timer.RETRANSMIT not in h.pending()


def test_an_offer_in_the_early_dialog_waits_for_the_answer() -> None:
    h = handset()
    tag = to_tag(responses(ringing(h))[1])
    outputs = h.handle(received(sip_request("UPDATE", 2, OFFER, tag, "z9hG4bKup")), 1.0)
    assert codes(outputs) == [500] and of_type(outputs, StartMedia) == []
    assert responses(outputs)[0].headers.get("Retry-After") is not None


def test_rfc4475_inv2543_a_caller_without_from_tag_gets_a_call() -> None:
    """RFC 4475 §3.4.1: an RFC 2543 INVITE (no branch cookie, no From tag) still rings,
    and its BYE, also without a From tag, finds the dialog."""
    h = handset()
    old = sip_request(branch="2543branch")
    old = replace(
        old,
        headers=type(old.headers)(tuple((k, v.replace(";tag=f1", "")) for k, v in old.headers)),
    )
    outputs = h.handle(received(old), 0.0)
    assert codes(outputs) == [100, 180]
    tag = to_tag(responses(outputs)[1])
    h.handle(Answer(), 0.0)
    bye = sip_request("BYE", 2, "", tag, "z9hG4bKbye")
    bye = replace(
        bye,
        headers=type(bye.headers)(tuple((k, v.replace(";tag=f1", "")) for k, v in bye.headers)),
    )
    outputs = h.handle(received(bye), 5.0)
    assert codes(outputs) == [200] and ended(outputs).end_reason == "remote hangup"


def test_a_reinvite_we_cannot_take_keeps_the_session() -> None:
    h = handset()
    tag = active(h)
    outputs = h.handle(received(sip_request("INVITE", 2, NO_G711, tag, "z9hG4bKre")), 1.0)
    assert codes(outputs) == [488]
    assert h.phase is Phase.ACTIVE and h.status(1.0).codec == "PCMA"


def test_an_update_with_an_offer_is_answered_without_waiting_for_an_ack() -> None:
    h = handset()
    tag = active(h)
    moved = OFFER.replace("192.0.2.50", "192.0.2.51").replace("o=- 5 5", "o=- 5 6")
    outputs = h.handle(received(sip_request("UPDATE", 2, moved, tag, "z9hG4bKup")), 1.0)
    assert codes(outputs) == [200]
    (update,) = of_type(outputs, UpdateMedia)
    assert isinstance(update, UpdateMedia) and update.media.remote_address == "192.0.2.51"
    assert Timer.RETRANSMIT not in h.pending()


@pytest.mark.parametrize(
    ("content_type", "body", "code", "heard"),
    [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", 200, "5"),
        ("application/dtmf-relay", "Signal= #\r\nDuration=160\r\n", 200, "#"),
        ("application/dtmf-relay", "Signal=11\r\nDuration=160\r\n", 200, "#"),
        ("application/dtmf", "7", 200, "7"),
        ("application/dtmf-relay", "Signal=X\r\n", 400, ""),
        ("text/plain", "hello", 415, ""),
    ],
)
def test_dtmf_by_info(content_type: str, body: str, code: int, heard: str) -> None:
    h = handset()
    tag = active(h)
    info = sip_request("INFO", 2, body, tag, "z9hG4bKi", content_type=content_type)
    outputs = h.handle(received(info), 1.0)
    assert codes(outputs) == [code]
    assert of_type(outputs, DtmfReceived) == ([DtmfReceived(heard)] if heard else [])
    assert h.status(1.0).dtmf_received == heard


def test_dtmf_received_is_bounded_to_the_latest() -> None:
    h = handset(Options(max_dtmf_kept=4))
    active(h)
    h.handle(DtmfHeard("123"), 1.0)
    h.handle(DtmfHeard("45"), 1.0)
    assert h.status(1.0).dtmf_received == "2345"


def test_requests_outside_a_dialog() -> None:
    h = handset()
    options = h.handle(received(sip_request("OPTIONS", body="", branch="z9hG4bKo")), 0.0)
    bye = h.handle(received(sip_request("BYE", body="", branch="z9hG4bKb")), 0.0)
    assert (codes(options), codes(bye)) == ([200], [481])


def test_an_ack_of_nobody_is_never_answered() -> None:
    h = handset()
    assert h.handle(received(sip_request("ACK", body="", to_tag="x")), 0.0) == []


# --- incoming: ending an active call -----------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "end_reason"),
    [
        (Hangup(), "local hangup"),
        (SettingsChanged(False, 120, False), "disabled"),
        (Shutdown(), "shutdown"),
        (SettingsChanged(True, 120, False), "timeout"),  # at 130 s: already past
    ],
)
def test_an_active_call_ended_here_is_bye(
    act: Hangup | SettingsChanged | Shutdown, end_reason: str
) -> None:
    h = handset(settings=replace(ON, timeout=300))
    active(h)
    outputs = h.handle(act, 130.0)
    (bye,) = of_type(outputs, SendRequest)
    assert isinstance(bye, SendRequest) and bye.request.method == "BYE"
    assert StopMedia() in outputs
    assert (ended(outputs).end_reason, ended(outputs).duration) == (end_reason, 130)


def test_the_call_timeout_ends_the_call_at_answered_plus_timeout() -> None:
    h = handset(Options(media_timeout=1000.0))
    active(h, 2.0)
    assert h.pending()[Timer.CALL_TIMEOUT] == 122.0
    assert h.status(50.0).ends_at == int(OFFSET) + 122
    outputs = h.tick(122.0)
    assert ended(outputs).end_reason == "timeout"
    assert of_type(outputs, SendRequest)


def test_a_new_timeout_moves_ends_at() -> None:
    h = handset(Options(media_timeout=1000.0), replace(ON, timeout=120))
    active(h)
    assert h.handle(replace(ON, timeout=300), 100.0) == []
    assert h.pending()[Timer.CALL_TIMEOUT] == 300.0
    assert h.status(100.0).ends_at == int(OFFSET) + 300


def test_no_rtp_for_the_media_timeout_ends_the_call() -> None:
    h = handset(Options(media_timeout=30.0))
    active(h)
    h.handle(RtpArrived(), 20.0)
    assert h.tick(49.9) == []
    outputs = h.tick(50.0)
    assert ended(outputs).end_reason == "no media"


def test_a_call_on_hold_from_the_other_side_needs_no_rtp() -> None:
    h = handset(Options(media_timeout=30.0))
    tag = active(h)
    inactive = OFFER.replace("a=sendrecv", "a=inactive").replace("o=- 5 5", "o=- 5 6")
    h.handle(received(sip_request("UPDATE", 2, inactive, tag, "z9hG4bKup")), 1.0)
    assert Timer.MEDIA not in h.pending()


def test_a_call_held_sendonly_needs_no_rtp_until_it_is_resumed() -> None:
    """A sendonly hold: baresip 1.0.0, like many phones, sends nothing while it holds, so
    the media timeout waits for the resume, and counts from it."""
    h = handset(Options(media_timeout=30.0))
    tag = active(h)
    hold = OFFER.replace("a=sendrecv", "a=sendonly").replace("o=- 5 5", "o=- 5 6")
    h.handle(received(sip_request("INVITE", 2, hold, tag, "z9hG4bKre")), 1.0)
    h.handle(received(sip_request("ACK", 2, "", tag, "z9hG4bKack2")), 1.1)
    assert Timer.MEDIA not in h.pending()
    assert h.tick(60.0) == []  # twice the media timeout, before the call timeout (120)
    resume = OFFER.replace("o=- 5 5", "o=- 5 7")
    h.handle(received(sip_request("INVITE", 3, resume, tag, "z9hG4bKre3")), 70.0)
    h.handle(received(sip_request("ACK", 3, "", tag, "z9hG4bKack3")), 70.1)
    assert h.pending()[Timer.MEDIA] == 100.0
    assert ended(h.tick(100.0)).end_reason == "no media"


# --- outgoing --------------------------------------------------------------------------------

TARGET = Callee("sip:200@example.com", False)
CREDS = Credentials("101", "secret")


def dial(h: Handset, now: float = 0.0, creds: Credentials | None = CREDS) -> SendRequest:
    outputs = h.handle(Dial(TARGET, PROXY, HERE, "sip:101@example.com", creds), now)
    first = outputs[0]
    assert isinstance(first, SendRequest)
    assert outputs[1] == Calling(h.status(now))
    return first


def reply(
    invite: Request, code: int, reason: str, tag: str = "callee", body: str = "", extra: str = ""
) -> Response:
    lines = [f"SIP/2.0 {code} {reason}"]
    lines += [f"{k}: {v}" for k, v in invite.headers if k in ("Via", "From", "Call-ID", "CSeq")]
    lines.append(f"To: <sip:200@example.com>;tag={tag}")
    lines += [line for line in extra.split("\n") if line]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    response = text_message("\r\n".join(lines) + "\r\n\r\n" + body)
    assert isinstance(response, Response)
    return response


OK_EXTRA = (
    "Record-Route: <sip:p2.example.com;lr>\nRecord-Route: <sip:192.0.2.1;lr>\n"
    "Contact: <sip:200@192.0.2.70:5060>"
)


def test_dial_sends_an_invite_with_our_offer() -> None:
    h = handset()
    sent = dial(h)
    invite = sent.request
    tag = (invite.headers.get("From") or "").split("tag=")[1]
    call_id = invite.headers.get("Call-ID")
    branch = sent.transaction_id.branch
    assert request_bytes(replace(invite, body=b"")).decode() == (
        "INVITE sip:200@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.9:5060;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:101@example.com>;tag={tag}\r\n"
        "To: <sip:200@example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:101@192.0.2.9:5060;transport=udp>\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n"
        "User-Agent: intercom-sip\r\n"
        "Content-Type: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert b"m=audio 40000 RTP/AVP 0 8 101\r\n" in invite.body
    assert sent.transaction_id == TransactionId(False, branch, "INVITE")
    assert h.status(0.0).state == "calling"
    assert h.pending() == {Timer.NO_ANSWER: 60.0}


def test_180_then_200_acks_through_the_reversed_route_set_and_starts_media() -> None:
    h = handset()
    sent = dial(h)
    tid = sent.transaction_id
    assert h.handle(ResponseReceived(reply(sent.request, 180, "Ringing"), tid, OWNER), 1.0) == []
    ok = reply(sent.request, 200, "OK", body=ANSWER, extra=OK_EXTRA)
    outputs = h.handle(ResponseReceived(ok, tid, OWNER), 2.0)
    ack = outputs[0]
    assert isinstance(ack, SendAck) and ack.flow == PROXY
    from_ = sent.request.headers.get("From")
    assert request_bytes(ack.request).decode() == (
        "ACK sip:200@192.0.2.70:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.9:5060;rport\r\n"
        "Route: <sip:192.0.2.1;lr>\r\n"
        "Route: <sip:p2.example.com;lr>\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {from_}\r\n"
        "To: <sip:200@example.com>;tag=callee\r\n"
        f"Call-ID: {sent.request.headers.get('Call-ID')}\r\n"
        "CSeq: 1 ACK\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    (start,) = of_type(outputs, StartMedia)
    assert isinstance(start, StartMedia) and start.media.remote_address == "192.0.2.70"
    assert outputs[-1] == Answered(h.status(2.0))
    # The 2xx again: the same ACK again.
    assert h.handle(ResponseReceived(ok, tid, OWNER), 2.5) == [ack]


def test_a_2xx_of_another_fork_is_acked_and_hung_up() -> None:
    h = handset()
    sent = dial(h)
    tid = sent.transaction_id
    h.handle(
        ResponseReceived(reply(sent.request, 200, "OK", body=ANSWER, extra=OK_EXTRA), tid, OWNER),
        1.0,
    )
    other = reply(sent.request, 200, "OK", tag="fork2", body=ANSWER, extra=OK_EXTRA)
    outputs = h.handle(ResponseReceived(other, tid, OWNER), 1.1)
    assert [type(o) for o in outputs] == [SendAck, SendRequest]
    bye = outputs[1]
    assert isinstance(bye, SendRequest) and to_tag(bye.request) == "fork2"
    assert h.phase is Phase.ACTIVE


def test_a_challenge_is_answered_once_per_nonce() -> None:
    h = handset()
    sent = dial(h)
    challenge = 'Proxy-Authenticate: Digest realm="example.com", nonce="n1", qop="auth"'
    outputs = h.handle(
        ResponseReceived(
            reply(sent.request, 407, "Proxy Auth", extra=challenge), sent.transaction_id, OWNER
        ),
        0.1,
    )
    (again,) = outputs
    assert isinstance(again, SendRequest)
    invite = again.request
    assert invite.headers.get("CSeq") == "2 INVITE"
    assert invite.headers.get("Call-ID") == sent.request.headers.get("Call-ID")
    assert invite.headers.get("From") == sent.request.headers.get("From")
    authorization = invite.headers.get("Proxy-Authorization") or ""
    assert authorization.startswith('Digest username="101", realm="example.com", nonce="n1"')
    assert again.transaction_id != sent.transaction_id
    # The same nonce again: our credentials are refused.
    refused = h.handle(
        ResponseReceived(
            reply(invite, 407, "Proxy Auth", extra=challenge), again.transaction_id, OWNER
        ),
        0.2,
    )
    assert (ended(refused).end_reason, ended(refused).code) == ("failed", 407)


def test_challenges_are_answered_at_most_max_auth_times() -> None:
    h = handset(Options(max_auth=2))
    sent = dial(h)
    outputs: list[Output] = [sent]
    for n in range(3):
        last = outputs[-1]
        assert isinstance(last, SendRequest)
        extra = f'WWW-Authenticate: Digest realm="example.com", nonce="n{n}"'
        outputs = h.handle(
            ResponseReceived(
                reply(last.request, 401, "Unauthorized", extra=extra), last.transaction_id, OWNER
            ),
            0.1,
        )
    assert ended(outputs).code == 401


def test_an_acked_invite_carries_the_credentials_in_its_ack() -> None:
    h = handset()
    sent = dial(h)
    challenge = 'Proxy-Authenticate: Digest realm="example.com", nonce="n1"'
    (again,) = h.handle(
        ResponseReceived(
            reply(sent.request, 407, "P", extra=challenge), sent.transaction_id, OWNER
        ),
        0.1,
    )
    assert isinstance(again, SendRequest)
    ok = reply(again.request, 200, "OK", body=ANSWER, extra=OK_EXTRA)
    ack = h.handle(ResponseReceived(ok, again.transaction_id, OWNER), 0.2)[0]
    assert isinstance(ack, SendAck)
    assert ack.request.headers.get("CSeq") == "2 ACK"
    assert ack.request.headers.get("Proxy-Authorization") == again.request.headers.get(
        "Proxy-Authorization"
    )


@pytest.mark.parametrize(
    ("code", "reason", "end_reason"),
    [
        (486, "Busy Here", "busy"),
        (600, "Busy Everywhere", "busy"),
        (603, "Decline", "declined"),
        (480, "Temporarily Unavailable", "no answer"),
        (404, "Not Found", "failed"),
        (500, "Server Internal Error", "failed"),
        (302, "Moved Temporarily", "failed"),
    ],
)
def test_a_final_failure_ends_the_call_with_its_code(
    code: int, reason: str, end_reason: str
) -> None:
    h = handset()
    sent = dial(h)
    outputs = h.handle(
        ResponseReceived(reply(sent.request, code, reason), sent.transaction_id, OWNER), 3.0
    )
    record = ended(outputs)
    assert (record.end_reason, record.code, record.reason) == (end_reason, code, reason)
    assert (record.direction, record.remote, record.answered) == ("out", TARGET.uri, None)


def test_hangup_while_calling_cancels_and_a_late_2xx_is_acked_and_hung_up() -> None:
    h = handset()
    sent = dial(h)
    outputs = h.handle(Hangup(), 1.0)
    assert outputs[0] == SendCancel(sent.transaction_id)
    assert ended(outputs).end_reason == "local hangup"
    late = reply(sent.request, 200, "OK", body=ANSWER, extra=OK_EXTRA)
    assert [
        type(o) for o in h.handle(ResponseReceived(late, sent.transaction_id, OWNER), 1.1)
    ] == [
        SendAck,
        SendRequest,
    ]


def test_abandoned_invites_are_bounded() -> None:
    h = handset()
    sent = []
    for n in range(MAX_ABANDONED + 1):
        sent.append(dial(h, float(n)))
        h.handle(Hangup(), float(n))
    # Only the latest MAX_ABANDONED are still remembered.
    oldest, newest = sent[0], sent[-1]
    late_old = reply(oldest.request, 200, "OK", body=ANSWER, extra=OK_EXTRA)
    late_new = reply(newest.request, 200, "OK", body=ANSWER, extra=OK_EXTRA)
    assert h.handle(ResponseReceived(late_old, oldest.transaction_id, OWNER), 9.0) == []
    assert len(h.handle(ResponseReceived(late_new, newest.transaction_id, OWNER), 9.0)) == 2


def test_unanswered_outgoing_is_cancelled_after_the_dial_time() -> None:
    h = handset(Options(dial_time=45.0))
    sent = dial(h)
    outputs = h.tick(45.0)
    assert outputs[0] == SendCancel(sent.transaction_id)
    assert ended(outputs).end_reason == "no answer"


def test_an_invite_that_times_out_fails() -> None:
    h = handset()
    sent = dial(h)
    outputs = h.handle(TransactionTimedOut(sent.transaction_id, OWNER), 32.0)
    assert (ended(outputs).end_reason, ended(outputs).detail) == ("failed", "timeout")


# How a client transaction of ours ends without a final response: the core's two events
# as the core gives them, and the shell's own when the core would not start it.
FAILURES: list[tuple[Callable[[TransactionId], Input], str]] = [
    (lambda tid: TransactionTimedOut(tid, OWNER), "timeout"),
    (lambda tid: TransportError(tid, OWNER), "transport error"),
    (NotStarted, "overload"),
]


@pytest.mark.parametrize(("failure", "detail"), FAILURES, ids=[d for _, d in FAILURES])
def test_an_invite_that_fails_says_how(
    failure: Callable[[TransactionId], Input], detail: str
) -> None:
    h = handset()
    sent = dial(h)
    record = ended(h.handle(failure(sent.transaction_id), 1.0))
    assert (record.end_reason, record.detail) == ("failed", detail)


@pytest.mark.parametrize(("failure", "detail"), FAILURES, ids=[d for _, d in FAILURES])
def test_an_info_that_fails_ends_the_call_saying_how(
    failure: Callable[[TransactionId], Input], detail: str
) -> None:
    h = handset()
    outgoing_active(h)
    (info,) = h.handle(Dtmf("1"), 2.0)
    assert isinstance(info, SendRequest) and info.request.method == "INFO"
    outputs = h.handle(failure(info.transaction_id), 2.1)
    assert [o.request.method for o in outputs if isinstance(o, SendRequest)] == ["BYE"]
    assert (ended(outputs).end_reason, ended(outputs).detail) == ("failed", f"INFO {detail}")


def test_a_2xx_whose_answer_we_cannot_take_is_acked_then_hung_up() -> None:
    h = handset()
    sent = dial(h)
    bad = ANSWER.replace("RTP/AVP 0", "RTP/AVP 9").replace("a=rtpmap:0 PCMU/8000\r\n", "")
    outputs = h.handle(
        ResponseReceived(
            reply(sent.request, 200, "OK", body=bad, extra=OK_EXTRA), sent.transaction_id, OWNER
        ),
        1.0,
    )
    assert [type(o) for o in outputs] == [SendAck, SendRequest, StopMedia, Ended]
    assert ended(outputs).end_reason == "failed"


# --- DTMF sent --------------------------------------------------------------------------------


def outgoing_active(h: Handset, answer: str = ANSWER) -> SendRequest:
    sent = dial(h)
    ok = reply(sent.request, 200, "OK", body=answer, extra=OK_EXTRA)
    h.handle(ResponseReceived(ok, sent.transaction_id, OWNER), 1.0)
    return sent


def test_dtmf_goes_by_rfc_4733_when_negotiated() -> None:
    h = handset()
    events = ANSWER.replace("RTP/AVP 0", "RTP/AVP 0 101") + "a=rtpmap:101 telephone-event/8000\r\n"
    outgoing_active(h, events)
    assert h.handle(Dtmf("1#"), 2.0) == [SendDtmf("1#")]


def test_dtmf_goes_by_info_one_digit_at_a_time_otherwise() -> None:
    h = handset()
    outgoing_active(h)
    (first,) = h.handle(Dtmf("1#"), 2.0)
    assert isinstance(first, SendRequest)
    assert first.request.method == "INFO" and first.request.body == b"Signal=1\r\nDuration=100\r\n"
    assert first.request.headers.get("Content-Type") == "application/dtmf-relay"
    ok = text_message(
        "SIP/2.0 200 OK\r\nVia: x\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 2 INFO\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert isinstance(ok, Response)
    (second,) = h.handle(ResponseReceived(ok, first.transaction_id, OWNER), 2.1)
    assert isinstance(second, SendRequest) and second.request.body.startswith(b"Signal=#")
    assert second.request.headers.get("CSeq") == "3 INFO"
    assert h.handle(ResponseReceived(ok, second.transaction_id, OWNER), 2.2) == []


def test_the_info_queue_is_bounded() -> None:
    h = handset(Options(max_dtmf_waiting=4))
    outgoing_active(h)
    assert len(h.handle(Dtmf("1234"), 2.0)) == 1  # one sent, three waiting
    assert h.handle(Dtmf("56"), 2.0) == [Refused(TOO_MANY_DIGITS)]
    assert h.handle(Dtmf("5"), 2.0) == []


# --- API refusals ----------------------------------------------------------------------------


def test_what_the_api_cannot_do_now() -> None:
    h = handset()
    assert h.handle(Answer(), 0.0) == [Refused(NO_CALL)]
    assert h.handle(Hangup(), 0.0) == [Refused(NO_CALL)]
    assert h.handle(Dtmf("1"), 0.0) == [Refused(NO_CALL)]
    ringing(h)
    assert h.handle(Dtmf("1"), 0.0) == [Refused(NO_CALL)]
    assert h.handle(Dial(TARGET, PROXY, HERE, "sip:101@example.com"), 0.0) == [Refused(BUSY)]
    h.handle(Answer(), 0.0)
    assert h.handle(Answer(), 0.0) == [Refused(NO_CALL)]
    assert h.handle(Dtmf("12x"), 0.0) == [Refused(WRONG_DIGITS)]
    assert h.handle(Dtmf("1" * 33), 0.0) == [Refused(WRONG_DIGITS)]


def test_after_shutdown_no_new_call() -> None:
    h = handset()
    h.handle(Shutdown(), 0.0)
    assert h.handle(Dial(TARGET, PROXY, HERE, "sip:101@example.com"), 0.0) == [Refused(BUSY)]
    outputs = ringing(h, 1.0)
    assert codes(outputs) == [480]
    rejected = of_type(outputs, Rejected)[0]
    assert isinstance(rejected, Rejected) and rejected.record.end_reason == "shutdown"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("200", Callee("sip:200@example.com", False)),
        ("sip:192.0.2.60", Callee("sip:192.0.2.60", True)),
        ("sip:door@example.com", Callee("sip:door@example.com", False)),
        ("sip:door@example.com:5070", Callee("sip:door@example.com:5070", False)),
        ("sip:256.0.0.1", None),
        ("12a", None),
        ("", None),
        ("tel:200", None),
        ("1" * 33, None),
    ],
)
def test_the_numbers_dial_takes(number: str, expected: Callee | None) -> None:
    assert target_of(number, "example.com") == expected


def test_an_sdp_module_sanity_check() -> None:
    assert isinstance(sdp.parse(OFFER.encode()), sdp.SessionDescription)


# --- §6.10: OPTIONS as an INVITE would be answered ---------------------------------------------


def options_answer(h: Handset) -> str:
    outputs = h.handle(received(sip_request("OPTIONS", body="", branch="z9hG4bKo")), 5.0)
    (response,) = responses(outputs)
    text = response_bytes(response).decode()
    return text.replace(f";tag={to_tag(response)}", ";tag=T")


def capabilities(status: str) -> str:
    return (
        f"SIP/2.0 {status}\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKo\r\n"
        "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKpanel\r\n"
        'From: "Door" <sip:100@example.com>;tag=f1\r\n'
        "To: <sip:101@example.com>;tag=T\r\n"
        "Call-ID: call1@192.0.2.50\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n"
        "Accept: application/sdp\r\n"
        "Supported: \r\n"
        "Content-Length: 0\r\n\r\n"
    )


def test_options_while_idle_is_200_with_allow_accept_supported() -> None:
    assert options_answer(handset()) == capabilities("200 OK")


def test_options_while_busy_is_486() -> None:
    h = handset()
    active(h)
    assert options_answer(h) == capabilities("486 Busy Here")
    assert h.phase is Phase.ACTIVE  # the call goes on


def test_options_while_ringing_is_486() -> None:
    h = handset()
    ringing(h, branch="z9hG4bKinv")
    assert options_answer(h) == capabilities("486 Busy Here")


def test_options_while_disabled_is_480_and_logged_nowhere() -> None:
    h = handset(settings=replace(ON, enabled=False))
    outputs = h.handle(received(sip_request("OPTIONS", body="", branch="z9hG4bKo")), 5.0)
    assert of_type(outputs, Rejected) == []
    assert options_answer(h) == capabilities("480 Temporarily Unavailable")


# --- §6.9: auto-answer sends no media before the ACK ------------------------------------------


def test_auto_answer_starts_the_media_only_at_the_ack_with_our_tag() -> None:
    h = handset(Options(auto_answer_delay=1.0), replace(ON, auto_answer=True))
    tag = to_tag(responses(ringing(h))[1])
    answered = h.tick(1.0)
    assert codes(answered) == [200]
    assert of_type(answered, StartMedia) == []
    assert Timer.MEDIA not in h.pending()
    # The status already names the codec agreed in our 200 (the API shows an active call).
    assert (h.status(1.5).state, h.status(1.5).codec) == ("active", "PCMA")
    stranger = sip_request("ACK", body="", to_tag="guessed", branch="z9hG4bKack")
    assert h.handle(received(stranger), 2.0) == []
    outputs = h.handle(received(sip_request("ACK", body="", to_tag=tag, branch="z9hG4bKa")), 3.0)
    (start,) = outputs
    assert isinstance(start, StartMedia) and start.media.remote_port == 30000
    assert h.pending()[Timer.MEDIA] == 3.0 + DEFAULT_OPTIONS.media_timeout


def test_auto_answer_without_ack_never_starts_the_media() -> None:
    h = handset(Options(auto_answer_delay=1.0), replace(ON, auto_answer=True))
    ringing(h)
    outputs = h.tick(1.0)
    for at in (1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5, 33.0):
        outputs += h.tick(at)
    assert of_type(outputs, StartMedia) == []
    assert ended(outputs).detail == "no ACK"


def test_a_manual_answer_still_starts_the_media_at_the_200() -> None:
    h = handset()
    ringing(h)
    assert len(of_type(h.handle(Answer(), 1.0), StartMedia)) == 1


# --- §6.10: redirects ---------------------------------------------------------------------------


def redirect(sent: SendRequest, contact: str, code: int = 302) -> ResponseReceived:
    reason = "Moved Temporarily" if code == 302 else "Moved Permanently"
    response = reply(sent.request, code, reason, extra=f"Contact: {contact}")
    return ResponseReceived(response, sent.transaction_id, OWNER)


def test_a_302_is_followed_to_its_first_contact_in_the_same_call() -> None:
    h = handset()
    sent = dial(h)
    contacts = '"Flat 2" <sip:201@192.0.2.80:5070;transport=udp?Subject=x>;q=0.9, <sip:x@y>'
    (again,) = h.handle(redirect(sent, contacts), 1.0)
    assert isinstance(again, SendRequest) and again.flow == PROXY
    first, second = sent.request, again.request
    assert second.uri == "sip:201@192.0.2.80:5070;transport=udp"
    for name in ("From", "To", "Call-ID", "Contact", "Content-Type"):
        assert second.headers.get(name) == first.headers.get(name), name
    assert second.headers.get("CSeq") == "2 INVITE"
    assert again.transaction_id != sent.transaction_id
    assert second.body == first.body
    assert h.status(1.0).state == "calling"
    assert h.status(1.0).remote == TARGET.uri
    ok = reply(second, 200, "OK", body=ANSWER, extra=OK_EXTRA)
    outputs = h.handle(ResponseReceived(ok, again.transaction_id, OWNER), 2.0)
    assert outputs[-1] == Answered(h.status(2.0))


def test_a_301_with_an_addr_spec_list_is_followed_too() -> None:
    h = handset()
    sent = dial(h)
    (again,) = h.handle(redirect(sent, "sip:a@192.0.2.81, sip:b@192.0.2.82", 301), 1.0)
    assert isinstance(again, SendRequest) and again.request.uri == "sip:a@192.0.2.81"


def test_at_most_three_redirects_then_failed_with_the_last_code() -> None:
    h = handset()
    sent = dial(h)
    followed = []
    for n in range(1, 5):
        outputs = h.handle(redirect(sent, f"<sip:r{n}@192.0.2.80>"), float(n))
        if not outputs or not isinstance(outputs[0], SendRequest):
            break
        sent = outputs[0]
        followed.append(sent.request.uri)
    assert followed == ["sip:r1@192.0.2.80", "sip:r2@192.0.2.80", "sip:r3@192.0.2.80"]
    record = ended(outputs)
    assert (record.end_reason, record.code, record.reason) == ("failed", 302, "Moved Temporarily")
    assert record.detail == "too many redirects"
    assert h.phase is Phase.IDLE


@pytest.mark.parametrize("contact", ["<sip:200@example.com>", "<sip:r1@192.0.2.80>"])
def test_a_redirect_never_goes_to_the_same_uri_twice(contact: str) -> None:
    h = handset()
    sent = dial(h)
    (again,) = h.handle(redirect(sent, "<sip:r1@192.0.2.80>"), 1.0)
    assert isinstance(again, SendRequest)
    outputs = h.handle(redirect(again, contact), 2.0)
    record = ended(outputs)
    assert (record.end_reason, record.code, record.detail) == ("failed", 302, "redirect loop")
    assert of_type(outputs, SendRequest) == []


@pytest.mark.parametrize("contact", ["", "<tel:+4930123>", "<sips:a@b>"])
def test_a_redirect_we_cannot_follow_fails(contact: str) -> None:
    h = handset()
    sent = dial(h)
    response = reply(sent.request, 302, "Moved Temporarily", extra=f"Contact: {contact}")
    if not contact:
        response = reply(sent.request, 302, "Moved Temporarily")
    record = ended(h.handle(ResponseReceived(response, sent.transaction_id, OWNER), 1.0))
    assert (record.end_reason, record.code, record.detail) == (
        "failed",
        302,
        "redirect without Contact",
    )


# --- §6.10: a call's flow moved by the shell --------------------------------------------------

TCP_OLD = Channel("old connection", True, ("192.0.2.1", 5060))
TCP_NEW = Channel("new connection", True, ("192.0.2.1", 5060))


def test_after_the_flow_moved_the_calls_requests_go_on_the_new_one() -> None:
    h = handset()
    outputs = h.handle(Dial(TARGET, TCP_OLD, HERE, "sip:101@example.com", CREDS), 0.0)
    sent = outputs[0]
    assert isinstance(sent, SendRequest)
    ok = reply(sent.request, 200, "OK", body=ANSWER, extra=OK_EXTRA)
    h.handle(ResponseReceived(ok, sent.transaction_id, OWNER), 1.0)
    assert h.handle(FlowMoved(TCP_NEW, TCP_OLD), 2.0) == []  # not the call's: ignored
    assert h.handle(FlowMoved(TCP_OLD, TCP_NEW), 2.0) == []
    again = h.handle(
        ResponseReceived(ok, sent.transaction_id, OWNER), 2.5
    )  # a 2xx again: the ACK again
    assert [type(o) for o in again] == [SendAck] and again[0].flow == TCP_NEW  # type: ignore[union-attr]
    bye = h.handle(Hangup(), 3.0)[0]
    assert isinstance(bye, SendRequest) and bye.flow == TCP_NEW
    assert bye.request.method == "BYE"


# --- the handset holds its call's session by dialog id ------------------------------------------


def test_a_request_naming_the_call_with_another_tag_is_481_and_the_call_goes_on() -> None:
    h = handset()
    tag = active(h)
    ours = sip_request("BYE", 2, "", tag, "z9hG4bKb")
    theirs = '"Door" <sip:100@example.com>;tag=f2'
    other_from = replace(ours, headers=with_header(ours.headers, "From", theirs))
    other_to = sip_request("BYE", 2, "", "not-" + tag, "z9hG4bKb")
    for request in (other_from, other_to):
        outputs = h.handle(received(request), 1.0)
        assert [(r.code, r.reason) for r in responses(outputs)] == [
            (481, "Call/Transaction Does Not Exist")
        ]
    assert h.phase is Phase.ACTIVE and h.status(1.0).state == "active"


def with_header(headers: Headers, name: str, value: str) -> Headers:
    return Headers(tuple((k, value if k == name else v) for k, v in headers))


def test_the_callee_before_its_2xx_finds_no_dialog_and_the_call_goes_on() -> None:
    h = handset()
    sent = dial(h)
    our_tag = (sent.request.headers.get("From") or "").split("tag=")[1]
    call_id = sent.request.headers.get("Call-ID") or ""
    bye = sip_request("BYE", 1, "", our_tag, "z9hG4bKcallee")
    bye = replace(bye, headers=with_header(bye.headers, "Call-ID", call_id))
    assert codes(h.handle(received(bye), 1.0)) == [481]
    assert h.phase is Phase.CALLING
