"""The INVITE session's INFO (RFC 6086) for DTMF, both ways: digits received in
`application/dtmf-relay` or `application/dtmf`, and ours sent one INFO at a time when
RFC 4733 events were not negotiated. Handlers of `session.TABLE`, pure."""

from typing import TYPE_CHECKING

from intercom_sip.sip.callevents import (
    CAUSES,
    MAX_DIGITS,
    TOO_MANY_DIGITS,
    WRONG_DIGITS,
    Dtmf,
    DtmfReceived,
    Failure,
    Refused,
    Respond,
    SendDtmf,
    SendRequest,
)
from intercom_sip.sip.callflow import (
    DTMF,
    DTMF_RELAY,
    BadDtmf,
    dtmf_info_body,
    dtmf_of,
    new_branch,
    respond,
    via,
)
from intercom_sip.sip.core import ResponseReceived
from intercom_sip.sip.sessionevents import End, PeerRequest, SessionEvent, Steps
from intercom_sip.sip.syntax import DTMF_DIGITS
from intercom_sip.sip.transactions import TransactionId

if TYPE_CHECKING:
    from intercom_sip.sip.session import Session


def received(session: "Session", event: PeerRequest, now: float) -> Steps:
    info, tid = event.request, event.transaction_id
    digits = dtmf_of(info)
    if digits is None:
        accept = (("Accept", f"{DTMF_RELAY}, {DTMF}"),)
        unsupported = respond(info, 415, "Unsupported Media Type", "", extra=accept)
        return [Respond(tid, unsupported)]
    if isinstance(digits, BadDtmf):
        return [Respond(tid, respond(info, 400, digits.reason, ""))]
    heard: Steps = [DtmfReceived(digits)] if digits else []
    return [Respond(tid, respond(info, 200, "OK", "")), *heard]


def send(session: "Session", event: Dtmf, now: float) -> Steps:
    """`call/dtmf`: RFC 4733 events when negotiated, else INFO, a bounded queue."""
    digits = event.digits.upper()
    if not 1 <= len(digits) <= MAX_DIGITS or any(d not in DTMF_DIGITS for d in digits):
        return [Refused(WRONG_DIGITS)]
    if session.media is not None and session.media.event_payload_type is not None:
        return [SendDtmf(digits)]
    if len(session.waiting) + len(digits) > session.options.max_dtmf_waiting:
        return [Refused(TOO_MANY_DIGITS)]
    session.waiting.extend(digits)
    return _next(session) if session.info_tid is None else []


def done(session: "Session", event: ResponseReceived, now: float) -> Steps:
    session.info_tid = None
    return _next(session) if session.waiting else []


def gone(session: "Session", event: ResponseReceived, now: float) -> Steps:
    """408/481 to our INFO: the dialog is gone (§12.2.1.2)."""
    session.info_tid = None
    detail = f"INFO answered {event.response.code}"
    return session.step(SessionEvent.END, End("failed", detail), now)


def failed(session: "Session", event: Failure, now: float) -> Steps:
    session.info_tid = None
    return session.step(SessionEvent.END, End("failed", f"INFO {CAUSES[type(event)]}"), now)


def _next(session: "Session") -> Steps:
    assert session.dialog is not None
    content_type, body = dtmf_info_body(session.waiting.popleft())
    branch = new_branch(session.rng)
    session.dialog, request = session.dialog.request(
        "INFO", via(session.here, branch), content_type, body
    )
    session.info_tid = TransactionId(False, branch, "INFO")
    return [SendRequest(request, session.flow, session.info_tid)]
