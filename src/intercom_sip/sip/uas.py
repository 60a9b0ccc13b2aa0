"""The INVITE session's incoming role (RFC 3261 §13.3): answering, our 2xx sent again
until its ACK, and the ways a ringing call ends. Handlers of `session.TABLE`, pure."""

from typing import TYPE_CHECKING, Final

from intercom_sip.sip import negotiation
from intercom_sip.sip.callevents import Answer, Hangup, Respond
from intercom_sip.sip.callflow import respond
from intercom_sip.sip.core import CancelReceived
from intercom_sip.sip.sessionevents import (
    AutoAnswer,
    Connected,
    End,
    Over,
    PeerAck,
    PeerRequest,
    Retransmit,
    SessionEvent,
    Steps,
)
from intercom_sip.sip.transactions import Due

if TYPE_CHECKING:
    from intercom_sip.sip.session import Session

RINGING_ANSWERS: Final = {"declined": (603, "Decline")}  # else 480 Temporarily Unavailable
TEMPORARILY_UNAVAILABLE: Final = (480, "Temporarily Unavailable")
TERMINATED: Final = (487, "Request Terminated")


def answer(session: "Session", event: Answer, now: float) -> Steps:
    return _answer(session, now, at_ack=False)


def auto_answer(session: "Session", event: AutoAnswer, now: float) -> Steps:
    return _answer(session, now, at_ack=True)


def _answer(session: "Session", now: float, at_ack: bool) -> Steps:
    """Answer 200. `at_ack` (auto-answer, §6.9): no media before the ACK that carries
    our To-tag, which a forger who never saw our 200 cannot send."""
    assert session.dialog is not None
    ours, here = session.pending, session.here
    body = ours.sdp if ours else negotiation.make_offer(here.media)
    ok = respond(session.invite, 200, "OK", session.dialog.local_tag, here.contact, body)
    session.sent = body
    session.expect_ack(session.invite_tid, ok, None if ours else body, now)
    steps: Steps = [Respond(session.invite_tid, ok), Connected()]
    if ours is not None and at_ack and session.two_xx is not None:
        session.two_xx.media = ours.media
    elif ours is not None:
        steps += session.start_media(ours.media)
    return steps


def ack(session: "Session", event: PeerAck, now: float) -> Steps:
    """The ACK of our 2xx: the media held for it, or the answer to the offer our 2xx
    carried."""
    pending = session.two_xx
    assert pending is not None
    session.two_xx = None
    if pending.media is not None:
        return session.start_media(pending.media)
    if pending.our_offer is None:
        return []
    return session.take_answer(event.request, pending.our_offer, now)


def retransmit(session: "Session", event: Retransmit, now: float) -> Steps:
    """The 2xx again (§13.3.1.4); no ACK for 64·T1: the call ends with a BYE."""
    pending = session.two_xx
    assert pending is not None
    due = pending.schedule.tick(now)
    if due is Due.GIVE_UP:
        return session.step(SessionEvent.END, End("failed", "no ACK"), now)
    if due is Due.RETRANSMIT:
        return [Respond(pending.transaction_id, pending.response)]
    return []


def early_bye(session: "Session", event: PeerRequest, now: float) -> Steps:
    """The caller's BYE on the early dialog (§15): the INVITE ends 487."""
    ok = Respond(event.transaction_id, respond(event.request, 200, "OK", ""))
    terminated = respond(session.invite, *TERMINATED, session.local_tag())
    return [ok, Respond(session.invite_tid, terminated), Over("cancelled", *TERMINATED)]


def cancelled(session: "Session", event: CancelReceived, now: float) -> Steps:
    return [Over("cancelled", *TERMINATED)]


def decline(session: "Session", event: Hangup, now: float) -> Steps:
    return end_ringing(session, End("declined"), now)


def end_ringing(session: "Session", event: End, now: float) -> Steps:
    """While ringing: a final response (603 when declined, else 480)."""
    code, phrase = RINGING_ANSWERS.get(event.reason, TEMPORARILY_UNAVAILABLE)
    response = respond(session.invite, code, phrase, session.local_tag())
    over = Over(event.reason, code, phrase, event.detail)
    return [Respond(session.invite_tid, response), over]
