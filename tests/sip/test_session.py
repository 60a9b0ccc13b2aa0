"""The INVITE session's table (`sip/session.py`) tested directly: its rows, the one
answer of every (state, event) pair without a row, the kinds events are read as, and
both roles walked through their states. The handset's behaviour over it is
`test_call.py`'s."""

import random
from collections.abc import Callable
from typing import Any

import pytest

from intercom_sip.sip.callevents import (
    DEFAULT_OPTIONS,
    NO_CALL,
    Answer,
    Dial,
    Dtmf,
    Hangup,
    Refused,
    Respond,
    SendAck,
    SendCancel,
    SendRequest,
    StartMedia,
    StopMedia,
)
from intercom_sip.sip.core import CancelReceived, ResponseReceived, TransactionTimedOut
from intercom_sip.sip.message import response_bytes
from intercom_sip.sip.session import TABLE, Session, incoming, outgoing
from intercom_sip.sip.sessionevents import (
    AutoAnswer,
    Connected,
    End,
    GiveUp,
    Over,
    PeerAck,
    PeerRequest,
    Retransmit,
    Role,
    SessionEvent,
    SessionState,
    Steps,
)
from intercom_sip.sip.transactions import TransactionId
from tests.sip.test_call import (
    ANSWER,
    CREDS,
    HERE,
    INVITE_TID,
    OK_EXTRA,
    OWNER,
    PROXY,
    TARGET,
    received,
    reply,
    sip_request,
    tid_of,
)

S, E = SessionState, SessionEvent
OUR_TAG = "a1b2c3d4"

# Every row of the table: a state, then its events (`>next` when the event moves it).
ROWS = """
ringing      ANSWER>answered AUTO_ANSWER>answered HANGUP>ended END>ended CANCELLED>ended
             BYE>ended REINVITE REINVITE_REFUSED UPDATE UPDATE_REFUSED
             INFO OPTIONS UPDATE_REFRESH OTHER_REQUEST BAD_SEQUENCE
calling      PROVISIONAL SUCCESS>confirmed SUCCESS_UNUSABLE>ended CHALLENGE REDIRECT
             REFUSED>ended INVITE_FAILED>ended GIVE_UP>ended HANGUP>terminating
             END>terminating
terminating  SUCCESS
answered     ACK>confirmed RETRANSMIT REINVITE REINVITE_REFUSED UPDATE UPDATE_REFUSED
             INFO OPTIONS UPDATE_REFRESH OTHER_REQUEST BAD_SEQUENCE
             BYE>ended HANGUP>ended END>ended DTMF INFO_DONE INFO_GONE INFO_FAILED
             SUCCESS SUCCESS_UNUSABLE
confirmed    REINVITE>answered REINVITE_REFUSED UPDATE UPDATE_REFUSED
             INFO OPTIONS UPDATE_REFRESH OTHER_REQUEST BAD_SEQUENCE
             BYE>ended HANGUP>ended END>ended DTMF INFO_DONE INFO_GONE INFO_FAILED
             SUCCESS SUCCESS_UNUSABLE
ended
"""


def expected_rows() -> dict[tuple[SessionState, SessionEvent], SessionState | None]:
    rows: dict[tuple[SessionState, SessionEvent], SessionState | None] = {}
    state = S.ENDED
    for line in ROWS.strip().splitlines():
        words = line.split()
        if not line.startswith(" "):
            state, words = S(words[0]), words[1:]
        for word in words:
            kind, _, next_state = word.partition(">")
            rows[(state, E[kind])] = S(next_state) if next_state else None
    return rows


def test_the_table_has_exactly_these_rows() -> None:
    assert {pair: row.next for pair, row in TABLE.items()} == expected_rows()


# --- sessions in each state, made by walking real messages ----------------------------------


def ringing_session() -> tuple[Session, Steps]:
    made = incoming(received(sip_request()), INVITE_TID, OUR_TAG, DEFAULT_OPTIONS, rng())
    assert not isinstance(made, Exception) and isinstance(made, tuple), made
    return made


def calling_session() -> tuple[Session, Steps]:
    dial = Dial(TARGET, PROXY, HERE, "sip:101@example.com", CREDS)
    return outgoing(dial, DEFAULT_OPTIONS, rng())


def rng() -> random.Random:
    return random.Random(7)


def ack(cseq: int = 1, body: str = "") -> PeerAck:
    return PeerAck(sip_request("ACK", cseq, body, OUR_TAG, "z9hG4bKack"))


def peer(method: str, cseq: int = 2, body: str = "", branch: str = "z9hG4bKp") -> PeerRequest:
    request = sip_request(method, cseq, body, OUR_TAG, branch)
    return PeerRequest(request, tid_of(request), "t481")


def answered_to(
    session: Session, code: int = 200, reason: str = "OK", **kw: Any
) -> ResponseReceived:
    return ResponseReceived(reply(session.invite, code, reason, **kw), session.invite_tid, OWNER)


def in_state(state: SessionState) -> Session:
    """A session brought into `state` by the events that lead there."""
    if state in (S.CALLING, S.TERMINATING):
        session = calling_session()[0]
        if state is S.TERMINATING:
            session.handle(Hangup(), 1.0)
        return session
    session = ringing_session()[0]
    leads: dict[SessionState, list[Any]] = {
        S.ANSWERED: [Answer()],
        S.CONFIRMED: [Answer(), ack()],
        S.ENDED: [Answer(), ack(), peer("BYE")],
    }
    for event in leads.get(state, []):
        session.handle(event, 1.0)
    assert session.state is state
    return session


@pytest.mark.parametrize("state", list(S))
def test_each_state_is_reached_by_its_events(state: SessionState) -> None:
    assert in_state(state).state is state


# --- the pairs without a row: one answer -----------------------------------------------------

REQUEST_KINDS = {
    E.BYE: "BYE",
    E.INFO: "INFO",
    E.OPTIONS: "OPTIONS",
    E.REINVITE: "INVITE",
    E.REINVITE_REFUSED: "INVITE",
    E.UPDATE: "UPDATE",
    E.UPDATE_REFUSED: "UPDATE",
    E.UPDATE_REFRESH: "UPDATE",
    E.OTHER_REQUEST: "MESSAGE",
    E.BAD_SEQUENCE: "BYE",
}


def request_sample(method: str) -> Callable[[], PeerRequest]:
    return lambda: peer(method)


OTHER_TID = TransactionId(False, "z9hG4bKother", "INVITE")
SAMPLES: dict[SessionEvent, Callable[[], Any]] = {
    **{kind: request_sample(method) for kind, method in REQUEST_KINDS.items()},
    E.ACK: ack,
    E.STRAY_ACK: lambda: ack(9),
    E.CANCELLED: lambda: CancelReceived(INVITE_TID, OWNER),
    **{
        kind: (lambda: ResponseReceived(reply(sip_request(), 200, "OK"), OTHER_TID, OWNER))
        for kind in (
            E.PROVISIONAL,
            E.SUCCESS,
            E.SUCCESS_UNUSABLE,
            E.CHALLENGE,
            E.REDIRECT,
            E.REFUSED,
            E.INFO_DONE,
            E.INFO_GONE,
            E.STRAY,
        )
    },
    E.INVITE_FAILED: lambda: TransactionTimedOut(OTHER_TID, OWNER),
    E.INFO_FAILED: lambda: TransactionTimedOut(OTHER_TID, OWNER),
    E.ANSWER: Answer,
    E.AUTO_ANSWER: AutoAnswer,
    E.HANGUP: Hangup,
    E.END: lambda: End("timeout"),
    E.GIVE_UP: lambda: GiveUp(Over("failed")),
    E.DTMF: lambda: Dtmf("1"),
    E.RETRANSMIT: Retransmit,
}


def no_dialog(method: str) -> str:
    return (
        "SIP/2.0 481 Call/Transaction Does Not Exist\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp\r\n"
        "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKpanel\r\n"
        'From: "Door" <sip:100@example.com>;tag=f1\r\n'
        f"To: <sip:101@example.com>;tag={OUR_TAG}\r\n"
        "Call-ID: call1@192.0.2.50\r\n"
        f"CSeq: 2 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )


def test_every_event_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(E)


MISSING = [(state, kind) for state in S for kind in E if (state, kind) not in TABLE]
MISSING_IDS = [f"{state.name}-{kind.name}" for state, kind in MISSING]


@pytest.mark.parametrize(("state", "kind"), MISSING, ids=MISSING_IDS)
def test_a_pair_without_a_row_gets_the_one_answer(state: SessionState, kind: SessionEvent) -> None:
    session = in_state(state)
    before = (session.dialog, session.two_xx, session.media, session.invite_tid)
    steps = session.step(kind, SAMPLES[kind](), 5.0)
    if kind in REQUEST_KINDS:  # the request finds no dialog in that state
        (respond,) = steps
        assert isinstance(respond, Respond)
        assert response_bytes(respond.response).decode() == no_dialog(REQUEST_KINDS[kind])
    elif kind in (E.ANSWER, E.DTMF):  # the API finds no call to act on
        assert steps == [Refused(NO_CALL)]
    else:  # an ACK, a response, a timer of nothing pending: absorbed
        assert steps == []
    assert session.state is state
    assert (session.dialog, session.two_xx, session.media, session.invite_tid) == before


def test_the_missing_pairs_are_the_table_complement() -> None:
    assert len(MISSING) + len(TABLE) == len(S) * len(E)
    assert len(TABLE) == len(expected_rows())


# --- the kinds events are read as --------------------------------------------------------------


def test_the_peers_requests_by_method_cseq_and_offer() -> None:
    session = in_state(S.CONFIRMED)
    offer = sip_request().body.decode()
    refused = offer.replace("RTP/AVP 8 0 101", "RTP/AVP 9")
    kinds = {
        "re-INVITE with an offer": session.kind_of(peer("INVITE", 2, offer)),
        "re-INVITE without": session.kind_of(peer("INVITE", 2)),
        "re-INVITE refused": session.kind_of(peer("INVITE", 2, refused)),
        "UPDATE without a body": session.kind_of(peer("UPDATE", 2)),
        "UPDATE refused": session.kind_of(peer("UPDATE", 2, refused)),
        "a lower CSeq": session.kind_of(peer("BYE", 0)),
        "REFER": session.kind_of(peer("REFER", 2)),
        "the ACK of nothing": session.kind_of(ack()),
    }
    assert kinds == {
        "re-INVITE with an offer": E.REINVITE,
        "re-INVITE without": E.REINVITE,
        "re-INVITE refused": E.REINVITE_REFUSED,
        "UPDATE without a body": E.UPDATE_REFRESH,
        "UPDATE refused": E.UPDATE_REFUSED,
        "a lower CSeq": E.BAD_SEQUENCE,
        "REFER": E.OTHER_REQUEST,
        "the ACK of nothing": E.STRAY_ACK,
    }


@pytest.mark.parametrize(
    ("code", "extra", "kind"),
    [
        (180, "", E.PROVISIONAL),
        (200, OK_EXTRA, E.SUCCESS),
        (401, "", E.CHALLENGE),
        (407, "", E.CHALLENGE),
        (302, "", E.REDIRECT),
        (486, "", E.REFUSED),
    ],
)
def test_what_became_of_our_invite(code: int, extra: str, kind: SessionEvent) -> None:
    session = in_state(S.CALLING)
    assert session.kind_of(answered_to(session, code, "R", extra=extra)) == kind


def test_a_2xx_without_to_tag_is_unusable_and_ends_the_call() -> None:
    session = in_state(S.CALLING)
    untagged = answered_to(session, tag="")
    assert session.kind_of(untagged) == E.SUCCESS_UNUSABLE
    assert session.handle(untagged, 1.0) == [Over("failed", 200, "OK", "Bad From or To")]
    assert session.state is S.ENDED


def test_responses_and_failures_of_nobody_are_stray() -> None:
    session = in_state(S.CONFIRMED)
    stray = ResponseReceived(reply(sip_request(), 200, "OK"), OTHER_TID, OWNER)
    assert session.kind_of(stray) == E.STRAY
    assert session.kind_of(TransactionTimedOut(OTHER_TID, OWNER)) == E.STRAY
    assert session.kind_of(CancelReceived(OTHER_TID, OWNER)) == E.STRAY


# --- both roles walked through the table ---------------------------------------------------------


def kinds_of(steps: Steps) -> list[str]:
    return [type(step).__name__ for step in steps]


def codes(steps: Steps) -> list[int]:
    return [step.response.code for step in steps if isinstance(step, Respond)]


def test_incoming_rings_answers_confirms_renegotiates_and_ends() -> None:
    session, steps = ringing_session()
    assert session.role is Role.INCOMING and session.id == ("call1@192.0.2.50", OUR_TAG)
    assert codes(steps) == [100, 180]
    trail = [session.state]
    assert kinds_of(session.handle(Answer(), 1.0)) == ["Respond", "Connected", "StartMedia"]
    trail.append(session.state)
    assert session.deadline() == 1.5  # T1: the 2xx again until the ACK
    assert session.handle(ack(), 1.2) == []
    trail.append(session.state)
    assert session.deadline() is None
    steps = session.handle(peer("INVITE", 2, branch="z9hG4bKre"), 2.0)  # no offer: ours
    assert codes(steps) == [200]
    trail.append(session.state)
    steps = session.handle(ack(2, ANSWER), 2.1)  # the answer in the ACK
    assert kinds_of(steps) == ["UpdateMedia"]
    trail.append(session.state)
    steps = session.handle(peer("BYE", 3), 3.0)
    assert kinds_of(steps) == ["Respond", "StopMedia", "Over"] and steps[-1] == Over(
        "remote hangup"
    )
    trail.append(session.state)
    assert trail == [S.RINGING, S.ANSWERED, S.CONFIRMED, S.ANSWERED, S.CONFIRMED, S.ENDED]


def test_a_refused_offer_keeps_the_confirmed_session_as_it_was() -> None:
    session = in_state(S.CONFIRMED)
    media = session.media
    refused = sip_request().body.decode().replace("RTP/AVP 8 0 101", "RTP/AVP 9")
    steps = session.handle(peer("INVITE", 2, refused), 2.0)
    assert codes(steps) == [488]
    assert (session.state, session.media, session.two_xx) == (S.CONFIRMED, media, None)


def test_a_stale_ack_leaves_the_2xx_waiting() -> None:
    session = in_state(S.ANSWERED)
    assert session.handle(ack(7), 1.1) == []
    assert session.state is S.ANSWERED and session.deadline() == 1.5


def test_no_ack_for_64_t1_is_a_bye_through_the_end_row() -> None:
    session = in_state(S.ANSWERED)
    steps: Steps = []
    while session.state is S.ANSWERED:
        deadline = session.deadline()
        assert deadline is not None
        steps = session.handle(Retransmit(), deadline)
    assert kinds_of(steps) == ["SendRequest", "StopMedia", "Over"]
    assert steps[-1] == Over("failed", detail="no ACK") and session.state is S.ENDED


def test_outgoing_answers_the_challenge_then_connects() -> None:
    session, steps = calling_session()
    assert session.role is Role.OUTGOING and kinds_of(steps) == ["SendRequest"]
    challenge = 'WWW-Authenticate: Digest realm="example.com", nonce="n1"'
    again = session.handle(answered_to(session, 401, "Unauthorized", extra=challenge), 0.1)
    assert (kinds_of(again), session.state) == (["SendRequest"], S.CALLING)
    steps = session.handle(answered_to(session, body=ANSWER, extra=OK_EXTRA), 0.2)
    assert kinds_of(steps) == ["SendAck", "Connected", "StartMedia"]
    assert session.state is S.CONFIRMED
    assert isinstance(steps[0], SendAck) and isinstance(steps[2], StartMedia)
    assert steps[0].request.headers.get("CSeq") == "2 ACK"


def test_a_challenge_without_credentials_gives_up_through_its_row() -> None:
    session = outgoing(Dial(TARGET, PROXY, HERE, "sip:101@example.com"), DEFAULT_OPTIONS, rng())[0]
    challenge = 'Proxy-Authenticate: Digest realm="example.com", nonce="n1"'
    steps = session.handle(answered_to(session, 407, "Proxy Auth", extra=challenge), 0.1)
    assert steps == [Over("failed", 407, "Proxy Auth", "no credentials")]
    assert session.state is S.ENDED


def test_cancelled_then_a_crossing_2xx_is_acked_and_hung_up() -> None:
    session = in_state(S.CALLING)
    steps = session.handle(Hangup(), 1.0)
    assert steps == [SendCancel(session.invite_tid), Over("local hangup")]
    assert session.state is S.TERMINATING
    late = session.handle(answered_to(session, body=ANSWER, extra=OK_EXTRA), 1.1)
    assert kinds_of(late) == ["SendAck", "SendRequest"]
    assert isinstance(late[1], SendRequest) and late[1].request.method == "BYE"
    assert session.state is S.TERMINATING  # another fork's 2xx gets the same


def test_a_ringing_session_declines_with_603_and_ends_with_480() -> None:
    declined, ended = in_state(S.RINGING), in_state(S.RINGING)
    decline = declined.handle(Hangup(), 1.0)
    timeout = ended.handle(End("no answer"), 60.0)
    assert codes(decline) == [603]
    assert decline[-1] == Over("declined", 603, "Decline")
    assert timeout[-1] == Over("no answer", 480, "Temporarily Unavailable")
    assert declined.state is ended.state is S.ENDED


def test_an_auto_answer_holds_the_media_until_the_ack() -> None:
    session = in_state(S.RINGING)
    assert kinds_of(session.handle(AutoAnswer(), 1.0)) == ["Respond", "Connected"]
    assert session.media is None and session.agreed() is not None
    assert kinds_of(session.handle(ack(), 1.2)) == ["StartMedia"]


def test_answered_notes_mark_where_the_call_starts_and_ends() -> None:
    session = in_state(S.RINGING)
    steps = session.handle(Answer(), 1.0)
    assert steps[1] == Connected()
    assert session.handle(Hangup(), 2.0)[-2:] == [StopMedia(), Over("local hangup")]
