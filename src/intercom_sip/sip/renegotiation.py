"""The INVITE session's offers within the dialog (RFC 3261 §14, RFC 3311): re-INVITE
and UPDATE, answered from the current session; an offer while ours is unfinished waits.
Handlers of `session.TABLE`, pure."""

from typing import TYPE_CHECKING

from intercom_sip.sip import negotiation, sdp
from intercom_sip.sip.callevents import Respond
from intercom_sip.sip.callflow import offer_of, respond
from intercom_sip.sip.negotiation import Negotiated, NotAcceptable
from intercom_sip.sip.sessionevents import PeerRequest, Steps

if TYPE_CHECKING:
    from intercom_sip.sip.session import Session


def retry_later(session: "Session", event: PeerRequest, now: float) -> Steps:
    """§14.2 (RFC 3311 §5.2 for UPDATE): an offer while ours is unfinished (the call
    not answered yet, or our 2xx not ACKed): 500 with Retry-After 0..10 s."""
    retry = (("Retry-After", str(session.rng.randint(0, 10))),)
    response = respond(event.request, 500, "Server Internal Error", "", extra=retry)
    return [Respond(event.transaction_id, response)]


def refresh(session: "Session", event: PeerRequest, now: float) -> Steps:
    """An UPDATE without an offer: nothing changes (RFC 3311)."""
    response = respond(event.request, 200, "OK", "", session.here.contact)
    return [Respond(event.transaction_id, response)]


def offer_refused(session: "Session", event: PeerRequest, now: float) -> Steps:
    """An offer we cannot take: the session goes on as it was."""
    bad = isinstance(offer_of(event.request), sdp.SdpError)
    code, phrase = (400, "Bad SDP") if bad else (488, "Not Acceptable Here")
    return [Respond(event.transaction_id, respond(event.request, code, phrase, ""))]


def reinvite(session: "Session", event: PeerRequest, now: float) -> Steps:
    return _renegotiate(session, event, now, with_ack=True)


def update(session: "Session", event: PeerRequest, now: float) -> Steps:
    return _renegotiate(session, event, now, with_ack=False)


def _renegotiate(session: "Session", event: PeerRequest, now: float, with_ack: bool) -> Steps:
    """A re-INVITE or UPDATE, answered from the current session (§6.2): an offer gets
    our answer (a `sendonly` one `recvonly`: hold); a re-INVITE without one gets our
    offer, and its answer comes in the ACK."""
    request, tid = event.request, event.transaction_id
    offer = offer_of(request)
    assert not isinstance(offer, sdp.SdpError)  # the *_REFUSED kinds' otherwise
    media: Negotiated | None = None
    if offer is None:
        body = negotiation.make_offer(session.here.media, session.sent)
    else:
        answer = session.answer_to(offer)
        assert not isinstance(answer, NotAcceptable)
        body, media = answer.sdp, answer.media
    ok = respond(request, 200, "OK", "", session.here.contact, body)
    session.sent = body
    if session.two_xx is not None:
        session.two_xx.media = None  # the media this offer agrees on supersedes it
    if with_ack:
        session.expect_ack(tid, ok, body if offer is None else None, now)
    changed = session.start_media(media) if media and media != session.media else []
    return [Respond(tid, ok), *changed]
